"""The model registry: ``create_model(name, **kwargs)`` and ``list_models(pattern)``."""

from __future__ import annotations

import flax.linen as nn

from jaxvision.registry import Registry

MODELS: Registry = Registry("model")
register_model = MODELS.register


def create_model(name: str, **kwargs) -> nn.Module:
  """Builds the registered model ``name`` with constructor overrides ``kwargs``.

  Example: ``create_model("resnet18", num_classes=10, stem="cifar")``.

  Raises:
    KeyError: ``name`` is not registered (the message lists what is).
    TypeError: a keyword is not a field of that model (the message names it).
  """
  factory = MODELS.get(name)
  try:
    return factory(**kwargs)
  except TypeError as e:
    raise TypeError(f"create_model({name!r}): bad keyword argument: {e}") from None


def list_models(pattern: str = "*") -> list[str]:
  """Registered model names matching the shell-style ``pattern``."""
  return MODELS.list(pattern)
