"""jaxvision: JAX/Flax reimplementations of vision research methods.

Layers (imports point downwards only)::

    train/  -> models/ data/ losses/ metrics/ optim/ analysis/ -> nn/ -> ops/

Subpackages are imported lazily so that ``import jaxvision`` stays cheap and
does not pull TensorFlow (or anything else optional) into a notebook.
"""

import importlib

__version__ = "0.1.0"

_SUBPACKAGES = ("ops", "nn", "models", "losses", "metrics", "optim", "data", "train", "analysis")


def __getattr__(name):
  if name in _SUBPACKAGES:
    return importlib.import_module(f"jaxvision.{name}")
  raise AttributeError(f"module 'jaxvision' has no attribute {name!r}")


def __dir__():
  return sorted(list(globals()) + list(_SUBPACKAGES))
