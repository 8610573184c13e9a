"""The training engine: pure ``train_step``/``eval_step``, sharded init, the loop.

Everything here is driven by a config (:mod:`jaxvision.train.config`):

* :func:`build_experiment` resolves names to a model, task, optimizer, datasets,
  mesh and shardings, and derives the abstract (shape-only) train state.
* :func:`make_train_step` returns the pure ``train_step(state, batch) -> (state,
  metrics)``; :func:`make_eval_step` the pure ``eval_step(state, batch) -> (sums, collected)``.
  Both are jitted once with explicit shardings, the state donated.
* :func:`train` runs the loop with resume, periodic evaluation and checkpoints,
  logging, and the NaN guard; :func:`evaluate_workdir` evaluates a finished run.

Batch statistics (BatchNorm) are computed over the *global* batch: under ``jit``
a mean over the sharded batch axis is a cross-device mean, so an 8-device run
computes what a 1-device run computes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

import jaxvision
from jaxvision import data as data_lib
from jaxvision import losses, models, ops, optim
from jaxvision.train import config as config_lib
from jaxvision.train import logging as logging_lib
from jaxvision.train import sharding as sharding_lib
from jaxvision.train.checkpoint import CheckpointError, Checkpointer
from jaxvision.train.state import TrainState
from jaxvision.train.tasks import Task, create_task

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"
BEST_CHECKPOINT_DIR = "checkpoints_best"
BEST_FILE = "best.json"
INTERMEDIATES = "intermediates"
SOWN_COVARIANCE = "covariance"
COND_PREFIX = "train/log10_cond/"  # monitors: inf is a valid reading (singular covariance)

Regularizer = Callable[[Any], dict]


class NonFiniteError(FloatingPointError):
  """Training produced a NaN/inf metric; carries the ``step`` and the ``metric`` name."""

  def __init__(self, step: int, metric: str, value: float):
    self.step, self.metric, self.value = step, metric, value
    super().__init__(f"non-finite {metric} = {value} at step {step}; training stopped. The last "
                     f"checkpoint before it is intact (resume after fixing the cause, e.g. a "
                     f"lower learning rate).")


@dataclasses.dataclass
class Experiment:
  """Everything built from a config for one mesh (see :func:`build_experiment`)."""
  config: Any
  mesh: jax.sharding.Mesh
  model: Any
  task: Task
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  train_source: data_lib.Source
  eval_source: data_lib.Source
  init_fn: Callable[[jax.Array], TrainState]
  abstract_state: TrainState
  state_sharding: Any
  batch_sharding: jax.sharding.NamedSharding
  regularizer: Regularizer | None = None

  def init_state(self) -> TrainState:
    """A freshly initialised train state, created directly into its shardings.

    With ``config.partitionable_init_rng=False`` (default) the initialisers draw
    from the classic threefry stream: XLA compiles it ~5x faster on CPU (4 s vs
    20 s for a ResNet-18 init here), and the values are deterministic and
    independent of the mesh either way. Set it True for very large models whose
    sharded initialisation must not materialise a full parameter per device.
    """
    with jax.threefry_partitionable(self.config.partitionable_init_rng):
      state = jax.jit(self.init_fn, out_shardings=self.state_sharding)(
          jax.random.PRNGKey(self.config.seed))
    if self.config.init.checkpoint:
      state = self._load_pretrained(state)
    return state

  def _load_pretrained(self, state: TrainState) -> TrainState:
    """``state`` with ``config.init``'s pretrained weights (the optimizer state is unchanged:
    optax states start from zeros whatever the parameters)."""
    init = self.config.init
    host = jax.device_get({"params": state.params, **state.model_state})
    try:
      loaded = models.convert.load_pretrained(host, os.path.expanduser(init.checkpoint),
                                              fmt=init.format, prefix=init.prefix)
    except (KeyError, ValueError, TypeError, FileNotFoundError, ImportError) as e:
      raise type(e)(f"config field 'init.checkpoint' = {init.checkpoint!r}: {e}") from None
    loaded = {c: jax.tree.map(lambda new, old: np.asarray(new, old.dtype), loaded[c], host[c])
              for c in host}
    params = jax.device_put(loaded.pop("params"), self.state_sharding.params)
    model_state = jax.device_put(loaded, self.state_sharding.model_state)
    log.info("loaded pretrained weights from %s (%s, prefix %r)", init.checkpoint,
             init.format, init.prefix)
    return state.replace(params=params, model_state=model_state)


def create_train_state_fn(model, tx: optax.GradientTransformation, example_input
                          ) -> Callable[[jax.Array], TrainState]:
  """``init_fn(rng) -> TrainState`` for ``model``.

  Args:
    model: a Linen module called as ``model(inputs, train=...)``.
    tx: the optimizer.
    example_input: either the shape of one float32 input without the batch axis (a tuple
      of ints, e.g. ``(32, 32, 3)``), or an example input pytree with a leading batch axis
      (arrays or ``ShapeDtypeStruct`` objects; only shapes and dtypes are used).
  """
  if isinstance(example_input, tuple) and all(isinstance(d, int) for d in example_input):
    example_input = jax.ShapeDtypeStruct((1, *example_input), jnp.float32)

  def init_fn(rng):
    param_rng, dropout_rng, state_rng = jax.random.split(rng, 3)
    inputs = jax.tree.map(lambda x: jnp.zeros((1, *x.shape[1:]), x.dtype), example_input)
    variables = model.init({"params": param_rng, "dropout": dropout_rng}, inputs, train=False)
    variables = dict(variables)
    variables.pop(INTERMEDIATES, None)  # sown diagnostics are per-step outputs, not state
    params = variables.pop("params")
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, model_state=variables,
                      opt_state=tx.init(params), rng=state_rng, apply_fn=model.apply, tx=tx)

  return init_fn


def create_regularizer(regularizers) -> Regularizer | None:
  """``params -> {name: weighted penalty}`` from ``config.regularizers``, or ``None``.

  Each entry ``name: {"pattern": regex, "weight": w}`` adds ``w * sum(fn(p))`` over the
  parameters whose '/'-joined path matches ``pattern`` (``re.search``), with ``fn`` the
  regulariser registered as ``name`` in :data:`jaxvision.losses.REGULARIZERS`.
  """
  entries = []
  for name, spec in dict(regularizers).items():
    spec = dict(spec)
    if set(spec) != {"pattern", "weight"}:
      raise ValueError(f"config field 'regularizers.{name}' must have exactly the keys "
                       f"'pattern' and 'weight'; found {sorted(spec)}.")
    entries.append((name, losses.REGULARIZERS.get(name), spec["pattern"], float(spec["weight"])))
  if not entries:
    return None

  def regularizer(params) -> dict:
    out = {}
    for name, fn, pattern, weight in entries:
      mask = optim.path_mask(params, pattern)
      selected = [p for p, m in zip(jax.tree.leaves(params), jax.tree.leaves(mask)) if m]
      if not selected:
        raise ValueError(f"config field 'regularizers.{name}.pattern' = {pattern!r} matches "
                         f"no parameter path.")
      out[name] = weight * sum(fn(p) for p in selected)
    return out

  return regularizer


def _check_divisible(what: str, batch: int, mesh) -> None:
  n = mesh.shape[sharding_lib.DATA_AXIS]
  if batch % n:
    raise ValueError(f"config field {what!r} = {batch} must be divisible by the {n} devices "
                     f"of the mesh's {sharding_lib.DATA_AXIS!r} axis.")


def build_experiment(config, mesh: jax.sharding.Mesh | None = None) -> Experiment:
  """Resolves ``config`` into an :class:`Experiment` (no arrays are allocated)."""
  if mesh is None:
    mesh = sharding_lib.make_mesh(config.mesh.axes, config.mesh.num_devices)
  _check_divisible("data.global_batch_size", config.data.global_batch_size, mesh)
  _check_divisible("data.eval_batch_size", config.data.eval_batch_size, mesh)
  data_kwargs = dict(config.data.kwargs)
  train_source = data_lib.create_dataset(config.data.name, "train", **data_kwargs)
  if config.data.eval_name:  # cross-dataset evaluation
    eval_source = data_lib.create_dataset(config.data.eval_name, config.data.eval_split,
                                          **dict(config.data.eval_kwargs))
  else:
    eval_source = data_lib.create_dataset(config.data.name, config.data.eval_split, **data_kwargs)
  model_kwargs = dict(config.model)
  if config.task == "classification":
    model_kwargs.setdefault("num_classes", train_source.info.num_classes)
  model = models.create_model(config.model_name, **model_kwargs)
  task = create_task(config)
  tx, schedule = optim.create_optimizer(config.optimizer, config.total_steps)
  example = task.model_input(train_source.get(np.zeros((1,), np.int64)))
  init_fn = create_train_state_fn(
      model, tx, jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), example))
  abstract_state = jax.eval_shape(init_fn, jax.random.PRNGKey(config.seed))
  state_sharding = sharding_lib.state_shardings(abstract_state, mesh, config.sharding.strategy,
                                                config.sharding.fsdp_min_size)
  regularizer = create_regularizer(config.regularizers)
  if regularizer is not None:
    jax.eval_shape(regularizer, abstract_state.params)  # fails now if a pattern matches nothing
  return Experiment(config, mesh, model, task, tx, schedule, train_source, eval_source, init_fn,
                    abstract_state, state_sharding, sharding_lib.batch_sharding(mesh), regularizer)


def _conditioning_metrics(intermediates) -> dict:
  """``train/log10_cond/<layer>``: median log10 float64 condition number of each sown
  covariance (over its groups / batch), for layers that sow ``"covariance"``."""
  metrics = {}
  for path, cov in jax.tree_util.tree_flatten_with_path(intermediates)[0]:
    keys = [getattr(k, "key", getattr(k, "idx", None)) for k in path]
    if SOWN_COVARIANCE not in keys:
      continue
    layer = "/".join(str(k) for k in keys[:keys.index(SOWN_COVARIANCE)])
    kappa = ops.condition_number(cov)
    metrics[f"{COND_PREFIX}{layer}"] = jnp.median(jnp.log10(kappa.astype(jnp.float32)))
  return metrics


def make_train_step(task: Task, schedule: optax.Schedule, regularizer: Regularizer | None = None,
                    monitor_conditioning: bool = False
                    ) -> Callable[[TrainState, dict], tuple[TrainState, dict]]:
  """The pure train step: forward with batch statistics, loss, grads, optimizer update.

  The loss is the task's mean loss plus the ``regularizer`` penalties (if any). Returns
  scalar metrics ``train/loss``, ``train/lr`` (the rate this step used),
  ``train/grad_norm``, ``train/param_norm``, ``train/reg/<name>``, the task's training
  metrics and, with ``monitor_conditioning``, ``train/log10_cond/<layer>``.
  """

  def train_step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
    mutable = list(state.model_state) + ([INTERMEDIATES] if monitor_conditioning else [])

    def loss_fn(params):
      variables = {"params": params, **state.model_state}
      # mutable=[] would still make Flax return (outputs, {}): pass False for stateless models.
      outputs = state.apply_fn(variables, task.model_input(batch), train=True,
                               mutable=mutable or False, rngs={"dropout": state.step_rng()})
      outputs, new_model_state = outputs if mutable else (outputs, {})
      new_model_state = dict(new_model_state)
      intermediates = new_model_state.pop(INTERMEDIATES, {})
      task_loss = jnp.mean(task.loss(outputs, batch))
      penalties = regularizer(params) if regularizer is not None else {}
      loss = task_loss + sum(penalties.values())
      return loss, (outputs, new_model_state, intermediates, penalties)

    (loss, (outputs, new_model_state, intermediates, penalties)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(state.params)
    updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {"train/loss": loss, "train/lr": schedule(state.step),
               "train/grad_norm": optax.tree.norm(grads),
               "train/param_norm": optax.tree.norm(params)}
    metrics.update({f"train/reg/{k}": v for k, v in penalties.items()})
    metrics.update({f"train/{k}": v for k, v in task.train_metrics(outputs, batch).items()})
    if monitor_conditioning:
      metrics.update(_conditioning_metrics(intermediates))
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                              model_state=new_model_state)
    return new_state, metrics

  return train_step


def make_eval_step(task: Task) -> Callable[[TrainState, dict], tuple[dict, dict]]:
  """The pure eval step: per-example metrics summed with the padding ``mask``.

  Returns ``(sums, collected)``: ``sums`` is ``{name: sum over real examples, "count":
  number of real examples}``; ``collected`` is the task's per-example values for
  split-level metrics (``task.collect``) with the batch's ``mask``, or ``{}``.
  """

  def eval_step(state: TrainState, batch: dict) -> tuple[dict, dict]:
    outputs = state.apply_fn(state.variables(), task.model_input(batch), train=False)
    mask = batch["mask"]
    sums = {k: jnp.sum(v * mask) for k, v in task.eval_metrics(outputs, batch).items()}
    sums["count"] = jnp.sum(mask)
    collected = {}
    if task.collect is not None:
      collected = {**task.collect(outputs, batch), "mask": mask}
    return sums, collected

  return eval_step


def jit_steps(exp: Experiment) -> tuple[Callable, Callable]:
  """``(train_step, eval_step)`` jitted with the experiment's shardings; the state is donated."""
  repl = sharding_lib.replicated(exp.mesh)
  train_step = jax.jit(make_train_step(exp.task, exp.schedule, exp.regularizer,
                                       exp.config.monitor_conditioning),
                       in_shardings=(exp.state_sharding, exp.batch_sharding),
                       out_shardings=(exp.state_sharding, repl), donate_argnums=(0,))
  eval_step = jax.jit(make_eval_step(exp.task),
                      in_shardings=(exp.state_sharding, exp.batch_sharding), out_shardings=repl)
  return train_step, eval_step


