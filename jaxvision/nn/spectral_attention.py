r"""Spectral-wise attention (MST / MST++), non-local attention and the SSTA transformer block.

Layers for RGB -> hyperspectral spectral reconstruction (spec ``spectral-transformer-ising``
Secs. 2 and "MS-SSF and SSTA"). All take and return NHWC ``(B, H, W, C)`` feature maps.

* :class:`SpectralWiseMSA`: MST's ``MS_MSA`` (Cai et al., CVPR 2022; MST++ CVPRW 2022,
  ``caiyuanhao1998/MST-plus-plus`` ``architecture/MST_Plus_Plus.py``). With
  ``X in R^{HW x C}``, ``heads`` heads of ``d = dim_head`` channels each
  (``C = heads * d``)::

      Q, K, V = X W^Q, X W^K, X W^V                   (no bias), per head (d, HW)
      q_i = Q_i / |Q_i|,  k_i = K_i / |K_i|            (L2 over the HW positions)
      A = softmax_j(rescale_h * <k_i, q_j>)            (d x d, learnable rescale_h, init 1)
      out = proj(A V) + pos_emb(V)                    (proj biased; pos_emb: depthwise 3x3
                                                       -> GELU -> depthwise 3x3, no bias)

  (the attention is over *channels*: each channel pair is one scalar, the paper's complaint).
* :class:`FeedForward`: MST's ``FeedForward``: 1x1 ``C -> mult C``, GELU, depthwise 3x3,
  GELU, 1x1 ``mult C -> C``, all bias-free; GELU is the exact (erf) one, PyTorch's default.
* :class:`PooledNonLocal`: an embedded-Gaussian non-local block (Wang et al., CVPR 2018)
  with pooled keys/values -- the reconstruction of the paper's "non-local second-order
  self-attention" (spec: full ``HW x HW`` attention at 482x512 is impossible):
  ``theta, phi, g`` 1x1 convs ``C -> C / reduction``; ``phi`` and ``g`` max- (or average-)
  pooled with window = stride = ``pool_stride``; ``y = softmax(theta^T phi) g``;
  ``out = W_z y`` (1x1 ``C / reduction -> C``). No residual (SSTA adds it).
* :class:`SecondOrderChannelAttention`: the alternative reading of "second-order": SAN's
  second-order channel attention (SOCA; Dai et al., CVPR 2019): the per-image channel
  covariance ``Sigma = cov_{HW}(X)`` (``C x C``), its square root by Newton-Schulz
  (:func:`jaxvision.ops.sqrtm`), row means ``z = mean_j Sigma^{1/2}_{ij}``, then
  ``w = sigmoid(W_2 relu(W_1 z))`` and ``out = w * X``.
* :class:`SSTA`: Spatio-Spectral Transformer Attention, ``proj(ACC(x) + gamma * NL(x))`` with a
  zero-initialised scalar ``gamma`` (so at initialisation "the attention coefficient is
  governed by the spectral features"); the ACC is :class:`jaxvision.nn.AdjacentChannelCoupler`
  (eq. 4), or, with ``coupler="msa"``, a :class:`SpectralWiseMSA` (the "MS-MSA twin").
* :class:`SpectralTransformerBlock`: the paper's BatchNorm transformer block (Fig. 1C):
  ``x += attention(BN(x)); x += FFN(BN(x))``.

Initialisation follows the PyTorch code these come from: MST's ``_init_weights`` gives every
``nn.Linear`` (``to_q/k/v``, ``proj``) a ``trunc_normal_(std=0.02)`` weight (truncated at
``+-2`` absolute, i.e. effectively untruncated) and a zero bias; convolutions keep PyTorch's
default ``U(+-1/sqrt(fan_in))`` (kernel and bias); ``rescale`` is 1; BatchNorm (1, 0).
Everything in :class:`PooledNonLocal`, :class:`SecondOrderChannelAttention`, :class:`SSTA`
and :class:`SpectralTransformerBlock` that the paper does not state is a field, documented as
a reconstruction.

PyTorch weight conversion (the parameter names mirror the PyTorch modules): ``nn.Linear``
``(out, in) -> (in, out)``; convs ``(O, I/g, kH, kW) -> (kH, kW, I/g, O)``; ``rescale``
``(heads, 1, 1) -> (heads,)``.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from jaxvision import ops
from jaxvision.nn.acc import AdjacentChannelCoupler

__all__ = [
    "COUPLERS",
    "DepthwiseConv2d",
    "FeedForward",
    "NONLOCAL_TYPES",
    "PooledNonLocal",
    "SSTA",
    "SecondOrderChannelAttention",
    "SpectralTransformerBlock",
    "SpectralWiseMSA",
    "torch_uniform",
]

COUPLERS = ("acc", "msa")
NONLOCAL_TYPES = (None, "pooled", "second_order")
_POOLS = ("max", "avg")

#: MST's ``trunc_normal_(m.weight, std=.02)`` (bounds +-2 absolute = +-100 std).
mst_linear_init = nn.initializers.truncated_normal(0.02, lower=-100.0, upper=100.0)


def torch_uniform(fan_in: int) -> Callable:
  """PyTorch's conv default ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` (kernel and bias).

  ``kaiming_uniform_(a=sqrt(5))`` has exactly this bound. ``fan_in`` is
  ``in_channels / groups * kH * kW``; for a ``ConvTranspose2d`` PyTorch uses its weight's
  dim 1, ``out_channels / groups * kH * kW``.
  """
  bound = 1.0 / math.sqrt(fan_in)

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def gelu(x):
  """PyTorch's default ``nn.GELU`` / ``F.gelu``: the exact ``x Phi(x)`` (erf), not tanh."""
  return nn.gelu(x, approximate=False)


