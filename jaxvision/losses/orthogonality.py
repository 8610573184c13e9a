"""Soft orthogonality loss on a weight matrix (Song, Sebe & Wang, ECCV 2022, eq. 12)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxvision.ops import kernel_to_matrix

SIDES = ("smaller", "rows", "columns")


def orthogonality_loss(w: jax.Array, *, side: str = "smaller") -> jax.Array:
  """``||W Wᵀ - I||_F`` — the Frobenius norm, not squared (eq. 12, "OL").

  ``W`` is the matrix view of the kernel as in the authors' PyTorch code: a conv
  kernel ``(kh, kw, in, out)`` (Flax HWIO) becomes ``(out, in·kh·kw)``, a Dense
  kernel ``(in, out)`` becomes ``(out, in)``
  (:func:`jaxvision.ops.kernel_to_matrix`).

  Which Gram matrix (a deviation from the literal eq. 12, spec §2 (12)): by default
  the Gram matrix of the *smaller* side, ``||W Wᵀ - I_m||`` if ``m <= n`` else
  ``||Wᵀ W - I_n||`` for ``W`` of shape ``(m, n)``. The Pre-SVD conv1 of the paper is
  ``(64, 3·3·3 = 27)``, of rank <= 27, so ``W Wᵀ = I_64`` is unattainable (the loss is
  >= ``sqrt(64 - 27)`` there) while ``Wᵀ W = I_27`` is; both are 0 exactly when ``W``
  is (semi-)orthogonal whenever that is possible. ``side="rows"`` gives the literal
  ``W Wᵀ`` and ``side="columns"`` ``Wᵀ W``. With the default, a 2-D input gives the
  same value in either orientation.

  The gradient is finite everywhere: at ``W Wᵀ = I`` (a kink of the unsquared norm)
  it is 0.

  Args:
    w: float ``(in, out)`` Dense kernel, a 2-D matrix, or ``(*spatial, in, out)``
      conv kernel.
    side: ``"smaller"`` (default), ``"rows"`` or ``"columns"``.

  Returns:
    A scalar of dtype ``promote(w.dtype, float32)``.
  """
  if side not in SIDES:
    raise ValueError(f"orthogonality_loss: `side` must be one of {SIDES}; found {side!r}.")
  if w.ndim < 2:
    raise ValueError(f"orthogonality_loss: `w` must be a 2-D matrix or a conv kernel "
                     f"(*spatial, in, out); found shape {w.shape}.")
  m = kernel_to_matrix(w.astype(jnp.result_type(w.dtype, jnp.float32)))
  rows = m.shape[0] <= m.shape[1] if side == "smaller" else side == "rows"
  gram = (jnp.matmul(m, m.T, precision=jax.lax.Precision.HIGHEST) if rows else
          jnp.matmul(m.T, m, precision=jax.lax.Precision.HIGHEST))
  err = gram - jnp.eye(gram.shape[0], dtype=gram.dtype)
  sq = jnp.sum(err * err)
  pos = sq > 0
  return jnp.where(pos, jnp.sqrt(jnp.where(pos, sq, 1)), 0)


__all__ = ["orthogonality_loss"]