def _eval_pass(exp: Experiment, source: data_lib.Source, state: TrainState, eval_step: Callable
               ) -> tuple[dict, dict[str, np.ndarray]]:
  """One ordered pass over ``source``: summed metrics and the real rows of the collected
  per-example values (padding removed), as host numpy arrays."""
  totals, collected = None, []
  for batch in data_lib.eval_batches(source, exp.config.data.eval_batch_size):
    sums, values = eval_step(state, data_lib.to_global_array(batch, exp.batch_sharding))
    totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
    if values:
      collected.append(jax.device_get(values))
  values = {}
  if collected:
    keep = np.concatenate([c["mask"] for c in collected]) > 0
    values = {k: np.concatenate([c[k] for c in collected])[keep]
              for k in collected[0] if k != "mask"}
  return jax.device_get(totals), values


def evaluate(exp: Experiment, state: TrainState, eval_step: Callable) -> dict[str, float]:
  """One pass over the evaluation split; returns ``{"eval/<metric>": value}``.

  Per-example metrics are averaged over the split. A task with split-level metrics
  (``task.collect``/``task.summarize``: rank correlations, a mapping fitted on the
  training set) also gets them; with ``task.fit_split`` the training split is passed
  over too, with evaluation preprocessing.
  """
  totals, values = _eval_pass(exp, exp.eval_source, state, eval_step)
  count = float(totals.pop("count"))
  results = {f"eval/{k}": float(v) / count for k, v in totals.items()}
  if exp.task.summarize is not None:
    fit_values = None
    if exp.task.fit_split == "train":
      fit_values = _eval_pass(exp, exp.train_source, state, eval_step)[1]
    results.update({f"eval/{k}": float(v)
                    for k, v in exp.task.summarize(values, fit_values).items()})
  return results


