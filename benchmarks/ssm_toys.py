r"""The MambaTraj toy experiments (spec icpr-13 Secs. 6.11, 6.12): delayed recall and rho.

  python benchmarks/ssm_toys.py                 # both toys, every variant, 3 seeds
  python benchmarks/ssm_toys.py --quick         # 60 steps, one seed: a smoke run
  python benchmarks/ssm_toys.py --steps 200 --seeds 0 --tasks recall

Tiny models (``hidden_dim`` 32) built from :class:`jaxvision.models.mambatraj.AttentionSSMBlock`,
trained with plain Adam (lr 3e-3, batch 64) on data drawn fresh every step, the seeds of a
variant trained together (``jax.vmap``; one compiled train step and one test program per
variant, shared by the delayed-recall SSM variants, which differ only in the token order),
then tested on 2,048 held-out sequences per seed. A full run took 22 min on the 2-core CPU
while other jobs were running (0.5 s per step of three vmapped L = 64 models).

The uninformative tokens (:func:`noise_tokens`) are a constant "token type" feature plus
``TOKEN_NOISE * N(0, 1)`` noise (0.03) in the other features. Design note, measured while
building the toy (delayed recall, L = 64, 400 steps unless said): the ASB sits on a plateau
at chance before it learns the recall, and the length of that plateau grows with the token
noise, which only adds gradient noise. Unit noise without the constant feature: chance (seed
0; also at L = 16). Noise 0.1: the seeds left the plateau at steps 207, 302, 297 in one draw
of the data, but two of three seeds were still at chance after 400 steps in another; lr
1e-2 instead of 3e-3: no seed left it in 300 steps. Noise 0.03: steps 79-102 (3 seeds).

**1. Delayed recall (Sec. 6.11).** ``L = 64`` tokens of ``D_model = 32`` features: noise
tokens, with token 0 carrying the label ``+-1`` in feature 0 and a marker 1 in feature 1
(both 0 on the other tokens). The label is predicted by a linear head on the last token's
output. One block: causal local attention (each token attends to the previous
``window = 4``; no relative features) then, for the ASB, the pre-norm residual causal Mamba
(``N = 8``). Variants (``RECALL_VARIANTS``):

* ``attention``: local attention only (``use_ssm=False``). The last token's receptive field
  is tokens 59..63, so the claim is chance (50 %).
* ``asb``: local attention + causal Mamba in the given (chronological) order. Claim (the
  Table-3 "all local attention" row): >= 95 % after ~400 Adam steps (lr 3e-3, batch 64).
* ``asb_random_order`` (the "no sorting" ablation): a fresh uniformly random permutation per
  sequence before the SSM (``perm``), undone after it. The SSM reaches the read-out token
  from the tokens placed before it only. The label reaches the SSM through token 0 and,
  after the attention, through its attention neighbours 1..4, so if the model uses all of
  them the read-out sees the label unless it is placed before all five: probability
  ``1 - 1/6``, accuracy bound ``5/6 + 1/12 = 91.7 %`` (``75 %`` through token 0 alone).
* ``asb_label_last``: the spec's variant, a random order with the label token 0 moved to the
  end. Causality then cuts token 0 off, but not tokens 1..4 that attended to it: bound
  ``4/5 + 1/10 = 90 %`` (chance if the attention does not relay the label).
* ``asb_window_last``: the label token and its attention window (tokens 0..4) moved to the end
  in random order: every path to the read-out is cut, so chance by causality.

**2. rho matters (Sec. 6.12).** A random walk of ``L = 16`` 2-D poses: heading
``theta_t = theta_{t-1} + U(-0.5, 0.5)`` rad, position ``p_t = p_{t-1} + U(0.5, 1.5) m *
(cos theta_t, sin theta_t)``, from a uniformly random global pose. Tokens are
:func:`noise_tokens` (nothing about the pose); the relative pose ``r_{t,t-1}``
(:func:`jaxvision.ops.relative_pose_features` of token ``t-1`` seen from token ``t``; zero
row at ``t = 0``) is embedded with :class:`jaxvision.nn.FourierEmbedding`. Target: token 0's
position in the last token's frame (:func:`jaxvision.ops.to_local_frame`), which the chain of
``r_{t,t-1}`` determines exactly (an SE(2) composition: each step rotates the running
estimate, so it is not a sum of per-step terms); 2-D regression with MSE (m^2) from a linear
head on the last token. Same block as above (attention without relative features).
Variants (``POSE_VARIANTS``):

* ``no_rho``: injection ``None`` and no relative pose anywhere: the model has no information
  and can at best predict the mean target.
* ``rel_in_tokens``: the fair baseline: injection ``None``, the same embedding *added* to the
  token features (equivalent to concatenation followed by a linear map), so the pose reaches
  the attention and every Mamba projection (including ``Delta``, ``B``, ``C``).
* ``rel_in_ssm_input``: as ``rel_in_tokens``, but the embedding is added after the attention,
  to the SSM's input only (the same block split in its two halves), so the attention cannot
  pool the relative poses of the previous tokens: the SSM alone integrates them, as with rho.
* ``rho``: the ASB with the eq. (5) injection (``"outer"``), the embedding passed as
  ``ssm_rel`` only.

Claim (the Table-3 "no rho injection" row): ``rho`` has lower MSE than without rho. Also
reported: the MSE of predicting 0 and of predicting the mean target.

Writes ``benchmarks/results/ssm_toys.json`` (every setting, per-seed numbers, medians, the
learning curves), ``ssm_toys.md`` (tables) and ``ssm_toys.png`` (learning curves).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from benchmarks.common import cpu_name  # noqa: E402
from jaxvision import ops  # noqa: E402
from jaxvision.models.mambatraj import AttentionSSMBlock, SSMBlock  # noqa: E402
from jaxvision.nn.attention import FourierEmbedding  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

HIDDEN = 32
NUM_HEADS = 4
D_STATE = 8
WINDOW = 4
RECALL_LENGTH = 64
POSE_LENGTH = 16
POSE_MAX_TURN = 0.5          # rad per step, uniform in +-
POSE_STEP = (0.5, 1.5)       # metres per step, uniform
POSE_OUTPUT_SCALE = 5.0      # the pose head predicts target / 5 m
BATCH = 64
LEARNING_RATE = 3e-3
TEST_SIZE = 2048
EVAL_BATCH = 512
SMOOTH = 20                  # moving-average width of the plotted learning curves
SCAN_METHOD = None           # selective_scan's backend default ("chunked" on CPU: the fastest
                             # of the three methods here, seeds vmapped)
TOKEN_NOISE = 0.03           # noise scale of the uninformative token features

# name -> (use_ssm, token order before the SSM)
RECALL_VARIANTS = {
    "attention": (False, "given"),
    "asb": (True, "given"),
    "asb_random_order": (True, "random"),
    "asb_label_last": (True, "label_last"),
    "asb_window_last": (True, "window_last"),
}
ORDERS = ("given", "random", "label_last", "window_last")
# The best accuracy causality allows: (if the attention relays the label from token 0 to its
# neighbours 1..4, through token 0 only). See the module docstring.
RECALL_BOUNDS = {"attention": (0.5, 0.5), "asb": (1.0, 1.0),
                 "asb_random_order": (11 / 12, 3 / 4), "asb_label_last": (0.9, 0.5),
                 "asb_window_last": (0.5, 0.5)}
POSE_VARIANTS = ("no_rho", "rel_in_tokens", "rel_in_ssm_input", "rho")
REL_MODES = (None, "tokens", "ssm_input", "ssm")


# ------------------------------------------------------------------------------------------
# Shared pieces.


def local_causal_mask(length: int, window: int) -> jax.Array:
  """bool ``(length, length)``: query ``i`` attends to key ``j`` iff ``1 <= i - j <= window``
  (the previous ``window`` tokens; the token itself enters through the residual)."""
  lag = jnp.arange(length)[:, None] - jnp.arange(length)[None, :]
  return (lag >= 1) & (lag <= window)


class ToyASB(nn.Module):
  """One ASB over ``(batch, L, hidden_dim)`` tokens and a linear head on the last token.

  Attributes:
    out_dim: head outputs.
    use_ssm: the SSM half (False: local attention only).
    injection: eq. (5) injection of the SSM (``None`` | ``"outer"`` | ``"full"``).
    rel_mode: ``None`` (no relative pose), ``"tokens"`` (the embedded ``rel`` is added to the
      input tokens), ``"ssm_input"`` (added to the tokens after the attention, before the
      SSM; no injection) or ``"ssm"`` (passed as ``ssm_rel``; needs ``injection``).
    hidden_dim, num_heads, d_state, window: sizes.
  """
  out_dim: int
  use_ssm: bool = True
  injection: str | None = None
  rel_mode: str | None = None
  hidden_dim: int = HIDDEN
  num_heads: int = NUM_HEADS
  d_state: int = D_STATE
  window: int = WINDOW
  scan_method: str | None = SCAN_METHOD

  @nn.compact
  def __call__(self, x, perm=None, rel=None, rel_valid=None):
    """Args:
      x: float32 ``(batch, L, hidden_dim)`` token features.
      perm: optional int ``(batch, L)`` token order of the SSM (``None``: as given).
      rel: optional float32 ``(batch, L, 3)`` raw ``r_{t,t-1}`` features (in the SSM order).
      rel_valid: float32 ``(batch, L)``, 0 where a token has no predecessor.

    Returns:
      float32 ``(batch, out_dim)``.
    """
    if self.rel_mode not in REL_MODES:
      raise ValueError(f"`rel_mode` must be one of {REL_MODES}; found {self.rel_mode!r}.")
    b, length, _ = x.shape
    emb = None
    if self.rel_mode is not None:
      emb = FourierEmbedding(self.hidden_dim, name="rel_embedding")(rel) * rel_valid[..., None]
    if self.rel_mode == "tokens":
      x = x + emb
    mask = jnp.broadcast_to(local_causal_mask(length, self.window), (b, length, length))
    if self.rel_mode == "ssm_input":
      # The ASB computation split in its two halves, with the pose added in between.
      x = AttentionSSMBlock(self.hidden_dim, self.num_heads, dropout_rate=0.0, use_ssm=False,
                            name="asb")(x, attention_mask=mask)
      x = SSMBlock(self.hidden_dim, self.d_state, injection=None, dropout_rate=0.0,
                   scan_method=self.scan_method, name="ssm_block")(x + emb, perm=perm)
    else:
      ssm_kw = dict(perm=perm, ssm_rel=emb if self.rel_mode == "ssm" else None)
      x = AttentionSSMBlock(self.hidden_dim, self.num_heads, self.d_state,
                            injection=self.injection, dropout_rate=0.0, use_ssm=self.use_ssm,
                            scan_method=self.scan_method, name="asb")(
                                x, attention_mask=mask, **(ssm_kw if self.use_ssm else {}))
    return nn.Dense(self.out_dim, name="head")(nn.LayerNorm(name="head_norm")(x[:, -1]))


def fit(model: nn.Module, sample, loss_fn, metric_fn, seeds: list[int], steps: int,
        option: int = 0, lr: float = LEARNING_RATE, test_size: int = TEST_SIZE,
        cache: dict | None = None) -> dict:
  """Trains one ``model`` per seed with Adam on fresh batches and tests it on held-out ones.

  The seeds are trained together (``jax.vmap`` over the parameters, optimiser states and
  data keys), so a variant compiles one train step and one test program.

  Args:
    model: maps ``*inputs`` to predictions.
    sample: ``(key, batch, option) -> (inputs tuple, target)``; ``option`` is a traced int32
      scalar (e.g. the token order), so variants that differ only in it share the programs.
    loss_fn: ``(pred, target) -> scalar`` training loss.
    metric_fn: ``(pred, target) -> (batch,)`` per-example test metric (its mean is reported).
    seeds: seed ``s`` draws the init and the training batches from ``PRNGKey(s)`` and the test
      set from ``PRNGKey(10_000 + s)`` (so every variant sees the same test sequences).
    steps: Adam steps at batch ``BATCH``.
    option: passed to ``sample``.
    lr: Adam learning rate.
    test_size: held-out sequences per seed (a multiple of ``EVAL_BATCH``).
    cache: dict keeping the jitted programs between calls with the same model, task and
      ``test_size`` (the first call's are compiled and kept).

  Returns:
    ``{"test": [per seed], "loss_curve": [steps][seeds], "metric_curve": [steps][seeds],
    "seconds": float}``: the test metric and the training-batch loss / mean metric of every
    step.
  """
  cache = {} if cache is None else cache
  tx = optax.adam(lr)
  if "step" not in cache:
    def loss_and_metric(params, key, option):
      inputs, target = sample(key, BATCH, option)
      pred = model.apply({"params": params}, *inputs)
      return loss_fn(pred, target), jnp.mean(metric_fn(pred, target))

    def step(params, opt_state, key, option):
      (loss, metric), grads = jax.value_and_grad(loss_and_metric, has_aux=True)(
          params, key, option)
      updates, opt_state = tx.update(grads, opt_state, params)
      return optax.apply_updates(params, updates), opt_state, loss, metric

    def evaluate(params, key, option):
      def one(k):
        inputs, target = sample(k, EVAL_BATCH, option)
        return metric_fn(model.apply({"params": params}, *inputs), target)
      return jnp.mean(jax.lax.map(one, jax.random.split(key, test_size // EVAL_BATCH)))

    def init(key, option):
      inputs, _ = sample(key, BATCH, option)
      params = model.init(key, *inputs)["params"]
      return params, tx.init(params)

    cache["init"] = jax.jit(jax.vmap(init, in_axes=(0, None)))
    cache["step"] = jax.jit(jax.vmap(step, in_axes=(0, 0, 0, None)))
    cache["evaluate"] = jax.jit(jax.vmap(evaluate, in_axes=(0, 0, None)))
  t0 = time.perf_counter()
  option = jnp.int32(option)
  init_keys, data_keys = jnp.stack(
      [jnp.stack(jax.random.split(jax.random.PRNGKey(s))) for s in seeds], 1)
  step_keys = jax.vmap(lambda k: jax.random.split(k, steps), out_axes=1)(data_keys)
  params, opt_state = cache["init"](init_keys, option)
  losses, metrics = [], []
  for keys in step_keys:
    params, opt_state, loss, metric = cache["step"](params, opt_state, keys, option)
    losses.append(loss)
    metrics.append(metric)
  test_keys = jnp.stack([jax.random.PRNGKey(10_000 + s) for s in seeds])
  test = np.asarray(cache["evaluate"](params, test_keys, option))
  return {"test": test.tolist(), "loss_curve": np.asarray(losses).tolist(),
          "metric_curve": np.asarray(metrics).tolist(), "seconds": time.perf_counter() - t0}


# ------------------------------------------------------------------------------------------
# 1. Delayed recall.


def noise_tokens(key: jax.Array, batch: int, length: int, d_model: int = HIDDEN) -> jax.Array:
  """float32 ``(batch, length, d_model)`` uninformative tokens: feature 2 is a constant 1 (a
  "token type"), features 3.. are ``TOKEN_NOISE * N(0, 1)``, features 0 and 1 are 0."""
  noise = TOKEN_NOISE * jax.random.normal(key, (batch, length, d_model - 3))
  return jnp.concatenate([jnp.zeros((batch, length, 2)), jnp.ones((batch, length, 1)), noise], -1)


def recall_batch(key: jax.Array, batch: int, length: int = RECALL_LENGTH,
                 d_model: int = HIDDEN) -> tuple[jax.Array, jax.Array]:
  """Delayed-recall sequences.

  Returns:
    ``(x float32 (batch, length, d_model), label float32 (batch,) in {0, 1})``:
    :func:`noise_tokens`, with feature 0 = the label ``2 label - 1`` and feature 1 = a marker 1
    on token 0.
  """
  k_x, k_y = jax.random.split(key)
  label = jax.random.bernoulli(k_y, 0.5, (batch,)).astype(jnp.float32)
  x = noise_tokens(k_x, batch, length, d_model)
  return x.at[:, 0, 0].set(2 * label - 1).at[:, 0, 1].set(1.0), label


def recall_permutation(key: jax.Array, batch: int, length: int, order: str | jax.Array,
                       window: int = WINDOW) -> jax.Array:
  """int32 ``(batch, length)`` SSM order: ``perm[:, s]`` is the token at position ``s``.

  ``order`` (a name, or its index in ``ORDERS``, possibly traced): ``"given"`` (the identity),
  ``"random"`` (uniform, fresh per sequence), ``"label_last"`` (uniform with token 0 last),
  ``"window_last"`` (uniform with tokens ``0..window`` last, in random order). The random
  orders are the argsort of ``U(0, 1)`` keys, plus 2 on the tokens sent to the end.
  """
  if isinstance(order, str):
    if order not in ORDERS:
      raise ValueError(f"`order` must be one of {ORDERS}; found {order!r}.")
    order = ORDERS.index(order)
  token = jnp.arange(length)
  tail = jnp.where(order == ORDERS.index("label_last"), token == 0,
                   (order == ORDERS.index("window_last")) & (token <= window))
  sort_key = jax.random.uniform(key, (batch, length)) + 2.0 * tail
  sort_key = jnp.where(order == ORDERS.index("given"), token.astype(sort_key.dtype), sort_key)
  return jnp.argsort(sort_key, axis=1).astype(jnp.int32)


def recall_task(length: int = RECALL_LENGTH):
  """``(sample, loss_fn, metric_fn)`` for :func:`fit`: logistic loss, accuracy; the ``option``
  of ``sample`` indexes ``ORDERS``."""
  def sample(key, batch, option):
    k_data, k_perm = jax.random.split(key)
    x, label = recall_batch(k_data, batch, length)
    perm = recall_permutation(k_perm, batch, length, option)
    return (x, perm), label

  def loss_fn(logits, label):
    return jnp.mean(optax.sigmoid_binary_cross_entropy(logits[:, 0], label))

  def metric_fn(logits, label):
    return ((logits[:, 0] > 0) == (label > 0.5)).astype(jnp.float32)
  return sample, loss_fn, metric_fn


# ------------------------------------------------------------------------------------------
# 2. rho matters.


def pose_batch(key: jax.Array, batch: int, length: int = POSE_LENGTH,
               d_model: int = HIDDEN) -> dict:
  """Random-walk pose sequences (see the module docstring).

  Returns:
    dict of float32 ``tokens (batch, length, d_model)`` (:func:`noise_tokens`),
    ``position (batch, length, 2)``, ``heading (batch, length)``, ``rel (batch, length, 3)``
    (``r_{t,t-1}``, row 0 zero), ``rel_valid (batch, length)`` (0 at ``t = 0``) and
    ``target (batch, 2)``: token 0's position in the last token's frame.
  """
  k_tok, k_pos, k_head, k_turn, k_step = jax.random.split(key, 5)
  turn = jax.random.uniform(k_turn, (batch, length - 1), minval=-POSE_MAX_TURN,
                            maxval=POSE_MAX_TURN)
  step = jax.random.uniform(k_step, (batch, length - 1), minval=POSE_STEP[0],
                            maxval=POSE_STEP[1])
  heading0 = jax.random.uniform(k_head, (batch, 1), minval=-jnp.pi, maxval=jnp.pi)
  heading = heading0 + jnp.concatenate([jnp.zeros((batch, 1)), jnp.cumsum(turn, 1)], 1)
  move = step[..., None] * jnp.stack([jnp.cos(heading[:, 1:]), jnp.sin(heading[:, 1:])], -1)
  position = jax.random.uniform(k_pos, (batch, 1, 2), minval=-100.0, maxval=100.0)
  position = position + jnp.concatenate([jnp.zeros((batch, 1, 2)), jnp.cumsum(move, 1)], 1)
  heading = ops.wrap_angle(heading)
  rel = ops.relative_pose_features(position[:, 1:], heading[:, 1:], position[:, :-1],
                                   heading[:, :-1])
  rel = jnp.concatenate([jnp.zeros((batch, 1, 3)), rel], 1)
  rel_valid = jnp.concatenate([jnp.zeros((batch, 1)), jnp.ones((batch, length - 1))], 1)
  target = ops.to_local_frame(position[:, 0], position[:, -1], heading[:, -1])
  return {"tokens": noise_tokens(k_tok, batch, length, d_model), "position": position,
          "heading": heading, "rel": rel, "rel_valid": rel_valid, "target": target}


def pose_model(variant: str) -> ToyASB:
  """The :class:`ToyASB` of a ``POSE_VARIANTS`` entry (2 outputs)."""
  if variant not in POSE_VARIANTS:
    raise ValueError(f"`variant` must be one of {POSE_VARIANTS}; found {variant!r}.")
  return {"no_rho": ToyASB(2),
          "rel_in_tokens": ToyASB(2, rel_mode="tokens"),
          "rel_in_ssm_input": ToyASB(2, rel_mode="ssm_input"),
          "rho": ToyASB(2, injection="outer", rel_mode="ssm")}[variant]


def pose_task(variant: str):
  """``(sample, loss_fn, metric_fn)`` for :func:`fit`: MSE (m^2, mean over x, y)."""
  def sample(key, batch, option):
    del option
    b = pose_batch(key, batch)
    if variant == "no_rho":
      return (b["tokens"],), b["target"]
    return (b["tokens"], None, b["rel"], b["rel_valid"]), b["target"]

  def metric_fn(pred, target):
    return jnp.mean(jnp.square(POSE_OUTPUT_SCALE * pred - target), -1)

  def loss_fn(pred, target):
    return jnp.mean(metric_fn(pred, target)) / POSE_OUTPUT_SCALE ** 2
  return sample, loss_fn, metric_fn


def pose_baselines(seed: int, test_size: int = TEST_SIZE) -> dict:
  """Test MSE of predicting 0 and of predicting the mean target (estimated on 16,384
  training-distribution samples), on the same test set :func:`fit` uses."""
  targets = jax.jit(lambda k, n: pose_batch(k, n)["target"], static_argnums=1)
  mean = jnp.mean(targets(jax.random.PRNGKey(20_000 + seed), 16_384), 0)
  keys = jax.random.split(jax.random.PRNGKey(10_000 + seed), test_size // EVAL_BATCH)
  target = jnp.concatenate([targets(k, EVAL_BATCH) for k in keys])
  return {"zero": float(jnp.mean(jnp.square(target))),
          "mean": float(jnp.mean(jnp.square(target - mean))), "mean_target": mean.tolist()}


# ------------------------------------------------------------------------------------------
# Driver.


def _summary(run: dict, seeds: list[int], lower_is_better: bool) -> dict:
  tests = run["test"]
  return {"median": statistics.median(tests), "per_seed": tests, "seeds": seeds,
          "best": (min if lower_is_better else max)(tests), "seconds": run["seconds"],
          "curve_median": np.median(run["metric_curve"], 1).tolist(),
          "loss_curve_median": np.median(run["loss_curve"], 1).tolist(),
          "metric_curve": run["metric_curve"]}


def run_recall(steps: int, seeds: list[int], variants: list[str], log=print) -> dict:
  """Trains and tests the ``RECALL_VARIANTS`` (the SSM ones share one compiled program)."""
  out, caches = {}, {}
  for name in variants:
    use_ssm, order = RECALL_VARIANTS[name]
    r = fit(ToyASB(1, use_ssm=use_ssm), *recall_task(), seeds, steps,
            option=ORDERS.index(order), cache=caches.setdefault(use_ssm, {}))
    log(f"recall {name:>17}: test accuracy {', '.join(f'{v:.4f}' for v in r['test'])} "
        f"(seeds {seeds}; {r['seconds']:.0f} s)")
    out[name] = {"use_ssm": use_ssm, "order": order, **_summary(r, seeds, False)}
  return out


def run_pose(steps: int, seeds: list[int], variants: list[str], log=print) -> dict:
  """Trains and tests the ``POSE_VARIANTS``; adds the trivial baselines."""
  out = {"baselines": {str(s): pose_baselines(s) for s in seeds}}
  log("pose baselines (test MSE, m^2): " + ", ".join(
      f"seed {s}: zero {b['zero']:.2f}, mean {b['mean']:.2f}"
      for s, b in out["baselines"].items()))
  for name in variants:
    r = fit(pose_model(name), *pose_task(name), seeds, steps)
    log(f"pose {name:>13}: test MSE {', '.join(f'{v:.3f}' for v in r['test'])} m^2 "
        f"(seeds {seeds}; {r['seconds']:.0f} s)")
    out[name] = _summary(r, seeds, True)
  return out


def _smooth(y, width: int):
  y = np.asarray(y, float)
  width = max(1, min(width, len(y)))
  return np.convolve(y, np.ones(width) / width, mode="valid")


def plot(report: dict, path: Path) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  panels = [k for k in ("recall", "pose") if k in report]
  fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 4.2), squeeze=False)
  for ax, task in zip(axes[0], panels):
    for name, s in report[task].items():
      if name == "baselines":
        continue
      y = _smooth(s["curve_median"], SMOOTH)
      ax.plot(np.arange(len(y)) + len(s["curve_median"]) - len(y) + 1, y,
              label=f"{name} (test {s['median']:.3g})")
    if task == "recall":
      ax.axhline(0.5, color="k", lw=0.8, ls=":")
      ax.set_ylabel(f"training-batch accuracy\n(median of seeds, {SMOOTH}-step mean)")
      ax.set_title(f"Delayed recall, L = {RECALL_LENGTH}")
    else:
      base = statistics.median(b["mean"] for b in report["pose"]["baselines"].values())
      ax.axhline(base, color="k", lw=0.8, ls=":", label=f"predict mean ({base:.3g})")
      ax.set_yscale("log")
      ax.set_ylabel(f"training-batch MSE, m^2\n(median of seeds, {SMOOTH}-step mean)")
      ax.set_title(f"Token 0 in the last frame, L = {POSE_LENGTH}")
    ax.set_xlabel("Adam step")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def markdown(report: dict) -> str:
  cfg = report["config"]
  lines = [f"# MambaTraj toy experiments (spec Secs. 6.11, 6.12)\n",
           f"{cfg['steps']} Adam steps (lr {cfg['learning_rate']}, batch {cfg['batch']}), "
           f"seeds {cfg['seeds']}, test on {cfg['test_size']} fresh sequences; "
           f"hidden {HIDDEN}, N = {D_STATE}, attention window {WINDOW}. "
           f"{report['seconds']:.0f} s on {report['cpu']}.\n"]
  if "recall" in report:
    lines += [f"## Delayed recall (L = {RECALL_LENGTH})\n",
              "| variant | SSM order | median test accuracy | per seed | causal bound (with / "
              "without attention relay) |", "|---|---|---|---|---|"]
    for name, s in report["recall"].items():
      order = s["order"] if s["use_ssm"] else "(no SSM)"
      lines.append(f"| {name} | {order} | {s['median']:.4f} | "
                   f"{', '.join(f'{v:.4f}' for v in s['per_seed'])} | "
                   f"{' / '.join(f'{b:.3f}' for b in RECALL_BOUNDS[name])} |")
    lines.append("")
  if "pose" in report:
    pose = report["pose"]
    lines += [f"## rho injection (L = {POSE_LENGTH}, MSE in m^2)\n",
              "| variant | median test MSE | per seed |", "|---|---|---|"]
    for name, s in pose.items():
      if name != "baselines":
        lines.append(f"| {name} | {s['median']:.3f} | "
                     f"{', '.join(f'{v:.3f}' for v in s['per_seed'])} |")
    for kind in ("zero", "mean"):
      vals = [b[kind] for b in pose["baselines"].values()]
      lines.append(f"| predict {kind} | {statistics.median(vals):.3f} | "
                   f"{', '.join(f'{v:.3f}' for v in vals)} |")
    lines.append("")
  if report.get("claims"):
    lines += ["## Claims\n"] + [f"- {c}" for c in report["claims"]] + [""]
  lines += ["Reading (module docstring of `benchmarks/ssm_toys.py`): a random SSM order hides "
            "the label from the read-out only when the read-out token comes before token 0 "
            "*and* before the tokens 1..4 that attended to it, so the causal bounds are "
            "11/12 (random), 9/10 (label token last) and 1/2 (label token and its attention "
            "window last). The no-rho model has no pose information (its MSE is the "
            "predict-the-mean MSE); `rel_in_tokens` / `rel_in_ssm_input` give the same "
            "embedded relative pose to the tokens (before / after the attention) instead of "
            "the eq. (5) injection.", ""]
  lines.append("![learning curves](ssm_toys.png)\n")
  return "\n".join(lines)


def claims(report: dict) -> list[str]:
  out = []
  rec = report.get("recall", {})
  if "asb" in rec:
    ok = rec["asb"]["median"] >= 0.95
    out.append(f"ASB >= 95 %: {'reproduced' if ok else 'NOT reproduced'} "
               f"(median {rec['asb']['median']:.4f}).")
  if "attention" in rec:
    ok = abs(rec["attention"]["median"] - 0.5) < 0.05
    out.append(f"local attention alone near chance: {'reproduced' if ok else 'NOT reproduced'} "
               f"(median {rec['attention']['median']:.4f}).")
  for name in ("asb_random_order", "asb_label_last", "asb_window_last"):
    if name in rec:
      relay, direct = RECALL_BOUNDS[name]
      m = rec[name]["median"]
      drop = f"{rec['asb']['median'] - m:.4f} below asb; " if "asb" in rec else ""
      out.append(f"{name} (no sorting): median {m:.4f}, {drop}at chance: "
                 f"{'yes' if abs(m - 0.5) < 0.05 else 'no'} (causal bound {relay:.3f} with the "
                 f"attention relaying the label, {direct:.3f} without).")
  pose = report.get("pose", {})
  if "rho" in pose:
    for other in POSE_VARIANTS[:-1]:
      if other in pose:
        ok = pose["rho"]["median"] < pose[other]["median"]
        out.append(f"rho lower MSE than {other}: {'yes' if ok else 'no'} "
                   f"({pose['rho']['median']:.3f} vs {pose[other]['median']:.3f} m^2).")
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--steps", type=int, default=400)
  parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
  parser.add_argument("--tasks", nargs="+", default=["recall", "pose"],
                      choices=["recall", "pose"])
  parser.add_argument("--recall-variants", nargs="+", default=list(RECALL_VARIANTS),
                      choices=list(RECALL_VARIANTS))
  parser.add_argument("--pose-variants", nargs="+", default=list(POSE_VARIANTS),
                      choices=list(POSE_VARIANTS))
  parser.add_argument("--quick", action="store_true", help="60 steps, seed 0")
  parser.add_argument("--out", default=str(RESULTS))
  parser.add_argument("--render", action="store_true",
                      help="only rewrite the markdown, claims and figure from OUT/ssm_toys.json")
  args = parser.parse_args()
  out = Path(args.out)
  if args.render:
    report = json.loads((out / "ssm_toys.json").read_text())
    report["claims"] = claims(report)
    write(report, out)
    return
  if args.quick:
    args.steps, args.seeds = 60, [0]
  cache = Path(tempfile.gettempdir()) / "jaxvision_repro_cache"
  jax.config.update("jax_compilation_cache_dir", str(cache))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
  t0 = time.perf_counter()
  report = {"config": {"steps": args.steps, "seeds": args.seeds, "batch": BATCH,
                       "learning_rate": LEARNING_RATE, "test_size": TEST_SIZE,
                       "hidden_dim": HIDDEN, "num_heads": NUM_HEADS, "d_state": D_STATE,
                       "window": WINDOW, "recall_length": RECALL_LENGTH,
                       "pose_length": POSE_LENGTH, "pose_max_turn": POSE_MAX_TURN,
                       "pose_step": POSE_STEP, "pose_output_scale": POSE_OUTPUT_SCALE,
                       "token_noise": TOKEN_NOISE, "scan_method": SCAN_METHOD},
            "cpu": cpu_name(), "platform": platform.platform(), "jax": jax.__version__}
  log = lambda s: print(s, flush=True)
  if "recall" in args.tasks:
    report["recall"] = run_recall(args.steps, args.seeds, args.recall_variants, log)
  if "pose" in args.tasks:
    report["pose"] = run_pose(args.steps, args.seeds, args.pose_variants, log)
  report["seconds"] = time.perf_counter() - t0
  report["claims"] = claims(report)
  write(report, out)


def write(report: dict, out: Path) -> None:
  """Writes ``ssm_toys.{json,md,png}`` into ``out``."""
  out.mkdir(parents=True, exist_ok=True)
  (out / "ssm_toys.json").write_text(json.dumps(report, indent=1) + "\n")
  plot(report, out / "ssm_toys.png")
  md = markdown(report)
  (out / "ssm_toys.md").write_text(md)
  print(md)


if __name__ == "__main__":
  main()
