"""Forward process, conversions and the DDPM loss against closed forms and the exact optimal denoiser."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxtt.data.mixture import GaussianMixture
from jaxtt.diffusion import (
    cosine_schedule,
    ddpm_loss,
    eps_to_score,
    linear_schedule,
    predict_x0,
    q_sample,
    score_to_eps,
    training_triples,
)

SCHED = linear_schedule(30, 1e-3, 0.2)
MU = np.array([0.5, -1.0])
SIGMA = np.array([[0.6, 0.25], [0.25, 0.4]])


def test_q_sample_closed_form_and_real_t():
    rng = np.random.default_rng(0)
    x0, eps = rng.normal(size=(6, 3, 2)), rng.normal(size=(6, 3, 2))
    t = np.array([1, 3, 7, 12, 29, 30])
    ab = np.cumprod(1 - np.linspace(1e-3, 0.2, 30))[t - 1]
    want = np.sqrt(ab)[:, None, None] * x0 + np.sqrt(1 - ab)[:, None, None] * eps
    np.testing.assert_allclose(q_sample(SCHED, x0, t, eps), want, rtol=1e-12)
    np.testing.assert_allclose(q_sample(SCHED, x0, t.astype(float), eps), want, rtol=1e-10)
    # a scalar t broadcasts over the batch
    np.testing.assert_allclose(q_sample(SCHED, x0, 7, eps)[0], np.sqrt(ab[2]) * x0[0] + np.sqrt(1 - ab[2]) * eps[0])


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 30), st.integers(0, 2**31 - 1))
def test_predict_x0_inverts_q_sample_and_score_conversions_are_inverse(t, seed):
    rng = np.random.default_rng(seed)
    x0, eps = rng.normal(size=(4, 2)), rng.normal(size=(4, 2))
    tt = np.full(4, t)
    xt = q_sample(SCHED, x0, tt, eps)
    np.testing.assert_allclose(predict_x0(SCHED, xt, tt, eps), x0, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(score_to_eps(SCHED, eps_to_score(SCHED, eps, tt), tt), eps, rtol=1e-12)


def test_eps_to_score_of_optimal_eps_is_the_noised_score():
    """score = -eps/sigma applied to eps* gives grad log q(x_t) of the noised mixture (autodiff of log_prob)."""
    gm = GaussianMixture(jnp.array([0.4, 0.6]), jnp.array([[-1.0, 0.0], [1.0, 0.5]]), jnp.array([SIGMA, SIGMA / 2]))
    x = jnp.asarray(np.random.default_rng(1).normal(size=(5, 2)))
    t = 11
    noised = gm.noised(SCHED.alpha_bars[t])
    auto = jax.vmap(jax.grad(lambda xi: noised.log_prob(xi[None])[0]))(x)
    score = eps_to_score(SCHED, gm.optimal_eps(x, np.full(5, t), SCHED), np.full(5, t))
    np.testing.assert_allclose(score, auto, rtol=1e-10)


def test_training_triples_layout():
    x0 = jnp.asarray(np.random.default_rng(2).normal(size=(50, 2)))
    xt, t, eps = training_triples(jax.random.key(0), x0, SCHED, 4)
    assert xt.shape == (200, 2) and t.shape == (200,) and eps.shape == (200, 2)
    assert jnp.issubdtype(t.dtype, jnp.integer) and int(t.min()) >= 1 and int(t.max()) <= 30
    assert len(np.unique(np.asarray(t))) > 20  # steps are drawn per row
    x_rep = np.tile(np.asarray(x0), (4, 1))
    np.testing.assert_allclose(xt, q_sample(SCHED, x_rep, t, eps), rtol=1e-12)
    assert abs(float(jnp.mean(eps))) < 0.2 and abs(float(jnp.std(eps)) - 1) < 0.1


def _gaussian_mmse(sched, t):
    """E ||eps - eps*||^2 / D at step t for data N(MU, SIGMA): tr(I - (1-ab) (ab SIGMA + (1-ab) I)^{-1}) / D."""
    ab = float(sched.alpha_bars[t])
    cov_t = ab * SIGMA + (1 - ab) * np.eye(2)
    return np.trace(np.eye(2) - (1 - ab) * np.linalg.inv(cov_t)) / 2


def test_ddpm_loss_of_the_optimal_denoiser_is_the_mmse():
    gm = GaussianMixture(jnp.ones(1), jnp.asarray(MU[None]), jnp.asarray(SIGMA[None]))
    x0 = gm.sample(jax.random.key(3), 20000)
    eps_fn = lambda x, t: gm.optimal_eps(x, t, SCHED)  # noqa: E731
    expected = np.mean([_gaussian_mmse(SCHED, t) for t in range(1, 31)])
    loss = float(ddpm_loss(eps_fn, SCHED, jax.random.key(4), x0))
    assert loss == pytest.approx(expected, rel=0.03)
    # per-t weights: an indicator of t = 20 picks that step only (with probability 1/T per row)
    w = jnp.zeros(31).at[20].set(30.0)
    loss20 = float(ddpm_loss(eps_fn, SCHED, jax.random.key(5), x0, weights=w))
    assert loss20 == pytest.approx(_gaussian_mmse(SCHED, 20), rel=0.15)
    # the zero predictor has loss E||eps||^2 / D = 1; the loss is the per-element mean over event dims
    x_img = jnp.zeros((4000, 3, 5))
    zero = float(ddpm_loss(lambda x, t: jnp.zeros_like(x), SCHED, jax.random.key(6), x_img))
    assert zero == pytest.approx(1.0, abs=0.02)


def _scaled(theta, x, t):
    return theta * x


def test_ddpm_loss_gradient_and_dtype():
    x0 = jnp.asarray(np.random.default_rng(7).normal(size=(64, 2)))
    sched = cosine_schedule(20)

    def loss(theta):
        return ddpm_loss(jax.tree_util.Partial(_scaled, jnp.asarray(theta)), sched, jax.random.key(0), x0)

    g = jax.grad(loss)(0.3)
    fd = (loss(0.3 + 1e-6) - loss(0.3 - 1e-6)) / 2e-6
    assert float(g) == pytest.approx(float(fd), rel=1e-6)
    x32 = x0.astype(jnp.float32)
    assert ddpm_loss(lambda x, t: 0.5 * x, sched, jax.random.key(0), x32).dtype == jnp.float32
    assert q_sample(sched, x32, jnp.ones(64, jnp.int32), x32).dtype == jnp.float32
    assert jax.jit(lambda x: ddpm_loss(lambda y, t: y, sched, jax.random.key(0), x))(x0).shape == ()


@pytest.mark.parametrize(
    "call, err, match",
    [
        (lambda x: q_sample(SCHED, x, np.full(4, 0), x), ValueError, "1..T"),
        (lambda x: q_sample(SCHED, x, np.full(4, 31), x), ValueError, "1..T"),
        (lambda x: q_sample(SCHED, x, np.full(4, 30.5), x), ValueError, "t"),
        (lambda x: q_sample(SCHED, x, np.full(3, 2), x), ValueError, "shape"),
        (lambda x: q_sample(SCHED, x.at[0, 0].set(jnp.nan), np.full(4, 2), x), ValueError, "x0"),
        (lambda x: q_sample(SCHED, x, np.full(4, 2), x[:, :1]), ValueError, "eps"),
        (lambda x: q_sample("linear", x, np.full(4, 2), x), TypeError, "schedule"),
        (lambda x: ddpm_loss(lambda y, t: y[:, :1], SCHED, jax.random.key(0), x), ValueError, "model"),
        (lambda x: ddpm_loss(lambda y, t: y, SCHED, jax.random.key(0), x.at[1].set(jnp.inf)), ValueError, "x0"),
        (lambda x: ddpm_loss(lambda y, t: y, SCHED, jax.random.key(0), x, jnp.ones(30)), ValueError, "weights"),
        (lambda x: ddpm_loss(lambda y, t: y, SCHED, jax.random.key(0), x, -jnp.ones(31)), ValueError, "weights"),
        (lambda x: ddpm_loss(3.0, SCHED, jax.random.key(0), x), TypeError, "model"),
        (lambda x: training_triples(jax.random.key(0), x, SCHED, 0), ValueError, "repeats"),
        (lambda x: training_triples(0, x, SCHED, 2), TypeError, "key"),
    ],
)
def test_bad_input(call, err, match):
    with pytest.raises(err, match=match):
        call(jnp.ones((4, 2)))