def restore_state(exp: Experiment, checkpointer: Checkpointer) -> tuple[TrainState, dict] | None:
  """The newest readable checkpoint restored onto ``exp``'s mesh, or ``None``."""
  target = sharding_lib.with_shardings(exp.abstract_state.checkpoint_items(),
                                       exp.state_sharding.checkpoint_items())
  restored = checkpointer.restore_latest(target)
  if restored is None:
    return None
  items, meta = restored
  return exp.abstract_state.replace_from_checkpoint(items), meta


def _checkpoint_meta(config, step: int) -> dict:
  return {"step": step, "data_position": step * config.data.global_batch_size,
          "global_batch_size": config.data.global_batch_size,
          "jaxvision_version": jaxvision.__version__}


def _write_json(path: Path, obj: dict) -> None:
  """Writes ``obj`` to ``path`` atomically (a temporary file, then a rename)."""
  tmp = path.with_suffix(path.suffix + ".tmp")
  tmp.write_text(json.dumps(obj, indent=2) + "\n")
  os.replace(tmp, path)


class _BestTracker:
  """Model selection: keeps the state with the best ``config.checkpoint.best_metric``.

  The state is saved to ``<workdir>/checkpoints_best`` (one checkpoint) and ``best.json``
  records its step and evaluation metrics; a resumed run continues from the recorded best.
  """

  def __init__(self, config, workdir: Path):
    self.metric, self.mode = config.checkpoint.best_metric, config.checkpoint.best_mode
    if self.mode not in ("max", "min"):
      raise ValueError(f"config field 'checkpoint.best_mode' must be 'max' or 'min'; found "
                       f"{self.mode!r}.")
    self.config, self.path = config, workdir / BEST_FILE
    self.best = json.loads(self.path.read_text()) if self.path.exists() else None
    self.checkpointer = Checkpointer(workdir / BEST_CHECKPOINT_DIR, keep=1, async_save=False)

  def update(self, step: int, state: TrainState, eval_metrics: dict) -> None:
    if self.metric not in eval_metrics:
      raise KeyError(f"config field 'checkpoint.best_metric' = {self.metric!r} is not an "
                     f"evaluation metric; found {sorted(eval_metrics)}.")
    value = eval_metrics[self.metric]
    if not math.isfinite(value):
      return
    if self.best is not None:
      old = self.best["value"]
      if (value <= old) if self.mode == "max" else (value >= old):
        return
    self.checkpointer.save(step, state.checkpoint_items(), _checkpoint_meta(self.config, step))
    self.checkpointer.wait()
    self.best = {"step": step, "metric": self.metric, "value": value, "eval": eval_metrics}
    if jax.process_index() == 0:
      _write_json(self.path, self.best)

  def close(self) -> None:
    self.checkpointer.close()


