"""Solvers for nonlinear first-order recurrences and fixed points.

The parallel solvers behind the Adjacent Channel Coupler (spec spectral-transformer-ising
Sec. 2, "Can the ACC be parallelised?"), written for any step function:

* ``solve_recurrence`` -- ``y_c = step(y_{c-1}, x_c)`` along an axis, ``y_{-1} = init``:

  - ``"sequential"``: ``lax.scan`` (depth ``L``), the exact solution; autodiff in both modes.
  - ``"jacobi"``: Picard / fixed-point sweeps updating every position at once,
    ``y^(k+1)_c = step(y^(k)_{c-1}, x_c)``. Position ``c`` is exact after ``c + 1`` sweeps,
    so ``L`` sweeps give the exact solution from any start (the default ``num_iters``); the
    error decays geometrically when the step is contractive in ``y``.
  - ``"quasi_deer"``: each sweep linearises the step around the current iterate with a
    *diagonal* Jacobian approximation ``D_c ~ d step / d y_{c-1}`` and solves the linear
    recurrence ``y_c = D_c y_{c-1} + step(y^(k)_{c-1}, x_c) - D_c y^(k)_{c-1}`` with
    :func:`jaxvision.ops.linear_recurrence` (``lax.associative_scan``, depth ``O(log L)``):
    quasi-Newton DEER (Lim et al. 2024; Gonzalez et al. 2024). The approximation only
    preconditions the Picard step: the fixed point is the exact solution and ``L`` sweeps
    are exact here too. With ``jacobian_diag=None`` ``D`` is ``jvp(step, ones)``: the exact
    diagonal when the step is element-wise in ``y``, the Jacobian's row sums otherwise.

* ``fixed_point`` -- ``y = fn(y, x)`` by sweeps ``y <- sweep(y, x)`` (``sweep = fn``: Jacobi),
  the engine of the two iterative methods above and of the ACC's literal (implicit) mode.

Sweep control (iterative methods): ``num_iters`` sweeps (``lax.fori_loop``), or, with
``tol``, a ``lax.while_loop`` that stops once the largest absolute change of a sweep is
``<= tol`` (``num_iters`` then caps the count). ``return_info=True`` also returns a
:class:`SolverInfo` with the sweeps done and the last change.

Gradients (``differentiation``):

* ``"implicit"`` (default): a ``custom_vjp`` that differentiates the *fixed point* rather than
  the iterations. The backward pass solves the adjoint linear system
  ``lam = ybar + (d fn / d y)^T lam`` by the same kind of sweeps (same ``num_iters`` and
  ``tol``) and returns ``(d fn / d x)^T lam``: for a recurrence this is the adjoint linear
  recurrence run backwards, again exact after ``L`` sweeps. Memory: one linearisation of
  ``fn``, independent of the sweep count. Works with ``tol`` (``while_loop``). Reverse mode
  only (``grad``/``vjp``/``jacrev``): ``jvp``/``jacfwd`` raise. The gradient is that of the
  exact fixed point evaluated at the returned iterate (exact when the forward converged,
  e.g. ``L`` sweeps of a recurrence). The initial guess gets a zero cotangent.
* ``"unrolled"``: plain autodiff through a ``lax.fori_loop`` with a static trip count (both
  modes; reverse mode stores every sweep). Not allowed with ``tol``: a ``lax.while_loop``
  is not reverse-differentiable.

``"sequential"`` always uses autodiff of the scan.

Shapes: the state ``y`` is one array (``init.shape`` = ``S``); ``xs`` is any pytree of
arrays sharing the length ``L`` on ``axis``. ``step``, ``fn``, ``sweep`` and
``jacobian_diag`` may close over traced values (they are closure-converted, so gradients
reach them). Dtypes follow the step function (float32 in, float32 out; float64 under
``jax.enable_x64``).
"""

from __future__ import annotations

import functools
import operator
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxvision.ops.scan import linear_recurrence

__all__ = [
    "DIFFERENTIATION_MODES",
    "RECURRENCE_METHODS",
    "SolverInfo",
    "fixed_point",
    "solve_recurrence",
]

RECURRENCE_METHODS = ("sequential", "jacobi", "quasi_deer")
DIFFERENTIATION_MODES = ("implicit", "unrolled")


class SolverInfo(NamedTuple):
  """What an iterative solve did.

  Attributes:
    num_iters: int32 scalar, the number of sweeps performed.
    residual: scalar of the state's dtype, ``max |y^(k) - y^(k-1)|`` of the last sweep
      (``inf`` if no sweep ran; ``0`` for ``"sequential"``).
  """
  num_iters: jax.Array
  residual: jax.Array


# ------------------------------------------------------------------------------------------
# Argument checks.


