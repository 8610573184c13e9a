r"""Norm-in-Norm vs MAE / MSE on the embedded synthetic IQA data (CPU scale).

  jaxvision train --config iqa/synthetic                 # Norm-in-Norm, ~2 minutes on 2 cores
  jaxvision train --config iqa/synthetic:mse,lr=3e-4     # a baseline of Figs. 1 and 5
  jaxvision train --config iqa/synthetic:tiny            # seconds

The LinearityIQA architecture at laptop scale: a ResNet-18 backbone at width 16 (random
initialisation: no pretrained weights offline) with the paper's conv4/conv5 encoders and
heads, on 64 x 64 crops of the scikit-image photographs degraded by blur, noise, JPEG and
contrast (``jaxvision.data.iqa.synthetic_iqa``: 2016 / 512 / 512 examples with
content-disjoint splits). Adam at lr 1e-3 (from scratch; the paper's 1e-4 is a fine-tuning
rate), constant, batch 8, 600 steps; validation SROCC/PLCC every 50 steps after the
training-set linear mapping. ``benchmarks/iqa_convergence.py`` runs the loss comparison.

Arguments: a loss of ``_recipe.LOSSES`` (default norm_in_norm), ``p=``, ``q=``, ``lprime``,
``batch=``, ``lr=``, ``steps=``, ``seed=``, ``tiny``.
"""

import importlib.util
import pathlib

import ml_collections

from jaxvision.train.config import parse_arg

_spec = importlib.util.spec_from_file_location(
    "iqa_recipe", pathlib.Path(__file__).with_name("_recipe.py"))
recipe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(recipe)

MODEL = dict(backbone="resnet18", backbone_width=16, stem="imagenet")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  o = parse_arg(arg, choices={"loss": recipe.LOSSES}, p=1.0, q=2.0, lprime=False, batch=8,
                lr=1e-3, steps=600, seed=0, tiny=False)
  c = ml_collections.ConfigDict()
  c.name = f"iqa_synthetic_{o['loss']}"
  c.seed = o["seed"]
  c.task = "quality_regression"
  c.loss = recipe.loss_config(o)
  c.model_name = "linearity_iqa"
  c.model = dict(MODEL)
  c.data = dict(name="synthetic_iqa", global_batch_size=o["batch"], eval_batch_size=128,
                eval_split="validation", augment=False, seed=o["seed"],
                kwargs=dict(image_size=64))
  c.total_steps = o["steps"]
  c.optimizer = dict(name="adam", learning_rate=o["lr"], schedule="constant", weight_decay=0.0)
  c.eval_every_steps = 50
  c.checkpoint = dict(every_steps=200, keep=2)
  c.log_every_steps = 25
  if o["tiny"]:
    c.name += "_tiny"
    c.model.update(backbone_width=8, encoder_widths=(32, 16, 8))
    c.data.kwargs = dict(image_size=32, num_per_image=8)
    c.data.eval_batch_size = 32
    c.total_steps = 4
    c.checkpoint = dict(every_steps=2, keep=2)
    c.log_every_steps = 1
    c.eval_every_steps = 2
  return c
