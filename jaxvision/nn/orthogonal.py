"""Weight treatments of the Pre-SVD layer: orthogonal (SOC) and spectrally normalised convs.

Song, Sebe & Wang, "Improving Covariance Conditioning of the SVD Meta-layer by
Orthogonality" (ECCV 2022), Sec. 4.1:

* ``SOCConv`` -- OW, eq. (13) for convolutions: the skew orthogonal convolution of Singla &
  Feizi (ICML 2021), ``exp(L)`` of a skew-symmetric convolution ``L``, as the authors'
  ``skew_conv``.
* ``SpectralNormConv`` -- SN, eq. (11): ``W / sigma_max(W)`` of the ``(out, in kh kw)``
  matrix view, by power iteration (Miyato et al., 2018).
"""

from __future__ import annotations

import math
import operator
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.linen.dtypes import promote_dtype
from jax import lax

from jaxvision.ops import kernel_to_matrix, spectral_norm, transpose_filter

__all__ = ["SOCConv", "SpectralNormConv", "SOC_PADDINGS"]

SOC_PADDINGS = ("circular", "zeros")

he_normal_fan_out = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def _tuple(value, ndim: int, name: str, cls: str) -> tuple[int, ...]:
  """An int (repeated ``ndim`` times) or a sequence of ints (of length ``ndim`` if ``ndim``)."""
  want = f"a positive int or {ndim} positive ints" if ndim else "a sequence of positive ints"
  try:
    if isinstance(value, (int, np.integer)):
      vals = (operator.index(value),) * max(ndim, 1)
    else:
      vals = tuple(operator.index(v) for v in value)
  except TypeError:
    raise TypeError(f"{cls}: `{name}` must be {want}; found {value!r}.") from None
  if not vals or any(v < 1 for v in vals) or (ndim and len(vals) != ndim):
    raise ValueError(f"{cls}: `{name}` must be {want}; found {value!r}.")
  return vals


def _kernel_size(kernel_size, x: jax.Array, cls: str) -> tuple[int, ...]:
  """``kernel_size`` as a tuple; an int is repeated over the spatial axes of ``x``."""
  if isinstance(kernel_size, (int, np.integer)):
    if x.ndim < 3:
      raise ValueError(f"{cls}: `x` must have shape (batch, *spatial, channels) with at least "
                       f"one spatial axis; found shape {x.shape}.")
    return _tuple(kernel_size, x.ndim - 2, "kernel_size", cls)
  return _tuple(kernel_size, 0, "kernel_size", cls)


def _dimension_numbers(ndim: int) -> lax.ConvDimensionNumbers:
  """Channels-last input/output, ``(*spatial, in, out)`` kernel (NHWC / HWIO for 2-D)."""
  lhs = (0, ndim - 1, *range(1, ndim - 1))
  rhs = (ndim - 1, ndim - 2, *range(ndim - 2))
  return lax.ConvDimensionNumbers(lhs, rhs, lhs)


def _soc_bias_init(key, shape, dtype=jnp.float32):
  """``U(-1/sqrt(C), 1/sqrt(C))``, as the reference ``skew_conv``."""
  bound = 1.0 / math.sqrt(shape[-1])
  return jax.random.uniform(key, shape, dtype, -bound, bound)


def _soc_kernel_init(key, shape, dtype=jnp.float32):
  """``N(0, 1/C)``, as the reference ``skew_conv`` (``std = 1 / sqrt(max_channels)``)."""
  return jax.random.normal(key, shape, dtype) / math.sqrt(shape[-1])


