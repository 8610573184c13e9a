"""IQA losses (issue 5; spec norm-in-norm-iqa Sec. 2, 6 and 7).

References: NumPy float64 transcriptions of eqs. (1)-(6), (10), (15)-(18), (20), (22) and of
the authors' IQAloss.py, written independently of the implementation; identities are checked
in float64 (``jax.enable_x64``) with ``eps = 0`` so that they hold exactly.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jax.test_util import check_grads
from scipy import stats

from jaxvision import losses

PQ = [(1.0, 2.0), (2.0, 1.0), (1.0, 1.0), (2.0, 2.0), (1.5, 3.0)]


def _batch(seed, n=8):
  rng = np.random.default_rng(seed)
  target = rng.uniform(0.0, 100.0, size=n)
  pred = 0.05 * target + rng.normal(scale=1.5, size=n) + 3.0
  return pred, target


def _np_normalise(x, q):
  c = x - x.mean()
  b = np.sum(np.abs(c) ** q) ** (1 / q)
  return c / b, b


def _np_c(p, q, n):
  """Eq. (6) as printed: 2^p N^(1 - p/q) if p < q, else 2^p."""
  return 2.0 ** p * n ** (1 - p / q) if p < q else 2.0 ** p


def _np_loss(pred, target, p, q):
  s_hat, _ = _np_normalise(pred, q)
  s, _ = _np_normalise(target, q)
  return np.sum(np.abs(s_hat - s) ** p) / _np_c(p, q, len(pred))


_STATIC = ("p", "q", "alpha", "eps", "num_groups", "detach")
# One compilation per configuration (eager dispatch of the many small ops is slower).
_jit_nin = jax.jit(losses.norm_in_norm, static_argnames=_STATIC)
_jit_grad = jax.jit(jax.grad(losses.norm_in_norm), static_argnames=_STATIC)


def _nin(pred, target, grad=False, **kw):
  """norm_in_norm (or its gradient in ``pred``) with eps = 0 by default (the paper's
  identities then hold exactly)."""
  kw.setdefault("eps", 0.0)
  if "alpha" in kw:
    kw["alpha"] = tuple(kw["alpha"])
  return (_jit_grad if grad else _jit_nin)(pred, target, **kw)


@pytest.mark.parametrize("p,q", PQ)
def test_matches_reference_eqs_1_to_6(p, q):
  with jax.enable_x64(True):
    pred, target = _batch(0)
    got = _nin(pred, target, p=p, q=q)
    assert got.dtype == jnp.float64 and got.shape == ()
    np.testing.assert_allclose(float(got), _np_loss(pred, target, p, q), rtol=1e-12)


def test_p2_q2_is_the_plcc_loss():
  plcc_loss = jax.jit(losses.plcc_loss, static_argnames=("eps",))
  with jax.enable_x64(True):
    for seed in range(3):
      pred, target = _batch(seed)
      want = (1 - stats.pearsonr(pred, target)[0]) / 2
      np.testing.assert_allclose(float(_nin(pred, target, p=2.0, q=2.0)), want, rtol=0,
                                 atol=1e-12)
      np.testing.assert_allclose(float(plcc_loss(pred, target, eps=0.0)), want, rtol=0,
                                 atol=1e-12)
      # Default eps: off by O(eps / b_hat) only.
      np.testing.assert_allclose(float(plcc_loss(pred, target)), want, atol=1e-7)


@pytest.mark.parametrize("p,q", PQ)
def test_invariant_to_positive_affine_maps_only(p, q):
  with jax.enable_x64(True):
    pred, target = _batch(1)
    base = float(_nin(pred, target, p=p, q=q))
    for k1, k2 in ((3.7, -20.0), (1e-3, 5.0), (250.0, 0.0)):
      np.testing.assert_allclose(float(_nin(k1 * pred + k2, target, p=p, q=q)), base,
                                 rtol=1e-12)
    # k1 < 0 flips S_hat: the paper's "k1^2 + k2^2 != 0" condition is wrong.
    flipped = float(_nin(-2.0 * pred + 1.0, target, p=p, q=q))
    assert abs(flipped - base) > 0.05


@pytest.mark.parametrize("p,q", [(1.0, 2.0), (2.0, 2.0), (1.0, 1.0), (1.5, 3.0), (2.0, 1.0),
                                 (3.0, 2.0)])
def test_range_and_the_maximum_at_minus_s(p, q):
  rng = np.random.default_rng(2)
  f = jax.jit(jax.vmap(lambda x, y: losses.norm_in_norm(x, y, p=p, q=q)))
  pred = rng.normal(size=(500, 8)) * rng.uniform(0.1, 10.0, size=(500, 1))
  target = rng.normal(size=(500, 8))
  values = np.asarray(f(pred.astype(np.float32), target.astype(np.float32)))
  assert values.min() >= 0.0 and values.max() <= 1.0 + 1e-6
  assert values.max() > 0.1                                  # not trivially small
  # S_hat = -S with equal magnitudes: S = (1, .., 1, -1, .., -1) / N^(1/q).
  n = 8
  s = np.repeat([1.0, -1.0], n // 2)
  with jax.enable_x64(True):
    got = float(_nin(-3.0 * s + 7.0, s, p=p, q=q))
  # The bound 1 is attained for p <= q; for p > q this point gives N^(1 - p/q) < 1.
  want = 1.0 if p <= q else n ** (1 - p / q)
  np.testing.assert_allclose(got, want, rtol=1e-12)


def _eq10_grad(pred, target, p, q):
  """Eq. (10) with R_hat_j = sign(S_hat_j) |S_hat_j|^(q-1) (not 0/0 at S_hat_j = 0)."""
  n = len(pred)
  s_hat, b_hat = _np_normalise(pred, q)
  s, _ = _np_normalise(target, q)
  e = s_hat - s
  g = p / _np_c(p, q, n) * np.abs(e) ** (p - 1) * np.sign(e)          # dl/dS_hat
  r_hat = np.sign(s_hat) * np.abs(s_hat) ** (q - 1)                     # eq. (8)
  mu_r = r_hat.mean()
  gs = g @ s_hat
  return (g - g.sum() / n - r_hat * gs + mu_r * gs) / b_hat, g, s_hat, b_hat


@pytest.mark.parametrize("p,q", PQ)
def test_grad_is_eq_10(p, q):
  with jax.enable_x64(True):
    pred, target = _batch(3)
    got = _nin(pred, target, p=p, q=q, grad=True)
    want, _, _, _ = _eq10_grad(pred, target, p, q)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("p", [1.0, 2.0, 1.5])
def test_theorem_3_1_gradient_norm(p):
  with jax.enable_x64(True):
    pred, target = _batch(4)
    g_n = np.asarray(_nin(pred, target, p=p, q=2.0, grad=True))
    _, g, s_hat, b_hat = _eq10_grad(pred, target, p, 2.0)
    n = len(pred)
    rhs = (g @ g - g.sum() ** 2 / n - (g @ s_hat) ** 2) / b_hat ** 2       # eq. (20)
    np.testing.assert_allclose(g_n @ g_n, rhs, rtol=1e-10)
    assert g_n @ g_n < g @ g / b_hat ** 2                      # the normalisation helps


def test_theorem_3_2_hessian_quadratic_form_eq_22():
  """Eq. (22) (p = q = 2) is correct as printed; eq. (21) is the supplement's eq. (45)."""
  with jax.enable_x64(True):
    f = lambda x, t: _nin(x, t, p=2.0, q=2.0)
    grad_hess = jax.jit(lambda x, t: (jax.grad(f)(x, t), jax.hessian(f)(x, t)))
    for seed in range(3):
      pred, target = _batch(5 + seed, n=6)
      g_n, h_n = (np.asarray(a) for a in grad_hess(pred, target))
      s_hat, b_hat = _np_normalise(pred, 2.0)
      s, _ = _np_normalise(target, 2.0)
      c = 4.0
      g, h = 2 / c * (s_hat - s), 2 / c * np.eye(6)
      d = 1 - s @ s_hat
      lhs = g_n @ h_n @ g_n
      rhs22 = (g @ h @ g - 2 / c * d * (4 / c ** 2 * d + g @ g - (g @ s_hat) ** 2)) / b_hat ** 4
      rhs45 = (g_n @ h @ g_n - (g @ s_hat) * (g_n @ g_n)) / b_hat ** 2
      np.testing.assert_allclose(lhs, rhs22, rtol=1e-9)
      np.testing.assert_allclose(lhs, rhs45, rtol=1e-9)
      np.testing.assert_allclose(h_n, h_n.T, atol=1e-15)
      assert lhs <= g @ h @ g / b_hat ** 4                     # the reduction of Thm. 3.2


