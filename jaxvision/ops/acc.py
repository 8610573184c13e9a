"""The Adjacent Channel Coupler (ACC): eq. (4) and its solvers, plus two associative variants.

Spec spectral-transformer-ising Sec. 2 ("Eq. (4): the ACC, stated exactly" and "Can the ACC
be parallelised?"). ``X, Y`` are ``(B, H, W, C)`` (channel-last; an unbatched ``(H, W, C)``
is accepted too), ``X_c`` is channel ``c``, ``sigma`` the logistic sigmoid, and every
``f, g, h`` is a **single-channel 3x3 convolution with its own weights and bias per channel
and direction** (Lemma 2's constants), i.e. ``54 C`` weights and ``6 C`` biases. The convs
are cross-correlations with zero ('SAME') padding, as ``lax.conv`` / PyTorch ``Conv2d``:
``k(X)[i, j] = b + sum_{u,v in {0,1,2}} w[u, v] X[i + u - 1, j + v - 1]``.

``adjacent_channel_coupler`` -- **the model (default; the spec's resolution of eq. 4)**:
two directional chains, as in a bidirectional RNN (the reading of Lemma 3, eq. 17)::

  Z^F_c = f^F_c(X_c) * sigma(g^F_c(X_c) + h^F_c(Y^F_{c-1})),  Y^F_c = X_c + Z^F_c,  c = 1..C
  Z^B_c = f^B_c(X_c) * sigma(g^B_c(X_c) + h^B_c(Y^B_{c+1})),  Y^B_c = X_c + Z^B_c,  c = C..1
  Y_c   = X_c + 1/2 (Z^F_c + Z^B_c)

``directions="forward"`` / ``"backward"`` keep one chain (``Y_c = X_c + Z_c``: the mean over
the regressors used). ``boundary`` sets ``Y^F_0`` / ``Y^B_{C+1}``: ``"zero"`` (default) or
``"input"`` (the end channel's own input, ``X_1`` / ``X_C``). Solvers (``solver=``):

* ``"scan"`` (default, exact): on CPU for float32, a **native kernel**
  (:mod:`jaxvision.ops.acc_native`: an XLA FFI custom call built with the local C++
  compiler on first use) that makes one pass per step over the two input and two state
  planes, rows split over threads; its derivatives (both modes) are those of the XLA scan
  below, which is also what runs elsewhere (other platforms and dtypes, no compiler,
  ``JAXVISION_NATIVE_KERNELS=0``). The XLA scan: one ``lax.scan`` of depth ``C`` running
  **both chains at once** (step ``t`` advances the forward chain at channel ``t`` and the
  backward chain at channel ``C + 1 - t``: the chains are vmapped over a flipped channel
  axis). Each step's per-channel kernels arrive as scanned inputs (``xs``); its 3x3 convs
  are 9 shifted multiply-adds. The non-recurrent ``f(X_c)``, ``g(X_c)`` are computed inside
  the same step, fused with ``h`` and the gate into one loop over the plane: on CPU this is
  ~9x faster than precomputing ``f(X)``, ``g(X)`` for all channels as one depthwise conv
  (``benchmarks/spectral_recon.py``), which writes and re-reads ``4 C`` planes. Channels
  are made leading once, so every step touches contiguous ``(B, H, W)`` planes, and the
  state and input planes live in persistent zero-bordered buffers (padding once, not per
  step). Gradients: autodiff of the scan (both modes).
* ``"jacobi"``: Picard sweeps of both chains over all channels at once
  (:func:`jaxvision.ops.solve_recurrence`), from ``Y^(0) = X``; exact after ``C`` sweeps
  (``num_iters=None``), approximate with fewer; ``tol`` stops early. ``f(X)``, ``g(X)``
  are precomputed once for all sweeps.
* ``"quasi_deer"``: quasi-Newton sweeps, each a linear recurrence solved by an associative
  scan, with the diagonal (centre-tap) Jacobian ``F_c sigma'(.) w^h_c[1, 1]``; same fixed
  point and exactness as ``"jacobi"``.
* ``"implicit"``: **a different model**: eq. (4) read literally, where ``Y_c`` depends on
  ``Y_{c-1}`` and ``Y_{c+1}`` of the *same* output ``Y``; the coupled system (an Ising
  mean-field-like fixed point) ``Y = X + 1/2 (Z^F(Y) + Z^B(Y))`` is solved by ``num_iters``
  sweeps (default ``C``) from ``Y^(0) = X``, Jacobi (``implicit_sweep="jacobi"``) or
  Gauss-Seidel in channel order (``"gauss_seidel"``). It converges when the map is
  contractive (``||d/dY|| <= 1/8 sum_d ||F^d||_inf ||op(w^h_d)||``; true for small ``h``);
  the spec and Lemma 3 read eq. (4) as the two-chain model above.

Speed (``benchmarks/results/spectral_recon.md``, one 482x512 image, C = 31, 2 CPU cores, the
CLI's CPU defaults of :mod:`jaxvision.train.cpu`): ``"scan"`` with the native kernel 26 ms
(17.5% of the float32 matmul rate measured in the same run), 5.9x faster than the same layer
as a PyTorch per-channel ``conv2d`` loop; the XLA scan 28-35 ms run to run (13-16%). XLA:CPU
runs each of the XLA scan's steps as ~5 loops over whole planes (the padded input copy, the
fused convs and gate, the state update, two output updates), which is what the kernel's
single pass removes. On CPU the parallel solvers cost more than the scan (every sweep
streams all ``2 C`` planes: Jacobi K = 2 166 ms, K = C 601 ms); they are for devices with
idle parallelism.

Iterative solvers differentiate through ``differentiation="implicit"`` (a ``custom_vjp`` on
the fixed point: reverse mode only, works with ``tol``) or ``"unrolled"`` (autodiff of a
fixed number of sweeps, both modes); see :mod:`jaxvision.ops.recurrence`.

Associative variants -- **different models** (linearised, so ``lax.associative_scan``
applies; depth ``O(log C)``); they share the parameter layout and the output rule
``Y_c = X_c + mean_d (Y^d_c - X_c)``:

* ``gated_linear_coupler`` -- pixel-diagonal gated linear recurrence (minGRU-like):
  ``Y^d_c = a_c * Y^d_{c-1} + (1 - a_c) * (X_c + F_c)``, ``a_c = sigma(G_c)``, ``F = f(X)``,
  ``G = g(X)``; ``h`` is unused. Solved with :func:`jaxvision.ops.linear_recurrence`.
* ``circular_linear_coupler`` -- a linear conv transition with **circular** padding,
  ``Y^d_c = h_c (*) Y^d_{c-1} + X_c + F_c * sigma(G_c)`` (``F``, ``G`` zero-padded as
  above). A circular conv is diagonal in the 2-D DFT basis (the ``F`` of Lemma 2), so the
  chain is an element-wise complex linear recurrence over ``rfft2(Y)``: ``"fft"`` solves
  it with an associative scan, ``"sequential"`` loops over channels with 9 rolls.
  Unstable (growing like ``|h^_c(w)|^C``) unless the transition kernels are small.

Parameters: :class:`ACCParams`, every field ``(D, C, 3, 3)`` (kernels) or ``(D, C)``
(biases), ``D = 2`` (index 0 forward, 1 backward) or ``D = 1`` for a single direction;
:func:`init_acc_params` draws them like PyTorch's ``Conv2d`` default for a 3x3
single-channel conv: ``U(-1/3, 1/3)`` (``1/sqrt(fan_in)``, fan_in 9; also the
``U(-1/k, 1/k)`` of Lemma 3 with ``k = 3``). ``g`` and ``h`` biases both sit inside the
sigmoid, so only their sum matters; both are kept, as two ``Conv2d`` layers would have.

Dtypes: computed in ``promote(dtype(x), dtype(params), float32)`` (float32 by default,
float64 under ``jax.enable_x64``). All functions are ``jit``/``vmap``/``grad``-safe; option
strings and the sweep counts are static.
"""

