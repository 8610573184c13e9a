r"""Decorrelated BN (ZCA after conv1) in a CIFAR ResNet-50: Table 4 of Song et al. (2022).

  jaxvision train --config svd_conditioning/cifar_dbn:cifar100,nog_ow_olr \
      --config.data.kwargs.data_dir=DIR
  jaxvision train --config svd_conditioning/cifar_dbn:tiny,nog     # seconds, offline

The authors' recipe (``main_cifar100.py``): ResNet-50 with the 3x3 stride-1 stem and the
BN after conv1 replaced by ZCA whitening (groups 1, eps 1e-2); SGD in PyTorch's step order
(``sgd_torch``), lr 0.1, momentum 0.9, weight decay 5e-4, batch 128, 350 epochs, lr x0.1
every 100 epochs; random crop + flip. The paper reports the best test error over epochs,
10 runs. The whitening matrix uses ``eigh`` with the exact Loewner gradient ("SVD" rows);
``ns`` switches it to Newton-Schulz. The released code's layer uses MPA-Lya
(``whitening_method=pade``), selectable with ``--config.model.whitening_method=pade``.

Arguments (comma-separated): ``cifar10`` | ``cifar100`` (default), one treatment of
``_treatments.TREATMENTS`` (default ``svd``), ``batch=N``, ``epochs=N``, ``tiny``.
The condition number of the whitened covariance is logged as ``train/log10_cond/stem_bn``.
"""

import importlib.util
import pathlib

import ml_collections

from jaxvision.train.config import parse_arg

_spec = importlib.util.spec_from_file_location(
    "svd_treatments", pathlib.Path(__file__).with_name("_treatments.py"))
treatments = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(treatments)

TRAIN_EXAMPLES = 50_000


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  o = parse_arg(arg, choices={"dataset": ("cifar100", "cifar10"),
                              "treatment": treatments.TREATMENTS},
                batch=128, epochs=350, tiny=False)
  c = ml_collections.ConfigDict()
  c.name = f"dbn_resnet50_{o['dataset']}_{o['treatment']}"
  c.model_name = "resnet50"
  c.model = dict(stem="cifar", stem_norm="decorrelated", whitening_method="eigh",
                 whitening_eps=1e-2)
  steps_per_epoch = TRAIN_EXAMPLES // o["batch"]
  c.total_steps = o["epochs"] * steps_per_epoch
  c.data = dict(name=o["dataset"], global_batch_size=o["batch"], eval_batch_size=500,
                kwargs=dict(data_dir=None))
  c.optimizer = dict(name="sgd_torch", learning_rate=0.1, schedule="step",
                     schedule_kwargs=dict(every_steps=100 * steps_per_epoch, factor=0.1),
                     weight_decay=5e-4, decay_all_params=True,
                     kwargs=dict(momentum=0.9, nesterov=False))
  c.monitor_conditioning = True
  c.checkpoint = dict(every_steps=10 * steps_per_epoch, keep=3)
  c.log_every_steps = 100
  c.eval_every_steps = steps_per_epoch
  if o["tiny"]:
    c.name += "_tiny"
    c.model.update(width=8)
    c.data = dict(name="synthetic", global_batch_size=16, eval_batch_size=32,
                  kwargs=dict(num_examples=64, image_size=16, channels=3,
                              num_classes=100 if o["dataset"] == "cifar100" else 10))
    c.total_steps = 4
    c.optimizer.schedule_kwargs = dict(every_steps=2, factor=0.1)
    c.checkpoint = dict(every_steps=2, keep=2)
    c.log_every_steps = 1
    c.eval_every_steps = 0
  treatments.apply_treatment(c, o["treatment"], "stem_conv")
  return c
