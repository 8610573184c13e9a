"""Mamba selective-SSM blocks: causal ``Mamba`` with a decode cache and bidirectional ``BiMamba``.

``Mamba`` is ``mamba_ssm.modules.mamba_simple.Mamba`` (Gu & Dao, 2023; state-spaces/mamba):

* ``(x, z) = in_proj(u)``, ``(batch, L, 2 D_inner)`` with ``D_inner = expand * d_model``;
* ``x <- SiLU(causal depthwise conv1d(x))`` (width ``d_conv``, with bias);
* ``(dt, B_t, C_t) = x_proj(x)`` of sizes ``(R, N, N)``, ``R = ceil(d_model / 16)``;
* ``Delta_t = softplus(dt_proj(dt) + b_Delta)``, ``A = -exp(A_log)``;
* the selective scan ``h_t = exp(Delta_t A) h_{t-1} + Delta_t B_t x_t (+ rho_t)``,
  ``y_t = C_t h_t + D x_t``, ``y <- y * SiLU(z)`` (:func:`jaxvision.ops.selective_scan`);
* ``out_proj(y)``.

MambaTraj (ICPR 2024; spec icpr-13 Sec. 2) adds the relative-pose state injection of
eq. (5), ``h_t = Abar h_{t-1} + W^{r->h} r_{t,t-1} + Bbar x_t``: with ``injection`` set, the
block maps ``rel`` (an embedding of ``r_{t,t-1}``, row ``t``) to ``rho_t`` ``(D_inner, N)``
by bias-free linear maps (so ``rel = 0`` gives ``rho = 0``): ``"outer"``,
``rho = (W_a rel) (x) (W_b rel)`` (the spec's default for the parameter budget), or
``"full"``, ``rho = reshape(W rel)`` with ``W`` of ``d_rel * D_inner * N`` parameters.

``BiMamba`` is Vision Mamba's ``bimamba_type="v2"`` (hustvl/Vim): one shared ``in_proj`` and
``out_proj``; a forward and a backward SSM branch, each with its own conv1d, x_proj, dt_proj,
A_log and D; the backward branch runs on the flipped sequence, and
``y = out_proj(y_f + flip(y_b))`` (divided by 2 with ``divide_out``, Vim's
``if_devide_out``).

Both blocks share one implementation of the SSM branch (:class:`SelectiveSSM`), so the
parameter tree is ``{"in_proj", "ssm", "out_proj"}`` for ``Mamba`` and
``{"in_proj", "ssm", "ssm_backward", "out_proj"}`` for ``BiMamba``. Initialisation follows
``mamba_simple``: PyTorch's default ``U(+-1/sqrt(fan_in))`` for the linear maps and the conv;
``dt_proj`` weight ``U(+-dt_scale / sqrt(R))`` (``"random"``) or that constant
(``"constant"``); ``b_Delta = softplus^-1(Delta_0)`` with
``Delta_0 = max(exp(U[log dt_min, log dt_max]), dt_init_floor)``; ``A_log = log(1..N)`` per
channel (S4D-real); ``D = 1``. (Vim leaves its backward ``dt_proj`` at PyTorch's default
init; here both branches get Mamba's dt init.)

Padding: ``mask`` ``(batch, L)`` with 1 for real tokens. Masked tokens get ``Delta = 0`` and
``rho = 0`` (so ``exp(0 A) = 1`` and ``Delta B x = 0``: the SSM state passes through them
unchanged) and a zero conv input; their outputs are zero. Padding placed *before* the real
tokens (the MambaTraj sorting puts padded tokens first, spec Sec. 2 "Sorting") therefore
leaves the real tokens' outputs exactly as without it; in ``BiMamba`` the backward branch
sees that padding last, after every real token.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from jaxvision.ops import selective_scan, selective_state_update

__all__ = ["BiMamba", "INJECTIONS", "Mamba", "MambaCache", "SelectiveSSM"]

INJECTIONS = (None, "outer", "full")
_DT_INITS = ("random", "constant")


# ------------------------------------------------------------------------------------------
# Initialisers (mamba_simple / PyTorch defaults).

# PyTorch's nn.Linear / nn.Conv1d weight default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
_torch_kernel_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def _torch_uniform(fan_in: int):
  """PyTorch's default Linear bias / Conv1d init ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``."""
  bound = 1.0 / math.sqrt(fan_in)

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def _dt_kernel_init(std: float, mode: str):
  """``dt_proj`` weight: ``U(-std, std)`` (``"random"``) or the constant ``std``."""

  def init(key, shape, dtype=jnp.float32):
    if mode == "constant":
      return jnp.full(shape, std, dtype)
    return jax.random.uniform(key, shape, dtype, -std, std)

  return init


