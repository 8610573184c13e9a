"""Selective state-space scans (Mamba S6) and the general first-order linear recurrence.

Kernels of Dong et al., "MambaTraj" (ICPR 2024; spec icpr-13 Sec. 2), with the exact
semantics of mamba_ssm's ``selective_scan_ref``:

* ``linear_recurrence`` -- ``h_t = a_t * h_{t-1} + b_t`` along any axis, by
  ``lax.associative_scan`` (affine composition, spec Sec. 2 "Associative-scan form") or
  ``lax.scan``.
* ``selective_scan`` -- the selective SSM over a whole sequence (eqs. (1)-(2), (5)).
* ``selective_state_update`` -- one decode step of the same recurrence.

``selective_scan`` methods (spec Sec. 2 "Memory cost"):

* ``"associative"`` -- materialises ``a = exp(delta A)`` and ``Bbar u`` as
  ``(L, batch, D, N)``, runs ``lax.associative_scan`` (depth ``O(log L)``) and contracts
  with ``C``; autodiff through the scan. Memory ``O(batch L D N)`` (several such tensors
  in the backward pass).
* ``"sequential"`` -- ``lax.scan`` over ``L`` with ``h`` as the carry and the read-out
  ``C_t h_t`` inside the step (``h`` is never stored for all ``L`` in the forward pass);
  autodiff through the scan, whose backward keeps per-step residuals.
* ``"chunked"`` -- ``lax.scan`` over chunks of ``chunk_size`` steps, an inner
  ``lax.scan`` over the steps of a chunk with the read-out inside the step, and a
  ``custom_vjp`` that keeps only each chunk's starting state: its backward pass re-runs a
  chunk's recurrence from that state and then the adjoint recurrence
  ``G_t = C_t dy_t + exp(delta_{t+1} A) G_{t+1}`` backwards through it (the CUDA kernel's
  recompute-in-backward scheme), accumulating every gradient inside the step. Nothing of
  size ``(batch, L, D, N)`` is stored: the peak extra memory is ``L / chunk_size`` states
  plus one chunk's ``(chunk_size, batch, D, N)`` states. Inputs are read in their
  ``(batch, D, L)`` layouts chunk by chunk (no transposed copies). For a length not
  divisible by ``chunk_size`` the last chunk is the window ending at the sequence's end,
  whose steps already done by the previous chunk get ``delta = u = 0`` (which leaves the
  state unchanged, as zero padding would) and are not written: no padded copies, and one
  compiled loop body for every chunk.

Default method (``method=None``):

* CPU: ``"chunked"``. Measured by ``benchmarks/scan.py`` (forward + backward, float32,
  batch 2, N = 16; ``benchmarks/results/scan.md``): at L = 2048, D = 128 ``"chunked"`` is
  10.9x faster than the one-line ``lax.associative_scan`` version, ``"sequential"`` 2.1x
  and ``"associative"`` 1.3x; at D = 256 it stays 3.4-5x faster than ``"sequential"`` from
  L = 1k to 64k, all linear in L. Its temporary memory is 0.4-1.8 (batch, L, D) float32
  activations (0.40 at L = 64k) where ``"sequential"`` needs 55 and ``"associative"`` 210.
  XLA:CPU runs the inner steps as small fused loops, so the log-depth associative scan
  (twice the work, many full-size passes) brings no parallelism worth its memory traffic.
* TPU: ``"chunked"`` as well: linear scans beat the associative scan on TPU (Griffin /
  RecurrentGemma, App. D; jaxvision ANCHORS Sec. 2a), and the memory saving matters most
  in HBM.
* GPU: ``"associative"``: the literature (ANCHORS Sec. 2a) reports the associative scan
  faster than a sequential loop on GPU, where ``lax.scan`` pays a per-iteration launch
  cost; not measured here (no GPU). For long sequences pass ``method="chunked"``, whose
  memory does not grow with ``N``.

All methods compute in float32 (float64 when the inputs are float64) and agree with each
other and with a float64 transcription of ``selective_scan_ref`` (tests/ops/test_scan.py).
The ``"chunked"`` VJP is reverse-mode only (``jax.grad``/``jax.vjp``/``jacrev``;
``jvp``/``jacfwd`` through it are not defined); the other methods support both modes.
"""

from __future__ import annotations

import functools
import math
import operator
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

__all__ = [
    "SCAN_METHODS",
    "DISCRETIZATIONS",
    "linear_recurrence",
    "selective_scan",
    "selective_state_update",
]

SCAN_METHODS = ("associative", "sequential", "chunked")
DISCRETIZATIONS = ("mamba", "zoh")


# ------------------------------------------------------------------------------------------
# The general linear recurrence.


def _affine_compose(earlier, later):
  """``(a1, b1) o (a2, b2) = (a2 a1, a2 b1 + b2)``: apply ``earlier`` first (spec Sec. 2)."""
  a1, b1 = earlier
  a2, b2 = later
  return a2 * a1, a2 * b1 + b2


