"""MambaTraj: outputs, SE(2) invariance, padding invariance, ablations, configs, the task."""

import numpy as np
import jax
import jax.numpy as jnp
import pytest

from jaxvision import data, models, ops
from jaxvision.train import config as config_lib
from jaxvision.train import tasks, trainer

HISTORY, FUTURE = 6, 4
TINY = dict(future_steps=FUTURE, num_modes=3, hidden_dim=16, num_heads=2, d_state=4,
            encoder_layers=1, decoder_layers=1, time_span=3, dropout_rate=0.0)


@pytest.fixture(scope="module")
def scenes():
  src = data.create_dataset("synthetic_scenes", "test", num_examples=4, max_agents=4,
                            max_segments=16, history_steps=HISTORY, future_steps=FUTURE)
  return src.get(np.arange(2))


@pytest.fixture(scope="module")
def tiny(scenes):
  """The tiny model with random parameters of the initialiser's shapes (the properties
  tested hold for any parameters; this skips compiling the initialiser)."""
  model = models.create_model("mambatraj", **TINY)
  inp = tasks.motion_forecasting().model_input(scenes)
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), inp)
  rng = np.random.default_rng(0)
  variables = jax.tree.map(
      lambda s: jnp.asarray(rng.normal(0.0, 0.3, s.shape), s.dtype), shapes)
  return model, variables, jax.jit(lambda v, x: model.apply(v, x))


def _real(out, scene):
  """Outputs of the agents observed at the current step (the others have no frame to
  predict in: padded slots, or agents that left the scene)."""
  keep = (np.asarray(scene["agent_mask"]) * np.asarray(scene["agent_valid"][:, :, HISTORY - 1])
          ) > 0
  return {k: np.asarray(v)[keep] for k, v in out.items()}


def test_outputs_shapes_and_laplace_scale(tiny, scenes):
  model, variables, apply = tiny
  out = apply(variables, tasks.motion_forecasting().model_input(scenes))
  a = scenes["agent_position"].shape[1]
  assert out["loc"].shape == (2, a, 3, FUTURE, 2) == out["scale"].shape
  assert out["logits"].shape == (2, a, 3)
  assert all(bool(jnp.all(jnp.isfinite(v))) for v in out.values())
  # The scale is a cumulative sum of positive per-step scales: positive and increasing.
  assert bool(jnp.all(out["scale"] > 0)) and bool(jnp.all(jnp.diff(out["scale"], axis=-2) > 0))


def test_predictions_are_invariant_to_a_rigid_motion_of_the_scene(tiny, scenes):
  """Spec Sec. 6.8: every input is local-frame or relative, outputs are in agent frames."""
  _, variables, apply = tiny
  angle, shift = 1.234, jnp.array([250.0, -80.0])
  moved = dict(scenes)
  pos, head = ops.se2_apply(scenes["agent_position"], scenes["agent_heading"], angle, shift)
  moved["agent_position"] = pos * scenes["agent_valid"][..., None]
  moved["agent_heading"] = head * scenes["agent_valid"]
  moved["agent_velocity"], _ = ops.se2_apply(scenes["agent_velocity"], None, angle,
                                              jnp.zeros(2))
  for key in ("map_start", "map_end"):
    moved[key] = ops.se2_apply(scenes[key], None, angle, shift)[0] * scenes["map_mask"][..., None]
  keys = tasks.SCENE_KEYS
  base = _real(apply(variables, {k: scenes[k] for k in keys}), scenes)
  after = _real(apply(variables, {k: jnp.asarray(moved[k]) for k in keys}), scenes)
  assert not np.allclose(moved["agent_position"], scenes["agent_position"])
  for k in base:
    np.testing.assert_allclose(after[k], base[k], atol=2e-4, rtol=1e-4, err_msg=k)


def test_padding_agents_and_lanes_changes_nothing(tiny, scenes):
  """Padded slots are masked out of attention and leave the SSM states unchanged (they are
  sorted first, where a masked token is an exact no-op)."""
  _, variables, apply = tiny
  padded = {}
  for k in tasks.SCENE_KEYS:
    x = np.asarray(scenes[k])
    axis_pad = [(0, 0)] * x.ndim
    axis_pad[1] = (0, 2 if k.startswith("agent") else 5)
    padded[k] = np.pad(x, axis_pad)
  base = _real(apply(variables, {k: scenes[k] for k in tasks.SCENE_KEYS}), scenes)
  out = apply(variables, padded)
  a = scenes["agent_position"].shape[1]
  out = _real({k: v[:, :a] for k, v in out.items()}, scenes)
  for k in base:
    np.testing.assert_allclose(out[k], base[k], atol=1e-4, rtol=1e-4, err_msg=k)


