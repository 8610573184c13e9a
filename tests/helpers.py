"""Shared test helpers: tiny, fast experiment configs."""

from jaxvision.train import config as config_lib


def tiny_config(**overrides):
  """A seconds-long synthetic classification run (ResNet-18 at width 4 on 8x8 images)."""
  c = config_lib.default_config()
  c.name = "test"
  c.total_steps = 6
  c.model = dict(stem="cifar", width=4)
  c.data.name = "synthetic"
  c.data.kwargs = dict(num_examples=64, image_size=8, channels=3, num_classes=4)
  c.data.global_batch_size = 16
  c.data.eval_batch_size = 24
  c.data.prefetch = 0
  c.optimizer.learning_rate = 0.05
  c.checkpoint.every_steps = 3
  c.checkpoint.async_save = False
  c.log_every_steps = 1
  c.progress_bar = False
  d = c.to_dict()
  for path, value in overrides.items():
    *parents, key = path.split(".")
    section = d
    for p in parents:
      section = section[p]
    section[key] = value
  return config_lib.from_dict(d)


def optimizer_config(**overrides):
  """The engine's default ``config.optimizer`` section with ``overrides`` applied."""
  c = config_lib.default_config().optimizer
  for key, value in overrides.items():
    c[key] = value
  return c