class DepthwiseConv2d(nn.Module):
  """A depthwise (``groups = C``) ``nn.Conv`` twin computed by ``ops.depthwise_conv2d``.

  Same parameters as ``nn.Conv(C, (k, k), feature_group_count=C)``: ``kernel``
  ``(k, k, 1, C)`` and, with ``use_bias``, ``bias`` ``(C,)`` (created in that order, so the
  same ``init`` key gives the same values), in ``param_dtype``; the computation is
  :func:`jaxvision.ops.depthwise_conv2d` (shifted multiply-adds on CPU, ~12x faster there
  than XLA:CPU's grouped convolution; the grouped convolution elsewhere).

  Attributes:
    kernel_size: ``k`` or ``(kH, kW)``.
    strides: an int or ``(s_h, s_w)``.
    padding: as ``ops.depthwise_conv2d`` (``None``: ``k // 2`` on each side).
    use_bias: add a per-channel bias.
    dtype: computation dtype (``None``: the inputs' and parameters' result type).
    param_dtype: parameter dtype.
    kernel_init, bias_init: initialisers; ``None``: PyTorch's default
      ``U(+-1/sqrt(kH kW))`` (:func:`torch_uniform`, ``fan_in = kH kW``).
    method: ``ops.depthwise_conv2d``'s ``method`` (``"auto"``, ``"shifted"``, ``"conv"``).
  """
  kernel_size: int | tuple[int, int] = 3
  strides: int | tuple[int, int] = 1
  padding: Any = None
  use_bias: bool = False
  dtype: Any = None
  param_dtype: Any = jnp.float32
  kernel_init: Callable | None = None
  bias_init: Callable | None = None
  method: str = "auto"

  @nn.compact
  def __call__(self, x):
    """``(B, H, W, C) -> (B, H_out, W_out, C)``; ``H_out = H`` for stride 1, odd ``k``."""
    _check_nhwc(type(self).__name__, x)
    k = self.kernel_size
    kh, kw = (k, k) if isinstance(k, int) else tuple(k)
    c = x.shape[-1]
    default = torch_uniform(kh * kw)
    kernel = self.param("kernel", self.kernel_init or default, (kh, kw, 1, c),
                        self.param_dtype)
    bias = (self.param("bias", self.bias_init or default, (c,), self.param_dtype)
            if self.use_bias else None)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    return ops.depthwise_conv2d(x, kernel, bias, strides=self.strides, padding=self.padding,
                                method=self.method)


