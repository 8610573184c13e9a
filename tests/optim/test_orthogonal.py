"""NOG, OLR and sgd_torch (Song et al., ECCV 2022, Sec. 5) against closed forms and PyTorch."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import optimize

from jaxvision import ops, optim
from tests.helpers import optimizer_config


def _np_polar(m):
  u, _, vt = np.linalg.svd(m, full_matrices=False)
  return u @ vt


def _np_torch_matrix(k):
  """HWIO kernel -> PyTorch's OIHW ``weight.reshape(out, -1)``; (in, out) -> (out, in)."""
  if k.ndim == 2:
    return k.T
  return np.transpose(k, (3, 2, 0, 1)).reshape(k.shape[-1], -1)


def _np_nog(k):
  if k.ndim == 2:
    return _np_polar(k.T).T
  kh, kw, cin, cout = k.shape
  return _np_polar(_np_torch_matrix(k)).reshape(cout, cin, kh, kw).transpose(2, 3, 1, 0)


def _np_eta(w, g):
  w, g = w.ravel(), g.ravel()
  wtw, ltw, ltl = w @ w, g @ w, g @ g
  return wtw * ltw / (wtw * ltl + 2 * ltw * ltw)


def _nog(g, **kw):
  tx = optim.nearest_orthogonal_gradient(**kw)
  out, _ = tx.update(g, tx.init(g))
  return out


# ------------------------------------------------------------------------------ path_mask


def test_path_mask_matches_slash_joined_paths():
  params = {"params": {"stem_conv": {"kernel": jnp.ones((3, 3, 3, 8)), "bias": jnp.ones(8)},
                       "blocks": [{"conv": {"kernel": jnp.ones((1, 1, 8, 8))}}]}}
  assert optim.path_mask(params, "stem_conv") == {
      "params": {"stem_conv": {"kernel": True, "bias": True},
                 "blocks": [{"conv": {"kernel": False}}]}}
  m = optim.path_mask(params, r"stem_conv/kernel$|blocks/0/conv")
  assert jax.tree.leaves(m) == [True, False, True]  # leaves in key order: blocks, bias, kernel
  with pytest.raises(ValueError, match="`pattern`.*not a valid regex"):
    optim.path_mask(params, "stem[")


# ------------------------------------------------------------------------------ NOG (eqs. 14-17)


@pytest.mark.parametrize("shape", [(3, 6), (6, 3), (5, 5)])  # Dense (in, out): wide, tall, square
def test_nog_is_the_polar_factor(shape):
  with jax.enable_x64(True):
    g = jax.random.normal(jax.random.PRNGKey(0), shape, jnp.float64)
    r = np.asarray(_nog({"k": g})["k"])
    gm, rm = np.asarray(g).T, r.T                       # matrix views (out, in)
    np.testing.assert_allclose(rm, _np_polar(gm), atol=1e-12)
    small = min(gm.shape)
    gram = rm.T @ rm if gm.shape[0] >= gm.shape[1] else rm @ rm.T   # R^T R (tall), R R^T (wide)
    np.testing.assert_allclose(gram, np.eye(small), atol=1e-12)
    s_r = np.linalg.svd(rm, compute_uv=False)
    assert s_r.max() / s_r.min() == pytest.approx(1.0, abs=1e-12)   # kappa(R) = 1
    nuclear = np.linalg.svd(gm, compute_uv=False).sum()
    assert np.sum(gm * rm) == pytest.approx(nuclear, rel=1e-12) and nuclear > 0
    # Erratum (Sec. 5.1): a descent direction, but not the gradient's direction.
    cos = np.sum(gm * rm) / (np.linalg.norm(gm) * np.linalg.norm(rm))
    assert 0 < cos < 0.99
    for scale in (1e-6, 3.7, 1e4):                      # invariant to positive scaling
      np.testing.assert_allclose(_nog({"k": scale * g})["k"], r, atol=1e-10)