def _is_multiple(step: int, every: int) -> bool:
  return bool(every) and step % every == 0


class _MetricLog:
  """Host side of the loop: NaN guard, windowed averages, logging, progress bar."""

  def __init__(self, config, writer: logging_lib.MetricWriter, pbar):
    self.config, self.writer, self.pbar = config, writer, pbar
    self.window: list[dict] = []
    self.window_start = time.perf_counter()
    self.last: dict[str, float] = {}

  def record(self, step: int, metrics) -> None:
    """Checks step ``step``'s metrics (fetched to host) and logs at log steps."""
    host = {k: float(v) for k, v in jax.device_get(metrics).items()}
    for k, v in host.items():
      if not math.isfinite(v) and not k.startswith(COND_PREFIX):
        raise NonFiniteError(step, k, v)
    self.window.append(host)
    if step % self.config.log_every_steps == 0 or step == self.config.total_steps:
      self.flush(step)

  def flush(self, step: int) -> None:
    if not self.window:
      return
    elapsed = time.perf_counter() - self.window_start
    avg = {k: float(np.mean([m[k] for m in self.window])) for k in self.window[0]}
    avg["train/lr"] = self.window[-1]["train/lr"]
    avg["train/steps_per_sec"] = len(self.window) / max(elapsed, 1e-9)
    avg["train/examples_per_sec"] = avg["train/steps_per_sec"] * self.config.data.global_batch_size
    self.writer.write(step, avg)
    self.last = avg
    self.pbar.set_postfix(loss=f"{avg['train/loss']:.4f}", refresh=False)
    self.window = []
    self.window_start = time.perf_counter()