def conv2d(x, features: int, kernel: int, name: str, *, strides: int = 1, groups: int = 1,
           use_bias: bool = False, padding: int | None = None, dtype: Any = jnp.float32):
  """A PyTorch-style ``nn.Conv2d(k, stride, padding=k // 2, groups)`` with its default init.

  A depthwise conv (``groups == C == features``, ``C`` the input channels) is a
  :class:`DepthwiseConv2d` (same parameter names, shapes and init as the ``nn.Conv`` of the
  other cases; faster on CPU).
  """
  pad = kernel // 2 if padding is None else padding
  fan_in = x.shape[-1] // groups * kernel * kernel
  init = torch_uniform(fan_in)
  if groups == x.shape[-1] == features:
    return DepthwiseConv2d(kernel, strides, padding=pad, use_bias=use_bias, dtype=dtype,
                           kernel_init=init, bias_init=init, name=name)(x)
  return nn.Conv(features, (kernel, kernel), (strides, strides), padding=((pad, pad), (pad, pad)),
                 feature_group_count=groups, use_bias=use_bias, dtype=dtype,
                 kernel_init=init, bias_init=init, name=name)(x)


def _check_nhwc(owner: str, x) -> None:
  if x.ndim != 4:
    raise ValueError(f"{owner}: input must be NHWC (batch, height, width, channels); found "
                     f"shape {tuple(x.shape)}.")
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise TypeError(f"{owner}: input must be floating; found dtype {x.dtype}.")


def _check_choice(owner: str, name: str, value, allowed) -> None:
  if value not in allowed:
    raise ValueError(f"{owner}: `{name}` must be one of {allowed}; found {value!r}.")


def _check_positive_int(owner: str, name: str, value) -> None:
  if not isinstance(value, int) or isinstance(value, bool) or value < 1:
    raise ValueError(f"{owner}: `{name}` must be a positive int; found {value!r}.")


def _wide(dtype):
  """The softmax / normalisation dtype: float32, or ``dtype`` if wider (float64 tests)."""
  return jnp.promote_types(dtype, jnp.float32)


def _l2_normalize(x, axis: int, eps: float = 1e-12):
  """``F.normalize(x, p=2, dim=axis)``: ``x / max(|x|, eps)``."""
  norm = jnp.sqrt(jnp.sum(jnp.square(x), axis=axis, keepdims=True))
  return x / jnp.maximum(norm, eps)


