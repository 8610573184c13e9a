"""The ``jaxvision`` command (also ``python -m jaxvision``).

::

  jaxvision train [--config PATH[:ARG]] [--workdir DIR] [--config.FIELD=VALUE ...]
  jaxvision eval --workdir DIR
  jaxvision list

``train`` with no ``--config`` runs ``configs/quickstart.py``; the default
workdir is ``workdirs/<config.name>``. Re-running with the same workdir resumes.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Sequence

from jaxvision.train.cpu import set_cpu_defaults

EXIT_ERROR = 1
EXIT_USAGE = 2


def _split_overrides(argv: Sequence[str]) -> tuple[list[str], list[tuple[str, str]]]:
  """Separates ``--config.a.b=v`` / ``--config.a.b v`` from the other arguments."""
  rest, overrides = [], []
  i = 0
  while i < len(argv):
    arg = argv[i]
    if arg.startswith("--config."):
      field, eq, value = arg[len("--config."):].partition("=")
      if not eq:
        if i + 1 >= len(argv):
          raise SystemExit(f"jaxvision: --config.{field} needs a value")
        value = argv[i + 1]
        i += 1
      overrides.append((field, value))
    else:
      rest.append(arg)
    i += 1
  return rest, overrides


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="jaxvision", description=__doc__.split("\n\n")[0])
  sub = parser.add_subparsers(dest="command")
  train = sub.add_parser("train", help="train (or resume) an experiment",
                         epilog="Any config field can be overridden with --config.FIELD=VALUE.")
  train.add_argument("--config", default=None, metavar="PATH[:ARG]",
                     help="experiment config file and optional variant (default: quickstart)")
  train.add_argument("--workdir", default=None,
                     help="run directory (default: workdirs/<config.name>)")
  evaluate = sub.add_parser("eval", help="evaluate the latest checkpoint of a run")
  evaluate.add_argument("--workdir", required=True, help="run directory")
  evaluate.add_argument("--best", action="store_true",
                        help="the best evaluated checkpoint (config.checkpoint.best_metric)")
  evaluate.add_argument("--split", default=None, choices=("train", "validation", "test"),
                        help="evaluate this split instead of the run's data.eval_split")
  sub.add_parser("list", help="list registered models, datasets, losses, optimizers and configs")
  return parser


def _list() -> int:
  from jaxvision import data, losses, models, optim
  from jaxvision.train import config as config_lib
  from jaxvision.train import tasks
  sections = {"models": models.list_models(), "datasets": data.list_datasets(),
              "losses": losses.list_losses(), "optimizers": optim.list_optimizers(),
              "tasks": tasks.TASKS.list(), "configs": config_lib.list_configs()}
  for name, items in sections.items():
    print(f"{name}:")
    for item in items:
      print(f"  {item}")
  return 0


def main(argv: Sequence[str] | None = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  set_cpu_defaults()   # XLA:CPU flags and malloc, before JAX starts (jaxvision/train/cpu.py)
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
  for noisy in ("absl", "orbax", "jax._src"):
    logging.getLogger(noisy).setLevel(logging.WARNING)
  rest, overrides = _split_overrides(argv)
  parser = _parser()
  args = parser.parse_args(rest)
  if args.command is None:
    parser.print_help()
    return EXIT_USAGE
  if overrides and args.command != "train":
    parser.error("--config.FIELD overrides are only valid with `train`")
  if args.command == "list":
    return _list()

  from jaxvision.train import config as config_lib
  from jaxvision.train import trainer
  try:
    if args.command == "train":
      config = config_lib.load_config(args.config)
      config_lib.apply_overrides(config, overrides)
      _maybe_initialize_distributed(config.distributed)
      workdir = args.workdir or f"workdirs/{config.name}"
      results = trainer.train(config, workdir)
    else:
      results = trainer.evaluate_workdir(args.workdir, best=args.best, eval_split=args.split)
  except (KeyError, TypeError, ValueError, FileNotFoundError, FloatingPointError,
          trainer.CheckpointError) as e:
    msg = e.args[0] if isinstance(e, KeyError) and e.args else e
    print(f"jaxvision {args.command}: error: {msg}", file=sys.stderr)
    return EXIT_ERROR
  print(json.dumps(results, indent=2, sort_keys=True))
  return 0


def _maybe_initialize_distributed(enabled: bool) -> None:
  """Multi-host: connect the processes before any computation (cluster auto-detected)."""
  if enabled:
    import jax
    jax.distributed.initialize()


if __name__ == "__main__":
  raise SystemExit(main())
