r"""Spectral reconstruction on NTIRE 2020 (ARAD, clean track), Table 1's NTIRE20 columns.

  jaxvision train --config spectral_recon/ntire2020 --config.data.kwargs.data_dir=~/NTIRE2020
  jaxvision train --config spectral_recon/ntire2020:mst       --config.data.kwargs.data_dir=...
  jaxvision train --config spectral_recon/ntire2020:tiny      # seconds, offline (synthetic)
  jaxvision eval --workdir DIR --best                         # the validation numbers

Data (``jaxvision.data.spectral.ntire2020``; manual download, layout in
``NTIRE2020_LAYOUT``; the track ``clean`` (default) | ``real_world``): the training scenes
cut into ``patch=`` x ``patch=`` patches with stride 8 (MST++), augmented with rot90 x
{0..3} and flips; the validation scenes whole (482 x 512), metrics on the ``[128:-128,
128:-128]`` centre (MST++'s validation), RGB min-max normalised per image. Recipe:
``_recipe.py`` (the paper's: patch 64, batch 20, Adam 2e-4 cosine to 1e-6 per iteration over
300 x 1000 iterations, MRAE). ``mst_recipe`` switches to MST++'s own defaults (patch 128, lr
4e-4).

Expected (Table 1, NTIRE20): the paper's model MRAE 0.0669 / RMSE 0.0158 (MST: 0.0747 /
0.0173); the track is not stated in the paper (``clean`` assumed).

Arguments: the model ``acc`` (default) | ``mst`` | ``msa``, ``solver=`` scan | jacobi |
implicit, ``patch=``, ``batch=``, ``lr=``, ``epochs=`` (300), ``iters_per_epoch=`` (1000),
``mst_recipe``, ``seed=``, ``tiny``.
"""

import importlib.util
import pathlib

import ml_collections

from jaxvision.train.config import parse_arg

_spec = importlib.util.spec_from_file_location(
    "spectral_recipe", pathlib.Path(__file__).with_name("_recipe.py"))
recipe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(recipe)

DATASET, BORDER = "ntire2020", 128
TRACKS = ("clean", "real_world")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  o = parse_arg(arg, choices={"model": tuple(recipe.MODELS), "track": TRACKS},
                **recipe.defaults())
  c = ml_collections.ConfigDict()
  c.name = f"spectral_recon_{DATASET}_{o['track']}_{o['model']}"
  c.seed = o["seed"]
  c.task = "spectral_reconstruction"
  recipe.model_config(c, o)
  recipe.apply_recipe(c, o)
  c.loss = dict(name="mrae", kwargs=dict(zero_guard=True, border=BORDER))
  c.data = dict(name=DATASET, global_batch_size=o["batch"], eval_batch_size=recipe.EVAL_BATCH,
                eval_split="validation", augment=True, seed=o["seed"],
                kwargs=dict(patch_size=o["patch"], stride=8, track=o["track"]))
  if o["tiny"]:
    recipe.tiny(c, o, dict(name="synthetic_hsi", global_batch_size=8, eval_batch_size=8,
                           eval_split="validation", augment=True, seed=o["seed"],
                           kwargs=dict(image_size=16, num_examples=16)))
    c.loss = dict(name="mrae", kwargs=dict(zero_guard=True, border=0))
  return c
