"""Tests of the Riemannian solvers (RGD / RCG) on tensor-train least squares.

Problems are small (d = 3, n = 3, rank 2, N = 120) with an exactly representable
target, so the global minimum (loss 0 at the target tensor) is known; data are
built with NumPy and the dense target is the reference.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxtt.tt as T
from jaxtt.basis import Legendre
from jaxtt.ftt import FTT, FTTDenoiser
from jaxtt import solvers as S
from jaxtt.errors import NumericalError
from jaxtt.solvers import regression_data
from jaxtt.tt import autodiff as AD
from jaxtt.tt import riemannian as R

D, N_MODE, RANK, N = 3, 3, 2, 120


def _tt(seed, dtype=np.float64):
    ranks = T.expand_ranks((N_MODE,) * D, RANK)
    rng = np.random.default_rng(seed)
    cores = [rng.standard_normal((ranks[k], N_MODE, ranks[k + 1])) for k in range(D)]
    return T.TensorTrain([jnp.asarray(c.astype(dtype)) for c in cores])


def _dense(tt):
    out = np.ones((1, 1))
    for c in tt.cores:
        out = np.tensordot(out, np.asarray(c, np.float64), axes=1)
    return out[0, ..., 0]


def _problem(dtype):
    rng = np.random.default_rng(100)
    features = [rng.standard_normal((N, N_MODE)) for _ in range(D)]
    target = _tt(1)
    y = np.einsum("ijk,si,sj,sk->s", _dense(target), *features)
    return S.LeastSquares([jnp.asarray(f, dtype) for f in features], jnp.asarray(y, dtype)), target


@pytest.fixture(scope="module")
def problem():
    return _problem(np.float64)


def _monotone(losses):
    return bool(np.all(np.diff(np.asarray(losses)) <= 0))


def test_least_squares_hooks_match_autodiff(problem):
    objective, _ = problem
    x = _tt(2)
    at = R.zeros(x)
    value, grad = objective.riemannian_value_and_grad(at)
    value_ad, grad_ad = AD.value_and_riemannian_grad(lambda tt: objective(tt), at)
    np.testing.assert_allclose(value, value_ad, rtol=1e-12)
    for a, b in zip(grad.deltas, grad_ad.deltas):
        np.testing.assert_allclose(a, b, atol=1e-10)
    # f(X + t η) = ½ mean (p + t q − y)² with q_s = ⟨η, Φ_s⟩ (dense NumPy), so φ''(0) = mean(q²)
    eta = R.scale(grad, -1.0)
    feats = [np.asarray(f) for f in objective.features]
    q = np.einsum("ijk,si,sj,sk->s", _dense(R.to_tt(eta)), *feats)
    np.testing.assert_allclose(objective.line_curvature(eta), np.mean(q * q), rtol=1e-10)
    np.testing.assert_allclose(R.contract_rank1(eta, objective.features), q, atol=1e-10)


def test_rgd_pure_steps_satisfy_armijo_float32():
    objective, _ = _problem(np.float32)
    solver = S.RGD()
    init, step = eqx.filter_jit(solver.init_objective), eqx.filter_jit(solver.step_objective)
    state = init(objective, _tt(2, np.float32))
    assert state.loss.dtype == jnp.float32 and state.point.dtype == jnp.float32
    assert all(g.dtype == jnp.float32 for g in state.grad.deltas)
    losses = [float(state.loss)]
    for _ in range(15):
        slope = float(R.inner(state.grad, state.direction))
        assert slope < 0
        new = step(objective, state)
        assert bool(new.accepted)
        # Armijo: f(X_{k+1}) <= f(X_k) + c₁ t ⟨grad f, η⟩ (up to the recomputation of f at the new point)
        bound = float(state.loss) + solver.c1 * float(new.step_size) * slope
        assert float(new.loss) <= bound + 1e-6 * abs(bound)
        assert new.point.ranks == state.point.ranks
        state = new
        losses.append(float(state.loss))
    assert _monotone(losses)
    assert losses[-1] < 0.2 * losses[0]
    assert int(state.iteration) == 15 and int(state.n_evals) >= 15
    assert state.point.dtype == jnp.float32


def test_rcg_converges_to_representable_target(problem):
    objective, target = problem
    x, history = S.fit_riemannian(objective, _tt(2), solver=S.RCG(), max_steps=250, progress=False)
    assert _monotone(history.loss)
    assert history.loss[-1] < 1e-20 * history.loss[0]
    assert history.status in {"stalled", "gtol"} and history.train_residual is None
    rel = np.linalg.norm(_dense(x) - _dense(target)) / np.linalg.norm(_dense(target))
    assert rel < 1e-8
    assert x.ranks == target.ranks
    assert len(history.loss) == len(history.time) == len(history.ranks) == history.step[-1] + 1


def test_fletcher_reeves_monotone(problem):
    objective, _ = problem
    _, history = S.fit_riemannian(objective, _tt(3), solver=S.RCG(beta="fr"), max_steps=40, progress=False)
    assert _monotone(history.loss)
    assert history.loss[-1] < 1e-3 * history.loss[0]
    assert all(b < a for a, b in zip(history.loss, history.loss[1:]))  # every line search succeeded


class _FiniteNear(eqx.Module):
    """The least-squares loss where ``|‖X‖ − norm0| < tol``, NaN elsewhere."""

    objective: S.LeastSquares
    norm0: jax.Array
    tol: jax.Array

    def __call__(self, tt):
        return jnp.where(jnp.abs(T.norm(tt) - self.norm0) < self.tol, self.objective(tt), jnp.nan)


def test_non_finite_loss_names_the_iteration(problem):
    objective, _ = problem
    x0 = _tt(2)
    n0 = T.norm(x0)
    solver = S.RGD(initial_step="quadratic", max_backtracks=3)
    with pytest.raises(NumericalError, match="step 0"):  # NaN everywhere
        S.fit_riemannian(_FiniteNear(objective, n0, jnp.asarray(-1.0)), x0, solver=solver, progress=False)
    with pytest.raises(NumericalError, match="every trial point .* at step 1"):  # finite at X0 only
        S.fit_riemannian(_FiniteNear(objective, n0, 1e-9 * n0), x0, solver=solver, max_steps=5, progress=False)


def test_rcg_fit_of_an_ftt_batch_equals_independent_fits():
    bases = [Legendre(N_MODE)] * D
    rng = np.random.default_rng(7)
    x = jnp.asarray(rng.uniform(-1, 1, (N, D)))
    targets = [FTT(_tt(10 + j), bases) for j in range(2)]
    y = jnp.stack([f(x) for f in targets], axis=1)
    starts = [_tt(20 + j) for j in range(2)]
    batch = FTT(jax.tree_util.tree_map(lambda *cs: jnp.stack(cs), *starts), bases)
    fitted, history = S.fit(batch, x, y, S.RCG(), max_steps=6, progress=False)
    assert fitted.tt.batch_shape == (2,) and history.step == list(range(7))
    assert _monotone(history.loss) and history.train_residual[-1] < 1.0
    total = 0.0
    for j in range(2):
        single, h = S.fit(FTT(starts[j], bases), x, y[:, j], S.RCG(), max_steps=6, progress=False)
        total += h.loss[-1]
        for a, b in zip(single.tt.cores, fitted.tt.cores):
            np.testing.assert_allclose(a, b[j], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(history.loss[-1], total, rtol=1e-10)


def test_fit_denoiser_through_regression_data():
    # dim 2 with a time core: two output FTTs on modes (3, 3, 3) of rank 2, like the batch test above
    model = FTTDenoiser(2, 10, rank=2, m=3, domain=(-3.0, 3.0), dtype=jnp.float64, key=jax.random.PRNGKey(0))
    rng = np.random.default_rng(8)
    x_t = jnp.asarray(rng.standard_normal((N, 2)))
    t = jnp.asarray(rng.integers(1, 11, N))
    eps = jnp.asarray(np.tanh(np.asarray(x_t)) * np.asarray(t)[:, None] / 10.0)
    ftt, history = S.fit(model.ftt, *regression_data(model, x_t, t, eps), S.RCG(), max_steps=6, progress=False)
    fitted = eqx.tree_at(lambda m: m.ftt, model, ftt)
    assert _monotone(history.loss) and history.loss[-1] < 0.5 * history.loss[0]
    before = float(jnp.mean((model(x_t, t) - eps) ** 2))
    after = float(jnp.mean((fitted(x_t, t) - eps) ** 2))
    # history: Σ_j ½ mean_s r_sj² over the 2 outputs, i.e. mean_{s,j} r_sj²
    np.testing.assert_allclose(after, history.loss[-1], rtol=1e-8)
    assert after < 0.5 * before


def test_ridge_term_matches_dense(problem):
    objective, _ = problem
    ridge = S.LeastSquares(objective.features, objective.targets, reg=3.0)
    x = _tt(4)
    value, grad = ridge.riemannian_value_and_grad(R.zeros(x))
    value_ad, grad_ad = AD.value_and_riemannian_grad(lambda tt: ridge(tt), x)
    a = _dense(x)
    res = np.einsum("ijk,si,sj,sk->s", a, *[np.asarray(f) for f in objective.features]) - np.asarray(objective.targets)
    np.testing.assert_allclose(value, (res @ res + 3.0 * np.sum(a * a)) / (2 * N), rtol=1e-12)
    np.testing.assert_allclose(value_ad, value, rtol=1e-12)
    for g, h in zip(grad.deltas, grad_ad.deltas):
        np.testing.assert_allclose(g, h, atol=1e-10)
    eta = R.scale(grad, -1.0)
    extra = float(ridge.line_curvature(eta) - objective.line_curvature(eta))
    np.testing.assert_allclose(extra, 3.0 / N * float(R.norm(eta)) ** 2, rtol=1e-10)


def test_bad_arguments(problem):
    objective, _ = problem
    for kwargs in ({"c1": 0.0}, {"c1": 1.0}, {"max_backtracks": -1}, {"initial_step": "exact"}, {"step0": 0.0}):
        with pytest.raises(ValueError):
            S.RGD(**kwargs)
    with pytest.raises(ValueError, match="beta"):
        S.RCG(beta="hs")
    with pytest.raises(ValueError, match="powell"):
        S.RCG(powell=0.0)
    with pytest.raises(ValueError, match="max_steps"):
        S.fit_riemannian(objective, _tt(2), max_steps=-1)
    with pytest.raises(TypeError, match="solver"):
        S.fit_riemannian(objective, _tt(2), solver="rcg")
    with pytest.raises(TypeError, match="X0"):
        S.fit_riemannian(objective, _dense(_tt(2)))
    with pytest.raises(ValueError, match="not full"):
        bad = T.TensorTrain([jnp.ones((1, 3, 4)), jnp.ones((4, 3, 2)), jnp.ones((2, 3, 1))])
        S.fit_riemannian(objective, bad)
    with pytest.raises(ValueError, match="targets"):
        S.LeastSquares(objective.features, jnp.full((N,), jnp.nan))
    with pytest.raises(TypeError, match="FTT"):
        S.RCG().init(_tt(2), jnp.zeros((N, D)), jnp.zeros(N))
    model = FTT(_tt(2), [Legendre(N_MODE)] * D)
    with pytest.raises(ValueError, match="y"):
        S.RCG().init(model, jnp.zeros((N, D)), jnp.zeros(N + 1))
    with pytest.raises(ValueError, match="reg"):
        S.RGD(reg=-1.0)
    with pytest.raises(ValueError, match="reg"):
        S.LeastSquares(objective.features, objective.targets, reg=-1.0)