def train(config, workdir: str | os.PathLike, *, mesh: jax.sharding.Mesh | None = None,
          stop_at_step: int | None = None) -> dict[str, float]:
  """Trains (or resumes) the experiment ``config`` in ``workdir``.

  ``stop_at_step`` ends the run early after that step with a checkpoint, as a
  preemption would (the schedule still follows ``config.total_steps``); running
  again with the same workdir resumes exactly.

  Writes ``config.json``, ``metrics.jsonl``, ``checkpoints/``, TensorBoard events
  (if tensorboardX is installed) and ``curves.png`` (if matplotlib is installed).
  A run that is already at ``config.total_steps`` only re-evaluates.

  Returns:
    The last logged training metrics and the final evaluation metrics.

  Raises:
    NonFiniteError: a training metric became NaN/inf (names step and metric).
  """
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  exp = build_experiment(config, mesh)
  if jax.process_index() == 0:
    config_lib.save_config(config, workdir / CONFIG_FILE)
  checkpointer = Checkpointer(workdir / CHECKPOINT_DIR, keep=config.checkpoint.keep,
                              async_save=config.checkpoint.async_save)
  restored = restore_state(exp, checkpointer)
  if restored is None:
    state = exp.init_state()
    log.info("initialised a new run in %s", workdir)
  else:
    state, meta = restored
    log.info("resumed from step %d (data position %d) in %s", meta["step"],
             meta["data_position"], workdir)
  train_step, eval_step = jit_steps(exp)
  start = int(jax.device_get(state.step))
  total = config.total_steps
  last = total if stop_at_step is None else min(total, int(stop_at_step))
  writer = logging_lib.MetricWriter(workdir)
  pbar = tqdm(total=total, initial=start, desc="train", unit="step", dynamic_ncols=True,
              disable=not config.progress_bar or jax.process_index() != 0)
  metric_log = _MetricLog(config, writer, pbar)
  best = _BestTracker(config, workdir) if config.checkpoint.best_metric else None
  iterator = data_lib.TrainIterator(exp.train_source, config.data.global_batch_size,
                                    seed=config.data.seed, start_step=start,
                                    shuffle=config.data.shuffle, augment=config.data.augment,
                                    prefetch=config.data.prefetch)
  results: dict[str, float] = {}
  pending = None  # (step, metrics) not yet checked: the host trails the device by one step
  try:
    for step in range(start + 1, last + 1):
      batch = data_lib.to_global_array(next(iterator), exp.batch_sharding)
      state, metrics = train_step(state, batch)
      if pending is not None:
        metric_log.record(*pending)
      pending = (step, metrics)
      pbar.update(1)
      save = _is_multiple(step, config.checkpoint.every_steps) or step == last
      run_eval = _is_multiple(step, config.eval_every_steps) and step != last
      if save or run_eval:
        metric_log.record(*pending)  # never checkpoint a state that is not known to be finite
        pending = None
      if run_eval:
        eval_metrics = evaluate(exp, state, eval_step)
        writer.write(step, eval_metrics)
        if best is not None:
          best.update(step, state, eval_metrics)
      if save:
        checkpointer.save(step, state.checkpoint_items(), _checkpoint_meta(config, step))
    if pending is not None:
      metric_log.record(*pending)
    metric_log.flush(max(last, start))
    results.update(metric_log.last)
    eval_metrics = evaluate(exp, state, eval_step)
    writer.write(max(last, start), eval_metrics)
    results.update(eval_metrics)
    if best is not None:
      best.update(max(last, start), state, eval_metrics)
      results["best/step"] = float(best.best["step"]) if best.best else float("nan")
      results[f"best/{best.metric}"] = best.best["value"] if best.best else float("nan")
  finally:
    iterator.close()
    pbar.close()
    checkpointer.close()
    writer.close()
    if best is not None:
      best.close()
  if jax.process_index() == 0:
    logging_lib.plot_curves(workdir)
  return results


