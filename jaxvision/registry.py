"""Name registries: the one way configs pick models, datasets, losses and optimizers.

A :class:`Registry` maps a lower-case name to a factory. Configs hold names and
keyword arguments; code resolves them with :meth:`Registry.get`, which fails
with the list of known names when a name is unknown, e.g.::

  MODELS = Registry("model")

  @MODELS.register("resnet18")
  def resnet18(**kw): ...

  MODELS.get("resnet18")(num_classes=10)
"""

from __future__ import annotations

import fnmatch
from typing import Callable, Generic, TypeVar

T = TypeVar("T", bound=Callable)


class Registry(Generic[T]):
  """A name -> factory mapping with clear errors.

  Args:
    kind: what is registered ("model", "dataset", ...); used in error messages.
  """

  def __init__(self, kind: str):
    self.kind = kind
    self._entries: dict[str, T] = {}

  def register(self, name: str) -> Callable[[T], T]:
    """Decorator registering ``fn`` under ``name`` (case-insensitive, unique)."""
    key = name.lower()

    def decorator(fn: T) -> T:
      if key in self._entries and self._entries[key] is not fn:
        raise ValueError(f"{self.kind} {name!r} is already registered "
                         f"(by {self._entries[key].__module__}).")
      self._entries[key] = fn
      return fn

    return decorator

  def get(self, name: str) -> T:
    """Returns the factory registered under ``name``.

    Raises:
      KeyError: naming the unknown ``name`` and listing the registered ones.
    """
    if not isinstance(name, str):
      raise TypeError(f"{self.kind} name must be a str, found {type(name).__name__}: {name!r}")
    try:
      return self._entries[name.lower()]
    except KeyError:
      raise KeyError(f"unknown {self.kind} {name!r}; registered {self.kind}s: "
                     f"{', '.join(sorted(self._entries)) or '(none)'}") from None

  def list(self, pattern: str = "*") -> list[str]:
    """Sorted registered names matching a shell-style ``pattern`` (e.g. ``"resnet*"``)."""
    return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern.lower()))

  def __contains__(self, name: str) -> bool:
    return isinstance(name, str) and name.lower() in self._entries

  def __len__(self) -> int:
    return len(self._entries)