def _check_iters(num_iters, tol, fn: str, *, required: bool):
  if num_iters is None:
    if required:
      raise ValueError(f"{fn}: `num_iters` (the maximum number of sweeps) is required; "
                       "found None.")
  else:
    try:
      num_iters = operator.index(num_iters)
    except TypeError:
      raise TypeError(f"{fn}: `num_iters` must be an int >= 0; found {num_iters!r}.") from None
    if num_iters < 0:
      raise ValueError(f"{fn}: `num_iters` must be an int >= 0; found {num_iters}.")
  if tol is not None:
    if isinstance(tol, bool) or not isinstance(tol, (int, float, np.integer, np.floating)):
      raise TypeError(f"{fn}: `tol` must be None or a Python float > 0; found {tol!r}.")
    tol = float(tol)
    if not tol > 0:
      raise ValueError(f"{fn}: `tol` must be None or a float > 0; found {tol}.")
  return num_iters, tol


def _check_differentiation(differentiation, tol, fn: str):
  if differentiation not in DIFFERENTIATION_MODES:
    raise ValueError(f"{fn}: `differentiation` must be one of {DIFFERENTIATION_MODES}; "
                     f"found {differentiation!r}.")
  if differentiation == "unrolled" and tol is not None:
    raise ValueError(
        f"{fn}: `differentiation='unrolled'` needs a fixed sweep count: with `tol` the "
        "sweeps run in a lax.while_loop, which is not reverse-differentiable. Pass "
        "`tol=None` or use `differentiation='implicit'` (found "
        f"tol={tol}).")


def _zero_cotangent(v):
  v = jnp.asarray(v)
  if jnp.issubdtype(v.dtype, jnp.inexact):
    return jnp.zeros_like(v)
  return np.zeros(v.shape, jax.dtypes.float0)


def _max_abs_diff(a, b):
  return jnp.max(jnp.abs(a - b)) if a.size else jnp.zeros((), jnp.abs(a).dtype)


# ------------------------------------------------------------------------------------------
# The sweep loop and the fixed-point solver.


def _iterate(sweep, y0, num_iters: int, tol, want_residual: bool):
  """Runs ``y <- sweep(y)``; returns ``(y, SolverInfo)`` (residual NaN-free)."""
  res_dtype = jnp.abs(y0).dtype
  inf = jnp.array(jnp.inf, res_dtype)
  if tol is None:
    if not want_residual:
      y = lax.fori_loop(0, num_iters, lambda i, y: sweep(y), y0)
      return y, SolverInfo(jnp.int32(num_iters), inf)

    def body(i, carry):
      y, _ = carry
      y_new = sweep(y)
      return y_new, _max_abs_diff(y_new, y)

    y, res = lax.fori_loop(0, num_iters, body, (y0, inf))
    return y, SolverInfo(jnp.int32(num_iters), res)

  def cond(carry):
    k, _, res = carry
    return (k < num_iters) & (res > tol)

  def wbody(carry):
    k, y, _ = carry
    y_new = sweep(y)
    return k + 1, y_new, _max_abs_diff(y_new, y).astype(res_dtype)

  k, y, res = lax.while_loop(cond, wbody, (jnp.int32(0), y0, inf))
  return y, SolverInfo(k, res)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2, 3, 4))
def _fixed_point_implicit(fn, sweep, num_iters, tol, want_info, x, fn_consts, sweep_consts,
                          y0):
  return _iterate(lambda y: sweep(y, x, *fn_consts, *sweep_consts), y0, num_iters, tol,
                  want_info)


def _fp_fwd(fn, sweep, num_iters, tol, want_info, x, fn_consts, sweep_consts, y0):
  out = _fixed_point_implicit(fn, sweep, num_iters, tol, want_info, x, fn_consts,
                              sweep_consts, y0)
  return out, (out[0], x, fn_consts, sweep_consts, y0)


def _fp_bwd(fn, sweep, num_iters, tol, want_info, res, cts):
  y, x, fn_consts, sweep_consts, y0 = res
  ybar = cts[0]
  _, vjp_y = jax.vjp(lambda v: fn(v, x, *fn_consts), y)
  lam, _ = _iterate(lambda lam: ybar + vjp_y(lam)[0], ybar, num_iters, tol, False)
  _, vjp_x = jax.vjp(lambda x_, c_: fn(y, x_, *c_), x, fn_consts)
  xbar, cbar = vjp_x(lam)
  sbar = jax.tree.map(_zero_cotangent, sweep_consts)
  return xbar, cbar, sbar, _zero_cotangent(y0)


_fixed_point_implicit.defvjp(_fp_fwd, _fp_bwd)