def test_variant_is_the_lsr_rmse_eq_18():
  with jax.enable_x64(True):
    for seed in range(3):
      pred, target = _batch(10 + seed)
      l_var = float(_nin(pred, target, p=2.0, q=2.0, alpha=(0.0, 1.0)))
      x = np.stack([pred, np.ones_like(pred)], 1)
      k, *_ = np.linalg.lstsq(x, target, rcond=None)
      rmse = np.sqrt(np.mean((x @ k - target) ** 2))
      b = np.linalg.norm(target - target.mean())
      np.testing.assert_allclose(np.sqrt(4 * b ** 2 * l_var / len(pred)), rmse, rtol=1e-10)


@pytest.mark.parametrize("p,q", [(1.0, 2.0), (2.0, 1.0), (1.5, 3.0)])
def test_variant_uses_the_batch_plcc_not_the_per_sample_sign(p, q):
  with jax.enable_x64(True):
    pred, target = _batch(13)
    pred = pred + np.random.default_rng(0).normal(scale=3.0, size=pred.shape)  # rho ~ 0.77
    s_hat, _ = _np_normalise(pred, q)
    s, _ = _np_normalise(target, q)
    c = _np_c(p, q, len(pred))
    rho = stats.pearsonr(pred, target)[0]
    l0 = np.sum(np.abs(s_hat - s) ** p) / c
    l1 = np.sum(np.abs(rho * s_hat - s) ** p) / c
    buggy = np.sum(np.abs(np.sign(s_hat * s) * s_hat - s) ** p) / c      # pre-7936bb8
    got1 = float(_nin(pred, target, p=p, q=q, alpha=(0.0, 1.0)))
    np.testing.assert_allclose(got1, l1, rtol=1e-12)
    assert abs(got1 - buggy) > 1e-3
    # The paper's l + 0.1 l', in the code's normalised form (a0 l + a1 l') / (a0 + a1).
    got = float(_nin(pred, target, p=p, q=q, alpha=(1.0, 0.1)))
    np.testing.assert_allclose(got, (l0 + 0.1 * l1) / 1.1, rtol=1e-12)


