"""Mesh construction and sharding rules."""

import jax
import jax.numpy as jnp
import pytest
from jax.sharding import PartitionSpec as P

from jaxvision.train import sharding as sharding_lib


def test_make_mesh_sizes_and_errors():
  assert sharding_lib.make_mesh().shape == {"data": 8}
  assert sharding_lib.make_mesh(num_devices=2).shape == {"data": 2}
  two_d = sharding_lib.make_mesh((("data", -1), ("model", 2)))
  assert two_d.shape == {"data": 4, "model": 2}
  with pytest.raises(ValueError, match="'data' axis"):
    sharding_lib.make_mesh((("model", -1),))
  with pytest.raises(ValueError, match="need 6 devices"):
    sharding_lib.make_mesh((("data", 6),))
  with pytest.raises(ValueError, match="only 8 devices"):
    sharding_lib.make_mesh(num_devices=9)


def test_fsdp_spec_picks_largest_divisible_axis():
  assert sharding_lib.fsdp_spec((3, 3, 64, 128), 8, 1) == P(None, None, None, "data")
  assert sharding_lib.fsdp_spec((3, 3, 64, 100), 8, 1) == P(None, None, "data", None)
  assert sharding_lib.fsdp_spec((7, 9), 8, 1) == P()
  assert sharding_lib.fsdp_spec((64, 128), 8, 10**6) == P()  # too small to shard


def test_state_shardings_replicate_and_fsdp():
  mesh = sharding_lib.make_mesh()
  tree = {"big": jax.ShapeDtypeStruct((16, 64), jnp.float32),
          "small": jax.ShapeDtypeStruct((3,), jnp.float32)}
  repl = sharding_lib.state_shardings(tree, mesh)
  assert all(s.spec == P() for s in jax.tree.leaves(repl))
  fsdp = sharding_lib.state_shardings(tree, mesh, "fsdp", fsdp_min_size=64)
  assert fsdp["big"].spec == P(None, "data") and fsdp["small"].spec == P()
  with pytest.raises(ValueError, match="strategy"):
    sharding_lib.state_shardings(tree, mesh, "zero")