def _fixed_point(fn, x, y0, num_iters, tol, sweep, differentiation, want_info):
  """``fixed_point`` after the checks; ``fn(y, x)``, ``sweep(y, x)`` may close over tracers."""
  sweep = fn if sweep is None else sweep
  if differentiation == "unrolled":
    return _iterate(lambda y: sweep(y, x), y0, num_iters, tol, want_info)
  fn_c, fn_consts = jax.closure_convert(fn, y0, x)
  if sweep is fn:
    sweep_c = fn_c
    sweep_consts = ()
  else:
    sw_c, sweep_consts = jax.closure_convert(sweep, y0, x)
    n_fn = len(fn_consts)
    sweep_c = lambda y, x_, *c: sw_c(y, x_, *c[n_fn:])  # noqa: E731
  return _fixed_point_implicit(fn_c, sweep_c, num_iters, tol, want_info, x, tuple(fn_consts),
                               tuple(sweep_consts), y0)


def fixed_point(fn: Callable, x: Any, y0, *, num_iters: int, tol: float | None = None,
                sweep: Callable | None = None, differentiation: str = "implicit",
                return_info: bool = False):
  """Solves ``y = fn(y, x)`` by sweeps ``y^(k+1) = sweep(y^(k), x)`` from ``y^(0) = y0``.

  Args:
    fn: ``fn(y, x) -> y``, the fixed-point map (its Jacobian defines the gradient).
    x: a pytree of arrays, the inputs to differentiate with respect to.
    y0: the initial iterate, an array (its shape and dtype are the state's).
    num_iters: the number of sweeps (the maximum with ``tol``), an int >= 0.
    tol: ``None`` or a float > 0: stop once ``max |y^(k+1) - y^(k)| <= tol``.
    sweep: the iteration map, ``fn`` when ``None`` (Jacobi). Any map with the same fixed
      point (e.g. a Gauss-Seidel sweep); it is not differentiated.
    differentiation: ``"implicit"`` (``custom_vjp`` through the fixed point) or
      ``"unrolled"`` (autodiff of the loop; needs ``tol=None``). See the module docstring.
    return_info: also return a :class:`SolverInfo`.

  Returns:
    The last iterate (shape and dtype of ``y0``), and the info if ``return_info``.
  """
  name = "fixed_point"
  num_iters, tol = _check_iters(num_iters, tol, name, required=True)
  _check_differentiation(differentiation, tol, name)
  y0 = jnp.asarray(y0)
  out = jax.eval_shape(fn, y0, x)
  if not isinstance(out, jax.ShapeDtypeStruct) or out.shape != y0.shape or \
      out.dtype != y0.dtype:
    raise ValueError(f"{name}: `fn(y0, x)` must return an array of the shape and dtype of "
                     f"`y0` {y0.shape} {y0.dtype}; found {out}.")
  y, info = _fixed_point(fn, x, y0, num_iters, tol, sweep, differentiation, return_info)
  return (y, info) if return_info else y


# ------------------------------------------------------------------------------------------
# Recurrences.


def _shift(y, init):
  """``[init, y_0, ..., y_{L-2}]``: the previous state of every position."""
  return jnp.concatenate([init[None], y[:-1]], axis=0)


