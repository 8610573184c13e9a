"""Depthwise 2-D convolution (``ops.depthwise_conv2d``): both methods against the grouped
``lax.conv_general_dilated`` (the oracle), gradients, jit/vmap and the errors. float64 checks
run inside ``jax.enable_x64(True)``."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.test_util import check_grads

from jaxvision import ops

x64 = functools.partial(jax.enable_x64, True)
METHODS = ("shifted", "conv")


def _draw(shape, seed, dtype=np.float64):
  return np.random.default_rng(seed).normal(size=shape).astype(dtype)


def _oracle(x, kernel, bias, strides, pads):
  """The grouped conv, ``kernel`` (kH, kW, 1, C), explicit ((top, bottom), (left, right))."""
  y = lax.conv_general_dilated(x, kernel, strides, pads,
                               dimension_numbers=("NHWC", "HWIO", "NHWC"),
                               feature_group_count=x.shape[-1],
                               precision=lax.Precision.HIGHEST)
  return y if bias is None else y + bias


# (kernel (kH, kW), strides, padding as passed, padding as explicit pads)
CASES = [
    ((3, 3), 1, None, ((1, 1), (1, 1))),
    ((3, 3), 1, 0, ((0, 0), (0, 0))),
    ((1, 1), 1, None, ((0, 0), (0, 0))),
    ((5, 5), 1, 2, ((2, 2), (2, 2))),
    ((3, 5), 1, (1, 2), ((1, 1), (2, 2))),
    ((4, 4), 2, 1, ((1, 1), (1, 1))),
    ((3, 3), (2, 1), ((0, 2), (1, 0)), ((0, 2), (1, 0))),
    ((2, 3), 3, ((1, 1), (0, 0)), ((1, 1), (0, 0))),
    ((7, 7), 1, 3, ((3, 3), (3, 3))),
]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("use_bias", [False, True])
@pytest.mark.parametrize("ksize,strides,padding,pads", CASES)
def test_matches_grouped_conv_float64(method, use_bias, ksize, strides, padding, pads):
  with x64():
    x = _draw((2, 9, 8, 5), 0)
    kernel = _draw(ksize + (1, 5), 1)
    bias = _draw((5,), 2) if use_bias else None
    s = (strides, strides) if isinstance(strides, int) else strides
    want = _oracle(x, kernel, bias, s, pads)
    got = ops.depthwise_conv2d(x, kernel, bias, strides=strides, padding=padding, method=method)
    assert got.dtype == jnp.float64 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    # The (kH, kW, C) kernel layout is the same conv.
    np.testing.assert_allclose(
        ops.depthwise_conv2d(x, kernel[:, :, 0], bias, strides=strides, padding=padding,
                             method=method), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("padding", ["SAME", "VALID"])
@pytest.mark.parametrize("strides", [1, 2])
def test_string_paddings_are_lax_s(padding, strides):
  with x64():
    x, kernel = _draw((1, 7, 6, 3), 0), _draw((4, 3, 1, 3), 1)
    want = lax.conv_general_dilated(x, kernel, (strides, strides), padding,
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                    feature_group_count=3)
    for method in METHODS:
      np.testing.assert_allclose(ops.depthwise_conv2d(x, kernel, strides=strides,
                                                      padding=padding, method=method),
                                 want, rtol=1e-12, atol=1e-12)


def test_float32_dtypes_and_auto():
  x = _draw((1, 6, 7, 4), 0, np.float32)
  kernel, bias = _draw((3, 3, 1, 4), 1, np.float32), _draw((4,), 2, np.float32)
  want = _oracle(x, kernel, bias, (1, 1), ((1, 1), (1, 1)))
  for method in METHODS + ("auto",):
    got = ops.depthwise_conv2d(x, kernel, bias, method=method)
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  # bfloat16 inputs give bfloat16 (the shifted sum accumulated in float32).
  got = ops.depthwise_conv2d(x.astype(jnp.bfloat16), kernel.astype(jnp.bfloat16),
                             method="shifted")
  assert got.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(got, np.float32),
                             _oracle(x, kernel, None, (1, 1), ((1, 1), (1, 1))),
                             rtol=0.05, atol=0.1)
  # The result type follows the inputs: a float64 kernel under x64 promotes.
  with x64():
    assert ops.depthwise_conv2d(np.asarray(x), np.asarray(kernel, np.float64)).dtype == (
        jnp.float64)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("strides", [1, 2])
def test_gradients(method, strides):
  with x64():
    x, kernel, bias = _draw((1, 5, 4, 2), 0), _draw((3, 3, 1, 2), 1), _draw((2,), 2)
    f = jax.jit(functools.partial(ops.depthwise_conv2d, strides=strides,
                                  padding=((1, 0), (1, 1)), method=method))
    check_grads(f, (x, kernel, bias), order=1, modes=("fwd", "rev"))
    # The two methods' gradients agree.
    loss = lambda m: jax.jit(jax.grad(lambda *a: jnp.sum(jnp.sin(ops.depthwise_conv2d(
        *a, strides=strides, padding=((1, 0), (1, 1)), method=m))), argnums=(0, 1, 2)))
    gs, gc = loss("shifted")(x, kernel, bias), loss("conv")(x, kernel, bias)
    for a, b in zip(gs, gc):
      np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_jit_and_vmap(method):
  x = _draw((3, 2, 6, 5, 4), 0, np.float32)           # vmap over the leading axis
  kernel = _draw((3, 3, 1, 4), 1, np.float32)
  f = jax.jit(functools.partial(ops.depthwise_conv2d, method=method))
  want = np.stack([_oracle(xi, kernel, None, (1, 1), ((1, 1), (1, 1))) for xi in x])
  np.testing.assert_allclose(jax.vmap(f, in_axes=(0, None))(x, kernel), want, rtol=1e-5,
                             atol=1e-5)
  # A batch of kernels too (one per image).
  kernels = _draw((3, 3, 3, 1, 4), 2, np.float32)
  want = np.stack([_oracle(xi, ki, None, (1, 1), ((1, 1), (1, 1))) for xi, ki in zip(x, kernels)])
  np.testing.assert_allclose(jax.vmap(f)(x, kernels), want, rtol=1e-5, atol=1e-5)


def test_errors():
  x, kernel = np.zeros((1, 5, 5, 3), np.float32), np.zeros((3, 3, 1, 3), np.float32)
  f = ops.depthwise_conv2d
  with pytest.raises(ValueError, match=r"`method` must be one of .*found 'fft'"):
    f(x, kernel, method="fft")
  with pytest.raises(ValueError, match=r"`x` must be \(N, H, W, C\).*found shape \(5, 5, 3\)"):
    f(x[0], kernel)
  with pytest.raises(ValueError, match=r"`kernel` must be \(kH, kW, 1, C\).*C = 3.*\(3, 3, 1, 4\)"):
    f(x, np.zeros((3, 3, 1, 4), np.float32))
  with pytest.raises(ValueError, match=r"`kernel` must be.*found shape \(3, 3, 3, 3\)"):
    f(x, np.zeros((3, 3, 3, 3), np.float32))
  with pytest.raises(ValueError, match=r"`bias` must be \(C,\) = \(3,\); found shape \(1, 3\)"):
    f(x, kernel, np.zeros((1, 3), np.float32))
  with pytest.raises(TypeError, match=r"`x` must be floating; found dtype int32"):
    f(x.astype(np.int32), kernel)
  with pytest.raises(TypeError, match=r"`kernel` must be floating; found dtype int32"):
    f(x, kernel.astype(np.int32))
  with pytest.raises(ValueError, match=r"`strides` must be an int >= 1.*found 0"):
    f(x, kernel, strides=0)
  with pytest.raises(ValueError, match=r"`strides` must be.*found \(1, 1, 1\)"):
    f(x, kernel, strides=(1, 1, 1))
  for bad in (-1, (1, -1), ((1, 1), (1, -2)), "FULL", ((1, 1, 1), (1, 1)), 1.5):
    with pytest.raises(ValueError, match=r"`padding` must be .*found"):
      f(x, kernel, padding=bad)
  with pytest.raises(ValueError, match=r"output would be empty"):
    f(x, np.zeros((7, 7, 1, 3), np.float32), padding=0)