def linear_recurrence(a, b, *, axis=0, reverse=False, initial_state=None,
                      method="associative"):
  """The elementwise first-order recurrence ``h_t = a_t * h_{t-1} + b_t`` along ``axis``.

  Args:
    a: decay factors, broadcast-compatible with ``b``.
    b: inputs; ``a`` and ``b`` are broadcast to a common shape ``S``.
    axis: the time axis of ``S``.
    reverse: run from the last index down to the first: ``h_t = a_t * h_{t+1} + b_t``.
    initial_state: ``h_{-1}`` (``h_{L}`` when ``reverse``), of shape ``S`` without ``axis``
      (or broadcastable to it); zero when ``None``.
    method: ``"associative"`` (``lax.associative_scan``, depth ``O(log L)``) or
      ``"sequential"`` (``lax.scan``, depth ``O(L)``).

  Returns:
    ``h`` of shape ``S`` and the result dtype of ``a``, ``b`` (and ``initial_state``).
  """
  fn = "linear_recurrence"
  if method not in ("associative", "sequential"):
    raise ValueError(
        f"{fn}: `method` must be one of ('associative', 'sequential'); found {method!r}.")
  a = jnp.asarray(a)
  b = jnp.asarray(b)
  try:
    shape = jnp.broadcast_shapes(a.shape, b.shape)
  except ValueError:
    raise ValueError(f"{fn}: `a` and `b` must be broadcast-compatible; found shapes "
                     f"{a.shape} and {b.shape}.") from None
  if not shape:
    raise ValueError(f"{fn}: `a` and `b` must have at least one axis; found shape ().")
  ndim = len(shape)
  try:
    axis = operator.index(axis)
  except TypeError:
    raise TypeError(f"{fn}: `axis` must be an int; found {axis!r}.") from None
  if not -ndim <= axis < ndim:
    raise ValueError(f"{fn}: `axis` must be in [-{ndim}, {ndim}) for shape {shape}; "
                     f"found {axis}.")
  axis %= ndim
  dtypes = [a.dtype, b.dtype]
  if initial_state is not None:
    initial_state = jnp.asarray(initial_state)
    dtypes.append(initial_state.dtype)
  dtype = jnp.result_type(*dtypes)
  a = jnp.broadcast_to(a.astype(dtype), shape)
  b = jnp.broadcast_to(b.astype(dtype), shape)
  if initial_state is not None:
    state_shape = shape[:axis] + shape[axis + 1:]
    try:
      ok = jnp.broadcast_shapes(initial_state.shape, state_shape) == state_shape
    except ValueError:
      ok = False
    if not ok:
      raise ValueError(f"{fn}: `initial_state` must have shape {state_shape} (the shape of "
                       f"`b` without axis {axis}); found {initial_state.shape}.")
    h0 = jnp.broadcast_to(initial_state.astype(dtype), state_shape)
    first = shape[axis] - 1 if reverse else 0
    idx = (slice(None),) * axis + (first,)
    b = b.at[idx].add(a[idx] * h0)
  if method == "associative":
    _, h = lax.associative_scan(_affine_compose, (a, b), reverse=reverse, axis=axis)
    return h
  a_t = jnp.moveaxis(a, axis, 0)
  b_t = jnp.moveaxis(b, axis, 0)

  def step(h, ab):
    h = ab[0] * h + ab[1]
    return h, h

  _, h = lax.scan(step, jnp.zeros(a_t.shape[1:], dtype), (a_t, b_t), reverse=reverse)
  return jnp.moveaxis(h, 0, axis)


# ------------------------------------------------------------------------------------------
# Argument checks and the time-major internal layout.


def _fmt(shape) -> str:
  return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _real_array(x, name: str, fn: str) -> jax.Array:
  x = jnp.asarray(x)
  if not (jnp.issubdtype(x.dtype, jnp.floating) or jnp.issubdtype(x.dtype, jnp.integer)):
    raise TypeError(f"{fn}: `{name}` must have a real floating dtype; found {x.dtype}.")
  return x


def _check_shape(x, name: str, want, fn: str, like: str = "") -> None:
  if tuple(x.shape) != tuple(want):
    raise ValueError(f"{fn}: `{name}` must have shape {_fmt(want)}{like}; "
                     f"found {_fmt(x.shape)}.")


def _bc_layout(x, name: str, batch: int, d: int, n: int, length: int | None, fn: str):
  """Returns the number of groups of a B/C operand (0 for the constant (D, N) layout).

  With ``length`` (a whole sequence) the layouts are ``(D, N)``, ``(batch, N, L)`` and
  ``(batch, G, N, L)``; without it (one decode step, mamba_ssm's ``selective_state_update``)
  they are ``(batch, N)`` and ``(batch, G, N)``.
  """
  tail = (n,) if length is None else (n, length)
  if length is not None and x.ndim == 2:
    _check_shape(x, name, (d, n), fn, " (constant, like `A`)")
    return 0
  if x.ndim == 1 + len(tail):
    _check_shape(x, name, (batch,) + tail, fn, " (variable)")
    return 1
  if x.ndim == 2 + len(tail):
    g = x.shape[1]
    if g < 1 or d % g or x.shape[0] != batch or tuple(x.shape[2:]) != tail:
      raise ValueError(
          f"{fn}: `{name}` must have shape {_fmt((batch, 'G') + tail)} (grouped, G dividing "
          f"D = {d}); found {_fmt(x.shape)}.")
    return g
  want = f"{_fmt((batch,) + tail)} or {_fmt((batch, 'G') + tail)}"
  if length is not None:
    want = f"{_fmt((d, n))}, " + want
  raise ValueError(f"{fn}: `{name}` must have shape {want}; found {_fmt(x.shape)}.")


