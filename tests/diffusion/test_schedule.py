"""Schedules against their closed forms (numpy), the continuous view against scipy's PCHIP, bad input."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.interpolate import PchipInterpolator

from jaxtt.diffusion import Schedule, cosine_schedule, linear_schedule, schedule_from_betas


def _posterior_reference(betas):
    """Posterior variance and mean coefficients (Ho et al. 2020, eq. 6-7) for t = 2..T, plain numpy."""
    ab = np.cumprod(1.0 - betas)
    ab_prev = ab[:-1]
    b, a, abt = betas[1:], 1.0 - betas[1:], ab[1:]
    return (1 - ab_prev) / (1 - abt) * b, np.sqrt(ab_prev) * b / (1 - abt), np.sqrt(a) * (1 - ab_prev) / (1 - abt)


def test_linear_schedule_matches_closed_form():
    T = 50
    s = linear_schedule(T, 1e-3, 3e-2)
    betas = np.linspace(1e-3, 3e-2, T)
    assert isinstance(s, Schedule) and s.T == T
    for name in ("betas", "alphas", "alpha_bars", "posterior_variance", "posterior_mean_coef_x0"):
        assert getattr(s, name).shape == (T + 1,)
    np.testing.assert_allclose(s.betas[1:], betas, rtol=1e-14)
    np.testing.assert_allclose(s.alphas[1:], 1 - betas, rtol=1e-14)
    np.testing.assert_allclose(s.alpha_bars[1:], np.cumprod(1 - betas), rtol=1e-13)
    var, c0, ct = _posterior_reference(betas)
    np.testing.assert_allclose(s.posterior_variance[2:], var, rtol=1e-12)
    np.testing.assert_allclose(s.posterior_mean_coef_x0[2:], c0, rtol=1e-12)
    np.testing.assert_allclose(s.posterior_mean_coef_xt[2:], ct, rtol=1e-12)
    # data level t = 0 and the first step: q(x_0 | x_1, x_0) is the point mass at x_0
    assert (s.betas[0], s.alphas[0], s.alpha_bars[0]) == (0.0, 1.0, 1.0)
    assert s.posterior_variance[1] == 0.0 and s.posterior_mean_coef_x0[1] == pytest.approx(1.0)
    assert s.posterior_mean_coef_xt[1] == 0.0


def test_posterior_moments_match_bayes_rule():
    """mu~ and beta~ are the moments of q(x_{t-1} | x_t, x_0) from Bayes' rule on the scalar Gaussians."""
    s = linear_schedule(20, 1e-2, 0.3)
    t, x0, xt = 7, 0.8, -0.3
    ab_prev, beta = float(s.alpha_bars[t - 1]), float(s.betas[t])
    # prior x_{t-1} ~ N(sqrt(ab_prev) x0, 1 - ab_prev); likelihood x_t ~ N(sqrt(1 - beta) x_{t-1}, beta)
    prec = 1 / (1 - ab_prev) + (1 - beta) / beta
    mean = (math.sqrt(ab_prev) * x0 / (1 - ab_prev) + math.sqrt(1 - beta) * xt / beta) / prec
    assert float(s.posterior_variance[t]) == pytest.approx(1 / prec, rel=1e-12)
    got = float(s.posterior_mean_coef_x0[t]) * x0 + float(s.posterior_mean_coef_xt[t]) * xt
    assert got == pytest.approx(mean, rel=1e-12)


def test_cosine_schedule_matches_closed_form_and_clip():
    T, off = 40, 0.008
    s = cosine_schedule(T, off)
    f = np.cos((np.arange(T + 1) / T + off) / (1 + off) * np.pi / 2) ** 2
    ab = f / f[0]
    betas = np.minimum(1 - ab[1:] / ab[:-1], 0.999)
    np.testing.assert_allclose(s.betas[1:], betas, rtol=1e-12)
    assert float(s.betas[T]) == pytest.approx(0.999)  # f(T) = 0: the clip is active at the last step
    np.testing.assert_allclose(s.alpha_bars[1:T], ab[1:T], rtol=1e-10)  # unclipped part equals f(t)/f(0)
    assert float(s.alpha_bars[T]) == pytest.approx(ab[T - 1] * 0.001, rel=1e-10)