def solve_recurrence(step: Callable, xs: Any, init, *, axis: int = 0, reverse: bool = False,
                     method: str = "sequential", num_iters: int | None = None,
                     tol: float | None = None, y0=None,
                     jacobian_diag: Callable | None = None,
                     differentiation: str = "implicit", return_info: bool = False):
  """Solves the recurrence ``y_c = step(y_{c-1}, x_c)``, ``c = 0 .. L-1``, ``y_{-1} = init``.

  Args:
    step: ``step(y_prev, x_c) -> y_c``; ``y_prev`` has shape ``S`` and ``x_c`` is ``xs``
      with ``axis`` removed from every leaf. Must return shape ``S``.
    xs: a pytree of arrays, all with the same length ``L >= 1`` on ``axis``.
    init: the state before the first position, an array of shape ``S`` (the state after
      the last position when ``reverse``).
    axis: the position axis of the leaves of ``xs`` and of the result.
    reverse: run from the last position down: ``y_c = step(y_{c+1}, x_c)``, ``y_L = init``.
    method: ``"sequential"``, ``"jacobi"`` or ``"quasi_deer"`` (module docstring).
    num_iters: sweeps of the iterative methods; ``None`` means ``L`` (exact). Values above
      ``L`` are clipped to ``L``: the solution is exact after ``L`` sweeps.
    tol: ``None`` or a float > 0: stop the sweeps once the largest change is ``<= tol``.
    y0: the first iterate of the iterative methods, shape ``S`` with ``L`` inserted at
      ``axis``; ``init`` broadcast to every position when ``None``.
    jacobian_diag: ``"quasi_deer"`` only: ``jacobian_diag(y_prev, x_c) -> D_c`` of shape
      ``S``, a diagonal approximation of ``d step / d y_prev``; ``None`` uses
      ``jvp(step, ones)`` (module docstring).
    differentiation: ``"implicit"`` or ``"unrolled"``, for the iterative methods.
    return_info: also return a :class:`SolverInfo`.

  Returns:
    ``y``, shape ``S`` with ``L`` inserted at ``axis``, in the dtype of ``step``'s result;
    and the info if ``return_info``.
  """
  name = "solve_recurrence"
  if method not in RECURRENCE_METHODS:
    raise ValueError(f"{name}: `method` must be one of {RECURRENCE_METHODS}; "
                     f"found {method!r}.")
  num_iters, tol = _check_iters(num_iters, tol, name, required=False)
  if method != "sequential":
    _check_differentiation(differentiation, tol, name)
  if jacobian_diag is not None and method != "quasi_deer":
    raise ValueError(f"{name}: `jacobian_diag` is only used by method='quasi_deer'; "
                     f"found method={method!r}.")
  init = jnp.asarray(init)
  leaves, treedef = jax.tree.flatten(xs)
  if not leaves:
    raise ValueError(f"{name}: `xs` must contain at least one array; found {xs!r}.")
  leaves = [jnp.asarray(v) for v in leaves]
  try:
    axis = operator.index(axis)
  except TypeError:
    raise TypeError(f"{name}: `axis` must be an int; found {axis!r}.") from None
  lengths = set()
  for v in leaves:
    if not -v.ndim <= axis < max(v.ndim, 1) or v.ndim == 0:
      raise ValueError(f"{name}: every leaf of `xs` needs an axis {axis}; found a leaf of "
                       f"shape {v.shape}.")
    lengths.add(v.shape[axis])
  if len(lengths) != 1:
    raise ValueError(f"{name}: the leaves of `xs` must share one length on axis {axis}; "
                     f"found lengths {sorted(lengths)}.")
  length = lengths.pop()
  if length < 1:
    raise ValueError(f"{name}: the recurrence needs length >= 1 on axis {axis}; found 0.")
  leaves = [jnp.moveaxis(v, axis, 0) for v in leaves]
  if reverse:
    leaves = [v[::-1] for v in leaves]
  xs_t = jax.tree.unflatten(treedef, leaves)
  x0 = jax.tree.map(lambda v: v[0], xs_t)
  out = jax.eval_shape(step, init, x0)
  if not isinstance(out, jax.ShapeDtypeStruct) or out.shape != init.shape:
    raise ValueError(f"{name}: `step(init, x_0)` must return an array of the shape of "
                     f"`init` {init.shape}; found {out}.")
  dtype = jnp.result_type(init.dtype, out.dtype)
  init = init.astype(dtype)
  step_ = lambda y, x: step(y, x).astype(dtype)  # noqa: E731
  full_shape = (length,) + init.shape
  if y0 is not None:
    y0 = jnp.asarray(y0)
    want = init.shape[:axis % (init.ndim + 1)] + (length,) + \
        init.shape[axis % (init.ndim + 1):]
    if y0.shape != want:
      raise ValueError(f"{name}: `y0` must have shape {want} (the result's); found "
                       f"{y0.shape}.")
    y0 = jnp.moveaxis(y0.astype(dtype), axis, 0)
    if reverse:
      y0 = y0[::-1]

  if method == "sequential":
    _, y = lax.scan(lambda h, x: (step_(h, x),) * 2, init, xs_t)
    info = SolverInfo(jnp.int32(length), jnp.zeros((), jnp.abs(init).dtype))
  else:
    n = length if num_iters is None else min(num_iters, length)
    if y0 is None:
      y0 = jnp.broadcast_to(init, full_shape)
    vstep = jax.vmap(step_)

    def fn(y, args):
      xs_, h0 = args
      return vstep(_shift(y, h0), xs_)

    sweep = None
    if method == "quasi_deer":
      if jacobian_diag is None:
        def diag(yp, x):
          return jax.jvp(lambda v: step_(v, x), (yp,), (jnp.ones_like(yp),))[1]
      else:
        def diag(yp, x):
          return jnp.asarray(jacobian_diag(yp, x)).astype(dtype)
      vdiag = jax.vmap(diag)

      def sweep(y, args):
        xs_, h0 = args
        yp = _shift(y, h0)
        d = lax.stop_gradient(vdiag(yp, xs_))
        b = vstep(yp, xs_) - d * yp
        return linear_recurrence(d, b, axis=0, initial_state=h0, method="associative")

    y, info = _fixed_point(fn, (xs_t, init), y0, n, tol, sweep, differentiation,
                           return_info)
  if reverse:
    y = y[::-1]
  y = jnp.moveaxis(y, 0, axis)
  return (y, info) if return_info else y