from __future__ import annotations

import functools
import operator
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from jaxvision.ops import acc_native
from jaxvision.ops.recurrence import (
    DIFFERENTIATION_MODES,
    SolverInfo,
    fixed_point,
    solve_recurrence,
)
from jaxvision.ops.scan import linear_recurrence

__all__ = [
    "ACC_BOUNDARIES",
    "ACC_DIRECTIONS",
    "ACC_SOLVERS",
    "ACCParams",
    "CIRCULAR_METHODS",
    "GATED_METHODS",
    "IMPLICIT_SWEEPS",
    "acc_flops",
    "adjacent_channel_coupler",
    "circular_linear_coupler",
    "gated_linear_coupler",
    "init_acc_params",
]

ACC_SOLVERS = ("scan", "jacobi", "quasi_deer", "implicit")
ACC_DIRECTIONS = ("both", "forward", "backward")
ACC_BOUNDARIES = ("zero", "input")
IMPLICIT_SWEEPS = ("jacobi", "gauss_seidel")
GATED_METHODS = ("associative", "sequential")
CIRCULAR_METHODS = ("fft", "sequential")
_FIELDS = ("f_kernel", "g_kernel", "h_kernel", "f_bias", "g_bias", "h_bias")


class ACCParams(NamedTuple):
  """Per-channel 3x3 conv parameters of the ACC (eq. 4).

  ``D`` is 2 (``[forward, backward]``) or 1 (a single direction); ``C`` the channels.
  Kernels are cross-correlation weights ``w[u, v]`` (row, column), biases one per
  channel. ``h_kernel``/``h_bias`` may be ``None`` for :func:`gated_linear_coupler`.

  Attributes:
    f_kernel: ``(D, C, 3, 3)``, ``f^d_c``: the value path.
    g_kernel: ``(D, C, 3, 3)``, ``g^d_c``: the gate's input path.
    h_kernel: ``(D, C, 3, 3)``, ``h^d_c``: the gate's neighbour path (the coupling).
    f_bias, g_bias, h_bias: ``(D, C)``.
  """
  f_kernel: jax.Array
  g_kernel: jax.Array
  h_kernel: jax.Array | None
  f_bias: jax.Array
  g_bias: jax.Array
  h_bias: jax.Array | None


