"""TT densities on Gaussian bumps: convolved bumps against quadrature, exact Gaussian scores, mixture fits."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxtt.data import GaussianMixture
from jaxtt.diffusion import linear_schedule, log_likelihood, training_triples
from jaxtt.ftt import DensityDenoiser, TTDensity, fit_density
from jaxtt.tt import TensorTrain

SCHEDULE = linear_schedule(1000)


def test_convolved_bumps_match_quadrature():
    """ψ_j(x) = ∫ φ_j(y) N(x; a y, s²) dy by the trapezoidal rule on a fine grid."""
    centers, h = jnp.array([[-1.0, 0.3, 2.0]]), jnp.array([0.7])
    density = TTDensity(TensorTrain([jnp.ones((1, 3, 1))]), centers, h)
    y = np.linspace(-12, 12, 200_001)
    for a, s in [(0.9, 0.3), (0.2, 0.95), (1.0, 1e-3)]:
        x = np.array([-1.3, 0.0, 0.8, 2.5])
        psi = np.asarray(density.noised_features(jnp.asarray(x)[:, None], a, s)[0])
        for j, c in enumerate(np.asarray(centers[0])):
            integrand = np.exp(-0.5 * ((y - c) / 0.7) ** 2)[None] * np.exp(-0.5 * ((x[:, None] - a * y[None]) / s) ** 2)
            reference = np.trapezoid(integrand, y, axis=1) / (np.sqrt(2 * np.pi) * s)
            np.testing.assert_allclose(psi[:, j], reference, rtol=1e-6, atol=1e-12)


def test_one_bump_is_a_gaussian_with_the_exact_noised_score():
    """p0 ∝ N(c, h²) per coordinate: x_t ~ N(a c, a²h² + s²) and ε* = s (x − a c) / (a²h² + s²)."""
    c, h = jnp.array([[0.5], [-1.0]]), jnp.array([0.4, 0.8])
    density = TTDensity(TensorTrain([jnp.full((1, 1, 1), 2.0), jnp.ones((1, 1, 1))]), c, h)
    x = 4 * jax.random.normal(jax.random.key(0), (50, 2), jnp.float64)
    t = jax.random.randint(jax.random.key(1), (50,), 1, 1001)
    alpha_bar = jnp.exp(SCHEDULE.log_alpha_bar_at(t))[:, None]
    a, s = jnp.sqrt(alpha_bar), jnp.sqrt(1 - alpha_bar)
    exact = s * (x - a * c[:, 0]) / (a**2 * h**2 + s**2)
    # the posterior mean of y is kept inside the bumps' box c ± 4h (exact wherever it already lies there)
    mean = jnp.clip((x - s * exact) / a, c[:, 0] - 4 * h, c[:, 0] + 4 * h)
    inside = jnp.all(mean == (x - s * exact) / a, axis=1)
    assert 0.3 < float(inside.mean()) < 1.0  # both cases occur
    np.testing.assert_allclose(DensityDenoiser(density, SCHEDULE)(x, t), (x - a * mean) / s, rtol=1e-9, atol=1e-12)
    # ∫ p = 2 · √(2π)·0.4 · √(2π)·0.8
    np.testing.assert_allclose(density.normalizer(), 2 * 2 * np.pi * 0.4 * 0.8, rtol=1e-12)


@pytest.fixture(scope="module")
def diagonal_mixture_fit():
    means = jnp.array([[-1.5, 0.5, 1.0], [1.0, -1.0, 0.0]])
    covs = jnp.stack([jnp.diag(jnp.array([0.3, 0.5, 0.2]) ** 2), jnp.diag(jnp.array([0.4, 0.3, 0.5]) ** 2)])
    mixture = GaussianMixture(jnp.array([0.4, 0.6]), means, covs)
    density, losses = fit_density(mixture.sample(jax.random.key(0), 20_000), rank=2, m=20, key=jax.random.key(1))
    return mixture, density, losses


def test_fit_of_a_diagonal_mixture_gives_its_optimal_noise_at_every_step(diagonal_mixture_fit):
    """A mixture of K diagonal Gaussians is a rank-K TT density: one fit, ε* for every t without regression."""
    mixture, density, losses = diagonal_mixture_fit
    assert all(b <= a + 1e-6 * abs(a) for a, b in zip(losses, losses[1:])), losses  # up to the ridge term
    assert abs(float(density.normalizer()) - 1.0) < 0.02
    x_t, t, _ = training_triples(jax.random.key(3), mixture.sample(jax.random.key(4), 3000), SCHEDULE, 1)
    error = DensityDenoiser(density, SCHEDULE)(x_t, t) - mixture.optimal_eps(x_t, t, SCHEDULE)
    exact = mixture.optimal_eps(x_t, t, SCHEDULE)
    for (low, high), bound in {(1, 50): 0.12, (50, 200): 0.03, (200, 1001): 0.006}.items():
        rows = (t >= low) & (t < high)
        relative = float(jnp.linalg.norm(error[rows]) / jnp.linalg.norm(exact[rows]))
        assert relative < bound, (low, high, relative)
    y = mixture.sample(jax.random.key(5), 1000)
    log_p = density.log_prob(y)
    inside = jnp.isfinite(log_p)
    assert float(inside.mean()) > 0.99  # an L2 fit can dip below zero in the sparse tails
    assert float(jnp.median(jnp.abs(log_p[inside] - mixture.log_prob(y)[inside]))) < 0.05


def test_bad_input():
    with pytest.raises(ValueError, match="y must hold at least two samples"):
        fit_density(jnp.zeros((1, 2)), rank=1, m=4, key=jax.random.key(0))
    with pytest.raises(ValueError, match="m must be >= 2"):
        fit_density(jnp.zeros((10, 2)), rank=1, m=1, key=jax.random.key(0))
    with pytest.raises(TypeError, match="key"):
        fit_density(jnp.zeros((10, 2)), rank=1, m=4, key=0)


def test_probability_flow_likelihood_of_the_density_scores_is_its_own_log_density():
    """With the exact scores of its noised family, the PF-ODE likelihood of a TT density is log p_0 itself."""
    mixture = GaussianMixture(jnp.array([0.4, 0.6]), jnp.array([[-1.0, 0.5], [1.0, -0.5]]),
                              jnp.stack([jnp.diag(jnp.array([0.3, 0.5]) ** 2), jnp.diag(jnp.array([0.4, 0.3]) ** 2)]))
    density, _ = fit_density(mixture.sample(jax.random.key(0), 20_000), rank=2, m=20, key=jax.random.key(1))
    x = mixture.sample(jax.random.key(2), 20)
    ode = log_likelihood(DensityDenoiser(density, SCHEDULE), SCHEDULE, x, jax.random.key(3)).log_prob
    np.testing.assert_allclose(ode, density.log_prob(x), atol=5e-3)
    np.testing.assert_allclose(density.log_prob(x), mixture.log_prob(x), atol=0.15)  # the fit's own error
