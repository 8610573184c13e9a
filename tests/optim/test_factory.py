"""Optimizers and schedules against hand-computed closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxvision import optim
from tests.helpers import optimizer_config


def _opt_config(**kw):
  """The engine's default optimizer section with this file's base settings and ``kw``."""
  return optimizer_config(**{**dict(name="sgd", schedule="constant", weight_decay=0.0), **kw})


def test_warmup_then_cosine_schedule_closed_form():
  sched = optim.create_schedule("cosine", learning_rate=1.0, total_steps=110, warmup_steps=10,
                                end_lr_factor=0.1)
  assert float(sched(0)) == 0.0 and float(sched(5)) == pytest.approx(0.5)
  for t in (10, 35, 60, 110):
    frac = (t - 10) / 100
    expected = 0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * frac))
    assert float(sched(t)) == pytest.approx(expected, rel=1e-5)
  step = optim.create_schedule("step", learning_rate=1.0, total_steps=100, every_steps=30,
                               factor=0.5)
  assert [float(step(t)) for t in (0, 29, 30, 59, 60, 99)] == pytest.approx(
      [1, 1, 0.5, 0.5, 0.25, 0.125])
  with pytest.raises(TypeError, match="schedule_kwargs"):
    optim.create_schedule("cosine", learning_rate=1.0, total_steps=10, every_steps=3)
  lin = optim.create_schedule("linear", learning_rate=2.0, total_steps=4)
  assert [float(lin(t)) for t in range(5)] == pytest.approx([2.0, 1.5, 1.0, 0.5, 0.0])


def test_sgd_matches_pytorch_update_rule_with_masked_decay():
  # PyTorch SGD: g <- g + wd * w; buf <- mu * buf + g; w <- w - lr * buf (nesterov: g + mu*buf).
  params = {"kernel": jnp.array([[1.0, -2.0]]), "bias": jnp.array([0.5])}
  grads = [{"kernel": jnp.array([[0.3, 0.1]]), "bias": jnp.array([1.0])},
           {"kernel": jnp.array([[-0.2, 0.4]]), "bias": jnp.array([-1.0])}]
  lr, mu, wd = 0.1, 0.9, 0.01
  for nesterov in (False, True):
    tx, _ = optim.create_optimizer(_opt_config(learning_rate=lr, weight_decay=wd,
                                               kwargs=dict(momentum=mu, nesterov=nesterov)), 10)
    state, p = tx.init(params), params
    ref = {k: np.asarray(v, np.float64) for k, v in params.items()}
    buf = {k: np.zeros_like(v) for k, v in ref.items()}
    for g in grads:
      updates, state = tx.update(g, state, p)
      p = optax.apply_updates(p, updates)
      for k in ref:
        gk = np.asarray(g[k], np.float64) + (wd * ref[k] if k == "kernel" else 0.0)
        buf[k] = mu * buf[k] + gk
        ref[k] = ref[k] - lr * ((gk + mu * buf[k]) if nesterov else buf[k])
    for k in ref:
      np.testing.assert_allclose(p[k], ref[k], rtol=1e-6)


def test_adamw_decoupled_decay_and_clipping():
  params = {"w": jnp.ones((2, 2))}
  zero = {"w": jnp.zeros((2, 2))}
  tx, _ = optim.create_optimizer(_opt_config(name="adamw", learning_rate=0.5,
                                             weight_decay=0.1), 10)
  updates, _ = tx.update(zero, tx.init(params), params)
  np.testing.assert_allclose(updates["w"], -0.5 * 0.1 * np.ones((2, 2)), rtol=1e-6)
  tx, _ = optim.create_optimizer(_opt_config(learning_rate=1.0, grad_clip_norm=1.0,
                                             kwargs=dict(momentum=0.0)), 10)
  big = {"w": jnp.full((2, 2), 10.0)}
  updates, _ = tx.update(big, tx.init(params), params)
  assert float(optax.global_norm(updates)) == pytest.approx(1.0, rel=1e-5)


def test_decay_mask_and_bad_options():
  mask = optim.matrix_params_mask({"kernel": jnp.ones((2, 3)), "scale": jnp.ones(3)})
  assert mask == {"kernel": True, "scale": False}
  with pytest.raises(TypeError, match="optimizer.kwargs"):
    optim.create_optimizer(_opt_config(kwargs=dict(beta=0.9)), 10)
  with pytest.raises(KeyError, match="unknown schedule"):
    optim.create_optimizer(_opt_config(schedule="exp"), 10)
  with pytest.raises(ValueError, match="warmup_steps"):
    optim.create_optimizer(_opt_config(warmup_steps=20), 10)
  with pytest.raises(KeyError, match="unknown optimizer"):
    optim.create_optimizer(_opt_config(name="lion"), 10)


def test_optimizer_is_jittable():
  tx, _ = optim.create_optimizer(_opt_config(weight_decay=1e-3,
                                             kwargs=dict(momentum=0.9)), 10)
  params = {"w": jnp.ones((3, 3))}
  step = jax.jit(lambda g, s, p: tx.update(g, s, p))
  updates, _ = step(params, tx.init(params), params)
  assert updates["w"].shape == (3, 3)