def init_acc_params(key, channels: int, *, directions: str = "both",
                    dtype=jnp.float32, with_h: bool = True) -> ACCParams:
  """PyTorch-``Conv2d``-like ``U(-1/3, 1/3)`` parameters for ``channels`` channels.

  Args:
    key: a PRNG key.
    channels: ``C >= 1``.
    directions: ``"both"`` (``D = 2``) or ``"forward"``/``"backward"`` (``D = 1``).
    dtype: the parameters' dtype.
    with_h: ``False`` leaves ``h_kernel``/``h_bias`` as ``None`` (gated-linear variant).

  Returns:
    :class:`ACCParams`.
  """
  fn = "init_acc_params"
  _check_option(directions, "directions", ACC_DIRECTIONS, fn)
  channels = _check_int(channels, "channels", fn, minimum=1)
  d = 2 if directions == "both" else 1
  keys = jax.random.split(key, 6)
  bound = 1.0 / 3.0

  def u(k, shape):
    return jax.random.uniform(k, shape, dtype, -bound, bound)

  ks, bs = (d, channels, 3, 3), (d, channels)
  return ACCParams(u(keys[0], ks), u(keys[1], ks), u(keys[2], ks) if with_h else None,
                   u(keys[3], bs), u(keys[4], bs), u(keys[5], bs) if with_h else None)


def acc_flops(batch: int, height: int, width: int, channels: int,
              directions: str = "both") -> int:
  """Floating-point operations of one ACC application (``"scan"``), for benchmarks.

  Per pixel, channel and direction: three 3x3 convs with bias (9 multiplies + 9 adds
  each: 54), the gate sum (1), the sigmoid (counted as 4: negate, exp, add, divide), the
  gate product (1) and the chain update ``X + Z`` (1) -- 61; plus 2 for the output
  ``X + 1/2 (Z^F + Z^B)`` with both directions. C = 31 at 482x512: 0.94 GFLOP.
  """
  d = 2 if directions == "both" else 1
  per = 61 * d + (2 if d == 2 else 0)
  return int(per * batch * height * width * channels)


# ------------------------------------------------------------------------------------------
# Checks.


def _check_option(value, name, options, fn):
  if value not in options:
    raise ValueError(f"{fn}: `{name}` must be one of {options}; found {value!r}.")


def _check_int(value, name, fn, minimum):
  try:
    value = operator.index(value)
  except TypeError:
    raise TypeError(f"{fn}: `{name}` must be an int >= {minimum}; found {value!r}.") from None
  if value < minimum:
    raise ValueError(f"{fn}: `{name}` must be an int >= {minimum}; found {value}.")
  return value


def _prepare(x, params, directions, fn, *, need_h=True):
  """Validates; returns ``(xt, p, unbatched)``: ``xt`` (C, B, H, W), ``p`` a dict of the
  used directions' parameters as ``(D, C, 3, 3)`` / ``(D, C)`` in the compute dtype."""
  _check_option(directions, "directions", ACC_DIRECTIONS, fn)
  x = jnp.asarray(x)
  if x.ndim not in (3, 4):
    raise ValueError(f"{fn}: `x` must have shape (B, H, W, C) or (H, W, C) (channel-last); "
                     f"found {x.shape}.")
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise TypeError(f"{fn}: `x` must have a floating dtype; found {x.dtype}.")
  unbatched = x.ndim == 3
  if unbatched:
    x = x[None]
  if min(x.shape) < 1:
    raise ValueError(f"{fn}: `x` must have non-empty axes; found shape {x.shape}.")
  c = x.shape[-1]
  if not isinstance(params, (ACCParams, dict)):
    raise TypeError(f"{fn}: `params` must be an ACCParams (or a dict with its fields); "
                    f"found {type(params).__name__}.")
  get = params.get if isinstance(params, dict) else lambda k: getattr(params, k)
  fields = _FIELDS if need_h else ("f_kernel", "g_kernel", "f_bias", "g_bias")
  arrays = {}
  d_sizes = set()
  for name in fields:
    v = get(name)
    if v is None:
      raise ValueError(f"{fn}: `params.{name}` is required; found None.")
    v = jnp.asarray(v)
    kernel = name.endswith("kernel")
    want = ("D", c, 3, 3) if kernel else ("D", c)
    if v.ndim != len(want) or tuple(v.shape[1:]) != want[1:] or v.shape[0] not in (1, 2):
      raise ValueError(
          f"{fn}: `params.{name}` must have shape {want} with D = 2 ([forward, backward]) or "
          f"1 (one direction) and C = {c} (the channels of `x`); found {v.shape}.")
    if not jnp.issubdtype(v.dtype, jnp.floating):
      raise TypeError(f"{fn}: `params.{name}` must have a floating dtype; found {v.dtype}.")
    d_sizes.add(v.shape[0])
    arrays[name] = v
  if len(d_sizes) != 1:
    raise ValueError(f"{fn}: all `params` fields must have the same leading size D; found "
                     f"{ {k: v.shape[0] for k, v in arrays.items()} }.")
  d = d_sizes.pop()
  if directions == "both" and d != 2:
    raise ValueError(f"{fn}: directions='both' needs parameters with D = 2 ([forward, "
                     f"backward]); found D = {d}.")
  dtype = jnp.result_type(jnp.float32, x.dtype, *[v.dtype for v in arrays.values()])
  if directions == "both" or d == 1:
    idx = slice(None)
  else:
    idx = slice(0, 1) if directions == "forward" else slice(1, 2)
  p = {k: v[idx].astype(dtype) for k, v in arrays.items()}
  xt = jnp.moveaxis(x.astype(dtype), -1, 0)          # (C, B, H, W): contiguous planes
  return xt, p, unbatched


