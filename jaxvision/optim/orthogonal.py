"""Nearest orthogonal gradient (NOG) and optimal learning rate (OLR).

Song, Sebe & Wang, "Improving Covariance Conditioning of the SVD Meta-layer by
Orthogonality", ECCV 2022, Sec. 5. Both act on the "Pre-SVD layer" only (the
conv right before a decorrelated-BN / covariance-pooling layer), picked by a
parameter-path regex with :func:`path_mask`::

  tx = sgd_torch(0.1, momentum=0.9, weight_decay=5e-4,
                 decay_mask=matrix_params_mask,
                 nog_mask=lambda p: path_mask(p, "stem_conv/kernel"),
                 olr_mask=lambda p: path_mask(p, "stem_conv/kernel"))

or from a config: ``optimizer.name = "sgd_torch"``,
``optimizer.kwargs = dict(nog="stem_conv", olr="stem_conv")``.

Matrix view of a kernel. As in the authors' PyTorch code, a conv kernel is seen
as the ``(out, in * kh * kw)`` matrix PyTorch gets from ``weight.reshape(out, -1)``
on its OIHW layout; for Flax's HWIO kernel that is
``kernel.transpose(3, 2, 0, 1).reshape(out, -1)`` (:func:`jaxvision.ops.kernel_to_matrix`). A
Dense kernel ``(in, out)`` is seen as its transpose ``(out, in)`` (PyTorch's
``Linear.weight``). The polar factor is equivariant under orthogonal maps on
either side (``polar(A G B) = A polar(G) B``), and a layout change is such a map
(a permutation), so the result does not depend on this choice; it is kept so
that intermediate matrices match the reference code.

Errata (checked in ``tests/optim/test_orthogonal.py``):

* Sec. 5.1 says NOG "keeps the GD direction unchanged". It does not: ``U Vᵀ`` is
  not parallel to ``G = U S Vᵀ`` unless all singular values are equal. It is a
  descent direction, since ``<G, U Vᵀ> = sum(S) = ||G||_* > 0``: it is the
  steepest-descent direction under the spectral norm (the same update as Muon's
  orthogonalised momentum).
* Eq. (20)'s ``eta*`` is not the minimiser of eq. (18). It is the minimiser of
  the second-order Taylor expansion at ``eta = 0`` of ``||w - eta l||^4`` (one
  Newton step from 0; the identity term of eq. (19) drops out), see
  :func:`optimal_learning_rate`.
* Proposition 1 does not reproduce: for orthogonal ``N x N`` ``W`` and ``G``,
  ``eta* = N t / (N^2 + 2 t^2)`` with ``t = <G, W>`` in ``[-N, N]``, so
  ``eta* <= 1 / (2 sqrt 2) ~= 0.354`` (and ``1/3`` at ``G = W``), not
  ``<= N^2 / (N^2 + 2)``; it is not bounded below by ``1 / (N^2 + 2)`` either
  (``t <= 0`` gives ``eta* <= 0``).
"""

from __future__ import annotations

import re
from typing import Any, Callable, NamedTuple, Union

import jax
import jax.numpy as jnp
import optax

from jaxvision.ops import POLAR_METHODS, kernel_to_matrix, matrix_to_kernel, polar
from jaxvision.optim.factory import register_optimizer
from jaxvision.optim.paths import path_mask, path_str as _path_str

PyTree = Any
Mask = Union[None, PyTree, Callable[[PyTree], PyTree]]


def _full_mask(mask: Mask, tree: PyTree, *, default: bool, name: str) -> PyTree:
  """``mask`` (None, bool pytree or prefix, callable) -> a bool pytree shaped like ``tree``."""
  if mask is None:
    return jax.tree.map(lambda _: default, tree)
  if callable(mask):
    mask = mask(tree)
  try:
    return jax.tree.map(lambda m, sub: jax.tree.map(lambda _: bool(m), sub), mask, tree)
  except (ValueError, TypeError) as e:
    raise ValueError(f"`{name}` must be a pytree of Python bools with the structure of the "
                     f"parameters (or a prefix of it), or a callable returning one; found "
                     f"{jax.tree.structure(mask)} for parameters {jax.tree.structure(tree)}: "
                     f"{e}") from None


