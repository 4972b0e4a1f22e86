"""Samplers driven by the exact eps* of Gaussian data reproduce the distribution that the discrete sampler
must produce (an affine-Gaussian recursion computed in numpy), and mixtures within sampling error (MMD)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxtt.diffusion import (
    cosine_schedule,
    ddim_sample,
    ddim_timesteps,
    ddpm_sample,
    langevin_sample,
    linear_schedule,
    ode_sample,
)
from jaxtt.metrics import mmd

T = 100
N = 10000
SCHED = cosine_schedule(T)


def _np_alpha_bars(T):
    grid = np.arange(T + 1) / T
    f = np.cos((grid + 0.008) / 1.008 * np.pi / 2) ** 2
    betas = np.minimum(1 - f[1:] / f[:-1], 0.999)
    return np.concatenate([[0.0], betas]), np.concatenate([[1.0], np.cumprod(1 - betas)])


BETAS, AB = _np_alpha_bars(T)


def _eps_matrix(ab, sigma):
    """eps*(x) = A (x - sqrt(ab) mu) for data N(mu, sigma): A = sqrt(1 - ab) (ab sigma + (1 - ab) I)^{-1}."""
    return np.sqrt(1 - ab) * np.linalg.inv(ab * sigma + (1 - ab) * np.eye(len(sigma)))


def _propagate(steps, mu):
    """Mean and covariance after x <- M x + c + s z from x ~ N(0, I), for steps (M, c, s)."""
    m, C = np.zeros(len(mu)), np.eye(len(mu))
    for M, c, s in steps:
        m, C = M @ m + c, M @ C @ M.T + s**2 * np.eye(len(mu))
    return m, C


def _ddpm_steps(mu, sigma, variance):
    eye = np.eye(len(mu))
    for t in range(T, 0, -1):
        A = _eps_matrix(AB[t], sigma)
        k = BETAS[t] / np.sqrt(1 - AB[t])  # Ho et al. 2020, eq. 11
        M = (eye - k * A) / np.sqrt(1 - BETAS[t])
        c = k * A @ (np.sqrt(AB[t]) * mu) / np.sqrt(1 - BETAS[t])
        var = BETAS[t] if variance == "beta" else (1 - AB[t - 1]) / (1 - AB[t]) * BETAS[t]
        yield M, c, (np.sqrt(var) if t > 1 else 0.0)


def _ddim_steps(mu, sigma, steps, eta):
    eye = np.eye(len(mu))
    taus = list(ddim_timesteps(T, steps)) + [0]
    for t, p in zip(taus[:-1], taus[1:]):
        A = _eps_matrix(AB[t], sigma)
        s2 = eta**2 * (1 - AB[p]) / (1 - AB[t]) * (1 - AB[t] / AB[p])  # Song et al. 2021 (DDIM), eq. 16
        # Song et al. 2021 (DDIM), eq. 12: x_p = sqrt(ab_p) (x - sqrt(1 - ab_t) eps) / sqrt(ab_t) + sqrt(1 - ab_p - s2) eps + s z
        ce = np.sqrt(max(1 - AB[p] - s2, 0.0)) - np.sqrt(AB[p] / AB[t]) * np.sqrt(1 - AB[t])
        yield np.sqrt(AB[p] / AB[t]) * eye + ce * A, -ce * A @ (np.sqrt(AB[t]) * mu), np.sqrt(s2)


def _langevin_steps(ab, mu, sigma, levels, n_steps, step_size):
    eye = np.eye(len(mu))
    taus = ddim_timesteps(len(ab) - 1, levels)
    std = np.sqrt(1 - ab[taus])
    for tau, s in zip(taus, std):
        A = _eps_matrix(ab[tau], sigma)
        a = step_size * s**2 / std[-1] ** 2
        # x + a/2 * score + sqrt(a) z with score = -eps*/s (Song & Ermon 2019, Algorithm 1)
        for _ in range(n_steps):
            yield eye - 0.5 * a / s * A, 0.5 * a / s * A @ (np.sqrt(ab[tau]) * mu), np.sqrt(a)


def _assert_moments(x, mean, cov):
    x = np.asarray(x)
    n = x.shape[0]
    se_mean = np.sqrt(np.diag(cov) / n)
    assert np.all(np.abs(x.mean(0) - mean) < 5 * se_mean), (x.mean(0), mean)
    se_cov = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n)
    assert np.all(np.abs(np.cov(x.T) - cov) < 5 * se_cov), (np.cov(x.T), cov)


@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_ddpm_reproduces_gaussian_data(gaussian, optimal_eps, variance):
    mu, sigma = np.asarray(gaussian.means[0]), np.asarray(gaussian.covs[0])
    x = ddpm_sample(optimal_eps(gaussian, SCHED), SCHED, jax.random.key(0), (N, 2), variance=variance)
    mean, cov = _propagate(_ddpm_steps(mu, sigma, variance), mu)
    _assert_moments(x, mean, cov)
    # and the discrete sampler's law is close to the data law N(mu, sigma)
    np.testing.assert_allclose(mean, mu, atol=0.02)
    np.testing.assert_allclose(cov, sigma, atol=0.05)


def test_ddim_eta0_is_the_deterministic_affine_map(gaussian, optimal_eps):
    mu, sigma = np.asarray(gaussian.means[0]), np.asarray(gaussian.covs[0])
    x_init = jax.random.normal(jax.random.key(1), (64, 2), dtype=jnp.float64)
    eps_fn = optimal_eps(gaussian, SCHED)
    out = ddim_sample(eps_fn, SCHED, jax.random.key(2), (64, 2), 10, x_init=x_init)
    again = ddim_sample(eps_fn, SCHED, jax.random.key(3), (64, 2), 10, x_init=x_init)
    np.testing.assert_array_equal(out, again)  # eta = 0: the key does not matter
    want = np.asarray(x_init)
    for M, c, _ in _ddim_steps(mu, sigma, 10, 0.0):
        want = want @ M.T + c
    np.testing.assert_allclose(out, want, rtol=1e-10, atol=1e-12)


def test_ddim_stochastic_reproduces_the_discrete_law(gaussian, optimal_eps):
    mu, sigma = np.asarray(gaussian.means[0]), np.asarray(gaussian.covs[0])
    x = ddim_sample(optimal_eps(gaussian, SCHED), SCHED, jax.random.key(4), (N, 2), 25, eta=0.5)
    _assert_moments(x, *_propagate(_ddim_steps(mu, sigma, 25, 0.5), mu))


def test_ddim_with_all_steps_and_eta1_is_ddpm_beta_tilde(mixture, optimal_eps):
    eps_fn = optimal_eps(mixture, SCHED)
    a = ddim_sample(eps_fn, SCHED, jax.random.key(5), (256, 2), T, eta=1.0)
    b = ddpm_sample(eps_fn, SCHED, jax.random.key(5), (256, 2), variance="beta_tilde")
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)


def test_langevin_reproduces_the_discrete_law(gaussian, optimal_eps):
    """Annealed Langevin with a schedule whose smallest level is not tiny, so the last level mixes."""
    mu, sigma = np.asarray(gaussian.means[0]), np.asarray(gaussian.covs[0])
    sched = linear_schedule(10, 0.05, 0.5)
    ab = np.concatenate([[1.0], np.cumprod(1 - np.linspace(0.05, 0.5, 10))])
    args = dict(levels=4, n_steps=150, step_size=0.1)
    x = langevin_sample(optimal_eps(gaussian, sched), sched, jax.random.key(6), (N, 2), **args)
    mean, cov = _propagate(_langevin_steps(ab, mu, sigma, **args), mu)
    _assert_moments(x, mean, cov)
    # the chain has reached the stationary law of the unadjusted step at the last level t = 1:
    # mean sqrt(ab_1) mu, and per eigen-direction variance lam / (1 - a / (4 lam))
    lam, U = np.linalg.eigh(ab[1] * sigma + (1 - ab[1]) * np.eye(2))
    np.testing.assert_allclose(mean, np.sqrt(ab[1]) * mu, atol=1e-4)
    np.testing.assert_allclose(cov, U @ np.diag(lam / (1 - 0.1 / (4 * lam))) @ U.T, atol=1e-4)


def test_samplers_reproduce_a_mixture(mixture, optimal_eps):
    n = 1000
    data = mixture.sample(jax.random.key(7), n)
    eps_fn = optimal_eps(mixture, SCHED)
    ddpm = ddpm_sample(eps_fn, SCHED, jax.random.key(9), (n, 2))
    ddim = ddim_sample(eps_fn, SCHED, jax.random.key(10), (n, 2), 50)
    # MMD^2 between two independent data samples of this size fluctuates by ~3e-3 around 0
    threshold = 0.01
    assert abs(float(mmd(data, mixture.sample(jax.random.key(8), n)))) < threshold
    assert float(mmd(data, ddpm)) < threshold
    assert float(mmd(data, ddim)) < threshold
    assert float(mmd(data, ode_sample(eps_fn, SCHED, jax.random.key(11), (n, 2)))) < threshold
    # annealed Langevin targets q(x_1), the data law noised to the smallest level of its schedule
    sched = linear_schedule(10, 0.05, 0.5)
    lang = langevin_sample(optimal_eps(mixture, sched), sched, jax.random.key(12), (n, 2), 10, 100, 0.02)
    noised = mixture.noised(sched.alpha_bars[1]).sample(jax.random.key(13), n)
    assert float(mmd(noised, lang)) < threshold
    # the threshold detects a mixture with the wrong component weights (MMD^2 ~ 0.3)
    wrong = type(mixture)(jnp.array([0.6, 0.3, 0.1]), mixture.means, mixture.covs)
    assert float(mmd(data, wrong.sample(jax.random.key(10), n))) > 10 * threshold


def test_trajectories_dtypes_and_transformations(mixture, optimal_eps):
    sched = linear_schedule(22, 1e-3, 0.3)  # 22 steps: remat blocks of 5 steps plus a head of 2
    eps_fn = optimal_eps(mixture, sched)
    x_init = jax.random.normal(jax.random.key(11), (8, 2), dtype=jnp.float32)
    out, traj = ddpm_sample(eps_fn, sched, jax.random.key(12), (8, 2), return_trajectory=True, x_init=x_init)
    assert out.dtype == jnp.float32 and traj.shape == (23, 8, 2) and traj.dtype == jnp.float32
    np.testing.assert_array_equal(traj[0], x_init)
    np.testing.assert_array_equal(traj[-1], out)
    _, flat = ddpm_sample(eps_fn, sched, jax.random.key(12), (8, 2), "beta", True, x_init=x_init, checkpoint=False)
    np.testing.assert_allclose(flat, traj, rtol=1e-6, atol=1e-6)
    # float32 and float64 agree on the deterministic sampler (random draws differ between dtypes)
    out32, traj = ddim_sample(eps_fn, sched, jax.random.key(12), (8, 2), 5, return_trajectory=True, x_init=x_init)
    out64 = ddim_sample(eps_fn, sched, jax.random.key(12), (8, 2), 5, x_init=x_init.astype(jnp.float64))
    assert out32.dtype == jnp.float32 and traj.shape == (6, 8, 2)
    np.testing.assert_allclose(out32, out64, rtol=1e-4, atol=1e-4)
    # works inside the user's transformations
    keys = jax.random.split(jax.random.key(14), 2)
    batched = jax.vmap(lambda k: ddim_sample(eps_fn, sched, k, (8, 2), 4, eta=0.3))(keys)
    np.testing.assert_allclose(batched[1], ddim_sample(eps_fn, sched, keys[1], (8, 2), 4, eta=0.3), rtol=1e-12)


def _wrong_shape(x, t):
    return x[:, :1]


@pytest.mark.parametrize(
    "call, err, match",
    [
        (lambda f, k: ddim_sample(f, SCHED, k, (4, 2), 0), ValueError, "steps"),
        (lambda f, k: ddim_sample(f, SCHED, k, (4, 2), T + 1), ValueError, "steps"),
        (lambda f, k: ddim_sample(f, SCHED, k, (4, 2), 10, eta=-0.1), ValueError, "eta"),
        (lambda f, k: ddim_sample(f, SCHED, k, (4, 2), 10, eta=1.5), ValueError, "eta"),
        (lambda f, k: ddim_sample(_wrong_shape, SCHED, k, (4, 2), 10), ValueError, "model"),
        (lambda f, k: ddpm_sample(_wrong_shape, SCHED, k, (4, 2)), ValueError, "model"),
        (lambda f, k: ddpm_sample(f, SCHED, k, (4, 2), variance="sigma"), ValueError, "variance"),
        (lambda f, k: ddpm_sample(f, SCHED, k, (4, -2)), ValueError, "shape"),
        (lambda f, k: ddpm_sample(f, SCHED, k, (4, 2), x_init=jnp.zeros((4, 3))), ValueError, "x_init"),
        (lambda f, k: ddpm_sample(f, SCHED, k, (4, 2), x_init=jnp.full((4, 2), jnp.nan)), ValueError, "x_init"),
        (lambda f, k: ddpm_sample(f, SCHED, 0, (4, 2)), TypeError, "key"),
        (lambda f, k: ddpm_sample(None, SCHED, k, (4, 2)), TypeError, "eps_fn"),
        (lambda f, k: langevin_sample(f, SCHED, k, (4, 2), 0, 5, 0.1), ValueError, "levels"),
        (lambda f, k: langevin_sample(f, SCHED, k, (4, 2), 3, 5, 0.0), ValueError, "step_size"),
        (lambda f, k: ddim_timesteps(0, 1), ValueError, "T"),
    ],
)
def test_bad_input(call, err, match):
    with pytest.raises(err, match=match):
        call(lambda x, t: x, jax.random.key(0))
