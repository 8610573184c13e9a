"""Spectral-wise MSA, MST FeedForward, non-local attention, SSTA and the BatchNorm block
(issue 7; spec spectral-transformer-ising Sec. 2 "Baseline spectral-wise MSA", "MS-SSF and
SSTA"), against float64 NumPy transcriptions of the formulas."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
import scipy.special

from jaxvision.nn import (SSTA, FeedForward, PooledNonLocal, SecondOrderChannelAttention,
                          SpectralTransformerBlock, SpectralWiseMSA)
from jaxvision.nn.spectral_attention import DepthwiseConv2d, conv2d, torch_uniform


def _count(tree):
  return sum(x.size for x in jax.tree.leaves(tree))


def _x(shape, seed=0, dtype=np.float32):
  return np.random.default_rng(seed).normal(size=shape).astype(dtype)


def _params(model, x, seed=0, dtype=np.float32):
  """Parameters of ``model.init``'s shapes drawn with NumPy (no compile): kernels
  ``N(0, 1/fan_in)``, biases ``N(0, 0.1^2)``, scales / ``rescale`` ``1 + U(-.5, .5)``,
  ``gamma`` 0.7 (non-zero, so every branch is exercised)."""
  shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x))
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    name = path[-1].key
    if name == "kernel":
      return (rng.normal(size=leaf.shape) / np.sqrt(np.prod(leaf.shape[:-1]))).astype(dtype)
    if name in ("scale", "rescale"):
      return (1 + rng.uniform(-0.5, 0.5, size=leaf.shape)).astype(dtype)
    if name == "gamma":
      return np.asarray(0.7, dtype)
    return (0.1 * rng.normal(size=leaf.shape)).astype(dtype)

  return jax.tree_util.tree_map_with_path(draw, shapes["params"])


def _np_gelu(x):
  return 0.5 * x * (1 + scipy.special.erf(x / np.sqrt(2)))


def _np_conv(x, kernel, groups=1, bias=None):
  """'SAME' (zero-padded, stride 1) NHWC conv with an HWIO kernel of ``groups`` groups."""
  kh, kw, cin_g, cout = kernel.shape
  b, h, w, c = x.shape
  xp = np.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
  out = np.zeros((b, h, w, cout))
  og = cout // groups
  for g in range(groups):
    xs = xp[..., g * cin_g:(g + 1) * cin_g]
    for i in range(kh):
      for j in range(kw):
        k = kernel[i, j, :, g * og:(g + 1) * og]
        out[..., g * og:(g + 1) * og] += xs[:, i:i + h, j:j + w] @ k
  return out if bias is None else out + bias


def _np_msa(x, p, heads, d, normalize=True):
  """MST's MS_MSA in float64 NumPy, written from the formulas (spec Sec. 2)."""
  b, h, w, c = x.shape
  t = x.reshape(b, h * w, c)
  q, k, v = (t @ p[n]["kernel"] for n in ("to_q", "to_k", "to_v"))
  split = lambda z: z.reshape(b, h * w, heads, d).transpose(0, 2, 3, 1)   # (b, heads, d, hw)
  qh, kh, vh = split(q), split(k), split(v)
  if normalize:
    qh = qh / np.linalg.norm(qh, axis=-1, keepdims=True)
    kh = kh / np.linalg.norm(kh, axis=-1, keepdims=True)
  logits = np.einsum("bhin,bhjn->bhij", kh, qh) * np.asarray(p["rescale"])[:, None, None]
  attn = scipy.special.softmax(logits, axis=-1)
  out = np.einsum("bhij,bhjn->bhin", attn, vh).transpose(0, 3, 1, 2).reshape(b, h * w, c)
  out = out @ p["proj"]["kernel"] + p["proj"]["bias"]
  pos = _np_conv(v.reshape(b, h, w, c), p["pos_emb_0"]["kernel"], groups=c)
  pos = _np_conv(_np_gelu(pos), p["pos_emb_2"]["kernel"], groups=c)
  return out.reshape(b, h, w, c) + pos