def _nog_leaf(g: jax.Array, *, method: str, polar_kwargs: dict, path: str = "") -> jax.Array:
  if g.ndim < 2:
    raise ValueError(f"nearest_orthogonal_gradient: selected parameter {path or '(leaf)'} must "
                     f"be a Dense or conv kernel with ndim >= 2; found shape {g.shape}. "
                     f"Exclude it from the mask.")
  r = polar(kernel_to_matrix(g), method=method, **polar_kwargs)
  return matrix_to_kernel(r, g.shape).astype(g.dtype)


def _check_method(method: str) -> None:
  if method not in POLAR_METHODS:
    raise ValueError(f"nearest-orthogonal-gradient `method` must be one of {POLAR_METHODS}; "
                     f"found {method!r}.")


def nearest_orthogonal_gradient(mask: Mask = None, method: str = "svd",
                                **polar_kwargs) -> optax.GradientTransformation:
  """Replaces each selected gradient by its nearest (semi-)orthogonal matrix (NOG).

  For the matrix view ``G`` (``(out, in·kh·kw)``, see :func:`kernel_to_matrix`) of a
  selected gradient with thin SVD ``G = U S Vᵀ``, the update becomes

    ``R = argmin_{Rᵀ R = I} ||G - R||_F = G (Gᵀ G)^{-1/2} = U Vᵀ``   (eqs. 14–17),

  reshaped back to the kernel layout. ``R`` has all singular values 1 (``κ(R) = 1``),
  ``Rᵀ R = I`` for tall and ``R Rᵀ = I`` for wide ``G``, and is invariant to positive
  scaling of ``G``, so the step length comes from the learning rate alone.

  Direction (erratum): the paper says NOG keeps the gradient-descent direction;
  ``U Vᵀ`` is not parallel to ``G`` unless ``S ∝ I``. It is still a descent direction,
  ``<G, U Vᵀ> = tr(S) = ||G||_* > 0`` for ``G != 0``: the steepest-descent direction
  under the spectral norm (``argmax_{||R||_2 <= 1} <G, R>``).

  A zero gradient gives a zero update; for a rank-deficient gradient ``U Vᵀ`` is
  basis-dependent on the null space (as in the reference code; see ``polar``).
  Apply it after the gradient all-reduce: under ``jit`` on global arrays that is
  automatic; the polar factor of per-device gradients does not commute with a mean.

  Args:
    mask: which parameters: ``None`` for every leaf with ``ndim >= 2``; a pytree of
      bools (or a prefix of one); or a callable ``updates -> mask`` (``optax.masked``
      semantics, e.g. ``lambda p: path_mask(p, "stem_conv/kernel")``). Selected
      leaves must have ``ndim >= 2``.
    method: ``"svd"`` (exact, as the authors) or ``"newton_schulz"``, passed to
      :func:`jaxvision.ops.polar`.
    **polar_kwargs: extra options of ``polar`` (e.g. ``num_iters``).

  Returns:
    A stateless ``optax.GradientTransformation``; unselected leaves pass through
    unchanged, selected leaves keep their shape and dtype.
  """
  _check_method(method)

  def init_fn(params):
    del params
    return optax.EmptyState()

  def update_fn(updates, state, params=None):
    del params
    if mask is None:
      full = jax.tree.map(lambda u: u.ndim >= 2, updates)
    else:
      full = _full_mask(mask, updates, default=True, name="mask")
    new = jax.tree_util.tree_map_with_path(
        lambda p, u, m: _nog_leaf(u, method=method, polar_kwargs=polar_kwargs,
                                  path=_path_str(p)) if m else u,
        updates, full)
    return new, state

  return optax.GradientTransformation(init_fn, update_fn)