def _dt_bias_init(dt_min: float, dt_max: float, floor: float):
  """``softplus^-1(Delta_0)``, ``Delta_0 = max(exp(U[log dt_min, log dt_max]), floor)``."""

  def init(key, shape, dtype=jnp.float32):
    lo, hi = math.log(dt_min), math.log(dt_max)
    dt = jnp.exp(jax.random.uniform(key, shape, jnp.float32) * (hi - lo) + lo)
    dt = jnp.maximum(dt, floor)
    return (dt + jnp.log(-jnp.expm1(-dt))).astype(dtype)   # inverse softplus

  return init


def _s4d_real_init(key, shape, dtype=jnp.float32):
  """``A_log[d, n] = log(n + 1)``: S4D-real, ``A = -(1, 2, ..., N)`` for every channel."""
  del key
  return jnp.broadcast_to(jnp.log(jnp.arange(1, shape[-1] + 1, dtype=dtype)), shape)


# ------------------------------------------------------------------------------------------
# Decode cache.


@flax.struct.dataclass
class MambaCache:
  """Recurrent state of a :class:`Mamba` block between decode steps.

  Attributes:
    conv_state: ``(batch, D_inner, d_conv)``, the last ``d_conv`` conv inputs (pre-conv ``x``
      of the in_proj), the newest at index ``-1`` (mamba_simple's ``conv_state``).
    ssm_state: ``(batch, D_inner, N)`` float32, the SSM state ``h_t``.
  """
  conv_state: jax.Array
  ssm_state: jax.Array


# ------------------------------------------------------------------------------------------
# The SSM branch shared by Mamba and BiMamba.


def _check_rel(name: str, rel, lead: tuple[int, ...]):
  rel = jnp.asarray(rel)
  if rel.ndim != len(lead) + 1 or rel.shape[:-1] != lead:
    raise ValueError(f"`{name}` must have shape {lead + ('d_rel',)}; found {rel.shape}.")
  if not jnp.issubdtype(rel.dtype, jnp.floating):
    raise TypeError(f"`{name}` must be floating; found {rel.dtype}.")
  return rel


class _MambaFields(nn.Module):
  """The hyper-parameters shared by :class:`SelectiveSSM`, :class:`Mamba` and :class:`BiMamba`
  (documented on :class:`Mamba`)."""
  d_model: int
  d_state: int = 16
  d_conv: int = 4
  expand: int = 2
  dt_rank: int | str = "auto"
  dt_min: float = 1e-3
  dt_max: float = 0.1
  dt_init: str = "random"
  dt_scale: float = 1.0
  dt_init_floor: float = 1e-4
  conv_bias: bool = True
  bias: bool = False
  injection: str | None = None
  scan_method: str | None = None
  chunk_size: int = 64
  discretization: str = "mamba"
  dtype: Any = None
  param_dtype: Any = jnp.float32
  precision: Any = None

  @property
  def d_inner(self) -> int:
    """``D_inner = expand * d_model``."""
    return int(self.expand * self.d_model)

  @property
  def rank(self) -> int:
    """``R``: ``ceil(d_model / 16)`` for ``dt_rank="auto"``."""
    if self.dt_rank == "auto":
      return math.ceil(self.d_model / 16)
    if not isinstance(self.dt_rank, (int, np.integer)) or self.dt_rank < 1:
      raise ValueError(f"`dt_rank` must be 'auto' or a positive int; found {self.dt_rank!r}.")
    return int(self.dt_rank)