def test_batch_of_one_is_zero_with_zero_grad_and_a_warning():
  f = lambda x: losses.norm_in_norm(x, jnp.array([3.0]))
  with pytest.warns(UserWarning, match="size 1"):
    value, grad = jax.value_and_grad(f)(jnp.array([1.5]))
  assert float(value) == 0.0 and np.asarray(grad).tolist() == [0.0]
  with pytest.warns(UserWarning, match="size 1"):
    value = jax.jit(lambda x, y: losses.norm_in_norm(x, y, num_groups=4))(
        jnp.arange(4.0)[:, None], jnp.arange(4.0))            # groups of one, under jit
  assert float(value) == 0.0


@pytest.mark.parametrize("p,q,alpha", [(1.0, 2.0, (1.0, 0.0)), (2.0, 2.0, (1.0, 0.1)),
                                       (2.0, 1.0, (0.0, 1.0))])
def test_constant_inputs_are_finite(p, q, alpha):
  f = jax.jit(jax.value_and_grad(lambda x, t: losses.norm_in_norm(x, t, p=p, q=q, alpha=alpha)))
  target = np.linspace(0.0, 1.0, 6, dtype=np.float32)
  const = lambda v: np.full(6, v, np.float32)      # (numpy: no weak types, one compilation)
  for pred, tgt in ((const(4.2), target), (target, const(2.0)), (const(0.0), const(0.0))):
    value, grad = f(pred, tgt)
    assert np.isfinite(float(value)) and np.all(np.isfinite(np.asarray(grad)))
  if alpha[0] == 1.0:
    # S_hat = 0 for constant predictions: l = sum |S|^p / c / (1 + a1), with l' = l there.
    # (4.0: its float32 batch mean is exact, so the centred vector is exactly 0.)
    s, _ = _np_normalise(np.linspace(0.0, 1.0, 6), q)
    np.testing.assert_allclose(float(f(const(4.0), target)[0]),
                               np.sum(np.abs(s) ** p) / _np_c(p, q, 6), rtol=1e-5)


