r"""MambaTraj on Argoverse 2 motion forecasting: the full-scale accelerator recipe.

  jaxvision train --config mambatraj/av2 --config.data.kwargs.data_dir=/path/to/av2/motion
  jaxvision train --config mambatraj/av2:no_rho,batch=64 --config.data.kwargs.data_dir=DIR
  jaxvision train --config mambatraj/av2:tiny    # seconds: synthetic scenes of AV2's shape

AV2 (spec Sec. 4; a local copy in the AV2 layout, read by ``jaxvision.data.av2``; the "test"
split of the engine reads AV2's ``val/``): H = 50 history, F = 60 future frames at 10 Hz,
up to 64 agents and 512 lane segments per scenario. The QCNet recipe (spec Sec. 3):
``hidden_dim`` 128, 8 heads, ``d_state`` 16, 2 ASBs per sub-encoder, 2 decoder layers,
K = 6, time span 10, radii 50 m, at most 32 attention neighbours per token (bounding the
relative-feature memory), AdamW lr 5e-4 at batch 32, wd 1e-4, cosine over 64 epochs,
dropout 0.1. Paper (AV2 test, Table 1): minFDE6 1.25, minADE6 0.63, MR6 0.16, b-FDE6 1.89.

Arguments: a variant of ``configs/mambatraj/synthetic.py``'s ``VARIANTS`` (Table 3 rows),
``batch=N``, ``epochs=N``, ``seed=N``, ``tiny``.
"""

import importlib.util
import pathlib

import ml_collections

from jaxvision.train.config import parse_arg

_spec = importlib.util.spec_from_file_location(
    "mambatraj_synthetic", pathlib.Path(__file__).with_name("synthetic.py"))
synthetic = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(synthetic)

TRAIN_SCENARIOS = 199_908
HISTORY, FUTURE = 50, 60
BASE_BATCH = 32


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  o = parse_arg(arg, choices={"variant": tuple(synthetic.VARIANTS)}, batch=BASE_BATCH, epochs=64,
                seed=0, tiny=False)
  c = ml_collections.ConfigDict()
  c.name = f"mambatraj_av2_{o['variant']}"
  c.seed = o["seed"]
  c.task = "motion_forecasting"
  c.loss = dict(name="laplace_wta", kwargs=dict(confidence_weight=1.0, miss_threshold=2.0))
  c.model_name = "mambatraj"
  c.model = dict(future_steps=FUTURE, num_modes=6, hidden_dim=128, num_heads=8, d_state=16,
                 encoder_layers=2, decoder_layers=2, time_span=10, map_radius=50.0,
                 agent_map_radius=50.0, agent_radius=50.0, max_neighbours=32,
                 dropout_rate=0.1, **synthetic.VARIANTS[o["variant"]])
  steps_per_epoch = TRAIN_SCENARIOS // o["batch"]
  c.total_steps = o["epochs"] * steps_per_epoch
  c.data = dict(name="av2_motion", global_batch_size=o["batch"], eval_batch_size=32,
                seed=o["seed"],
                kwargs=dict(data_dir=None, history_steps=HISTORY, future_steps=FUTURE,
                            max_agents=64, max_segments=512))
  c.optimizer = dict(name="adamw", learning_rate=5e-4 * o["batch"] / BASE_BATCH,
                     schedule="cosine", warmup_steps=steps_per_epoch, weight_decay=1e-4,
                     grad_clip_norm=5.0)
  c.checkpoint = dict(every_steps=steps_per_epoch, keep=3)
  c.log_every_steps = 100
  c.eval_every_steps = 4 * steps_per_epoch
  if o["tiny"]:
    c.name += "_tiny"
    c.total_steps = 2
    c.model.update(hidden_dim=16, num_heads=2, d_state=4, encoder_layers=1, decoder_layers=1,
                   max_neighbours=8)
    c.data = dict(name="synthetic_scenes", global_batch_size=8, eval_batch_size=8,
                  kwargs=dict(num_examples=8, history_steps=HISTORY, future_steps=FUTURE,
                              max_agents=4, max_segments=24))
    c.optimizer.warmup_steps = 0
    c.checkpoint = dict(every_steps=0, keep=1)
    c.log_every_steps = 1
    c.eval_every_steps = 0
  return c
