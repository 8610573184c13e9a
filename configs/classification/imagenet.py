r"""ResNet-18/34/50 on ImageNet-1k (ILSVRC-2012): the full-scale accelerator recipe.

  jaxvision train --config classification/imagenet:resnet50 \
      --config.data.kwargs.data_dir=DIR --workdir gs://.../r50
  jaxvision train --config classification/imagenet:tiny      # seconds, offline

Recipe (Goyal et al., 2017, with the common cosine/label-smoothing refinements):
SGD + Nesterov momentum 0.9, lr 0.1 x batch/256, 5 warmup epochs, cosine decay
over 90 epochs, weight decay 1e-4 on kernels, label smoothing 0.1, zero-init of
the last BN in each block, bfloat16 compute, Inception crop + flip at 224.
Batch 1024 by default. Expected top-1: ~76.5% (ResNet-50), ~71% (ResNet-18).
``tiny`` runs the same topology at width 8 on synthetic 64x64 data.

Arguments (comma-separated): ``resnet18`` | ``resnet34`` | ``resnet50`` (default),
``batch=N``, ``epochs=N``, ``tiny``.
"""

import ml_collections

from jaxvision.train.config import parse_arg

TRAIN_EXAMPLES = 1_281_167
BASE_BATCH = 256
MODELS = ("resnet50", "resnet18", "resnet34")  # the first is the default


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  o = parse_arg(arg, choices={"model": MODELS}, batch=1024, epochs=90, tiny=False)
  c = ml_collections.ConfigDict()
  c.name = f"{o['model']}_imagenet"
  c.model_name = o["model"]
  c.model = dict(stem="imagenet", dtype="bfloat16", zero_init_residual=True)
  steps_per_epoch = TRAIN_EXAMPLES // o["batch"]
  c.total_steps = o["epochs"] * steps_per_epoch
  c.data = dict(name="imagenet2012", global_batch_size=o["batch"], eval_batch_size=1000,
                prefetch=4, kwargs=dict(data_dir=None))
  c.loss = dict(name="softmax_cross_entropy", kwargs=dict(label_smoothing=0.1))
  c.optimizer = dict(name="sgd", learning_rate=0.1 * o["batch"] / BASE_BATCH, schedule="cosine",
                     warmup_steps=5 * steps_per_epoch, weight_decay=1e-4,
                     kwargs=dict(momentum=0.9, nesterov=True))
  c.checkpoint = dict(every_steps=2 * steps_per_epoch, keep=3)
  c.log_every_steps = 100
  c.eval_every_steps = 5 * steps_per_epoch
  if o["tiny"]:
    c.name += "_tiny"
    c.model = dict(stem="imagenet", width=8, zero_init_residual=True)
    c.data = dict(name="synthetic", global_batch_size=16, eval_batch_size=32, prefetch=2,
                  kwargs=dict(num_examples=64, image_size=64, channels=3, num_classes=20))
    c.total_steps = 4
    c.optimizer.warmup_steps = 1
    c.checkpoint = dict(every_steps=2, keep=2)
    c.log_every_steps = 1
    c.eval_every_steps = 0
  return c
