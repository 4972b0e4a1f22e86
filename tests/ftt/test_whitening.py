"""Whitened FTT denoisers and log-SNR time against exact covariances and the exact Gaussian ε*."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxtt.data import GaussianMixture
from jaxtt.diffusion import linear_schedule, q_sample
from jaxtt.ftt import FTTDenoiser, Whitening
from jaxtt.solvers import fit_denoiser, fit_regression

SCHEDULE = linear_schedule(100)
ROTATION = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))[0]
COVARIANCE = ROTATION @ np.diag([4.0, 1.0, 0.05]) @ ROTATION.T
GAUSSIAN = GaussianMixture(jnp.ones(1), jnp.array([[3.0, -2.0, 1.0]]), jnp.asarray(COVARIANCE)[None])


def test_statistics_and_unit_covariance_at_every_step():
    """Cov(x_t) = a²Σ + s²I for any data, so u is white at every step (here: a non-Gaussian mixture)."""
    mixture = GaussianMixture(jnp.array([0.3, 0.7]), jnp.array([[4.0, 0.0, 1.0], [-1.0, 2.0, 0.0]]),
                              jnp.asarray(np.stack([COVARIANCE, 0.2 * np.eye(3)])))
    x0 = mixture.sample(jax.random.key(1), 40000)
    white = Whitening.fit(x0)
    data = np.asarray(x0)
    np.testing.assert_allclose(white.mean, data.mean(0), rtol=1e-10)
    axes, variances = np.asarray(white.axes), np.asarray(white.variances)
    np.testing.assert_allclose(axes @ np.diag(variances) @ axes.T, np.cov(data.T), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(axes.T @ axes, np.eye(3), atol=1e-12)
    assert list(variances) == sorted(variances, reverse=True)
    for step in (1, 30, 100):
        t = jnp.full(40000, step)
        x_t = q_sample(SCHEDULE, x0, t, jax.random.normal(jax.random.key(step), x0.shape))
        a, s = np.sqrt(float(SCHEDULE.alpha_bars[step])), np.sqrt(1 - float(SCHEDULE.alpha_bars[step]))
        u = np.asarray(white.transform(x_t, jnp.full(40000, a), jnp.full(40000, s)))
        np.testing.assert_allclose(np.cov(u.T), np.eye(3), atol=0.03)
        np.testing.assert_allclose(u.mean(0), 0.0, atol=0.03)


def test_log_snr_time_against_its_formula():
    model = FTTDenoiser(2, 100, rank=2, m=4, schedule=SCHEDULE, time_variable="log_snr", key=jax.random.key(0))
    alpha_bar = np.cumprod(1.0 - np.linspace(1e-4, 0.02, 100))
    log_snr = np.log(alpha_bar / (1 - alpha_bar))
    expected = (log_snr[0] - log_snr) / (log_snr[0] - log_snr[-1])
    np.testing.assert_allclose(model.time_coordinate(jnp.arange(1, 101)), expected, atol=1e-10)
    assert float(model.time_coordinate(jnp.array([37.5]))[0]) == pytest.approx(np.mean(expected[36:38]), abs=2e-3)


@pytest.mark.parametrize("output, rank", [("independent", 2), ("core", 3)])
def test_whitened_model_fits_the_rotated_anisotropic_gaussian(output, rank):
    """Exact ε* of a rotated Gaussian with variances 4, 1, 0.05 around (3, −2, 1), regressed on raw inputs: in its
    principal axes output i is u_i · g_i(t) (rank 2; Σ_j δ_ij u_j g_j(t), rank 3, with a shared output core), so a
    low-rank whitened FTT fits it; the same FTT on raw inputs cannot."""
    t = jax.random.randint(jax.random.key(2), (3000,), 1, 101)
    x_t = q_sample(SCHEDULE, GAUSSIAN.sample(jax.random.key(3), 3000), t, jax.random.normal(jax.random.key(4), (3000, 3)))
    eps = GAUSSIAN.optimal_eps(x_t, t, SCHEDULE)
    white = Whitening.fit(GAUSSIAN.sample(jax.random.key(5), 20000))
    errors = {}
    for whitening in (white, None):
        model = FTTDenoiser(3, 100, rank=rank, m=8, output=output, schedule=SCHEDULE, whitening=whitening,
                            domain=(-12.0, 12.0) if whitening is None else None, key=jax.random.key(6))
        model, _ = fit_regression(model, x_t, t, eps, steps=10, reg=0.0)
        errors[whitening is None] = float(jnp.mean((model(x_t, t) - eps) ** 2) / jnp.mean(eps**2))
    assert errors[False] < 1e-3, errors
    assert errors[True] > 30 * errors[False], errors


def test_statistics_are_constants_of_the_model():
    x0 = GAUSSIAN.sample(jax.random.key(7), 500)
    model = FTTDenoiser(3, 100, rank=2, m=6, schedule=SCHEDULE, whitening=Whitening.fit(x0), key=jax.random.key(8))
    params = jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array))
    assert len(params) == len(jax.tree.leaves(model.ftt))       # the statistics and the schedule are not trained
    compiled = eqx.filter_jit(lambda m, x, t: m(x, t))
    np.testing.assert_allclose(compiled(model, x0[:4], jnp.full(4, 10)), model(x0[:4], jnp.full(4, 10)), atol=1e-12)


def test_bad_arguments():
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="schedule is required"):
        FTTDenoiser(2, 100, time_variable="log_snr", key=key)
    with pytest.raises(ValueError, match="schedule is required"):
        FTTDenoiser(2, 100, whitening=Whitening.fit(jnp.eye(2)), key=key)
    with pytest.raises(ValueError, match="schedule has T = 100"):
        FTTDenoiser(2, 50, schedule=SCHEDULE, key=key)
    with pytest.raises(ValueError, match="whitening is for D = 2"):
        FTTDenoiser(3, 100, schedule=SCHEDULE, whitening=Whitening.fit(jnp.eye(2)), key=key)
    with pytest.raises(ValueError, match="time_variable='log_snr' needs time='core'"):
        FTTDenoiser(2, 100, schedule=SCHEDULE, time_variable="log_snr", time="additive", key=key)
    with pytest.raises(ValueError, match="schedule is required"):
        FTTDenoiser(2, 100, prediction="v", key=key)
    with pytest.raises(ValueError, match="x0 needs at least 2 rows"):
        Whitening.fit(jnp.ones((1, 2)))
    model = FTTDenoiser(2, 100, rank=2, m=4, schedule=SCHEDULE, key=key)
    with pytest.raises(ValueError, match="schedule differs"):
        fit_denoiser(model, jnp.ones((5, 2)), linear_schedule(100, beta_end=0.03), key, progress=False)


@pytest.mark.parametrize("prediction", ["x0", "v"])
def test_x0_and_v_models_return_the_noise(prediction):
    """The FTT represents x0 or v, the model returns ε: fitted on the exact Gaussian ε*, it reproduces ε* (from
    t = 10 on for x0, whose conversion ε = (x_t − a x0)/s amplifies any error by a/s ≈ 100 at t = 1)."""
    t = jax.random.randint(jax.random.key(2), (3000,), 1, 101)
    x_t = q_sample(SCHEDULE, GAUSSIAN.sample(jax.random.key(3), 3000), t, jax.random.normal(jax.random.key(4), (3000, 3)))
    eps = GAUSSIAN.optimal_eps(x_t, t, SCHEDULE)
    model = FTTDenoiser(3, 100, rank=2, m=8, schedule=SCHEDULE, whitening=Whitening.fit(x_t[t < 5]),
                        prediction=prediction, key=jax.random.key(6))
    model, _ = fit_regression(model, x_t, t, eps, steps=6, reg=0.0)
    later = t >= 10
    error = float(jnp.mean((model(x_t, t) - eps)[later] ** 2) / jnp.mean(eps[later] ** 2))
    assert error < 1e-3, error
    a, s = jnp.sqrt(SCHEDULE.alpha_bars[t])[:, None], jnp.sqrt(1 - SCHEDULE.alpha_bars[t])[:, None]
    x0 = (x_t - s * eps) / a                     # the x0-targets of the exact ε* are the posterior means E[x0 | x_t]
    expected = x0 if prediction == "x0" else a * eps - s * x0
    np.testing.assert_allclose(model.whitening.rotate_back(model.ftt_targets(x_t, t, eps)), expected, atol=1e-9)
