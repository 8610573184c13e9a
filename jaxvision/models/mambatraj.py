r"""MambaTraj (Dong et al., ICPR 2024): Attention-SSM blocks for motion forecasting.

Spec ``icpr-13-ssm-motion-forecasting`` Secs. 1-3. An encoder of four sub-encoders built
from **Attention-SSM blocks** (:class:`AttentionSSMBlock`, ASB):

1. local attention with relative-pose keys and values (eq. 4, QCNet style) over spatial or
   temporal neighbours;
2. the tokens are **sorted** into a sequence (chronologically, or by degree in the radius
   graph, low to high, padded tokens first);
3. a (bidirectional where there is no natural order) Mamba selective SSM whose state update
   receives the **relative-pose injection** ``rho_t = W^{r->h} r_{t,t-1}`` (eq. 5), carrying
   the state from token ``t-1``'s frame into token ``t``'s;

then un-sorted. The sub-encoders (:class:`MambaTrajEncoder`): map (bidirectional, map tokens
sorted by degree), trajectory (causal, chronological), agent-map (causal over
``[map tokens by degree || the agent's history]``, keeping the last ``H`` outputs) and
agent-agent (bidirectional, per time step, agents by degree). The decoder
(:class:`MambaTrajDecoder`, DETR/QCNet-like): ``K`` learned mode queries per agent
cross-attend to the agent's history, the map and the other agents (relative-pose attention)
and to each other, then two MLPs give a Laplace trajectory (``loc``, ``scale``; cumulative
per-step displacements) and a confidence logit.

Every input the network sees is SE(2)-invariant -- per-token kinematics in the token's own
frame and relative poses ``r_ij`` (:func:`jaxvision.ops.relative_pose_features`) -- and the
outputs are in each agent's frame at the last history step, so the predictions do not
change when the whole scene is rotated and translated (spec Sec. 6.8).

Unspecified in the paper (spec Sec. 3), chosen here: the QCNet conventions (pre-norm
residual blocks, ``hidden_dim`` 128, 8 heads, ``d_state`` 16, time span 10, radii 50 m),
``injection="outer"`` (spec Sec. 2, the rho shape ambiguity), the backward branch of a
bidirectional SSM injected with ``r_{t,t+1}``, and the map order shared by all agents in the
agent-map sequences. With ``num_layers=1`` and ``decoder_layers=2`` at ``hidden_dim`` 128 the
model has ~5 M parameters (the paper reports 2.9 M without the hyper-parameters); the
full-scale config shrinks the embeddings to approach it.

Batch fields (``jaxvision.data.scenes``, ``jaxvision.data.av2``): see
:data:`jaxvision.train.tasks.SCENE_KEYS`. History ``H = T - future_steps``.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxvision import ops
from jaxvision.data.av2 import AV2_MAP_TYPES, AV2_OBJECT_TYPES
from jaxvision.losses.trajectory import scale_from_raw
from jaxvision.models.registry import register_model
from jaxvision.nn.attention import (AttentionLayer, FourierEmbedding, gather_neighbours,
                                    take_neighbours)
from jaxvision.nn.mamba import BiMamba, Mamba

NUM_AGENT_TYPES = len(AV2_OBJECT_TYPES)
NUM_LANE_TYPES = len(AV2_MAP_TYPES)
INJECTIONS = (None, "outer", "full")


def _continuous(features):
  """``[d, a, dtheta, (dt)] -> [d, cos a, sin a, cos dtheta, sin dtheta, (dt)]``.

  Deviation from QCNet, which embeds the wrapped angles themselves: those jump between
  ``+pi`` and ``-pi`` for antiparallel tokens (two lanes of a road), where float rounding
  under a rotation of the scene decides the side, so the network would not be exactly
  SE(2)-invariant. Cosine and sine are continuous and carry the same information.
  """
  d, a, dtheta = features[..., 0], features[..., 1], features[..., 2]
  out = [d, jnp.cos(a), jnp.sin(a), jnp.cos(dtheta), jnp.sin(dtheta)]
  return jnp.stack(out + [features[..., i] for i in range(3, features.shape[-1])], -1)


def _rel(pos_i, head_i, pos_j, head_j, *times):
  """The continuous relative-pose features of ``j`` seen from ``i`` (eq. 4's ``r_ij``)."""
  return _continuous(ops.relative_pose_features(pos_i, head_i, pos_j, head_j, *times))


def _sorted_rel_features(pos, heading, mask, reverse: bool = False):
  """Raw ``r_{t,t-1}`` (or ``r_{t,t+1}``) of consecutive tokens of sorted sequences.

  Args:
    pos: ``(S, L, 2)``; heading, mask: ``(S, L)``.

  Returns:
    ``(features (S, L, 3), has_neighbour (S, L) float)``: token ``t-1``'s pose seen from
    token ``t`` (``t+1``'s with ``reverse``); rows without a valid neighbour are flagged 0.
  """
  shift = -1 if reverse else 1
  prev = lambda x: jnp.roll(x, shift, axis=1)
  feats = _rel(pos, heading, prev(pos), prev(heading))
  edge = jnp.zeros(mask.shape[1], bool).at[-1 if reverse else 0].set(True)
  has = mask * prev(mask) * (~edge)
  return feats, has.astype(feats.dtype)


class SSMBlock(nn.Module):
  """The SSM half of an ASB: ``x_s <- x_s + Dropout((Bi)Mamba(LN x_s, rho))`` on the sorted
  sequence (spec Sec. 3 pre-norm residual), then the inverse permutation.

  Attributes:
    hidden_dim: token width.
    d_state: SSM state size ``N``.
    bidirectional: :class:`BiMamba` (v2) instead of the causal :class:`Mamba`.
    injection: eq. (5) state injection ``None | "outer" | "full"``.
    dropout_rate: residual-branch dropout.
    scan_method, chunk_size: passed to :func:`jaxvision.ops.selective_scan`.
  """
  hidden_dim: int
  d_state: int = 16
  bidirectional: bool = False
  injection: str | None = "outer"
  dropout_rate: float = 0.1
  scan_method: str | None = None
  chunk_size: int = 64

  @nn.compact
  def __call__(self, x, *, perm=None, token_mask=None, ssm_rel=None, ssm_rel_reverse=None,
               prefix=None, prefix_mask=None, train: bool = False):
    """Updates the tokens ``x``.

    Args:
      x: ``(S, L, hidden_dim)``: ``S`` independent token sets.
      perm: int ``(S, L)`` sort order (``None``: the given order).
      token_mask: ``(S, L)`` 1 for real tokens (in the given order); ``None``: all real.
      ssm_rel: ``(S, P + L, d_rel)`` embedded ``r_{t,t-1}`` of the *sequence the SSM runs
        over* (the prefix, then ``x`` sorted), zero rows where a token has no valid
        predecessor; ``ssm_rel_reverse`` the ``r_{t,t+1}`` for the backward branch. Used iff
        ``injection`` is set.
      prefix: optional ``(S, P, hidden_dim)`` tokens the SSM reads first (the agent-map
        encoder's map tokens); only the outputs of ``x`` are kept.
      prefix_mask: ``(S, P)`` for ``prefix``.
      train: dropout on.

    Returns:
      ``(S, L, hidden_dim)``.
    """
    if self.injection not in INJECTIONS:
      raise ValueError(f"SSMBlock: `injection` must be one of {INJECTIONS}; found "
                       f"{self.injection!r}.")
    if token_mask is None:
      token_mask = jnp.ones(x.shape[:2], x.dtype)
    xs, ms = x, token_mask
    if perm is not None:
      xs, ms = (ops.apply_permutation(t, perm, axis=1) for t in (x, token_mask))
    n_prefix = 0
    if prefix is not None:
      n_prefix = prefix.shape[1]
      pm = jnp.ones(prefix.shape[:2], x.dtype) if prefix_mask is None else prefix_mask
      xs, ms = jnp.concatenate([prefix, xs], 1), jnp.concatenate([pm.astype(ms.dtype), ms], 1)
    injection = self.injection if ssm_rel is not None else None
    kw = dict(d_model=self.hidden_dim, d_state=self.d_state, injection=injection,
              scan_method=self.scan_method, chunk_size=self.chunk_size, name="ssm")
    h = nn.LayerNorm(epsilon=1e-5, name="norm")(xs)
    if self.bidirectional:
      y = BiMamba(**kw)(h, ssm_rel, ssm_rel_reverse if injection else None, ms)
    else:
      y = Mamba(**kw)(h, ssm_rel, ms)
    xs = (xs + nn.Dropout(self.dropout_rate)(y, deterministic=not train))[:, n_prefix:]
    if perm is None:
      return xs
    return ops.apply_permutation(xs, ops.inverse_permutation(perm), axis=1)


class AttentionSSMBlock(nn.Module):
  """One ASB (spec Sec. 1): local relative attention, sort, (Bi)Mamba with rho, unsort.

  ``x <- AttentionLayer(x, x_kv, rel, attention_mask)`` (pre-norm residual attention + FFN,
  :class:`jaxvision.nn.AttentionLayer`), then :class:`SSMBlock`. Either half can be
  switched off (``use_attention`` / ``use_ssm``: the "all SSM" / "all local attention"
  ablations of Table 3).

  Attributes:
    hidden_dim, num_heads: widths of the attention.
    d_state, bidirectional, injection, dropout_rate, scan_method, chunk_size: as
      :class:`SSMBlock`.
    bipartite: queries attend to a different token set ``x_kv``.
    use_attention, use_ssm: ablation switches.
  """
  hidden_dim: int
  num_heads: int = 8
  d_state: int = 16
  bidirectional: bool = False
  injection: str | None = "outer"
  bipartite: bool = False
  dropout_rate: float = 0.1
  use_attention: bool = True
  use_ssm: bool = True
  scan_method: str | None = None
  chunk_size: int = 64

  @nn.compact
  def __call__(self, x, *, x_kv=None, rel=None, attention_mask=None, train: bool = False,
               **ssm_kwargs):
    """Args: ``x`` ``(S, L, hidden_dim)``; ``x_kv``, ``rel``, ``attention_mask`` as
    :class:`jaxvision.nn.AttentionLayer` (dense ``(S, L, Nk, .)`` or gathered);
    ``ssm_kwargs`` (``perm``, ``token_mask``, ``ssm_rel``, ``ssm_rel_reverse``, ``prefix``,
    ``prefix_mask``) as :class:`SSMBlock`. Returns ``(S, L, hidden_dim)``."""
    if self.use_attention:
      x = AttentionLayer(self.hidden_dim, self.num_heads, dropout_rate=self.dropout_rate,
                         bipartite=self.bipartite, name="attention")(
                             x, x_kv, rel, attention_mask, train=train)
    if not self.use_ssm:
      return x
    return SSMBlock(self.hidden_dim, self.d_state, self.bidirectional, self.injection,
                    self.dropout_rate, self.scan_method, self.chunk_size, name="ssm_block")(
                        x, train=train, **ssm_kwargs)


class _Neighbourhood(nn.Module):
  """Keys, embedded relative features and mask for one relative-attention step.

  Dense (every query against every key) when ``max_neighbours`` is ``None``; otherwise the
  ``max_neighbours`` nearest valid keys per query are gathered *before* the relative
  features are embedded, so memory is ``O(Nq k d)`` (AV2-scale scenes).
  """
  hidden_dim: int
  max_neighbours: int | None = None

  @nn.compact
  def __call__(self, q_pos, q_head, kv, kv_pos, kv_head, mask, q_time=None, kv_time=None):
    """Args: q_pos ``(S, Nq, 2)``, q_head ``(S, Nq)``, kv ``(S, Nk, d)``, kv_pos/kv_head
    ``(S, Nk, .)``, mask bool ``(S, Nq, Nk)``, optional times ``(S, Nq)`` / ``(S, Nk)``.
    Returns ``(x_kv, rel, mask)`` for :class:`jaxvision.nn.AttentionLayer`."""
    pair = lambda a, b: (a[:, :, None], b[:, None, :])
    x_kv = None
    if self.max_neighbours is not None and self.max_neighbours < kv.shape[1]:
      dist = jnp.sum(jnp.square(q_pos[:, :, None] - kv_pos[:, None]), -1)
      nb = gather_neighbours(kv, None, mask, self.max_neighbours, dist)
      kv_pos, kv_head = take_neighbours(kv_pos, nb.index), take_neighbours(kv_head, nb.index)
      kv_time = None if kv_time is None else take_neighbours(kv_time, nb.index)
      pair = lambda a, b: (a[:, :, None], b)
      x_kv, mask = nb.x, nb.mask
    pi, pj = pair(q_pos, kv_pos)
    hi, hj = pair(q_head, kv_head)
    times = () if q_time is None else pair(q_time, kv_time)
    feats = _rel(pi, hi, pj, hj, *times)
    rel = FourierEmbedding(self.hidden_dim, name="rel_embedding")(feats)
    return x_kv, rel, mask


class _SequenceRel(nn.Module):
  """Embedded ``r_{t,t-1}`` (and ``r_{t,t+1}``) of sorted sequences, zero without neighbour."""
  hidden_dim: int

  @nn.compact
  def __call__(self, pos, heading, mask, bidirectional: bool):
    embed = FourierEmbedding(self.hidden_dim, name="rel_embedding")
    out = []
    for reverse in ((False, True) if bidirectional else (False,)):
      feats, has = _sorted_rel_features(pos, heading, mask, reverse)
      out.append(embed(feats) * has[..., None])
    return out if bidirectional else (out[0], None)


def _agent_kinematics(pos, heading, vel, valid):
  """QCNet's per-step agent features in the agent's own frame, ``(B, A, H, 6)``:
  ``[|m_t|, cos, sin angle(heading_t, m_t), |v_t|, cos, sin angle(heading_t, v_t)]`` with the
  motion vector ``m_t = p_t - p_{t-1}`` (0 at the first step or after a gap); angles as
  cosine and sine (see :func:`_continuous`)."""
  motion = pos - jnp.concatenate([pos[:, :, :1], pos[:, :, :-1]], axis=2)
  prev_valid = jnp.concatenate([jnp.zeros_like(valid[:, :, :1]), valid[:, :, :-1]], axis=2)
  motion = motion * (valid * prev_valid)[..., None]
  head_vec = jnp.stack([jnp.cos(heading), jnp.sin(heading)], -1)
  am = ops.angle_between_2d_vectors(head_vec, motion)
  av = ops.angle_between_2d_vectors(head_vec, vel)
  return jnp.stack([ops.safe_norm(motion), jnp.cos(am), jnp.sin(am), ops.safe_norm(vel),
                    jnp.cos(av), jnp.sin(av)], -1)


class _EncoderOptions(nn.Module):
  """The encoder's fields, shared by :class:`MambaTrajEncoder` and :class:`MambaTraj`."""
  hidden_dim: int = 128
  num_heads: int = 8
  d_state: int = 16
  time_span: int = 10
  map_radius: float = 50.0
  agent_map_radius: float = 50.0
  agent_radius: float = 50.0
  max_neighbours: int | None = None
  injection: str | None = "outer"
  sort_tokens: bool = True
  use_attention: bool = True
  use_ssm: bool = True
  dropout_rate: float = 0.1
  scan_method: str | None = None
  chunk_size: int = 64

  def encoder_options(self) -> dict:
    """These fields' values, as keyword arguments."""
    return {f.name: getattr(self, f.name) for f in dataclasses.fields(_EncoderOptions)
            if f.init and f.name not in ("parent", "name")}


class MambaTrajEncoder(_EncoderOptions):
  """The four ASB sub-encoders (spec Secs. 1, 2 "Sorting", 3).

  Attributes:
    hidden_dim, num_heads, d_state: widths.
    num_layers: ASBs per sub-encoder (the agent sub-encoders are interleaved per layer,
      trajectory -> agent-map -> agent-agent, as QCNet interleaves its attention).
    time_span: the trajectory encoder's local attention window (previous steps).
    map_radius, agent_map_radius, agent_radius: neighbourhood radii (m) for the map-map
      attention and the map degree, agent-map attention, agent-agent attention and degree.
    max_neighbours: ``None`` (dense attention) or the number of nearest neighbours kept.
    injection: eq. (5) state injection (``None``: the "no rho" ablation).
    sort_tokens: degree sorting (False: the "no sorting" ablation -- tokens stay in their
      arbitrary data order).
    use_attention, use_ssm: ASB ablation switches.
  """
  num_layers: int = 1

  def _block(self, name: str, bidirectional: bool):
    return AttentionSSMBlock(self.hidden_dim, self.num_heads, self.d_state, bidirectional,
                             self.injection, False, self.dropout_rate, self.use_attention,
                             self.use_ssm, self.scan_method, self.chunk_size, name=name)

  def _sort(self, degree, mask, train: bool):
    """Ascending degree, padded first (spec Sec. 2 "Sorting"). In training, ties are put in
    a random order drawn from the ``"sorting"`` rng stream, or the ``"dropout"`` stream when
    the caller gives only that (the engine does); in evaluation the sort is stable."""
    if not self.sort_tokens:
      return ops.sort_permutation(jnp.zeros_like(degree), mask)
    rng = None
    if train:
      stream = next((s for s in ("sorting", "dropout") if self.has_rng(s)), None)
      rng = None if stream is None else self.make_rng(stream)
    return ops.sort_permutation(degree, mask, rng)

  @nn.compact
  def __call__(self, scene: dict, history_steps: int, train: bool = False):
    """Encodes a batch of scenes.

    Returns:
      ``(agent_tokens (B, A, H, d), map_tokens (B, M, d))``.
    """
    d, h = self.hidden_dim, history_steps
    pos = scene["agent_position"][:, :, :h]
    head = scene["agent_heading"][:, :, :h]
    valid = scene["agent_valid"][:, :, :h] * scene["agent_mask"][:, :, None]
    b, a = pos.shape[:2]
    m_start, m_end = scene["map_start"], scene["map_end"]
    m_vec = m_end - m_start
    m_head = jnp.arctan2(m_vec[..., 1], m_vec[..., 0])
    m_mask = scene["map_mask"]
    m = m_start.shape[1]

    # Token embeddings: SE(2)-invariant inputs only.
    agent_type = nn.Embed(NUM_AGENT_TYPES, d, name="agent_type_embedding")(scene["agent_type"])
    x_a = FourierEmbedding(d, name="agent_embedding")(
        _agent_kinematics(pos, head, scene["agent_velocity"][:, :, :h], valid),
        [jnp.broadcast_to(agent_type[:, :, None], (b, a, h, d))])
    lane_type = nn.Embed(NUM_LANE_TYPES, d, name="lane_type_embedding")(scene["map_type"])
    x_m = FourierEmbedding(d, name="map_embedding")(ops.safe_norm(m_vec)[..., None],
                                                     [lane_type])

    # Map encoder: radius-graph attention, degree sort, bidirectional SSM.
    m_valid = m_mask > 0
    m_dist2 = jnp.sum(jnp.square(m_start[:, :, None] - m_start[:, None]), -1)
    m_nbr = (m_dist2 < self.map_radius ** 2) & m_valid[:, :, None] & m_valid[:, None, :]
    m_nbr = m_nbr & ~jnp.eye(m, dtype=bool)
    m_perm = self._sort(ops.radius_degree(m_start, m_mask, self.map_radius), m_mask, train)
    sorted_m = lambda t: ops.apply_permutation(t, m_perm, axis=1)
    m_rel_f, m_rel_b = _SequenceRel(d, name="map_sequence_rel")(
        sorted_m(m_start), sorted_m(m_head), sorted_m(m_mask), True)
    map_nb = _Neighbourhood(d, self.max_neighbours, name="map_neighbours")
    for i in range(self.num_layers):
      x_kv, rel, mask = map_nb(m_start, m_head, x_m, m_start, m_head, m_nbr)
      x_m = self._block(f"map_{i}", True)(
          x_m, x_kv=x_kv, rel=rel, attention_mask=mask, perm=m_perm, token_mask=m_mask,
          ssm_rel=m_rel_f if self.injection else None,
          ssm_rel_reverse=m_rel_b if self.injection else None, train=train)

    # Agent sequences.
    steps = jnp.arange(h)
    t_pos, t_head = pos.reshape(b * a, h, 2), head.reshape(b * a, h)
    t_valid = valid.reshape(b * a, h)
    lag = steps[:, None] - steps[None, :]
    t_nbr = ((lag > 0) & (lag <= self.time_span))[None] & (t_valid[:, :, None] > 0) & (
        t_valid[:, None, :] > 0)
    t_time = jnp.broadcast_to(steps.astype(pos.dtype), (b * a, h))
    t_rel, _ = _SequenceRel(d, name="trajectory_sequence_rel")(t_pos, t_head, t_valid, False)

    # Agent-map sequences: [map by degree || agent history], causal.
    am_pos = jnp.concatenate([jnp.repeat(sorted_m(m_start), a, 0), t_pos], 1)
    am_head = jnp.concatenate([jnp.repeat(sorted_m(m_head), a, 0), t_head], 1)
    am_mask = jnp.concatenate([jnp.repeat(sorted_m(m_mask), a, 0), t_valid], 1)
    am_rel, _ = _SequenceRel(d, name="agent_map_sequence_rel")(am_pos, am_head, am_mask, False)
    # Agent-map attention: agent token (a, t) -> map tokens within radius of p_t.
    q_pos, q_head = pos.reshape(b, a * h, 2), head.reshape(b, a * h)
    am_dist2 = jnp.sum(jnp.square(q_pos[:, :, None] - m_start[:, None]), -1)
    am_nbr = ((am_dist2 < self.agent_map_radius ** 2) & (valid.reshape(b, a * h, 1) > 0)
              & m_valid[:, None, :])

    # Agent-agent per time step.
    s_pos = pos.transpose(0, 2, 1, 3).reshape(b * h, a, 2)
    s_head = head.transpose(0, 2, 1).reshape(b * h, a)
    s_valid = valid.transpose(0, 2, 1).reshape(b * h, a)
    s_dist2 = jnp.sum(jnp.square(s_pos[:, :, None] - s_pos[:, None]), -1)
    s_nbr = ((s_dist2 < self.agent_radius ** 2) & (s_valid[:, :, None] > 0)
             & (s_valid[:, None, :] > 0) & ~jnp.eye(a, dtype=bool))
    s_perm = self._sort(ops.radius_degree(s_pos, s_valid, self.agent_radius), s_valid, train)
    sorted_s = lambda t: ops.apply_permutation(t, s_perm, axis=1)
    s_rel_f, s_rel_b = _SequenceRel(d, name="agent_agent_sequence_rel")(
        sorted_s(s_pos), sorted_s(s_head), sorted_s(s_valid), True)
    inj = lambda r: r if self.injection else None

    traj_nb = _Neighbourhood(d, None, name="trajectory_neighbours")
    agent_map_nb = _Neighbourhood(d, self.max_neighbours, name="agent_map_neighbours")
    agent_agent_nb = _Neighbourhood(d, self.max_neighbours, name="agent_agent_neighbours")
    x = x_a.reshape(b * a, h, d)
    for i in range(self.num_layers):
      x_kv, rel, mask = traj_nb(t_pos, t_head, x, t_pos, t_head, t_nbr, t_time, t_time)
      x = self._block(f"trajectory_{i}", False)(
          x, x_kv=x_kv, rel=rel, attention_mask=mask, token_mask=t_valid, ssm_rel=inj(t_rel),
          train=train)
      # Agent-map: each agent token attends to nearby lanes; then the causal SSM over
      # [map by degree || the agent's history]; only the history outputs are kept.
      x_kv, rel, mask = agent_map_nb(q_pos, q_head, x_m, m_start, m_head, am_nbr)
      if self.use_attention:
        x = AttentionLayer(d, self.num_heads, dropout_rate=self.dropout_rate, bipartite=True,
                           name=f"agent_map_{i}_attention")(
                               x.reshape(b, a * h, d), x_m if x_kv is None else x_kv, rel, mask,
                               train=train).reshape(b * a, h, d)
      if self.use_ssm:
        x = SSMBlock(d, self.d_state, False, self.injection, self.dropout_rate,
                     self.scan_method, self.chunk_size, name=f"agent_map_{i}_ssm")(
                         x, token_mask=t_valid, ssm_rel=inj(am_rel),
                         prefix=jnp.repeat(sorted_m(x_m), a, 0),
                         prefix_mask=jnp.repeat(sorted_m(m_mask), a, 0), train=train)
      # Agent-agent at each step.
      xs = x.reshape(b, a, h, d).transpose(0, 2, 1, 3).reshape(b * h, a, d)
      x_kv, rel, mask = agent_agent_nb(s_pos, s_head, xs, s_pos, s_head, s_nbr)
      xs = self._block(f"agent_agent_{i}", True)(
          xs, x_kv=x_kv, rel=rel, attention_mask=mask, perm=s_perm, token_mask=s_valid,
          ssm_rel=inj(s_rel_f), ssm_rel_reverse=inj(s_rel_b), train=train)
      x = xs.reshape(b, h, a, d).transpose(0, 2, 1, 3).reshape(b * a, h, d)
    return x.reshape(b, a, h, d), x_m


class _MLP(nn.Module):
  """Linear -> LayerNorm -> ReLU -> Linear (QCNet's MLPLayer)."""
  hidden_dim: int
  out_dim: int

  @nn.compact
  def __call__(self, x):
    x = nn.relu(nn.LayerNorm(epsilon=1e-5)(nn.Dense(self.hidden_dim)(x)))
    return nn.Dense(self.out_dim)(x)


class MambaTrajDecoder(nn.Module):
  """Mode-query decoder (spec Secs. 1, 3): DETR/QCNet-like.

  ``K`` learned mode embeddings are added to each agent's current token; each layer the
  ``(A, K)`` queries attend to the agent's own history tokens, the map tokens within
  ``map_radius`` and the other agents' current tokens within ``agent_radius`` (relative-pose
  attention from the agent's current pose), then to the other modes of the same agent. Heads:
  ``loc`` and ``scale`` (Laplace, ``elu + 1 + eps``) as cumulative sums of per-step outputs,
  in the agent's frame at the last history step, and one confidence logit per mode.
  """
  hidden_dim: int = 128
  num_heads: int = 8
  num_modes: int = 6
  future_steps: int = 12
  num_layers: int = 2
  map_radius: float = 50.0
  agent_radius: float = 50.0
  dropout_rate: float = 0.1
  min_scale: float = 1e-3

  @nn.compact
  def __call__(self, agent_tokens, map_tokens, scene: dict, history_steps: int,
               train: bool = False) -> dict:
    d, k, h, f = self.hidden_dim, self.num_modes, history_steps, self.future_steps
    b, a = agent_tokens.shape[:2]
    m = map_tokens.shape[1]
    pos = scene["agent_position"][:, :, :h]
    head = scene["agent_heading"][:, :, :h]
    valid = (scene["agent_valid"][:, :, :h] * scene["agent_mask"][:, :, None]) > 0
    cur_pos, cur_head, cur_valid = pos[:, :, -1], head[:, :, -1], valid[:, :, -1]
    m_start = scene["map_start"]
    m_vec = scene["map_end"] - m_start
    m_head = jnp.arctan2(m_vec[..., 1], m_vec[..., 0])
    m_valid = scene["map_mask"] > 0
    embed = lambda name, feats: FourierEmbedding(d, name=name)(feats)
    over_modes = lambda t: jnp.broadcast_to(t[:, :, None], t.shape[:2] + (k,) + t.shape[2:])

    # Relative features from each agent's current pose, shared by its K queries.
    steps = jnp.arange(h, dtype=pos.dtype)
    hist_rel = embed("history_rel_embedding", _rel(
        cur_pos[:, :, None], cur_head[:, :, None], pos, head,
        jnp.full((b, a, 1), h - 1, pos.dtype), jnp.broadcast_to(steps, (b, a, h))))
    hist_rel = over_modes(hist_rel).reshape(b * a, k, h, d)
    hist_mask = over_modes(valid).reshape(b * a, k, h)
    map_rel = embed("map_rel_embedding", _rel(
        cur_pos[:, :, None], cur_head[:, :, None], m_start[:, None], m_head[:, None]))
    dist2 = jnp.sum(jnp.square(cur_pos[:, :, None] - m_start[:, None]), -1)
    map_mask = (dist2 < self.map_radius ** 2) & cur_valid[:, :, None] & m_valid[:, None]
    map_rel = over_modes(map_rel).reshape(b, a * k, m, d)
    map_mask = over_modes(map_mask).reshape(b, a * k, m)
    ag_rel = embed("agent_rel_embedding", _rel(
        cur_pos[:, :, None], cur_head[:, :, None], cur_pos[:, None], cur_head[:, None]))
    dist2 = jnp.sum(jnp.square(cur_pos[:, :, None] - cur_pos[:, None]), -1)
    ag_mask = ((dist2 < self.agent_radius ** 2) & cur_valid[:, :, None] & cur_valid[:, None]
               & ~jnp.eye(a, dtype=bool))
    ag_rel = over_modes(ag_rel).reshape(b, a * k, a, d)
    ag_mask = over_modes(ag_mask).reshape(b, a * k, a)

    modes = self.param("mode_queries", nn.initializers.normal(1.0), (k, d))
    q = (agent_tokens[:, :, -1, None] + modes).reshape(b * a, k, d)
    hist = agent_tokens.reshape(b * a, h, d)
    current = agent_tokens[:, :, -1]
    layer = lambda name, bipartite=True: AttentionLayer(
        d, self.num_heads, dropout_rate=self.dropout_rate, bipartite=bipartite, name=name)
    for i in range(self.num_layers):
      q = layer(f"history_{i}")(q, hist, hist_rel, hist_mask, train=train)
      q = layer(f"map_{i}")(q.reshape(b, a * k, d), map_tokens, map_rel, map_mask, train=train)
      q = layer(f"agents_{i}")(q, current, ag_rel, ag_mask, train=train).reshape(b * a, k, d)
      q = layer(f"modes_{i}", False)(q, train=train)
    q = q.reshape(b, a, k, d)
    loc = jnp.cumsum(_MLP(d, f * 2, name="loc_head")(q).reshape(b, a, k, f, 2), axis=-2)
    scale = jnp.cumsum(scale_from_raw(_MLP(d, f * 2, name="scale_head")(q), self.min_scale
                                      ).reshape(b, a, k, f, 2), axis=-2)
    logits = _MLP(d, 1, name="confidence_head")(q)[..., 0]
    return {"loc": loc, "scale": scale, "logits": logits}


class MambaTraj(_EncoderOptions):
  """MambaTraj (spec Sec. 1): :class:`MambaTrajEncoder` then :class:`MambaTrajDecoder`.

  ``model.apply(variables, scene, train=...)`` with ``scene`` the dict of scene fields
  (:data:`jaxvision.train.tasks.SCENE_KEYS`, batch-first) returns ``{"loc", "scale":
  (B, A, K, F, 2), "logits": (B, A, K)}`` in each agent's frame at step ``H - 1``, with
  ``H = T - future_steps``. Fields: see the two sub-modules; ``encoder_layers`` and
  ``decoder_layers`` set their depths.
  """
  future_steps: int = 12
  num_modes: int = 6
  encoder_layers: int = 1
  decoder_layers: int = 2

  @nn.compact
  def __call__(self, scene: dict, train: bool = False) -> dict:
    total = scene["agent_position"].shape[2]
    history = total - self.future_steps
    if history < 2:
      raise ValueError(f"MambaTraj: scenes have {total} frames, so future_steps = "
                       f"{self.future_steps} leaves {history} history frames; expected >= 2.")
    agents, lanes = MambaTrajEncoder(num_layers=self.encoder_layers, **self.encoder_options(),
                                     name="encoder")(scene, history, train)
    return MambaTrajDecoder(self.hidden_dim, self.num_heads, self.num_modes, self.future_steps,
                            self.decoder_layers, self.map_radius, self.agent_radius,
                            self.dropout_rate, name="decoder")(agents, lanes, scene, history,
                                                               train)


@register_model("mambatraj")
def mambatraj(**kwargs) -> MambaTraj:
  """MambaTraj motion forecaster (Dong et al., ICPR 2024)."""
  return MambaTraj(**kwargs)
