"""The colorization task: its losses against the library's, the evaluation metrics of a
perfect and of an imperfect prediction, the configs' recipe and gamma variants, and a
tiny end-to-end run of ``colorization/embedded:tiny``."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxvision import losses, metrics, ops
from jaxvision.data import colorization as colorization_data
from jaxvision.train import config as config_lib
from jaxvision.train import tasks, trainer


@pytest.fixture(scope="module")
def batch():
  src = colorization_data.embedded_colorization("validation", image_size=16, num_per_image=4)
  return {k: jnp.asarray(v) for k, v in src.get(np.arange(8)).items()}


@pytest.fixture(scope="module")
def regression():
  """The regression task with the embedded prior, its eval_metrics and collect jitted once."""
  task = tasks.colorization("chroma_l2", gamma=1.0, prior="embedded")
  return task, jax.jit(task.eval_metrics), jax.jit(task.collect)


def _noisy(ab, scale=8.0, seed=0):
  return ab + scale * jax.random.normal(jax.random.PRNGKey(seed), ab.shape)


@pytest.mark.parametrize("gamma, convention", [(0.0, "paper"), (0.5, "paper"), (1.0, "code")])
def test_loss_is_chroma_l2_per_example(batch, gamma, convention):
  pred = _noisy(batch["ab"])
  task = tasks.colorization("chroma_l2", gamma=gamma, convention=convention)
  assert task.input_key == "L"
  expected = losses.chroma_l2(pred, batch["ab"], gamma=gamma, convention=convention)
  np.testing.assert_allclose(task.loss(pred, batch), expected, rtol=1e-6)
  mean = tasks.colorization("chroma_l2", gamma=gamma, convention=convention, reduction="mean")
  np.testing.assert_allclose(mean.loss(pred, batch), expected / (16 * 16), rtol=1e-6)


def test_cross_entropy_loss_subsamples_the_target_and_rebalances(batch):
  logits = jax.random.normal(jax.random.PRNGKey(1), (8, 4, 4, 229))
  bins = ops.ab_gamut_bins()
  task = tasks.colorization("rebalanced_cross_entropy")
  np.testing.assert_allclose(
      jax.jit(task.loss)(logits, batch),
      losses.rebalanced_soft_cross_entropy(logits, batch["ab"][:, ::4, ::4], bins), rtol=1e-5)
  prior = tasks.colorization_prior("embedded", bins)
  assert prior.shape == (229,) and prior.sum() == pytest.approx(1.0)
  weighted = tasks.colorization("rebalanced_cross_entropy", prior="embedded")
  np.testing.assert_allclose(
      jax.jit(weighted.loss)(logits, batch),
      losses.rebalanced_soft_cross_entropy(logits, batch["ab"][:, ::4, ::4], bins,
                                           ops.rebalancing_weights(prior)), rtol=1e-5)
  m = jax.jit(weighted.eval_metrics)(logits, batch)
  assert all(v.shape == (8,) and np.all(np.isfinite(v)) for v in m.values())
  assert "rebalanced_auc_kolinguo" in m


def test_perfect_prediction_scores(batch, regression):
  task, eval_metrics, collect = regression
  m = eval_metrics(batch["ab"], batch)
  np.testing.assert_allclose(m["auc"], 1.0)
  np.testing.assert_allclose(m["rebalanced_auc_kolinguo"], 1.0)
  assert np.all(m["psnr"] >= 99.0)  # capped at max_psnr = 100 dB (float rounding only)
  np.testing.assert_allclose(m["loss"], 0.0, atol=1e-6)
  np.testing.assert_allclose(m["rmse_ab"], 0.0, atol=1e-6)
  np.testing.assert_allclose(m["chroma_pred"], m["chroma_target"], rtol=1e-6)
  np.testing.assert_allclose(m["colorfulness_pred"], m["colorfulness_target"], rtol=1e-4)
  collected = jax.device_get(collect(batch["ab"], batch))
  assert task.summarize(collected, None)["rebalanced_auc"] == pytest.approx(1.0)


def test_metrics_of_an_imperfect_prediction_match_the_library(batch, regression):
  pred = _noisy(batch["ab"], scale=15.0, seed=2)
  task, eval_metrics, collect = regression
  m = eval_metrics(pred, batch)
  auc, rmse = jax.jit(metrics.auc_ab), jax.jit(metrics.rmse_ab)  # one image at a time
  for i in range(8):
    assert m["auc"][i] == pytest.approx(float(auc(pred[i], batch["ab"][i])), abs=1e-6)
    assert m["rmse_ab"][i] == pytest.approx(float(rmse(pred[i], batch["ab"][i])), rel=1e-5)
  # Equal-sized images: the mean of per-image AuCs is the pixel-pooled AuC.
  assert float(np.mean(m["auc"])) == pytest.approx(float(metrics.auc_ab(pred, batch["ab"])),
                                                   abs=1e-6)
  rgb = ops.lab_to_rgb(jnp.concatenate([batch["L"], pred], -1))
  np.testing.assert_allclose(m["psnr"], jax.jit(metrics.psnr_rgb, static_argnames="reduction")(
      rgb, batch["rgb"], reduction="none"), rtol=1e-5)
  np.testing.assert_allclose(m["colorfulness_pred"], jax.jit(metrics.colorfulness_hasler)(rgb),
                             rtol=1e-5)
  assert 0 < np.mean(m["auc"]) < 1 and np.all(m["psnr"] < 60)
  # Split level: Zhang's rebalanced AuC = the library's rebalanced_auc_ab with weights
  # 1 / p(q) at the targets' nearest bins, pooled over the batches; p is the task's prior,
  # or without one the evaluated split's own bin frequency.
  bins = jnp.asarray(ops.ab_gamut_bins(), jnp.float32)
  halves = [jax.device_get(collect(pred[s], {k: v[s] for k, v in batch.items()}))
            for s in (slice(0, 4), slice(4, 8))]
  values = {k: np.concatenate([h[k] for h in halves]) for k in halves[0]}
  q = jnp.argmin(jnp.sum((batch["ab"][..., None, :] - bins) ** 2, -1), -1)
  freq = jnp.zeros(len(bins)).at[q.ravel()].add(1.0)
  no_prior = tasks.colorization("chroma_l2")
  for summarize, p in ((task.summarize, tasks.colorization_prior("embedded", bins)),
                       (no_prior.summarize, freq)):
    got = summarize(values, None)["rebalanced_auc"]
    w = metrics.auc_rebalancing_weights(jnp.asarray(p, jnp.float32))[q]
    assert got == pytest.approx(
        float(metrics.rebalanced_auc_ab(pred, batch["ab"], weights=w)), abs=1e-5)
    assert got != pytest.approx(float(np.mean(m["auc"])), abs=1e-4)
  # The authors' variant scales the distances (>= 1): never above the plain AuC.
  assert np.all(m["rebalanced_auc_kolinguo"] <= m["auc"] + 1e-7)


def test_training_metrics_and_bad_options(batch, tmp_path):
  task = tasks.colorization("chroma_l2", gamma=0.5)
  tm = task.train_metrics(batch["ab"] * 0.5, batch)
  assert float(tm["chroma_pred"]) == pytest.approx(0.5 * float(tm["chroma_target"]), rel=1e-5)
  with pytest.raises(ValueError, match="model.upsample=True"):
    task.loss(batch["ab"][:, ::4, ::4], batch)
  with pytest.raises(ValueError, match="model.num_bins=229"):
    tasks.colorization("rebalanced_cross_entropy").loss(jnp.zeros((8, 4, 4, 313)), batch)
  with pytest.raises(ValueError, match="loss.name must be one of"):
    tasks.colorization("mse")
  with pytest.raises(ValueError, match="gamma applies to loss.name 'chroma_l2' only"):
    tasks.colorization("rebalanced_cross_entropy", gamma=1.0)
  with pytest.raises(ValueError, match="gamma must be a finite number >= 0"):
    tasks.colorization("chroma_l2", gamma=-1.0)
  with pytest.raises(ValueError, match="convention must be one of"):
    tasks.colorization("chroma_l2", convention="torch")
  with pytest.raises(ValueError, match="reduction must be one of"):
    tasks.colorization("chroma_l2", reduction="max")
  with pytest.raises(ValueError, match="prior must be one of"):
    tasks.colorization("chroma_l2", prior="coco")
  with pytest.raises(FileNotFoundError, match="prior_file"):
    tasks.colorization("chroma_l2", prior="file", prior_file=str(tmp_path / "p.npy"))
  np.save(tmp_path / "bad.npy", np.ones(313))
  with pytest.raises(ValueError, match=r"\(229,\) non-negative"):
    tasks.colorization("chroma_l2", prior="file", prior_file=str(tmp_path / "bad.npy"))
  np.save(tmp_path / "p.npy", np.ones(229))
  assert "rebalanced_auc_kolinguo" in tasks.colorization(
      "chroma_l2", prior="file", prior_file=str(tmp_path / "p.npy")).eval_metrics(
          batch["ab"], batch)


@pytest.mark.parametrize("gamma", [0.0, 0.25, 0.5, 1.0, 2.0])
def test_configs_resolve_with_the_right_gamma(gamma):
  for name in ("embedded", "coco"):
    c = config_lib.load_config(f"colorization/{name}:gamma={gamma}")
    assert (c.task, c.loss.name, c.model_name) == ("colorization", "chroma_l2", "eccv16_half")
    assert c.loss.kwargs.gamma == gamma and c.loss.kwargs.convention == "code"
    assert c.loss.kwargs.reduction == "sum"


def test_configs_follow_the_paper_recipe():
  c = config_lib.load_config("colorization/coco")
  o = c.optimizer
  assert (o.name, o.learning_rate, o.schedule, o.weight_decay, o.decay_all_params) == (
      "adam", 3e-5, "constant", 1e-3, True)
  assert (o.kwargs.b1, o.kwargs.b2) == (0.9, 0.99)
  assert (c.data.global_batch_size, c.data.eval_batch_size) == (64, 128)
  assert c.total_steps == 20 * 1845 and c.eval_every_steps == 1845  # ceil(118,060 / 64)
  assert (c.data.name, c.data.eval_split, c.data.augment) == ("coco_colorization",
                                                               "validation", False)
  assert c.data.kwargs.image_size == 128 and c.data.kwargs.grayscale == "drop"
  assert c.data.kwargs.data_dir is None and c.data.kwargs.resize == "stretch"
  with pytest.raises(ValueError, match="data_dir"):
    trainer.build_experiment(c)
  assert config_lib.load_config("colorization/coco:full").model_name == "eccv16"
  paper = config_lib.load_config("colorization/coco:gamma=0.5,convention=paper")
  assert paper.loss.kwargs.convention == "paper"
  ce = config_lib.load_config("colorization/embedded:classification")
  assert ce.loss.name == "rebalanced_cross_entropy" and ce.loss.kwargs.prior == "embedded"
  assert (ce.model.head, ce.model.num_bins, ce.model.upsample) == ("classification", 229, False)
  e = config_lib.load_config("colorization/embedded")
  assert (e.optimizer.weight_decay, e.optimizer.kwargs.b2, e.data.global_batch_size) == (
      1e-3, 0.99, 64)
  assert e.total_steps == 20 * 16 and e.data.kwargs.image_size == 64
  tiny = config_lib.load_config("colorization/coco:tiny")
  assert tiny.data.name == "embedded_colorization" and tiny.model.width_multiplier == 1 / 16
  with pytest.raises(ValueError, match="unknown config argument"):
    config_lib.load_config("colorization/embedded:quarter")


@pytest.mark.slow  # end-to-end, compile-bound; the notebooks cover this path
def test_tiny_run_finishes_with_finite_eval_metrics(tmp_path):
  config = config_lib.load_config("colorization/embedded:tiny")
  config.progress_bar = False
  results = trainer.train(config, tmp_path / "run")
  for key in ("eval/auc", "eval/psnr", "eval/rmse_ab", "eval/chroma_pred",
              "eval/colorfulness_pred", "eval/rebalanced_auc", "eval/rebalanced_auc_kolinguo",
              "eval/loss",
              "train/chroma_pred", "train/loss"):
    assert np.isfinite(results[key]), key
  assert 0 <= results["eval/auc"] <= 1 and 0 <= results["eval/rebalanced_auc"] <= 1
  assert results["eval/chroma_target"] > 0
