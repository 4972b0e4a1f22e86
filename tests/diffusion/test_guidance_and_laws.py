"""Guidance against closed forms on Gaussian mixtures, sampler output laws against exact discrete laws, and
the loss in every parameterization and weighting."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.stats import multivariate_normal

from jaxtt.data.mixture import GaussianMixture
from jaxtt.diffusion import (
    DDIM,
    DDPM,
    ClassifierFreeGuidance,
    ClassifierGuidance,
    DPMSolver,
    EulerMaruyama,
    Langevin,
    PredictorCorrector,
    convert_prediction,
    cosine_schedule,
    ddpm_loss,
    loss_weights,
    sample,
)
from jaxtt.metrics import mmd

T = 100
SCHED = cosine_schedule(T)


class ComponentLogProb(eqx.Module):
    """The exact classifier log p(y = k | x_t) of a mixture noised to step t (Bayes' rule, closed form)."""

    mixture: GaussianMixture

    def __call__(self, x, t, y):
        ab = SCHED.alpha_bar_at(t)[:, None, None]
        means = jnp.sqrt(ab) * self.mixture.means[None]
        covs = ab[..., None] * self.mixture.covs[None] + (1 - ab[..., None]) * jnp.eye(x.shape[1])
        log_n = jax.vmap(lambda xi, m, c: jax.vmap(lambda mk, ck: multivariate_normal.logpdf(xi, mk, ck))(m, c))(
            x, means, covs
        )
        joint = jnp.log(self.mixture.weights) + log_n
        return jnp.take_along_axis(joint, y[:, None], axis=1)[:, 0] - jax.nn.logsumexp(joint, axis=1)


def test_classifier_guidance_with_the_exact_classifier_is_the_component_model(mixture, optimal_eps):
    """w = 1: eps* - s_t grad log p(k | x_t) = eps* of component k alone, at every t (Dhariwal & Nichol eq. 14)."""
    k = 2
    guided = ClassifierGuidance(optimal_eps(mixture, SCHED), ComponentLogProb(mixture), k, SCHED, scale=1.0)
    component = GaussianMixture(jnp.ones(1), mixture.means[k:k + 1], mixture.covs[k:k + 1])
    x = jax.random.normal(jax.random.key(0), (64, 2), dtype=jnp.float64) * 2.0
    for t in (1, 10, 50, 99):
        ts = jnp.full((64,), t)
        np.testing.assert_allclose(guided(x, ts), component.optimal_eps(x, ts, SCHED), rtol=1e-8, atol=1e-8)
    # and sampling with it puts the mass on component k, as the closed form says (all of it for w = 1)
    xs = sample(guided, SCHED, DPMSolver(steps=20), jax.random.key(1), (400, 2)).samples
    dist = jnp.linalg.norm(xs[:, None, :] - mixture.means[None], axis=-1)
    assert float(jnp.mean(jnp.argmin(dist, axis=1) == k)) > 0.98
    assert float(mmd(xs, component.sample(jax.random.key(2), 400))) < 0.01


def test_classifier_guidance_of_an_x0_model_converts_first(mixture, optimal_eps):
    eps_model = optimal_eps(mixture, SCHED)

    def x0_model(x, t):
        return convert_prediction(SCHED, x, t, eps_model(x, t), source="eps", target="x0")

    log_prob = ComponentLogProb(mixture)
    a = ClassifierGuidance(eps_model, log_prob, 0, SCHED, scale=2.5)
    b = ClassifierGuidance(x0_model, log_prob, 0, SCHED, scale=2.5, prediction="x0")
    x, t = jax.random.normal(jax.random.key(3), (16, 2), dtype=jnp.float64), jnp.arange(1, 17) * 5
    np.testing.assert_allclose(a(x, t), b(x, t), rtol=1e-9, atol=1e-9)


class Conditional(eqx.Module):
    """A conditional model eps(x, t, y) whose label enters non-linearly; label 3 is the null label."""

    def __call__(self, x, t, y):
        return jnp.tanh(0.5 * x + 0.3 * y[:, None] + t[:, None].astype(x.dtype) / T)


def test_classifier_free_guidance_formula_and_w_zero():
    cond = Conditional()
    x = jax.random.normal(jax.random.key(4), (8, 2), dtype=jnp.float64)
    t = jnp.arange(8) * 10 + 1
    y, null = jnp.arange(8) % 3, jnp.full((8,), 3)
    for w in (0.0, 1.5, -1.0):
        guided = ClassifierFreeGuidance(cond, label=y, null_label=3, scale=w)
        want = (1 + w) * cond(x, t, y) - w * cond(x, t, null)  # Ho & Salimans 2022 eq. 6
        np.testing.assert_allclose(guided(x, t), want, rtol=1e-12)
    # a time-dependent scale w(t)
    guided = ClassifierFreeGuidance(cond, label=y, null_label=3, scale=lambda t: t / 100.0)
    w = (t / 100.0)[:, None]
    np.testing.assert_allclose(guided(x, t), (1 + w) * cond(x, t, y) - w * cond(x, t, null), rtol=1e-12)
    # w = 0 samples exactly like the conditional model, with every sampler
    for sampler in (DDIM(steps=10, eta=0.5), DPMSolver(steps=8, order=3), DDPM()):
        a = sample(ClassifierFreeGuidance(cond, 1, 3, 0.0), SCHED, sampler, jax.random.key(5), (6, 2)).samples
        b = sample(lambda x, t: cond(x, t, jnp.ones_like(t)), SCHED, sampler, jax.random.key(5), (6, 2)).samples
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "sampler",
    [DPMSolver(steps=10), DPMSolver(steps=20, order=3), DDPM(timesteps=np.arange(100, 0, -2)),
     EulerMaruyama(), PredictorCorrector(DDIM(steps=50), Langevin(snr=0.1))],
    ids=["dpm10", "dpm3-20", "ddpm-50", "euler-maruyama", "pc"],
)
def test_samplers_reach_the_mmd_floor_on_an_exact_mixture(mixture, optimal_eps, sampler):
    n = 1000
    data = mixture.sample(jax.random.key(7), n)
    xs = sample(optimal_eps(mixture, SCHED), SCHED, sampler, jax.random.key(8), (n, 2)).samples
    # MMD^2 between two independent data samples of this size fluctuates by ~3e-3 around 0
    assert float(mmd(data, xs)) < 0.01


