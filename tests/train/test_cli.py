"""The command line end to end on the tiny quickstart, in-process and as a subprocess."""

import json
import os
import subprocess
import sys

import pytest

from jaxvision.train import cli
from jaxvision.train import logging as logging_lib


@pytest.fixture(autouse=True)
def _restore_xla_flags(monkeypatch):
  """cli.main edits XLA_FLAGS for the process; keep that from leaking into other tests."""
  monkeypatch.setenv("XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))
  monkeypatch.delenv("JAXVISION_CPU_XLA_FLAGS", raising=False)


def test_train_eval_list_end_to_end(tmp_path, capsys):
  wd = str(tmp_path / "run")
  rc = cli.main(["train", "--config", "quickstart:tiny", "--workdir", wd,
                 "--config.total_steps=4", "--config.progress_bar", "False"])
  assert rc == 0
  results = json.loads(capsys.readouterr().out)
  assert 0.0 <= results["eval/accuracy"] <= 1.0 and results["train/loss"] > 0
  assert max(r["step"] for r in logging_lib.read_metrics(wd)) == 4
  assert json.loads((tmp_path / "run" / "config.json").read_text())["total_steps"] == 4

  assert cli.main(["eval", "--workdir", wd]) == 0
  evaluated = json.loads(capsys.readouterr().out)
  assert evaluated["step"] == 4
  assert evaluated["eval/accuracy"] == pytest.approx(results["eval/accuracy"])
  assert (tmp_path / "run" / "eval_step_4.json").exists()

  assert cli.main(["list"]) == 0
  listing = capsys.readouterr().out
  for name in ("resnet18", "digits", "cifar10", "softmax_cross_entropy", "sgd", "quickstart",
               "classification/cifar"):
    assert name in listing


@pytest.mark.parametrize("args,message", [
    (["train", "--config", "quickstart:tiny", "--config.total_stepz=3"], "total_stepz"),
    (["train", "--config", "quickstart:tiny", "--config.total_steps=abc"], "total_steps"),
    (["train", "--config", "nope"], "nope"),
])
def test_bad_config_exits_with_message(tmp_path, capsys, args, message):
  rc = cli.main(args + ["--workdir", str(tmp_path / "w")])
  assert rc == cli.EXIT_ERROR
  assert message in capsys.readouterr().err


def test_eval_without_run_is_a_clear_error(tmp_path, capsys):
  assert cli.main(["eval", "--workdir", str(tmp_path)]) == cli.EXIT_ERROR
  assert "config.json" in capsys.readouterr().err


def test_python_dash_m_entry_point(tmp_path):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, "-m", "jaxvision", "list"], capture_output=True,
                       text=True, env=env, timeout=300, check=True)
  assert "resnet50" in out.stdout and "quickstart" in out.stdout
