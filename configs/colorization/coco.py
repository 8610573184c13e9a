r"""Vibrant colorization on COCO 2017: the paper's experiment (Table 1).

  jaxvision train --config colorization/coco --config.data.kwargs.data_dir=~/tensorflow_datasets
  jaxvision train --config colorization/coco:gamma=0 ...          # Table 1's plain-L2 row
  jaxvision train --config colorization/coco:gamma=0.25 ...       # ... 0.5, 1, 2
  jaxvision train --config colorization/coco:full ...             # full-width eccv16
  jaxvision train --config colorization/coco:tiny                 # seconds, offline

"Towards More Vibrant Image Colorization" (Mukhopadhyay et al.; spec vibrant-colorization
Sec. 3) as the authors' code (KolinGuo/Colorization) runs it: ``eccv16_half`` (Zhang et
al.'s network at half width, 8,083,147 parameters) trained from scratch with ``chroma_l2``
on COCO train2017 with the grayscale images pruned (118,287 - 227 = 118,060), resized to
128 x 128 (half Zhang's size; ``resize=stretch``: the authors' ``Resize((S, S))``, bicubic,
aspect not kept; ``resize=crop`` keeps it), no augmentation; Adam lr 3e-5, betas
(0.9, 0.99), coupled weight decay 1e-3 on every parameter (PyTorch
``Adam(weight_decay=1e-3)``), constant rate, batch 64, 20 epochs (20 x ceil(118,060 / 64) =
36,900 steps); validation on val2017 (batch 128) every epoch, the split-level
``eval/rebalanced_auc`` and the authors' ``eval/rebalanced_auc_kolinguo`` (with a prior) next
to AuC, PSNR and RMSE. The loss is summed over pixels and averaged over the batch, as the
authors'; gamma is in their code units by default (``convention=code``, see
``embedded.py``). The paper's numbers: AuC 0.91 / 0.89 and RebalancedAuC 0.3544 / 0.3967 for
gamma 0 / 1 (mixed units; PSNR and RMSE are undefined there and cannot be matched).

COCO is never downloaded: prepare ``coco/2017`` once with
``tfds build coco/2017 --data_dir DIR --file_format array_record`` (needs TensorFlow and
network) and pass ``--config.data.kwargs.data_dir=DIR`` (or ``:data_dir=DIR``). The first run
scans each split's JPEG headers for the grayscale images; ``cache_dir=`` keeps the result.

Arguments: those of ``embedded.py`` (``gamma=`` 1.0, ``convention=``, ``half`` | ``full``,
``regression`` | ``classification``, ``image_size=`` 128, ``batch=`` 64, ``lr=`` 3e-5,
``epochs=`` 20, ``seed=``, ``tiny``), and ``data_dir=``, ``cache_dir=``, ``resize=``
(stretch | crop) and ``prior_file=`` (a (229,) ``.npy`` COCO prior for the classification
head's rebalancing and the rebalanced AuC; without it the weights are uniform and
``rebalanced_auc`` uses val2017's own bin frequencies). ``tiny`` runs the embedded tiny
configuration (no COCO needed).
"""

import importlib.util
import pathlib

import ml_collections

_spec = importlib.util.spec_from_file_location(
    "colorization_embedded", pathlib.Path(__file__).with_name("embedded.py"))
embedded = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(embedded)

# train2017 minus the 227 single-band JPEGs the authors pruned
# (KolinGuo/Colorization notebook/Prune_Grayscale_Images.ipynb).
TRAIN_IMAGES = 118_287 - 227
RESIZE = ("stretch", "crop")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  o = embedded.options(arg, image_size=128, data_dir="", cache_dir="", resize="stretch",
                       prior_file="")
  if o["resize"] not in RESIZE:
    raise ValueError(f"config argument 'resize' must be one of {RESIZE}; found "
                     f"{o['resize']!r}.")
  c = ml_collections.ConfigDict()
  c.name = embedded.run_name("colorization_coco", o)
  c.seed = o["seed"]
  c.task = "colorization"
  c.model_name, c.model = embedded.model_config(o)
  c.loss = embedded.loss_config(o, prior="file" if o["prior_file"] else "uniform",
                                prior_file=o["prior_file"])
  c.data = dict(name="coco_colorization", global_batch_size=o["batch"],
                eval_batch_size=embedded.PAPER_EVAL_BATCH, eval_split="validation",
                augment=False, seed=o["seed"],
                kwargs=dict(data_dir=o["data_dir"] or None, image_size=o["image_size"],
                            resize=o["resize"], interpolation="bicubic", grayscale="drop",
                            cache_dir=o["cache_dir"] or None))
  embedded.apply_recipe(c, o, train_examples=TRAIN_IMAGES)
  if o["tiny"]:
    embedded.tiny(c, o)
  return c