def test_nog_newton_schulz_matches_svd():
  rng = np.random.default_rng(9)
  q1, _ = np.linalg.qr(rng.standard_normal((18, 5)))
  q2, _ = np.linalg.qr(rng.standard_normal((5, 5)))
  m = (q1 * np.linspace(0.5, 2.0, 5)) @ q2.T                     # (18, 5), kappa = 4
  k = jnp.asarray(m.T.reshape(5, 2, 3, 3).transpose(2, 3, 1, 0), jnp.float32)   # HWIO (3,3,2,5)
  ns = _nog({"k": k}, method="newton_schulz", num_iters=30)["k"]
  np.testing.assert_allclose(ns, _nog({"k": k})["k"], atol=1e-5)
  tx = optim.sgd_torch(1.0, momentum=0.0, nog_mask=True, nog_method="newton_schulz",
                       num_iters=30)
  updates, _ = tx.update({"k": k}, tx.init({"k": k}))
  np.testing.assert_allclose(updates["k"], -ns, atol=1e-6)


def test_nog_is_frobenius_nearest_semi_orthogonal():
  rng = np.random.default_rng(0)
  g = rng.standard_normal((4, 6))                       # Dense (in=4, out=6): matrix (6, 4)
  r = np.asarray(_nog({"k": jnp.asarray(g, jnp.float32)})["k"])
  best = np.linalg.norm(g - r)
  for _ in range(200):
    q, _ = np.linalg.qr(rng.standard_normal((6, 4)))    # random (6, 4) with Q^T Q = I
    assert np.linalg.norm(g - q.T) >= best - 1e-5


def test_nog_conv_kernel_matches_pytorch_oihw_reshape():
  rng = np.random.default_rng(1)
  k = rng.standard_normal((3, 3, 2, 5))                 # HWIO: matrix (5, 2*3*3 = 18)
  with jax.enable_x64(True):
    np.testing.assert_array_equal(ops.kernel_to_matrix(jnp.asarray(k)), _np_torch_matrix(k))
    np.testing.assert_array_equal(
        ops.matrix_to_kernel(ops.kernel_to_matrix(jnp.asarray(k)), k.shape), k)
    out = _nog({"conv": jnp.asarray(k)})["conv"]
  np.testing.assert_allclose(out, _np_nog(k), atol=1e-12)
  tall = rng.standard_normal((1, 1, 16, 3)).astype(np.float32)   # matrix (3, 16); (64, 27)-like
  out = _nog({"conv": jnp.asarray(tall)})["conv"]                # the other way round
  assert out.dtype == jnp.float32 and out.shape == tall.shape
  np.testing.assert_allclose(out, _np_nog(tall.astype(np.float64)), atol=1e-5)


def test_nog_mask_leaves_unselected_params_and_zero_gradient_is_finite():
  rng = np.random.default_rng(2)
  grads = {"stem_conv": {"kernel": jnp.zeros((3, 3, 3, 4)), "bias": jnp.ones(4)},
           "head": {"kernel": jnp.asarray(rng.standard_normal((4, 3)), jnp.float32)}}
  tx = optim.nearest_orthogonal_gradient(lambda p: optim.path_mask(p, "stem_conv/kernel"))
  out, _ = jax.jit(tx.update)(grads, tx.init(grads))
  np.testing.assert_array_equal(out["stem_conv"]["kernel"], 0.0)    # zero gradient: no NaN
  np.testing.assert_array_equal(out["stem_conv"]["bias"], grads["stem_conv"]["bias"])
  np.testing.assert_array_equal(out["head"]["kernel"], grads["head"]["kernel"])
  everything = _nog(grads)                                           # mask None: all ndim >= 2
  np.testing.assert_array_equal(everything["stem_conv"]["bias"], 1.0)
  np.testing.assert_allclose(everything["head"]["kernel"],
                             _np_nog(np.asarray(grads["head"]["kernel"], np.float64)), atol=1e-5)
  pytree_mask = {"stem_conv": False, "head": {"kernel": True}}       # a prefix mask
  out = _nog(grads, mask=pytree_mask)
  np.testing.assert_array_equal(out["stem_conv"]["bias"], 1.0)
  np.testing.assert_allclose(out["head"]["kernel"], everything["head"]["kernel"], atol=1e-6)
  with pytest.raises(ValueError, match="stem_conv/bias.*ndim >= 2.*found shape"):
    _nog(grads, mask=lambda p: optim.path_mask(p, "stem_conv"))
  with pytest.raises(ValueError, match="`method`"):
    optim.nearest_orthogonal_gradient(method="qr")


