r"""Cross-dataset LinearityIQA: train on KonIQ-10k, test on CLIVE (Table 2's CLIVE columns).

  jaxvision train --config iqa/clive_cross --config.data.kwargs.data_dir=~/koniq10k \
      --config.data.eval_kwargs.data_dir=~/ChallengeDB_release \
      --config.init.checkpoint=~/weights/resnext101_32x8d-8ba56ff5.pth
  jaxvision train --config iqa/clive_cross:tiny      # seconds, offline

The ``iqa/koniq10k`` experiment, evaluated on all 1,162 CLIVE images (resized to 500 x 500
when not already, then to 498 x 664, as the authors' code) with the linear mapping fitted on
the KonIQ-10k training set. Arguments: those of ``iqa/koniq10k``. Expected (Table 2):
CLIVE SROCC 0.834 / PLCC 0.849 (0.834 / 0.850 for l + 0.1 l' after the authors' fix).
"""

import importlib.util
import pathlib

import ml_collections

_spec = importlib.util.spec_from_file_location(
    "iqa_koniq10k", pathlib.Path(__file__).with_name("koniq10k.py"))
koniq = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(koniq)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = koniq.get_config(arg)
  c.name = c.name.replace("iqa_koniq10k", "iqa_clive_cross")
  if c.data.name == "koniq10k":
    c.data.eval_name = "clive"
    c.data.eval_split = "test"
    c.data.eval_kwargs = dict(data_dir=None, image_size=(498, 664))
  else:  # tiny: a second synthetic "dataset" (another seed and affine MOS scale) as target
    c.data.eval_name = "synthetic_iqa"
    c.data.eval_split = "test"
    c.data.eval_kwargs = dict(image_size=32, num_per_image=8, seed=1, affine=True)
  return c
