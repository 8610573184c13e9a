"""Relative-pose local attention and Fourier embeddings (QCNet style) for MambaTraj.

Spec ``icpr-13-ssm-motion-forecasting`` Sec. 2, eq. (4): attention whose keys and values carry
the relative pose ``r_ij`` of neighbour ``j`` seen from token ``i``,

    q_i = W^Q x_i,   k_ij = W^K x_j + W^{rk} r_ij,   v_ij = W^V x_j + W^{rv} r_ij,
    alpha_ij = softmax_{j in N(i)}(q_i . k_ij / sqrt(d_head)),   a_i = sum_j alpha_ij v_ij,

followed by QCNet's gated update (ZikangZhou/QCNet ``layers/attention_layer.py``)
``s_i = sigmoid(W^G [a_i, x_i]); u_i = a_i + s_i (W^S x_i - a_i)`` and an output projection.
``r_ij`` is the Fourier embedding (:class:`FourierEmbedding`, QCNet
``layers/fourier_embedding.py``) of the SE(2)-invariant features of
``jaxvision.ops.relative_pose_features``.

Two layouts share one implementation of the maths: a dense masked form (every query sees all
``Nk`` keys, a boolean ``(Nq, Nk)`` mask selects the neighbours) and a gathered form (each
query has its own ``k`` candidate neighbours, ``(Nq, k, d)``, from :func:`gather_neighbours`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = [
    "AttentionLayer",
    "FourierEmbedding",
    "Neighbours",
    "RelativeAttention",
    "gather_neighbours",
    "take_neighbours",
]

# QCNet's ``weight_init``: Xavier-uniform Linear weights, zero biases, LayerNorm (1, 0) with
# PyTorch's default epsilon.
_xavier = nn.initializers.xavier_uniform()
_LN_EPS = 1e-5


def _shape_error(owner: str, name: str, expected: str, found) -> ValueError:
  return ValueError(f"{owner}: `{name}` must have shape {expected}; found {tuple(found)}.")


def _check_float(owner: str, name: str, x: jax.Array) -> None:
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise TypeError(f"{owner}: `{name}` must be floating; found {x.dtype}.")


# --------------------------------------------------------------------------------------------
# Top-k neighbour gather
# --------------------------------------------------------------------------------------------


class Neighbours(NamedTuple):
  """Per-query neighbour sets from :func:`gather_neighbours` (``K`` = the static ``k``).

  Attributes:
    x: ``(..., Nq, K, d)`` features of each query's neighbours (the ``x_kv`` of the gathered
      layout of :class:`RelativeAttention`).
    rel: ``(..., Nq, K, d_rel)`` the gathered relative features, or ``None``.
    mask: ``(..., Nq, K)`` bool, ``True`` where the slot holds a valid neighbour (queries with
      fewer than ``K`` valid neighbours have trailing ``False`` slots).
    index: ``(..., Nq, K)`` int32 key index of each slot, nearest first; use it to gather any
      other per-key or per-pair quantity (e.g. raw poses, to compute ``r_ij`` only for the
      ``K`` kept pairs before embedding them) with :func:`take_neighbours`.
  """
  x: jax.Array
  rel: jax.Array | None
  mask: jax.Array
  index: jax.Array


def take_neighbours(values: jax.Array, index: jax.Array) -> jax.Array:
  """Gathers a per-key quantity for each query's neighbour slots.

  Args:
    values: ``(..., Nk, *f)`` one entry per key (features, positions ``(..., Nk, 2)``,
      headings ``(..., Nk)``, times, ...).
    index: ``(..., Nq, K)`` integer key indices (e.g. ``Neighbours.index``), same batch dims.

  Returns:
    ``(..., Nq, K, *f)`` with ``out[..., i, s, :] = values[..., index[..., i, s], :]``.
  """
  values, index = jnp.asarray(values), jnp.asarray(index)
  nb = index.ndim - 2
  if index.ndim < 2 or values.ndim < nb + 1 or values.shape[:nb] != index.shape[:nb]:
    raise _shape_error("take_neighbours", "values",
                       f"{index.shape[:-2] + ('Nk', '...')} (batch dims of `index`)",
                       values.shape)
  feat = values.ndim - nb - 1
  return jnp.take_along_axis(jnp.expand_dims(values, nb),
                             index.reshape(index.shape + (1,) * feat), axis=nb + 1)


def gather_neighbours(x: jax.Array, rel: jax.Array | None, mask: jax.Array, k: int,
                      distance: jax.Array) -> Neighbours:
  """Keeps the ``k`` nearest valid neighbours of each query (static ``k``), for sparse attention.

  Spec Sec. 2, eq. (4) JAX mapping: "a top-k/radius neighbour gather (static k) with
  ``jnp.take_along_axis``". The result feeds :class:`RelativeAttention` in its gathered
  layout, which then costs ``O(Nq k d)`` memory instead of ``O(Nq Nk d)``. A radius graph is
  the special case ``mask = mask & (distance < radius)``; neighbours beyond the ``k``
  nearest are dropped. Ties in ``distance`` are broken by ``lax.top_k`` (lower index first).

  ``rel`` may be an already-embedded ``(..., Nq, Nk, d_rel)`` tensor, but that tensor is the
  memory the gather is meant to avoid: the cheap pattern is to gather the raw poses with
  ``take_neighbours(pos, index)`` (or to pass the few raw relative features, 3-4 floats per
  pair, as ``rel``) and to Fourier-embed only the ``k`` kept pairs.

  Args:
    x: ``(..., Nk, d)`` key/value token features.
    rel: ``(..., Nq, Nk, d_rel)`` per-pair relative features, or ``None``.
    mask: ``(..., Nq, Nk)`` bool, ``True`` where ``j`` may be a neighbour of ``i``.
    k: static number of neighbours kept per query, ``1 <= k <= Nk``.
    distance: ``(..., Nq, Nk)`` float, the ranking key (smaller = nearer); not differentiated.

  Returns:
    :class:`Neighbours` ``(x, rel, mask, index)`` with ``K = k`` slots per query.
  """
  owner = "gather_neighbours"
  x, mask, distance = jnp.asarray(x), jnp.asarray(mask), jnp.asarray(distance)
  if x.ndim < 2:
    raise _shape_error(owner, "x", "(..., Nk, d)", x.shape)
  batch, nk = x.shape[:-2], x.shape[-2]
  if distance.ndim != x.ndim or distance.shape[:-2] != batch or distance.shape[-1] != nk:
    raise _shape_error(owner, "distance", f"(..., Nq, {nk}) with batch {batch} like `x`",
                       distance.shape)
  if mask.shape != distance.shape:
    raise _shape_error(owner, "mask", f"{distance.shape} like `distance`", mask.shape)
  if mask.dtype != jnp.bool_:
    raise TypeError(f"{owner}: `mask` must be bool; found {mask.dtype}.")
  if rel is not None:
    rel = jnp.asarray(rel)
    if rel.ndim != x.ndim + 1 or rel.shape[:-1] != distance.shape:
      raise _shape_error(owner, "rel", f"{distance.shape + ('d_rel',)}", rel.shape)
  if not isinstance(k, (int, np.integer)) or not 1 <= k <= nk:
    raise ValueError(f"{owner}: `k` must be an int in [1, {nk}] (Nk of `x`); found {k!r}.")
  k = int(k)
  score = jnp.where(mask, -lax.stop_gradient(distance), -jnp.inf)
  _, index = lax.top_k(score, k)                                         # (..., Nq, k)
  index = index.astype(jnp.int32)
  kept = jnp.take_along_axis(mask, index, axis=-1)
  xg = take_neighbours(x, index)                                        # (..., Nq, k, d)
  relg = None if rel is None else jnp.take_along_axis(rel, index[..., None], axis=-2)
  return Neighbours(xg, relg, kept, index)


# --------------------------------------------------------------------------------------------
# Attention maths (one implementation for both layouts)
# --------------------------------------------------------------------------------------------


def _masked_softmax(logits: jax.Array, mask: jax.Array, axis: int) -> jax.Array:
  """Softmax over ``axis`` restricted to ``mask``; all-masked slices give exactly zero.

  Masked logits never reach ``exp`` (they are replaced by ``-inf`` before it, whose
  derivative is 0), so masked entries change nothing and gradients stay finite even when a
  whole slice is masked.
  """
  masked = jnp.where(mask, logits, -jnp.inf)
  top = jnp.max(masked, axis=axis, keepdims=True)
  top = lax.stop_gradient(jnp.where(jnp.isfinite(top), top, 0.0))
  e = jnp.exp(jnp.where(mask, logits - top, -jnp.inf))
  denom = jnp.sum(e, axis=axis, keepdims=True)
  return e / jnp.where(denom > 0, denom, 1.0)


def _relative_attention(q, k, v, rel, w_kr, w_vr, b_vr, mask, *, gathered, scale, dropout,
                        precision):
  """Eq. (4) for ``H`` heads of width ``Dh``; returns ``(a, alpha)``.

  ``q`` (..., Nq, H, Dh); ``k``, ``v``: dense (..., Nk, H, Dh) or gathered (..., Nq, K, H, Dh);
  ``rel`` (..., Nq, K, R) or None; ``w_kr``, ``w_vr`` (R, H, Dh); ``b_vr`` (H, Dh) or None;
  ``mask`` broadcastable to (..., Nq, K). Returns ``a`` (..., Nq, H, Dh) and ``alpha``
  (..., H, Nq, K).

  The relative terms are never projected per pair: ``q_i . W^{rk} r_ij = (W^{rk T} q_i) . r_ij``
  and ``sum_j alpha_ij (W^{rv} r_ij + b) = W^{rv} (sum_j alpha_ij r_ij) + b sum_j alpha_ij``,
  so besides ``rel`` itself only the ``(..., H, Nq, K)`` logits/weights scale with ``Nq K``.
  """
  ein = functools.partial(jnp.einsum, precision=precision)
  kv = "...qkhd" if gathered else "...khd"
  logits = ein(f"...qhd,{kv}->...hqk", q, k)
  if rel is not None:
    q_rel = ein("...qhd,rhd->...hqr", q, w_kr)                           # (..., H, Nq, R)
    logits = logits + ein("...hqr,...qkr->...hqk", q_rel, rel)
  alpha = _masked_softmax(logits * scale, mask[..., None, :, :], axis=-1)
  alpha = dropout(alpha)
  a = ein(f"...hqk,{kv}->...qhd", alpha, v)
  if rel is not None:
    rel_sum = ein("...hqk,...qkr->...qhr", alpha, rel)                   # (..., Nq, H, R)
    a = a + ein("...qhr,rhd->...qhd", rel_sum, w_vr)
    if b_vr is not None:
      a = a + jnp.swapaxes(jnp.sum(alpha, axis=-1), -1, -2)[..., None] * b_vr
  return a, alpha


class RelativeAttention(nn.Module):
  """Multi-head attention with relative-pose keys/values (spec eq. 4) and QCNet's gated update.

  For query ``i`` with neighbours ``j`` (``mask[i, j]``), per head ``h``:

    q_i = W^Q x_i + b^Q,   k_ij = W^K y_j + W^{rk} r_ij
    v_ij = W^V y_j + b^V + W^{rv} r_ij + b^{rv}
    alpha_ij = softmax_j(q_i . k_ij / sqrt(head_dim)),     a_i = sum_j alpha_ij v_ij
    s_i = sigmoid(W^G [a_i, x_i] + b^G),   u_i = a_i + s_i * (W^S x_i + b^S - a_i)
    out_i = W^O u_i + b^O

  with ``x`` the queries ``x_q`` and ``y`` the keys/values ``x_kv``: exactly QCNet's
  ``AttentionLayer`` message/update/``to_out`` (``to_q``, ``to_k`` and ``to_k_r`` without
  bias as there; a key bias would cancel in the softmax anyway). A query with no valid
  neighbour gets ``a_i = 0`` exactly (as PyG's ``propagate`` for a node with no incoming
  edge) and finite gradients; its output is then ``W^O (s_i * W^S x_i)``.
  ``gated=False`` drops the update (``out_i = W^O a_i``): with ``rel=None`` that is standard
  multi-head dot-product attention.

  Layouts (``...`` = batch dims, equal for all inputs; ``mask`` may broadcast over them):

  * dense: ``x_kv`` ``(..., Nk, d_kv)`` (``None``: self-attention, ``x_kv = x_q``),
    ``rel`` ``(..., Nq, Nk, d_rel)``, ``mask`` ``(..., Nq, Nk)``;
  * gathered: ``x_kv`` ``(..., Nq, K, d_kv)``, each query's own ``K`` candidate neighbours
    (from :func:`gather_neighbours`), ``rel`` ``(..., Nq, K, d_rel)``, ``mask``
    ``(..., Nq, K)``. Same parameters, same maths.

  Memory: the input ``rel`` is the dominant cost, ``Nq Nk d_rel`` floats dense (4 GiB at
  ``Nq = Nk = 2048``, ``d_rel = 128`` in float32, and the same again for its gradient) versus
  ``Nq K d_rel`` gathered. The layer adds only ``O(Nq Nk H)`` logits/weights: ``W^{rk}`` is
  applied to ``q_i`` and ``W^{rv}`` after the sum over ``j`` (see ``_relative_attention``), so
  no ``(Nq, Nk, H head_dim)`` per-pair keys/values are formed. XLA CPU temp memory at
  ``Nq = Nk = 512``, ``d = d_rel = 128``, 8 heads (``rel`` itself: 128 MiB): forward 32 MiB,
  gradient 267 MiB, versus 385 / 648 MiB for the per-pair projection; gathered with
  ``K = 32``: 25 / 34 MiB (``rel`` 8 MiB).

  Masked neighbours (and their ``rel``) do not change the output (bitwise) as long as they are
  finite: pad with zeros, not NaN.

  Sows ``("intermediates", "attention_weights")`` ``(..., H, Nq, Nk|K)`` and
  ``("intermediates", "aggregation")`` ``(..., Nq, H head_dim)`` (the ``a_i``) when that
  collection is mutable.

  Attributes:
    num_heads: ``H``.
    head_dim: ``Dh``; the logits are scaled by ``Dh ** -0.5`` (as QCNet).
    dropout_rate: dropout on the attention weights ``alpha`` (QCNet's ``attn_drop``) when
      ``train=True`` (needs the ``"dropout"`` rng).
    out_features: width of the output; ``None``: ``d`` of ``x_q`` (QCNet's ``hidden_dim``).
    gated: apply QCNet's gated update before the output projection.
    dtype, param_dtype, precision: as ``flax.linen.Dense``.
  """
  num_heads: int
  head_dim: int
  dropout_rate: float = 0.0
  out_features: int | None = None
  gated: bool = True
  dtype: Any = None
  param_dtype: Any = jnp.float32
  precision: Any = None

  @nn.compact
  def __call__(self, x_q: jax.Array, x_kv: jax.Array | None = None, rel: jax.Array | None = None,
               mask: jax.Array | None = None, *, train: bool = False) -> jax.Array:
    """Attends from ``x_q`` to ``x_kv``.

    Args:
      x_q: ``(..., Nq, d)`` float query tokens.
      x_kv: ``(..., Nk, d_kv)`` (dense) or ``(..., Nq, K, d_kv)`` (gathered) float; ``None``
        for self-attention (``x_q``).
      rel: ``(..., Nq, Nk|K, d_rel)`` float embedded relative features ``r_ij``, or ``None``
        (no relative terms; a layer initialised with ``rel`` keeps, but skips, ``W^{rk}``,
        ``W^{rv}``).
      mask: ``(..., Nq, Nk|K)`` bool, ``True`` where ``j`` is a neighbour of ``i``; ``None``:
        all pairs.
      train: enables attention dropout.

    Returns:
      ``(..., Nq, out_features)``.
    """
    owner = "RelativeAttention"
    x_q = jnp.asarray(x_q)
    _check_float(owner, "x_q", x_q)
    if x_q.ndim < 2:
      raise _shape_error(owner, "x_q", "(..., Nq, d)", x_q.shape)
    batch, nq = x_q.shape[:-2], x_q.shape[-2]
    x_kv = x_q if x_kv is None else jnp.asarray(x_kv)
    _check_float(owner, "x_kv", x_kv)
    if x_kv.ndim == x_q.ndim and x_kv.shape[:-2] == batch:
      gathered, nk = False, x_kv.shape[-2]
    elif x_kv.ndim == x_q.ndim + 1 and x_kv.shape[:-2] == batch + (nq,):
      gathered, nk = True, x_kv.shape[-2]
    else:
      raise _shape_error(owner, "x_kv", f"{batch + ('Nk', 'd_kv')} (dense) or "
                         f"{batch + (nq, 'K', 'd_kv')} (gathered) for `x_q` {x_q.shape}",
                         x_kv.shape)
    pairs = batch + (nq, nk)
    if mask is None:
      mask = jnp.ones((nq, nk), jnp.bool_)
    mask = jnp.asarray(mask)
    if mask.dtype != jnp.bool_:
      raise TypeError(f"{owner}: `mask` must be bool; found {mask.dtype}.")
    mask_batch = mask.shape[:-2]
    if (mask.ndim < 2 or mask.shape[-2:] != (nq, nk) or len(mask_batch) > len(batch)
        or any(m not in (1, b) for m, b in zip(mask_batch[::-1], batch[::-1]))):
      raise _shape_error(owner, "mask", f"{pairs} (batch dims may broadcast)", mask.shape)
    if rel is not None:
      rel = jnp.asarray(rel)
      _check_float(owner, "rel", rel)
      if rel.shape[:-1] != pairs:
        raise _shape_error(owner, "rel", f"{pairs + ('d_rel',)}", rel.shape)
    if not (isinstance(self.num_heads, (int, np.integer)) and self.num_heads >= 1
            and isinstance(self.head_dim, (int, np.integer)) and self.head_dim >= 1):
      raise ValueError(f"{owner}: `num_heads` and `head_dim` must be positive ints; found "
                       f"{self.num_heads!r}, {self.head_dim!r}.")

    h, dh = int(self.num_heads), int(self.head_dim)
    width = h * dh
    dense = functools.partial(nn.Dense, kernel_init=_xavier, dtype=self.dtype,
                              param_dtype=self.param_dtype, precision=self.precision)
    heads = lambda t: t.reshape(t.shape[:-1] + (h, dh))
    q = heads(dense(width, name="query")(x_q))
    k = heads(dense(width, use_bias=False, name="key")(x_kv))
    v = heads(dense(width, name="value")(x_kv))
    w_kr = w_vr = b_vr = None
    if rel is not None:
      d_rel = rel.shape[-1]
      w_kr = self.param("key_rel_kernel", _xavier, (d_rel, width), self.param_dtype)
      w_vr = self.param("value_rel_kernel", _xavier, (d_rel, width), self.param_dtype)
      b_vr = self.param("value_rel_bias", nn.initializers.zeros, (width,), self.param_dtype)
      dt = self.dtype or jnp.result_type(q, rel)
      rel = rel.astype(dt)
      w_kr, w_vr, b_vr = (heads(w.astype(dt)) for w in (w_kr, w_vr, b_vr))
    drop = nn.Dropout(self.dropout_rate)
    a, alpha = _relative_attention(
        q, k, v, rel, w_kr, w_vr, b_vr, mask, gathered=gathered, scale=dh ** -0.5,
        dropout=lambda t: drop(t, deterministic=not train) if self.dropout_rate else t,
        precision=self.precision)
    a = a.reshape(a.shape[:-2] + (width,))
    self.sow("intermediates", "attention_weights", alpha)
    self.sow("intermediates", "aggregation", a)
    if self.gated:                                     # QCNet AttentionLayer.update
      gate = nn.sigmoid(dense(width, name="gate")(jnp.concatenate([a, x_q.astype(a.dtype)], -1)))
      a = a + gate * (dense(width, name="self")(x_q) - a)
    return dense(self.out_features or x_q.shape[-1], name="out")(a)


# --------------------------------------------------------------------------------------------
# Fourier embedding
# --------------------------------------------------------------------------------------------


class FourierEmbedding(nn.Module):
  """QCNet's learnable Fourier-feature embedding of continuous (and categorical) inputs.

  For each of the ``D`` input dimensions ``x_c`` (spec Sec. 2: the relative-pose features
  ``r_ij``, or per-token kinematics), with ``F = num_freq_bands`` learnable frequencies
  ``w_c`` (``(D, F)``, QCNet's ``nn.Embedding(D, F).weight``):

    phi_c = [cos(2 pi x_c w_c), sin(2 pi x_c w_c), x_c]                  (2F + 1,)
    e_c   = Linear_c(ReLU(LayerNorm_c(Linear_c(phi_c))))                  (hidden_dim,)
    out   = Linear(ReLU(LayerNorm(sum_c e_c + sum categorical_embs)))

  with separate weights per dimension ``c`` (computed batched, one einsum over ``c``).

  Initialisation as QCNet's ``weight_init``: Xavier-uniform Linear weights with zero biases,
  LayerNorm ``(1, 0)`` with ``epsilon = 1e-5``, and the frequencies ``N(0, 0.02^2)``:
  ``weight_init`` re-initialises the ``nn.Embedding`` (PyTorch's own default would be
  ``N(0, 1)``); ``freq_init_std`` changes it. Deviation: the per-dimension Xavier bounds use
  the fan of each ``(2F + 1, hidden_dim)`` / ``(hidden_dim, hidden_dim)`` matrix, as QCNet's
  separate ``nn.Linear`` modules do, so the init distribution is the same.

  Attributes:
    hidden_dim: output width.
    num_freq_bands: ``F`` (QCNet: 64).
    freq_init_std: standard deviation of the initial frequencies (QCNet: 0.02).
    dtype, param_dtype, precision: as ``flax.linen.Dense``.
  """
  hidden_dim: int
  num_freq_bands: int = 64
  freq_init_std: float = 0.02
  dtype: Any = None
  param_dtype: Any = jnp.float32
  precision: Any = None

  @nn.compact
  def __call__(self, x: jax.Array | None,
               categorical_embs: Sequence[jax.Array] | None = None) -> jax.Array:
    """Embeds ``x``.

    Args:
      x: ``(..., D)`` float continuous inputs (``D >= 1``, fixed at init), or ``None`` when
        only ``categorical_embs`` are given.
      categorical_embs: optional sequence of ``(..., hidden_dim)`` float embeddings (e.g.
        ``nn.Embed`` of an agent or lane type) added before the output block.

    Returns:
      ``(..., hidden_dim)``.
    """
    owner = "FourierEmbedding"
    hid, nf = self.hidden_dim, self.num_freq_bands
    if not (isinstance(hid, (int, np.integer)) and hid >= 1 and isinstance(nf, (int, np.integer))
            and nf >= 1):
      raise ValueError(f"{owner}: `hidden_dim` and `num_freq_bands` must be positive ints; "
                       f"found {hid!r}, {nf!r}.")
    cats = [jnp.asarray(c) for c in (categorical_embs or ())]
    for i, c in enumerate(cats):
      if c.shape[-1:] != (hid,):
        raise _shape_error(owner, f"categorical_embs[{i}]", f"(..., {hid})", c.shape)
    if x is None:
      if not cats:
        raise ValueError(f"{owner}: `x` and `categorical_embs` cannot both be None/empty.")
      emb = functools.reduce(jnp.add, cats)
    else:
      x = jnp.asarray(x)
      _check_float(owner, "x", x)
      if x.ndim < 1 or x.shape[-1] < 1:
        raise _shape_error(owner, "x", "(..., D) with D >= 1", x.shape)
      d = x.shape[-1]
      freqs = self.param("freqs", nn.initializers.normal(self.freq_init_std), (d, nf),
                         self.param_dtype)
      per_dim = nn.initializers.xavier_uniform(in_axis=-2, out_axis=-1, batch_axis=(0,))
      w1 = self.param("mlp_in_kernel", per_dim, (d, 2 * nf + 1, hid), self.param_dtype)
      b1 = self.param("mlp_in_bias", nn.initializers.zeros, (d, hid), self.param_dtype)
      w2 = self.param("mlp_out_kernel", per_dim, (d, hid, hid), self.param_dtype)
      b2 = self.param("mlp_out_bias", nn.initializers.zeros, (d, hid), self.param_dtype)
      dt = self.dtype or jnp.result_type(x, freqs)
      x = x.astype(dt)
      ein = functools.partial(jnp.einsum, precision=self.precision)
      ang = 2.0 * jnp.pi * x[..., None] * freqs.astype(dt)               # (..., D, F)
      phi = jnp.concatenate([jnp.cos(ang), jnp.sin(ang), x[..., None]], axis=-1)
      e = ein("...cf,cfh->...ch", phi, w1.astype(dt)) + b1.astype(dt)
      e = nn.LayerNorm(epsilon=_LN_EPS, feature_axes=(-2, -1), dtype=self.dtype,
                       param_dtype=self.param_dtype, name="mlp_norm")(e)
      e = ein("...ch,chk->...ck", nn.relu(e), w2.astype(dt)) + b2.astype(dt)
      emb = jnp.sum(e, axis=-2)
      for c in cats:
        emb = emb + c
    emb = nn.LayerNorm(epsilon=_LN_EPS, dtype=self.dtype, param_dtype=self.param_dtype,
                       name="out_norm")(emb)
    return nn.Dense(hid, kernel_init=_xavier, dtype=self.dtype, param_dtype=self.param_dtype,
                    precision=self.precision, name="out")(nn.relu(emb))


# --------------------------------------------------------------------------------------------
# Residual block
# --------------------------------------------------------------------------------------------


class AttentionLayer(nn.Module):
  """Pre-norm residual relative-attention block (spec Sec. 3 defaults):

    x <- x + Dropout(RelativeAttention(LN_q x, LN_kv x_kv, LN_r rel, mask))
    x <- x + Dropout(FFN(LN_f x)),   FFN = Linear(ffn_mult d) -> ReLU -> Linear(d)

  Normalisation follows QCNet's ``AttentionLayer``: one LayerNorm for queries and keys unless
  ``bipartite`` (then a separate one for ``x_kv``), and a LayerNorm on ``rel``.
  ``post_norm=True`` adds QCNet's post-norms (``x + LN(attn)``, ``x + LN(FFN)``). Dropout
  placement deviates from QCNet, which drops attention weights and FFN hidden units and not
  the residual branches: here ``dropout_rate`` acts on the two residual branches (the spec's
  recipe) and ``attention_dropout_rate`` on the weights.

  Self-attention: ``x_kv=None`` (dense over ``x``), or ``x_kv`` = the gathered neighbours
  of ``x`` itself (:func:`gather_neighbours` of the un-normalised ``x``; with
  ``bipartite=False`` they get the query LayerNorm, so the result equals the dense path).

  Parameters at ``hidden_dim = 128``, 8 heads (``head_dim = 16``), ``d_rel = 128``:
  148,224 attention + 131,712 FFN + 768 (3 LayerNorms) = 280,704; ``bipartite`` +256.

  Attributes:
    hidden_dim: ``d`` of ``x`` (checked).
    num_heads: attention heads.
    head_dim: per-head width; ``None``: ``hidden_dim // num_heads``.
    ffn_mult: FFN expansion.
    dropout_rate: residual-branch dropout when ``train=True`` (spec: 0.1).
    attention_dropout_rate: dropout on the attention weights.
    bipartite: queries and keys are different token sets (separate key LayerNorm).
    post_norm: QCNet's extra post-LayerNorms on both branches.
    dtype, param_dtype, precision: as ``flax.linen.Dense``.
  """
  hidden_dim: int
  num_heads: int
  head_dim: int | None = None
  ffn_mult: int = 4
  dropout_rate: float = 0.1
  attention_dropout_rate: float = 0.0
  bipartite: bool = False
  post_norm: bool = False
  dtype: Any = None
  param_dtype: Any = jnp.float32
  precision: Any = None

  @nn.compact
  def __call__(self, x: jax.Array, x_kv: jax.Array | None = None, rel: jax.Array | None = None,
               mask: jax.Array | None = None, *, train: bool = False) -> jax.Array:
    """Updates the query tokens ``x``.

    Args:
      x: ``(..., Nq, hidden_dim)`` float.
      x_kv: keys/values, dense ``(..., Nk, d_kv)`` or gathered ``(..., Nq, K, d_kv)`` (see
        :class:`RelativeAttention`), un-normalised; ``None``: ``x``.
      rel: ``(..., Nq, Nk|K, d_rel)`` embedded relative features or ``None``.
      mask: ``(..., Nq, Nk|K)`` bool neighbour mask or ``None`` (all pairs).
      train: enables dropout (needs the ``"dropout"`` rng).

    Returns:
      ``(..., Nq, hidden_dim)``.
    """
    x = jnp.asarray(x)
    if x.ndim < 2 or x.shape[-1] != self.hidden_dim:
      raise _shape_error("AttentionLayer", "x", f"(..., Nq, {self.hidden_dim}) (hidden_dim)",
                         x.shape)
    if self.num_heads < 1 or (self.head_dim is None and self.hidden_dim % self.num_heads):
      raise ValueError(f"AttentionLayer: `num_heads` must be >= 1 and divide `hidden_dim` "
                       f"{self.hidden_dim} when `head_dim` is None; found {self.num_heads}.")
    head_dim = self.head_dim or self.hidden_dim // self.num_heads
    ln = functools.partial(nn.LayerNorm, epsilon=_LN_EPS, dtype=self.dtype,
                           param_dtype=self.param_dtype)
    dense = functools.partial(nn.Dense, kernel_init=_xavier, dtype=self.dtype,
                              param_dtype=self.param_dtype, precision=self.precision)
    norm_q = ln(name="norm_q")
    h = norm_q(x)
    h_kv = None
    if x_kv is not None:
      h_kv = ln(name="norm_kv")(x_kv) if self.bipartite else norm_q(x_kv)
    if rel is not None:
      rel = ln(name="norm_rel")(rel)
    a = RelativeAttention(self.num_heads, head_dim, self.attention_dropout_rate,
                          out_features=self.hidden_dim, dtype=self.dtype,
                          param_dtype=self.param_dtype, precision=self.precision,
                          name="attention")(h, h_kv, rel, mask, train=train)
    if self.post_norm:
      a = ln(name="post_norm_attention")(a)
    x = x + nn.Dropout(self.dropout_rate)(a, deterministic=not train)
    f = dense(self.ffn_mult * self.hidden_dim, name="ffn_in")(ln(name="norm_ffn")(x))
    f = dense(self.hidden_dim, name="ffn_out")(nn.relu(f))
    if self.post_norm:
      f = ln(name="post_norm_ffn")(f)
    return x + nn.Dropout(self.dropout_rate)(f, deterministic=not train)
