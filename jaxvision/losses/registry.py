"""The loss registry: configs pick a loss by ``config.loss.name``."""

from jaxvision.registry import Registry

LOSSES: Registry = Registry("loss")
register_loss = LOSSES.register


def get_loss(name: str):
  """The registered loss function ``name``."""
  return LOSSES.get(name)


def list_losses(pattern: str = "*") -> list[str]:
  return LOSSES.list(pattern)