class SpectralWiseMSA(nn.Module):
  """MST's spectral-wise multi-head self-attention ``MS_MSA`` (module docstring).

  Attributes:
    dim_head: channels per head ``d`` (MST / MST++: 31, the network's base width).
    heads: number of heads; ``None`` infers ``C // dim_head`` (MST: ``dim_stage // dim``).
      ``heads * dim_head`` must equal the input channels ``C`` (MST's ``proj(...).view(b, h,
      w, c)`` and its ``pos_emb`` on ``v`` require it).
    normalize_eps: the ``F.normalize`` floor of the L2 norms (1e-12).
    normalize_qk: L2-normalise q and k along the spatial axis (MST / MST++; default).
      ``False`` gives the plain spectral-wise dot-product attention ``softmax(rescale K Q^T)``
      that the paper's Lemma 1 (after Kim et al. 2021) analyses: its Jacobian grows with the
      input's dynamic range, whereas the normalised map is scale-invariant in q and k (the
      attention part of the layer is then positively 1-homogeneous in ``x``).
    dtype: computation dtype; the L2 normalisation and the softmax run in float32.

  Parameters: ``to_q``, ``to_k``, ``to_v`` (bias-free Dense ``C -> C``), ``rescale``
  ``(heads,)``, ``proj`` (Dense ``C -> C`` with bias), ``pos_emb_0``, ``pos_emb_2``
  (depthwise 3x3, bias-free): ``4 C^2 + 19 C + heads`` in all.
  """
  dim_head: int = 31
  heads: int | None = None
  normalize_eps: float = 1e-12
  normalize_qk: bool = True
  dtype: Any = jnp.float32

  def num_heads(self, channels: int) -> int:
    """The number of heads for ``channels`` input channels (validated)."""
    name = type(self).__name__
    _check_positive_int(name, "dim_head", self.dim_head)
    heads = channels // self.dim_head if self.heads is None else self.heads
    if heads < 1 or heads * self.dim_head != channels:
      raise ValueError(f"{name}: `heads * dim_head` must equal the input channels {channels}; "
                       f"found heads={self.heads!r} (inferred {heads}), "
                       f"dim_head={self.dim_head}.")
    return heads

  @nn.compact
  def __call__(self, x):
    """Spectral-wise MSA.

    Args:
      x: float ``(B, H, W, C)``, ``C = heads * dim_head``.

    Returns:
      ``(B, H, W, C)`` in ``dtype``: ``proj(A V) + pos_emb(V)``.
    """
    _check_nhwc(type(self).__name__, x)
    b, h, w, c = x.shape
    heads, d = self.num_heads(c), self.dim_head
    dense = functools.partial(nn.Dense, c, use_bias=False, dtype=self.dtype,
                              kernel_init=mst_linear_init)
    tokens = x.reshape(b, h * w, c).astype(self.dtype)
    q_inp = dense(name="to_q")(tokens)
    k_inp = dense(name="to_k")(tokens)
    v_inp = dense(name="to_v")(tokens)

    def split(t):  # (b, hw, heads * d) -> (b, heads, d, hw)
      return t.reshape(b, h * w, heads, d).transpose(0, 2, 3, 1)

    wide = _wide(self.dtype)
    q, k = split(q_inp).astype(wide), split(k_inp).astype(wide)
    if self.normalize_qk:
      q, k = _l2_normalize(q, -1, self.normalize_eps), _l2_normalize(k, -1, self.normalize_eps)
    v = split(v_inp)
    rescale = self.param("rescale", nn.initializers.ones, (heads,), jnp.float32).astype(wide)
    logits = jnp.einsum("bhin,bhjn->bhij", k, q) * rescale[:, None, None]   # A = K Q^T (d x d)
    attn = jax.nn.softmax(logits, axis=-1).astype(self.dtype)
    out = jnp.einsum("bhij,bhjn->bhin", attn, v)                            # (b, heads, d, hw)
    out = out.transpose(0, 3, 1, 2).reshape(b, h * w, c)
    out_c = nn.Dense(c, use_bias=True, dtype=self.dtype, kernel_init=mst_linear_init,
                     bias_init=nn.initializers.zeros, name="proj")(out).reshape(b, h, w, c)
    p = v_inp.reshape(b, h, w, c)
    p = conv2d(p, c, 3, "pos_emb_0", groups=c, dtype=self.dtype)
    p = conv2d(gelu(p), c, 3, "pos_emb_2", groups=c, dtype=self.dtype)
    return out_c + p


class FeedForward(nn.Module):
  """MST's ``FeedForward``: 1x1 ``C -> mult C``, GELU, depthwise 3x3, GELU, 1x1 ``-> C``.

  Attributes:
    mult: the expansion (4 in MST).
    use_bias: biases on the three convs (MST: ``False``).
    dtype: computation dtype.

  Parameters ``net_0``, ``net_2``, ``net_4`` (PyTorch's ``net.0/2/4``): ``2 mult C^2 + 9 mult C``.
  """
  mult: int = 4
  use_bias: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    """``(B, H, W, C) -> (B, H, W, C)``."""
    _check_nhwc(type(self).__name__, x)
    _check_positive_int(type(self).__name__, "mult", self.mult)
    c = x.shape[-1]
    inner = c * self.mult
    conv = functools.partial(conv2d, use_bias=self.use_bias, dtype=self.dtype)
    y = gelu(conv(x.astype(self.dtype), inner, 1, "net_0"))
    y = gelu(conv(y, inner, 3, "net_2", groups=inner))
    return conv(y, c, 1, "net_4")


