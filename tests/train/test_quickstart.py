"""Reproduction: the quickstart reaches >= 95% test accuracy (slow: ~2-4 min on 2 cores)."""

import pytest

from jaxvision.train import config as config_lib
from jaxvision.train import trainer

QUICKSTART_MIN_ACCURACY = 0.95


@pytest.mark.slow
def test_quickstart_reaches_95_percent(tmp_path):
  config = config_lib.load_config("quickstart")
  config_lib.apply_overrides(config, [("progress_bar", "False")])
  results = trainer.train(config, tmp_path / "run")
  assert results["eval/accuracy"] >= QUICKSTART_MIN_ACCURACY, results