def _finish(yt, unbatched):
  y = jnp.moveaxis(yt, 0, -1)
  return y[0] if unbatched else y


def _dirs(directions):
  """The chain directions used: ``+1`` forward (channel order), ``-1`` backward."""
  return {"both": (1, -1), "forward": (1,), "backward": (-1,)}[directions]


# ------------------------------------------------------------------------------------------
# Pieces.


def _pad(a):
  """Zero-pads the last two axes by one (``jnp.pad``; concatenating zero rows/columns is
  slower inside the scan, measured)."""
  return jnp.pad(a, [(0, 0)] * (a.ndim - 2) + [(1, 1), (1, 1)])


def _conv3x3(a, w, b, *, padded=False):
  """Zero-padded 3x3 cross-correlation of the planes ``a`` (..., H, W) as 9 shifted
  multiply-adds; ``w`` (..., 3, 3) and ``b`` (...) broadcast against ``a.shape[:-2]``.
  ``padded=True``: ``a`` is already zero-padded, (..., H + 2, W + 2)."""
  p = a if padded else _pad(a)
  hh, ww = p.shape[-2] - 2, p.shape[-1] - 2
  out = b[..., None, None]
  for u in range(3):
    for v in range(3):
      out = out + w[..., u, v, None, None] * p[..., u:u + hh, v:v + ww]
  return out


@jax.custom_jvp
def _gate(f, a):
  """``f * sigmoid(a)``, written ``f / (1 + exp(-a))``.

  The divide is the root on purpose: XLA treats it as expensive and does not duplicate it
  (with the three convs behind it) into each consumer of the gate, which it does for a
  multiply (measured: 3x the conv work per step). The JVP uses ``s (1 - s)``, finite for
  any ``a`` (the autodiff of the quotient would give ``inf / inf`` once ``exp`` overflows).
  """
  return f / (1 + jnp.exp(-a))


@_gate.defjvp
def _gate_jvp(primals, tangents):
  f, a = primals
  df, da = tangents
  s = 1 / (1 + jnp.exp(-a))
  return f / (1 + jnp.exp(-a)), df * s + f * (s * (1 - s)) * da


def _boundary_state(xt, dirs, boundary):
  """``Y^d`` before the first channel of each chain: (D, B, H, W)."""
  if boundary == "zero":
    return jnp.zeros((len(dirs),) + xt.shape[1:], xt.dtype)
  return jnp.stack([xt[0] if d > 0 else xt[-1] for d in dirs])


def _chain_order(a, dirs):
  """``(D, C, ...)`` in natural channel order -> ``(C, D, ...)`` in each chain's step order."""
  return jnp.stack([a[i] if d > 0 else a[i, ::-1] for i, d in enumerate(dirs)], axis=1)


def _combine(xt, z_steps, dirs):
  """``Y_c = X_c + mean_d Z^d_c`` from per-step ``z_steps`` (C, D, B, H, W)."""
  zs = [z_steps[:, i] if d > 0 else z_steps[::-1, i] for i, d in enumerate(dirs)]
  if len(zs) == 1:
    return xt + zs[0]
  return xt + 0.5 * (zs[0] + zs[1])


# ------------------------------------------------------------------------------------------
# Solvers of the two-chain model.


