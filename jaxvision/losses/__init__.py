"""Losses: pure functions ``(predictions, targets, ...) -> per-example values``.

Also weight regularisers that are plain functions of a parameter
(``orthogonality_loss``); those are not in the ``(predictions, targets)`` registry.
"""

from jaxvision.losses.registry import (LOSSES, REGULARIZERS, get_loss, list_losses,
                                      list_regularizers, register_loss, register_regularizer)
from jaxvision.losses.classification import softmax_cross_entropy
from jaxvision.losses.colorization import chroma_l2, rebalanced_soft_cross_entropy
from jaxvision.losses.iqa import (mean_absolute_error, mean_squared_error,
                                  monotonicity_regularizer, norm_in_norm, plcc_loss)
from jaxvision.losses.orthogonality import orthogonality_loss
from jaxvision.losses.trajectory import (laplace_nll, scale_from_raw, soft_target_confidence,
                                         winner_take_all_laplace)

register_regularizer("orthogonality")(orthogonality_loss)

__all__ = ["LOSSES", "REGULARIZERS", "get_loss", "list_losses", "list_regularizers",
           "orthogonality_loss", "register_loss", "register_regularizer",
           "softmax_cross_entropy"]
__all__ += ["laplace_nll", "scale_from_raw", "soft_target_confidence", "winner_take_all_laplace"]
__all__ += ["mean_absolute_error", "mean_squared_error", "monotonicity_regularizer",
            "norm_in_norm", "plcc_loss"]
__all__ += ["chroma_l2", "rebalanced_soft_cross_entropy"]