def _f64(tree):
  return jax.tree.map(lambda a: np.asarray(a, np.float64), tree)


# ------------------------------------------------------------------------------ conv2d


class _Conv2d(nn.Module):
  """``conv2d`` under a parent, or (``reference``) the ``nn.Conv`` it replaces when depthwise."""
  kernel: int = 3
  strides: int = 1
  padding: int | None = None
  use_bias: bool = False
  reference: bool = False

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    if not self.reference:
      return conv2d(x, c, self.kernel, "dw", strides=self.strides, groups=c,
                    use_bias=self.use_bias, padding=self.padding)
    pad = self.kernel // 2 if self.padding is None else self.padding
    init = torch_uniform(self.kernel ** 2)
    return nn.Conv(c, (self.kernel, self.kernel), self.strides, padding=((pad, pad), (pad, pad)),
                   feature_group_count=c, use_bias=self.use_bias, kernel_init=init,
                   bias_init=init, name="dw")(x)


@pytest.mark.parametrize("kernel,strides,padding,use_bias",
                         [(3, 1, None, False), (3, 1, None, True), (5, 1, 1, True),
                          (4, 2, 1, False), (1, 1, None, True)])
def test_depthwise_conv2d_is_the_grouped_nn_conv(kernel, strides, padding, use_bias):
  """The depthwise ``conv2d`` (a ``DepthwiseConv2d``) has ``nn.Conv(feature_group_count=C)``'s
  parameter tree, shapes and init values, and its output for the same parameters."""
  x = _x((2, 7, 6, 5))
  new = _Conv2d(kernel, strides, padding, use_bias)
  ref = _Conv2d(kernel, strides, padding, use_bias, reference=True)
  key = jax.random.PRNGKey(3)
  p_new, p_ref = jax.jit(new.init)(key, x), jax.jit(ref.init)(key, x)
  assert (jax.tree.structure(p_new) == jax.tree.structure(p_ref)
          and jax.tree.map(jnp.shape, p_new) == jax.tree.map(jnp.shape, p_ref))
  assert p_new["params"]["dw"]["kernel"].shape == (kernel, kernel, 1, 5)
  jax.tree.map(np.testing.assert_array_equal, p_new, p_ref)
  p = {"params": _params(ref, x)}
  want = ref.apply(p, x)
  np.testing.assert_allclose(new.apply(p, x), want, rtol=1e-5, atol=1e-5)   # "auto"
  for method in ("shifted", "conv"):
    layer = DepthwiseConv2d(kernel, strides, padding=padding, use_bias=use_bias, method=method)
    got = layer.apply({"params": p["params"]["dw"]}, x)
    assert got.shape == want.shape and got.dtype == jnp.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_depthwise_conv2d_module_dtypes_and_errors():
  x = _x((1, 4, 5, 3))
  m = DepthwiseConv2d(3, use_bias=True, dtype=jnp.bfloat16)
  p = m.init(jax.random.PRNGKey(0), x)
  assert p["params"]["kernel"].dtype == jnp.float32 and m.apply(p, x).dtype == jnp.bfloat16
  assert float(jnp.max(jnp.abs(p["params"]["kernel"]))) <= 1 / 3   # U(+-1/sqrt(9))
  with pytest.raises(ValueError, match="DepthwiseConv2d: input must be NHWC"):
    m.init(jax.random.PRNGKey(0), x[0])
  with pytest.raises(ValueError, match="`method` must be one of"):
    DepthwiseConv2d(method="fft").init(jax.random.PRNGKey(0), x)


# ------------------------------------------------------------------------------ SpectralWiseMSA