def _acc_scan(xt, p, dirs, boundary):
  """Both chains in one ``lax.scan`` over ``t = 0 .. C-1`` (forward at channel ``t``,
  backward at ``C - 1 - t``): the carry holds each chain's state and input planes in
  persistent zero-bordered buffers (D, B, H + 2, W + 2), written in place each step (only
  the interior), so the fused conv/gate loop reads plain padded buffers. Measured on CPU,
  this layout is ~20% faster than padding per step (``jnp.pad`` of the state and inputs is
  a separate slow pass) and several times faster than dynamic slices or pads fused into the
  loop, which XLA:CPU does not vectorise well."""
  c = xt.shape[0]
  nd = len(dirs)
  # Per-step weights (C, D, 1, 3, 3) / (C, D, 1): forward chain at channel t, backward at
  # C - 1 - t; the singleton broadcasts over the batch.
  w = {k: _chain_order(v, dirs)[:, :, None] for k, v in p.items()}
  interior = (0, 0, 1, 1)

  def step(carry, inp):
    xbuf, ybuf, acc = carry
    t, wf, wg, wh, bf, bg, bh = inp
    idx = [t if d > 0 else c - 1 - t for d in dirs]
    xs = jnp.stack([lax.dynamic_index_in_dim(xt, i, 0, keepdims=False) for i in idx])
    xbuf = lax.dynamic_update_slice(xbuf, xs, interior)             # (D, B, H+2, W+2)
    z = _gate(_conv3x3(xbuf, wf, bf, padded=True),
              _conv3x3(xbuf, wg, bg, padded=True) + _conv3x3(ybuf, wh, bh, padded=True))
    y_new = xbuf[..., 1:-1, 1:-1] + z
    ybuf = lax.dynamic_update_slice(ybuf, y_new, interior)
    if nd == 1:
      return (xbuf, ybuf, acc), y_new[0]
    zh = 0.5 * z
    acc = acc.at[t].add(zh[0])
    acc = acc.at[c - 1 - t].add(zh[1])
    return (xbuf, ybuf, acc), None

  xs = (jnp.arange(c), w["f_kernel"], w["g_kernel"], w["h_kernel"], w["f_bias"],
        w["g_bias"], w["h_bias"])
  xbuf0 = jnp.zeros((nd,) + xt.shape[1:-2] + (xt.shape[-2] + 2, xt.shape[-1] + 2), xt.dtype)
  ybuf0 = _pad(_boundary_state(xt, dirs, boundary))
  if nd == 1:
    _, ys = lax.scan(step, (xbuf0, ybuf0, jnp.zeros((), xt.dtype)), xs)
    return ys if dirs[0] > 0 else ys[::-1]
  (_, _, acc), _ = lax.scan(step, (xbuf0, ybuf0, xt), xs)
  return acc


def _native_step_params(p, dirs, batch):
  """The kernel's per-step parameters: weights (B, C, D, 27) (the f, g, h kernels) and
  biases (B, C, D, 3), forward chain at channel ``t``, backward at ``C - 1 - t``, broadcast
  over the batch (the batch partitioner shards every operand's leading axis)."""
  k = [_chain_order(p[n], dirs) for n in ("f_kernel", "g_kernel", "h_kernel")]
  weights = jnp.concatenate([a.reshape(a.shape[:2] + (9,)) for a in k], axis=-1)
  biases = jnp.stack([_chain_order(p[n], dirs) for n in ("f_bias", "g_bias", "h_bias")], -1)
  return (jnp.broadcast_to(weights, (batch,) + weights.shape),
          jnp.broadcast_to(biases, (batch,) + biases.shape))


def _scan_xla_planes(x, p, dirs, boundary):
  """The XLA scan on planes ``x`` (B, C, H, W)."""
  return jnp.moveaxis(_acc_scan(jnp.moveaxis(x, 1, 0), p, dirs, boundary), 0, 1)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3))
def _scan_native_planes(x, p, directions, boundary):
  """The scan on planes ``x`` (B, C, H, W): the native kernel on CPU, the XLA scan on other
  platforms."""
  dirs = _dirs(directions)

  def native(x, p):
    weights, biases = _native_step_params(p, dirs, x.shape[0])
    return acc_native.acc_scan_cpu(x, weights, biases, directions=directions,
                                   boundary=boundary)

  return lax.platform_dependent(
      x, p, cpu=native, default=lambda x, p: _scan_xla_planes(x, p, dirs, boundary))


@_scan_native_planes.defjvp
def _scan_native_planes_jvp(directions, boundary, primals, tangents):
  # Derivatives are the XLA scan's (forward and reverse mode; see acc_native).
  dirs = _dirs(directions)
  return jax.jvp(lambda x, p: _scan_xla_planes(x, p, dirs, boundary), primals, tangents)


def _scan_dispatch(xt, p, directions, boundary):
  """``solver="scan"`` on ``xt`` (C, B, H, W): the native CPU kernel for float32 when it is
  available (:mod:`jaxvision.ops.acc_native`), else the XLA scan."""
  if xt.dtype != jnp.float32 or not acc_native.native_available():
    return _acc_scan(xt, p, _dirs(directions), boundary)
  return jnp.moveaxis(_scan_native_planes(jnp.moveaxis(xt, 0, 1), p, directions, boundary),
                      1, 0)