class SelectiveSSM(_MambaFields):
  """One Mamba SSM branch: causal depthwise conv, SiLU, x/dt projections and the selective scan.

  Everything of ``mamba_simple.Mamba`` between ``in_proj`` and ``out_proj`` (see the module
  docstring), acting on the ``x`` and ``z`` halves of the in_proj in ``(batch, L, D_inner)``
  layout; :class:`Mamba` and :class:`BiMamba` are thin wrappers around it. It takes the
  fields of the block that owns it (see :class:`Mamba`; ``bias`` is not used here) and
  creates the branch parameters ``conv_kernel (d_conv, D_inner)``, ``conv_bias (D_inner,)``,
  ``x_proj (D_inner, R + 2N)``, ``dt_proj (R, D_inner)``, ``dt_bias (D_inner,)``,
  ``A_log (D_inner, N)``, ``D (D_inner,)`` and the injection maps.
  """

  def setup(self):
    if self.injection not in INJECTIONS:
      raise ValueError(f"`injection` must be one of {INJECTIONS}; found {self.injection!r}.")
    if self.dt_init not in _DT_INITS:
      raise ValueError(f"`dt_init` must be one of {_DT_INITS}; found {self.dt_init!r}.")
    d, n, r = self.d_inner, self.d_state, self.rank
    dense = dict(use_bias=False, dtype=self.dtype, param_dtype=self.param_dtype,
                 precision=self.precision, kernel_init=_torch_kernel_init)
    # Depthwise conv weight, mamba's (d, 1, w) as (w, d); w[-1] multiplies the current x.
    self.conv_kernel = self.param("conv_kernel", _torch_uniform(self.d_conv),
                                  (self.d_conv, d), self.param_dtype)
    if self.conv_bias:
      self.conv_bias_ = self.param("conv_bias", _torch_uniform(self.d_conv), (d,),
                                   self.param_dtype)
    self.x_proj = nn.Dense(r + 2 * n, name="x_proj", **dense)
    self.dt_proj = nn.Dense(d, name="dt_proj", **{
        **dense, "kernel_init": _dt_kernel_init(r**-0.5 * self.dt_scale, self.dt_init)})
    # The dt bias is added in float32 (as selective_scan_ref's delta_bias).
    self.dt_bias = self.param("dt_bias", _dt_bias_init(self.dt_min, self.dt_max,
                                                       self.dt_init_floor), (d,), jnp.float32)
    self.A_log = self.param("A_log", _s4d_real_init, (d, n), jnp.float32)
    self.D = self.param("D", nn.initializers.ones, (d,), jnp.float32)
    if self.injection == "outer":
      self.rel_a = nn.Dense(d, name="rel_a", **dense)
      self.rel_b = nn.Dense(n, name="rel_b", **dense)
    elif self.injection == "full":
      self.rel_full = nn.Dense(d * n, name="rel_full", **dense)

  # -- pieces shared by the full scan and the decode step --------------------------------

  def _project(self, xc):
    """``(..., D_inner)`` conv output -> ``Delta`` (at least float32), ``B_t``, ``C_t``."""
    n, r = self.d_state, self.rank
    x_dbl = self.x_proj(xc)
    dt, b, c = x_dbl[..., :r], x_dbl[..., r:r + n], x_dbl[..., r + n:]
    dt = self.dt_proj(dt)
    dt = dt.astype(jnp.promote_types(dt.dtype, jnp.float32))     # float32 (float64 in x64)
    delta = jax.nn.softplus(dt + self.dt_bias.astype(dt.dtype))
    return delta, b, c

  def _rho(self, rel):
    """``(..., d_rel)`` -> ``rho`` ``(..., D_inner, N)``: the eq. (5) term ``W^{r->h} r``."""
    if self.injection == "outer":
      return self.rel_a(rel)[..., :, None] * self.rel_b(rel)[..., None, :]
    return self.rel_full(rel).reshape(*rel.shape[:-1], self.d_inner, self.d_state)

  def _conv_out(self, acc):
    if self.conv_bias:
      acc = acc + self.conv_bias_
    return jax.nn.silu(acc)

  def _check_rel_given(self, rel, arg: str):
    if self.injection is None and rel is not None:
      raise ValueError(f"`{arg}` was given but `injection` is None; set injection='outer' or "
                       "'full' to use it.")
    if self.injection is not None and rel is None:
      raise ValueError(f"`{arg}` is required with injection={self.injection!r} (pass zeros "
                       "for tokens without a relative pose).")

  def __call__(self, x, z, rel=None, mask=None, *, rel_name="rel", return_state=False):
    """Runs the branch over whole sequences.

    Args:
      x, z: ``(batch, L, D_inner)``, the two halves of the in_proj.
      rel: ``(batch, L, d_rel)`` embedding of ``r_{t,t-1}`` (row ``t``); required iff
        ``injection`` is set.
      mask: ``(batch, L)``, 1 for real tokens; masked tokens get ``Delta = rho = 0`` and a
        zero conv input, and a zero output.
      rel_name: name of ``rel`` in error messages.
      return_state: also return the :class:`MambaCache` after the last token.

    Returns:
      ``y`` ``(batch, L, D_inner)`` (``y = (C h + D x) * SiLU(z)``), and the cache if asked.
    """
    self._check_rel_given(rel, rel_name)
    batch, length, _ = x.shape
    if mask is not None:
      x = x * mask[..., None].astype(x.dtype)
    # Causal depthwise conv: out[t] = sum_k w[k] x[t - (d_conv - 1) + k], zeros before t = 0.
    k = self.d_conv
    xp = jnp.pad(x, ((0, 0), (k - 1, 0), (0, 0)))
    kernel = self.conv_kernel.astype(x.dtype)
    xc = self._conv_out(sum(xp[:, i:i + length] * kernel[i] for i in range(k)))
    delta, b, c = self._project(xc)
    rho = None
    if rel is not None:
      rho = self._rho(rel.astype(xc.dtype))                     # (batch, L, D, N)
    if mask is not None:
      delta = delta * mask[..., None].astype(delta.dtype)
      if rho is not None:
        rho = rho * mask[..., None, None].astype(rho.dtype)
    tr = lambda t: jnp.swapaxes(t, 1, 2)                         # (b, L, .) -> (b, ., L)
    out = selective_scan(
        tr(xc), tr(delta), -jnp.exp(self.A_log), tr(b), tr(c), self.D, z=tr(z),
        return_last_state=return_state, method=self.scan_method, chunk_size=self.chunk_size,
        state_injection=None if rho is None else jnp.moveaxis(rho, 1, -1),
        discretization=self.discretization)
    if not return_state:
      return tr(out)
    y, last = out
    cache = MambaCache(conv_state=tr(xp[:, xp.shape[1] - k:]), ssm_state=last)
    return tr(y), cache

  def step(self, x_t, z_t, cache: MambaCache, rel_t=None, *, rel_name="rel_t"):
    """One decode step (mamba_simple ``Mamba.step``).

    Args:
      x_t, z_t: ``(batch, D_inner)``.
      cache: the state after the previous token.
      rel_t: ``(batch, d_rel)``; required iff ``injection`` is set.
      rel_name: name of ``rel_t`` in error messages.

    Returns:
      ``(y_t (batch, D_inner), new cache)``.
    """
    self._check_rel_given(rel_t, rel_name)
    conv_state = jnp.concatenate(
        [cache.conv_state[..., 1:], x_t[..., None].astype(cache.conv_state.dtype)], axis=-1)
    # Elementwise, like the full pass (no dot: its TPU default precision would differ).
    kernel = self.conv_kernel.astype(x_t.dtype).T                    # (D_inner, d_conv)
    xc = self._conv_out(jnp.sum(conv_state.astype(x_t.dtype) * kernel, axis=-1))
    delta, b, c = self._project(xc)
    rho = None if rel_t is None else self._rho(rel_t.astype(xc.dtype))
    # B_t, C_t as one group (batch, 1, N): a 2-D (batch, N) would be ambiguous with the
    # constant (D, N) layout when batch == D.
    y, ssm_state = selective_state_update(
        cache.ssm_state, xc, delta, -jnp.exp(self.A_log), b[:, None], c[:, None], self.D,
        z=z_t, state_injection=rho, discretization=self.discretization)
    return y, MambaCache(conv_state=conv_state, ssm_state=ssm_state)


