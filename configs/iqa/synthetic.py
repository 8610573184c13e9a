r"""Norm-in-Norm vs MAE / MSE on the embedded synthetic IQA data (CPU scale).

  jaxvision train --config iqa/synthetic                 # Norm-in-Norm, ~1 minute on 2 cores
  jaxvision train --config iqa/synthetic:mse             # a baseline of Figs. 1 and 5
  jaxvision train --config iqa/synthetic:tiny            # seconds

The LinearityIQA architecture at laptop scale, as ``benchmarks/iqa_convergence.py`` runs
it: a two-stage ResNet backbone at width 16 (stride-1 stem, random initialisation: no
pretrained weights offline) with the paper's encoders and heads on its last two stages
(``levels=("conv2", "conv3")``), on 32 x 32 crops of the scikit-image photographs degraded by
blur, noise, JPEG and contrast (``jaxvision.data.iqa.synthetic_iqa``: 2000 / 512 / 512
examples, content-disjoint splits). Adam at lr 1e-3 (from scratch; the paper's 1e-4 is a
fine-tuning rate), constant, batch 8, 600 steps; validation SROCC/KROCC/PLCC/RMSE every 50
steps after the training-set linear mapping. Load a backbone with ``init.checkpoint`` (and
``init.format``) to fine-tune instead, as the benchmark's fine-tuning regime does.

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

MODEL = dict(backbone="resnet18", backbone_width=16, stem="cifar",
             backbone_kwargs=dict(stage_sizes=(1, 1)), levels=("conv2", "conv3"))


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
                kwargs=dict(image_size=32))
  c.total_steps = o["steps"]
  c.optimizer = dict(name="adam", learning_rate=o["lr"], schedule="constant", weight_decay=0.0)
  c.eval_every_steps = 50
  c.checkpoint = dict(every_steps=200, keep=2, best_metric="eval/srocc")
  c.log_every_steps = 25
  if o["tiny"]:
    c.name += "_tiny"
    c.model.update(backbone_width=8, encoder_widths=(32, 16, 8))
    c.data.kwargs = dict(image_size=16, num_per_image=8)
    c.data.eval_batch_size = 32
    c.total_steps = 4
    c.checkpoint = dict(every_steps=2, keep=2, best_metric="eval/srocc")
    c.log_every_steps = 1
    c.eval_every_steps = 2
  return c