class PooledNonLocal(nn.Module):
  """Embedded-Gaussian non-local attention over pooled keys/values (reconstruction).

  ``theta = W_theta x`` (all ``N = HW`` positions), ``phi = pool(W_phi x)``,
  ``g = pool(W_g x)`` (``M = ceil(H / r) ceil(W / r)`` positions, ``r = pool_stride``;
  Wang et al.'s subsampling trick, with 'SAME' padding so any size works),
  ``y = softmax(theta phi^T * s) g`` (``N x M``; ``s = 1`` as Wang et al., or
  ``C_inner^-1/2`` with ``scaled``), ``out = W_z y``. All four are biased 1x1 convs with
  PyTorch's default init.

  Attributes:
    reduction: ``C_inner = max(1, C // reduction)`` (Wang et al.: 2).
    pool_stride: the pooling window and stride ``r`` of keys and values (1: full non-local).
    pool: ``"max"`` (Wang et al.) or ``"avg"``.
    scaled: scale the logits by ``C_inner^-1/2`` (Transformer convention; Wang et al. don't).
    query_chunk: evaluate the queries in chunks of this many positions (``lax.map``) to bound
      the ``N x M`` memory at full resolution; ``None``: all at once. Same result.
    dtype: computation dtype; the softmax runs in float32.

  Parameters ``theta``, ``phi``, ``g`` (``C -> C_inner``) and ``out`` (``C_inner -> C``):
  ``4 C C_inner + 3 C_inner + C``.
  """
  reduction: int = 2
  pool_stride: int = 4
  pool: str = "max"
  scaled: bool = False
  query_chunk: int | None = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    """``(B, H, W, C) -> (B, H, W, C)`` (the non-local response ``W_z y``, no residual)."""
    name = type(self).__name__
    _check_nhwc(name, x)
    _check_positive_int(name, "reduction", self.reduction)
    _check_positive_int(name, "pool_stride", self.pool_stride)
    _check_choice(name, "pool", self.pool, _POOLS)
    if self.query_chunk is not None:
      _check_positive_int(name, "query_chunk", self.query_chunk)
    b, h, w, c = x.shape
    ci = max(1, c // self.reduction)
    conv = functools.partial(conv2d, use_bias=True, dtype=self.dtype)
    x = x.astype(self.dtype)
    theta = conv(x, ci, 1, "theta").reshape(b, h * w, ci)
    phi, g = conv(x, ci, 1, "phi"), conv(x, ci, 1, "g")
    r = self.pool_stride
    if r > 1:
      if self.pool == "max":
        pool = functools.partial(nn.max_pool, window_shape=(r, r), strides=(r, r),
                                 padding="SAME")
      else:
        pool = functools.partial(nn.avg_pool, window_shape=(r, r), strides=(r, r),
                                 padding="SAME", count_include_pad=False)
      phi, g = pool(phi), pool(g)
    phi = phi.reshape(b, -1, ci)
    g = g.reshape(b, -1, ci)
    scale = ci ** -0.5 if self.scaled else 1.0

    def attend(t):  # t: (b, n, ci) queries
      logits = jnp.einsum("bnc,bmc->bnm", t, phi).astype(_wide(self.dtype)) * scale
      return jnp.einsum("bnm,bmc->bnc", jax.nn.softmax(logits, -1).astype(self.dtype), g)

    n = h * w
    if self.query_chunk is None or self.query_chunk >= n:
      y = attend(theta)
    else:
      k = self.query_chunk
      chunks = -(-n // k)
      t = jnp.pad(theta, ((0, 0), (0, chunks * k - n), (0, 0)))
      t = t.reshape(b, chunks, k, ci).transpose(1, 0, 2, 3)
      y = lax.map(attend, t).transpose(1, 0, 2, 3).reshape(b, chunks * k, ci)[:, :n]
    return conv(y.reshape(b, h, w, ci), c, 1, "out")


class SecondOrderChannelAttention(nn.Module):
  """SAN's second-order channel attention (SOCA; Dai et al., CVPR 2019), ``w(X) * X``.

  ``Sigma = (X - mu)^T (X - mu) / HW`` per image (``C x C``), ``Y = Sigma^{1/2}`` by
  ``num_iters`` coupled Newton-Schulz steps (iSQRT-COV, as SAN; ``ops.sqrtm``),
  ``z_i = mean_j Y_ij``, ``w = sigmoid(W_2 relu(W_1 z + b_1) + b_2)`` (``C -> C / reduction
  -> C``, biased, PyTorch init). (SAN's crop of inputs larger than 1000x1000 is not done.)

  Attributes:
    reduction: ``C_inner = max(1, C // reduction)`` (SAN: 16 at 64 channels).
    num_iters: Newton-Schulz iterations (SAN: 5).
    dtype: computation dtype of the output product; the covariance and its root run in
      float32.
  """
  reduction: int = 8
  num_iters: int = 5
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    """``(B, H, W, C) -> (B, H, W, C)``."""
    name = type(self).__name__
    _check_nhwc(name, x)
    _check_positive_int(name, "reduction", self.reduction)
    _check_positive_int(name, "num_iters", self.num_iters)
    b, h, w, c = x.shape
    ci = max(1, c // self.reduction)
    cov = ops.covariance(x.reshape(b, h * w, c).astype(_wide(self.dtype)))
    root = ops.sqrtm(cov, method="newton_schulz", num_iters=self.num_iters)
    z = jnp.mean(root, axis=-1)                                               # (b, c)
    z = nn.relu(nn.Dense(ci, kernel_init=torch_uniform(c), bias_init=torch_uniform(c),
                         name="conv_du_0")(z))
    wgt = jax.nn.sigmoid(nn.Dense(c, kernel_init=torch_uniform(ci), bias_init=torch_uniform(ci),
                                  name="conv_du_2")(z))
    return (x.astype(self.dtype) * wgt[:, None, None, :].astype(self.dtype))


class SSTA(nn.Module):
  """Spatio-Spectral Transformer Attention: ``proj(coupler(x) + gamma * NL(x))`` (reconstruction).

  The paper (Sec. 2) combines "the adjacently coupled spectral self-attention and non-local
  second-order self-attention" so that "the resulting attention coefficient is governed by
  the spectral features in the majority"; read here as a zero-initialised scalar ``gamma``
  on the non-local branch (SAGAN / DANet), and a 1x1 output projection ``proj`` (biased,
  PyTorch init). At initialisation ``SSTA(x) = proj(coupler(x))`` exactly.

  Attributes:
    coupler: ``"acc"`` (:class:`jaxvision.nn.AdjacentChannelCoupler`, eq. 4) or ``"msa"``
      (:class:`SpectralWiseMSA`: the "MS-MSA twin", everything else identical).
    acc_variant, acc_solver, acc_directions, acc_boundary, acc_num_iters, acc_tol: passed to
      the ACC as ``variant``, ``solver``, ``directions``, ``boundary``, ``num_iters``, ``tol``.
    dim_head: heads' width of the MSA twin (``heads = C // dim_head``).
    nonlocal_type: ``"pooled"`` (:class:`PooledNonLocal`, default), ``"second_order"``
      (:class:`SecondOrderChannelAttention`, the SAN reading) or ``None`` (no branch, no
      ``gamma``).
    nl_reduction, nl_pool_stride, nl_pool, nl_scaled, nl_query_chunk: the non-local branch's
      ``reduction``, ``pool_stride``, ``pool``, ``scaled``, ``query_chunk``
      (``"second_order"`` uses ``nl_reduction`` only).
    proj_bias: a bias on ``proj``.
    dtype: computation dtype.
  """
  coupler: str = "acc"
  acc_variant: str = "acc"
  acc_solver: str = "scan"
  acc_directions: str = "both"
  acc_boundary: str = "zero"
  acc_num_iters: int | None = None
  acc_tol: float | None = None
  dim_head: int = 31
  nonlocal_type: str | None = "pooled"
  nl_reduction: int = 2
  nl_pool_stride: int = 4
  nl_pool: str = "max"
  nl_scaled: bool = False
  nl_query_chunk: int | None = None
  proj_bias: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    """``(B, H, W, C) -> (B, H, W, C)``."""
    name = type(self).__name__
    _check_nhwc(name, x)
    _check_choice(name, "coupler", self.coupler, COUPLERS)
    _check_choice(name, "nonlocal_type", self.nonlocal_type, NONLOCAL_TYPES)
    c = x.shape[-1]
    x = x.astype(self.dtype)
    if self.coupler == "acc":
      s = AdjacentChannelCoupler(variant=self.acc_variant, solver=self.acc_solver,
                                 directions=self.acc_directions, boundary=self.acc_boundary,
                                 num_iters=self.acc_num_iters, tol=self.acc_tol,
                                 dtype=self.dtype, name="acc")(x)
    else:
      s = SpectralWiseMSA(dim_head=self.dim_head, dtype=self.dtype, name="msa")(x)
    if self.nonlocal_type is not None:
      if self.nonlocal_type == "pooled":
        nl = PooledNonLocal(reduction=self.nl_reduction, pool_stride=self.nl_pool_stride,
                            pool=self.nl_pool, scaled=self.nl_scaled,
                            query_chunk=self.nl_query_chunk, dtype=self.dtype,
                            name="nonlocal")(x)
      else:
        nl = SecondOrderChannelAttention(reduction=self.nl_reduction, dtype=self.dtype,
                                         name="nonlocal")(x)
      gamma = self.param("gamma", nn.initializers.zeros, (), jnp.float32)
      s = s + gamma.astype(self.dtype) * nl
    return conv2d(s, c, 1, "proj", use_bias=self.proj_bias, dtype=self.dtype)


class SpectralTransformerBlock(nn.Module):
  """The paper's BatchNorm transformer block (Fig. 1C; reconstruction of the layout).

  ``x = x + attention(BN_1(x)); x = x + FFN(BN_2(x))`` with :class:`FeedForward` as the FFN.
  (MST's MSAB instead has no norm before the attention and a LayerNorm before the FFN.)

  Attributes:
    attention: a constructor of the attention module, called as ``attention(name=...)(x)``
      (default :class:`SSTA` with its defaults; models pass a ``functools.partial``).
    ffn_mult: the FFN expansion (MST: 4).
    bn_momentum, bn_epsilon: BatchNorm running-average momentum (Flax convention: PyTorch's
      0.1 is 0.9; the paper gives none) and epsilon (1e-5, PyTorch's).
    dtype: computation dtype; BatchNorm statistics stay float32.
  """
  attention: Callable[..., nn.Module] = SSTA
  ffn_mult: int = 4
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-5
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    """Applies the block.

    Args:
      x: float ``(B, H, W, C)``.
      train: BatchNorm uses batch statistics and updates ``batch_stats`` (apply with
        ``mutable=["batch_stats"]``); otherwise the running averages.

    Returns:
      ``(B, H, W, C)`` in ``dtype``.
    """
    _check_nhwc(type(self).__name__, x)
    bn = functools.partial(nn.BatchNorm, use_running_average=not train,
                           momentum=self.bn_momentum, epsilon=self.bn_epsilon, dtype=self.dtype)
    x = x.astype(self.dtype)
    x = x + self.attention(name="attn")(bn(name="norm1")(x))
    x = x + FeedForward(mult=self.ffn_mult, dtype=self.dtype, name="ffn")(bn(name="norm2")(x))
    return x
