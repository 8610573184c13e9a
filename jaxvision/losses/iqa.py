"""Image-quality-assessment losses: Norm-in-Norm, PLCC, MAE/MSE and the monotonicity term.

Li, Jiang & Jiang, "Norm-in-Norm Loss with Faster Convergence and Better Performance for
Image Quality Assessment" (ACM MM 2020; spec ``norm-in-norm-iqa`` Sec. 2 and 7), after the
authors' ``IQAloss.py`` (lidq92/LinearityIQA):

* ``norm_in_norm`` -- eqs. (1)-(6) and the variant ``l'`` of eq. (15).
* ``plcc_loss`` -- ``(1 - PLCC) / 2``, the special case ``p = q = 2`` (eqs. 12-14).
* ``mean_absolute_error`` / ``mean_squared_error`` -- the paper's MAE/MSE baselines on raw
  MOS.
* ``monotonicity_regularizer`` -- the code's pairwise ranking term (off by default there
  and unused in the paper).

**Batch-level losses.** Unlike the rest of the loss registry, which holds per-example
losses, every function here returns one scalar for the whole batch: Norm-in-Norm
normalises by the batch mean and norm, so it does not decompose over examples. Its value
depends on which examples form "the batch":

* ``jax.jit`` over a batch sharded across devices computes the *global*-batch loss
  (``jnp.mean``/``jnp.sum`` over the batch axis are global in the global-view programming
  model); this is ``num_groups=1``, the default.
* The authors' PyTorch code (DataParallel/DDP without a synced loss) computes the loss on
  each GPU's slice; ``num_groups=G`` reproduces training on ``G`` GPUs: the batch is cut
  into ``G`` contiguous equal slices, the loss is computed per slice and averaged.
* Inside ``shard_map`` each shard sees only its slice (the per-device loss); gather the
  batch first (``jax.lax.all_gather(..., tiled=True)``) for the global one.
* Gradient accumulation over micro-batches changes the loss in the same way as
  ``num_groups``.

Shapes: predictions and targets are ``(N,)`` or ``(N, 1)`` (the code's ``y.view(-1, 1)``);
they are flattened before use, so ``(N, 1)`` against ``(N,)`` never broadcasts to
``(N, N)``.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import jax
import jax.numpy as jnp

from jaxvision.losses.registry import register_loss

__all__ = [
    "mean_absolute_error",
    "mean_squared_error",
    "monotonicity_regularizer",
    "norm_in_norm",
    "plcc_loss",
]


def _batch_vectors(pred, target, fn: str, min_n: int = 1) -> tuple[jax.Array, jax.Array]:
  """Flattened ``(N,)`` copies of ``pred``/``target`` in ``promote(dtype, float32)``."""
  pred, target = jnp.asarray(pred), jnp.asarray(target)
  for name, a in (("pred", pred), ("target", target)):
    if not (a.ndim == 1 or (a.ndim == 2 and a.shape[1] == 1)):
      raise ValueError(f"{fn}: `{name}` must have shape (N,) or (N, 1); found {a.shape}.")
  n = pred.shape[0]
  if target.shape[0] != n:
    raise ValueError(f"{fn}: `target` must have N = {n} entries like `pred` {pred.shape}; "
                     f"found {target.shape}.")
  if n < min_n:
    raise ValueError(f"{fn}: `pred` must have N >= {min_n} entries; found N = {n}.")
  dtype = jnp.result_type(pred.dtype, target.dtype, jnp.float32)
  return pred.reshape(-1).astype(dtype), target.reshape(-1).astype(dtype)


def _abs_pow(x: jax.Array, p: float) -> jax.Array:
  """``|x|^p`` with a zero (not NaN/inf) gradient at ``x = 0`` for any ``p > 0``."""
  a = jnp.abs(x)
  pos = a > 0
  return jnp.where(pos, jnp.power(jnp.where(pos, a, 1.0), p), 0.0)


def _lq_norm(x: jax.Array, q: float) -> jax.Array:
  """``(sum_i |x_i|^q)^{1/q}`` with a zero gradient at ``x = 0`` (torch.norm's subgradient)."""
  s = jnp.sum(_abs_pow(x, q))
  pos = s > 0
  return jnp.where(pos, jnp.power(jnp.where(pos, s, 1.0), 1.0 / q), 0.0)


def _check_options(p, q, alpha, eps, fn: str) -> tuple[float, float, float, float, float]:
  p, q, eps = float(p), float(q), float(eps)
  if not p > 0:
    raise ValueError(f"{fn}: `p` must be > 0; found {p}.")
  if not q > 0:
    raise ValueError(f"{fn}: `q` must be > 0; found {q}.")
  if not eps >= 0:
    raise ValueError(f"{fn}: `eps` must be >= 0; found {eps}.")
  try:
    a0, a1 = (float(a) for a in alpha)
  except (TypeError, ValueError):
    raise ValueError(f"{fn}: `alpha` must be a pair (a0, a1) of numbers; found {alpha!r}."
                     ) from None
  if a0 < 0 or a1 < 0 or a0 + a1 <= 0:
    raise ValueError(f"{fn}: `alpha` must be two numbers >= 0 with a positive sum; "
                     f"found {alpha!r}.")
  return p, q, a0, a1, eps


def _norm_in_norm_1d(pred: jax.Array, target: jax.Array, p: float, q: float, a0: float,
                     a1: float, eps: float, detach: bool) -> jax.Array:
  """The loss of one batch (``pred``, ``target``: ``(n,)`` with ``n >= 2``)."""
  n = pred.shape[0]
  stop = jax.lax.stop_gradient if detach else (lambda x: x)
  centred = pred - stop(jnp.mean(pred))                                 # eq. (1), (3)
  s_hat = centred / (eps + stop(_lq_norm(centred, q)))                  # eqs. (1), (3)
  t = target - jnp.mean(target)
  s = t / (eps + _lq_norm(t, q))                                        # eqs. (2), (4)
  # c of eq. (6) in the code's form: scale^p, scale = 2^max(1,1/q) * N^max(0,1/p-1/q).
  c = (2.0 ** max(1.0, 1.0 / q) * float(n) ** max(0.0, 1.0 / p - 1.0 / q)) ** p

  def lp_term(err):
    if p < 1:                      # the code: avoids the infinite gradient of |e|^p at 0
      err = err + eps
    return jnp.sum(_abs_pow(err, p)) / c          # = (||err||_p / scale)^p, eq. (5)

  loss = 0.0
  if a0 > 0:
    loss = loss + a0 * lp_term(s_hat - s)
  if a1 > 0:
    # Batch PLCC of the normalised vectors (= PLCC of pred and target: they are centred);
    # torch.cosine_similarity's form, each norm clamped below at eps.
    rho = jnp.dot(s_hat, s) / (jnp.maximum(_lq_norm(s_hat, 2.0), eps) *
                               jnp.maximum(_lq_norm(s, 2.0), eps))
    loss = loss + a1 * lp_term(rho * s_hat - s)                          # eq. (15)
  return loss / (a0 + a1)


@register_loss("norm_in_norm")
def norm_in_norm(pred: jax.Array, target: jax.Array, *, p: float = 1.0, q: float = 2.0,
                 alpha: Sequence[float] = (1.0, 0.0), eps: float = 1e-8, num_groups: int = 1,
                 detach: bool = False) -> jax.Array:
  """The Norm-in-Norm loss of a batch, paper eqs. (1)-(6), with the variant of eq. (15).

  ``S_hat = (pred - mean(pred)) / (eps + ||pred - mean(pred)||_q)`` and likewise ``S`` from
  ``target`` (eqs. 1-4; ``eps`` is added to the norm as in the authors' code), then
  ``l = (||S_hat - S||_p / scale)^p = sum_i |S_hat_i - S_i|^p / c`` (eq. 5) with the code's
  ``scale = 2^max(1, 1/q) * N^max(0, 1/p - 1/q)``, i.e. ``c = scale^p`` = eq. (6)'s
  ``2^p N^(1 - p/q)`` if ``p < q`` else ``2^p`` for ``q >= 1``. For ``p, q >= 1``,
  ``0 <= l <= 1``; the bound 1 is reached at ``S_hat = -S`` with equal magnitudes when
  ``p <= q`` (for ``p > q`` that point gives ``N^(1 - p/q)``). ``l`` is invariant to
  ``pred -> k1 pred + k2`` for ``k1 > 0`` (eq. 11; exactly at ``eps = 0``, to
  ``O(eps / ||pred - mean||_q)`` otherwise); ``k1 < 0`` flips ``S_hat``.

  With ``alpha = (a0, a1)`` the result is ``(a0 l + a1 l') / (a0 + a1)`` (the code's form;
  the paper's ``l + 0.1 l'`` is ``alpha=(1, 0.1)``, divided by 1.1), where
  ``l' = sum_i |rho S_hat_i - S_i|^p / c`` (eq. 15) and ``rho`` is the PLCC of the batch.
  This is the *fixed* ``rho`` (LinearityIQA issue #12, fixed in commit 7936bb8): the code
  first computed ``torch.cosine_similarity(y_pred, y)`` on ``(N, 1)`` tensors, i.e. along
  dim 1, giving per-sample values ``sign(S_hat_i S_i) = +-1`` instead of a correlation; the
  fix takes it over the transposed ``(1, N)`` tensors, i.e. the batch cosine similarity of
  the centred vectors = PLCC. Here ``rho = <S_hat, S> / (max(||S_hat||_2, eps)
  max(||S||_2, eps))``. With ``p = q = 2`` and ``eps = 0``, ``4 b^2 l' / N`` is the squared
  RMSE after least-squares mapping (eq. 18; ``b = ||target - mean||_2``).

  Autodiff gives eq. (10) (no custom VJP). ``detach=True`` stops the gradient through
  ``mean(pred)`` and the norm (the code's ``--detach`` ablation; the value is unchanged and
  the gradient becomes ``dl/dS_hat / (eps + b_hat)``).

  Degenerate batches: ``N = 1`` (or a group of one) gives 0 with a zero gradient and a
  Python warning (emitted at trace time under ``jit``), as the code's
  ``l1_loss(y_pred, y_pred.detach())``. Constant predictions (``b_hat = 0``) give
  ``S_hat = 0`` and a finite loss and gradient thanks to ``eps`` (the gradient scales like
  ``1/eps`` there); ``eps = 0`` is meant only for exact identity checks.

  For ``p < 1`` (a quasi-norm, outside the paper's ``p >= 1``), ``eps`` is added to the
  error as in the code, and the range bound no longer holds.

  This is a batch-level loss returning one scalar (the registry otherwise holds
  per-example losses): see the module docstring for its meaning under sharding.

  Args:
    pred: float ``(N,)`` or ``(N, 1)`` predictions ``Q_hat`` (any float dtype).
    target: float ``(N,)`` or ``(N, 1)`` MOS ``Q``.
    p: ``> 0`` (Python number), the exponent and norm of the error; the code's default 1.
    q: ``> 0`` (Python number), the norm of the normalisation (the paper has ``q >= 1``).
    alpha: ``(a0, a1)``, ``>= 0`` with a positive sum: the weights of ``l`` and ``l'``.
    eps: ``>= 0``, added to both norms (and to the error when ``p < 1``).
    num_groups: ``G >= 1`` dividing ``N``: the loss is the mean over ``G`` contiguous equal
      slices of the batch (per-GPU training with ``G`` GPUs); 1 = the global batch.
    detach: stop the gradient through the prediction statistics.

  Returns:
    A scalar of dtype ``promote(dtype, float32)``: float32 for bf16/f16/f32 inputs (the math
    runs in float32, since ``eps = 1e-8`` underflows in half precision), float64 for float64
    inputs under ``jax.enable_x64``.
  """
  fn = "norm_in_norm"
  p, q, a0, a1, eps = _check_options(p, q, alpha, eps, fn)
  pred, target = _batch_vectors(pred, target, fn)
  n = pred.shape[0]
  g = int(num_groups)
  if g != num_groups or g < 1 or n % g:
    raise ValueError(f"{fn}: `num_groups` must be a positive integer dividing N = {n}; "
                     f"found {num_groups!r}.")
  m = n // g
  if m == 1:
    warnings.warn(f"{fn}: a batch{' group' if g > 1 else ''} of size 1 has no Norm-in-Norm "
                  "loss; returning 0 (with a zero gradient).", stacklevel=2)
    return 0.0 * jnp.sum(pred)
  core = lambda x, y: _norm_in_norm_1d(x, y, p, q, a0, a1, eps, bool(detach))
  if g == 1:
    return core(pred, target)
  return jnp.mean(jax.vmap(core)(pred.reshape(g, m), target.reshape(g, m)))


@register_loss("plcc")
def plcc_loss(pred: jax.Array, target: jax.Array, eps: float = 1e-8, *,
              num_groups: int = 1) -> jax.Array:
  """The PLCC-induced loss ``(1 - PLCC(pred, target)) / 2``, paper eq. (14).

  Computed as ``norm_in_norm(pred, target, p=2, q=2, eps=eps)`` (the paper shows they are
  equal: ``l = sum (S_hat - S)^2 / 4 = (1 - <S_hat, S>) / 2``), exactly so at ``eps = 0``
  and to ``O(eps / ||pred - mean||_2)`` otherwise. In ``[0, 1]``; invariant to a positive
  affine map of ``pred``. A batch-level loss returning one scalar (see the module docstring
  for ``num_groups`` and sharding).

  Args:
    pred: float ``(N,)`` or ``(N, 1)``.
    target: float ``(N,)`` or ``(N, 1)``.
    eps: ``>= 0``, added to both norms.
    num_groups: as in :func:`norm_in_norm`.

  Returns:
    A scalar of dtype ``promote(dtype, float32)``.
  """
  return norm_in_norm(pred, target, p=2.0, q=2.0, eps=eps, num_groups=num_groups)


@register_loss("mae")
def mean_absolute_error(pred: jax.Array, target: jax.Array) -> jax.Array:
  """``mean_i |pred_i - target_i|`` on raw MOS: the paper's MAE baseline (``F.l1_loss``).

  A batch-level mean returning one scalar (unlike the registry's per-example losses).

  Args:
    pred: float ``(N,)`` or ``(N, 1)``.
    target: float ``(N,)`` or ``(N, 1)`` (flattened, so never broadcast against ``pred``).

  Returns:
    A scalar of dtype ``promote(dtype, float32)``.
  """
  pred, target = _batch_vectors(pred, target, "mean_absolute_error")
  return jnp.mean(jnp.abs(pred - target))


@register_loss("mse")
def mean_squared_error(pred: jax.Array, target: jax.Array) -> jax.Array:
  """``mean_i (pred_i - target_i)^2`` on raw MOS: the paper's MSE baseline (``F.mse_loss``).

  A batch-level mean returning one scalar (unlike the registry's per-example losses).

  Args:
    pred: float ``(N,)`` or ``(N, 1)``.
    target: float ``(N,)`` or ``(N, 1)`` (flattened, so never broadcast against ``pred``).

  Returns:
    A scalar of dtype ``promote(dtype, float32)``.
  """
  pred, target = _batch_vectors(pred, target, "mean_squared_error")
  return jnp.mean(jnp.square(pred - target))


def monotonicity_regularizer(pred: jax.Array, target: jax.Array, gamma: float = 0.1, *,
                             detach: bool = False) -> jax.Array:
  """The code's pairwise monotonicity (ranking) term, ``gamma`` times it.

  Exactly ``IQAloss.monotonicity_regularization`` times the weight ``gamma`` with which
  ``IQALoss.loss_func`` adds it (``loss += gamma * monotonicity_regularization(...)``)::

    R_ij = relu((pred_i - pred_j) * sign(target_j - target_i))      # (N, N)
    term = gamma * sum_ij R_ij / (N (N - 1)) / (1 + max_ij R_ij)

  ``R_ij > 0`` for each discordant pair (``pred`` orders ``i, j`` against ``target``), by
  how much the predictions disagree; pairs tied in ``target`` and the diagonal contribute 0.
  ``gamma`` is a *weight* (default 0.1 as in the code), not a margin: there is no margin.
  The normaliser ``1 + max R`` makes the term scale-free for large violations and lies in
  ``[0, gamma)``; ``detach=True`` stops its gradient (the code's ``detach``). The term is
  0 for predictions that order the batch like ``target`` and for ``N = 1``. It is off by
  default in the code and unused in the paper; not registered. Builds ``(N, N)`` matrices
  (meant for training batches). A batch-level term returning one scalar.

  Args:
    pred: float ``(N,)`` or ``(N, 1)``.
    target: float ``(N,)`` or ``(N, 1)``.
    gamma: the weight (Python number or scalar).
    detach: stop the gradient through the normaliser ``1 + max R``.

  Returns:
    A scalar of dtype ``promote(dtype, float32)``.
  """
  pred, target = _batch_vectors(pred, target, "monotonicity_regularizer")
  n = pred.shape[0]
  if n == 1:
    return 0.0 * jnp.sum(pred)
  ranking = jax.nn.relu((pred[:, None] - pred[None, :]) *
                        jnp.sign(target[None, :] - target[:, None]))
  top = jnp.max(ranking)
  scale = 1.0 + (jax.lax.stop_gradient(top) if detach else top)
  return gamma * jnp.sum(ranking) / (n * (n - 1)) / scale