def test_msa_matches_numpy_formula_float64():
  with jax.enable_x64(True):
    x = _x((2, 5, 6, 12), dtype=np.float64)
    model = SpectralWiseMSA(dim_head=4, dtype=jnp.float64)
    p = _f64(_params(model, x))
    assert p["rescale"].shape == (3,) and _count(p) == 4 * 144 + 19 * 12 + 3
    out = model.apply({"params": p}, x)
    np.testing.assert_allclose(out, _np_msa(x, p, heads=3, d=4), rtol=1e-10, atol=1e-12)
    # Lemma 1's plain dot-product variant (no L2 normalisation of q and k).
    plain = SpectralWiseMSA(dim_head=4, normalize_qk=False, dtype=jnp.float64)
    np.testing.assert_allclose(plain.apply({"params": p}, x),
                               _np_msa(x, p, heads=3, d=4, normalize=False), rtol=1e-10,
                               atol=1e-12)
    assert not np.allclose(plain.apply({"params": p}, x), out)


def test_msa_init_is_msts():
  x = _x((1, 4, 4, 8))
  p = jax.jit(SpectralWiseMSA(dim_head=4).init)(jax.random.PRNGKey(0), x)["params"]
  assert set(p) == {"to_q", "to_k", "to_v", "rescale", "proj", "pos_emb_0", "pos_emb_2"}
  np.testing.assert_array_equal(p["rescale"], np.ones(2))
  np.testing.assert_array_equal(p["proj"]["bias"], np.zeros(8))
  assert "bias" not in p["to_q"] and "bias" not in p["pos_emb_0"]
  assert p["pos_emb_0"]["kernel"].shape == (3, 3, 1, 8)            # depthwise
  assert 0.005 < float(jnp.std(p["to_q"]["kernel"])) < 0.04         # trunc_normal(0.02)
  assert float(jnp.max(jnp.abs(p["pos_emb_0"]["kernel"]))) <= 1 / 3  # U(+-1/sqrt(9))


def test_msa_is_invariant_to_positive_per_channel_scaling_of_q_and_k():
  """q, k are L2-normalised over the HW positions *per channel*, so scaling any output
  channel of W^Q or W^K by s > 0 changes nothing; normalising over channels (or not at all)
  would fail this. Scaling W^V does change the output."""
  x = _x((2, 4, 5, 8), seed=1)
  model = SpectralWiseMSA(dim_head=4)
  p = _params(model, x, seed=1)
  apply = jax.jit(model.apply)
  ref = apply({"params": p}, x)
  s = np.exp(np.random.default_rng(2).normal(size=8)).astype(np.float32)
  scaled = dict(p, to_q={"kernel": p["to_q"]["kernel"] * s},
                to_k={"kernel": p["to_k"]["kernel"] * s[::-1]})
  np.testing.assert_allclose(apply({"params": scaled}, x), ref, rtol=1e-5, atol=1e-5)
  v_scaled = dict(p, to_v={"kernel": p["to_v"]["kernel"] * s})
  assert float(jnp.max(jnp.abs(apply({"params": v_scaled}, x) - ref))) > 1e-2
  # ... and the attention is a C x C (per-head d x d) map: each output position depends on
  # other positions only through the channel statistics, so a spatial permutation of the
  # input permutes the attention output (proj branch) exactly.
  no_pos = dict(p, pos_emb_2={"kernel": np.zeros_like(p["pos_emb_2"]["kernel"])})
  perm = np.random.default_rng(3).permutation(20)
  xp = x.reshape(2, 20, 8)[:, perm].reshape(2, 4, 5, 8)
  out = apply({"params": no_pos}, x).reshape(2, 20, 8)[:, perm].reshape(2, 4, 5, 8)
  np.testing.assert_allclose(apply({"params": no_pos}, xp), out, rtol=1e-5, atol=1e-5)


def test_msa_errors():
  with pytest.raises(ValueError, match="heads \\* dim_head.*channels 12.*heads=None.*dim_head=5"):
    jax.eval_shape(SpectralWiseMSA(dim_head=5).init, jax.random.PRNGKey(0),
                   jnp.zeros((1, 2, 2, 12)))
  with pytest.raises(ValueError, match="NHWC"):
    jax.eval_shape(SpectralWiseMSA().init, jax.random.PRNGKey(0), jnp.zeros((2, 31)))