def _check_abc(A, B, C, batch: int, d: int, length: int | None, fn: str):
  """Validates ``A`` ``(D, N)`` and the B/C layouts; returns them and B's, C's group counts."""
  A = _real_array(A, "A", fn)
  if A.ndim != 2 or A.shape[0] != d:
    raise ValueError(f"{fn}: `A` must have shape (D, N) = ({d}, N); found {_fmt(A.shape)}.")
  B = _real_array(B, "B", fn)
  C = _real_array(C, "C", fn)
  n = A.shape[1]
  return (A, B, C, _bc_layout(B, "B", batch, d, n, length, fn),
          _bc_layout(C, "C", batch, d, n, length, fn))


def _check_optional(fn: str, specs):
  """Validates optional operands ``(name, value, shape, like)``; ``None`` passes through."""
  out = []
  for name, value, shape, like in specs:
    if value is not None:
      value = _real_array(value, name, fn)
      _check_shape(value, name, shape, fn, like)
    out.append(value)
  return out


def _compute_dtype(*arrays):
  """float32, or the widest floating dtype of the operands if wider (float64)."""
  dtype = jnp.result_type(jnp.float32, *[x.dtype for x in arrays if x is not None])
  return dtype if jnp.issubdtype(dtype, jnp.floating) else jnp.dtype(jnp.float32)


def _check_options(method, discretization, chunk_size, fn: str):
  if method is not None and method not in SCAN_METHODS:
    raise ValueError(f"{fn}: `method` must be None or one of {SCAN_METHODS}; "
                     f"found {method!r}.")
  if discretization not in DISCRETIZATIONS:
    raise ValueError(f"{fn}: `discretization` must be one of {DISCRETIZATIONS}; "
                     f"found {discretization!r}.")
  if chunk_size is not None:
    try:
      chunk_size = operator.index(chunk_size)
    except TypeError:
      raise TypeError(f"{fn}: `chunk_size` must be an int >= 1; found {chunk_size!r}.") from None
    if chunk_size < 1:
      raise ValueError(f"{fn}: `chunk_size` must be an int >= 1; found {chunk_size}.")
  return chunk_size