class SOCConv(nn.Module):
  """Skew orthogonal convolution (SOC; Singla & Feizi 2021), the paper's OW for convs (eq. 13).

  With a free kernel ``W`` ``(*kernel_size, C, C)`` (``C = features``):

  * ``L = (W - transpose_filter(W)) / 2``: for stride 1, an odd kernel and symmetric
    ``'same'`` padding (circular, or zeros) the convolution by ``transpose_filter(W)`` is
    the adjoint of the convolution by ``W``, so ``conv(., L)`` is a skew-symmetric operator
    and ``exp(conv(., L))`` is orthogonal (eq. 13: ``exp(W - W^T)``).
  * ``L <- correction * L / bound``, ``bound >= ||conv(., L)||_2``: the triangle-inequality
    bound ``sum_taps ||L[a, b]||_2`` (a stride-1 convolution is ``sum_taps shift_ab (x) L[a, b]``
    with shifts of norm <= 1), each tap's spectral norm by an exact SVD
    (``jnp.linalg.norm(ord=2)``), under ``stop_gradient``. The authors' code instead uses
    the "fantastic four" estimate of Singla & Feizi (four power iterations on reshaped
    filters, 50 steps every 200 training steps and 1 otherwise). Any valid bound leaves
    ``exp(L)`` exactly orthogonal; a looser one only shrinks ``L`` and so the truncation
    error below, and how far from the identity the layer is at a given ``W``. Measured on
    random 3x3 filters (8-64 channels): the triangle bound is 2.5-2.7x the true operator norm,
    so ``||L|| ~= 0.27`` at initialisation here; the reference's estimate (the minimum of
    the four reshaped norms, as coded) is ~0.5x the true norm -- not an upper bound -- so
    its ``||L|| ~= 1.3``.
  * ``z = sum_{i=0}^{T} L^i x / i!`` with ``T = train_terms`` (5) in training and
    ``eval_terms`` (10) in evaluation. With ``||L|| <= 0.7`` the truncation error is at most
    ``~0.7^(T+1) / (T+1)!`` relative: 1.6e-4 at ``T = 5``, 5e-10 at ``T = 10``.
  * Inputs with fewer than ``C`` channels are zero-padded to ``C`` (the reference pads the
    3-channel image to 64 channels); then an optional bias is added.

  ``padding="circular"`` makes the operator exactly orthogonal on the periodic image;
  ``"zeros"`` (the reference code's ``F.conv2d(padding=k // 2)``) is also skew-symmetric,
  and so orthogonal, on the zero-extended image. Strided (invertible down-sampling) SOC is
  not implemented.

  Attributes:
    features: channels ``C`` of the square kernel and of the output.
    kernel_size: odd int or sequence of odd ints, one per spatial axis (``3``).
    train_terms, eval_terms: Taylor terms ``T`` in training / evaluation (5 / 10).
    padding: one of ``SOC_PADDINGS``.
    use_bias: add a learned bias (init ``U(-1/sqrt(C), 1/sqrt(C))``, as the reference).
    correction: the scale of the normalised ``L``; ``None`` gives the reference's 0.7, or
      1.0 for a ``1x1`` kernel (where the bound is exact).
    dtype: computation dtype (``None``: promote the input and parameter dtypes).
    param_dtype: parameter dtype.
    precision: ``lax`` precision of the convolutions (``Precision.HIGHEST`` keeps float32
      orthogonality on TPU).
    kernel_init: initialiser of ``W`` (``N(0, 1/C)``, as the reference).
    bias_init: initialiser of the bias.
  """
  features: int
  kernel_size: int | Sequence[int] = 3
  train_terms: int = 5
  eval_terms: int = 10
  padding: str = "circular"
  use_bias: bool = True
  correction: float | None = None
  dtype: Any = None
  param_dtype: Any = jnp.float32
  precision: Any = None
  kernel_init: Any = _soc_kernel_init
  bias_init: Any = _soc_bias_init

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    """Applies ``exp(L)`` (truncated) to ``x``.

    Args:
      x: float ``(B, *spatial, c)`` channels-last (NHWC for 2-D), ``c <= features``.
      train: use ``train_terms`` Taylor terms instead of ``eval_terms``.

    Returns:
      ``(B, *spatial, features)``.
    """
    cls = "SOCConv"
    x = jnp.asarray(x)
    feats = self.features
    if not isinstance(feats, (int, np.integer)) or feats < 1:
      raise ValueError(f"{cls}: `features` must be a positive int; found {feats!r}.")
    ks = _kernel_size(self.kernel_size, x, cls)
    if any(k % 2 == 0 for k in ks):
      raise ValueError(f"{cls}: `kernel_size` must be odd (the adjoint of an even 'same' "
                       f"convolution is not a convolution with the transposed filter); "
                       f"found {self.kernel_size!r}.")
    if x.ndim != len(ks) + 2:
      raise ValueError(f"{cls}: `x` must have shape (batch, *spatial, channels) with "
                       f"{len(ks)} spatial axes for kernel_size {ks}; found shape {x.shape}.")
    if self.padding not in SOC_PADDINGS:
      raise ValueError(f"{cls}: `padding` must be one of {SOC_PADDINGS}; "
                       f"found {self.padding!r}.")
    for name in ("train_terms", "eval_terms"):
      terms = getattr(self, name)
      if not isinstance(terms, int) or terms < 0:
        raise ValueError(f"{cls}: `{name}` must be an int >= 0; found {terms!r}.")
    cin = x.shape[-1]
    if cin > feats:
      raise ValueError(f"{cls}: `x` has {cin} channels, more than `features`={feats}; inputs "
                       f"may only have fewer channels (they are zero-padded to `features`).")

    kernel = self.param("kernel", self.kernel_init, (*ks, feats, feats), self.param_dtype)
    bias = self.param("bias", self.bias_init, (feats,), self.param_dtype) if self.use_bias \
        else None
    x, kernel, bias = promote_dtype(x, kernel, bias, dtype=self.dtype)

    skew = 0.5 * (kernel - transpose_filter(kernel))
    taps = lax.stop_gradient(skew).reshape(-1, feats, feats)
    norm_dtype = jnp.promote_types(taps.dtype, jnp.float32)
    bound = jnp.sum(jnp.linalg.norm(taps.astype(norm_dtype), ord=2, axis=(-2, -1)))
    bound = jnp.where(bound > 0, bound, 1.0).astype(skew.dtype)  # L = 0 -> identity map.
    correction = self.correction
    if correction is None:
      correction = 1.0 if math.prod(ks) == 1 else 0.7
    filt = (correction / bound) * skew

    if cin < feats:
      x = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, feats - cin)])
    half = [(k // 2, k // 2) for k in ks]
    dn = _dimension_numbers(x.ndim)

    def conv(z):
      if self.padding == "circular":
        z = jnp.pad(z, [(0, 0), *half, (0, 0)], mode="wrap")
        pad = [(0, 0)] * len(ks)
      else:
        pad = half
      return lax.conv_general_dilated(z, filt, (1,) * len(ks), pad, dimension_numbers=dn,
                                      precision=self.precision)

    num_terms = self.train_terms if train else self.eval_terms
    z = term = x
    for i in range(1, num_terms + 1):
      term = conv(term) / float(i)
      z = z + term
    if bias is not None:
      z = z + bias
    return z


class SpectralNormConv(nn.Module):
  """Convolution with a spectrally normalised kernel ``W / sigma_max(W)`` (SN, eq. 11).

  ``sigma_max`` is the largest singular value of the kernel's PyTorch matrix view
  ``(out, in * prod(kernel_size))`` (``jaxvision.ops.kernel_to_matrix``), estimated by
  ``jaxvision.ops.spectral_norm``: ``num_iters`` power-iteration steps from the left
  vector ``u`` stored in ``("batch_stats", "u")`` ``(features,)`` (initialised to a random
  unit vector from the ``"params"`` RNG). ``sigma = u^T W v`` with ``u``, ``v``
  ``stop_gradient``-ed, so ``d sigma / dW = u v^T`` (Miyato et al., 2018).

  ``train=True`` (unless initialising) writes the iterated ``u`` back (apply with
  ``mutable=["batch_stats"]``), so one step per training step tracks ``sigma_max`` as ``W``
  drifts. Evaluation runs the same ``num_iters`` steps from the stored ``u`` without
  storing the result (deterministic given the variables; PyTorch's evaluation reuses its
  stored ``u`` and ``v`` without a step). Unless initialising, the estimate ``sigma`` is
  sown as ``("intermediates", "sigma")``. A zero kernel is left unnormalised.

  Attributes:
    features: output channels.
    kernel_size: int or sequence of ints, one per spatial axis.
    strides: int or sequence of ints (``1``).
    padding: ``"SAME"``, ``"VALID"``, an int, a sequence of ints or of ``(low, high)`` pairs.
    use_bias: add a bias (not normalised).
    dtype: computation dtype (``None``: promote the input and parameter dtypes).
    param_dtype: parameter dtype.
    precision: ``lax`` precision of the convolution.
    kernel_init: He-normal with fan-out (torchvision's ``kaiming_normal_(mode="fan_out")``).
    bias_init: zeros.
    num_iters: power-iteration steps per call (1, as Miyato).
    eps: norm floor of the power iteration.
  """
  features: int
  kernel_size: int | Sequence[int] = 3
  strides: int | Sequence[int] = 1
  padding: Any = "SAME"
  use_bias: bool = True
  dtype: Any = None
  param_dtype: Any = jnp.float32
  precision: Any = None
  kernel_init: Any = he_normal_fan_out
  bias_init: Any = nn.initializers.zeros
  num_iters: int = 1
  eps: float = 1e-12

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    """Convolves ``x`` with the normalised kernel.

    Args:
      x: float ``(B, *spatial, in)`` channels-last (NHWC for 2-D).
      train: update the stored power-iteration vector ``u``.

    Returns:
      ``(B, *spatial_out, features)``.
    """
    cls = "SpectralNormConv"
    x = jnp.asarray(x)
    if not isinstance(self.features, (int, np.integer)) or self.features < 1:
      raise ValueError(f"{cls}: `features` must be a positive int; found {self.features!r}.")
    ks = _kernel_size(self.kernel_size, x, cls)
    nsp = len(ks)
    if x.ndim != nsp + 2:
      raise ValueError(f"{cls}: `x` must have shape (batch, *spatial, channels) with {nsp} "
                       f"spatial axes for kernel_size {ks}; found shape {x.shape}.")
    strides = _tuple(self.strides, nsp, "strides", cls)
    padding = self._padding(nsp)

    kernel = self.param("kernel", self.kernel_init, (*ks, x.shape[-1], self.features),
                        self.param_dtype)
    bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype) \
        if self.use_bias else None

    def init_u():
      u = jax.random.normal(self.make_rng("params"), (self.features,), jnp.float32)
      return u / jnp.linalg.norm(u)

    u = self.variable("batch_stats", "u", init_u)
    matrix = kernel_to_matrix(kernel)
    matrix = matrix.astype(jnp.promote_types(matrix.dtype, jnp.float32))
    sigma, u_new = spectral_norm(matrix, num_iters=self.num_iters, u=u.value, eps=self.eps)
    if not self.is_initializing():
      self.sow("intermediates", "sigma", sigma)
      if train:
        u.value = u_new.astype(u.value.dtype)
    kernel = kernel / jnp.where(sigma != 0, sigma, 1.0).astype(kernel.dtype)

    x, kernel, bias = promote_dtype(x, kernel, bias, dtype=self.dtype)
    y = lax.conv_general_dilated(x, kernel, strides, padding,
                                 dimension_numbers=_dimension_numbers(x.ndim),
                                 precision=self.precision)
    if bias is not None:
      y = y + bias
    return y

  def _padding(self, nsp: int):
    p = self.padding
    if isinstance(p, str):
      if p.upper() not in ("SAME", "VALID"):
        raise ValueError(f"SpectralNormConv: `padding` must be 'SAME', 'VALID', an int or "
                         f"(low, high) pairs; found {p!r}.")
      return p.upper()
    if isinstance(p, int):
      return [(p, p)] * nsp
    p = list(p)
    if len(p) != nsp:
      raise ValueError(f"SpectralNormConv: `padding` must have one entry per spatial axis "
                       f"({nsp}); found {self.padding!r}.")
    return [(int(q), int(q)) if isinstance(q, int) else tuple(int(v) for v in q) for q in p]