# ------------------------------------------------------------------------------------------
# The blocks.


class _MambaBlock(_MambaFields):
  """The shared in/out projections and input checks of :class:`Mamba` and :class:`BiMamba`."""

  def _branch(self, name: str) -> SelectiveSSM:
    fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(_MambaFields)
              if f.name not in ("parent", "name")}
    return SelectiveSSM(**fields, name=name)

  def _projections(self):
    dense = dict(use_bias=self.bias, dtype=self.dtype, param_dtype=self.param_dtype,
                 precision=self.precision, kernel_init=_torch_kernel_init)
    self.in_proj = nn.Dense(2 * self.d_inner, name="in_proj",
                            bias_init=_torch_uniform(self.d_model), **dense)
    self.out_proj = nn.Dense(self.d_model, name="out_proj",
                             bias_init=_torch_uniform(self.d_inner), **dense)

  def _check_inputs(self, x, mask):
    x = jnp.asarray(x)
    if x.ndim != 3 or x.shape[-1] != self.d_model:
      raise ValueError(f"{type(self).__name__}: `x` must have shape (batch, L, {self.d_model}); "
                       f"found {x.shape}.")
    if not jnp.issubdtype(x.dtype, jnp.floating):
      raise TypeError(f"{type(self).__name__}: `x` must be floating; found {x.dtype}.")
    if mask is not None:
      mask = jnp.asarray(mask)
      if mask.shape != x.shape[:2]:
        raise ValueError(f"{type(self).__name__}: `mask` must have shape {x.shape[:2]} "
                         f"(batch, L) like `x`; found {mask.shape}.")
    return x, mask

  def _split(self, x):
    xz = self.in_proj(x)
    return xz[..., :self.d_inner], xz[..., self.d_inner:]

  def _finish(self, y, mask):
    out = self.out_proj(y)
    if mask is not None:
      out = out * mask[..., None].astype(out.dtype)
    return out