def test_continuous_view_is_scipy_pchip_of_log_alpha_bar():
    s = cosine_schedule(30)
    ref = PchipInterpolator(np.arange(31), np.log(np.asarray(s.alpha_bars)))
    grid = np.linspace(0.0, 1.0, 997)
    np.testing.assert_allclose(s.alpha_bar_continuous(grid), np.exp(ref(grid * 30)), rtol=1e-11)
    np.testing.assert_allclose(s.beta_continuous(grid), -30 * ref(grid * 30, 1), rtol=1e-9, atol=1e-12)
    # exact on the grid, monotone between, beta = -d/ds log alpha_bar by central differences
    np.testing.assert_allclose(s.alpha_bar_continuous(np.arange(31) / 30), s.alpha_bars, rtol=1e-12)
    np.testing.assert_allclose(s.alpha_bar_at(jnp.arange(31.0)), s.alpha_bars, rtol=1e-12)
    assert np.all(np.diff(np.asarray(s.alpha_bar_continuous(grid))) < 0)
    h, inner = 1e-6, grid[1:-1]
    fd = -(np.log(s.alpha_bar_continuous(inner + h)) - np.log(s.alpha_bar_continuous(inner - h))) / (2 * h)
    np.testing.assert_allclose(s.beta_continuous(inner), fd, rtol=1e-5)
    # step_at_log_alpha_bar inverts the interpolant (used by the probability-flow ODE)
    t = np.random.default_rng(0).uniform(0, 30, 200)
    np.testing.assert_allclose(s.step_at_log_alpha_bar(ref(t)), t, rtol=1e-9, atol=1e-9)


@settings(max_examples=15, deadline=None)
@given(st.lists(st.floats(1e-4, 0.5), min_size=8, max_size=8))
def test_from_betas_properties(betas):
    betas = np.asarray(betas)
    s = schedule_from_betas(jnp.asarray(betas))
    assert s.T == len(betas)
    np.testing.assert_allclose(s.alpha_bars[1:], np.cumprod(1 - betas), rtol=1e-12)
    assert np.all(np.diff(np.asarray(s.alpha_bars)) < 0)
    assert np.all(np.asarray(s.beta_continuous(np.linspace(0, 1, 101))) >= 0)
    # 0 <= beta~_t <= beta_t (the posterior is narrower than the forward step)
    assert np.all(np.asarray(s.posterior_variance) <= np.asarray(s.betas) + 1e-15)


def test_dtype_is_kept_and_schedule_is_a_pytree():
    s32 = linear_schedule(10, dtype=jnp.float32)
    assert s32.betas.dtype == jnp.float32 and s32.alpha_bar_continuous(0.5).dtype == jnp.float32
    assert schedule_from_betas(jnp.full((5,), 0.1, dtype=jnp.float32)).alpha_bars.dtype == jnp.float32
    s = linear_schedule(10)
    doubled = jax.jit(lambda sch: sch.alpha_bars * 2)(s)
    np.testing.assert_allclose(doubled, 2 * s.alpha_bars)
    # differentiable in the betas
    g = jax.grad(lambda b: schedule_from_betas(b).alpha_bars[-1])(jnp.full((4,), 0.1))
    np.testing.assert_allclose(g, -(0.9**3) * np.ones(4), rtol=1e-12)


@pytest.mark.parametrize(
    "call, err",
    [
        (lambda: linear_schedule(0), ValueError),
        (lambda: cosine_schedule(0), ValueError),
        (lambda: linear_schedule(2.5), TypeError),
        (lambda: linear_schedule(10, beta_end=1.0), ValueError),
        (lambda: linear_schedule(10, beta_start=0.0), ValueError),
        (lambda: cosine_schedule(10, s=-0.1), ValueError),
        (lambda: linear_schedule(10, dtype=jnp.int32), TypeError),
        (lambda: schedule_from_betas(jnp.array([0.1, 1.2])), ValueError),
        (lambda: schedule_from_betas(jnp.array([0.1, jnp.nan])), ValueError),
        (lambda: schedule_from_betas(jnp.zeros((0,))), ValueError),
        (lambda: schedule_from_betas(jnp.array([1, 2])), TypeError),
    ],
)
def test_bad_input(call, err):
    with pytest.raises(err):
        call()
