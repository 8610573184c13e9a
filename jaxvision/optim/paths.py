"""Parameters selected by their path: masks and per-group learning-rate multipliers.

A parameter's path is its ``/``-joined key path in the params pytree, e.g.
``"backbone/stage1_block1/conv1/kernel"``; selectors are Python regexes matched with
``re.search``. NOG/OLR (:mod:`jaxvision.optim.orthogonal`), the trainer's
``config.regularizers`` and ``config.optimizer.lr_multipliers`` all select this way.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import optax

PyTree = Any


def path_str(path) -> str:
  """The ``/``-joined string of a ``jax.tree_util`` key path (``"stem_conv/kernel"``)."""
  return jax.tree_util.keystr(path, simple=True, separator="/")


def _compile(pattern: str, fn: str) -> re.Pattern:
  if not isinstance(pattern, str):
    raise TypeError(f"{fn}: `pattern` must be a regex str; found "
                    f"{type(pattern).__name__}: {pattern!r}.")
  try:
    return re.compile(pattern)
  except re.error as e:
    raise ValueError(f"{fn}: `pattern` {pattern!r} is not a valid regex: {e}.") from None


def path_mask(params: PyTree, pattern: str) -> PyTree:
  """Selects parameters by a regular expression on their ``/``-joined key path.

  Args:
    params: any pytree (e.g. Flax ``params``); only its key paths are read.
    pattern: a Python regex, matched with ``re.search`` against paths such as
      ``"stem_conv/kernel"`` or ``"params/stage1/block0/conv1/kernel"``.

  Returns:
    A pytree of Python bools with the structure of ``params``.

  Example::

    path_mask({"stem_conv": {"kernel": k}, "head": {"kernel": h}}, "stem_conv")
    # {"stem_conv": {"kernel": True}, "head": {"kernel": False}}
  """
  regex = _compile(pattern, "path_mask")
  return jax.tree_util.tree_map_with_path(lambda p, _: regex.search(path_str(p)) is not None,
                                          params)


def path_multipliers(params: PyTree, multipliers: Mapping[str, float]) -> PyTree:
  """Per-parameter factors: that of the first pattern (in order) matching the path, else 1.

  Raises:
    ValueError: a pattern matches no parameter (a typo would silently train everything at
      the base rate), or a factor is negative.
  """
  entries = []
  for pattern, factor in multipliers.items():
    if not isinstance(factor, (int, float)) or factor < 0:
      raise ValueError(f"learning-rate multiplier for {pattern!r} must be a number >= 0; "
                       f"found {factor!r}.")
    entries.append((pattern, _compile(pattern, "path_multipliers"), float(factor)))
  paths = [path_str(p) for p, _ in jax.tree_util.tree_leaves_with_path(params)]
  for pattern, regex, _ in entries:
    if not any(regex.search(p) for p in paths):
      raise ValueError(f"learning-rate multiplier pattern {pattern!r} matches no parameter; "
                       f"parameter paths look like {paths[:3]}.")

  def factor_of(path, _):
    s = path_str(path)
    return next((f for _, regex, f in entries if regex.search(s)), 1.0)

  return jax.tree_util.tree_map_with_path(factor_of, params)


class ScaleByPathState(NamedTuple):
  """Stateless (the factors are derived from the parameter paths at every update)."""


def scale_by_path(multipliers: Mapping[str, float]) -> optax.GradientTransformation:
  """Multiplies each parameter's update by its group's factor (PyTorch parameter groups).

  Chained after an optimizer whose update is linear in its learning rate (SGD with
  momentum, Adam(W) with coupled or decoupled decay), ``scale_by_path({"^backbone/": 0.1})``
  trains the matched parameters at exactly ``0.1 x`` the rate and schedule -- the
  "fine-tuned rate" of LinearityIQA (``ft_lr_ratio``), and PyTorch's
  ``[{"params": backbone, "lr": 0.1 * lr}, {"params": head}]``. A factor of 0 freezes the
  parameters (their BatchNorm statistics still update in training mode).

  Args:
    multipliers: ``{regex on the parameter path: factor >= 0}``; the first match wins,
      unmatched parameters keep factor 1.
  """
  multipliers = dict(multipliers)

  def init_fn(params):
    path_multipliers(params, multipliers)  # validate now: a bad pattern fails at init
    return ScaleByPathState()

  def update_fn(updates, state, params=None):
    del params
    factors = path_multipliers(updates, multipliers)
    updates = jax.tree.map(lambda u, f: u if f == 1.0 else u * jnp.asarray(f, u.dtype),
                           updates, factors)
    return updates, state

  return optax.GradientTransformation(init_fn, update_fn)
