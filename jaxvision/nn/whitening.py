"""Decorrelated batch normalisation: ZCA whitening of the channels (Huang et al., CVPR 2018).

The SVD meta-layer of Song, Sebe & Wang, "Improving Covariance Conditioning of the SVD
Meta-layer by Orthogonality" (ECCV 2022), Sec. 3 and Table 4; the released code's
``ZCANormBatch``.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxvision.ops import SQRTM_METHODS, covariance, inv_sqrtm

__all__ = ["DecorrelatedBatchNorm"]

_HIGHEST = lax.Precision.HIGHEST


def _uniform_01(key, shape, dtype=jnp.float32):
  """``U(0, 1)``: the reference code's initialisation of the affine weight."""
  return jax.random.uniform(key, shape, dtype)


class DecorrelatedBatchNorm(nn.Module):
  """ZCA-whitening batch normalisation over the last (channel) axis, per channel group.

  Training, for each group of ``n = C / groups`` channels, with the ``N`` samples of the
  batch and every spatial position (``N = B H W`` for NHWC input) as the columns of
  ``X`` (``n x N``):

  * eq. (2): ``Sigma = X J X^T + eps I`` with ``J = (I - 1 1^T / N) / N``, computed as
    ``(X - mu)(X - mu)^T / N`` by ``jaxvision.ops.covariance`` (``Precision.HIGHEST``);
  * eqs. (3)-(4): ``Sigma = U Lambda U^T``, ``S = Sigma^(-1/2) = U Lambda^(-1/2) U^T`` by
    ``jaxvision.ops.inv_sqrtm(method=method)`` (``"eigh"``: exact Loewner gradient);
  * ``x_hat = S (x - mu)``, then ``y = scale * x_hat + bias`` per channel.

  The whitened output has covariance ``S Sigma_0 S = (Sigma_0 + eps I)^(-1) Sigma_0`` (with
  ``Sigma_0`` the batch covariance), ``~= I`` when ``eps << lambda_min``; the layer is
  equivariant to rotations of each group's channels (``eps I`` is rotation invariant).

  The paper writes eq. (2) without ``eps``; the authors' code adds ``eps = 1e-2`` (the
  default here). Their layer computes ``S`` as ``inverse(MPA_Lya(Sigma))``
  (``method="pade"`` here); the paper's "SVD" rows are ``method="eigh"`` and its
  "Newton-Schulz" row ``method="newton_schulz"``. In the paper only the BN after ``conv1``
  (64 channels, ``groups=1``) is replaced; every other BN stays standard.

  Running statistics (collection ``"batch_stats"``): ``"mean"`` ``(C,)`` and
  ``"whitening"`` ``(groups, n, n)`` (initialised to zeros and the identity), exponential
  moving averages ``r <- momentum r + (1 - momentum) batch`` of the per-channel mean and of
  the whitening matrix ``S`` itself (as the reference code; Flax convention, PyTorch's
  ``momentum=0.1`` is ``0.9`` here). Evaluation uses ``y = scale * S_run (x - mu_run) + bias``.

  Batch statistics are taken over the whole batch: under ``jit`` with a batch sharded over
  devices they are global (XLA inserts the cross-device reductions).

  During training (not at ``init``) the layer sows the batch covariance ``Sigma_0`` (before
  ``eps``: its conditioning is what the Pre-SVD layer controls, while ``eps`` caps
  ``kappa(Sigma_0 + eps I)`` at ``(lambda_max + eps) / eps``),
  ``(groups, n, n)`` float32, as ``("intermediates", "covariance")``: apply with
  ``mutable=["batch_stats", "intermediates"]`` and pass it to
  ``jaxvision.ops.condition_number`` to monitor eq. (1).

  Attributes:
    use_running_average: evaluate with the running statistics (no update); may be
      overridden at call time (as ``flax.linen.BatchNorm``).
    groups: number of channel groups, each whitened separately; must divide ``C``.
    eps: added to the covariance diagonal before the inverse square root (``1e-2``).
    momentum: EMA decay of the running mean and whitening matrix (``0.9``).
    method: ``inv_sqrtm`` method, one of ``jaxvision.ops.SQRTM_METHODS``.
    num_iters: Newton-Schulz iterations (``method="newton_schulz"``).
    use_scale, use_bias: learn the per-channel affine (scale ``U(0, 1)``, bias ``0``).
    scale_init, bias_init: their initialisers.
    dtype: output dtype; ``None`` keeps the input's. Statistics and whitening are always
      computed in float32 (or float64 for float64 input).
    param_dtype: dtype of the affine parameters.
  """
  use_running_average: bool | None = None
  groups: int = 1
  eps: float = 1e-2
  momentum: float = 0.9
  method: str = "eigh"
  num_iters: int = 5
  use_scale: bool = True
  use_bias: bool = True
  scale_init: Any = _uniform_01
  bias_init: Any = nn.initializers.zeros
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, use_running_average: bool | None = None) -> jax.Array:
    """Whitens ``x``.

    Args:
      x: float ``(..., C)`` (e.g. NHWC ``(B, H, W, C)`` or ``(B, C)``); every axis but the
        last is a sample axis.
      use_running_average: overrides the attribute; ``False`` uses batch statistics and,
        unless initialising, updates ``batch_stats`` (apply with ``mutable=["batch_stats"]``).

    Returns:
      ``(..., C)`` in ``dtype`` (the input's by default).
    """
    use_running_average = nn.merge_param("use_running_average", self.use_running_average,
                                         use_running_average)
    x = jnp.asarray(x)
    if x.ndim < 2:
      raise ValueError("DecorrelatedBatchNorm: `x` must have shape (..., C) with at least one "
                       f"sample axis; found shape {x.shape}.")
    if not jnp.issubdtype(x.dtype, jnp.floating):
      raise TypeError(f"DecorrelatedBatchNorm: `x` must be floating; found {x.dtype}.")
    if self.method not in SQRTM_METHODS:
      raise ValueError(f"DecorrelatedBatchNorm: `method` must be one of {SQRTM_METHODS}; "
                       f"found {self.method!r}.")
    channels = x.shape[-1]
    groups = self.groups
    if not isinstance(groups, (int, np.integer)) or groups < 1 or channels % groups:
      raise ValueError(f"DecorrelatedBatchNorm: `groups` must be a positive int dividing the "
                       f"{channels} channels of `x`; found groups={groups!r}.")
    if not self.eps >= 0.0:
      raise ValueError(f"DecorrelatedBatchNorm: `eps` must be >= 0; found {self.eps}.")
    groups = int(groups)
    n = channels // groups
    out_dtype = self.dtype or x.dtype
    compute = jnp.promote_types(x.dtype, jnp.float32)

    ra_mean = self.variable("batch_stats", "mean", jnp.zeros, (channels,), compute)
    ra_white = self.variable("batch_stats", "whitening",
                             lambda: jnp.broadcast_to(jnp.eye(n, dtype=compute),
                                                      (groups, n, n)))

    xs = x.reshape(-1, groups, n).astype(compute)                    # (N, G, n)
    if use_running_average:
      mean = ra_mean.value.astype(compute).reshape(groups, n)
      white = ra_white.value.astype(compute)
    else:
      xg = jnp.swapaxes(xs, 0, 1)                                    # (G, N, n)
      mean = jnp.mean(xg, axis=1)                                    # (G, n)
      batch_cov = covariance(xg)                                     # eq. (2)
      cov = batch_cov + self.eps * jnp.eye(n, dtype=compute)         # + eps I (the code)
      white = inv_sqrtm(cov, method=self.method, num_iters=self.num_iters)  # eqs. (3)-(4)
      if not self.is_initializing():
        self.sow("intermediates", "covariance", batch_cov)
        m = self.momentum
        ra_mean.value = m * ra_mean.value + (1.0 - m) * lax.stop_gradient(mean.reshape(-1))
        ra_white.value = m * ra_white.value + (1.0 - m) * lax.stop_gradient(white)

    # x_hat = S (x - mu) per sample: x_hat[s, g, i] = sum_j S[g, i, j] (x - mu)[s, g, j].
    y = jnp.einsum("gij,sgj->sgi", white, xs - mean, precision=_HIGHEST).reshape(x.shape)
    if self.use_scale:
      y = y * self.param("scale", self.scale_init, (channels,), self.param_dtype)
    if self.use_bias:
      y = y + self.param("bias", self.bias_init, (channels,), self.param_dtype)
    return y.astype(out_dtype)
