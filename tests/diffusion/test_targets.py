"""Empirical-Bayes regression targets against the exact denoiser of a mixture of near-point masses, a written-out
posterior mean, and (for the flow-matching velocity) the closed-form velocity of Gaussian data."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxtt.data import GaussianMixture
from jaxtt.diffusion import empirical_bayes_eps, flow_matching_triples, linear_schedule, q_sample, training_triples
from jaxtt.diffusion.targets import empirical_bayes_velocity
from jaxtt.ftt import FTTDenoiser
from jaxtt.solvers import fit_denoiser

SCHEDULE = linear_schedule(100)


def test_equals_the_optimal_noise_of_the_empirical_mixture():
    """Uniform weights on n points with covariance 1e-14 I: GaussianMixture.optimal_eps is the same posterior mean."""
    reference = jax.random.normal(jax.random.key(0), (7, 3), jnp.float64)
    x0 = reference[jnp.arange(40) % 7] + 0.3 * jax.random.normal(jax.random.key(1), (40, 3), jnp.float64)
    t = jax.random.randint(jax.random.key(2), (40,), 1, 101)
    x_t = q_sample(SCHEDULE, x0, t, jax.random.normal(jax.random.key(3), (40, 3), jnp.float64))
    points = GaussianMixture(jnp.ones(7), reference, 1e-14 * jnp.tile(jnp.eye(3), (7, 1, 1)))
    np.testing.assert_allclose(empirical_bayes_eps(SCHEDULE, x_t, t, reference, chunk_size=16),
                               points.optimal_eps(x_t, t, SCHEDULE), atol=1e-8)


def test_written_out_posterior_mean():
    rng = np.random.default_rng(4)
    reference, x_t = rng.normal(size=(5, 2)), rng.normal(size=(6, 2))
    t = np.array([3, 10, 40, 70, 90, 100])
    out = np.asarray(empirical_bayes_eps(SCHEDULE, jnp.asarray(x_t), jnp.asarray(t), jnp.asarray(reference)))
    alpha_bar = np.cumprod(1.0 - np.linspace(1e-4, 0.02, 100))
    for row, step in enumerate(t):
        a, s = np.sqrt(alpha_bar[step - 1]), np.sqrt(1.0 - alpha_bar[step - 1])
        logw = -np.sum((x_t[row] - a * reference) ** 2, axis=1) / (2 * s * s)
        w = np.exp(logw - logw.max())
        w /= w.sum()
        np.testing.assert_allclose(out[row], (x_t[row] - a * (w @ reference)) / s, rtol=1e-9, atol=1e-9)


def test_lower_variance_targets_fit_a_better_denoiser():
    """On a 2-D Gaussian mixture, the same FTT regressed on E[ε | x_t] is closer to the exact ε* than on ε.

    Measured by the excess loss E‖ε_θ − ε*‖² over held-out (x_t, t) with t uniform (the relative ε-error is
    dominated by the smallest t, where |ε*| is tiny)."""
    mixture = GaussianMixture(jnp.ones(2), jnp.array([[-1.5, 0.0], [1.5, 0.5]]), 0.2 * jnp.tile(jnp.eye(2), (2, 1, 1)))
    x0 = mixture.sample(jax.random.key(0), 400)
    x_t, t, _ = training_triples(jax.random.key(3), mixture.sample(jax.random.key(4), 4000), SCHEDULE, 1)
    exact = mixture.optimal_eps(x_t, t, SCHEDULE)
    errors = {}
    for targets in ("sampled", "empirical_bayes"):
        model = FTTDenoiser(2, 100, rank=4, m=8, dtype=jnp.float64, key=jax.random.key(1))
        model, _ = fit_denoiser(model, x0, SCHEDULE, jax.random.key(2), repeats=4, steps=3, targets=targets,
                                progress=False)
        errors[targets] = float(jnp.mean((model(x_t, t) - exact) ** 2))
    assert errors["empirical_bayes"] < 0.8 * errors["sampled"], errors


def test_bad_input():
    x = jnp.zeros((4, 2))
    with pytest.raises(ValueError, match="reference must have event shape"):
        empirical_bayes_eps(SCHEDULE, x, jnp.ones(4, int), jnp.zeros((3, 5)))
    with pytest.raises(ValueError, match="t must lie in 1..T"):
        empirical_bayes_eps(SCHEDULE, x, jnp.zeros(4, int), x)
    with pytest.raises(ValueError, match="targets"):
        fit_denoiser(FTTDenoiser(2, 100, rank=2, m=3, key=jax.random.key(0)), x, SCHEDULE, jax.random.key(1),
                     targets="exact")


def test_class_conditional_targets_average_over_their_class():
    """Each row's softmax runs over its own class; a label no reference point has (the null label) over all."""
    rng = np.random.default_rng(5)
    reference, x_t = rng.normal(size=(9, 2)), rng.normal(size=(7, 2))
    reference_labels, labels = np.arange(9) % 3, np.array([0, 1, 2, 3, 0, 1, 3])
    t = np.array([5, 20, 40, 60, 80, 95, 100])
    out = empirical_bayes_eps(SCHEDULE, jnp.asarray(x_t), jnp.asarray(t), jnp.asarray(reference),
                              labels=jnp.asarray(labels), reference_labels=jnp.asarray(reference_labels))
    for row in range(7):
        subset = reference[reference_labels == labels[row]] if labels[row] < 3 else reference
        expected = empirical_bayes_eps(SCHEDULE, jnp.asarray(x_t[row:row + 1]), jnp.asarray(t[row:row + 1]),
                                       jnp.asarray(subset))
        np.testing.assert_allclose(out[row], expected[0], rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="pass both labels"):
        empirical_bayes_eps(SCHEDULE, jnp.asarray(x_t), jnp.asarray(t), jnp.asarray(reference), labels=labels)


