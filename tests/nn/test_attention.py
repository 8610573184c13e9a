"""Relative-pose attention, Fourier embedding, top-k gather (issue 4; spec icpr-13 Sec. 2 eq. 4)."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxvision.nn import (
    AttentionLayer,
    FourierEmbedding,
    RelativeAttention,
    gather_neighbours,
    take_neighbours,
)

H, DH, D, DREL = 2, 4, 6, 5


def _inputs(seed, batch=(2,), nq=5, nk=7, d=D, drel=DREL, p_valid=0.6):
  """Random queries, keys, relative features and a mask with one all-masked query row."""
  rng = np.random.default_rng(seed)
  xq = rng.normal(size=batch + (nq, d)).astype(np.float32)
  xkv = rng.normal(size=batch + (nk, d)).astype(np.float32)
  rel = rng.normal(size=batch + (nq, nk, drel)).astype(np.float32)
  mask = rng.uniform(size=batch + (nq, nk)) < p_valid
  mask[..., 0, :] = False                                  # a query with no neighbour
  mask[..., 1, :] = True                                   # a query that sees everything
  return xq, xkv, rel, mask


def _params(model, *args, seed=0):
  """Random parameters of the shapes ``model.init`` makes, drawn with NumPy (no compile):
  ``N(0, 1/fan_in)`` weights, ``N(0, 0.3^2)`` biases (non-zero, unlike the init, so every
  parameter is exercised) and ``1 + N(0, 0.3^2)`` LayerNorm scales."""
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), *args))["params"]
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    z = rng.normal(size=leaf.shape).astype(np.float32)
    if jax.tree_util.keystr(path[-1:]) == "['scale']":
      return jnp.asarray(1.0 + 0.3 * z)
    return jnp.asarray(z / np.sqrt(leaf.shape[-2]) if leaf.ndim >= 2 else 0.3 * z)

  return jax.tree_util.tree_map_with_path(draw, shapes)


def _np_relative_attention(p, xq, xkv, rel, mask, gated=True):
  """Float64 eq. (4) with explicit per-pair keys/values, then QCNet's gated update + to_out."""
  f = lambda a: np.asarray(a, np.float64)
  xq, xkv, mask = f(xq), f(xkv), np.asarray(mask)
  q = (xq @ f(p["query"]["kernel"]) + f(p["query"]["bias"]))
  k = xkv @ f(p["key"]["kernel"])
  v = xkv @ f(p["value"]["kernel"]) + f(p["value"]["bias"])
  k = np.broadcast_to(k[..., None, :, :], mask.shape + (H * DH,))      # k_ij = W^K x_j
  v = np.broadcast_to(v[..., None, :, :], mask.shape + (H * DH,))
  if rel is not None:
    k = k + f(rel) @ f(p["key_rel_kernel"])                              # + W^{rk} r_ij
    v = v + f(rel) @ f(p["value_rel_kernel"]) + f(p["value_rel_bias"])  # + W^{rv} r_ij + b
  sh = lambda t: t.reshape(t.shape[:-1] + (H, DH))
  q, k, v = sh(q), sh(k), sh(v)
  logits = np.einsum("...qhd,...qkhd->...qkh", q, k) / np.sqrt(DH)
  m = mask[..., None]
  logits = np.where(m, logits, -np.inf)
  mx = np.max(logits, axis=-2, keepdims=True)
  e = np.where(m, np.exp(logits - np.where(np.isfinite(mx), mx, 0.0)), 0.0)
  s = e.sum(-2, keepdims=True)
  alpha = np.where(s > 0, e / np.where(s > 0, s, 1.0), 0.0)
  agg = np.einsum("...qkh,...qkhd->...qhd", alpha, v).reshape(xq.shape[:-1] + (H * DH,))
  out = agg
  if gated:
    g = np.concatenate([agg, xq], -1) @ f(p["gate"]["kernel"]) + f(p["gate"]["bias"])
    g = 1.0 / (1.0 + np.exp(-g))
    out = agg + g * (xq @ f(p["self"]["kernel"]) + f(p["self"]["bias"]) - agg)
  return out @ f(p["out"]["kernel"]) + f(p["out"]["bias"]), agg, alpha


