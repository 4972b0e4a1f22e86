"""Empirical-Bayes regression targets against the exact denoiser of a mixture of near-point masses."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxtt.data import GaussianMixture
from jaxtt.diffusion import empirical_bayes_eps, linear_schedule, q_sample, training_triples
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
