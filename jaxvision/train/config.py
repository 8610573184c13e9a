"""Experiment configs: loading ``configs/<method>/<experiment>.py:ARG``, defaults,
validation and command-line overrides.

An experiment file defines ``get_config(arg=None) -> ml_collections.ConfigDict``.
It returns only what it changes: :func:`load_config` merges it onto
:func:`default_config`, where every engine field is defined and documented, and
rejects any field the engine does not know (a typo is an error, not a silently
ignored setting). Sections whose keys belong to a component (``model``,
``data.kwargs``, ``loss.kwargs``, ``optimizer.kwargs``) are free-form here and
checked by that component's factory, which names a bad key.

The merged config is locked: ``--config.FIELD=VALUE`` overrides must name an
existing field and match its type (ints are accepted for floats).
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
from pathlib import Path
from typing import Any, Sequence

import ml_collections

ConfigDict = ml_collections.ConfigDict

# Sections whose keys are component options, validated by the component itself.
FREE_FORM = ("model", "data.kwargs", "data.eval_kwargs", "loss.kwargs", "optimizer.kwargs",
             "optimizer.schedule_kwargs", "optimizer.lr_multipliers", "regularizers")
REPO_CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
DEFAULT_CONFIG = "quickstart"


def default_config() -> ConfigDict:
  """Every engine field with its default. Experiment configs override a subset."""
  c = ConfigDict()
  c.name = "experiment"              # used for the default workdir
  c.seed = 0                         # parameter init, dropout and data order
  c.total_steps = 1000               # training length in optimizer steps
  c.task = "classification"          # how a batch becomes a loss (jaxvision.train.tasks)
  c.partitionable_init_rng = False   # True: sharded-friendly (slow-compiling on CPU) init RNG

  c.model_name = "resnet18"          # jaxvision.models registry name
  c.model = ConfigDict()             # create_model keyword arguments

  c.data = ConfigDict()
  c.data.name = "digits"             # jaxvision.data registry name
  c.data.kwargs = ConfigDict()       # dataset options (data_dir, image_size, ...)
  c.data.global_batch_size = 128     # examples per step over all devices and hosts
  c.data.eval_batch_size = 256       # global batch for evaluation passes
  c.data.eval_split = "test"         # split evaluated during and after training ("validation")
  c.data.eval_name = ""              # evaluate on another dataset (cross-dataset); "" = data.name
  c.data.eval_kwargs = ConfigDict()  # that dataset's options (used only with eval_name)
  c.data.seed = 0                    # data order and augmentation seed
  c.data.shuffle = True
  c.data.augment = True
  c.data.prefetch = 2                # host batches prefetched by a background thread

  c.loss = ConfigDict()
  c.loss.name = "softmax_cross_entropy"
  c.loss.kwargs = ConfigDict()

  # Parameter regularisers added to the loss: {name: {"pattern": regex on parameter paths
  # such as "stem_conv/kernel", "weight": float}}, name from jaxvision.losses.REGULARIZERS.
  c.regularizers = ConfigDict()
  # Log log10 of the float64 condition number of every covariance a layer sows (decorrelated
  # BN, covariance pooling) as train/log10_cond/<layer> (one host callback per step).
  c.monitor_conditioning = False

  c.optimizer = ConfigDict()
  c.optimizer.name = "sgd"
  c.optimizer.learning_rate = 0.1
  c.optimizer.schedule = "cosine"
  c.optimizer.warmup_steps = 0
  c.optimizer.end_lr_factor = 0.0
  c.optimizer.schedule_kwargs = ConfigDict()
  c.optimizer.weight_decay = 5e-4
  c.optimizer.decay_all_params = False
  c.optimizer.grad_clip_norm = 0.0
  c.optimizer.kwargs = ConfigDict()
  # {regex on parameter paths: factor}: parameter groups trained at factor x the rate
  # (e.g. {"^backbone/": 0.1}); unmatched parameters use the rate itself.
  c.optimizer.lr_multipliers = ConfigDict()

  # Pretrained weights loaded into a fresh run (not on resume): a .pth/.pt/.npz state_dict
  # (jaxvision.models.convert.load_pretrained), e.g. torchvision's ImageNet ResNeXt into the
  # LinearityIQA backbone. "" = train from the random initialisation.
  c.init = ConfigDict()
  c.init.checkpoint = ""
  c.init.format = "torchvision"      # "torchvision" | "linearity_iqa" (the authors' checkpoint)
  c.init.prefix = "backbone"         # submodule receiving a torchvision model ("" = whole model)

  c.mesh = ConfigDict()
  c.mesh.axes = (("data", -1),)      # (name, size) pairs; one -1 takes the remaining devices
  c.mesh.num_devices = 0             # use the first N devices; 0 = all
  c.sharding = ConfigDict()
  c.sharding.strategy = "replicate"  # "replicate" | "fsdp" (shard large arrays over `data`)
  c.sharding.fsdp_min_size = 2**18   # arrays with fewer elements stay replicated under fsdp

  c.checkpoint = ConfigDict()
  c.checkpoint.every_steps = 500     # also saved at the end; 0 = only at the end
  c.checkpoint.keep = 3              # newest checkpoints kept
  c.checkpoint.async_save = True
  # Keep the best evaluated state too (model selection, e.g. "eval/srocc" for IQA): saved to
  # checkpoints_best/ with best.json whenever an evaluation improves it. "" = off.
  c.checkpoint.best_metric = ""
  c.checkpoint.best_mode = "max"     # "max" | "min"

  c.log_every_steps = 50
  c.eval_every_steps = 0             # 0 = evaluate only at the end
  c.progress_bar = True
  c.distributed = False              # call jax.distributed.initialize() (multi-host)
  return c


def _is_free_form(path: str) -> bool:
  return any(path == f or path.startswith(f + ".") for f in FREE_FORM)


def _merge(base: ConfigDict, update: ConfigDict, prefix: str = "") -> None:
  """Writes ``update`` into ``base`` in place, rejecting keys ``base`` lacks."""
  for key, value in update.items():
    path = f"{prefix}{key}"
    if _is_free_form(path):
      if isinstance(value, (ConfigDict, dict)):
        if key not in base:
          base[key] = ConfigDict()
        for k, v in dict(value).items():
          base[key][k] = v
      else:
        base[key] = value
      continue
    if key not in base:
      raise KeyError(f"unknown config field {path!r}; known fields here: "
                     f"{', '.join(sorted(prefix + k for k in base.keys()))}")
    if isinstance(base[key], ConfigDict):
      if not isinstance(value, (ConfigDict, dict)):
        raise TypeError(f"config field {path!r} must be a section; found "
                        f"{type(value).__name__}: {value!r}")
      _merge(base[key], ConfigDict(value) if isinstance(value, dict) else value, path + ".")
    else:
      _set_typed(base, key, value, path)


def _set_typed(section: ConfigDict, key: str, value: Any, path: str) -> None:
  old = section[key]
  if isinstance(old, bool) != isinstance(value, bool) and old is not None:
    raise TypeError(f"config field {path!r} expects {type(old).__name__}; found "
                    f"{type(value).__name__}: {value!r}")
  if isinstance(old, tuple) and isinstance(value, list):
    value = _to_tuple(value)
  try:
    section[key] = value
  except TypeError:
    raise TypeError(f"config field {path!r} expects {type(old).__name__}; found "
                    f"{type(value).__name__}: {value!r}") from None


def _to_tuple(value):
  return tuple(_to_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


def parse_arg(arg: str | None, *, choices: dict[str, Sequence[str]] | None = None,
              **defaults: Any) -> dict[str, Any]:
  """Parses a config argument string such as ``"cifar100,batch=512,tiny"``.

  Tokens are comma-separated. ``key=value`` sets ``defaults[key]`` (the value is
  converted to the default's type); a bare word is either a bool field of
  ``defaults`` (set True) or a member of one ``choices`` group (the group's key is
  set to it; the group's default is its first member). Anything else is an error
  naming the token and what is accepted.

  Example: ``parse_arg("resnet18,batch=256", choices={"model": MODELS}, batch=1024,
  tiny=False) -> {"model": "resnet18", "batch": 256, "tiny": False}``.
  """
  choices = dict(choices or {})
  opts = {key: members[0] for key, members in choices.items()}
  opts.update(defaults)
  accepted = ([m for members in choices.values() for m in members]
              + [k for k, v in defaults.items() if isinstance(v, bool)]
              + [f"{k}=..." for k in defaults])
  for token in filter(None, (t.strip() for t in (arg or "").split(","))):
    key, eq, value = token.partition("=")
    group = next((g for g, members in choices.items() if key in members), None)
    if eq and key in defaults:
      kind = type(defaults[key])
      if kind is bool:
        opts[key] = value.lower() in ("1", "true", "yes")
      else:
        try:
          opts[key] = kind(value)
        except ValueError:
          raise ValueError(f"config argument {key!r} expects {kind.__name__}; found "
                           f"{value!r}.") from None
    elif not eq and group is not None:
      opts[group] = key
    elif not eq and isinstance(defaults.get(key), bool):
      opts[key] = True
    else:
      raise ValueError(f"unknown config argument {token!r}; accepted: {', '.join(accepted)}.")
  return opts


def resolve_config_path(spec: str) -> tuple[Path, str | None]:
  """Splits ``PATH[:ARG]`` and finds PATH: as given, or under the repo's ``configs/``
  (``classification/cifar`` and ``quickstart`` work from any directory)."""
  path, _, arg = spec.partition(":")
  candidates = [Path(path)]
  if not path.endswith(".py"):
    candidates.append(Path(path + ".py"))
  candidates += [REPO_CONFIG_DIR / c for c in list(candidates)]
  for c in candidates:
    if c.is_file():
      return c.resolve(), (arg or None)
  raise FileNotFoundError(f"config file {path!r} not found (also looked in {REPO_CONFIG_DIR}); "
                          f"`jaxvision list` shows the available configs.")


def load_config(spec: str | None = None) -> ConfigDict:
  """Loads ``PATH[:ARG]`` (default: the quickstart), merged onto the defaults, locked."""
  path, arg = resolve_config_path(spec or DEFAULT_CONFIG)
  module_spec = importlib.util.spec_from_file_location(f"jaxvision_config_{path.stem}", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  if not hasattr(module, "get_config"):
    raise AttributeError(f"config file {path} defines no get_config(arg=None).")
  user = module.get_config(arg) if arg is not None else module.get_config()
  if not isinstance(user, (ConfigDict, dict)):
    raise TypeError(f"{path}: get_config must return a ConfigDict; found {type(user).__name__}.")
  config = from_dict(user if isinstance(user, dict) else user.to_dict())
  return config


def from_dict(d: dict) -> ConfigDict:
  """Defaults merged with a plain (e.g. JSON-loaded) dict, validated and locked."""
  config = default_config()
  _merge(config, ConfigDict(d))
  validate(config)
  config.lock()
  return config


def validate(config: ConfigDict) -> None:
  """Checks value ranges the types cannot express; errors name the field."""
  def need(cond: bool, field: str, expected: str):
    if not cond:
      value = config
      for k in field.split("."):
        value = value[k]
      raise ValueError(f"config field {field!r} must be {expected}; found {value!r}.")
  need(config.total_steps > 0, "total_steps", "a positive int")
  need(config.data.global_batch_size > 0, "data.global_batch_size", "a positive int")
  need(config.data.eval_batch_size > 0, "data.eval_batch_size", "a positive int")
  need(config.log_every_steps > 0, "log_every_steps", "a positive int")
  need(config.eval_every_steps >= 0, "eval_every_steps", ">= 0")
  need(config.checkpoint.every_steps >= 0, "checkpoint.every_steps", ">= 0")
  need(config.checkpoint.keep >= 1, "checkpoint.keep", ">= 1")
  need(config.sharding.strategy in ("replicate", "fsdp"), "sharding.strategy",
       "'replicate' or 'fsdp'")
  need(all(len(a) == 2 for a in config.mesh.axes), "mesh.axes", "a tuple of (name, size) pairs")


def parse_value(text: str) -> Any:
  """A command-line value: a Python literal if it parses as one, else the string."""
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def apply_overrides(config: ConfigDict, overrides: Sequence[tuple[str, str]]) -> ConfigDict:
  """Applies ``[("optimizer.learning_rate", "0.05"), ...]`` to ``config`` in place.

  Raises:
    KeyError: the field does not exist (names it and its section's fields).
    TypeError: the value does not fit the field's type.
  """
  for field, text in overrides:
    *parents, key = field.split(".")
    section = config
    for i, p in enumerate(parents):
      if not isinstance(section, ConfigDict) or p not in section:
        raise KeyError(f"unknown config field {'.'.join(parents[:i + 1])!r} in override "
                       f"--config.{field}")
      section = section[p]
    if not isinstance(section, ConfigDict) or key not in section:
      known = ", ".join(sorted(section.keys())) if isinstance(section, ConfigDict) else ""
      raise KeyError(f"unknown config field {field!r} in override --config.{field}"
                     + (f"; fields of that section: {known}" if known else ""))
    old = section[key]
    value = text if isinstance(old, str) else parse_value(text)
    if isinstance(old, ConfigDict):
      raise TypeError(f"config field {field!r} is a section; override its fields instead.")
    with config.unlocked():
      _set_typed(section, key, value, field)
  validate(config)
  return config


def save_config(config: ConfigDict, path: str | os.PathLike) -> None:
  """Writes the resolved config as JSON, atomically (temp file + rename)."""
  path = Path(path)
  tmp = path.with_suffix(path.suffix + ".tmp")
  tmp.write_text(json.dumps(config.to_dict(), indent=2, sort_keys=True, default=str) + "\n")
  os.replace(tmp, path)


def read_config(path: str | os.PathLike) -> ConfigDict:
  """Reads a config written by :func:`save_config`, validated against the defaults."""
  return from_dict(json.loads(Path(path).read_text()))


def list_configs() -> list[str]:
  """Experiment configs under the repository's ``configs/`` (``method/experiment``)."""
  if not REPO_CONFIG_DIR.is_dir():
    return []
  return sorted(str(p.relative_to(REPO_CONFIG_DIR).with_suffix(""))
                for p in REPO_CONFIG_DIR.rglob("*.py") if not p.name.startswith("_"))