def optimal_learning_rate(w: jax.Array, g: jax.Array) -> jax.Array:
  """The paper's optimal learning rate ``η*`` for the update ``w - η g`` (eqs. 18–21).

  With ``w``, ``g`` flattened (layout does not matter),

    ``η* = (wᵀw)(gᵀw) / ((wᵀw)(gᵀg) + 2 (gᵀw)²)``        (eq. 20)

  as implemented by the authors (``lr = (wtw*ltw)/(wtw*ltl + 2*ltw*ltw)``).

  What it minimises (derivation check): with ``a = wᵀw``, ``b = gᵀw``, ``c = gᵀg`` and
  ``f(η) = ||w - η g||⁴ = (a - 2bη + cη²)²``, ``η*`` is the minimiser of the quadratic
  Taylor truncation ``f(0) + f'(0) η + f''(0) η²/2 = a² - 4abη + (2ac + 4b²)η²``, i.e.
  the root of eq. (20)'s first-order ``de/dη``, one Newton step on ``f`` from ``η = 0``.
  The identity term of eq. (19) drops out, and ``η*`` is neither the minimiser of
  ``f`` itself (``b / c``) nor of eq. (18).

  For orthogonal ``N x N`` ``W`` and ``G`` (``a = c = N``, ``t = b ∈ [-N, N]``),
  ``η* = N t / (N² + 2t²) <= 1/(2√2)``, equal to ``1/3`` at ``G = W``; the paper's
  Proposition 1 bound ``N²/(N² + 2)`` does not reproduce (module docstring).

  Args:
    w: float weight of any shape.
    g: float gradient of the same shape (after NOG when both are used).

  Returns:
    A scalar of dtype ``promote(w, g, float32)``. It may be negative or huge; use
    :func:`olr_switch` (eq. 21) before applying it. ``0`` when ``w = 0`` or
    ``g = 0`` (the formula's ``0/0``), so the switch falls back to the base rate.
  """
  if w.shape != g.shape:
    raise ValueError(f"optimal_learning_rate: `g` must have the shape of `w`, {w.shape}; "
                     f"found {g.shape}.")
  dtype = jnp.result_type(w.dtype, g.dtype, jnp.float32)
  w = w.astype(dtype).ravel()
  g = g.astype(dtype).ravel()
  # Elementwise products + sums: exact f32 on every backend (no reduced-precision matmul).
  wtw, ltw, ltl = jnp.sum(w * w), jnp.sum(g * w), jnp.sum(g * g)
  num = wtw * ltw
  den = wtw * ltl + 2 * ltw * ltw
  ok = den > 0
  return jnp.where(ok, num / jnp.where(ok, den, 1), 0).astype(dtype)


def olr_switch(eta_star: jax.Array, learning_rate: jax.Array) -> jax.Array:
  """The learning rate used for an OLR parameter (eq. 21 with the code's positivity check).

  Returns ``η*`` when ``0 < η* < learning_rate``, else ``learning_rate`` (also for a
  non-finite ``η*``). The paper's eq. (21) omits the ``0 <`` test; the authors' code
  has it.
  """
  eta_star = jnp.asarray(eta_star)
  lr = jnp.asarray(learning_rate, eta_star.dtype)
  return jnp.where((eta_star > 0) & (eta_star < lr), eta_star, lr)


class SGDTorchState(NamedTuple):
  """State of :func:`sgd_torch`.

  Attributes:
    count: int32 scalar, number of updates so far (the schedule's step).
    momentum: momentum buffers shaped like the params (``None`` when momentum is 0).
    learning_rate: float32 scalar per parameter leaf: the rate used at the last step
      (``η*`` where OLR was accepted, else the scheduled rate). Find it inside any
      chain with ``optax.tree_utils.tree_get(opt_state, "learning_rate")``.
    eta_star: float32 scalar per leaf: the raw ``η*`` computed at the last step for
      OLR leaves (``0`` for the others).
  """
  count: jax.Array
  momentum: Any
  learning_rate: Any
  eta_star: Any


