"""Losses: pure functions ``(predictions, targets, ...) -> per-example values``."""

from jaxvision.losses.registry import LOSSES, get_loss, list_losses, register_loss
from jaxvision.losses.classification import softmax_cross_entropy

__all__ = ["LOSSES", "get_loss", "list_losses", "register_loss", "softmax_cross_entropy"]
