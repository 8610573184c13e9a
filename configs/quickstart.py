r"""Quickstart: ResNet-18 (CIFAR stem, quarter width) on the embedded handwritten digits.

  jaxvision train                                  # this config, ~2 min on 2 CPU cores
  jaxvision train --config quickstart:tiny         # a few seconds: smoke test

1,437 training / 360 test images, 1x32x32. Reaches >= 95% test accuracy on a
2-core CPU (see docs/methods.md for the measured number).
"""

import ml_collections

from jaxvision.train.config import parse_arg


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  tiny = parse_arg(arg, tiny=False)["tiny"]
  c = ml_collections.ConfigDict()
  c.name = "quickstart_tiny" if tiny else "quickstart"
  c.model_name = "resnet18"
  c.model = dict(stem="cifar", width=16)
  c.data = dict(name="digits", global_batch_size=64, eval_batch_size=120)
  c.total_steps = 300
  c.optimizer = dict(name="sgd", learning_rate=0.05, schedule="cosine", warmup_steps=20,
                     weight_decay=5e-4, kwargs=dict(momentum=0.9, nesterov=True))
  c.checkpoint = dict(every_steps=100, keep=2)
  c.log_every_steps = 20
  c.eval_every_steps = 100
  if tiny:
    c.model = dict(stem="cifar", width=8)
    c.data.global_batch_size = 16
    c.data.eval_batch_size = 120
    c.total_steps = 6
    c.optimizer.warmup_steps = 0
    c.checkpoint.every_steps = 3
    c.log_every_steps = 2
    c.eval_every_steps = 0
  return c