@functools.partial(jax.jit, static_argnums=0, static_argnames=("train", "intermediates"))
def _apply(model, params, *args, train=False, rng=None, intermediates=False):
  """``model.apply`` compiled whole (much cheaper here than op-by-op dispatch)."""
  kw = {"train": True} if train else {}
  rngs = None if rng is None else {"dropout": rng}
  if not intermediates:
    return model.apply({"params": params}, *args, rngs=rngs, **kw)
  y, state = model.apply({"params": params}, *args, rngs=rngs, mutable=["intermediates"], **kw)
  inter = state["intermediates"]
  return y, inter["attention_weights"][0], inter["aggregation"][0]


def _key(seed):
  return jax.random.key(seed, impl="rbg")                # compiles far faster than threefry


_gather = jax.jit(gather_neighbours, static_argnums=3)


# ------------------------------------------------------------------------------------------
# RelativeAttention
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gated", [True, False])
def test_matches_numpy_float64_reference(gated):
  xq, xkv, rel, mask = _inputs(0)
  model = RelativeAttention(H, DH, gated=gated)
  params = _params(model, xq, xkv, rel, mask, seed=1)
  y, alpha, agg = _apply(model, params, xq, xkv, rel, mask, intermediates=True)
  y_ref, agg_ref, alpha_ref = _np_relative_attention(params, xq, xkv, rel, mask, gated=gated)
  assert y.shape == xq.shape
  np.testing.assert_allclose(agg, agg_ref, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(jnp.moveaxis(alpha, -3, -1), alpha_ref, atol=1e-6)


def test_weights_normalised_over_valid_neighbours_and_masked_ones_ignored():
  xq, xkv, rel, mask = _inputs(2)
  mask[..., 3] = False                                     # key 3 is nobody's neighbour
  model = RelativeAttention(H, DH)
  params = _params(model, xq, xkv, rel, mask, seed=3)
  y, alpha, _ = _apply(model, params, xq, xkv, rel, mask, intermediates=True)
  alpha = np.asarray(alpha)                                # (B, H, Nq, Nk)
  m = np.broadcast_to(mask[:, None], alpha.shape)
  assert np.all(alpha[~m] == 0.0)
  sums = alpha.sum(-1)
  has = mask.any(-1)[:, None, :].repeat(H, 1)
  np.testing.assert_allclose(sums[has], 1.0, atol=1e-6)
  assert np.all(sums[~has] == 0.0)
  # Any finite change of a masked neighbour's features or of a masked pair's rel: bitwise same.
  rng = np.random.default_rng(4)
  xkv2 = xkv.copy()
  xkv2[..., 3, :] = 100.0 * rng.normal(size=xkv2[..., 3, :].shape)
  rel2 = np.where(mask[..., None], rel, 50.0 * rng.normal(size=rel.shape)).astype(np.float32)
  y2 = _apply(model, params, xq, xkv2, rel2, mask)
  np.testing.assert_array_equal(y, y2)
  # ... while changing a valid neighbour does change the output.
  y3 = _apply(model, params, xq, xkv + 1.0, rel, mask)
  assert not np.allclose(y, y3)


def test_all_masked_rows_zero_aggregation_and_finite_gradients():
  xq, xkv, rel, mask = _inputs(5)
  mask[1, 2, :] = False
  model = RelativeAttention(H, DH)
  params = _params(model, xq, xkv, rel, mask, seed=6)
  _, _, agg = _apply(model, params, xq, xkv, rel, mask, intermediates=True)
  empty = ~mask.any(-1)
  assert empty.sum() == 3
  assert np.all(np.asarray(agg)[empty] == 0.0)
  assert np.all(np.abs(np.asarray(agg)[~empty]).sum(-1) > 0)

  @jax.jit
  @functools.partial(jax.grad, argnums=(0, 1, 2, 3))
  def grads(params, xq, xkv, rel, m):
    return jnp.sum(jnp.sin(model.apply({"params": params}, xq, xkv, rel, m)))

  for m in (mask, np.zeros_like(mask)):                    # some rows / every row empty
    g = grads(params, xq, xkv, rel, m)
    assert all(bool(jnp.all(jnp.isfinite(t))) for t in jax.tree.leaves(g))
  # With every pair masked nothing flows to the keys or to rel.
  assert np.all(np.asarray(g[2]) == 0.0) and np.all(np.asarray(g[3]) == 0.0)
  assert float(jnp.abs(g[1]).sum()) > 0


def test_without_rel_is_standard_multi_head_attention():
  xq, xkv, rel, mask = _inputs(7)
  mask[..., 0, 2] = True                                   # flax MHA needs no empty row
  model = RelativeAttention(H, DH, gated=False)
  params = _params(model, xq, xkv, None, mask, seed=8)
  y = _apply(model, params, xq, xkv, None, mask)
  mha = nn.MultiHeadDotProductAttention(num_heads=H, qkv_features=H * DH, out_features=D)
  mp = {
      "query": {"kernel": params["query"]["kernel"].reshape(D, H, DH),
                "bias": params["query"]["bias"].reshape(H, DH)},
      "key": {"kernel": params["key"]["kernel"].reshape(D, H, DH),
              "bias": jnp.full((H, DH), 0.7)},           # a key bias cancels in the softmax
      "value": {"kernel": params["value"]["kernel"].reshape(D, H, DH),
                "bias": params["value"]["bias"].reshape(H, DH)},
      "out": {"kernel": params["out"]["kernel"].reshape(H, DH, D),
              "bias": params["out"]["bias"]},
  }
  y_ref = jax.jit(lambda p, q, kv, m: mha.apply({"params": p}, q, kv, mask=m))(
      mp, xq, xkv, mask[:, None])
  np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
  # Zero relative weights (and bias): rel has no effect.
  m = RelativeAttention(H, DH)
  p = _params(m, xq, xkv, rel, mask, seed=9)
  p0 = {**p, "key_rel_kernel": jnp.zeros_like(p["key_rel_kernel"]),
        "value_rel_kernel": jnp.zeros_like(p["value_rel_kernel"]),
        "value_rel_bias": jnp.zeros_like(p["value_rel_bias"])}
  np.testing.assert_allclose(_apply(m, p0, xq, xkv, rel, mask),
                             _apply(m, p, xq, xkv, None, mask), atol=1e-6)


def test_query_permutation_equivariance_and_key_order_invariance():
  xq, xkv, rel, mask = _inputs(10)
  model = RelativeAttention(H, DH)
  params = _params(model, xq, xkv, rel, mask, seed=11)
  y = _apply(model, params, xq, xkv, rel, mask)
  rng = np.random.default_rng(12)
  pq, pk = rng.permutation(xq.shape[-2]), rng.permutation(xkv.shape[-2])
  yq = _apply(model, params, xq[:, pq], xkv, rel[:, pq], mask[:, pq])
  np.testing.assert_allclose(yq, np.asarray(y)[:, pq], rtol=1e-5, atol=1e-6)
  yk = _apply(model, params, xq, xkv[:, pk], rel[:, :, pk], mask[:, :, pk])
  np.testing.assert_allclose(yk, y, rtol=1e-5, atol=1e-6)
  # A mask shared over the batch broadcasts.
  shared = mask[:1]
  np.testing.assert_array_equal(_apply(model, params, xq, xkv, rel, shared),
                                _apply(model, params, xq, xkv, rel,
                                       np.broadcast_to(shared, mask.shape)))
  # Self-attention (x_kv=None) is equivariant to a joint permutation of all tokens.
  rel_s, mask_s = rel[:, :, :5], mask[:, :, :5]
  ys = _apply(model, params, xq, None, rel_s, mask_s)
  ysp = _apply(model, params, xq[:, pq], None, rel_s[:, pq][:, :, pq],
                    mask_s[:, pq][:, :, pq])
  np.testing.assert_allclose(ysp, np.asarray(ys)[:, pq], rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------
# Top-k gather
# ------------------------------------------------------------------------------------------


def test_gather_neighbours_keeps_the_k_nearest_valid():
  rng = np.random.default_rng(13)
  xkv = rng.normal(size=(2, 9, 3)).astype(np.float32)
  dist = rng.uniform(size=(2, 4, 9)).astype(np.float32)
  mask = rng.uniform(size=(2, 4, 9)) < 0.5
  mask[0, 0] = False
  k = 3
  nb = _gather(xkv, None, mask, k, dist)
  assert nb.x.shape == (2, 4, k, 3) and nb.mask.shape == (2, 4, k) and nb.rel is None
  for b in range(2):
    for i in range(4):
      valid = np.flatnonzero(mask[b, i])
      want = valid[np.argsort(dist[b, i, valid])][:k]
      n = len(want)
      np.testing.assert_array_equal(nb.index[b, i, :n], want)        # nearest first
      np.testing.assert_array_equal(nb.mask[b, i], np.arange(k) < n)
      np.testing.assert_array_equal(nb.x[b, i], xkv[b, nb.index[b, i]])
  pos = rng.normal(size=(2, 9, 2)).astype(np.float32)
  idx = np.asarray(nb.index)
  np.testing.assert_array_equal(take_neighbours(pos, idx),
                                pos[np.arange(2)[:, None, None], idx])
  np.testing.assert_array_equal(take_neighbours(pos[..., 0], idx),
                                pos[..., 0][np.arange(2)[:, None, None], idx])


def test_gathered_layout_equals_dense_when_k_covers_all_valid():
  xq, xkv, rel, mask = _inputs(14, nq=6, nk=8, p_valid=0.4)
  mask[..., 1, :] = False
  k = int(mask.sum(-1).max())
  assert k < mask.shape[-1]
  dist = np.random.default_rng(15).uniform(size=mask.shape).astype(np.float32)
  nb = _gather(xkv, rel, mask, k, dist)
  model = RelativeAttention(H, DH)
  params = _params(model, xq, xkv, rel, mask, seed=16)
  y_dense = _apply(model, params, xq, xkv, rel, mask)
  y_gath = _apply(model, params, xq, nb.x, nb.rel, nb.mask)
  np.testing.assert_allclose(y_gath, y_dense, rtol=1e-5, atol=1e-6)
  # Same through the residual block, self-attention: x_kv = the gathered neighbours of x.
  xs, rs, ms = xq, rel[:, :, :6], mask[:, :, :6]
  k = int(ms.sum(-1).max())
  nb = _gather(xs, rs, ms, k, dist[:, :, :6])
  layer = AttentionLayer(D, H, head_dim=DH)
  lp = _params(layer, xs, None, rs, ms, seed=17)
  np.testing.assert_allclose(_apply(layer, lp, xs, nb.x, nb.rel, nb.mask),
                             _apply(layer, lp, xs, None, rs, ms),
                             rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------------
# FourierEmbedding
# ------------------------------------------------------------------------------------------


def _np_fourier(p, x, cat=None):
  f = lambda a: np.asarray(a, np.float64)
  x = f(x)

  def ln(t, scale, bias):
    mu = t.mean(-1, keepdims=True)
    var = ((t - mu) ** 2).mean(-1, keepdims=True)
    return (t - mu) / np.sqrt(var + 1e-5) * f(scale) + f(bias)

  emb = 0.0
  for c in range(x.shape[-1]):                             # QCNet's per-dimension MLPs
    ang = x[..., c, None] * f(p["freqs"][c]) * 2 * np.pi
    phi = np.concatenate([np.cos(ang), np.sin(ang), x[..., c, None]], -1)
    e = phi @ f(p["mlp_in_kernel"][c]) + f(p["mlp_in_bias"][c])
    e = np.maximum(ln(e, p["mlp_norm"]["scale"][c], p["mlp_norm"]["bias"][c]), 0.0)
    emb = emb + e @ f(p["mlp_out_kernel"][c]) + f(p["mlp_out_bias"][c])
  if cat is not None:
    emb = emb + f(cat)
  emb = np.maximum(ln(emb, p["out_norm"]["scale"], p["out_norm"]["bias"]), 0.0)
  return emb @ f(p["out"]["kernel"]) + f(p["out"]["bias"])


def test_fourier_embedding_matches_reference_and_separates_inputs():
  rng = np.random.default_rng(18)
  x = rng.normal(size=(3, 5, 4)).astype(np.float32) * 3.0
  cat = rng.normal(size=(3, 5, 16)).astype(np.float32)
  model = FourierEmbedding(16, num_freq_bands=8)
  params = _params(model, x, seed=19)
  shapes = jax.tree.map(jnp.shape, params)
  assert shapes["freqs"] == (4, 8) and shapes["mlp_in_kernel"] == (4, 17, 16)
  init = jax.jit(FourierEmbedding(16).init)(_key(1), x)["params"]
  assert abs(float(jnp.std(init["freqs"])) - 0.02) < 0.004  # QCNet weight_init: N(0, 0.02^2)
  assert float(jnp.abs(init["mlp_in_kernel"]).max()) <= np.sqrt(6 / (129 + 16))  # Xavier
  y = _apply(model, params, x)
  assert y.shape == (3, 5, 16) and bool(jnp.all(jnp.isfinite(y)))
  np.testing.assert_allclose(y, _np_fourier(params, x), rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(_apply(model, params, x, [cat]),
                             _np_fourier(params, x, cat), rtol=1e-4, atol=1e-4)
  # Different inputs -> different embeddings (each dimension matters).
  for c in range(4):
    x2 = x.copy()
    x2[..., c] += 0.5
    diff = np.abs(np.asarray(_apply(model, params, x2)) - np.asarray(y)).max(-1)
    assert np.all(diff > 1e-4)
  # Categorical-only input (QCNet allows continuous_inputs=None).
  y_cat = _apply(model, params, None, [cat, cat])
  assert y_cat.shape == (3, 5, 16) and bool(jnp.all(jnp.isfinite(y_cat)))


# ------------------------------------------------------------------------------------------
# AttentionLayer, dropout, errors (every apply in this file runs under jax.jit)
# ------------------------------------------------------------------------------------------


def test_attention_layer_residual_and_dropout():
  xq, xkv, rel, mask = _inputs(20, d=8, drel=8)
  layer = AttentionLayer(8, 2, dropout_rate=0.5, attention_dropout_rate=0.2, bipartite=True)
  params = _params(layer, xq, xkv, rel, mask, seed=21)
  assert {"norm_q", "norm_kv", "norm_rel", "norm_ffn", "attention"} <= set(params)
  args = (xq, xkv, rel, mask)
  y0 = _apply(layer, params, *args)                        # eval: dropout off, rng unused
  np.testing.assert_array_equal(y0, _apply(layer, params, *args, rng=_key(1)))
  y1 = _apply(layer, params, *args, train=True, rng=_key(1))
  y2 = _apply(layer, params, *args, train=True, rng=_key(2))
  np.testing.assert_array_equal(y1, _apply(layer, params, *args, train=True, rng=_key(1)))
  assert not np.allclose(y1, y2) and not np.allclose(y1, y0)
  # Residual structure: zero output projections of both branches -> identity.
  zero = dict(params)
  zero["attention"] = {**params["attention"],
                       "out": jax.tree.map(jnp.zeros_like, params["attention"]["out"])}
  zero["ffn_out"] = jax.tree.map(jnp.zeros_like, params["ffn_out"])
  np.testing.assert_array_equal(_apply(layer, zero, *args), xq)
  # post_norm (QCNet's sandwich norm) adds one LayerNorm per branch.
  post = AttentionLayer(8, 2, bipartite=True, post_norm=True)
  assert {"post_norm_attention", "post_norm_ffn"} <= set(_params(post, *args))


def test_parameter_count_hidden_128_heads_8():
  x, rel = jnp.zeros((1, 3, 128)), jnp.zeros((1, 3, 3, 128))
  count = lambda m, *a: sum(p.size for p in jax.tree.leaves(
      jax.eval_shape(lambda: m.init(jax.random.key(0), *a))))
  assert count(RelativeAttention(8, 16), x, None, rel) == 9 * 128 * 128 + 6 * 128
  assert count(AttentionLayer(128, 8), x, None, rel) == 280_704
  assert count(AttentionLayer(128, 8, bipartite=True), x, x, rel) == 280_960


def test_bad_inputs_raise_with_the_argument_name():
  xq, xkv, rel, mask = _inputs(22)
  model = RelativeAttention(H, DH)
  init = lambda *a: model.init(jax.random.key(0), *a)
  with pytest.raises(ValueError, match="`x_kv`"):
    init(xq, xkv[0], rel, mask)
  with pytest.raises(ValueError, match="`mask`"):
    init(xq, xkv, rel, mask[..., :3])
  with pytest.raises(TypeError, match="`mask` must be bool"):
    init(xq, xkv, rel, mask.astype(np.float32))
  with pytest.raises(ValueError, match="`rel`"):
    init(xq, xkv, rel[..., :3, :], mask)
  with pytest.raises(ValueError, match="`k` must be an int in"):
    gather_neighbours(xkv, None, mask, 8, mask.astype(np.float32))
  with pytest.raises(ValueError, match=r"`x` must have shape \(\.\.\., Nq, 16\)"):
    AttentionLayer(16, 2).init(jax.random.key(0), xq)
  with pytest.raises(TypeError, match="`x` must be floating"):
    FourierEmbedding(8).init(jax.random.key(0), np.ones((2, 3), np.int32))
