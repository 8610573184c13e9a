"""The spectral-reconstruction task: its loss and evaluation metrics against MST++'s formulas
(restated in numpy), the border crop, input checks, the configs' recipe, and a tiny
end-to-end run of ``spectral_recon/synthetic:tiny``."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxvision import metrics
from jaxvision.train import config as config_lib
from jaxvision.train import tasks, trainer


def _batch(n=3, h=10, w=12, bands=31, seed=0):
  rng = np.random.default_rng(seed)
  cube = rng.uniform(0.05, 1.0, (n, h, w, bands)).astype(np.float32)
  pred = np.clip(cube + rng.normal(0, 0.05, cube.shape), -0.1, 1.2).astype(np.float32)
  return pred, {"rgb": rng.uniform(size=(n, h, w, 3)).astype(np.float32), "cube": cube}


def _mst_validate(pred, cube, border):
  """MST++ ``validate``: per image (batch size 1) MRAE, RMSE, PSNR (clamped, 255 scale)."""
  if border:
    pred, cube = pred[:, border:-border, border:-border], cube[:, border:-border, border:-border]
  out = {"mrae": [], "rmse": [], "psnr": [], "sam": []}
  for p, y in zip(pred.astype(np.float64), cube.astype(np.float64)):
    out["mrae"].append(np.mean(np.abs(p - y) / y))
    out["rmse"].append(np.sqrt(np.mean((p - y) ** 2)))
    mse = np.mean((np.clip(p, 0, 1) * 255 - np.clip(y, 0, 1) * 255) ** 2)
    out["psnr"].append(10 * np.log10(255.0 ** 2 / mse))
    cos = np.sum(p * y, -1) / (np.linalg.norm(p, axis=-1) * np.linalg.norm(y, axis=-1))
    out["sam"].append(np.degrees(np.arccos(np.clip(cos, -1, 1))).mean())
  return {k: np.asarray(v) for k, v in out.items()}


@pytest.mark.parametrize("border", [0, 2])
def test_eval_metrics_equal_mst_validation(border):
  pred, batch = _batch()
  task = tasks.spectral_reconstruction(border=border)
  assert task.input_key == "rgb"
  got = jax.jit(task.eval_metrics)(jnp.asarray(pred), batch)
  want = _mst_validate(pred, batch["cube"], border)
  for k in ("mrae", "rmse", "psnr", "sam"):
    assert got[k].shape == (3,)
    np.testing.assert_allclose(got[k], want[k], rtol=2e-4, atol=2e-4, err_msg=k)
  # The loss is never cropped (training sees the whole crop).
  np.testing.assert_allclose(got["loss"], _mst_validate(pred, batch["cube"], 0)["mrae"],
                             rtol=1e-5)


def test_losses_per_example():
  pred, batch = _batch()
  err = pred.astype(np.float64) - batch["cube"]
  np.testing.assert_allclose(tasks.spectral_reconstruction("l1").loss(pred, batch),
                             np.abs(err).mean((1, 2, 3)), rtol=1e-5)
  np.testing.assert_allclose(tasks.spectral_reconstruction("mse").loss(pred, batch),
                             (err ** 2).mean((1, 2, 3)), rtol=1e-5)
  # The MRAE guard: a zero in the target keeps the loss finite (and large), unguarded is inf.
  batch["cube"][0, 0, 0, 0] = 0.0
  guarded = tasks.spectral_reconstruction("mrae").loss(pred, batch)
  assert np.all(np.isfinite(guarded)) and guarded[0] > 1e3
  assert not np.isfinite(tasks.spectral_reconstruction("mrae", zero_guard=False)
                         .loss(pred, batch)[0])
  # Mean over the batch of the per-example MRAE = the pooled MRAE (equal-sized crops).
  np.testing.assert_allclose(np.mean(tasks.spectral_reconstruction().loss(pred, batch)[1:]),
                             metrics.mrae(pred[1:], batch["cube"][1:]), rtol=1e-5)


def test_bad_outputs_and_options():
  pred, batch = _batch()
  task = tasks.spectral_reconstruction()
  with pytest.raises(ValueError, match="cube's shape"):
    task.loss(pred[..., :30], batch)
  with pytest.raises(ValueError, match="loss.name"):
    tasks.spectral_reconstruction("ssim")
  with pytest.raises(ValueError, match="border"):
    tasks.spectral_reconstruction(border=-1)
  with pytest.raises(ValueError, match="border"):
    tasks.spectral_reconstruction(border=6).eval_metrics(pred, batch)  # 10 x 12 images


def test_configs_follow_the_recipe():
  c = config_lib.load_config("spectral_recon/ntire2022")
  assert (c.model_name, c.task, c.data.name) == ("acc_net", "spectral_reconstruction",
                                                  "ntire2022")
  assert c.total_steps == 300 * 1000 and c.optimizer.learning_rate == 2e-4
  assert c.optimizer.schedule == "cosine"
  assert c.optimizer.learning_rate * c.optimizer.end_lr_factor == pytest.approx(1e-6)
  assert c.loss.kwargs.border == 128 and c.data.kwargs.patch_size == 64
  assert c.checkpoint.best_metric == "eval/mrae" and c.checkpoint.best_mode == "min"
  mst = config_lib.load_config("spectral_recon/ntire2022:mst,mst_recipe")
  assert mst.model_name == "mst_plus_plus" and mst.optimizer.learning_rate == 4e-4
  assert mst.data.kwargs.patch_size == 128
  assert config_lib.load_config("spectral_recon/cave:msa").data.eval_split == "test"
  assert config_lib.load_config("spectral_recon/ntire2020:real_world").data.kwargs.track == \
      "real_world"
  assert config_lib.load_config("spectral_recon/synthetic:solver=jacobi").model.acc_solver == \
      "jacobi"
  with pytest.raises(ValueError, match="solver"):
    config_lib.load_config("spectral_recon/synthetic:solver=newton")


@pytest.mark.slow  # XLA:CPU compile-bound (~1 min on 2 cores); run with -m slow
def test_tiny_run_finishes_with_finite_eval_metrics(tmp_path):
  config = config_lib.load_config("spectral_recon/synthetic:tiny")
  config.progress_bar = False
  results = trainer.train(config, tmp_path / "run")
  for key in ("eval/mrae", "eval/rmse", "eval/psnr", "eval/sam", "eval/loss", "train/loss",
              "train/rmse"):
    assert np.isfinite(results[key]), key
  assert 0 <= results["eval/sam"] <= 90