def _precompute_fg(xt, p, dirs):
  """``F``, ``G`` of every channel and direction in step order: (C, D, B, H, W) each."""
  xd = xt[None]
  f = _conv3x3(xd, p["f_kernel"][:, :, None], p["f_bias"][:, :, None])    # (D, C, B, H, W)
  g = _conv3x3(xd, p["g_kernel"][:, :, None], p["g_bias"][:, :, None])
  return _chain_order(f, dirs), _chain_order(g, dirs)


def _acc_parallel(xt, p, dirs, boundary, method, num_iters, tol, differentiation,
                  return_info):
  x2 = _chain_order(jnp.broadcast_to(xt[None], (len(dirs),) + xt.shape), dirs)
  f2, g2 = _precompute_fg(xt, p, dirs)
  wh = _chain_order(p["h_kernel"], dirs)[:, :, None]
  bh = _chain_order(p["h_bias"], dirs)[:, :, None]

  def step(y_prev, inp):
    x, f, g, w, b = inp
    return x + _gate(f, g + _conv3x3(y_prev, w, b))

  def jac_diag(y_prev, inp):
    _, f, g, w, b = inp
    s = 1 / (1 + jnp.exp(-(g + _conv3x3(y_prev, w, b))))
    return f * (s * (1 - s)) * w[..., 1, 1, None, None]

  y, info = solve_recurrence(
      step, (x2, f2, g2, wh, bh), _boundary_state(xt, dirs, boundary), method=method,
      num_iters=num_iters, tol=tol, y0=x2,
      jacobian_diag=jac_diag if method == "quasi_deer" else None,
      differentiation=differentiation, return_info=True)
  out = _combine(xt, y - x2, dirs)
  return out, info


def _acc_implicit(xt, p, dirs, boundary, num_iters, tol, sweep, differentiation):
  """Eq. (4) as a coupled system: ``Y = X + mean_d Z^d(Y)`` with ``Z^F_c`` reading
  ``Y_{c-1}`` and ``Z^B_c`` reading ``Y_{c+1}`` of the same ``Y``."""
  nd = len(dirs)
  xd = xt[None]
  kb = lambda k: p[k][:, :, None]  # noqa: E731   (D, C, 1, ...)
  f = _conv3x3(xd, kb("f_kernel"), kb("f_bias"))                        # (D, C, B, H, W)
  g = _conv3x3(xd, kb("g_kernel"), kb("g_bias"))
  edge = _boundary_state(xt, dirs, boundary)                             # (D, B, H, W)
  scale = 1.0 / nd

  def neighbours(y):
    """``Y_{c-1}`` (forward) / ``Y_{c+1}`` (backward) for every channel: (D, C, B, H, W)."""
    out = []
    for i, d in enumerate(dirs):
      if d > 0:
        out.append(jnp.concatenate([edge[i][None], y[:-1]], axis=0))
      else:
        out.append(jnp.concatenate([y[1:], edge[i][None]], axis=0))
    return jnp.stack(out)

  def fn(y, args):
    x_, f_, g_, wh, bh = args
    z = _gate(f_, g_ + _conv3x3(neighbours(y), wh, bh))
    return x_ + scale * jnp.sum(z, axis=0)

  # Gauss-Seidel runs in channel order (reverse order for a backward-only chain) and reads
  # the already-updated neighbour on the side it comes from.
  order = 1 if 1 in dirs else -1

  def gauss_seidel(y, args):
    """One sweep using the updated ``Y_{c -+ 1}`` behind it and the old one ahead of it."""
    x_, f_, g_, wh, bh = args
    nb = neighbours(y)

    def step(prev, inp):
      xc, fc, gc, whc, bhc, nbc = inp       # (B,H,W), (D,B,H,W)x2, (D,1,3,3), (D,1), (D,B,H,W)
      zs = []
      for i, d in enumerate(dirs):
        nbr = prev if d == order else nbc[i]
        zs.append(_gate(fc[i], gc[i] + _conv3x3(nbr, whc[i], bhc[i])))
      yc = xc + scale * sum(zs)
      return yc, yc

    sw = lambda a: jnp.moveaxis(a, 0, 1)  # noqa: E731   (D, C, ...) -> (C, D, ...)
    _, y_new = lax.scan(step, edge[dirs.index(order)],
                        (x_, sw(f_), sw(g_), sw(wh), sw(bh), sw(nb)), reverse=order < 0)
    return y_new

  args = (xt, f, g, kb("h_kernel"), kb("h_bias"))
  return fixed_point(fn, args, xt, num_iters=num_iters, tol=tol,
                     sweep=gauss_seidel if sweep == "gauss_seidel" else None,
                     differentiation=differentiation, return_info=True)