# ------------------------------------------------------------------------------ OLR (eqs. 18-21)


def test_optimal_lr_is_the_minimiser_of_the_truncated_quartic():
  rng = np.random.default_rng(3)
  with jax.enable_x64(True):
    for sign in (1.0, -1.0):
      w = rng.standard_normal((3, 3, 2, 4))
      g = sign * 0.5 * w + rng.standard_normal(w.shape)
      eta = float(optim.optimal_learning_rate(jnp.asarray(w), jnp.asarray(g)))
      assert eta == pytest.approx(_np_eta(w, g), rel=1e-12)
      a, b, c = np.sum(w * w), np.sum(g * w), np.sum(g * g)
      # f(eta) = ||w - eta g||^4; its 2nd-order Taylor truncation at 0 is minimised by eta*.
      truncated = lambda e, a=a, b=b, c=c: a * a - 4 * a * b * e + (2 * a * c + 4 * b * b) * e * e
      res = optimize.minimize_scalar(truncated, bracket=(-1.0, 1.0), tol=1e-12)
      assert res.x == pytest.approx(eta, rel=1e-6)
      # ... i.e. one Newton step on f from eta = 0 (autodiff of f).
      f = lambda e: jnp.sum((jnp.asarray(w) - e * jnp.asarray(g)) ** 2) ** 2
      newton = -jax.grad(f)(0.0) / jax.grad(jax.grad(f))(0.0)
      assert float(newton) == pytest.approx(eta, rel=1e-10)
      # Not the minimiser of f itself (b / c), nor of eq. (18) on the matrix view.
      assert abs(eta - b / c) > 1e-3
      wm, gm = _np_torch_matrix(w), _np_torch_matrix(g)
      eq18 = lambda e: np.linalg.norm((wm - e * gm) @ (wm - e * gm).T - np.eye(wm.shape[0]))
      assert abs(optimize.minimize_scalar(eq18, bracket=(-1.0, 1.0)).x - eta) > 1e-3