def test_bf16_inputs_run_in_float32():
  pred, target = _batch(14)
  pb = jnp.asarray(pred, jnp.bfloat16)
  tb = jnp.asarray(target, jnp.bfloat16)
  got = _jit_nin(pb, tb)
  assert got.dtype == jnp.float32 and np.isfinite(float(got))
  want = _jit_nin(pb.astype(jnp.float32), tb.astype(jnp.float32))
  np.testing.assert_allclose(float(got), float(want), rtol=1e-6)
  assert losses.plcc_loss(pb, tb).dtype == jnp.float32
  grad = jax.jit(jax.grad(lambda x: losses.norm_in_norm(x, tb)))(pb)
  assert grad.dtype == jnp.bfloat16 and np.all(np.isfinite(np.asarray(grad, np.float32)))


def test_shapes_n1_and_n_agree_and_bad_shapes_name_the_argument():
  pred, target = _batch(15, n=8)
  a = losses.norm_in_norm(pred[:, None], target)
  b = losses.norm_in_norm(pred, target[:, None])
  np.testing.assert_allclose(float(a), float(b), rtol=1e-6)
  with pytest.raises(ValueError, match=r"`pred` must have shape \(N,\) or \(N, 1\); found "
                     r"\(4, 2\)"):
    losses.norm_in_norm(np.zeros((4, 2)), np.zeros(4))
  with pytest.raises(ValueError, match="`target` must have N = 8"):
    losses.norm_in_norm(pred, target[:5])
  with pytest.raises(ValueError, match="`num_groups`.*dividing N = 8; found 3"):
    losses.norm_in_norm(pred, target, num_groups=3)
  with pytest.raises(ValueError, match="`alpha`"):
    losses.norm_in_norm(pred, target, alpha=(0.0, 0.0))
  with pytest.raises(ValueError, match="`p` must be > 0"):
    losses.norm_in_norm(pred, target, p=0.0)
  with pytest.raises(ValueError, match="`target` must have shape"):
    losses.mean_squared_error(pred, np.zeros((8, 3)))


def test_num_groups_is_the_mean_of_per_group_losses():
  pred, target = _batch(16, n=24)
  for g in (2, 3, 8):
    got = _jit_nin(pred, target, num_groups=g, alpha=(1.0, 0.1))
    parts = [_jit_nin(x, y, alpha=(1.0, 0.1))
             for x, y in zip(np.split(pred, g), np.split(target, g))]
    np.testing.assert_allclose(float(got), np.mean([float(v) for v in parts]), rtol=1e-6)
    # ...which is a different loss from the global-batch one (smaller N, other c).
    assert abs(float(got) - float(_jit_nin(pred, target, alpha=(1.0, 0.1)))) > 1e-4


def test_global_loss_under_jit_with_a_sharded_batch():
  mesh = Mesh(np.array(jax.devices()), ("batch",))
  sharding = NamedSharding(mesh, PartitionSpec("batch"))
  with jax.enable_x64(True):
    pred, target = _batch(17, n=8 * 4)
    want = _jit_nin(pred, target, alpha=(1.0, 0.1))
    xs, ys = jax.device_put(pred, sharding), jax.device_put(target, sharding)
    assert len(xs.sharding.device_set) == 8
    np.testing.assert_allclose(float(_jit_nin(xs, ys, alpha=(1.0, 0.1))), float(want),
                               rtol=1e-12)
    g_sharded = _jit_grad(xs, ys)
    g_plain = _jit_grad(pred, target)
    np.testing.assert_allclose(np.asarray(g_sharded), np.asarray(g_plain), rtol=1e-10,
                               atol=1e-16)
    # The per-device (authors' multi-GPU) loss is num_groups = #devices, and differs.
    per_device = float(_jit_nin(pred, target, alpha=(1.0, 0.1), num_groups=8))
    assert abs(per_device - float(want)) > 1e-4


