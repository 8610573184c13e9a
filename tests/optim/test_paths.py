"""Path-selected parameters: masks, learning-rate multipliers, and their factory wiring."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxvision import optim
from tests.helpers import optimizer_config


def _params():
  k = jax.random.split(jax.random.PRNGKey(0), 3)
  return {"backbone": {"conv": {"kernel": jax.random.normal(k[0], (3, 3, 2, 4))},
                       "bn": {"scale": jnp.ones((4,))}},
          "head": {"kernel": jax.random.normal(k[1], (4, 1)), "bias": jnp.zeros((1,))}}


def test_path_multipliers_first_match_wins_and_default_is_one():
  factors = optim.path_multipliers(_params(), {"^backbone/conv": 0.5, "^backbone/": 0.1})
  assert factors["backbone"]["conv"]["kernel"] == 0.5
  assert factors["backbone"]["bn"]["scale"] == 0.1
  assert factors["head"]["kernel"] == 1.0 and factors["head"]["bias"] == 1.0


@pytest.mark.parametrize("name,kwargs", [("adam", {}), ("sgd", dict(momentum=0.9)),
                                         ("adamw", {})])
def test_multiplier_equals_a_separately_run_optimizer_at_the_scaled_rate(name, kwargs):
  """PyTorch parameter groups: the backbone at 0.1 x lr is the same optimizer at lr/10."""
  params = _params()
  grads = [jax.tree.map(lambda p, i=i: jnp.sin(p * (i + 1.0)) + 0.1, params) for i in range(4)]
  cfg = optimizer_config(name=name, learning_rate=1e-2, schedule="constant", weight_decay=1e-3,
                         kwargs=kwargs, lr_multipliers={"^backbone/": 0.1})
  tx, _ = optim.create_optimizer(cfg, total_steps=10)
  slow, _ = optim.create_optimizer(optimizer_config(name=name, learning_rate=1e-3,
                                                    schedule="constant", weight_decay=1e-3,
                                                    kwargs=kwargs), total_steps=10)
  fast, _ = optim.create_optimizer(optimizer_config(name=name, learning_rate=1e-2,
                                                    schedule="constant", weight_decay=1e-3,
                                                    kwargs=kwargs), total_steps=10)
  runs = {}
  for key, opt in (("grouped", tx), ("slow", slow), ("fast", fast)):
    p, s = params, opt.init(params)
    for g in grads:
      u, s = opt.update(g, s, p)
      p = optax.apply_updates(p, u)
    runs[key] = p
  np.testing.assert_allclose(runs["grouped"]["backbone"]["conv"]["kernel"],
                             runs["slow"]["backbone"]["conv"]["kernel"], rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(runs["grouped"]["head"]["kernel"], runs["fast"]["head"]["kernel"],
                             rtol=1e-6, atol=1e-7)
  assert not np.allclose(runs["slow"]["head"]["kernel"], runs["fast"]["head"]["kernel"])


def test_zero_multiplier_freezes_the_group():
  params = _params()
  tx = optax.chain(optax.adam(1e-2), optim.scale_by_path({"^backbone/": 0.0}))
  g = jax.tree.map(jnp.ones_like, params)
  updates, _ = tx.update(g, tx.init(params), params)
  assert all(np.all(u == 0) for u in jax.tree.leaves(updates["backbone"]))
  assert np.all(updates["head"]["kernel"] != 0)


def test_bad_multipliers_fail_at_init_naming_the_pattern():
  with pytest.raises(ValueError, match="'\\^encoder/' matches no parameter"):
    optim.scale_by_path({"^encoder/": 0.1}).init(_params())
  with pytest.raises(ValueError, match=">= 0"):
    optim.scale_by_path({"^backbone/": -1.0}).init(_params())
  with pytest.raises(ValueError, match="not a valid regex"):
    optim.scale_by_path({"(": 0.1}).init(_params())


def test_path_mask_selects_by_regex():
  mask = optim.path_mask(_params(), "kernel$")
  assert mask["backbone"]["conv"]["kernel"] and mask["head"]["kernel"]
  assert not mask["backbone"]["bn"]["scale"] and not mask["head"]["bias"]
