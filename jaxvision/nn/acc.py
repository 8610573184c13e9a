"""The Adjacent Channel Coupler as a Linen layer (spec spectral-transformer-ising Sec. 2, eq. 4).

A thin layer over :mod:`jaxvision.ops.acc`: it owns the per-channel 3x3 kernels and biases
and calls :func:`jaxvision.ops.adjacent_channel_coupler` (or one of the two associative
variants, which are different models).
"""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxvision.ops.acc import (
    ACC_SOLVERS,
    ACCParams,
    adjacent_channel_coupler,
    circular_linear_coupler,
    gated_linear_coupler,
)

__all__ = ["ACC_VARIANTS", "AdjacentChannelCoupler", "uniform_init"]

ACC_VARIANTS = ("acc", "gated_linear", "circular_linear")


def uniform_init(bound: float) -> Callable:
  """``U(-bound, bound)``, a Flax initializer ``(key, shape, dtype) -> array``."""
  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)
  return init


class AdjacentChannelCoupler(nn.Module):
  """Channel recurrence of eq. (4): ``(B, H, W, C) -> (B, H, W, C)``, ``C`` taken from ``x``.

  ``variant="acc"`` (default) is eq. (4) with the spec's two-chain resolution, solved by
  ``solver`` (``"scan"``, exact and the fastest on CPU; ``"jacobi"``/``"quasi_deer"``:
  exact after ``C`` sweeps, approximate with ``num_iters < C`` or ``tol``; ``"implicit"``:
  **a different model**, the literal coupled system). ``"gated_linear"`` and
  ``"circular_linear"`` are the associative (linearised) variants, **different models**
  solved in depth ``O(log C)``; they take no ``solver``. Details:
  :mod:`jaxvision.ops.acc`.

  Parameters (``D = 2`` for ``directions="both"``, else 1; index 0 forward, 1 backward):
  ``f_kernel``, ``g_kernel``, ``h_kernel`` of shape ``(D, C, 3, 3)`` and ``f_bias``,
  ``g_bias``, ``h_bias`` of shape ``(D, C)``: ``54 C`` weights and ``6 C`` biases with both
  directions (``"gated_linear"`` has no ``h``: ``36 C + 4 C``).

  Initialisation (``kernel_init``, ``bias_init``): ``U(-1/3, 1/3)``, PyTorch's ``Conv2d``
  default (``kaiming_uniform(a=sqrt(5))`` = ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, the
  same bound for the bias) for a single-channel 3x3 kernel, ``fan_in = 9``; it is also the
  ``U(-1/k, 1/k)``, ``k = 3``, that Lemma 3 assumes. ``"circular_linear"`` draws ``h`` from
  ``U(-1/27, 1/27)`` instead (``h_kernel_init``), so ``sum |w^h| <= 1/3`` bounds every DFT
  coefficient of the linear transition by 1/3 and the chain cannot blow up.

  Attributes:
    variant: ``"acc"``, ``"gated_linear"`` or ``"circular_linear"``.
    solver: for ``"acc"``: one of ``jaxvision.ops.ACC_SOLVERS``.
    directions: ``"both"``, ``"forward"`` or ``"backward"``.
    boundary: ``"zero"`` or ``"input"`` (``Y_0`` / ``Y_{C+1}``).
    num_iters: sweeps of the iterative solvers (``None``: ``C``); ignored by ``"scan"``.
    tol: early-stopping tolerance of the iterative solvers; ignored by ``"scan"``.
    implicit_sweep: ``"jacobi"`` or ``"gauss_seidel"`` (``solver="implicit"``).
    differentiation: ``"implicit"`` or ``"unrolled"`` (iterative solvers).
    method: for the associative variants: ``None`` (``"associative"`` / ``"fft"``) or
      ``"sequential"`` (their reference loops).
    dtype: the input/output dtype (``None``: that of ``x``); the kernels compute in
      ``promote(dtype, param_dtype, float32)``.
    param_dtype: the parameters' dtype.
    kernel_init, bias_init, h_kernel_init: initializers (``h_kernel_init=None``: see above).
  """
  variant: str = "acc"
  solver: str = "scan"
  directions: str = "both"
  boundary: str = "zero"
  num_iters: int | None = None
  tol: float | None = None
  implicit_sweep: str = "jacobi"
  differentiation: str = "implicit"
  method: str | None = None
  dtype: Any = None
  param_dtype: Any = jnp.float32
  kernel_init: Callable = uniform_init(1.0 / 3.0)
  bias_init: Callable = uniform_init(1.0 / 3.0)
  h_kernel_init: Callable | None = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """Applies the coupler.

    Args:
      x: float ``(B, H, W, C)`` (or ``(H, W, C)``), channel-last.

    Returns:
      ``Y``, the shape of ``x``, in ``dtype`` (``x``'s dtype when ``None``).
    """
    name = type(self).__name__
    x = jnp.asarray(x)
    if x.ndim not in (3, 4):
      raise ValueError(f"{name}: `x` must have shape (B, H, W, C) or (H, W, C); found "
                       f"{x.shape}.")
    if self.variant not in ACC_VARIANTS:
      raise ValueError(f"{name}: `variant` must be one of {ACC_VARIANTS}; found "
                       f"{self.variant!r}.")
    if self.variant != "acc" and self.solver != "scan":
      raise ValueError(f"{name}: `solver` applies to variant='acc' only ({self.variant!r} is "
                       f"an associative variant; use `method`); found solver={self.solver!r}.")
    if self.variant == "acc" and self.solver not in ACC_SOLVERS:
      raise ValueError(f"{name}: `solver` must be one of {ACC_SOLVERS}; found "
                       f"{self.solver!r}.")
    if self.variant == "acc" and self.method is not None:
      raise ValueError(f"{name}: `method` is for the associative variants; variant='acc' "
                       f"uses `solver` (found method={self.method!r}).")
    c = x.shape[-1]
    d = 2 if self.directions == "both" else 1
    with_h = self.variant != "gated_linear"
    h_init = self.h_kernel_init
    if h_init is None:
      h_init = uniform_init(1.0 / 27.0) if self.variant == "circular_linear" else \
          self.kernel_init
    ks, bs = (d, c, 3, 3), (d, c)
    pd = self.param_dtype
    params = ACCParams(
        self.param("f_kernel", self.kernel_init, ks, pd),
        self.param("g_kernel", self.kernel_init, ks, pd),
        self.param("h_kernel", h_init, ks, pd) if with_h else None,
        self.param("f_bias", self.bias_init, bs, pd),
        self.param("g_bias", self.bias_init, bs, pd),
        self.param("h_bias", self.bias_init, bs, pd) if with_h else None)
    out_dtype = x.dtype if self.dtype is None else self.dtype
    x = x.astype(out_dtype)
    opts = dict(directions=self.directions, boundary=self.boundary)
    if self.variant == "acc":
      iterative = self.solver != "scan"
      y = adjacent_channel_coupler(
          x, params, solver=self.solver, num_iters=self.num_iters if iterative else None,
          tol=self.tol if iterative else None, implicit_sweep=self.implicit_sweep,
          differentiation=self.differentiation, **opts)
    elif self.variant == "gated_linear":
      y = gated_linear_coupler(x, params, method=self.method or "associative", **opts)
    else:
      y = circular_linear_coupler(x, params, method=self.method or "fft", **opts)
    return y.astype(out_dtype)