def test_optimal_lr_for_orthogonal_pairs_proposition_1_erratum():
  n = 16
  rng = np.random.default_rng(4)
  ortho = lambda: np.linalg.qr(rng.standard_normal((n, n)))[0]
  with jax.enable_x64(True):
    eta = lambda w, g: float(optim.optimal_learning_rate(jnp.asarray(w), jnp.asarray(g)))
    w = ortho()
    assert eta(w, w) == pytest.approx(1 / 3, rel=1e-12)               # t = N
    etas = [eta(w, ortho()) for _ in range(200)]
    assert max(etas) <= 1 / (2 * np.sqrt(2))
    # The sup 1/(2 sqrt 2) is attained at t = <G, W> = N / sqrt 2 (W times 45-degree rotations).
    rot = np.kron(np.eye(n // 2), np.array([[1.0, -1.0], [1.0, 1.0]]) / np.sqrt(2))
    assert eta(w, w @ rot) == pytest.approx(1 / (2 * np.sqrt(2)), rel=1e-12)
    # The paper's bounds [1/(N^2+2), N^2/(N^2+2)] do not hold: the max is far below the upper
    # one, and t < 0 gives eta* < 0 < 1/(N^2+2).
    assert 1 / (2 * np.sqrt(2)) < n * n / (n * n + 2) - 0.5
    assert eta(w, -w) == pytest.approx(-1 / 3, rel=1e-12)


def test_olr_switch_returns_scheduled_lr_unless_strictly_between_zero_and_lr():
  eta = jnp.array([-0.1, 0.0, 0.05, 0.1, 0.2, jnp.nan, jnp.inf])
  np.testing.assert_allclose(optim.olr_switch(eta, 0.1), [0.1, 0.1, 0.05, 0.1, 0.1, 0.1, 0.1])
  z = jnp.zeros((3, 3))
  assert float(optim.optimal_learning_rate(jnp.ones((3, 3)), z)) == 0.0  # 0/0 -> 0, no NaN
  assert float(optim.optimal_learning_rate(z, jnp.ones((3, 3)))) == 0.0
  with pytest.raises(ValueError, match="`g` must have the shape of `w`"):
    optim.optimal_learning_rate(jnp.ones((3, 3)), jnp.ones(9))


# ------------------------------------------------------------------------------ sgd_torch


def _np_sgd_torch(params, grads, lrs, *, mu, wd, nesterov, decay, nog=(), olr=()):
  """float64 numpy torch.optim.SGD (dampening 0) with NOG / OLR as in the authors' loop."""
  p = {k: np.asarray(v, np.float64).copy() for k, v in params.items()}
  buf = dict.fromkeys(p)
  used = []
  for g, lr in zip(grads, lrs):
    step_used = {}
    for k in p:
      gk = np.asarray(g[k], np.float64)
      if k in nog:
        gk = _np_nog(gk)
      eta = lr
      if k in olr:
        e = _np_eta(p[k], gk)
        eta = e if 0 < e < lr else lr
      step_used[k] = eta
      d = gk + wd * p[k] if k in decay else gk
      buf[k] = d.copy() if buf[k] is None else mu * buf[k] + d      # torch: first buf = d
      p[k] = p[k] - eta * ((d + mu * buf[k]) if nesterov else buf[k])
    used.append(step_used)
  return p, used


def _run(tx, params, grads, jit=False):
  update = jax.jit(tx.update) if jit else tx.update
  state, p = tx.init(params), params
  for g in grads:
    updates, state = update(g, state, p)
    p = optax.apply_updates(p, updates)
  return p, state


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_torch_matches_numpy_torch_sgd_with_schedule(nesterov):
  rng = np.random.default_rng(5)
  with jax.enable_x64(True):
    params = {"conv": jnp.asarray(0.2 * rng.standard_normal((3, 3, 2, 4))),
              "bias": jnp.asarray(rng.standard_normal(4))}
    grads = [{k: jnp.asarray(rng.standard_normal(v.shape)) for k, v in params.items()}
             for _ in range(3)]
    sched = optax.linear_schedule(0.5, 0.1, 2)
    lrs = [float(sched(jnp.int32(t))) for t in range(3)]  # the state's int32 count
    tx = optim.sgd_torch(sched, momentum=0.9, weight_decay=1e-2, nesterov=nesterov,
                         decay_mask={"conv": True, "bias": False})
    p, state = _run(tx, params, grads)
    ref, _ = _np_sgd_torch(params, grads, lrs, mu=0.9, wd=1e-2, nesterov=nesterov,
                           decay={"conv"})
    for k in ref:
      np.testing.assert_allclose(p[k], ref[k], rtol=1e-12, atol=1e-14)
    assert int(state.count) == 3
    assert float(state.learning_rate["conv"]) == pytest.approx(lrs[-1], rel=1e-6)


def test_sgd_torch_with_nog_and_olr_matches_numpy_reference():
  rng = np.random.default_rng(6)
  with jax.enable_x64(True):
    w = 0.1 * rng.standard_normal((3, 3, 2, 4))
    params = {"conv": jnp.asarray(w), "head": jnp.asarray(rng.standard_normal((4, 3)))}
    noise = lambda s: 0.3 * rng.standard_normal(s)
    # Step 0: g ~ +w (0 < eta* < lr: OLR used); step 1: g ~ -w (eta* < 0: scheduled lr);
    # step 2: lr tiny (eta* >= lr: scheduled lr).
    grads = [{"conv": jnp.asarray(s * w + noise(w.shape)), "head": jnp.asarray(noise((4, 3)))}
             for s in (1.0, -1.0, 1.0)]
    sched = optax.piecewise_constant_schedule(0.5, {2: 1e-4})
    lrs = [float(sched(jnp.int32(t))) for t in range(3)]  # the state's int32 count
    ref, used = _np_sgd_torch(params, grads, lrs, mu=0.9, wd=5e-4, nesterov=False,
                              decay={"conv", "head"}, nog={"conv"}, olr={"conv"})
    assert used[0]["conv"] < lrs[0] and [u["conv"] for u in used[1:]] == lrs[1:]
    conv = lambda p: optim.path_mask(p, "conv")
    tx = optim.sgd_torch(sched, momentum=0.9, weight_decay=5e-4, nog_mask=conv, olr_mask=conv)
    p, state = _run(tx, params, grads, jit=True)
    for k in ref:
      np.testing.assert_allclose(p[k], ref[k], rtol=1e-10, atol=1e-13)
    assert float(state.learning_rate["conv"]) == pytest.approx(lrs[2], rel=1e-6)
    assert float(state.learning_rate["head"]) == pytest.approx(lrs[2], rel=1e-6)
    assert float(state.eta_star["conv"]) > lrs[2] and float(state.eta_star["head"]) == 0.0
    assert optax.tree_utils.tree_get(state, "eta_star") is state.eta_star


def test_sgd_torch_matches_torch_optim_sgd():
  torch = pytest.importorskip("torch")
  rng = np.random.default_rng(7)
  w0 = 0.1 * rng.standard_normal((3, 3, 3, 8))                 # HWIO
  h0, b0 = rng.standard_normal((8, 5)), rng.standard_normal(5)
  grads = [{"conv": s * w0 + 0.3 * rng.standard_normal(w0.shape),
            "head": rng.standard_normal((8, 5)), "bias": rng.standard_normal(5)}
           for s in (1.0, -1.0, 1.0, 1.0)]
  lrs = [0.5, 0.5, 0.01, 0.01]
  mu, wd = 0.9, 5e-4
  # The authors' loop: conv1 in its own param group, NOG on its .grad, OLR on its lr.
  conv = torch.nn.Parameter(torch.from_numpy(w0.transpose(3, 2, 0, 1).copy()))   # OIHW
  head = torch.nn.Parameter(torch.from_numpy(h0.T.copy()))                       # (out, in)
  bias = torch.nn.Parameter(torch.from_numpy(b0.copy()))
  opt = torch.optim.SGD([{"params": [conv]}, {"params": [head, bias]}], lr=lrs[0],
                        momentum=mu, weight_decay=wd, nesterov=True)
  used = []
  for g, lr in zip(grads, lrs):
    conv.grad = torch.from_numpy(g["conv"].transpose(3, 2, 0, 1).copy())
    head.grad = torch.from_numpy(g["head"].T.copy())
    bias.grad = torch.from_numpy(g["bias"].copy())
    u, _, vh = torch.linalg.svd(conv.grad.reshape(conv.shape[0], -1), full_matrices=False)
    conv.grad = (u @ vh).reshape(conv.shape)
    ww, ll = conv.data.reshape(-1), conv.grad.reshape(-1)
    eta = float((ww @ ww) * (ll @ ww) / ((ww @ ww) * (ll @ ll) + 2 * (ll @ ww) ** 2))
    opt.param_groups[1]["lr"] = lr
    opt.param_groups[0]["lr"] = eta if 0 < eta < lr else lr
    used.append(opt.param_groups[0]["lr"] != lr)
    opt.step()
  assert any(used) and not all(used)                          # both branches of the switch
  with jax.enable_x64(True):
    params = {"conv": jnp.asarray(w0), "head": jnp.asarray(h0), "bias": jnp.asarray(b0)}
    sched = optax.piecewise_constant_schedule(0.5, {2: 0.02})
    m = lambda p: optim.path_mask(p, "conv")
    tx = optim.sgd_torch(sched, momentum=mu, weight_decay=wd, nesterov=True, nog_mask=m,
                         olr_mask=m)
    p, _ = _run(tx, params, [jax.tree.map(jnp.asarray, g) for g in grads])
  np.testing.assert_allclose(p["conv"], conv.detach().numpy().transpose(2, 3, 1, 0), rtol=1e-10)
  np.testing.assert_allclose(p["head"], head.detach().numpy().T, rtol=1e-10)
  np.testing.assert_allclose(p["bias"], bias.detach().numpy(), rtol=1e-10)


def test_sgd_torch_argument_errors():
  with pytest.raises(ValueError, match="`nesterov=True` needs `momentum`"):
    optim.sgd_torch(0.1, momentum=0.0, nesterov=True)
  with pytest.raises(ValueError, match="`weight_decay` must be >= 0; found -1"):
    optim.sgd_torch(0.1, weight_decay=-1.0)
  with pytest.raises(ValueError, match="`method`"):
    optim.sgd_torch(0.1, nog_method="qr")
  tx = optim.sgd_torch(0.1, weight_decay=1e-4)
  params = {"w": jnp.ones((2, 2))}
  with pytest.raises(ValueError, match="`params` must be passed"):
    tx.update(params, tx.init(params))
  zero = {"w": jnp.zeros((2, 2))}                             # NOG + OLR on a zero gradient
  both = optim.sgd_torch(0.1, weight_decay=0.5, nog_mask=True, olr_mask=True)
  updates, state = both.update(zero, both.init(params), params)
  np.testing.assert_allclose(updates["w"], -0.1 * 0.5)        # eta* = 0 -> scheduled lr; no NaN
  assert float(state.eta_star["w"]) == 0.0
  plain = optim.sgd_torch(0.1, momentum=0.0)                  # no buffer, no params needed
  updates, state = plain.update(params, plain.init(params))
  assert state.momentum is None
  np.testing.assert_allclose(updates["w"], -0.1)


# ------------------------------------------------------------------------------ registry


def _opt_config(**kw):
  """The engine's default optimizer section with this file's base settings and ``kw``."""
  return optimizer_config(**{**dict(name="sgd_torch", schedule="cosine", weight_decay=5e-4), **kw})


def test_registry_sgd_torch_builds_from_config_and_jits():
  assert "sgd_torch" in optim.list_optimizers()
  rng = np.random.default_rng(8)
  params = {"params": {"stem_conv": {"kernel": jnp.asarray(0.1 * rng.standard_normal((3, 3, 3, 8)),
                                                           jnp.float32)},
                       "stem_bn": {"scale": jnp.ones(8)},
                       "head": {"kernel": jnp.ones((8, 4)), "bias": jnp.zeros(4)}}}
  k = params["params"]["stem_conv"]["kernel"]
  g = jax.tree.map(jnp.ones_like, params)
  g["params"]["stem_conv"]["kernel"] = k + 0.1 * jnp.asarray(rng.standard_normal(k.shape),
                                                             jnp.float32)
  lr = 0.5
  tx, sched = optim.create_optimizer(
      _opt_config(learning_rate=lr, kwargs=dict(nog="stem_conv", olr="stem_conv")), 10)
  updates, state = jax.jit(tx.update)(g, tx.init(params), params)
  gk = _np_nog(np.asarray(g["params"]["stem_conv"]["kernel"], np.float64))
  eta = _np_eta(np.asarray(k, np.float64), gk)
  assert 0 < eta < lr
  lr_used = optax.tree_utils.tree_get(state, "learning_rate")["params"]
  assert float(lr_used["stem_conv"]["kernel"]) == pytest.approx(eta, rel=1e-4)
  assert float(lr_used["head"]["kernel"]) == pytest.approx(float(sched(0))) == lr
  np.testing.assert_allclose(updates["params"]["stem_conv"]["kernel"],
                             -eta * (gk + 5e-4 * np.asarray(k)), rtol=1e-4, atol=1e-7)
  np.testing.assert_allclose(updates["params"]["head"]["kernel"], -lr * (1 + 5e-4), rtol=1e-6)
  np.testing.assert_allclose(updates["params"]["stem_bn"]["scale"], -lr, rtol=1e-6)  # no decay
  np.testing.assert_allclose(updates["params"]["head"]["bias"], -lr, rtol=1e-6)


def test_registry_sgd_torch_bad_patterns():
  params = {"stem_conv": {"kernel": jnp.ones((3, 3, 3, 4))}}
  with pytest.raises(ValueError, match="optimizer.kwargs.nog must be a regex"):
    optim.create_optimizer(_opt_config(kwargs=dict(nog="stem[")), 10)
  tx, _ = optim.create_optimizer(_opt_config(kwargs=dict(olr="conv1")), 10)
  with pytest.raises(ValueError, match="optimizer.kwargs.olr='conv1' matches no kernel.*stem_conv"):
    tx.init(params)
  with pytest.raises(TypeError, match="optimizer.kwargs"):
    optim.create_optimizer(_opt_config(kwargs=dict(nogg="stem_conv")), 10)