def restore_run(workdir: str | os.PathLike, *, mesh: jax.sharding.Mesh | None = None,
                best: bool = False, eval_split: str | None = None
                ) -> tuple[Experiment, TrainState, dict]:
  """Rebuilds a run from ``workdir``: its saved config, newest checkpoint and metadata.

  Returns ``(experiment, state, meta)``; ``state`` is placed on ``mesh`` (default:
  the config's mesh over the devices present now), whatever mesh wrote it. For
  notebooks and analysis: ``exp.model.apply(state.variables(), images)``. ``best=True``
  restores the best evaluated state instead (``config.checkpoint.best_metric``);
  ``eval_split`` replaces the saved ``data.eval_split`` (e.g. ``"test"`` after model
  selection on ``"validation"``).
  """
  workdir = Path(workdir)
  config_path = workdir / CONFIG_FILE
  if not config_path.exists():
    raise FileNotFoundError(f"no {CONFIG_FILE} in workdir {str(workdir)!r}: is it a jaxvision "
                            f"run directory?")
  config = config_lib.read_config(config_path)
  if eval_split is not None:
    config.data.eval_split = eval_split
  exp = build_experiment(config, mesh)
  directory = workdir / (BEST_CHECKPOINT_DIR if best else CHECKPOINT_DIR)
  checkpointer = Checkpointer(directory, keep=config.checkpoint.keep, async_save=False)
  try:
    restored = restore_state(exp, checkpointer)
  finally:
    checkpointer.close()
  if restored is None:
    raise CheckpointError(f"no checkpoint in {directory}" + (
        " (was config.checkpoint.best_metric set?)." if best else "."))
  state, meta = restored
  return exp, state, meta


def evaluate_workdir(workdir: str | os.PathLike, *, mesh: jax.sharding.Mesh | None = None,
                     best: bool = False, eval_split: str | None = None) -> dict[str, float]:
  """Evaluates the newest (or, with ``best``, the best) checkpoint of the run in ``workdir``
  with its saved config (``eval_split``: another split, e.g. ``"test"``).

  Writes ``eval_step_<N>[_<split>].json`` beside the run and returns
  ``{"step": N, "eval/<metric>": value, ...}``.
  """
  workdir = Path(workdir)
  exp, state, meta = restore_run(workdir, mesh=mesh, best=best, eval_split=eval_split)
  _, eval_step = jit_steps(exp)
  results = {"step": int(meta["step"]), **evaluate(exp, state, eval_step)}
  if jax.process_index() == 0:
    suffix = f"_{eval_split}" if eval_split else ""
    _write_json(workdir / f"eval_step_{meta['step']}{suffix}.json", results)
  return results
