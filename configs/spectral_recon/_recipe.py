"""The spectral-reconstruction recipe shared by this folder (spec Sec. 3).

Loaded by path by the experiment files (the leading underscore keeps it out of ``jaxvision
list``).

The paper (App. B): RGB scaled to [0, 1], 64 x 64 crops, batch 20, Adam (0.9, 0.999), lr
2e-4 cosine-annealed to 1e-6 over "300 epochs", random flips, the MRAE loss, one A100;
"similar to Cai et al. (2022b)", i.e. MST++, whose code anneals per *iteration* with 1
"epoch" = 1000 iterations (300 epochs = 300k iterations), crops patches with stride 8,
augments with rot90 x {0..3} and flips and min-max normalises the RGB per image. This recipe
follows MST++'s semantics with the paper's numbers: ``epoch`` = 1000 iterations
(``iters_per_epoch=``), 300 epochs, lr 2e-4 -> 1e-6 cosine, no weight decay (Lemma 3's L2
term has no value; 0), Adam (0.9, 0.999). MST++'s own defaults (patch 128, lr 4e-4) are
``mst_recipe``.

Models: ``acc_net`` (the paper's, reconstructed; ``acc``), ``mst_plus_plus`` (the baseline;
``mst``), ``acc_net_msa`` (the MS-MSA twin; ``msa``).
"""

MODELS = {"acc": "acc_net", "mst": "mst_plus_plus", "msa": "acc_net_msa"}
TINY_MODELS = {"acc": ("acc_net_small", {}), "mst": ("mst_plus_plus_tiny", {}),
               "msa": ("acc_net_msa_small", {})}
SOLVERS = ("scan", "jacobi", "implicit")
PAPER = dict(patch=64, batch=20, lr=2e-4, end_lr=1e-6, epochs=300, iters_per_epoch=1000)
MST_DEFAULTS = dict(patch=128, lr=4e-4)  # MST++'s train.py defaults
EVAL_BATCH = 1  # MST++ validates one whole image at a time


def defaults(**overrides) -> dict:
  """The parsed-argument defaults (the paper's recipe) with a config's ``overrides``."""
  base = dict(patch=PAPER["patch"], batch=PAPER["batch"], lr=PAPER["lr"],
              epochs=PAPER["epochs"], iters_per_epoch=PAPER["iters_per_epoch"],
              solver="scan", seed=0, tiny=False, mst_recipe=False)
  base.update(overrides)
  return base


def model_config(c, o: dict) -> None:
  """``config.model_name`` / ``config.model`` for ``o["model"]`` (and the ACC solver)."""
  if o["solver"] not in SOLVERS:
    raise ValueError(f"spectral_recon: solver= must be one of {SOLVERS}; found {o['solver']!r}.")
  c.model_name = MODELS[o["model"]]
  c.model = {} if o["model"] == "mst" else dict(acc_solver=o["solver"])


def apply_recipe(c, o: dict) -> None:
  """The optimisation on ``c``: Adam, cosine per iteration to 1e-6, ``epochs x
  iters_per_epoch`` steps, validation and a checkpoint every epoch (the best validation MRAE
  is kept, MST++'s model selection)."""
  if o["mst_recipe"]:
    o.update(MST_DEFAULTS)
  steps = int(o["epochs"]) * int(o["iters_per_epoch"])
  c.total_steps = steps
  c.loss = dict(name="mrae", kwargs=dict(zero_guard=True))
  c.optimizer = dict(name="adam", learning_rate=o["lr"], schedule="cosine",
                     end_lr_factor=PAPER["end_lr"] / o["lr"], weight_decay=0.0,
                     kwargs=dict(b1=0.9, b2=0.999))
  c.eval_every_steps = int(o["iters_per_epoch"])
  c.checkpoint = dict(every_steps=int(o["iters_per_epoch"]), keep=3, best_metric="eval/mrae",
                      best_mode="min")
  c.log_every_steps = 100


def tiny(c, o: dict, data: dict) -> None:
  """Seconds on a CPU: the small networks, 16 x 16 synthetic crops, 4 steps."""
  c.name += "_tiny"
  c.model_name, extra = TINY_MODELS[o["model"]]
  c.model = dict(extra) if o["model"] == "mst" else dict(extra, acc_solver=o["solver"])
  c.data = data
  c.total_steps = 4
  c.optimizer = dict(c.optimizer.to_dict(), learning_rate=1e-3, end_lr_factor=0.0)
  c.checkpoint = dict(every_steps=2, keep=2, best_metric="eval/mrae", best_mode="min")
  c.log_every_steps = 1
  c.eval_every_steps = 2
