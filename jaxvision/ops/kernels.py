"""Layout helpers for weight kernels and symmetric matrices (pure ``jnp``, no Flax).

* ``kernel_to_matrix`` / ``matrix_to_kernel`` -- a Flax Dense or conv kernel seen as the
  matrix PyTorch's reference code decomposes: ``(out, in * prod(spatial))``, the
  ``weight.reshape(out, -1)`` of the OIHW layout. Spectral norm (eq. 11), the orthogonality
  loss (eq. 12) and the nearest orthogonal gradient (eqs. 14-17) of Song, Sebe & Wang
  (ECCV 2022) act on this view.
* ``transpose_filter`` -- the filter of the adjoint convolution (swap in/out channels, flip
  every spatial axis); ``W - transpose_filter(W)`` is a skew-symmetric convolution (SOC,
  Singla & Feizi 2021; the paper's OW for convolutions, eq. 13).
* ``triu_vector`` -- the upper triangle of a symmetric matrix as a vector, the output of a
  global covariance pooling (GCP, iSQRT-COV) head.
"""

from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["kernel_to_matrix", "matrix_to_kernel", "transpose_filter", "triu_vector"]


def kernel_to_matrix(kernel: jax.Array) -> jax.Array:
  """A Flax kernel as PyTorch's ``(out, in * prod(spatial))`` weight matrix.

  For a 2-D conv kernel this is ``kernel.transpose(3, 2, 0, 1).reshape(out, -1)``: the
  Flax HWIO kernel in PyTorch's OIHW layout, flattened per output channel (column index
  ``i * kh * kw + a * kw + b``). Any number of spatial axes is accepted.

  Args:
    kernel: ``(in, out)`` Dense kernel or ``(*spatial, in, out)`` conv kernel (Flax
      layout, e.g. ``(kh, kw, in, out)``); any dtype.

  Returns:
    ``(out, in)`` for a Dense kernel (PyTorch's ``Linear.weight``), or
    ``(out, in * prod(spatial))`` for a conv kernel; the dtype of ``kernel``.
  """
  kernel = jnp.asarray(kernel)
  if kernel.ndim < 2:
    raise ValueError("kernel_to_matrix: `kernel` must be a Dense (in, out) or conv "
                     f"(*spatial, in, out) kernel with ndim >= 2; found shape {kernel.shape}.")
  n = kernel.ndim
  if n == 2:
    return kernel.T
  oi_spatial = jnp.transpose(kernel, (n - 1, n - 2, *range(n - 2)))
  return oi_spatial.reshape(kernel.shape[-1], -1)


def matrix_to_kernel(matrix: jax.Array, shape: Sequence[int]) -> jax.Array:
  """Inverse of :func:`kernel_to_matrix`: the kernel of shape ``shape`` with this matrix view.

  Args:
    matrix: ``(out, in * prod(spatial))`` (``(out, in)`` for a Dense kernel).
    shape: the kernel's shape, ``(in, out)`` or ``(*spatial, in, out)``.

  Returns:
    ``shape``, the dtype of ``matrix``.
  """
  matrix = jnp.asarray(matrix)
  shape = tuple(int(s) for s in shape)
  if len(shape) < 2:
    raise ValueError("matrix_to_kernel: `shape` must be a Dense (in, out) or conv "
                     f"(*spatial, in, out) kernel shape; found {shape}.")
  *spatial, cin, cout = shape
  want = (cout, cin * math.prod(spatial))
  if matrix.shape != want:
    raise ValueError(f"matrix_to_kernel: `matrix` must have shape (out, in * prod(spatial)) = "
                     f"{want} for a kernel of shape {shape}; found {matrix.shape}.")
  n = len(shape)
  if n == 2:
    return matrix.T
  oi_spatial = matrix.reshape(cout, cin, *spatial)
  return jnp.transpose(oi_spatial, (*range(2, n), 1, 0))


def transpose_filter(kernel: jax.Array) -> jax.Array:
  """The filter of the adjoint convolution: swap in/out channels and flip every spatial axis.

  For a stride-1 convolution (cross-correlation, as ``lax.conv_general_dilated``) with an
  odd kernel and symmetric ``'same'`` padding (circular or zeros), ``conv(., transpose_filter(W))``
  is the adjoint (transpose) of ``conv(., W)``:
  ``<conv(x, W), y> = <x, conv(y, transpose_filter(W))>``. So ``W - transpose_filter(W)``
  is a skew-symmetric operator (Singla & Feizi 2021, SOC).

  Args:
    kernel: ``(*spatial, in, out)`` (Flax layout, e.g. ``(kh, kw, c, c)``).

  Returns:
    ``(*spatial, out, in)``, the dtype of ``kernel``.
  """
  kernel = jnp.asarray(kernel)
  if kernel.ndim < 3:
    raise ValueError("transpose_filter: `kernel` must be a conv kernel (*spatial, in, out) "
                     f"with ndim >= 3; found shape {kernel.shape}.")
  spatial = tuple(range(kernel.ndim - 2))
  return jnp.swapaxes(jnp.flip(kernel, axis=spatial), -1, -2)


def triu_vector(P: jax.Array) -> jax.Array:
  """Upper triangle (diagonal included) of ``(..., n, n)`` matrices, row-major.

  The entries ``P[i, j]``, ``i <= j``, in the order ``(0,0), (0,1), .., (0,n-1), (1,1), ..``
  (``np.triu_indices(n)``): the ``n (n + 1) / 2`` free entries of a symmetric matrix, the
  output of the iSQRT-COV pooling head.

  Args:
    P: ``(..., n, n)``.

  Returns:
    ``(..., n (n + 1) / 2)``, the dtype of ``P``.
  """
  P = jnp.asarray(P)
  if P.ndim < 2 or P.shape[-1] != P.shape[-2]:
    raise ValueError("triu_vector: `P` must have shape (..., n, n) (square in its last two "
                     f"axes); found shape {P.shape}.")
  rows, cols = np.triu_indices(P.shape[-1])
  return P[..., rows, cols]
