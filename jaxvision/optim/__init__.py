"""Optax gradient transformations and the name-based optimizer factory."""

from jaxvision.optim.factory import (OPTIMIZERS, SCHEDULES, create_optimizer, create_schedule,
                                     list_optimizers, matrix_params_mask, register_optimizer)
from jaxvision.optim import orthogonal  # noqa: F401  (registers "sgd_torch")
from jaxvision.optim.orthogonal import (SGDTorchState, nearest_orthogonal_gradient, olr_switch,
                                        optimal_learning_rate, sgd_torch)
from jaxvision.optim.paths import path_mask, path_multipliers, scale_by_path

__all__ = ["OPTIMIZERS", "SCHEDULES", "SGDTorchState", "create_optimizer", "create_schedule",
           "list_optimizers", "matrix_params_mask",
           "nearest_orthogonal_gradient", "olr_switch", "optimal_learning_rate", "path_mask",
           "path_multipliers", "register_optimizer", "scale_by_path", "sgd_torch"]