def adjacent_channel_coupler(x, params: ACCParams, *, solver: str = "scan",
                             directions: str = "both", boundary: str = "zero",
                             num_iters: int | None = None, tol: float | None = None,
                             implicit_sweep: str = "jacobi",
                             differentiation: str = "implicit",
                             return_info: bool = False):
  """The Adjacent Channel Coupler, eq. (4) (module docstring: the model and the solvers).

  Args:
    x: ``(B, H, W, C)`` or ``(H, W, C)``, channel-last, floating.
    params: :class:`ACCParams` with ``C`` matching ``x`` (``D = 2`` for ``"both"``).
    solver: ``"scan"`` (exact, default), ``"jacobi"``, ``"quasi_deer"`` (exact after ``C``
      sweeps, approximate with fewer) or ``"implicit"`` (**the literal coupled system, a
      different model**).
    directions: ``"both"``, ``"forward"`` or ``"backward"``.
    boundary: ``"zero"`` or ``"input"``: ``Y_0`` / ``Y_{C+1}``.
    num_iters: sweeps of the iterative solvers; ``None`` means ``C``.
    tol: ``None`` or a float > 0: stop the sweeps once the largest change is ``<= tol``.
    implicit_sweep: ``"jacobi"`` or ``"gauss_seidel"``, for ``solver="implicit"``.
    differentiation: ``"implicit"`` or ``"unrolled"``, for the iterative solvers.
    return_info: also return a :class:`jaxvision.ops.SolverInfo` (sweeps, last change).

  Returns:
    ``Y``, the shape of ``x``, in the compute dtype; and the info if ``return_info``.
  """
  fn = "adjacent_channel_coupler"
  _check_option(solver, "solver", ACC_SOLVERS, fn)
  _check_option(boundary, "boundary", ACC_BOUNDARIES, fn)
  _check_option(implicit_sweep, "implicit_sweep", IMPLICIT_SWEEPS, fn)
  _check_option(differentiation, "differentiation", DIFFERENTIATION_MODES, fn)
  if num_iters is not None:
    num_iters = _check_int(num_iters, "num_iters", fn, minimum=0)
  xt, p, unbatched = _prepare(x, params, directions, fn)
  dirs = _dirs(directions)
  c = xt.shape[0]
  if solver == "scan":
    if tol is not None or num_iters is not None:
      raise ValueError(f"{fn}: `num_iters`/`tol` are for the iterative solvers; solver='scan' "
                       f"is exact (found num_iters={num_iters}, tol={tol}).")
    yt = _scan_dispatch(xt, p, directions, boundary)
    info = SolverInfo(jnp.int32(c), jnp.zeros((), xt.dtype))
  elif solver in ("jacobi", "quasi_deer"):
    yt, info = _acc_parallel(xt, p, dirs, boundary, solver, num_iters, tol,
                             differentiation, return_info)
  else:
    yt, info = _acc_implicit(xt, p, dirs, boundary, c if num_iters is None else num_iters,
                             tol, implicit_sweep, differentiation)
  y = _finish(yt, unbatched)
  return (y, info) if return_info else y


# ------------------------------------------------------------------------------------------
# Associative variants (different models).


def gated_linear_coupler(x, params: ACCParams, *, directions: str = "both",
                         boundary: str = "zero", method: str = "associative"):
  """Pixel-diagonal gated linear recurrence over channels -- **a different model** from eq. 4.

  ``Y^d_c = a^d_c * Y^d_{c-1} + (1 - a^d_c) * (X_c + F^d_c)`` with ``a^d_c = sigma(G^d_c)``,
  ``F = f(X)``, ``G = g(X)`` (zero-padded per-channel 3x3 convs; ``h`` unused), chains in
  both directions from ``boundary``; ``Y_c = X_c + mean_d (Y^d_c - X_c)``. Every factor
  comes from ``X`` alone, so the chain composes affinely,
  ``(a1, b1) o (a2, b2) = (a2 a1, a2 b1 + b2)``, and ``method="associative"`` solves it
  with :func:`jaxvision.ops.linear_recurrence` in depth ``O(log C)``; ``"sequential"``
  uses ``lax.scan``.

  Args:
    x: ``(B, H, W, C)`` or ``(H, W, C)``.
    params: :class:`ACCParams` (``h_kernel``/``h_bias`` ignored, may be ``None``).
    directions, boundary: as :func:`adjacent_channel_coupler`.
    method: ``"associative"`` or ``"sequential"``.

  Returns:
    ``Y``, the shape of ``x``.
  """
  fn = "gated_linear_coupler"
  _check_option(boundary, "boundary", ACC_BOUNDARIES, fn)
  _check_option(method, "method", GATED_METHODS, fn)
  xt, p, unbatched = _prepare(x, params, directions, fn, need_h=False)
  dirs = _dirs(directions)
  edge = _boundary_state(xt, dirs, boundary)
  xd = xt[None]
  kb = lambda k: p[k][:, :, None]  # noqa: E731
  f = _conv3x3(xd, kb("f_kernel"), kb("f_bias"))                     # (D, C, B, H, W)
  a = jax.nn.sigmoid(_conv3x3(xd, kb("g_kernel"), kb("g_bias")))
  b = (1 - a) * (xd + f)
  total = 0
  for i, d in enumerate(dirs):
    y = linear_recurrence(a[i], b[i], axis=0, reverse=d < 0, initial_state=edge[i],
                          method=method)
    total = total + (y - xt)
  return _finish(xt + total / len(dirs), unbatched)


