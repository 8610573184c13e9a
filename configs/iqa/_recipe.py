"""The LinearityIQA training recipe (Li, Jiang & Jiang, ACM MM 2020), shared by this folder.

Loaded by path by the experiment files (the leading underscore keeps it out of
``jaxvision list``). Spec Sec. 3: Adam, lr 1e-4 for the new layers and 0.1 x for the
backbone (the "fine-tuned rate"), no weight decay, batch 8, 30 epochs with lr x 0.1 every
10 (the code's overall decay 0.01 in steps of 0.1), loss 1 * l(main) + 0.1 * l(conv4 head) +
0.1 * l(conv5 head) with Norm-in-Norm p = 1, q = 2, seed 19920517, best validation SROCC.
"""

LOSSES = ("norm_in_norm", "mae", "mse", "plcc")
BACKBONES = ("resnext101_32x8d", "resnet18", "resnet34", "resnet50")
PAPER_SEED = 19920517


def loss_config(o: dict) -> dict:
  """``config.loss`` for the parsed options (``loss``, ``p``, ``q``, ``lprime``)."""
  kwargs = dict(head_weights=(1.0, 0.1, 0.1), mapping="train")
  if o["loss"] == "norm_in_norm":
    kwargs.update(p=o["p"], q=o["q"])
    if o["lprime"]:  # l + 0.1 l' (Table 2's variant, with the fixed PLCC of l')
      kwargs.update(alpha=(1.0, 0.1))
  return dict(name=o["loss"], kwargs=kwargs)


def apply_recipe(c, o: dict, *, train_examples: int) -> None:
  """The paper's optimisation on ``c`` for batch ``o["batch"]``, ``o["epochs"]`` epochs."""
  steps_per_epoch = train_examples // o["batch"]  # drop_last=True, as the code
  c.total_steps = o["epochs"] * steps_per_epoch
  c.optimizer = dict(name="adam", learning_rate=o["lr"], schedule="step",
                     schedule_kwargs=dict(every_steps=max(1, o["epochs"] // 3) * steps_per_epoch,
                                          factor=0.1),
                     weight_decay=0.0, lr_multipliers={"^backbone/": o["ft_rate"]})
  c.eval_every_steps = steps_per_epoch
  c.checkpoint = dict(every_steps=steps_per_epoch, keep=3, best_metric="eval/srocc")
  c.log_every_steps = 50
