"""DMRG splits: function (whitened) against coefficient truncation, canonical form, polish, errors, float32."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxtt import tt
from jaxtt.basis import Legendre
from jaxtt.ftt import FTT, constant_init
from jaxtt.solvers import DMRG, dmrg_sweep, fit
from jaxtt.solvers.dmrg import feature_covariances, split_function, square_root


def ftt_data(bases, rank, n, low=-1.0, high=1.0, noise=0.0, seed=0):
    """A random FTT target of the given rank and (noisy) samples of it on ``[low, high]^d``."""
    shape = tuple(b.m for b in bases)
    target = FTT(tt.random(jax.random.key(seed), shape, rank, dtype=jnp.float64), bases)
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.uniform(low, high, (n, len(bases))))
    y = target(x)
    return x, y + noise * float(jnp.std(y)) * jnp.asarray(rng.normal(size=n))


# One shape for most tests (d = 3, m = 4, N = 600), so the jit-compiled local solves are reused.
BASES = [Legendre(4)] * 3
N = 600


def start(bases, rank, dtype=jnp.float64):
    return FTT(constant_init(bases, rank, dtype=dtype, key=jax.random.key(1)), bases)


def relative_residual(model, x, y):
    return float(np.linalg.norm(np.asarray(model(x)) - np.asarray(y)) / np.linalg.norm(np.asarray(y)))


def test_without_truncation_both_splits_give_the_same_model():
    """Full-rank splits reproduce W exactly either way, so the sweeps see the same fits."""
    x, y = ftt_data(BASES, 3, N, noise=0.1)
    values = {}
    for truncation in ("function", "coefficients"):
        model, _ = dmrg_sweep(start(BASES, 1), x, y, eps=0.0, truncation=truncation, polish=False)
        values[truncation] = np.asarray(model(x))
        assert model.tt.ranks == (1, 4, 4, 1)
    scale = np.abs(values["function"]).max()
    np.testing.assert_allclose(values["function"], values["coefficients"], rtol=0, atol=1e-8 * scale)


def grid_problem(m=5, n=9, seed=0):
    """Two variables on a tensor grid (the empirical measure is a product) and an exact rank-m function."""
    basis = Legendre(m, orthonormal=False)
    rng = np.random.default_rng(seed)
    u = np.sort(rng.uniform(0.2, 1.0, n))  # concentrated: the basis is far from orthonormal on the data
    v = np.sort(rng.uniform(-1.0, 1.0, n + 2))
    x = np.stack(np.meshgrid(u, v, indexing="ij"), axis=-1).reshape(-1, 2)
    w = rng.normal(size=(m, m))
    phi_u, phi_v = np.asarray(basis(jnp.asarray(u))), np.asarray(basis(jnp.asarray(v)))
    return [basis, basis], jnp.asarray(x), phi_u, phi_v, w


def test_whitened_error_identity_on_product_data():
    """Σ_s (a_sᵀ E b_s)² = N ‖R_L E R_Rᵀ‖² exactly when the data are a tensor grid."""
    bases, x, phi_u, phi_v, _ = grid_problem()
    feats = [jnp.asarray(b(x[:, k])) for k, b in enumerate(bases)]
    ones = jnp.ones((x.shape[0], 1))
    cov_l, cov_r = feature_covariances(ones, feats[0], feats[1], ones, chunk_size=7)
    np.testing.assert_allclose(cov_l, np.asarray(feats[0]).T @ np.asarray(feats[0]) / x.shape[0], rtol=1e-12)
    root_l, inv_l = square_root(cov_l)
    root_r, _ = square_root(cov_r)
    np.testing.assert_allclose(np.asarray(inv_l) @ np.asarray(root_l), np.eye(5), atol=1e-10)
    e = np.random.default_rng(4).normal(size=(5, 5))
    direct = np.sum((phi_u @ e @ phi_v.T) ** 2)
    whitened = x.shape[0] * np.sum((np.asarray(root_l) @ e @ np.asarray(root_r).T) ** 2)
    np.testing.assert_allclose(whitened, direct, rtol=1e-10)


def test_function_truncation_is_the_best_rank_r_fit_on_grid_data():
    """d = 2 on a grid: the sweep returns the Eckart–Young truncation of the value matrix Φ_u W Φ_vᵀ."""
    bases, x, phi_u, phi_v, w = grid_problem()
    values = phi_u @ w @ phi_v.T
    y = jnp.asarray(values.reshape(-1))
    u, s, vt = np.linalg.svd(values)
    rank = 2
    best = (u[:, :rank] * s[:rank]) @ vt[:rank]
    model, _ = dmrg_sweep(start(bases, 1), x, y, max_rank=rank, truncation="function", polish=False)
    assert model.tt.ranks == (1, rank, 1)
    np.testing.assert_allclose(np.asarray(model(x)).reshape(values.shape), best, atol=1e-8 * np.abs(values).max())
    coefficient, _ = dmrg_sweep(start(bases, 1), x, y, max_rank=rank, truncation="coefficients", polish=False)
    error_function = np.linalg.norm(np.asarray(model(x)) - y)
    error_coefficients = np.linalg.norm(np.asarray(coefficient(x)) - y)
    np.testing.assert_allclose(error_function, np.linalg.norm(s[rank:]), rtol=1e-8)
    assert error_function < 0.5 * error_coefficients


def test_function_truncation_fits_better_when_the_data_measure_matters():
    """Non-orthonormal basis and inputs in a sub-interval: the whitened split keeps more of the fit."""
    bases = [Legendre(4, orthonormal=False)] * 3
    x, y = ftt_data(bases, 4, N, low=0.0, high=1.0, seed=3)
    residual = {}
    for truncation in ("function", "coefficients"):
        model = start(bases, 1)
        for _ in range(2):
            model, _ = dmrg_sweep(model, x, y, max_rank=2, truncation=truncation, polish=False)
        residual[truncation] = relative_residual(model, x, y)
    assert residual["function"] < 0.3 * residual["coefficients"]


def whitened_truncation(w, cov_l, cov_r, rank):
    """Reference: Cholesky whitening (another square root than the solver's), truncated SVD, back."""
    chol_l, chol_r = np.linalg.cholesky(cov_l), np.linalg.cholesky(cov_r)  # C = K Kᵀ, so R = Kᵀ
    u, s, vt = np.linalg.svd(chol_l.T @ w @ chol_r, full_matrices=False)
    return np.linalg.solve(chol_l.T, (u[:, :rank] * s[:rank]) @ vt[:rank]) @ np.linalg.inv(chol_r)


@pytest.mark.parametrize("move_right", [True, False], ids=["right", "left"])
def test_split_is_canonical_and_equals_the_whitened_truncation(move_right):
    rng = np.random.default_rng(5)
    shape = (2, 3, 4, 3)
    p, q = 6, 12
    a_l, a_r = rng.normal(size=(40, p)), rng.normal(size=(40, q)) * np.linspace(0.1, 3, q)
    cov_l, cov_r = a_l.T @ a_l / 40, a_r.T @ a_r / 40
    w = rng.normal(size=(p, q))
    left, right = split_function(jnp.asarray(w.reshape(-1)), shape, jnp.asarray(cov_l), jnp.asarray(cov_r),
                                  0.0, 3, move_right)
    assert left.shape == (2, 3, 3) and right.shape == (3, 4, 3)
    a, b = np.asarray(left).reshape(p, 3), np.asarray(right).reshape(3, q)
    if move_right:
        np.testing.assert_allclose(a.T @ a, np.eye(3), atol=1e-12)
    else:
        np.testing.assert_allclose(b @ b.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(a @ b, whitened_truncation(w, cov_l, cov_r, 3), rtol=1e-9, atol=1e-11)


def test_sweep_respects_max_rank_and_leaves_right_orthogonal_cores():
    x, y = ftt_data(BASES, 3, N, noise=0.05)
    model, objectives = dmrg_sweep(start(BASES, 1), x, y, max_rank=2, polish=False)
    assert model.tt.ranks == (1, 2, 2, 1)
    assert objectives.shape == (4,)
    for core in model.tt.cores[1:]:
        g = np.asarray(core).reshape(core.shape[0], -1)
        np.testing.assert_allclose(g @ g.T, np.eye(core.shape[0]), atol=1e-12)


def test_polish_reports_the_objective_of_the_returned_model_and_lowers_it():
    x, y = ftt_data(BASES, 4, N, noise=0.05, seed=2)
    reg = 1e-3
    plain, _ = dmrg_sweep(start(BASES, 1), x, y, max_rank=2, reg=reg, polish=False)
    polished, objectives = dmrg_sweep(start(BASES, 1), x, y, max_rank=2, reg=reg, polish=True)
    assert objectives.shape == (5,)

    def objective(model):  # the other cores are right-orthogonal, so ‖A‖² = ‖G_0‖²
        misfit = np.sum((np.asarray(model(x)) - np.asarray(y)) ** 2)
        return float(misfit + reg * np.sum(np.asarray(model.tt.cores[0]) ** 2))

    np.testing.assert_allclose(objectives[-1], objective(polished), rtol=1e-9)
    assert objective(polished) <= objective(plain)
    for a, b in zip(plain.tt.cores[1:], polished.tt.cores[1:]):
        np.testing.assert_array_equal(a, b)  # only core 0 is re-solved


def test_bad_truncation_and_polish_are_rejected():
    x, y = jnp.zeros((10, 3)), jnp.ones(10)
    with pytest.raises(ValueError, match="truncation must be one of"):
        DMRG(truncation="frobenius")
    with pytest.raises(ValueError, match="truncation must be one of"):
        dmrg_sweep(start(BASES, 1), x, y, truncation="values")
    with pytest.raises(TypeError, match="polish must be a bool"):
        DMRG(polish="yes")


def test_float32_stays_float32():
    bases = BASES[:2]
    x, y = ftt_data(bases, 2, N)
    model, hist = fit(start(bases, 1, jnp.float32), x.astype(jnp.float32), y.astype(jnp.float32),
                      DMRG(eps=1e-4, max_rank=3), max_steps=1, progress=False)
    assert all(core.dtype == jnp.float32 for core in model.tt.cores)
    assert model(x.astype(jnp.float32)).dtype == jnp.float32
    assert hist.ranks[-1] == (1, 2, 1)
    assert hist.train_residual[-1] < 1e-3
