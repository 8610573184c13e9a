"""Kernel layout helpers (issue 3): PyTorch matrix view, adjoint filter, triu vector."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jaxvision import ops


def _conv(x, w, padding):
  """Stride-1 NHWC/HWIO 'same' convolution with circular or zero padding."""
  ph, pw = w.shape[0] // 2, w.shape[1] // 2
  if padding == "circular":
    x = jnp.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)), mode="wrap")
    pad = ((0, 0), (0, 0))
  else:
    pad = ((ph, ph), (pw, pw))
  return lax.conv_general_dilated(x, w, (1, 1), pad, dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                  precision=lax.Precision.HIGHEST)


def test_kernel_to_matrix_is_pytorch_oihw_reshape_and_round_trips():
  rng = np.random.default_rng(0)
  k = rng.normal(size=(3, 2, 4, 5)).astype(np.float32)      # (kh, kw, in, out)
  m = np.asarray(ops.kernel_to_matrix(k))
  assert m.shape == (5, 4 * 3 * 2)
  # PyTorch: weight (out, in, kh, kw) reshaped to (out, -1), element by element.
  for o in range(5):
    for i in range(4):
      for a in range(3):
        for b in range(2):
          assert m[o, i * 6 + a * 2 + b] == k[a, b, i, o]
  np.testing.assert_array_equal(ops.matrix_to_kernel(m, k.shape), k)
  # Dense (in, out) -> (out, in); 1-D and 3-D convs generalise the same OI-spatial layout.
  d = rng.normal(size=(4, 7)).astype(np.float32)
  np.testing.assert_array_equal(ops.kernel_to_matrix(d), d.T)
  np.testing.assert_array_equal(ops.matrix_to_kernel(d.T, d.shape), d)
  for shape in [(3, 4, 5), (2, 3, 2, 4, 5)]:
    k = rng.normal(size=shape).astype(np.float32)
    n = len(shape)
    torch_view = k.transpose(n - 1, n - 2, *range(n - 2)).reshape(shape[-1], -1)
    np.testing.assert_array_equal(ops.kernel_to_matrix(k), torch_view)
    np.testing.assert_array_equal(ops.matrix_to_kernel(torch_view, shape), k)
  with pytest.raises(ValueError, match="`kernel`.*found shape \\(3,\\)"):
    ops.kernel_to_matrix(np.zeros(3))
  with pytest.raises(ValueError, match="`matrix`.*\\(5, 24\\).*found \\(5, 23\\)"):
    ops.matrix_to_kernel(np.zeros((5, 23)), (3, 2, 4, 5))


def test_kernel_to_matrix_is_the_linear_map_on_patches():
  """conv(x, K) at each pixel is M @ patch, with patches in PyTorch's unfold (c, kh, kw) order."""
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(size=(2, 5, 5, 3)), jnp.float32)
  k = jnp.asarray(rng.normal(size=(3, 3, 3, 4)), jnp.float32)
  y = _conv(x, k, "zeros")
  patches = lax.conv_general_dilated_patches(x, (3, 3), (1, 1), "SAME",
                                             dimension_numbers=("NHWC", "HWIO", "NHWC"))
  z = jnp.einsum("nhwp,op->nhwo", patches, ops.kernel_to_matrix(k),
                 precision=lax.Precision.HIGHEST)
  np.testing.assert_allclose(z, y, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("padding", ["circular", "zeros"])
def test_transpose_filter_is_the_adjoint_convolution(padding):
  with jax.enable_x64(True):
    rng = np.random.default_rng(2)
    w = jnp.asarray(rng.normal(size=(3, 5, 2, 4)))          # (kh, kw, in=2, out=4), odd
    x = jnp.asarray(rng.normal(size=(2, 6, 7, 2)))
    y = jnp.asarray(rng.normal(size=(2, 6, 7, 4)))
    wt = ops.transpose_filter(w)
    assert wt.shape == (3, 5, 4, 2)
    lhs = jnp.vdot(_conv(x, w, padding), y)
    rhs = jnp.vdot(x, _conv(y, wt, padding))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-12)
    np.testing.assert_array_equal(ops.transpose_filter(wt), w)   # an involution
    # W - W^T is skew: <x, conv(x, W - W^T)> = 0 for a square filter.
    sq = jnp.asarray(rng.normal(size=(3, 3, 4, 4)))
    skew = sq - ops.transpose_filter(sq)
    np.testing.assert_allclose(jnp.vdot(y, _conv(y, skew, padding)), 0.0, atol=1e-10)
  with pytest.raises(ValueError, match="`kernel`.*ndim >= 3"):
    ops.transpose_filter(np.zeros((3, 3)))


def test_triu_vector_row_major_upper_triangle():
  p = np.arange(2 * 4 * 4, dtype=np.float32).reshape(2, 4, 4)
  v = np.asarray(jax.jit(ops.triu_vector)(p))
  assert v.shape == (2, 10)
  want = [p[:, i, j] for i in range(4) for j in range(i, 4)]
  np.testing.assert_array_equal(v, np.stack(want, axis=-1))
  with pytest.raises(ValueError, match="`P`.*found shape \\(3, 4\\)"):
    ops.triu_vector(np.zeros((3, 4)))
