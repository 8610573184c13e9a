"""Zhang et al. (2016) colorization network (issue 6; spec vibrant-colorization Sec. 3, 6.5).

Parameter counts by ``jax.eval_shape`` (no allocation); numerics on a 1/16-width net (4..32
channels) and 16x16 / 32x32 inputs, against numpy transcriptions of PyTorch's
``ConvTranspose2d(k=4, s=2, p=1)`` and ``Upsample(scale_factor=4, mode="bilinear")``.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxvision.models import ZhangColorization, create_model, list_models

TINY = 1 / 16  # channels 4, 8, 16, 32, 32, 32, 32, 16


def _count(tree):
  return sum(x.size for x in jax.tree.leaves(tree))


def _abstract(model, shape=(1, 128, 128, 1)):
  return jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros(shape)))


def _init(model, x):
  with jax.threefry_partitionable(False):  # the classic stream compiles faster on CPU
    return jax.jit(model.init)(jax.random.PRNGKey(0), x)


def _lightness(shape, seed=0):
  return jax.random.uniform(jax.random.PRNGKey(seed), shape, minval=0.0, maxval=100.0)


def _expected_count(width_multiplier, head="regression"):
  """The release's layer set: biased convs, BN (scale + bias) after blocks 1-7 only, the
  313-bin 1x1 conv biased and the 313 -> 2 ``class8_ab`` unbiased."""
  c1, c2, c3, c4, *_, c8 = ZhangColorization(width_multiplier=width_multiplier).channels()
  layers = [(1, c1, 3), (c1, c1, 3), (c1, c2, 3), (c2, c2, 3), (c2, c3, 3), (c3, c3, 3),
            (c3, c3, 3), (c3, c4, 3)] + [(c4, c4, 3)] * 11 + [
                (c4, c8, 4), (c8, c8, 3), (c8, c8, 3), (c8, 313, 1)]
  convs = sum(i * o * k * k + o for i, o, k in layers)
  bn = 2 * (c1 + c2 + c3 + 4 * c4)
  return convs + bn + (313 * 2 if head == "regression" else 0)


@pytest.mark.parametrize("name,kwargs,count", [
    ("eccv16_half", {}, 8_083_147),  # the spec's (and the paper's) half-width count
    ("zhang_colorization", dict(width_multiplier=0.5), 8_083_147),
    ("zhang_colorization", {}, 32_236_011),
    ("eccv16", {}, 32_236_011),
    ("zhang_colorization", dict(head="classification"), 32_235_385),
    ("zhang_colorization", dict(width_multiplier=0.5, head="classification"), 8_082_521),
])
def test_parameter_counts(name, kwargs, count):
  model = create_model(name, **kwargs)
  variables = _abstract(model)
  assert _count(variables["params"]) == count
  assert count == _expected_count(model.width_multiplier, model.head)
  # BatchNorm statistics: mean + var of blocks 1-7 (not parameters).
  c = model.channels()
  assert _count(variables["batch_stats"]) == 2 * sum(c[:7])
  assert set(variables["batch_stats"]) == {f"bn{b}" for b in range(1, 8)}
  p = variables["params"]
  assert "bias" not in p.get("class8_ab", {}) and all("bias" in p[k] for k in p if "conv" in k)


def test_channels_per_width():
  assert ZhangColorization().channels() == (64, 128, 256, 512, 512, 512, 512, 256)
  assert ZhangColorization(width_multiplier=0.5).channels() == (32, 64, 128, 256, 256, 256,
                                                                256, 128)
  assert ZhangColorization(width_multiplier=TINY).channels() == (4, 8, 16, 32, 32, 32, 32, 16)


@pytest.mark.parametrize("width", [1.0, 0.5])
@pytest.mark.parametrize("head,channels", [("regression", 2), ("classification", 313)])
@pytest.mark.parametrize("upsample", [False, True])
def test_output_shapes(width, head, channels, upsample):
  model = ZhangColorization(width_multiplier=width, head=head, upsample=upsample)
  x = jax.ShapeDtypeStruct((2, 128, 96, 1), jnp.float32)
  variables = _abstract(model, (1, 128, 96, 1))
  out = jax.eval_shape(functools.partial(model.apply, train=False), variables, x)
  # 1/4 resolution (Zhang): /2, /4, /8 by the strided convs, x2 by conv8_1.
  assert out.shape == ((2, 128, 96, channels) if upsample else (2, 32, 24, channels))
  assert out.dtype == jnp.float32


def test_registered_names_and_block_resolutions():
  assert {"zhang_colorization", "eccv16", "eccv16_half"} <= set(list_models())
  half = create_model("eccv16_half")
  assert half.upsample and half.width_multiplier == 0.5 and half.head == "regression"
  assert create_model("eccv16").upsample and not create_model("zhang_colorization").upsample
  variables = _abstract(half)
  out, state = jax.eval_shape(functools.partial(
      half.apply, capture_intermediates=True, mutable=["intermediates"]), variables,
      jax.ShapeDtypeStruct((2, 128, 128, 1), jnp.float32))
  assert out.shape == (2, 128, 128, 2)  # the paper: 128 -> 128 (/8, x2, x4)
  inter = state["intermediates"]
  sizes = {k: inter[k]["__call__"][0].shape[1:] for k in inter if k != "__call__"}
  assert sizes["bn1"] == (64, 64, 32) and sizes["bn2"] == (32, 32, 64)
  assert all(sizes[f"bn{b}"] == (16, 16, c) for b, c in zip(range(3, 8), (128,) + (256,) * 4))
  assert sizes["conv8_1"] == sizes["conv8_3"] == (32, 32, 128)
  assert sizes["conv8_313"] == (32, 32, 313) and sizes["class8_ab"] == (32, 32, 2)


@pytest.fixture(scope="module")
def tiny():
  """A 1/16-width upsampling net, its variables, and one eval pass with intermediates."""
  model = ZhangColorization(width_multiplier=TINY, upsample=True)
  x = _lightness((2, 16, 16, 1))
  variables = _init(model, x)
  out, state = jax.jit(functools.partial(model.apply, capture_intermediates=True,
                                         mutable=["intermediates"]))(variables, x)
  return model, x, variables, out, state["intermediates"]


def _upsample4_torch(x):
  """PyTorch ``Upsample(scale_factor=4, mode="bilinear", align_corners=False)``, NHWC numpy."""
  def axis_weights(n_in):
    src = np.maximum((np.arange(4 * n_in) + 0.5) / 4 - 0.5, 0.0)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = src - lo
    m = np.zeros((4 * n_in, n_in))
    np.add.at(m, (np.arange(4 * n_in), lo), 1 - frac)
    np.add.at(m, (np.arange(4 * n_in), hi), frac)
    return m
  mh, mw = axis_weights(x.shape[1]), axis_weights(x.shape[2])
  return np.einsum("ih,jw,bhwc->bijc", mh, mw, x)


def test_softmax_head_is_an_expectation_times_110_upsampled(tiny):
  model, x, variables, out, inter = tiny
  assert out.shape == (2, 16, 16, 2) and out.dtype == jnp.float32
  logits = inter["conv8_313"]["__call__"][0]
  assert logits.shape == (2, 4, 4, 313)
  probs = jax.nn.softmax(logits, axis=-1)
  np.testing.assert_allclose(jnp.sum(probs, -1), 1.0, rtol=1e-6)
  kernel = 110.0 * np.asarray(variables["params"]["class8_ab"]["kernel"][0, 0])  # (313, 2)
  low = np.asarray(probs) @ kernel                                               # (2, 4, 4, 2)
  np.testing.assert_allclose(_upsample4_torch(low), out, rtol=1e-5, atol=1e-5)
  # The ab output is a convex combination of the rows of 110 * kernel.
  assert np.all(out <= kernel.max(0) + 1e-4) and np.all(out >= kernel.min(0) - 1e-4)


def test_conv8_1_is_pytorch_conv_transpose_k4_s2_p1(tiny):
  _, _, variables, _, inter = tiny
  inp = np.asarray(inter["bn7"]["__call__"][0], np.float64)             # (2, 2, 2, 32)
  got = np.asarray(inter["conv8_1"]["__call__"][0])                     # pre-ReLU
  kernel = np.asarray(variables["params"]["conv8_1"]["kernel"], np.float64)  # (4, 4, in, out)
  bias = np.asarray(variables["params"]["conv8_1"]["bias"], np.float64)
  # PyTorch scatters: out[2 i - 1 + k] += x[i] W[k], with W the spatially flipped kernel.
  w = kernel[::-1, ::-1]
  b, h, wd, _ = inp.shape
  full = np.zeros((b, 2 * h + 2, 2 * wd + 2, w.shape[-1]))
  for i in range(h):
    for j in range(wd):
      full[:, 2 * i:2 * i + 4, 2 * j:2 * j + 4] += np.einsum("bc,klco->bklo", inp[:, i, j], w)
  want = full[:, 1:1 + 2 * h, 1:1 + 2 * wd] + bias  # crop PyTorch's padding 1
  assert got.shape == (2, 4, 4, 16)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_input_normalisation_initialisation_and_batch_independence(tiny):
  model, x, variables, out, inter = tiny
  pre = (x - 50.0) / 100.0
  other = pre.at[1].set(pre[1, ::-1])  # a different second image
  taps = ("conv1_1", "bn1", "bn7")
  apply = functools.partial(model.clone(normalize_input=False).apply, mutable=["intermediates"],
                            capture_intermediates=lambda mdl, _: mdl.name in taps)
  got, state = jax.jit(apply)(variables, other)
  got_inter = state["intermediates"]
  # (L - 50) / 100 inside: conv1_1 sees the same normalised input.
  np.testing.assert_allclose(got_inter["conv1_1"]["__call__"][0][0],
                             inter["conv1_1"]["__call__"][0][0], rtol=1e-6, atol=1e-6)
  # In evaluation a sample's activations do not depend on the rest of the batch.
  for tap in taps:
    np.testing.assert_allclose(got_inter[tap]["__call__"][0][0], inter[tap]["__call__"][0][0],
                               rtol=1e-5, atol=1e-6, err_msg=tap)
  # (The early layers do see the different image; at PyTorch's init the signal fades with
  # depth in evaluation mode, so deep layers barely change.)
  for tap in ("conv1_1", "bn1"):
    assert not np.allclose(got_inter[tap]["__call__"][0][1], inter[tap]["__call__"][0][1],
                           rtol=1e-3, atol=0), tap
  np.testing.assert_allclose(got[0], out[0], rtol=1e-5, atol=1e-6)
  p = variables["params"]
  # PyTorch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)); transposed conv fan_in = out * 16.
  assert 0.25 < np.abs(p["conv1_1"]["kernel"]).max() <= 1 / 3 + 1e-7
  bound8 = 1 / np.sqrt(16 * 16)
  assert bound8 * 0.9 < np.abs(p["conv8_1"]["kernel"]).max() <= bound8 + 1e-7


def test_batchnorm_uses_batch_statistics_in_training(tiny):
  model, x, variables, out, _ = tiny
  train_out, state = jax.jit(functools.partial(model.apply, train=True,
                                               mutable=["batch_stats"]))(variables, x)
  assert train_out.shape == (2, 16, 16, 2) and train_out.dtype == jnp.float32
  assert set(state["batch_stats"]) == {f"bn{b}" for b in range(1, 8)}
  assert not np.allclose(state["batch_stats"]["bn1"]["mean"], 0.0)
  assert not np.allclose(train_out, out, atol=1e-3)  # batch statistics vs running averages


@pytest.mark.parametrize("output", ["softmax", "tanh"])
def test_bfloat16_compute_returns_float32(tiny, output):
  model, x, variables, out, inter = tiny
  params = dict(variables["params"])
  if output == "tanh":  # a 1x1 conv16 -> 2 on conv8_3 instead of the 313-bin head
    abstract = _abstract(model.clone(regression_output="tanh"), (1, 16, 16, 1))["params"]
    assert "conv8_313" not in abstract and set(abstract["conv8_ab"]) == {"kernel", "bias"}
    params["conv8_ab"] = {"kernel": 0.3 * jnp.ones((1, 1, 16, 2)), "bias": jnp.zeros(2)}
  variables = {**variables, "params": params}
  bf16 = model.clone(regression_output=output, dtype=jnp.bfloat16, upsample=False)
  got = jax.jit(bf16.apply)(variables, x)
  assert got.dtype == jnp.float32 and np.all(np.isfinite(got))
  assert got.shape == (2, 4, 4, 2)
  if output == "softmax":
    ref = jax.nn.softmax(inter["conv8_313"]["__call__"][0]) @ (
        110.0 * variables["params"]["class8_ab"]["kernel"][0, 0])
  else:
    conv8_3 = inter["conv8_3"]["__call__"][0]  # pre-ReLU
    ref = 110.0 * jnp.tanh(jax.nn.relu(conv8_3) @ params["conv8_ab"]["kernel"][0, 0])
    assert np.all(np.abs(got) <= 110.0)
  scale = float(np.abs(ref).max())
  np.testing.assert_allclose(got, ref, atol=0.05 * scale + 1e-3)


@pytest.mark.parametrize("shape,match", [
    ((16, 16, 1), r"\(batch, height, width, 1\); found shape \(16, 16, 1\)"),
    ((1, 16, 16, 3), r"\(batch, height, width, 1\); found shape \(1, 16, 16, 3\)"),
    ((1, 20, 16, 1), r"multiples of 8.*20x16"),
])
def test_bad_input_shapes_raise(shape, match):
  model = ZhangColorization(width_multiplier=TINY)
  with pytest.raises(ValueError, match=match):
    jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros(shape)))


def test_bad_configuration_raises():
  x = jnp.zeros((1, 16, 16, 1))
  for kwargs, match in ((dict(head="regress"), "`head` must be one of"),
                        (dict(regression_output="sigmoid"), "`regression_output` must be"),
                        (dict(width_multiplier=0.0), "`width_multiplier` must be > 0")):
    with pytest.raises(ValueError, match=match):
      jax.eval_shape(lambda: ZhangColorization(**kwargs).init(jax.random.PRNGKey(0), x))
  with pytest.raises(ValueError, match="float L values"):
    jax.eval_shape(lambda: ZhangColorization(width_multiplier=TINY).init(
        jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 1), jnp.uint8)))
  with pytest.raises(TypeError, match="eccv16_half"):
    create_model("eccv16_half", widht_multiplier=0.5)
