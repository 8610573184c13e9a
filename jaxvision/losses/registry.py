"""The loss registry: configs pick a loss by ``config.loss.name``."""

from jaxvision.registry import Registry

LOSSES: Registry = Registry("loss")
register_loss = LOSSES.register

# Parameter regularisers: functions of one parameter array -> scalar, added to the training
# loss for the parameters a config selects (``config.regularizers``).
REGULARIZERS: Registry = Registry("regularizer")
register_regularizer = REGULARIZERS.register


def get_loss(name: str):
  """The registered loss function ``name``."""
  return LOSSES.get(name)


def list_losses(pattern: str = "*") -> list[str]:
  return LOSSES.list(pattern)


def list_regularizers(pattern: str = "*") -> list[str]:
  return REGULARIZERS.list(pattern)