class Mamba(_MambaBlock):
  """The causal Mamba block (``mamba_simple.Mamba``) with optional eq. (5) state injection.

  Input and output are ``(batch, L, d_model)``; internally the scan runs in the
  ``(batch, D_inner, L)`` layout of :func:`jaxvision.ops.selective_scan`. Parameters:
  ``in_proj`` ``(d_model, 2 D_inner)``, ``ssm/{conv_kernel (d_conv, D_inner), conv_bias,
  x_proj (D_inner, R + 2N), dt_proj (R, D_inner), dt_bias, A_log (D_inner, N), D}``,
  ``out_proj`` ``(D_inner, d_model)`` (Flax ``(in, out)`` kernels: PyTorch weights
  transposed), plus ``ssm/rel_a (d_rel, D_inner)``, ``ssm/rel_b (d_rel, N)`` or
  ``ssm/rel_full (d_rel, D_inner N)`` with ``injection``.

  Decode: ``cache = module.init_cache(batch)`` then
  ``y_t, cache = module.apply(variables, x_t, cache, method=Mamba.step)`` token by token
  equals ``module.apply(variables, x)`` (spec Sec. 6.2); ``__call__(..., return_cache=True)``
  gives the cache after a prompt.

  Attributes:
    d_model: model width.
    d_state: state size ``N`` per channel (16).
    d_conv: causal conv width (4).
    expand: ``D_inner = expand * d_model`` (2).
    dt_rank: ``R``, ``"auto"`` = ``ceil(d_model / 16)``.
    dt_min, dt_max, dt_init_floor: range and floor of the initial ``Delta`` (1e-3, 0.1, 1e-4).
    dt_init: ``"random"`` or ``"constant"`` dt_proj weight init; dt_scale scales it.
    conv_bias: bias in the conv (True). bias: bias in in_proj and out_proj (False).
    injection: ``None``, ``"outer"`` or ``"full"`` eq. (5) state injection from ``rel``.
    scan_method: ``selective_scan`` method (None: its backend default), chunk_size its
      chunk length; discretization: ``"mamba"`` (reference) or ``"zoh"`` (eq. 2).
    dtype: compute dtype of projections and conv (None: from inputs and params); the scan
      runs in float32 (float64 for float64 inputs). param_dtype: dtype of the projection/conv
      parameters (``A_log``, ``D`` and ``dt_bias`` are always float32, as in the reference).
    precision: ``lax.Precision`` of the linear maps (``flax.linen.Dense``'s).
  """

  def setup(self):
    self._projections()
    self.ssm = self._branch("ssm")

  def __call__(self, x, rel=None, mask=None, *, return_cache: bool = False):
    """Applies the block.

    Args:
      x: float ``(batch, L, d_model)``.
      rel: ``(batch, L, d_rel)``, embedding of ``r_{t,t-1}`` for token ``t`` (zeros where
        there is none, e.g. ``t = 0``); required iff ``injection`` is set.
      mask: ``(batch, L)``, 1 for real tokens, 0 for padding (see the module docstring).
      return_cache: also return the :class:`MambaCache` after the last token, to continue
        with :meth:`step`.

    Returns:
      ``(batch, L, d_model)`` (and the cache).
    """
    x, mask = self._check_inputs(x, mask)
    if rel is not None:
      rel = _check_rel("rel", rel, x.shape[:2])
    xi, z = self._split(x)
    out = self.ssm(xi, z, rel, mask, return_state=return_cache)
    if not return_cache:
      return self._finish(out, mask)
    y, cache = out
    return self._finish(y, mask), cache

  def init_cache(self, batch_size: int, dtype: Any = jnp.float32) -> MambaCache:
    """Zero state: ``conv_state (batch, D_inner, d_conv)`` in ``dtype``, ``ssm_state
    (batch, D_inner, N)`` float32. Needs no parameters (callable on an unbound module)."""
    return MambaCache(
        conv_state=jnp.zeros((batch_size, self.d_inner, self.d_conv), dtype),
        ssm_state=jnp.zeros((batch_size, self.d_inner, self.d_state), jnp.float32))

  def step(self, x_t, cache: MambaCache, rel_t=None):
    """One decode step: ``x_t`` ``(batch, d_model)`` -> ``(y_t (batch, d_model), cache)``.

    ``rel_t`` ``(batch, d_rel)`` is row ``t`` of ``rel``; required iff ``injection`` is set.
    """
    x_t = jnp.asarray(x_t)
    if x_t.ndim != 2 or x_t.shape[-1] != self.d_model:
      raise ValueError(f"Mamba.step: `x_t` must have shape (batch, {self.d_model}); "
                       f"found {x_t.shape}.")
    want = (x_t.shape[0], self.d_inner)
    if cache.conv_state.shape != want + (self.d_conv,):
      raise ValueError(f"Mamba.step: `cache.conv_state` must have shape {want + (self.d_conv,)};"
                       f" found {cache.conv_state.shape}.")
    if cache.ssm_state.shape != want + (self.d_state,):
      raise ValueError(f"Mamba.step: `cache.ssm_state` must have shape "
                       f"{want + (self.d_state,)}; found {cache.ssm_state.shape}.")
    if rel_t is not None:
      rel_t = _check_rel("rel_t", rel_t, x_t.shape[:1])
    xi, z = self._split(x_t)
    y, cache = self.ssm.step(xi, z, cache, rel_t)
    return self.out_proj(y), cache