def _group_bc(x, groups: int, g: int, d: int, n: int, dtype, time_major: bool):
  """B/C in the internal layout.

  Variable ``(batch, Gx, N, L)`` becomes ``(L, batch, g, 1, N)`` (``(batch, g, 1, N)`` for a
  single step without L), repeating groups so every internal group of ``d // g`` channels
  reads one row. The constant ``(D, N)`` layout becomes ``(g, D // g, N)``.
  """
  x = x.astype(dtype)
  if groups == 0:
    return x.reshape(g, d // g, n)
  if x.ndim == (3 if time_major else 2):          # ungrouped variable: one group
    x = x[:, None]
  if g != x.shape[1]:
    x = jnp.repeat(x, g // x.shape[1], axis=1)
  if time_major:
    return jnp.moveaxis(x, -1, 0)[..., None, :]        # (L, batch, g, 1, N)
  return x[..., None, :]                                # (batch, g, 1, N)


class _Inputs(NamedTuple):
  """Time-major inputs of the scan core; channels split as ``D = g * dg``."""
  u: jax.Array          # (L, batch, g, dg)
  delta: jax.Array      # (L, batch, g, dg), after bias and softplus
  B: jax.Array          # (L, batch, g, 1, N) variable or (g, dg, N) constant
  C: jax.Array          # same layouts as B
  rho: jax.Array | None  # (L, batch, g, dg, N)


def _num_groups(gb: int, gc: int) -> int:
  g = 1
  for x in (gb, gc):
    if x:
      g = g * x // math.gcd(g, x)
  return g


# ------------------------------------------------------------------------------------------
# The per-step maths.


def _discretize(delta, u, A, B, discretization):
  """``(exp(delta A), Bbar u)`` for one or many steps; ``delta``, ``u`` (..., g, dg)."""
  dA = delta[..., None] * A
  a = jnp.exp(dA)
  if discretization == "mamba":
    bu = (delta * u)[..., None] * B
  else:
    safe_A = jnp.where(A == 0, jnp.ones_like(A), A)
    coef = jnp.where(A == 0, delta[..., None], jnp.expm1(dA) / safe_A)
    bu = coef * (u[..., None] * B)
  return a, bu


# Reductions as dot products: XLA:CPU runs these einsums several times faster than the
# equivalent ``jnp.sum(x * y, axis)`` reductions inside the scan loops (measured).
_HIGHEST = lax.Precision.HIGHEST


def _dot_n(x, v):
  """``sum_n x[..., g, d, n] v[..., n]``; ``v`` variable ``(..., g, 1, N)`` or ``(g, dg, N)``."""
  if v.shape[-2] == 1 and v.ndim == x.ndim:
    return jnp.einsum("...gdn,...gn->...gd", x, v[..., 0, :], precision=_HIGHEST)
  return jnp.einsum("...gdn,gdn->...gd", x, v, precision=_HIGHEST)


def _dot_d(x, w):
  """``sum_d x[b, g, d, n] w[b, g, d]`` -> ``(b, g, N)``."""
  return jnp.einsum("bgdn,bgd->bgn", x, w, precision=_HIGHEST)


def _dot_b(x, w):
  """``sum_b x[b, g, d, n] w[b, g, d]`` -> ``(g, d, N)``."""
  return jnp.einsum("bgdn,bgd->gdn", x, w, precision=_HIGHEST)


def _sum_b(x):
  """``sum_b x[b, ...]``."""
  return jnp.einsum("b...,b->...", x, jnp.ones(x.shape[:1], x.dtype), precision=_HIGHEST)


def _contract(h, C):
  """``y[..., d] = sum_n C[..., n] h[..., d, n]`` (the read-out ``C h``)."""
  return _dot_n(h, C)


def _slice_bc(x, const: bool):
  return None if const else x


def _scan_sequential(inp: _Inputs, A, h0, discretization, B_const, C_const):
  def step(h, xs):
    u, delta, B, C, rho = xs
    B = inp.B if B_const else B
    C = inp.C if C_const else C
    a, bu = _discretize(delta, u, A, B, discretization)
    h = a * h + bu
    if rho is not None:
      h = h + rho
    return h, _contract(h, C)

  xs = (inp.u, inp.delta, _slice_bc(inp.B, B_const), _slice_bc(inp.C, C_const), inp.rho)
  return lax.scan(step, h0, xs)


def _scan_associative(inp: _Inputs, A, h0, discretization, B_const, C_const):
  a, bu = _discretize(inp.delta, inp.u, A, inp.B, discretization)
  if inp.rho is not None:
    bu = bu + inp.rho
  h = linear_recurrence(a, bu, axis=0, initial_state=h0, method="associative")
  return h[-1], _contract(h, inp.C)


class _ChunkCfg(NamedTuple):
  """Static configuration of the chunked custom-VJP core (hashable)."""
  batch: int
  d: int
  n: int
  length: int
  chunk: int
  groups: int            # internal channel groups g (D = g * dg)
  b_groups: int          # 0: constant (D, N); else G of the variable (batch, G, N, L) layout
  c_groups: int
  reverse: bool
  softplus: bool
  discretization: str


def _adjoint_step(A, discretization, B_const, C_const, carry, xs):
  """One step of the adjoint recurrence of the scan, from t = L - 1 down to 0.

  ``carry = (lam, h_t, dA, dB, dC)`` with ``lam = a_{t+1} G_{t+1}``; ``G_t`` is the total
  cotangent of ``h_t``: ``G_t = C_t dy_t + lam``. With ``X = G_t h_{t-1} a_t`` (the cotangent
  of ``delta_t A``) the per-step gradients are, for Euler ("mamba") ``Bbar u = delta B u``:
  ``ddelta = sum_n (X A) + u sum_n (G B)``, ``du = delta sum_n (G B)``,
  ``dB = sum_d (G delta u)``, ``dC = sum_d (h_t dy)``, ``dA += sum_b (X delta)``, ``drho = G``;
  for "zoh" ``Bbar = expm1(delta A) / A B`` adds the chain through that coefficient.
  """
  lam, h, dA, dB_acc, dC_acc = carry
  h_prev, delta, u, B, C, dy = xs
  B = B_const if B is None else B
  C = C_const if C is None else C
  dAt = delta[..., None] * A
  a = jnp.exp(dAt)
  G = dy[..., None] * C + lam
  X = G * h_prev * a
  if discretization == "mamba":
    GB = _dot_n(G, B)
    ddelta = _dot_n(X, A) + u * GB
    du = delta * GB
    dA = dA + _dot_b(X, delta)
    w = delta * u
    gw = G
  else:
    safe_A = jnp.where(A == 0, jnp.ones_like(A), A)
    coef = jnp.where(A == 0, delta[..., None], jnp.expm1(dAt) / safe_A)
    ddelta = _dot_n(X, A) + u * _dot_n(G * a, B)
    du = _dot_n(G * coef, B)
    dcoef_dA = jnp.where(A == 0, 0.5 * delta[..., None] ** 2,
                         (delta[..., None] * a - coef) / safe_A)
    dA = dA + _dot_b(X, delta) + _sum_b(G * dcoef_dA * B * u[..., None])
    w = u
    gw = G * coef
  if B_const is None:
    dB_t = _dot_d(gw, w)                          # (batch, g, N)
  else:
    dB_t, dB_acc = None, dB_acc + _dot_b(gw, w)
  if C_const is None:
    dC_t = _dot_d(h, dy)
  else:
    dC_t, dC_acc = None, dC_acc + _dot_b(h, dy)
  return (a * G, h_prev, dA, dB_acc, dC_acc), (ddelta, du, dB_t, dC_t, G)


@functools.lru_cache(maxsize=None)
def _chunked_core(cfg: _ChunkCfg):
  """``(sliced, whole, h0) -> (y, h_last)`` with a custom VJP (the "chunked" method).

  ``sliced = (u, delta, B, C, rho)`` in the caller's layouts with time last (``delta``
  before bias and softplus; variable B/C as ``(batch, G, N, L)`` or ``None`` when constant;
  ``rho`` ``(batch, D, N, L)`` or ``None``), ``whole = (delta_bias, A, B, C)`` (constant
  B/C as ``(D, N)`` or ``None``).

  The forward pass scans over ``ceil(L / c)`` chunks and, inside a chunk, over steps with
  ``h`` as the carry and the read-out ``C h`` inside the step; it keeps only each chunk's
  starting state. The backward pass re-runs each chunk's recurrence from its saved state,
  keeping that chunk's states, then runs the adjoint recurrence backwards through the chunk
  (``_adjoint_step``; the CUDA kernel's scheme). Nothing of size (batch, L, D, N) is stored.

  When ``c`` does not divide ``L`` the last chunk is the window of ``c`` steps ending at the
  sequence's end; its steps already processed by the previous chunk get ``delta = u = rho =
  0`` (the state passes through unchanged, as with zero padding) and a zero cotangent, and
  their outputs are not written. So every chunk runs the same loop body (one compilation)
  and nothing is padded or copied.
  """
  b, d, n, g, length, c = cfg.batch, cfg.d, cfg.n, cfg.groups, cfg.length, cfg.chunk
  dg = d // g
  n_chunks = -(-length // c)
  masked = length % c != 0
  state_shape = (b, g, dg, n)
  disc = cfg.discretization

  def window(k):
    """Start of chunk k in the caller's time axis and its mask of steps to process.

    The mask is over the chunk's processing order (flipped for ``reverse``); the first
    ``max(0, (k + 1) c - L)`` steps there were already processed by chunk k - 1.
    """
    if cfg.reverse:
      start = jnp.maximum(length - (k + 1) * c, 0)
    else:
      start = jnp.minimum(k * c, length - c)
    if not masked:
      return start, None
    return start, jnp.arange(c) >= jnp.maximum(0, (k + 1) * c - length)

  def cut(x, start):
    """The chunk of ``x`` (time last) in processing order."""
    if x is None:
      return None
    x = lax.dynamic_slice_in_dim(x, start, c, axis=x.ndim - 1)
    return jnp.flip(x, -1) if cfg.reverse else x

  def keep(mask, x, other=0.0):
    return x if mask is None or x is None else jnp.where(mask, x, other)

  def paste(buf, x, start, mask):
    """Writes chunk ``x`` (processing order) into ``buf``, except its masked steps."""
    if buf is None:
      return None
    x = keep(mask, x.astype(buf.dtype), None if mask is None else cut(buf, start))
    if cfg.reverse:
      x = jnp.flip(x, -1)
    return lax.dynamic_update_slice_in_dim(buf, x, start, axis=buf.ndim - 1)

  def tm(x):                       # (batch, D, c) -> (c, batch, g, dg)
    return jnp.moveaxis(x.reshape(b, g, dg, c), -1, 0)

  def from_tm(x):                  # (c, batch, g, dg) -> (batch, D, c)
    return jnp.moveaxis(x, 0, -1).reshape(b, d, c)

  def bc_tm(x, groups):            # (batch, G, N, c) -> (c, batch, g, 1, N)
    if x is None:
      return None
    if groups != g:
      x = jnp.repeat(x, g // groups, axis=1)
    return jnp.moveaxis(x, -1, 0)[..., None, :]

  def bc_from_tm(x, groups):       # (c, batch, g, N) -> (batch, G, N, c)
    if x is None:
      return None
    x = x.reshape(c, b, groups, g // groups, n).sum(axis=3)
    return jnp.moveaxis(x, 0, -1)

  def chunk_inputs(sl, whole, mask):
    u_c, dl_c, bv_c, cv_c, rho_c = sl
    bias, A, bc, cc = whole
    delta = dl_c + bias[:, None]
    if cfg.softplus:
      delta = jax.nn.softplus(delta)
    rho = keep(mask, rho_c)
    if rho is not None:
      rho = jnp.moveaxis(rho.reshape(b, g, dg, n, c), -1, 0)
    inp = _Inputs(tm(keep(mask, u_c)), tm(keep(mask, delta)), bc_tm(bv_c, cfg.b_groups),
                  bc_tm(cv_c, cfg.c_groups), rho)
    consts = (None if bc is None else bc.reshape(g, dg, n),
              None if cc is None else cc.reshape(g, dg, n))
    return inp, A.reshape(g, dg, n), consts

  def run_forward(sliced, whole, h0):
    def body(carry, k):
      h, y = carry
      start, mask = window(k)
      inp, A, (bc, cc) = chunk_inputs([cut(x, start) for x in sliced], whole, mask)
      inp = inp._replace(B=inp.B if bc is None else bc, C=inp.C if cc is None else cc)
      h_new, y_c = _scan_sequential(inp, A, h.reshape(state_shape), disc, bc is not None,
                                    cc is not None)
      return (h_new.reshape(h.shape), paste(y, from_tm(y_c), start, mask)), h

    y = jnp.zeros((b, d, length), h0.dtype)
    (h, y), h_starts = lax.scan(body, (h0, y), jnp.arange(n_chunks))
    return y, h, h_starts

  @jax.custom_vjp
  def core(sliced, whole, h0):
    y, h, _ = run_forward(sliced, whole, h0)
    return y, h

  def core_fwd(sliced, whole, h0):
    y, h, h_starts = run_forward(sliced, whole, h0)
    return (y, h), (sliced, whole, h_starts)

  def backward_chunk(h_start, lam, sl, whole, dy_c, mask):
    """Gradients of one chunk given ``lam`` = a_{t+1} G_{t+1} from the later chunks."""
    inp, A, (bc, cc) = chunk_inputs(sl, whole, mask)
    Bs = inp.B if bc is None else bc

    def replay(h, xs):           # the forward recurrence, emitting h_{t-1}
      delta, u, B, rho = xs
      a, bu = _discretize(delta, u, A, Bs if B is None else B, disc)
      h_new = a * h + bu
      if rho is not None:
        h_new = h_new + rho
      return h_new, h

    h_last, h_prev = lax.scan(replay, h_start.reshape(state_shape),
                              (inp.delta, inp.u, None if bc is not None else inp.B, inp.rho))
    zero_w = lambda x: None if x is None else jnp.zeros_like(x)
    carry = (lam.reshape(state_shape), h_last, jnp.zeros_like(A), zero_w(bc), zero_w(cc))
    step = functools.partial(_adjoint_step, A, disc, bc, cc)
    (lam, _, dA, dbc, dcc), (ddelta, du, dB, dC, G) = lax.scan(
        step, carry, (h_prev, inp.delta, inp.u, None if bc is not None else inp.B,
                      None if cc is not None else inp.C, tm(keep(mask, dy_c))), reverse=True)
    u_c, dl_c, _, _, rho_c = sl
    bias = whole[0]
    ddelta = keep(mask, from_tm(ddelta))
    if cfg.softplus:
      ddelta = ddelta * jax.nn.sigmoid(dl_c + bias[:, None])
    drho = None
    if rho_c is not None:
      drho = jnp.moveaxis(G, 0, -1).reshape(b, d, n, c)
    sliced_grads = (from_tm(du), ddelta, bc_from_tm(dB, cfg.b_groups),
                    bc_from_tm(dC, cfg.c_groups), drho)
    whole_grads = (jnp.sum(ddelta, axis=(0, 2)), dA.reshape(d, n),
                   None if dbc is None else dbc.reshape(d, n),
                   None if dcc is None else dcc.reshape(d, n))
    return lam.reshape(b, d, n), sliced_grads, whole_grads

  def core_bwd(res, cts):
    sliced, whole, h_starts = res
    dy, dh_last = cts
    zeros = lambda x: None if x is None else jnp.zeros_like(x)

    def body(carry, xs):
      lam, bufs, acc = carry
      k, h_start = xs
      start, mask = window(k)
      lam, gs, gw = backward_chunk(h_start, lam, [cut(x, start) for x in sliced], whole,
                                   cut(dy, start), mask)
      bufs = tuple(paste(x, y, start, mask) for x, y in zip(bufs, gs))
      acc = tuple(None if x is None else x + y for x, y in zip(acc, gw))
      return (lam, bufs, acc), None

    carry = (dh_last, tuple(zeros(x) for x in sliced), tuple(zeros(x) for x in whole))
    (lam, bufs, acc), _ = lax.scan(body, carry, (jnp.arange(n_chunks), h_starts),
                                   reverse=True)
    return bufs, acc, lam

  core.defvjp(core_fwd, core_bwd)
  return core


def _scan_chunked(cfg: _ChunkCfg, u, delta, bv, cv, rho, bias, A, bc_const, cc_const, h0):
  return _chunked_core(cfg)((u, delta, bv, cv, rho), (bias, A, bc_const, cc_const), h0)


# ------------------------------------------------------------------------------------------
# Public API.


def _default_method() -> str:
  """The backend's default method (see the module docstring for the measurements)."""
  return "associative" if jax.default_backend() in ("gpu", "cuda", "rocm") else "chunked"


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                   return_last_state=False, *, method=None, chunk_size=64,
                   initial_state=None, reverse=False, state_injection=None,
                   discretization="mamba"):
  """The selective SSM scan with the semantics of mamba_ssm's ``selective_scan_ref``.

  With ``delta <- softplus(delta + delta_bias)`` (bias and softplus optional), per channel
  ``d``, state ``n`` and step ``t`` (spec eqs. (1)-(2), (5)):

    h_t = exp(delta_t A) h_{t-1} + Bbar_t u_t + rho_t,   y_t = sum_n C_t h_t,
    out_t = (y_t + D u_t) * silu(z_t),

  where ``Bbar_t u_t = delta_t B_t u_t`` (``discretization="mamba"``, the reference kernel's
  Euler rule) or ``expm1(delta_t A) / A * B_t u_t`` (``"zoh"``, exact zero-order hold).

  Args:
    u: inputs ``(batch, D, L)``.
    delta: step sizes ``(batch, D, L)``.
    A: ``(D, N)`` real (negative in Mamba).
    B: ``(D, N)`` constant, ``(batch, N, L)`` variable, or grouped ``(batch, G, N, L)``
      where channel ``d`` reads group ``d // (D / G)``.
    C: as ``B`` (its layout is independent of ``B``'s).
    D: skip weights ``(D,)`` or ``None``.
    z: gate ``(batch, D, L)`` or ``None``.
    delta_bias: ``(D,)`` added to ``delta`` or ``None``.
    delta_softplus: apply softplus to ``delta + delta_bias``.
    return_last_state: also return the final state.
    method: ``None`` (the backend default: ``"chunked"`` on CPU and TPU, ``"associative"``
      on GPU), ``"associative"``, ``"sequential"`` or ``"chunked"`` (module docstring).
    chunk_size: chunk length of ``"chunked"``; any ``L`` works (the last chunk behaves as
      if padded with ``delta = u = 0``, which leaves the state unchanged).
    initial_state: ``h_{-1}`` of shape ``(batch, D, N)``; zero when ``None``.
    reverse: run from ``t = L - 1`` down to ``0`` (equals flip -> scan -> flip).
    state_injection: ``rho`` of shape ``(batch, D, N, L)`` (spec eq. (5)) or ``None``.
    discretization: ``"mamba"`` or ``"zoh"``.

  Returns:
    ``out`` of shape ``(batch, D, L)`` in ``u``'s dtype, or ``(out, last_state)`` with
    ``last_state`` of shape ``(batch, D, N)`` in the compute dtype (float32, or float64
    for float64 inputs); for ``reverse`` it is the state after processing ``t = 0``.
  """
  fn = "selective_scan"
  chunk_size = _check_options(method, discretization, chunk_size, fn)
  if method is None:
    method = _default_method()
  u = _real_array(u, "u", fn)
  if u.ndim != 3:
    raise ValueError(f"{fn}: `u` must have shape (batch, D, L); found {_fmt(u.shape)}.")
  batch, d, length = u.shape
  if length < 1:
    raise ValueError(f"{fn}: `u` must have a sequence length L >= 1; found {_fmt(u.shape)}.")
  delta = _real_array(delta, "delta", fn)
  _check_shape(delta, "delta", u.shape, fn, " like `u`")
  A, B, C, gb, gc = _check_abc(A, B, C, batch, d, length, fn)
  n = A.shape[1]
  D, z, delta_bias, initial_state, state_injection = _check_optional(fn, [
      ("D", D, (d,), ""), ("z", z, u.shape, " like `u`"), ("delta_bias", delta_bias, (d,), ""),
      ("initial_state", initial_state, (batch, d, n), ""),
      ("state_injection", state_injection, (batch, d, n, length), "")])
  dtype = _compute_dtype(u, delta, A, B, C, D, z, delta_bias, initial_state, state_injection)

  g = _num_groups(gb, gc)
  f = lambda x: None if x is None else x.astype(dtype)
  if method == "chunked":
    h0 = jnp.zeros((batch, d, n), dtype) if initial_state is None else f(initial_state)
    bias = jnp.zeros((d,), dtype) if delta_bias is None else f(delta_bias)
    var = lambda x, groups: None if groups == 0 else f(x if x.ndim == 4 else x[:, None])
    const = lambda x, groups: f(x) if groups == 0 else None
    cfg = _ChunkCfg(batch, d, n, length, min(chunk_size, length), g, gb, gc, bool(reverse),
                    bool(delta_softplus), discretization)
    y, h = _scan_chunked(cfg, f(u), f(delta), var(B, gb), var(C, gc), f(state_injection),
                         bias, f(A), const(B, gb), const(C, gc), h0)
  else:
    y, h = _scan_time_major(u, delta, A, B, C, delta_bias, delta_softplus, initial_state,
                            reverse, state_injection, discretization, method, g, gb, gc,
                            dtype)
  out = _finish(y, f(u), f(D), f(z))
  out = out.astype(u.dtype) if jnp.issubdtype(u.dtype, jnp.floating) else out
  if return_last_state:
    return out, h
  return out


def _scan_time_major(u, delta, A, B, C, delta_bias, delta_softplus, initial_state, reverse,
                     state_injection, discretization, method, g, gb, gc, dtype):
  """The "sequential" and "associative" methods on time-major copies of the inputs.

  Returns ``y`` ``(batch, D, L)`` and the last state ``(batch, D, N)``; ``reverse`` flips
  the time axis of every input and of ``y``.
  """
  batch, d, length = u.shape
  n = A.shape[1]
  dg = d // g
  f = lambda x: x.astype(dtype)
  delta_c = f(delta)
  if delta_bias is not None:
    delta_c = delta_c + f(delta_bias)[:, None]
  if delta_softplus:
    delta_c = jax.nn.softplus(delta_c)

  def time_major(x):  # (batch, D, L) -> (L, batch, g, dg)
    x = jnp.moveaxis(f(x), -1, 0).reshape(length, batch, g, dg)
    return x[::-1] if reverse else x

  def bc(x, groups):
    x = _group_bc(x, groups, g, d, n, dtype, time_major=True)
    return x[::-1] if (reverse and groups) else x

  rho = None
  if state_injection is not None:
    rho = jnp.moveaxis(f(state_injection), -1, 0).reshape(length, batch, g, dg, n)
    rho = rho[::-1] if reverse else rho
  inp = _Inputs(time_major(u), time_major(delta_c), bc(B, gb), bc(C, gc), rho)
  A_g = f(A).reshape(g, dg, n)
  if initial_state is None:
    h0 = jnp.zeros((batch, g, dg, n), dtype)
  else:
    h0 = f(initial_state).reshape(batch, g, dg, n)
  args = (inp, A_g, h0, discretization, gb == 0, gc == 0)
  if method == "sequential":
    h, y = _scan_sequential(*args)
  else:
    h, y = _scan_associative(*args)
  y = y.reshape(length, batch, d)
  if reverse:
    y = y[::-1]
  return jnp.moveaxis(y, 0, -1), h.reshape(batch, d, n)


def _finish(y, u, D, z):
  """``(y + D u) * silu(z)``; ``D`` broadcast over the trailing axes after the channel one."""
  if D is not None:
    y = y + D.reshape(D.shape + (1,) * (u.ndim - 2)) * u
  if z is not None:
    y = y * jax.nn.silu(z)
  return y


def selective_state_update(state, x, dt, A, B, C, D=None, z=None, dt_bias=None,
                           dt_softplus=False, *, state_injection=None,
                           discretization="mamba"):
  """One decode step of ``selective_scan`` (mamba_ssm's ``selective_state_update``).

  Args:
    state: ``h_{t-1}`` of shape ``(batch, D, N)``.
    x: input ``u_t`` of shape ``(batch, D)``.
    dt: step size ``delta_t`` of shape ``(batch, D)``.
    A: ``(D, N)``.
    B: ``(batch, N)`` or grouped ``(batch, G, N)`` (mamba_ssm's layouts; pass a constant
      ``(D, N)`` of ``selective_scan`` as ``(batch, D, N)``, i.e. ``G = D``).
    C: as ``B``.
    D: ``(D,)`` or ``None``.
    z: gate ``(batch, D)`` or ``None``.
    dt_bias: ``(D,)`` or ``None``.
    dt_softplus: apply softplus to ``dt + dt_bias``.
    state_injection: ``rho_t`` of shape ``(batch, D, N)`` or ``None`` (spec eq. (5)).
    discretization: ``"mamba"`` or ``"zoh"``.

  Returns:
    ``(out, new_state)``: ``out`` of shape ``(batch, D)`` in ``x``'s dtype and ``h_t`` of
    shape ``(batch, D, N)`` in the compute dtype (float32, or float64 for float64 inputs).
  """
  fn = "selective_state_update"
  _check_options(None, discretization, None, fn)
  x = _real_array(x, "x", fn)
  if x.ndim != 2:
    raise ValueError(f"{fn}: `x` must have shape (batch, D); found {_fmt(x.shape)}.")
  batch, d = x.shape
  dt = _real_array(dt, "dt", fn)
  _check_shape(dt, "dt", x.shape, fn, " like `x`")
  A, B, C, gb, gc = _check_abc(A, B, C, batch, d, None, fn)
  n = A.shape[1]
  state = _real_array(state, "state", fn)
  _check_shape(state, "state", (batch, d, n), fn)
  D, z, dt_bias, state_injection = _check_optional(fn, [
      ("D", D, (d,), ""), ("z", z, (batch, d), " like `x`"), ("dt_bias", dt_bias, (d,), ""),
      ("state_injection", state_injection, (batch, d, n), "")])
  dtype = _compute_dtype(state, x, dt, A, B, C, D, z, dt_bias, state_injection)
  f = lambda v: jnp.asarray(v).astype(dtype)
  g = _num_groups(gb, gc)
  dg = d // g
  dt_c = f(dt)
  if dt_bias is not None:
    dt_c = dt_c + f(dt_bias)
  if dt_softplus:
    dt_c = jax.nn.softplus(dt_c)
  Bg = _group_bc(B, gb, g, d, n, dtype, time_major=False)
  Cg = _group_bc(C, gc, g, d, n, dtype, time_major=False)
  a, bu = _discretize(dt_c.reshape(batch, g, dg), f(x).reshape(batch, g, dg),
                      f(A).reshape(g, dg, n), Bg, discretization)
  h = a * f(state).reshape(batch, g, dg, n) + bu
  if state_injection is not None:
    h = h + f(state_injection).reshape(batch, g, dg, n)
  y = _contract(h, Cg).reshape(batch, d)
  out = _finish(y, f(x), None if D is None else f(D), None if z is None else f(z))
  out = out.astype(x.dtype) if jnp.issubdtype(x.dtype, jnp.floating) else out
  return out, h.reshape(batch, d, n)
