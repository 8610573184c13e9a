r"""Global covariance pooling (iSQRT-COV head) on a ResNet-18, ImageNet: Table 5 of Song et al.

  jaxvision train --config svd_conditioning/imagenet_gcp:nog_olr --config.data.kwargs.data_dir=DIR
  jaxvision train --config svd_conditioning/imagenet_gcp:tiny,svd   # seconds, offline

The paper gives no GCP recipe and released no GCP code; this follows iSQRT-COV (marked as
an assumption in docs/methods.md): ResNet-18 (ImageNet stem), average pooling replaced by
a 1x1 reduction conv to 256 channels + BN + ReLU (the Pre-SVD layer, ``gcp_reduce_conv``)
and covariance pooling with the matrix square root (``eigh`` with the exact gradient for
the "SVD" rows, Newton-Schulz with 5 iterations for ``ns``), upper-triangle vector (32,896)
-> linear head. SGD in PyTorch's order, lr 0.1 x batch/256, momentum 0.9, weight decay
1e-4, 60 epochs with lr x0.1 every 20 epochs (our assumption), batch 256. The SN and OW
rows of Table 5 modify the Pre-SVD layer, here the 1x1 reduction conv: ``sn`` makes it a
spectrally normalised conv; ``ow`` makes it row-orthonormal: the first 256 output channels
of a square 512 x 512 skew-orthogonal (SOC) 1x1 conv, SOC's rule for channel reduction (the
paper does not say how it handled this non-square layer; our resolution).

Arguments: one treatment of ``_treatments.TREATMENTS`` (default ``svd``),
``batch=N``, ``epochs=N``, ``tiny``. Logged: ``train/log10_cond/gcp``.
"""

import importlib.util
import pathlib

import ml_collections

from jaxvision.train.config import parse_arg

_spec = importlib.util.spec_from_file_location(
    "svd_treatments", pathlib.Path(__file__).with_name("_treatments.py"))
treatments = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(treatments)

TRAIN_EXAMPLES = 1_281_167
BASE_BATCH = 256


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  o = parse_arg(arg, choices={"treatment": treatments.TREATMENTS}, batch=256, epochs=60,
                tiny=False)
  c = ml_collections.ConfigDict()
  c.name = f"gcp_resnet18_imagenet_{o['treatment']}"
  c.model_name = "resnet18"
  c.model = dict(stem="imagenet", pooling="covariance", pooling_reduce_dim=256,
                 pooling_method="eigh", pooling_eps=1e-5)
  steps_per_epoch = TRAIN_EXAMPLES // o["batch"]
  c.total_steps = o["epochs"] * steps_per_epoch
  c.data = dict(name="imagenet2012", global_batch_size=o["batch"], eval_batch_size=1000,
                prefetch=4, kwargs=dict(data_dir=None))
  c.optimizer = dict(name="sgd_torch", learning_rate=0.1 * o["batch"] / BASE_BATCH,
                     schedule="step",
                     schedule_kwargs=dict(every_steps=20 * steps_per_epoch, factor=0.1),
                     weight_decay=1e-4, decay_all_params=True,
                     kwargs=dict(momentum=0.9, nesterov=False))
  c.monitor_conditioning = True
  c.checkpoint = dict(every_steps=steps_per_epoch, keep=3)
  c.log_every_steps = 100
  c.eval_every_steps = steps_per_epoch
  if o["tiny"]:
    c.name += "_tiny"
    c.model.update(width=8, pooling_reduce_dim=16)
    c.data = dict(name="synthetic", global_batch_size=16, eval_batch_size=32, prefetch=2,
                  kwargs=dict(num_examples=64, image_size=32, channels=3, num_classes=20))
    c.total_steps = 4
    c.optimizer.schedule_kwargs = dict(every_steps=2, factor=0.1)
    c.checkpoint = dict(every_steps=2, keep=2)
    c.log_every_steps = 1
    c.eval_every_steps = 0
  treatments.apply_treatment(c, o["treatment"], "gcp_reduce_conv")
  return c