def test_velocity_is_the_written_out_posterior_mean():
    """E[eps - x0 | x_s] = sum_i w_i (eps_i - y_i) with eps_i = (x_s - (1 - s) y_i)/s, by SciPy's softmax."""
    from scipy.special import softmax

    rng = np.random.default_rng(6)
    reference, x_s = rng.normal(size=(6, 3)), rng.normal(size=(5, 3))
    s = np.array([1e-3, 0.3, 0.5, 0.9, 1.0])
    out = np.asarray(empirical_bayes_velocity(jnp.asarray(x_s), jnp.asarray(s), jnp.asarray(reference), chunk_size=2))
    for row in range(5):
        w = softmax(-np.sum((x_s[row] - (1 - s[row]) * reference) ** 2, axis=1) / (2 * s[row] ** 2))
        velocities = (x_s[row] - (1 - s[row]) * reference) / s[row] - reference
        np.testing.assert_allclose(out[row], w @ velocities, rtol=1e-8, atol=1e-8)


def test_velocity_of_a_large_gaussian_sample_approaches_the_gaussian_velocity():
    """For x0 ~ N(mu, diag sigma^2), E[eps - x0 | x_s] = -mu + (s - (1 - s) sigma^2)/Var(x_s) (x_s - (1 - s) mu)
    per coordinate; the empirical velocity of 20 000 draws is close to it away from s = 0 (where it sees single
    points)."""
    mu, sigma = np.array([0.5, -1.0]), np.array([0.5, 1.2])
    rng = np.random.default_rng(7)
    reference = mu + sigma * rng.normal(size=(20000, 2))
    s = rng.uniform(0.2, 1.0, size=(400, 1))
    x_s = (1 - s) * (mu + sigma * rng.normal(size=(400, 2))) + s * rng.normal(size=(400, 2))
    v = np.asarray(empirical_bayes_velocity(jnp.asarray(x_s), jnp.asarray(s[:, 0]), jnp.asarray(reference)))
    exact = -mu + (s - (1 - s) * sigma**2) / ((1 - s) ** 2 * sigma**2 + s**2) * (x_s - (1 - s) * mu)
    error = np.linalg.norm(v - exact) / np.linalg.norm(exact)
    assert error < 0.05, error  # measured 0.013


def test_flow_matching_rows_with_empirical_bayes_targets():
    """targets="empirical_bayes" keeps the rows (x_s, s) of the sampled ones and replaces eps - x0 by its
    conditional mean under x0, whose residual against eps - x0 is orthogonal to any function of (x_s, s)."""
    x0 = jnp.asarray(np.random.default_rng(10).normal(size=(50, 2)))
    x_s, s, sampled = flow_matching_triples(jax.random.key(11), x0, 40)
    x_eb, s_eb, target = flow_matching_triples(jax.random.key(11), x0, 40, targets="empirical_bayes")
    np.testing.assert_array_equal(np.asarray(x_eb), np.asarray(x_s))
    np.testing.assert_array_equal(np.asarray(s_eb), np.asarray(s))
    np.testing.assert_allclose(np.asarray(target), np.asarray(empirical_bayes_velocity(x_s, s, x0)), atol=1e-12)
    # E[(eps - x0) - v_EB | x_s] = 0: the residual averages out against the target itself (a function of x_s, s)
    residual = np.asarray(sampled - target)
    assert abs(np.mean(residual * np.asarray(target))) < 0.05 * np.mean(np.asarray(target) ** 2)
    assert np.mean(residual**2) > 0.1  # ... while the sampled targets are noisy


def test_velocity_edge_times_stay_finite():
    """s = 1: the reference mean is subtracted; s = 0 on a reference point: 0 (the limit along a path ending
    there); s = 1e-12 from y_j: eps - y_j; s = 0 off the points: finite."""
    reference = jnp.asarray(np.random.default_rng(9).normal(size=(4, 2)))
    eps = jnp.array([0.3, -0.2])
    x_s = jnp.stack([jnp.array([0.7, 0.1]), reference[2], (1 - 1e-12) * reference[1] + 1e-12 * eps,
                     jnp.array([5.0, -5.0])])
    out = np.asarray(empirical_bayes_velocity(x_s, jnp.array([1.0, 0.0, 1e-12, 0.0]), reference))
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out[0], np.asarray(x_s[0] - reference.mean(0)), atol=1e-12)
    np.testing.assert_allclose(out[1], 0.0, atol=1e-12)
    np.testing.assert_allclose(out[2], np.asarray(eps - reference[1]), atol=1e-3)  # x_s rounded at 1e-16


def test_velocity_bad_input():
    x = jnp.zeros((4, 2))
    with pytest.raises(ValueError, match=r"s must lie in \[0, 1\]"):
        empirical_bayes_velocity(x, jnp.full(4, 1.5), x)
    with pytest.raises(ValueError, match="s must be a scalar or have shape"):
        empirical_bayes_velocity(x, jnp.full(3, 0.5), x)
    with pytest.raises(ValueError, match="reference must have event shape"):
        empirical_bayes_velocity(x, 0.5, jnp.zeros((3, 5)))
    with pytest.raises(ValueError, match="targets"):
        flow_matching_triples(jax.random.key(0), x, targets="exact")
    with pytest.raises(ValueError, match="independent coupling"):
        flow_matching_triples(jax.random.key(0), x, eps=x, targets="empirical_bayes")
