"""Optax gradient transformations and the name-based optimizer factory."""

from jaxvision.optim.factory import (OPTIMIZERS, SCHEDULES, create_optimizer, create_schedule,
                                     list_optimizers, matrix_params_mask, register_optimizer)

__all__ = ["OPTIMIZERS", "SCHEDULES", "create_optimizer", "create_schedule", "list_optimizers",
           "matrix_params_mask", "register_optimizer"]