def test_detach_stops_the_statistics_gradient():
  with jax.enable_x64(True):
    pred, target = _batch(18)
    f = lambda d, grad=False: np.asarray(_nin(pred, target, p=1.0, q=2.0, detach=d, grad=grad))
    np.testing.assert_allclose(f(True), f(False), rtol=1e-15)
    _, g, _, b_hat = _eq10_grad(pred, target, 1.0, 2.0)
    np.testing.assert_allclose(f(True, grad=True), g / b_hat, rtol=1e-12)
    assert not np.allclose(f(False, grad=True), g / b_hat)


@pytest.mark.parametrize("p,q,alpha", [(1.0, 2.0, (1.0, 0.0)), (1.5, 3.0, (1.0, 0.1)),
                                       (2.0, 2.0, (0.0, 1.0))])
def test_check_grads(p, q, alpha):
  with jax.enable_x64(True):
    pred, target = _batch(19)
    check_grads(jax.jit(lambda x: losses.norm_in_norm(x, target, p=p, q=q, alpha=alpha)),
                (jnp.asarray(pred),), order=1, modes=("rev",))


def test_mae_mse_plcc_and_registry():
  pred, target = _batch(20)
  np.testing.assert_allclose(float(losses.mean_absolute_error(pred[:, None], target)),
                             np.mean(np.abs(pred - target)), rtol=1e-6)
  np.testing.assert_allclose(float(losses.mean_squared_error(pred, target[:, None])),
                             np.mean((pred - target) ** 2), rtol=1e-6)
  assert losses.get_loss("norm_in_norm") is losses.norm_in_norm
  assert losses.get_loss("plcc") is losses.plcc_loss
  assert losses.get_loss("mae") is losses.mean_absolute_error
  assert losses.get_loss("mse") is losses.mean_squared_error
  np.testing.assert_allclose(float(losses.get_loss("plcc")(pred, target)),
                             float(losses.norm_in_norm(pred, target, p=2.0, q=2.0)), rtol=1e-7)


def _np_monotonicity(pred, target, gamma):
  """IQAloss.monotonicity_regularization on (N, 1) tensors, times gamma."""
  yp, y = pred.reshape(-1, 1), target.reshape(-1, 1)
  r = np.maximum((yp - yp.T) * np.sign(y.T - y), 0.0)
  n = len(pred)
  return gamma * r.sum() / n / (n - 1) / (1 + r.max())


def test_monotonicity_regularizer():
  mono = jax.jit(losses.monotonicity_regularizer, static_argnames=("detach",))
  with jax.enable_x64(True):
    pred, target = _batch(21)
    got = mono(pred, target, 0.1)
    np.testing.assert_allclose(float(got), _np_monotonicity(pred, target, 0.1), rtol=1e-12)
    assert float(got) > 0
    # 0 for predictions ordered like the target (ties in the target included).
    tied = np.round(target / 20.0)
    assert len(np.unique(tied)) < len(tied)
    assert float(mono(2 * tied + 1, tied)) == 0.0
    assert float(losses.monotonicity_regularizer(np.array([1.0]), np.array([2.0]))) == 0.0
    # A reversed order is penalised more; detach changes only the gradient.
    assert float(mono(-pred, target)) > float(got)
    np.testing.assert_allclose(float(mono(pred, target, detach=True)), float(got), rtol=1e-15)
    grad = lambda d: np.asarray(jax.jit(jax.grad(
        lambda x: losses.monotonicity_regularizer(x, target, detach=d)))(pred))
    assert not np.allclose(grad(True), grad(False))
