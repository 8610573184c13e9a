"""The engine: train state, pure steps, mesh + shardings, checkpoints, logging, CLI."""

from jaxvision.train.checkpoint import CheckpointError, Checkpointer
from jaxvision.train.config import (apply_overrides, default_config, load_config, read_config,
                                    save_config)
from jaxvision.train.sharding import batch_sharding, make_mesh, state_shardings
from jaxvision.train.state import TrainState
from jaxvision.train.tasks import TASKS, Task, create_task
from jaxvision.train.trainer import (Experiment, NonFiniteError, build_experiment, evaluate,
                                     evaluate_workdir, jit_steps, make_eval_step,
                                     make_train_step, restore_run, train)

__all__ = ["CheckpointError", "Checkpointer", "apply_overrides", "default_config", "load_config",
           "read_config", "save_config", "batch_sharding", "make_mesh", "state_shardings",
           "TrainState", "TASKS", "Task", "create_task", "Experiment", "NonFiniteError",
           "build_experiment", "evaluate", "evaluate_workdir", "jit_steps", "make_eval_step",
           "make_train_step", "restore_run", "train"]
