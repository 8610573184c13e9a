"""Tasks: the IQA regression task's loss, split-level evaluation, and its engine wiring."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from jaxvision import losses, models
from jaxvision.train import config as config_lib
from jaxvision.train import tasks, trainer
from tests.models.test_convert import _to_torchvision


def _outputs(n=16, k=3, seed=0):
  rng = np.random.default_rng(seed)
  score = rng.uniform(0, 100, n).astype(np.float32)
  out = (score[:, None] * rng.uniform(0.5, 1.5, k) + rng.normal(0, 20, (n, k))).astype(np.float32)
  return jnp.asarray(out), {"score": jnp.asarray(score)}


def test_loss_is_the_weighted_sum_over_heads():
  out, batch = _outputs()
  task = tasks.quality_regression("norm_in_norm", p=1.0, q=2.0)
  expected = sum(w * losses.norm_in_norm(out[:, k], batch["score"])
                 for k, w in enumerate((1.0, 0.1, 0.1)))
  np.testing.assert_allclose(task.loss(out, batch), expected, rtol=1e-6)
  mse = tasks.quality_regression("mse", head_weights=(1.0, 0.0, 0.5))
  np.testing.assert_allclose(mse.loss(out, batch),
                             losses.mean_squared_error(out[:, 0], batch["score"])
                             + 0.5 * losses.mean_squared_error(out[:, 2], batch["score"]),
                             rtol=1e-6)
  single = tasks.quality_regression("norm_in_norm")
  np.testing.assert_allclose(single.loss(out[:, 0], batch),
                             losses.norm_in_norm(out[:, 0], batch["score"]), rtol=1e-6)
  mono = tasks.quality_regression("norm_in_norm", monotonicity_weight=0.3)
  np.testing.assert_allclose(
      mono.loss(out[:, :1], batch), losses.norm_in_norm(out[:, 0], batch["score"])
      + losses.monotonicity_regularizer(out[:, 0], batch["score"], gamma=0.3), rtol=1e-6)


def test_bad_options_and_shapes_name_the_field():
  out, batch = _outputs()
  with pytest.raises(ValueError, match="head_weights has 2 entries"):
    tasks.quality_regression("mae", head_weights=(1.0, 0.1)).loss(out, batch)
  with pytest.raises(ValueError, match="mapping must be one of"):
    tasks.quality_regression("mae", mapping="logistic")
  with pytest.raises(ValueError, match="scores \\(B,\\) or \\(B, K\\)"):
    tasks.quality_regression("mae").loss(out[:, :, None], batch)
  with pytest.raises(KeyError, match="unknown loss"):
    tasks.quality_regression("huber")


@pytest.mark.parametrize("mapping", ["train", "self", "none"])
def test_summary_equals_scipy_after_the_fitted_mapping(mapping):
  rng = np.random.default_rng(1)
  fit = {"prediction": rng.normal(size=200), "score": None}
  fit["score"] = 3.0 * fit["prediction"] + 40 + rng.normal(0, 2, 200)
  pred = np.round(rng.normal(size=80), 1)  # ties, as scipy handles them
  score = 3.0 * pred + 40 + rng.normal(0, 4, 80)
  task = tasks.quality_regression("norm_in_norm", mapping=mapping)
  assert task.fit_split == ("train" if mapping == "train" else None)
  got = task.summarize({"prediction": pred, "score": score},
                       fit if mapping == "train" else None)
  k1, k2 = {"train": lambda: np.polyfit(fit["prediction"], fit["score"], 1),
            "self": lambda: np.polyfit(pred, score, 1), "none": lambda: (1.0, 0.0)}[mapping]()
  mapped = k1 * pred + k2
  assert got["srocc"] == pytest.approx(scipy.stats.spearmanr(score, pred)[0], abs=1e-12)
  assert got["krocc"] == pytest.approx(scipy.stats.kendalltau(score, pred)[0], abs=1e-12)
  assert got["plcc"] == pytest.approx(scipy.stats.pearsonr(score, pred)[0], abs=1e-12)
  assert got["rmse"] == pytest.approx(np.sqrt(np.mean((score - mapped) ** 2)), rel=1e-9)


@pytest.mark.slow  # end-to-end, compile-bound; the notebooks cover this path
def test_tiny_iqa_run_reports_split_level_metrics_on_the_validation_split(tmp_path):
  config = config_lib.load_config("iqa/synthetic:tiny")
  config.progress_bar = False
  results = trainer.train(config, tmp_path / "run")
  for key in ("eval/srocc", "eval/krocc", "eval/plcc", "eval/rmse", "train/plcc"):
    assert np.isfinite(results[key]), key
  assert -1 <= results["eval/srocc"] <= 1 and results["eval/rmse"] > 0
  exp = trainer.build_experiment(config)
  assert exp.eval_source.info.num_examples == 16  # validation: 2 photos x 8 crops
  assert exp.task.fit_split == "train"
  # Model selection: the best validation SROCC state is kept and can be tested on "test".
  best = json.loads((tmp_path / "run" / "best.json").read_text())
  assert best["step"] in (2, 4) and best["metric"] == "eval/srocc"
  assert results["best/eval/srocc"] == best["value"] >= results["eval/srocc"]
  test = trainer.evaluate_workdir(tmp_path / "run", best=True, eval_split="test")
  assert test["step"] == best["step"] and np.isfinite(test["eval/srocc"])
  assert (tmp_path / "run" / f"eval_step_{best['step']}_test.json").exists()


def test_cross_dataset_evaluation_uses_eval_name():
  config = config_lib.load_config("iqa/clive_cross:tiny")
  exp = trainer.build_experiment(config)
  assert config.data.eval_name == "synthetic_iqa"
  # The target "dataset" has its own monotone MOS scale (affine map of seed 1).
  assert not np.allclose(exp.eval_source.scores.mean(), exp.train_source.scores.mean())


def test_paper_configs_resolve_to_the_recipe():
  c = config_lib.load_config("iqa/koniq10k")
  assert (c.model_name, c.model.backbone, c.task) == ("linearity_iqa", "resnext101_32x8d",
                                                     "quality_regression")
  assert (c.loss.name, c.loss.kwargs.p, c.loss.kwargs.q) == ("norm_in_norm", 1.0, 2.0)
  assert tuple(c.loss.kwargs.head_weights) == (1.0, 0.1, 0.1)
  assert c.optimizer.name == "adam" and c.optimizer.learning_rate == 1e-4
  assert dict(c.optimizer.lr_multipliers) == {"^backbone/": 0.1}
  assert c.optimizer.weight_decay == 0 and c.data.global_batch_size == 8
  steps_per_epoch = 7058 // 8
  assert c.total_steps == 30 * steps_per_epoch
  assert c.optimizer.schedule_kwargs.every_steps == 10 * steps_per_epoch
  assert c.data.eval_split == "validation" and tuple(c.data.kwargs.image_size) == (498, 664)
  lp = config_lib.load_config("iqa/koniq10k:resnet50,lprime,batch=16")
  assert tuple(lp.loss.kwargs.alpha) == (1.0, 0.1) and lp.model.backbone == "resnet50"
  cross = config_lib.load_config("iqa/clive_cross")
  assert (cross.data.name, cross.data.eval_name, cross.data.eval_split) == (
      "koniq10k", "clive", "test")


def test_pretrained_backbone_is_loaded_into_a_fresh_run(tmp_path):
  config = config_lib.load_config("iqa/synthetic:tiny")
  width = config.model.backbone_width
  backbone = models.create_model("resnet18", num_classes=None, width=width,
                                  stem=config.model.stem, **config.model.backbone_kwargs)
  abstract = jax.eval_shape(lambda: backbone.init(jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 3))))
  rng = np.random.default_rng(3)
  weights = jax.tree.map(lambda x: rng.standard_normal(x.shape).astype(np.float32), abstract)
  path = tmp_path / "backbone.npz"
  np.savez(path, **_to_torchvision(weights))
  plain = trainer.build_experiment(config).init_state()
  config.init.checkpoint = str(path)
  loaded = trainer.build_experiment(config).init_state()
  for collection, ours in (("params", loaded.params), ("batch_stats", loaded.model_state["batch_stats"])):
    for a, b in zip(jax.tree.leaves(ours["backbone"]), jax.tree.leaves(weights[collection])):
      np.testing.assert_array_equal(np.asarray(a), b)
  for a, b in zip(jax.tree.leaves(loaded.params["head"]), jax.tree.leaves(plain.params["head"])):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  config.init.checkpoint = str(tmp_path / "missing.npz")
  with pytest.raises(FileNotFoundError, match="init.checkpoint"):
    trainer.build_experiment(config).init_state()
