"""GaussianMixture against scipy densities, autodiff scores, closed-form moments and Bayes-rule eps*."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import multivariate_normal

from jaxtt.data.mixture import GaussianMixture
from jaxtt.diffusion import cosine_schedule, linear_schedule

W = np.array([0.2, 0.5, 0.3])
MU = np.array([[-2.0, 0.0], [1.5, 1.0], [0.5, -1.5]])
COV = np.array([[[0.3, 0.1], [0.1, 0.2]], [[0.5, -0.2], [-0.2, 0.4]], [[0.15, 0.0], [0.0, 0.6]]])


@pytest.fixture(scope="module")
def gm():
    return GaussianMixture(jnp.asarray(W), jnp.asarray(MU), jnp.asarray(COV))


def _scipy_log_prob(x, w, mu, cov):
    dens = sum(wk * multivariate_normal(m, c).pdf(x) for wk, m, c in zip(w, mu, cov))
    return np.log(dens)


def test_log_prob_and_score(gm):
    x = np.random.default_rng(0).normal(size=(40, 2)) * 2
    np.testing.assert_allclose(gm.log_prob(x), _scipy_log_prob(x, W, MU, COV), rtol=1e-12)
    auto = jax.vmap(jax.grad(lambda xi: gm.log_prob(xi[None])[0]))(jnp.asarray(x))
    np.testing.assert_allclose(gm.score(x), auto, rtol=1e-10, atol=1e-12)
    # weights are normalised
    unnormalised = GaussianMixture(jnp.asarray(3 * W), jnp.asarray(MU), jnp.asarray(COV))
    np.testing.assert_allclose(unnormalised.log_prob(x), gm.log_prob(x), rtol=1e-12)


def test_sample_moments(gm):
    x = np.asarray(gm.sample(jax.random.key(0), 40000))
    mean = W @ MU
    cov = sum(w * (c + np.outer(m, m)) for w, m, c in zip(W, MU, COV)) - np.outer(mean, mean)
    assert x.shape == (40000, 2)
    assert np.all(np.abs(x.mean(0) - mean) < 5 * np.sqrt(np.diag(cov) / 40000))
    np.testing.assert_allclose(np.cov(x.T), cov, atol=0.05)


def test_noised_is_the_law_of_x_t(gm):
    ab = 0.3
    noised = gm.noised(ab)
    np.testing.assert_allclose(noised.means, np.sqrt(ab) * MU)
    np.testing.assert_allclose(noised.covs, ab * COV + (1 - ab) * np.eye(2))
    # Monte Carlo: log-density of sqrt(ab) x0 + sqrt(1-ab) eps matches scipy on the noised parameters,
    # and the sample moments of x_t match the noised mixture's
    key0, key1 = jax.random.split(jax.random.key(1))
    x0 = gm.sample(key0, 30000)
    xt = np.sqrt(ab) * x0 + np.sqrt(1 - ab) * jax.random.normal(key1, x0.shape, dtype=x0.dtype)
    ref = noised.sample(jax.random.key(2), 30000)
    np.testing.assert_allclose(np.mean(xt, 0), np.mean(ref, 0), atol=0.03)
    np.testing.assert_allclose(np.cov(np.asarray(xt).T), np.cov(np.asarray(ref).T), atol=0.04)
    pts = np.asarray(xt[:20])
    np.testing.assert_allclose(
        noised.log_prob(pts), _scipy_log_prob(pts, W, np.sqrt(ab) * MU, ab * COV + (1 - ab) * np.eye(2)), rtol=1e-12
    )


def _bayes_eps_star(x, ab, w, mu, cov):
    """E[eps | x_t] = (x_t - sqrt(ab) E[x0 | x_t]) / sqrt(1 - ab), with E[x0 | x_t] from per-component
    Gaussian conditioning weighted by the posterior component probabilities (plain numpy/scipy)."""
    out = np.zeros_like(x)
    for i, xi in enumerate(x):
        post_w, post_m = [], []
        for wk, m, c in zip(w, mu, cov):
            s_t = ab * c + (1 - ab) * np.eye(len(m))
            post_w.append(wk * multivariate_normal(np.sqrt(ab) * m, s_t).pdf(xi))
            gain = np.sqrt(ab) * c @ np.linalg.inv(s_t)
            post_m.append(m + gain @ (xi - np.sqrt(ab) * m))
        post_w = np.asarray(post_w) / np.sum(post_w)
        x0_mean = post_w @ np.asarray(post_m)
        out[i] = (xi - np.sqrt(ab) * x0_mean) / np.sqrt(1 - ab)
    return out


def test_optimal_eps_is_the_posterior_mean_of_the_noise(gm):
    sched = cosine_schedule(50)
    x = np.random.default_rng(3).normal(size=(12, 2)) * 1.5
    t = np.array([1, 2, 5, 10, 20, 25, 30, 35, 40, 45, 49, 50], dtype=np.int32)
    got = np.asarray(gm.optimal_eps(x, t, sched))
    ab = np.asarray(sched.alpha_bars)[t]
    want = np.stack([_bayes_eps_star(x[i : i + 1], ab[i], W, MU, COV)[0] for i in range(12)])
    np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-10)
    # real t on the integer grid agrees with integer t; a scalar t broadcasts
    np.testing.assert_allclose(gm.optimal_eps(x, t.astype(np.float64), sched), got, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gm.optimal_eps(x, 10, sched), gm.optimal_eps(x, np.full(12, 10), sched))


def test_optimal_eps_minimises_the_denoising_loss():
    """eps* has a lower L_simple at fixed t than perturbations of it (it is the conditional mean)."""
    g = GaussianMixture(jnp.asarray(W), jnp.asarray(MU), jnp.asarray(COV))
    sched = linear_schedule(20, 1e-2, 0.2)
    k0, k1 = jax.random.split(jax.random.key(4))
    x0 = g.sample(k0, 4000)
    eps = jax.random.normal(k1, x0.shape, dtype=x0.dtype)
    t = 8
    ab = float(sched.alpha_bars[t])
    xt = np.sqrt(ab) * x0 + np.sqrt(1 - ab) * eps
    best = g.optimal_eps(xt, t, sched)
    loss = lambda e: float(jnp.mean(jnp.sum((eps - e) ** 2, axis=1)))  # noqa: E731
    base = loss(best)
    for pert in (0.9 * best, best + 0.05, best + 0.1 * xt):
        assert loss(pert) > base


def test_float32_keeps_dtype(gm):
    x = np.random.default_rng(0).normal(size=(5, 2)).astype(np.float32)
    sched = linear_schedule(10)
    assert gm.log_prob(x).dtype == jnp.float32
    assert gm.score(x).dtype == jnp.float32
    assert gm.optimal_eps(x, np.full(5, 3), sched).dtype == jnp.float32
    np.testing.assert_allclose(gm.log_prob(x), gm.log_prob(x.astype(np.float64)), rtol=1e-5)
    g32 = GaussianMixture(jnp.asarray(W, jnp.float32), jnp.asarray(MU, jnp.float32), jnp.asarray(COV, jnp.float32))
    assert g32.sample(jax.random.key(0), 3).dtype == jnp.float32


@pytest.mark.parametrize(
    "args, err",
    [
        ((W, MU, COV[:2]), ValueError),
        ((W[:2], MU, COV), ValueError),
        ((-W, MU, COV), ValueError),
        ((W, MU, -COV), ValueError),
        ((W, MU, COV + np.array([[0, 0.05], [0, 0]])), ValueError),
        ((W, MU.astype(np.int32), COV), TypeError),
        ((W, np.where(MU > 1, np.nan, MU), COV), ValueError),
    ],
)
def test_bad_parameters(args, err):
    with pytest.raises(err):
        GaussianMixture(*args)


def test_bad_points(gm):
    with pytest.raises(ValueError, match="x"):
        gm.log_prob(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="t"):
        gm.optimal_eps(np.zeros((3, 2)), np.array([0, 1, 2]), linear_schedule(5))
    with pytest.raises(ValueError, match="alpha_bar"):
        gm.noised(1.5)