class BiMamba(_MambaBlock):
  """Bidirectional Mamba, Vision Mamba "v2" (hustvl/Vim ``bimamba_type="v2"``).

  ``(x, z) = in_proj(u)``; ``y_f = SSM_f(x, z)``; ``y_b = SSM_b(flip(x), flip(z))`` with the
  backward branch's own conv1d, x_proj, dt_proj, A_log and D; output
  ``out_proj(y_f + flip(y_b))`` (``/ 2`` with ``divide_out``). So with ``bias=False``,
  ``BiMamba(u) = Mamba_f(u) + flip(Mamba_b(flip(u)))`` where ``Mamba_f`` / ``Mamba_b`` are
  :class:`Mamba` blocks with the shared projections and the ``ssm`` / ``ssm_backward``
  branch. The output at ``t`` depends on every token. Fields as :class:`Mamba`, plus
  ``divide_out``.
  """
  divide_out: bool = False

  def setup(self):
    self._projections()
    self.ssm = self._branch("ssm")
    self.ssm_backward = self._branch("ssm_backward")

  def __call__(self, x, rel=None, rel_reverse=None, mask=None):
    """Applies the block.

    Args:
      x: float ``(batch, L, d_model)``.
      rel: ``(batch, L, d_rel)``, ``r_{t,t-1}`` of token ``t`` for the forward branch.
      rel_reverse: ``(batch, L, d_rel)``, ``r_{t,t+1}`` of token ``t`` (row ``t``, in the
        original order) for the backward branch. Both are required iff ``injection`` is set.
      mask: ``(batch, L)``, 1 for real tokens.

    Returns:
      ``(batch, L, d_model)``.
    """
    x, mask = self._check_inputs(x, mask)
    if rel is not None:
      rel = _check_rel("rel", rel, x.shape[:2])
    if rel_reverse is not None:
      rel_reverse = _check_rel("rel_reverse", rel_reverse, x.shape[:2])
    xi, z = self._split(x)
    flip = lambda t: None if t is None else jnp.flip(t, axis=1)
    y_f = self.ssm(xi, z, rel, mask)
    y_b = self.ssm_backward(flip(xi), flip(z), flip(rel_reverse), flip(mask),
                            rel_name="rel_reverse")
    y = y_f + flip(y_b)
    if self.divide_out:
      y = y / 2
    return self._finish(y, mask)
