"""End-to-end engine tests: sharding equivalence, exact resume, topology change,
corrupt checkpoints and the NaN guard, all on 8 simulated CPU devices."""

import json
import logging
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxvision.train import checkpoint as checkpoint_lib
from jaxvision.train import logging as logging_lib
from jaxvision.train import sharding as sharding_lib
from jaxvision.train import trainer
from tests.helpers import tiny_config


def _losses(workdir):
  return {r["step"]: r["train/loss"] for r in logging_lib.read_metrics(workdir)
          if "train/loss" in r}


def _restore(workdir, config, mesh=None, step=None):
  exp = trainer.build_experiment(config, mesh)
  ckpt = checkpoint_lib.Checkpointer(Path(workdir) / trainer.CHECKPOINT_DIR, async_save=False)
  try:
    target = sharding_lib.with_shardings(exp.abstract_state.checkpoint_items(),
                                         exp.state_sharding.checkpoint_items())
    items, meta = ckpt.restore(step or ckpt.latest_step(), target)
  finally:
    ckpt.close()
  return items, meta


def test_eight_devices_match_one_device(tmp_path):
  config = tiny_config(total_steps=4)
  mesh8 = sharding_lib.make_mesh(num_devices=8)
  mesh1 = sharding_lib.make_mesh(num_devices=1)
  assert mesh8.shape["data"] == 8 and mesh1.shape["data"] == 1
  res8 = trainer.train(config, tmp_path / "d8", mesh=mesh8)
  res1 = trainer.train(config, tmp_path / "d1", mesh=mesh1)
  l8, l1 = _losses(tmp_path / "d8"), _losses(tmp_path / "d1")
  assert sorted(l8) == [1, 2, 3, 4]
  np.testing.assert_allclose([l8[s] for s in sorted(l8)], [l1[s] for s in sorted(l1)],
                             rtol=0, atol=1e-5)
  # The losses move, so the comparison is not between two constant sequences.
  assert abs(l8[4] - l8[1]) > 1e-3
  assert res8["eval/accuracy"] == pytest.approx(res1["eval/accuracy"], abs=1e-6)


def test_fsdp_matches_replicated(tmp_path):
  config = tiny_config(total_steps=3, **{"sharding.fsdp_min_size": 64})
  fsdp = tiny_config(total_steps=3, **{"sharding.strategy": "fsdp",
                                       "sharding.fsdp_min_size": 64})
  exp = trainer.build_experiment(fsdp)
  sharded = [s for s in jax.tree.leaves(exp.state_sharding.params)
             if any(a is not None for a in s.spec)]
  assert sharded, "fsdp sharded no parameter"
  trainer.train(config, tmp_path / "repl")
  trainer.train(fsdp, tmp_path / "fsdp")
  lr, lf = _losses(tmp_path / "repl"), _losses(tmp_path / "fsdp")
  np.testing.assert_allclose([lf[s] for s in sorted(lf)], [lr[s] for s in sorted(lr)],
                             rtol=0, atol=1e-5)


def test_stop_and_resume_is_bitwise_identical(tmp_path):
  config = tiny_config(total_steps=20, **{"checkpoint.every_steps": 5, "data.prefetch": 2})
  trainer.train(config, tmp_path / "straight")
  trainer.train(config, tmp_path / "resumed", stop_at_step=10)
  ckpt_steps = checkpoint_lib.Checkpointer(tmp_path / "resumed" / "checkpoints").all_steps()
  assert max(ckpt_steps) == 10
  trainer.train(config, tmp_path / "resumed")
  straight, resumed = _losses(tmp_path / "straight"), _losses(tmp_path / "resumed")
  assert [straight[s] for s in range(1, 21)] == [resumed[s] for s in range(1, 21)]
  a, meta_a = _restore(tmp_path / "straight", config)
  b, meta_b = _restore(tmp_path / "resumed", config)
  assert meta_a == meta_b and meta_a["step"] == 20 and meta_a["data_position"] == 20 * 16
  jax.tree.map(lambda x, y: np.testing.assert_array_equal(np.asarray(x), np.asarray(y)), a, b)