def test_euler_maruyama_reproduces_its_discrete_gaussian_law(gaussian, optimal_eps):
    """x' = x + b ds (x/2 - A (x - a mu)/s) + sqrt(b ds) z is affine-Gaussian: propagate mean and covariance."""
    mu, sigma = np.asarray(gaussian.means[0]), np.asarray(gaussian.covs[0])
    grid = np.arange(T, 0, -4)
    sampler = EulerMaruyama(timesteps=grid)
    x = sample(optimal_eps(gaussian, SCHED), SCHED, sampler, jax.random.key(9), (10000, 2)).samples
    ab = np.asarray(SCHED.alpha_bars)
    beta = np.asarray(SCHED.beta_continuous(jnp.asarray(grid / T)))
    m, C, eye = np.zeros(2), np.eye(2), np.eye(2)
    for t, p, b in zip(grid, list(grid[1:]) + [0], beta):
        s = np.sqrt(1 - ab[t])
        A = s * np.linalg.inv(ab[t] * sigma + (1 - ab[t]) * eye)  # eps*(x) = A (x - sqrt(ab) mu)
        ds = (t - p) / T
        M = eye + b * ds * (0.5 * eye - A / s)
        c = b * ds * A @ (np.sqrt(ab[t]) * mu) / s
        var = b * ds if p > 0 else 0.0
        m, C = M @ m + c, M @ C @ M.T + var * eye
    x = np.asarray(x)
    se_mean = np.sqrt(np.diag(C) / x.shape[0])
    assert np.all(np.abs(x.mean(0) - m) < 5 * se_mean), (x.mean(0), m)
    se_cov = np.sqrt((np.outer(np.diag(C), np.diag(C)) + C**2) / x.shape[0])
    assert np.all(np.abs(np.cov(x.T) - C) < 5 * se_cov), (np.cov(x.T), C)


class Linear(eqx.Module):
    def __call__(self, x, t):
        return 0.7 * x + 0.01 * t[:, None].astype(x.dtype)


@pytest.mark.parametrize("prediction", ["x0", "v", "score"])
@pytest.mark.parametrize("weighting", ["uniform", "snr", "min_snr", "p2"])
def test_the_loss_is_one_objective_in_every_parameterization(prediction, weighting):
    """A model converted to another parameterization, weighted by loss_weights, has exactly the same loss."""

    def converted(x, t):
        return convert_prediction(SCHED, x, t, Linear()(x, t), source="eps", target=prediction)

    x0 = jax.random.normal(jax.random.key(10), (64, 3), dtype=jnp.float64)
    key = jax.random.key(11)
    eps_loss = ddpm_loss(Linear(), SCHED, key, x0, loss_weights(SCHED, weighting))
    own = ddpm_loss(converted, SCHED, key, x0, loss_weights(SCHED, weighting, prediction=prediction),
                    prediction=prediction)
    np.testing.assert_allclose(own, eps_loss, rtol=1e-10)


def test_loss_weights_closed_forms():
    ab = np.asarray(SCHED.alpha_bars)[1:]
    snr = ab / (1 - ab)
    np.testing.assert_allclose(loss_weights(SCHED, "min_snr", prediction="x0")[1:], np.minimum(snr, 5.0), rtol=1e-10)
    np.testing.assert_allclose(loss_weights(SCHED, "min_snr", prediction="v")[1:], np.minimum(snr, 5.0) / (snr + 1),
                               rtol=1e-10)
    np.testing.assert_allclose(loss_weights(SCHED, "p2", gamma=0.5)[1:], (1 + snr) ** -0.5, rtol=1e-10)
    np.testing.assert_allclose(loss_weights(SCHED, "snr")[1:], snr, rtol=1e-10)
    assert float(loss_weights(SCHED)[0]) == 0.0
    with pytest.raises(ValueError, match="weighting"):
        loss_weights(SCHED, "truncated")
    with pytest.raises(ValueError, match="gamma"):
        loss_weights(SCHED, "min_snr", gamma=0.0)
    with pytest.raises(ValueError, match="x0"):
        ddpm_loss(Linear(), SCHED, jax.random.key(0), jnp.zeros((0, 2)))