def sgd_torch(learning_rate: float | optax.Schedule, momentum: float = 0.9,
              weight_decay: float = 0.0, nesterov: bool = False, decay_mask: Mask = None,
              nog_mask: Mask = None, olr_mask: Mask = None, nog_method: str = "svd",
              **polar_kwargs) -> optax.GradientTransformation:
  """PyTorch ``SGD`` in the authors' step order, with optional NOG and OLR.

  Per parameter ``w`` with raw gradient ``g``, at step ``t`` (``lr_t`` = schedule(t)):

  1. ``g ← U Vᵀ`` of ``g`` if selected by ``nog_mask`` (eqs. 14–17,
     :func:`nearest_orthogonal_gradient`);
  2. ``η = olr_switch(optimal_learning_rate(w, g), lr_t)`` if selected by ``olr_mask``
     (eqs. 20–21, from the NOG'ed gradient and the weight before decay and momentum),
     else ``η = lr_t``;
  3. ``d = g + wd · w`` (coupled L2, on ``decay_mask`` leaves);
  4. ``buf = μ · buf + d`` (PyTorch's first step ``buf = d`` is the same with a zero
     buffer, dampening 0);
  5. update ``= -η · buf``, or ``-η · (d + μ · buf)`` with ``nesterov``.

  This is ``torch.optim.SGD`` with the Pre-SVD parameter group's ``lr`` overwritten
  by the switched ``η`` before each ``optimizer.step()``, as in
  ``OrthoImproveCond/Decorrelated BN/main_cifar100.py``.

  Args:
    learning_rate: float or ``optax.Schedule`` of the step count.
    momentum: ``μ >= 0``; ``0`` keeps no buffer.
    weight_decay: ``wd >= 0``.
    nesterov: Nesterov momentum (needs ``momentum > 0``, as PyTorch).
    decay_mask: leaves decayed; ``None`` = all; bool pytree (prefix) or callable.
    nog_mask: leaves given NOG; ``None`` = none; selected leaves need ``ndim >= 2``.
    olr_mask: leaves given OLR; ``None`` = none.
    nog_method: ``"svd"`` or ``"newton_schulz"`` (:func:`jaxvision.ops.polar`).
    **polar_kwargs: extra options of ``polar`` (e.g. ``num_iters``).

  Returns:
    An ``optax.GradientTransformation`` with :class:`SGDTorchState`; ``update`` needs
    ``params`` when ``weight_decay > 0`` or OLR is on. Updates keep the params' dtypes.
  """
  if momentum < 0:
    raise ValueError(f"sgd_torch: `momentum` must be >= 0; found {momentum}.")
  if weight_decay < 0:
    raise ValueError(f"sgd_torch: `weight_decay` must be >= 0; found {weight_decay}.")
  if nesterov and momentum == 0:
    raise ValueError("sgd_torch: `nesterov=True` needs `momentum` > 0 (as torch.optim.SGD); "
                     "found momentum 0.")
  if not callable(learning_rate) and learning_rate < 0:
    raise ValueError(f"sgd_torch: `learning_rate` must be >= 0; found {learning_rate}.")
  _check_method(nog_method)

  def scalars(tree, value=0.0):
    return jax.tree.map(lambda _: jnp.full([], value, jnp.float32), tree)

  def init_fn(params):
    for m, name in ((nog_mask, "nog_mask"), (olr_mask, "olr_mask"), (decay_mask, "decay_mask")):
      _full_mask(m, params, default=False, name=name)  # fail early on a bad mask
    buf = None if momentum == 0 else jax.tree.map(jnp.zeros_like, params)
    return SGDTorchState(count=jnp.zeros([], jnp.int32), momentum=buf,
                         learning_rate=scalars(params), eta_star=scalars(params))

  def update_fn(updates, state, params=None):
    nog = _full_mask(nog_mask, updates, default=False, name="nog_mask")
    olr = _full_mask(olr_mask, updates, default=False, name="olr_mask")
    decay = _full_mask(decay_mask, updates, default=True, name="decay_mask")
    needs_params = weight_decay > 0 or any(jax.tree.leaves(olr))
    if needs_params and params is None:
      raise ValueError("sgd_torch: `params` must be passed to update() when weight_decay > 0 "
                       "or OLR is on; found None.")
    if params is None:
      params = jax.tree.map(lambda _: None, updates)
    lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
    buf = state.momentum if momentum else jax.tree.map(lambda _: None, updates)

    def leaf(path, g, w, b, use_nog, use_olr, use_decay):
      if use_nog:
        g = _nog_leaf(g, method=nog_method, polar_kwargs=polar_kwargs, path=_path_str(path))
      cdtype = jnp.result_type(g.dtype, jnp.float32)
      base = jnp.asarray(lr, cdtype)
      if use_olr:
        eta_star = optimal_learning_rate(w, g)
        eta = olr_switch(eta_star, base).astype(cdtype)
      else:
        eta_star, eta = jnp.zeros([], cdtype), base
      d = g + weight_decay * w if (use_decay and weight_decay) else g
      if momentum:
        b = (momentum * b + d).astype(b.dtype)
        step = d + momentum * b if nesterov else b
      else:
        step = d
      upd = (-eta * step).astype(g.dtype)
      return upd, b, eta.astype(jnp.float32), eta_star.astype(jnp.float32)

    out = jax.tree_util.tree_map_with_path(leaf, updates, params, buf, nog, olr, decay)
    treedef = jax.tree.structure(updates)
    parts = treedef.flatten_up_to(out)
    new_updates, new_buf, lrs, etas = (treedef.unflatten(p) for p in zip(*parts))
    new_state = SGDTorchState(count=optax.safe_int32_increment(state.count),
                              momentum=new_buf if momentum else None,
                              learning_rate=lrs, eta_star=etas)
    return new_updates, new_state

  return optax.GradientTransformation(init_fn, update_fn)


