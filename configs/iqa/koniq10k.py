r"""LinearityIQA on KonIQ-10k (Li, Jiang & Jiang, ACM MM 2020; Tables 1-2).

  jaxvision train --config iqa/koniq10k --config.data.kwargs.data_dir=~/koniq10k \
      --config.init.checkpoint=~/weights/resnext101_32x8d-8ba56ff5.pth
  jaxvision train --config iqa/koniq10k:resnet50,mse        # a Table 1 / Table 4 cell
  jaxvision train --config iqa/koniq10k:tiny                 # seconds, offline

The paper's model (ResNeXt-101 32x8d backbone, conv4 + conv5 features, the authors'
encoders and heads) and recipe (``_recipe.py``), images resized to 498 x 664 (``--resize``),
no augmentation, the owner's 7058 / 1000 / 2015 split. The backbone is ImageNet-pretrained
in the paper: point ``init.checkpoint`` at torchvision's weights file (``.pth`` needs
``pip install "jaxvision[torch]"``; an ``.npz`` of the same state_dict does not). Evaluation
runs on the validation split every epoch with SROCC/KROCC/PLCC/RMSE after the linear mapping
fitted on the training set, and the best validation SROCC state is kept (model selection, as
the paper: ``checkpoints_best/``, ``best.json``); then
``jaxvision eval --workdir DIR --best --split test`` gives the test numbers.

Arguments: a backbone of ``_recipe.BACKBONES`` (default resnext101_32x8d), a loss of
``_recipe.LOSSES`` (default norm_in_norm), ``p=``, ``q=`` (1, 2), ``lprime`` (l + 0.1 l'),
``batch=`` (8), ``lr=`` (1e-4), ``ft_rate=`` (0.1), ``epochs=`` (30), ``tiny``.
Expected (Table 1/2): SROCC 0.937 / PLCC 0.947 with ResNeXt-101 (test split).
"""

import importlib.util
import pathlib

import ml_collections

from jaxvision.train.config import parse_arg

_spec = importlib.util.spec_from_file_location(
    "iqa_recipe", pathlib.Path(__file__).with_name("_recipe.py"))
recipe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(recipe)

TRAIN_EXAMPLES = 7058


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  o = parse_arg(arg, choices={"backbone": recipe.BACKBONES, "loss": recipe.LOSSES}, p=1.0,
                q=2.0, lprime=False, batch=8, lr=1e-4, ft_rate=0.1, epochs=30, tiny=False)
  c = ml_collections.ConfigDict()
  c.name = f"iqa_koniq10k_{o['backbone']}_{o['loss']}"
  c.seed = recipe.PAPER_SEED
  c.task = "quality_regression"
  c.loss = recipe.loss_config(o)
  c.model_name = "linearity_iqa"
  c.model = dict(backbone=o["backbone"])
  c.data = dict(name="koniq10k", global_batch_size=o["batch"], eval_batch_size=32,
                eval_split="validation", augment=False,
                kwargs=dict(data_dir=None, image_size=(498, 664)))
  recipe.apply_recipe(c, o, train_examples=TRAIN_EXAMPLES)
  if o["tiny"]:
    c.name += "_tiny"
    c.model = dict(backbone="resnet18", backbone_width=8, encoder_widths=(32, 16, 8))
    c.data = dict(name="synthetic_iqa", global_batch_size=8, eval_batch_size=32,
                  eval_split="validation", kwargs=dict(image_size=32, num_per_image=8))
    c.total_steps = 4
    c.optimizer.schedule_kwargs = dict(every_steps=2, factor=0.1)
    c.checkpoint = dict(every_steps=2, keep=2, best_metric="eval/srocc")
    c.log_every_steps = 1
    c.eval_every_steps = 0
  return c
