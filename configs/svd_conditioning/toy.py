r"""CPU-scale reproduction of the conditioning claim: a small ZCA network on gratings.

  jaxvision train --config svd_conditioning/toy:nog_ow_olr,seed=1
  python benchmarks/svd_conditioning_repro.py      # every treatment x 3 seeds + plot

ResNet with one basic block per stage at width 16 (stages 16/32; "resnet18" with
``stage_sizes=(1, 1)``), CIFAR stem, ZCA whitening after conv1 (eigh, exact gradient),
on 16x16 oriented gratings (10 classes, 2,048 training images); SGD in PyTorch's order,
lr 0.1, momentum 0.9, wd 5e-4, 500 steps of batch 64. Logs the float64 condition number
of the whitened layer's covariance (``train/log10_cond/stem_bn``) every 10 steps.

Arguments: one treatment (default ``svd``), ``seed=N``, ``steps=N``, ``tiny``.
"""

import importlib.util
import pathlib

import ml_collections

from jaxvision.train.config import parse_arg

_spec = importlib.util.spec_from_file_location(
    "svd_treatments", pathlib.Path(__file__).with_name("_treatments.py"))
treatments = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(treatments)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  o = parse_arg(arg, choices={"treatment": treatments.TREATMENTS}, seed=0, steps=500,
                tiny=False)
  c = ml_collections.ConfigDict()
  c.name = f"svd_toy_{o['treatment']}_seed{o['seed']}"
  c.seed = o["seed"]
  c.model_name = "resnet18"
  c.model = dict(stem="cifar", width=16, stage_sizes=(1, 1), stem_norm="decorrelated",
                 whitening_method="eigh", whitening_eps=1e-2)
  c.total_steps = o["steps"]
  c.data = dict(name="gratings", global_batch_size=64, eval_batch_size=256, seed=o["seed"],
                kwargs=dict(num_examples=2048, image_size=16, channels=3, num_classes=10))
  c.optimizer = dict(name="sgd_torch", learning_rate=0.1, schedule="constant",
                     weight_decay=5e-4, decay_all_params=True,
                     kwargs=dict(momentum=0.9, nesterov=False))
  c.monitor_conditioning = True
  c.checkpoint = dict(every_steps=0, keep=1)
  c.log_every_steps = 10
  c.eval_every_steps = 0
  c.progress_bar = False
  if o["tiny"]:
    c.name += "_tiny"
    c.total_steps = 4
    c.log_every_steps = 1
    c.data.kwargs.num_examples = 64
    c.data.global_batch_size = 16
    c.data.eval_batch_size = 32
  treatments.apply_treatment(c, o["treatment"], "stem_conv")
  return c
