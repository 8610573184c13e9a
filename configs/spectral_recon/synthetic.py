r"""Spectral reconstruction on the embedded synthetic scenes (no download).

  jaxvision train --config spectral_recon/synthetic                 # the ACC network
  jaxvision train --config spectral_recon/synthetic:mst             # MST++
  jaxvision train --config spectral_recon/synthetic:msa             # the MS-MSA twin
  jaxvision train --config spectral_recon/synthetic:small           # the ~50k-parameter toys
  jaxvision train --config spectral_recon/synthetic:tiny            # seconds on a CPU

``synthetic_hsi`` (``jaxvision.data.spectral``): Voronoi scenes of measured reflectances
under a measured illuminant with smooth shading, rendered through a measured camera response
(Nikon D5100) and min-max normalised per image as MST++ does; content-disjoint train /
validation streams. The recipe is ``_recipe.py``'s (MRAE, Adam, cosine) at CPU scale: 64 x
64 scenes, batch ``batch=`` (8), ``steps=`` (2000), lr ``lr=`` (1e-3: the paper's 2e-4 is
tuned for 300k iterations), validation every ``eval_every=`` (250) steps, no border crop
(the scenes are 64 x 64).

Arguments: the model ``acc`` (default) | ``mst`` | ``msa``, ``small`` (``acc_net_small`` /
``acc_net_msa_small``; MST++ ``mst_plus_plus_tiny``), ``solver=`` scan | jacobi | implicit
(the ACC's), ``image_size=`` (64), ``batch=``, ``lr=``, ``steps=``, ``seed=``, ``tiny``.
"""

import importlib.util
import pathlib

import ml_collections

from jaxvision.train.config import parse_arg

_spec = importlib.util.spec_from_file_location(
    "spectral_recipe", pathlib.Path(__file__).with_name("_recipe.py"))
recipe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(recipe)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  o = parse_arg(arg, choices={"model": tuple(recipe.MODELS)},
                **recipe.defaults(batch=8, lr=1e-3, steps=2000, eval_every=250, image_size=64,
                                  small=False))
  c = ml_collections.ConfigDict()
  c.name = f"spectral_recon_synthetic_{o['model']}" + ("_small" if o["small"] else "")
  c.seed = o["seed"]
  c.task = "spectral_reconstruction"
  recipe.model_config(c, o)
  if o["small"]:
    c.model_name, extra = recipe.TINY_MODELS[o["model"]]
    c.model = dict(extra, **c.model)
  c.data = dict(name="synthetic_hsi", global_batch_size=o["batch"], eval_batch_size=16,
                eval_split="validation", augment=True, seed=o["seed"],
                kwargs=dict(image_size=o["image_size"]))
  o["epochs"], o["iters_per_epoch"] = 1, o["steps"]
  recipe.apply_recipe(c, o)
  c.optimizer = dict(c.optimizer.to_dict(), end_lr_factor=1e-6 / o["lr"])
  c.eval_every_steps = o["eval_every"]
  c.checkpoint = dict(every_steps=o["eval_every"], keep=3, best_metric="eval/mrae",
                      best_mode="min")
  c.log_every_steps = 50
  if o["tiny"]:
    recipe.tiny(c, o, dict(name="synthetic_hsi", global_batch_size=8, eval_batch_size=8,
                           eval_split="validation", augment=True, seed=o["seed"],
                           kwargs=dict(image_size=16, num_examples=16)))
  return c
