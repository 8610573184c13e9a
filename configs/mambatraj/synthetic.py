r"""MambaTraj on the synthetic driving scenes (the CPU-scale, offline experiment).

  jaxvision train --config mambatraj/synthetic               # ~CPU scale
  jaxvision train --config mambatraj/synthetic:no_rho,seed=1  # Table 3 ablations
  jaxvision train --config mambatraj/synthetic:tiny           # seconds, for tests

Scenes of ``jaxvision.data.scenes`` (<= 8 agents, <= 64 lane segments, H = 10 history and
F = 12 future frames at 10 Hz), MambaTraj at ``hidden_dim`` 64 with one ASB per sub-encoder
and one decoder layer, K = 6 modes; AdamW (lr 5e-4 x batch/32, wd 1e-4, cosine), the QCNet
recipe of spec Sec. 3 scaled down. Evaluation: the focal agent's minADE/minFDE/MR at k = 1, 6
and brier-minFDE_6 (AV2 protocol).

Arguments (comma-separated): one variant of :data:`VARIANTS` (default ``full``; the Table 3
ablations), ``seed=N``, ``steps=N``, ``batch=N``, ``tiny``.
"""

import ml_collections

from jaxvision.train.config import parse_arg

# Table 3 rows: MambaTraj model-field overrides.
VARIANTS = {
    "full": {},
    "all_attention": dict(use_ssm=False),
    "all_ssm": dict(use_attention=False),
    "no_sorting": dict(sort_tokens=False),
    "no_rho": dict(injection=None),
}
HISTORY, FUTURE = 10, 12
BASE_BATCH = 32


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  o = parse_arg(arg, choices={"variant": tuple(VARIANTS)}, seed=0, steps=3000, batch=BASE_BATCH,
                tiny=False)
  c = ml_collections.ConfigDict()
  c.name = f"mambatraj_synthetic_{o['variant']}_seed{o['seed']}"
  c.seed = o["seed"]
  c.task = "motion_forecasting"
  c.loss = dict(name="laplace_wta", kwargs=dict(confidence_weight=1.0, miss_threshold=2.0))
  c.model_name = "mambatraj"
  c.model = dict(future_steps=FUTURE, num_modes=6, hidden_dim=64, num_heads=4, d_state=16,
                 encoder_layers=1, decoder_layers=1, time_span=HISTORY, map_radius=50.0,
                 agent_map_radius=30.0, agent_radius=50.0, dropout_rate=0.1,
                 **VARIANTS[o["variant"]])
  c.total_steps = o["steps"]
  c.data = dict(name="synthetic_scenes", global_batch_size=o["batch"], eval_batch_size=64,
                seed=o["seed"], augment=True,
                kwargs=dict(history_steps=HISTORY, future_steps=FUTURE, max_agents=8,
                            max_segments=64, num_examples=None, augment_se2=False))
  c.optimizer = dict(name="adamw", learning_rate=5e-4 * o["batch"] / BASE_BATCH,
                     schedule="cosine", warmup_steps=100, weight_decay=1e-4,
                     grad_clip_norm=5.0)
  c.checkpoint = dict(every_steps=500, keep=2)
  c.log_every_steps = 50
  c.eval_every_steps = 500
  if o["tiny"]:
    c.name += "_tiny"
    c.total_steps = 2
    c.model.update(hidden_dim=16, num_heads=2, d_state=4, decoder_layers=1, num_modes=3)
    c.data.global_batch_size = 8
    c.data.eval_batch_size = 8
    c.data.kwargs.update(num_examples=16, max_agents=4, max_segments=16)
    c.optimizer.warmup_steps = 0
    c.checkpoint = dict(every_steps=0, keep=1)
    c.log_every_steps = 1
    c.eval_every_steps = 0
  return c