# ------------------------------------------------------------------------------ FeedForward


def test_feedforward_matches_numpy_with_exact_gelu():
  with jax.enable_x64(True):
    x = _x((2, 4, 3, 5), dtype=np.float64)
    model = FeedForward(dtype=jnp.float64)
    p = _f64(_params(model, x))
    assert _count(p) == 2 * 4 * 25 + 9 * 20 and all("bias" not in v for v in p.values())
    y = _np_gelu(_np_conv(x, p["net_0"]["kernel"]))
    y = _np_gelu(_np_conv(y, p["net_2"]["kernel"], groups=20))
    np.testing.assert_allclose(model.apply({"params": p}, x), _np_conv(y, p["net_4"]["kernel"]),
                               rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------------ non-local


def _np_nonlocal(x, p, r, pool="max"):
  b, h, w, c = x.shape
  conv = lambda z, n: _np_conv(z, p[n]["kernel"], bias=p[n]["bias"])
  theta, phi, g = conv(x, "theta"), conv(x, "phi"), conv(x, "g")
  ci = theta.shape[-1]
  assert h % r == 0 and w % r == 0
  red = (lambda z: z.max(axis=(2, 4))) if pool == "max" else (lambda z: z.mean(axis=(2, 4)))
  phi = red(phi.reshape(b, h // r, r, w // r, r, ci)).reshape(b, -1, ci)
  g = red(g.reshape(b, h // r, r, w // r, r, ci)).reshape(b, -1, ci)
  attn = scipy.special.softmax(np.einsum("bnc,bmc->bnm", theta.reshape(b, -1, ci), phi), -1)
  return conv((attn @ g).reshape(b, h, w, ci), "out")


@pytest.mark.parametrize("r,pool", [(1, "max"), (2, "max"), (2, "avg")])
def test_pooled_nonlocal_matches_numpy(r, pool):
  with jax.enable_x64(True):
    x = _x((2, 4, 6, 6), dtype=np.float64)
    model = PooledNonLocal(pool_stride=r, pool=pool, dtype=jnp.float64)
    p = _f64(_params(model, x))
    assert _count(p) == 4 * 6 * 3 + 3 * 3 + 6                         # C_inner = C / 2
    np.testing.assert_allclose(model.apply({"params": p}, x), _np_nonlocal(x, p, r, pool),
                               rtol=1e-10, atol=1e-12)


def test_pooled_nonlocal_odd_sizes_chunks_and_equivariance():
  x = _x((2, 7, 5, 6), seed=4)
  model = PooledNonLocal(pool_stride=3)
  p = _params(model, x, seed=4)
  out = jax.jit(model.apply)({"params": p}, x)
  assert out.shape == x.shape and bool(jnp.all(jnp.isfinite(out)))   # 'SAME' pooling: 3x2 keys
  chunked = PooledNonLocal(pool_stride=3, query_chunk=8).apply({"params": p}, x)  # 35 = 4x8+3
  np.testing.assert_allclose(chunked, out, rtol=1e-5, atol=1e-6)
  # Without pooling the block is equivariant to any permutation of the positions.
  full = PooledNonLocal(pool_stride=1)
  perm = np.random.default_rng(5).permutation(35)
  permute = lambda z: z.reshape(2, 35, -1)[:, perm].reshape(2, 7, 5, -1)
  np.testing.assert_allclose(full.apply({"params": p}, permute(x)),
                             permute(full.apply({"params": p}, x)), rtol=1e-5, atol=1e-6)


def test_second_order_channel_attention_matches_scipy():
  with jax.enable_x64(True):
    x = _x((2, 6, 5, 8), seed=6, dtype=np.float64)
    model = SecondOrderChannelAttention(reduction=4, num_iters=30, dtype=jnp.float64)
    p = _f64(_params(model, x, seed=6))
    out = model.apply({"params": p}, x)
    rows = []
    for img in x.reshape(2, 30, 8):
      z = scipy.linalg.sqrtm(np.cov(img, rowvar=False, bias=True)).real.mean(-1)
      z = np.maximum(z @ p["conv_du_0"]["kernel"] + p["conv_du_0"]["bias"], 0)
      rows.append(scipy.special.expit(z @ p["conv_du_2"]["kernel"] + p["conv_du_2"]["bias"]))
    np.testing.assert_allclose(out, x * np.stack(rows)[:, None, None], rtol=1e-6, atol=1e-8)


# ------------------------------------------------------------------------------ SSTA


def test_ssta_msa_twin_at_init_is_proj_of_msa_and_gamma_mixes_nonlocal():
  x = _x((2, 4, 4, 8), seed=7)
  model = SSTA(coupler="msa", dim_head=4)
  init = jax.jit(model.init)(jax.random.PRNGKey(0), x)["params"]
  assert float(init["gamma"]) == 0.0 and set(init) == {"msa", "nonlocal", "gamma", "proj"}
  msa = SpectralWiseMSA(dim_head=4).apply({"params": init["msa"]}, x)
  proj = lambda z, p: jnp.einsum("bhwc,cd->bhwd", z, p["proj"]["kernel"][0, 0]) + p["proj"]["bias"]
  np.testing.assert_allclose(model.apply({"params": init}, x), proj(msa, init), rtol=1e-5,
                             atol=1e-5)
  p = _params(model, x, seed=7)                                       # gamma = 0.7
  nl = PooledNonLocal().apply({"params": p["nonlocal"]}, x)
  msa = SpectralWiseMSA(dim_head=4).apply({"params": p["msa"]}, x)
  np.testing.assert_allclose(model.apply({"params": p}, x), proj(msa + 0.7 * nl, p),
                             rtol=1e-5, atol=1e-5)
  none = SSTA(coupler="msa", dim_head=4, nonlocal_type=None)
  assert set(jax.eval_shape(none.init, jax.random.PRNGKey(0), x)["params"]) == {"msa", "proj"}
  second = SSTA(coupler="msa", dim_head=4, nonlocal_type="second_order")
  assert "conv_du_0" in jax.eval_shape(second.init, jax.random.PRNGKey(0), x)["params"]["nonlocal"]


def test_ssta_at_init_is_proj_of_the_acc_and_the_twin_swaps_only_the_coupler():
  from jaxvision.nn import AdjacentChannelCoupler
  x = _x((2, 4, 4, 6), seed=10)
  model = SSTA()                                                      # ACC + pooled NL
  init = jax.jit(model.init)(jax.random.PRNGKey(0), x)["params"]
  assert float(init["gamma"]) == 0.0 and set(init) == {"acc", "nonlocal", "gamma", "proj"}
  acc = AdjacentChannelCoupler().apply({"params": init["acc"]}, x)
  proj = lambda z, p: jnp.einsum("bhwc,cd->bhwd", z, p["proj"]["kernel"][0, 0]) + p["proj"]["bias"]
  np.testing.assert_allclose(model.apply({"params": init}, x), proj(acc, init), rtol=1e-5,
                             atol=1e-5)
  p = _params(model, x, seed=10)                                      # gamma = 0.7
  acc = AdjacentChannelCoupler().apply({"params": p["acc"]}, x)
  nl = PooledNonLocal().apply({"params": p["nonlocal"]}, x)
  np.testing.assert_allclose(model.apply({"params": p}, x), proj(acc + 0.7 * nl, p),
                             rtol=1e-5, atol=1e-5)
  twin = jax.eval_shape(SSTA(coupler="msa", dim_head=3).init, jax.random.PRNGKey(0), x)["params"]
  shapes = lambda t: jax.tree.map(lambda a: a.shape, t)
  assert shapes({k: v for k, v in twin.items() if k != "msa"}) == shapes(
      {k: v for k, v in p.items() if k != "acc"})
  # The ACC fields pass through: a forward-only chain is a different ACC.
  fwd = SSTA(acc_directions="forward")
  assert _count(jax.eval_shape(fwd.init, jax.random.PRNGKey(0), x)["params"]["acc"]) < _count(
      p["acc"])


def test_ssta_errors():
  x = jnp.zeros((1, 4, 4, 8))
  with pytest.raises(ValueError, match="`coupler` must be one of \\('acc', 'msa'\\); found 'mlp'"):
    jax.eval_shape(SSTA(coupler="mlp").init, jax.random.PRNGKey(0), x)
  with pytest.raises(ValueError, match="`nonlocal_type`.*found 'full'"):
    jax.eval_shape(SSTA(coupler="msa", dim_head=4, nonlocal_type="full").init,
                   jax.random.PRNGKey(0), x)
  with pytest.raises(ValueError, match="`pool_stride` must be a positive int; found 0"):
    jax.eval_shape(PooledNonLocal(pool_stride=0).init, jax.random.PRNGKey(0), x)


# ------------------------------------------------------------------------------ BN block


def test_block_train_vs_eval_batchnorm():
  x = _x((4, 4, 4, 8), seed=8) * 3 + 1
  attention = functools.partial(SSTA, coupler="msa", dim_head=4)
  block = SpectralTransformerBlock(attention=attention, bn_momentum=0.9)
  variables = jax.jit(functools.partial(block.init, train=False))(jax.random.PRNGKey(0), x)
  assert set(variables) == {"params", "batch_stats"}
  assert set(variables["batch_stats"]) == {"norm1", "norm2"}
  p = variables["params"]
  eps = 1e-5

  def reference(norm1, norm2):
    y = x + attention(name=None).apply({"params": p["attn"]}, norm1(x))
    return y + FeedForward().apply({"params": p["ffn"]}, norm2(y))

  # eval: the running averages at init (mean 0, var 1) -> x / sqrt(1 + eps).
  ident = lambda z: z / np.sqrt(1 + eps)
  out_eval = block.apply(variables, x, train=False)
  np.testing.assert_allclose(out_eval, reference(ident, ident), rtol=1e-5, atol=1e-5)
  # train: batch statistics over (B, H, W), and running averages updated with momentum 0.9.
  out_train, state = block.apply(variables, x, train=True, mutable=["batch_stats"])
  standardise = lambda z: (z - z.mean((0, 1, 2))) / np.sqrt(z.var((0, 1, 2)) + eps)
  np.testing.assert_allclose(out_train, reference(standardise, standardise), rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(state["batch_stats"]["norm1"]["mean"], 0.1 * x.mean((0, 1, 2)),
                             rtol=1e-5, atol=1e-6)
  assert float(jnp.max(jnp.abs(out_train - out_eval))) > 0.1


def test_block_gradients_finite():
  x = _x((2, 4, 4, 8), seed=9)
  block = SpectralTransformerBlock(attention=functools.partial(SSTA, coupler="msa", dim_head=4))
  variables = {"params": _params(block, x, seed=9),
               "batch_stats": jax.eval_shape(block.init, jax.random.PRNGKey(0), x)["batch_stats"]}
  variables["batch_stats"] = jax.tree.map(lambda s: jnp.ones(s.shape), variables["batch_stats"])

  def loss(params, x):
    out, _ = block.apply({"params": params, "batch_stats": variables["batch_stats"]}, x,
                         train=True, mutable=["batch_stats"])
    return jnp.sum(out ** 2)

  g = jax.jit(jax.grad(loss, argnums=(0, 1)))(variables["params"], x)
  assert all(bool(jnp.all(jnp.isfinite(a))) for a in jax.tree.leaves(g))
  assert float(jnp.abs(g[0]["attn"]["gamma"])) > 0
