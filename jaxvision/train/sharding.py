"""Meshes and shardings: batches over ``data``, parameters replicated or FSDP-sharded.

Everything runs under ``jax.jit`` with explicit ``in/out_shardings`` (no pmap):

* :func:`make_mesh` builds the device mesh from ``config.mesh``;
* :func:`batch_sharding` splits the leading (batch) axis over ``data``;
* :func:`state_shardings` maps every leaf of the train state to a sharding by
  the rule in ``config.sharding``: ``replicate`` (default), or ``fsdp``, which
  shards each array with at least ``fsdp_min_size`` elements along its largest
  axis divisible by the ``data`` axis size (ZeRO-3 / FSDP style: parameters,
  their optimizer moments and gradients live in 1/n shards; XLA inserts the
  all-gathers and reduce-scatters).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def make_mesh(axes: Sequence[tuple[str, int]] = ((DATA_AXIS, -1),), num_devices: int = 0,
              devices: Sequence[jax.Device] | None = None) -> jax.sharding.Mesh:
  """A mesh over the first ``num_devices`` devices (0 = all) with named ``axes``.

  One axis size may be -1: it takes the remaining devices. The mesh must have a
  ``data`` axis (the batch axis).
  """
  devices = list(devices if devices is not None else jax.devices())
  if num_devices:
    if num_devices > len(devices):
      raise ValueError(f"mesh.num_devices={num_devices} but only {len(devices)} devices exist.")
    devices = devices[:num_devices]
  names = tuple(a[0] for a in axes)
  sizes = [int(a[1]) for a in axes]
  if DATA_AXIS not in names:
    raise ValueError(f"mesh.axes must include a {DATA_AXIS!r} axis; found {names}.")
  if sizes.count(-1) > 1:
    raise ValueError(f"mesh.axes may have at most one -1 size; found {tuple(axes)}.")
  known = math.prod(s for s in sizes if s != -1)
  if -1 in sizes:
    if len(devices) % known:
      raise ValueError(f"mesh.axes {tuple(axes)} do not divide the {len(devices)} devices.")
    sizes[sizes.index(-1)] = len(devices) // known
  if math.prod(sizes) != len(devices):
    raise ValueError(f"mesh.axes {tuple(axes)} need {math.prod(sizes)} devices; "
                     f"{len(devices)} are in use.")
  axis_types = (jax.sharding.AxisType.Auto,) * len(names)
  return jax.make_mesh(tuple(sizes), names, axis_types=axis_types, devices=devices)


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharding(mesh: jax.sharding.Mesh) -> NamedSharding:
  """Leading axis split over ``data``, the rest replicated."""
  return NamedSharding(mesh, P(DATA_AXIS))


def fsdp_spec(shape: Sequence[int], axis_size: int, min_size: int) -> P:
  """``P`` sharding the largest ``axis_size``-divisible dim of ``shape`` over ``data``
  when the array has at least ``min_size`` elements; else replicated."""
  if axis_size <= 1 or math.prod(shape) < min_size:
    return P()
  for dim in np.argsort(shape)[::-1]:
    if shape[dim] % axis_size == 0:
      spec = [None] * len(shape)
      spec[dim] = DATA_AXIS
      return P(*spec)
  return P()


def state_shardings(abstract_state: Any, mesh: jax.sharding.Mesh, strategy: str = "replicate",
                    fsdp_min_size: int = 2**18) -> Any:
  """A pytree of ``NamedSharding`` matching ``abstract_state`` (see module docstring)."""
  if strategy == "replicate":
    return jax.tree.map(lambda _: replicated(mesh), abstract_state)
  if strategy == "fsdp":
    n = mesh.shape[DATA_AXIS]
    return jax.tree.map(lambda x: NamedSharding(mesh, fsdp_spec(x.shape, n, fsdp_min_size)),
                        abstract_state)
  raise ValueError(f"sharding.strategy must be 'replicate' or 'fsdp'; found {strategy!r}.")


def with_shardings(abstract_state: Any, shardings: Any) -> Any:
  """``ShapeDtypeStruct`` leaves carrying the target shardings (orbax restore targets)."""
  return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                      abstract_state, shardings)