@pytest.mark.parametrize("overrides,fewer_params", [
    (dict(injection=None), True), (dict(use_ssm=False), True),
    (dict(use_attention=False), True), (dict(sort_tokens=False), False)])
def test_table3_ablations_build_and_differ(scenes, tiny, overrides, fewer_params):
  _, variables, _ = tiny
  inp = tasks.motion_forecasting().model_input(scenes)
  count = lambda tree: sum(x.size for x in jax.tree.leaves(tree))
  shapes = jax.eval_shape(models.create_model("mambatraj", **TINY, **overrides).init,
                          jax.random.PRNGKey(0), inp)
  assert (count(shapes["params"]) < count(variables["params"])) == fewer_params


def test_training_sorting_uses_random_tie_breaks(scenes):
  """In training the degree sort breaks ties from the rng; evaluation is deterministic."""
  enc = models.MambaTrajEncoder(hidden_dim=8, num_heads=2, d_state=2, dropout_rate=0.0)
  degree = jnp.array([[0, 1, 1, 1, 1, 1, 2, 2]])
  mask = jnp.ones((1, 8))
  perms = {tuple(np.asarray(enc.apply({}, degree, mask, True, method="_sort",
                                      rngs={"sorting": jax.random.PRNGKey(i)})[0]))
           for i in range(6)}
  assert len(perms) > 1
  for p in perms:
    assert np.all(np.diff(np.asarray(degree[0])[list(p)]) >= 0)
  fixed = enc.apply({}, degree, mask, False, method="_sort")
  np.testing.assert_array_equal(fixed[0], np.arange(8))


@pytest.mark.slow
def test_task_gradients_are_finite_and_reach_every_sub_encoder(tiny, scenes):
  """(slow: ~2 min of XLA compilation for the model's gradient on the 2-core CPU)."""
  model, variables, _ = tiny
  task = tasks.motion_forecasting()

  def loss(params):
    out = model.apply({"params": params}, task.model_input(scenes), train=True,
                      rngs={"dropout": jax.random.PRNGKey(1)})
    return jnp.mean(task.loss(out, scenes))

  grads = jax.jit(jax.grad(loss))(variables["params"])
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
  norms = {k: float(jnp.sqrt(sum(jnp.sum(g ** 2) for g in jax.tree.leaves(v))))
           for k, v in grads["encoder"].items()}
  for prefix in ("map_0", "trajectory_0", "agent_map_0_attention", "agent_map_0_ssm",
                 "agent_agent_0"):
    assert norms[prefix] > 0, prefix


def test_forecasting_targets_are_in_the_agent_frame(scenes):
  loc = jnp.zeros(scenes["agent_position"].shape[:2] + (3, FUTURE, 2))
  target, valid = tasks.forecasting_targets({"loc": loc}, scenes)
  pos, head = scenes["agent_position"], scenes["agent_heading"]
  b, a = 1, 0  # focal agent of scene 1, by hand
  c, s = np.cos(head[b, a, HISTORY - 1]), np.sin(head[b, a, HISTORY - 1])
  d = pos[b, a, HISTORY:] - pos[b, a, HISTORY - 1]
  np.testing.assert_allclose(target[b, a], np.stack([c * d[:, 0] + s * d[:, 1],
                                                     -s * d[:, 0] + c * d[:, 1]], -1),
                             atol=1e-4)
  np.testing.assert_array_equal(valid, scenes["agent_valid"][:, :, HISTORY:]
                                * scenes["agent_predict"][..., None])
  with pytest.raises(ValueError, match="frames"):
    tasks.forecasting_targets({"loc": jnp.zeros((2, 4, 3, 40, 2))}, scenes)


@pytest.mark.parametrize("spec", ["mambatraj/synthetic:tiny", "mambatraj/synthetic:no_rho",
                                  "mambatraj/av2:tiny"])
def test_configs_resolve_into_experiments(spec):
  """Every config builds its dataset, model, task and sharded state shapes (no compile)."""
  exp = trainer.build_experiment(config_lib.load_config(spec))
  n = sum(x.size for x in jax.tree.leaves(exp.abstract_state.params))
  assert n > 0 and exp.task.input_key == tasks.SCENE_KEYS


def test_av2_config_needs_a_data_dir():
  with pytest.raises(ValueError, match="data_dir"):
    trainer.build_experiment(config_lib.load_config("mambatraj/av2"))


@pytest.mark.slow
def test_tiny_config_trains_end_to_end(tmp_path):
  """Two engine steps + evaluation of the tiny config (minutes of XLA compilation on CPU)."""
  results = trainer.train(config_lib.load_config("mambatraj/synthetic:tiny"), tmp_path)
  assert np.isfinite(results["train/loss"]) and 0 <= results["eval/miss_rate_6"] <= 1
