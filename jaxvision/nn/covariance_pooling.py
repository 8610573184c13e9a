"""Global covariance pooling (GCP) with a matrix square root: the iSQRT-COV head.

The other SVD meta-layer of Song, Sebe & Wang, "Improving Covariance Conditioning of the
SVD Meta-layer by Orthogonality" (ECCV 2022), Table 5 (Li et al., CVPR 2018, iSQRT-COV).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxvision.ops import SQRTM_METHODS, covariance, sqrtm, triu_vector

__all__ = ["CovariancePooling"]


class CovariancePooling(nn.Module):
  """Per-image covariance of the feature map, its square root, upper triangle as a vector.

  For each image, with the ``N = H W`` positions as the columns of ``X`` (``C x N``):

  * eq. (2): ``P = X J X^T`` (``+ eps I``), ``J = (I - 1 1^T / N) / N``, computed as
    ``(X - mu)(X - mu)^T / N`` by ``jaxvision.ops.covariance`` (``Precision.HIGHEST``);
  * eq. (4): ``Q = P^(1/2)`` by ``jaxvision.ops.sqrtm(method=method, num_iters=num_iters)``:
    by default ``"newton_schulz"`` with 5 iterations and the trace pre-normalisation /
    post-compensation of iSQRT-COV; ``"eigh"`` is the paper's "SVD" rows;
  * the ``C (C + 1) / 2`` upper-triangular entries of ``Q`` (row-major,
    ``jaxvision.ops.triu_vector``), which feed the classifier.

  The optional ``1x1`` reduction conv + BN + ReLU before the head (the paper's Pre-SVD
  layer) belongs to the model. Half-precision features are pooled in float32.
  Unless initialising, the layer sows ``P`` (before ``eps``), ``(B, C, C)`` float32, as
  ``("intermediates", "covariance")`` for ``jaxvision.ops.condition_number``.

  Attributes:
    method: ``sqrtm`` method, one of ``jaxvision.ops.SQRTM_METHODS``.
    num_iters: Newton-Schulz iterations (``method="newton_schulz"``).
    eps: added to the covariance diagonal before the square root (``0``, as iSQRT-COV;
      with ``H W < C`` the covariance is singular and ``method="eigh"`` then has huge
      gradients on its null space, so pass ``eps > 0`` there).
  """
  method: str = "newton_schulz"
  num_iters: int = 5
  eps: float = 0.0

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """Pools ``x``.

    Args:
      x: float ``(B, H, W, C)`` (NHWC), or any ``(B, *spatial, C)``.

    Returns:
      ``(B, C (C + 1) / 2)`` float32 (float64 for float64 input).
    """
    x = jnp.asarray(x)
    if x.ndim < 3:
      raise ValueError("CovariancePooling: `x` must have shape (B, H, W, C) (or "
                       f"(B, *spatial, C)); found shape {x.shape}.")
    if not jnp.issubdtype(x.dtype, jnp.floating):
      raise TypeError(f"CovariancePooling: `x` must be floating; found {x.dtype}.")
    if self.method not in SQRTM_METHODS:
      raise ValueError(f"CovariancePooling: `method` must be one of {SQRTM_METHODS}; "
                       f"found {self.method!r}.")
    if not self.eps >= 0.0:
      raise ValueError(f"CovariancePooling: `eps` must be >= 0; found {self.eps}.")
    compute = jnp.promote_types(x.dtype, jnp.float32)
    b, c = x.shape[0], x.shape[-1]
    feats = x.reshape(b, -1, c).astype(compute)              # (B, N, C)
    cov = covariance(feats)                                  # eq. (2), (B, C, C)
    if not self.is_initializing():
      self.sow("intermediates", "covariance", cov)
    if self.eps:
      cov = cov + self.eps * jnp.eye(c, dtype=compute)
    root = sqrtm(cov, method=self.method, num_iters=self.num_iters)  # eq. (4)
    return triu_vector(root)