def _circular_taps(w, hh, ww):
  """The kernel ``w`` (..., 3, 3) embedded in an (H, W) circular grid: ``k (*) y`` equals
  ``sum_{u,v} w[u, v] roll(y, (1 - u, 1 - v))``, i.e. ``ifft2(fft2(e) fft2(y))``."""
  e = jnp.zeros(w.shape[:-2] + (hh, ww), w.dtype)
  for u in range(3):
    for v in range(3):
      e = e.at[..., (1 - u) % hh, (1 - v) % ww].add(w[..., u, v])
  return e


def _circular_conv(y, w, b):
  """Circular 3x3 cross-correlation by 9 rolls: ``y`` (..., H, W), ``w`` (..., 3, 3)."""
  out = b[..., None, None]
  for u in range(3):
    for v in range(3):
      out = out + w[..., u, v, None, None] * jnp.roll(y, (1 - u, 1 - v), axis=(-2, -1))
  return out


def circular_linear_coupler(x, params: ACCParams, *, directions: str = "both",
                            boundary: str = "zero", method: str = "fft"):
  """Linear circular-conv transition over channels -- **a different model** from eq. 4.

  ``Y^d_c = h^d_c (*) Y^d_{c-1} + X_c + F^d_c * sigma(G^d_c)``, where ``(*)`` is the 3x3
  cross-correlation with **circular** padding (bias ``h_bias`` included) and
  ``F = f(X)``, ``G = g(X)`` are zero-padded as in eq. 4;
  ``Y_c = X_c + mean_d (Y^d_c - X_c)``. A circular conv is diagonalised by the 2-D DFT, so
  with ``method="fft"`` the chain is the element-wise complex linear recurrence
  ``Yhat_c = hhat_c * Yhat_{c-1} + bhat_c`` over ``rfft2`` coefficients, solved by
  :func:`jaxvision.ops.linear_recurrence` (associative scan, depth ``O(log C)``).
  ``method="sequential"`` is the reference loop (``lax.scan``, 9 rolls per step).

  The chain is stable only if ``|hhat_c(omega)| <= 1`` roughly (e.g. ``sum |w^h| <= 1``);
  with ``U(-1/3, 1/3)`` kernels it can grow like ``3^C``.

  Args:
    x: ``(B, H, W, C)`` or ``(H, W, C)``.
    params: :class:`ACCParams`.
    directions, boundary: as :func:`adjacent_channel_coupler`.
    method: ``"fft"`` or ``"sequential"``.

  Returns:
    ``Y``, the shape of ``x``.
  """
  fn = "circular_linear_coupler"
  _check_option(boundary, "boundary", ACC_BOUNDARIES, fn)
  _check_option(method, "method", CIRCULAR_METHODS, fn)
  xt, p, unbatched = _prepare(x, params, directions, fn)
  dirs = _dirs(directions)
  hh, ww = xt.shape[-2:]
  edge = _boundary_state(xt, dirs, boundary)
  xd = xt[None]
  kb = lambda k: p[k][:, :, None]  # noqa: E731
  f = _conv3x3(xd, kb("f_kernel"), kb("f_bias"))
  g = _conv3x3(xd, kb("g_kernel"), kb("g_bias"))
  b = xd + f * jax.nn.sigmoid(g) + kb("h_bias")[..., None, None]     # (D, C, B, H, W)
  total = 0
  for i, d in enumerate(dirs):
    if method == "fft":
      ahat = jnp.fft.rfft2(_circular_taps(p["h_kernel"][i], hh, ww))[:, None]  # (C,1,H,W')
      bhat = jnp.fft.rfft2(b[i])
      yhat = linear_recurrence(ahat, bhat, axis=0, reverse=d < 0,
                               initial_state=jnp.fft.rfft2(edge[i]), method="associative")
      y = jnp.fft.irfft2(yhat, s=(hh, ww)).astype(xt.dtype)
    else:
      w = p["h_kernel"][i][:, None]                                   # (C, 1, 3, 3)
      zero = jnp.zeros((xt.shape[0], 1), xt.dtype)

      def step(prev, inp):
        wc, bc = inp
        yc = _circular_conv(prev, wc, zero[0]) + bc
        return yc, yc

      _, y = lax.scan(step, edge[i], (w, b[i]), reverse=d < 0)
    total = total + (y - xt)
  return _finish(xt + total / len(dirs), unbatched)