def _regex_kernel_mask(pattern: str, option: str) -> Callable[[PyTree], PyTree]:
  """Callable mask: kernels (ndim >= 2) whose path matches ``pattern``; errors if none do."""
  try:
    re.compile(pattern)
  except (re.error, TypeError) as e:
    raise ValueError(f"optimizer.kwargs.{option} must be a regex over parameter paths (e.g. "
                     f"'stem_conv'); found {pattern!r}: {e}.") from None

  def mask_fn(params):
    by_path = path_mask(params, pattern)
    mask = jax.tree.map(lambda m, p: bool(m) and p.ndim >= 2, by_path, params)
    if not any(jax.tree.leaves(mask)):
      paths = [_path_str(p) for p, x in jax.tree_util.tree_leaves_with_path(params)
               if x.ndim >= 2]
      raise ValueError(f"optimizer.kwargs.{option}={pattern!r} matches no kernel (ndim >= 2); "
                       f"kernel paths: {', '.join(paths[:20])}{' ...' if len(paths) > 20 else ''}")
    return mask

  return mask_fn


@register_optimizer("sgd_torch")
def _sgd_torch(schedule, weight_decay, decay_mask, momentum: float = 0.9, nesterov: bool = False,
               nog: str | None = None, olr: str | None = None,
               nog_method: str = "svd") -> optax.GradientTransformation:
  """:func:`sgd_torch` from a config; ``nog``/``olr`` are path regexes (e.g. ``"stem_conv"``).

  Each selects the parameters with ``ndim >= 2`` whose ``/``-joined path matches (so a
  conv's bias or a BatchNorm scale is never picked); a regex matching no kernel is an
  error when the optimizer state is initialised.
  """
  return sgd_torch(schedule, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov,
                   decay_mask=decay_mask,
                   nog_mask=None if nog is None else _regex_kernel_mask(nog, "nog"),
                   olr_mask=None if olr is None else _regex_kernel_mask(olr, "olr"),
                   nog_method=nog_method)


__all__ = ["SGDTorchState", "nearest_orthogonal_gradient",
           "olr_switch", "optimal_learning_rate", "sgd_torch"]
