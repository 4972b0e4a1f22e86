"""Probability-flow ODE: the exact Gaussian flow, encode/decode inversion, DDIM as its discretisation and
exact log-likelihoods of Gaussian and mixture data."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxtt.data.mixture import GaussianMixture
from jaxtt.diffusion import cosine_schedule, ddim_sample, linear_schedule, log_likelihood, ode_encode, ode_sample

# alpha_bar(1) ~ 2e-9: the N(0, I) prior at s = 1 is exact to ~1e-4 in log-density
LONG = linear_schedule(1000, 1e-4, 0.04)


def _gaussian_flow(x, ab_from, ab_to, mu, sigma):
    """The exact PF-ODE map between the marginals N(sqrt(ab) mu, ab sigma + (1 - ab) I): in the eigenbasis of
    sigma each coordinate scales by sqrt(lam_to / lam_from) about the moving mean."""
    lam, U = np.linalg.eigh(sigma)
    l_from, l_to = ab_from * lam + 1 - ab_from, ab_to * lam + 1 - ab_to
    y = (x - np.sqrt(ab_from) * mu) @ U * np.sqrt(l_to / l_from)
    return y @ U.T + np.sqrt(ab_to) * mu


def test_encode_is_the_exact_gaussian_flow(gaussian, optimal_eps):
    mu, sigma = np.asarray(gaussian.means[0]), np.asarray(gaussian.covs[0])
    sched = cosine_schedule(50)
    eps_fn = optimal_eps(gaussian, sched)
    x = np.asarray(gaussian.sample(jax.random.key(0), 16))
    tol = dict(rtol=1e-9, atol=1e-9)
    z = ode_encode(eps_fn, sched, x, s_min=1e-3, **tol)
    ab0, ab1 = float(sched.alpha_bar_continuous(1e-3)), float(sched.alpha_bars[-1])
    np.testing.assert_allclose(z, _gaussian_flow(x, ab0, ab1, mu, sigma), atol=1e-7)


def test_mixture_round_trip_and_ddim_converges_to_the_ode(mixture, optimal_eps):
    eps_fn = optimal_eps(mixture, LONG)
    x = mixture.sample(jax.random.key(2), 64)
    tol = dict(rtol=1e-7, atol=1e-7)
    z = ode_encode(eps_fn, LONG, x, s_min=1e-3, **tol)
    back = ode_sample(eps_fn, LONG, jax.random.key(3), x.shape, x_init=z, s_min=1e-3, **tol)
    np.testing.assert_allclose(back, x, atol=1e-5)
    # deterministic DDIM decodes the same latent; its error shrinks as the step count grows
    errors = [
        float(jnp.max(jnp.abs(ddim_sample(eps_fn, LONG, jax.random.key(4), x.shape, n, x_init=z) - x)))
        for n in (25, 250)
    ]
    assert errors[1] < 0.3 * errors[0] and errors[1] < 0.05, errors


def test_log_likelihood_is_exact_for_gaussian_and_mixture_data(gaussian, mixture, optimal_eps):
    for dist in (gaussian, mixture):
        x = dist.sample(jax.random.key(5), 8)
        ll = log_likelihood(optimal_eps(dist, LONG), LONG, x, jax.random.key(6), rtol=1e-7, atol=1e-7)
        exact = np.asarray(dist.log_prob(x))
        np.testing.assert_allclose(ll.log_prob, exact, rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(ll.bits_per_dim, -exact / (2 * np.log(2)), rtol=1e-3, atol=1e-4)


def test_hutchinson_divergence(optimal_eps):
    """With a diagonal covariance the field's Jacobian is diagonal, so one Rademacher probe is exact;
    otherwise the estimate is unbiased: its mean over probes approaches the exact value."""
    diag = GaussianMixture(jnp.ones(1), jnp.array([[0.5, -1.0]]), jnp.array([[[0.4, 0.0], [0.0, 1.7]]]))
    x = diag.sample(jax.random.key(7), 6)
    ll = log_likelihood(optimal_eps(diag, LONG), LONG, x, jax.random.key(8), divergence="hutchinson")
    np.testing.assert_allclose(ll.log_prob, diag.log_prob(x), rtol=1e-3)
    full = GaussianMixture(jnp.ones(1), jnp.array([[0.0, 0.0]]), jnp.array([[[1.0, 0.8], [0.8, 1.0]]]))
    points = full.sample(jax.random.key(9), 2)
    x = jnp.repeat(points, 32, axis=0)  # every row gets its own probe: 32 independent estimates per point
    ll = log_likelihood(optimal_eps(full, LONG), LONG, x, jax.random.key(10), divergence="hutchinson")
    estimates = np.asarray(ll.log_prob).reshape(2, 32)
    exact = np.asarray(full.log_prob(points))
    assert np.max(np.abs(estimates - exact[:, None])) > 0.05  # single probes are noisy here ...
    se = np.std(estimates, axis=1) / np.sqrt(32)
    assert np.all(np.abs(np.mean(estimates, axis=1) - exact) < 5 * se + 1e-3)  # ... but unbiased


def test_float32_trajectory_options_and_bad_input(gaussian, optimal_eps):
    eps_fn = optimal_eps(gaussian, LONG)
    x32 = np.asarray(gaussian.sample(jax.random.key(11), 4), dtype=np.float32)
    ll = log_likelihood(eps_fn, LONG, x32, jax.random.key(0), s_min=1e-4)
    assert ll.log_prob.dtype == jnp.float32
    np.testing.assert_allclose(ll.log_prob, gaussian.log_prob(x32.astype(np.float64)), rtol=2e-3)
    # another diffrax solver, integer time queries and a trajectory from s = 1 to s_min, in float32
    out, traj = ode_sample(
        eps_fn, LONG, jax.random.key(0), (4, 2), True, x_init=x32, solver=diffrax.Dopri5(), integer_t=True,
        trajectory_points=5,
    )
    assert out.dtype == jnp.float32 and traj.shape == (5, 4, 2)
    np.testing.assert_allclose(traj[0], x32, rtol=1e-6)
    np.testing.assert_array_equal(traj[-1], out)
    assert bool(jnp.all(jnp.isfinite(out)))
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="s_min"):
        ode_sample(eps_fn, LONG, key, (3, 2), s_min=0.0)
    with pytest.raises(ValueError, match="divergence"):
        log_likelihood(eps_fn, LONG, x32, key, divergence="trace")
    with pytest.raises(TypeError, match="solver"):
        ode_encode(eps_fn, LONG, x32, solver="rk4")
    with pytest.raises(ValueError, match="x"):
        log_likelihood(eps_fn, LONG, np.full((2, 2), np.nan), key)
    with pytest.raises(ValueError, match="model"):
        ode_sample(lambda x, t: x[:, :1], LONG, key, (3, 2))
