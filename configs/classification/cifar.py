r"""ResNet-18 (CIFAR stem) on CIFAR-10/100: the full-scale accelerator recipe.

  jaxvision train --config classification/cifar:cifar10 --config.data.kwargs.data_dir=DIR
  jaxvision train --config classification/cifar:cifar100,batch=512
  jaxvision train --config classification/cifar:tiny       # seconds, offline

Recipe: SGD + Nesterov momentum 0.9, lr 0.1 x batch/128, weight decay 5e-4 on
kernels, 5 warmup epochs then cosine decay, 200 epochs, random crop (4-pixel
pad) + flip. Expected test accuracy ~95% (CIFAR-10) / ~77% (CIFAR-100).
``tiny`` keeps the network topology at width 8 and swaps in synthetic data of
CIFAR's shape, so the pipeline runs without the dataset.

Arguments (comma-separated): ``cifar10`` (default) | ``cifar100``, ``batch=N``,
``epochs=N``, ``tiny``.
"""

import ml_collections

from jaxvision.train.config import parse_arg

TRAIN_EXAMPLES = 50_000
BASE_BATCH = 128


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  o = parse_arg(arg, choices={"dataset": ("cifar10", "cifar100")}, batch=BASE_BATCH, epochs=200, tiny=False)
  c = ml_collections.ConfigDict()
  c.name = f"resnet18_{o['dataset']}"
  c.model_name = "resnet18"
  c.model = dict(stem="cifar")
  steps_per_epoch = TRAIN_EXAMPLES // o["batch"]
  c.total_steps = o["epochs"] * steps_per_epoch
  c.data = dict(name=o["dataset"], global_batch_size=o["batch"], eval_batch_size=500,
                kwargs=dict(data_dir=None))
  c.optimizer = dict(name="sgd", learning_rate=0.1 * o["batch"] / BASE_BATCH, schedule="cosine",
                     warmup_steps=5 * steps_per_epoch, weight_decay=5e-4,
                     kwargs=dict(momentum=0.9, nesterov=True))
  c.checkpoint = dict(every_steps=10 * steps_per_epoch, keep=3)
  c.log_every_steps = 100
  c.eval_every_steps = 10 * steps_per_epoch
  if o["tiny"]:
    c.name += "_tiny"
    c.model = dict(stem="cifar", width=8)
    c.data = dict(name="synthetic", global_batch_size=16, eval_batch_size=32,
                  kwargs=dict(num_examples=64, image_size=32, channels=3,
                              num_classes=10 if o["dataset"] == "cifar10" else 100))
    c.total_steps = 4
    c.optimizer.warmup_steps = 1
    c.checkpoint = dict(every_steps=2, keep=2)
    c.log_every_steps = 1
    c.eval_every_steps = 0
  return c