def test_checkpoint_from_eight_devices_restores_on_one(tmp_path):
  config = tiny_config(total_steps=3)
  trainer.train(config, tmp_path / "run", mesh=sharding_lib.make_mesh(num_devices=8))
  mesh1 = sharding_lib.make_mesh(num_devices=1)
  items, meta = _restore(tmp_path / "run", config, mesh=mesh1)
  assert meta["step"] == 3
  for leaf in jax.tree.leaves(items):
    assert len(leaf.sharding.device_set) == 1
  # The run continues on one device from where the eight-device run stopped.
  longer = tiny_config(total_steps=5)
  trainer.train(longer, tmp_path / "run", mesh=mesh1)
  assert sorted(_losses(tmp_path / "run")) == [1, 2, 3, 4, 5]
  evaluated = trainer.evaluate_workdir(tmp_path / "run", mesh=mesh1)
  assert evaluated["step"] == 5 and 0.0 <= evaluated["eval/accuracy"] <= 1.0


def _corrupt(step_dir: Path):
  files = [p for p in step_dir.rglob("*") if p.is_file() and "ocdbt" in str(p)]
  assert files, f"no array files under {step_dir}"
  for p in files:
    p.write_bytes(p.read_bytes()[: max(1, p.stat().st_size // 3)])


def test_corrupt_latest_checkpoint_falls_back_to_previous(tmp_path, caplog):
  config = tiny_config(total_steps=6)
  trainer.train(config, tmp_path / "run")
  ckdir = tmp_path / "run" / "checkpoints"
  _corrupt(ckdir / "6")
  exp = trainer.build_experiment(config)
  ckpt = checkpoint_lib.Checkpointer(ckdir, async_save=False)
  with caplog.at_level(logging.WARNING):
    state, meta = trainer.restore_state(exp, ckpt)
  assert meta["step"] == 3 and int(state.step) == 3
  assert "step 6" in caplog.text and "unreadable" in caplog.text
  assert ckpt.all_steps() == [3]
  quarantined = list((tmp_path / "run" / "checkpoints_corrupt").iterdir())
  assert [p.name.split(".")[0] for p in quarantined] == ["6"]  # moved aside, not deleted
  _corrupt(ckdir / "3")
  with pytest.raises(checkpoint_lib.CheckpointError, match="no readable checkpoint"):
    trainer.restore_state(exp, ckpt)
  ckpt.close()


def test_nan_loss_stops_with_step_and_metric_and_keeps_last_good_checkpoint(tmp_path):
  good = tiny_config(total_steps=8, **{"optimizer.schedule": "constant",
                                       "checkpoint.every_steps": 1})
  trainer.train(good, tmp_path / "run", stop_at_step=3)
  # Resume the same run with an exploding learning rate: step 4 overflows.
  diverging = tiny_config(total_steps=8, **{"optimizer.learning_rate": 1e30,
                                            "optimizer.schedule": "constant",
                                            "checkpoint.every_steps": 1})
  with pytest.raises(trainer.NonFiniteError) as info:
    trainer.train(diverging, tmp_path / "run")
  err = info.value
  assert err.step == 4 and err.metric.startswith("train/")
  assert "step 4" in str(err) and err.metric in str(err)
  ckpt = checkpoint_lib.Checkpointer(tmp_path / "run" / "checkpoints", async_save=False)
  assert ckpt.latest_step() == 3
  ckpt.close()
  items, _ = _restore(tmp_path / "run", good)
  for leaf in jax.tree.leaves(items["params"]):
    assert np.all(np.isfinite(np.asarray(leaf)))


def test_run_writes_config_metrics_curves(tmp_path):
  config = tiny_config(total_steps=4, eval_every_steps=2, **{"checkpoint.keep": 1})
  results = trainer.train(config, tmp_path / "run")
  run = tmp_path / "run"
  saved = json.loads((run / "config.json").read_text())
  assert saved["total_steps"] == 4 and saved["data"]["name"] == "synthetic"
  records = logging_lib.read_metrics(run)
  assert [r["step"] for r in records if "eval/accuracy" in r] == [2, 4]
  train_keys = {"train/loss", "train/lr", "train/accuracy", "train/grad_norm",
                "train/steps_per_sec"}
  assert train_keys <= set(records[0])
  assert (run / "curves.png").stat().st_size > 0
  assert list((run / "tensorboard").iterdir())
  assert checkpoint_lib.Checkpointer(run / "checkpoints").all_steps() == [4]  # keep=1
  assert set(results) >= {"eval/accuracy", "eval/loss", "train/loss"}
  # Re-running a finished run only re-evaluates.
  again = trainer.train(config, run)
  assert again["eval/accuracy"] == pytest.approx(results["eval/accuracy"])
  assert max(r["step"] for r in logging_lib.read_metrics(run)) == 4


@pytest.mark.parametrize("spec", ["classification/cifar:tiny", "classification/imagenet:tiny"])
def test_full_scale_configs_run_in_their_tiny_variant(tmp_path, spec):
  from jaxvision.train import config as config_lib
  config = config_lib.load_config(spec)
  config_lib.apply_overrides(config, [("progress_bar", "False")])
  results = trainer.train(config, tmp_path / "run")
  assert np.isfinite(results["train/loss"]) and 0 <= results["eval/accuracy"] <= 1


def test_regularizer_and_conditioning_monitor_are_logged(tmp_path):
  config = tiny_config(total_steps=2, **{"model": dict(stem="cifar", width=4,
                                                       stem_norm="decorrelated"),
                                         "monitor_conditioning": True,
                                         "regularizers": dict(orthogonality=dict(
                                             pattern="stem_conv/kernel", weight=0.5))})
  trainer.train(config, tmp_path / "run")
  record = logging_lib.read_metrics(tmp_path / "run")[0]
  assert 0.0 < record["train/log10_cond/stem_bn"] < 8
  assert record["train/reg/orthogonality"] > 0
  # The logged loss includes the penalty.
  from jaxvision.losses import orthogonality_loss
  exp = trainer.build_experiment(config)
  state = exp.init_state()
  penalty = 0.5 * float(orthogonality_loss(state.params["stem_conv"]["kernel"]))
  assert record["train/reg/orthogonality"] == pytest.approx(penalty, rel=1e-5)
  assert "intermediates" not in state.model_state


def test_regularizer_errors_name_the_field():
  with pytest.raises(ValueError, match="regularizers.orthogonality.pattern"):
    trainer.build_experiment(tiny_config(regularizers=dict(
        orthogonality=dict(pattern="no_such_layer", weight=1.0))))
  with pytest.raises(ValueError, match="'pattern' and 'weight'"):
    trainer.build_experiment(tiny_config(regularizers=dict(orthogonality=dict(weight=1.0))))
  with pytest.raises(KeyError, match="unknown regularizer"):
    trainer.build_experiment(tiny_config(regularizers=dict(
        smoothness=dict(pattern="kernel", weight=1.0))))


@pytest.mark.parametrize("spec", ["svd_conditioning/cifar_dbn:tiny,nog_ow_olr",
                                  "svd_conditioning/imagenet_gcp:tiny,ns",
                                  "svd_conditioning/toy:tiny,sn"])
def test_svd_conditioning_configs_run_tiny(tmp_path, spec):
  from jaxvision.train import config as config_lib
  config = config_lib.load_config(spec)
  config_lib.apply_overrides(config, [("progress_bar", "False")])
  results = trainer.train(config, tmp_path / "run")
  assert np.isfinite(results["train/loss"])
  assert any(k.startswith("train/log10_cond/") for k in results)
