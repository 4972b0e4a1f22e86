"""eps_error: exact optimum gives zero, scaled and Gaussian closed forms, Monte Carlo check of x_t, validation."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxtt.data import GaussianMixture
from jaxtt.diffusion import Schedule, linear_schedule
from jaxtt.metrics import default_eps_error_steps, eps_error

T = 50


@pytest.fixture(scope="module")
def schedule():
    return linear_schedule(T, 1e-3, 0.2)


@pytest.fixture(scope="module")
def alpha_bars():
    """Independent numpy reference of the linear schedule's cumulative products, indexed by t = 0..T."""
    return np.concatenate([[1.0], np.cumprod(1.0 - np.linspace(1e-3, 0.2, T))])


def _isotropic(std, dim=2, dtype=np.float64):
    return GaussianMixture(np.ones(1), np.zeros((1, dim), dtype), (std**2 * np.eye(dim, dtype=dtype))[None])


class ScaledOptimum(eqx.Module):
    """eps_theta = scale * eps*: an Equinox module, so ``scale`` is traced and both values share one compilation."""

    mixture: GaussianMixture
    schedule: Schedule
    scale: jax.Array

    def __call__(self, x, t):
        return self.scale * self.mixture.optimal_eps(x, t, self.schedule)


def test_optimum_gives_zero_and_scaled_optimum_gives_known_error(schedule):
    covs = np.stack([0.1 * np.eye(2), [[0.3, 0.1], [0.1, 0.2]]])
    mixture = GaussianMixture(np.array([0.3, 0.7]), np.array([[1.0, 0.0], [-1.0, 1.0]]), covs)
    key = jax.random.key(0)
    assert float(eps_error(ScaledOptimum(mixture, schedule, jnp.array(1.0)), mixture, schedule, key, n=64)) < 1e-12
    # eps_theta = c eps*  =>  every ratio is exactly |c - 1|
    out = eps_error(ScaledOptimum(mixture, schedule, jnp.array(1.25)), mixture, schedule, key, n=64)
    np.testing.assert_allclose(out, 0.25, rtol=1e-12)


class AffineInX(eqx.Module):
    """eps_theta(x, t) = c_t x + a (an Equinox module: both closed-form tests below share one compilation)."""

    c: jax.Array
    a: jax.Array

    def __call__(self, x, t):
        return self.c[t][:, None] * x + self.a


def test_gaussian_closed_form_checks_step_indexing(schedule, alpha_bars):
    # data N(0, s^2 I): eps* = sqrt(1 - ab) x / (ab s^2 + 1 - ab); predicting sqrt(1 - ab) x (the optimum for s = 1)
    # is (ab s^2 + 1 - ab) eps*, so the relative error at step t is exactly ab_t |s^2 - 1|.
    s, t_values = 2.0, np.array([1, 7, 50])
    eps_fn = AffineInX(jnp.sqrt(1.0 - jnp.asarray(alpha_bars)), jnp.zeros(2))
    out = eps_error(eps_fn, _isotropic(s), schedule, jax.random.key(1), n=4000, t_values=jnp.asarray(t_values))
    np.testing.assert_allclose(out, np.mean(alpha_bars[t_values] * (s**2 - 1)), rtol=1e-10)


def test_monte_carlo_error_of_constant_prediction_checks_noised_law(schedule, alpha_bars):
    # data N(0, s^2 I_D) => x_t ~ N(0, v I), v = ab s^2 + 1 - ab, eps* = sqrt(1 - ab) x_t / v; a constant
    # prediction a has squared relative error 1 + |a|^2 v / (D (1 - ab)) in expectation over a large batch.
    s, dim, a, t_values = 3.0, 2, np.array([0.5, -1.0]), np.array([3, 10, 30])
    eps_fn = AffineInX(jnp.zeros(T + 1), jnp.asarray(a))
    out = eps_error(eps_fn, _isotropic(s, dim), schedule, jax.random.key(2), n=4000, t_values=jnp.asarray(t_values))
    ab = alpha_bars[t_values]
    v = ab * s**2 + 1 - ab
    expected = np.mean(np.sqrt(1 + (a @ a) * v / (dim * (1 - ab))))
    np.testing.assert_allclose(out, expected, rtol=0.02)


def test_default_steps_dtype_and_jit(schedule):
    np.testing.assert_array_equal(default_eps_error_steps(1000), np.round(np.linspace(1, 1000, 10)).astype(int))
    np.testing.assert_array_equal(default_eps_error_steps(4), [1, 2, 3, 4])
    mixture = _isotropic(0.5, dtype=np.float32)
    eps_fn = lambda x, t: jnp.zeros_like(x)  # noqa: E731  (relative error exactly 1)
    out = jax.jit(lambda k: eps_error(eps_fn, mixture, schedule, k, n=8))(jax.random.key(3))
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(out, 1.0, rtol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"t_values": jnp.array([0, 3])}, ValueError, "t_values must lie in 1..T"),
        ({"t_values": jnp.array([T + 1])}, ValueError, "t_values must lie in 1..T"),
        ({"t_values": jnp.array([1.5])}, TypeError, "t_values must be an integer"),
        ({"t_values": jnp.zeros(0, dtype=int)}, ValueError, "at least one step"),
        ({"n": 0}, ValueError, "n must be >= 1"),
        ({"mixture": "gaussian"}, TypeError, "mixture must be a jaxtt.data.GaussianMixture"),
        ({"eps_fn": lambda x, t: x[:, :1]}, ValueError, "eps_fn\\(x, t\\) must return an array of x's shape"),
        ({"eps_fn": 3.0}, TypeError, "eps_fn must be callable"),
    ],
)
def test_validation(schedule, kwargs, error, match):
    args = {"eps_fn": lambda x, t: x, "mixture": _isotropic(1.0), "schedule": schedule, "key": jax.random.key(0)}
    with pytest.raises(error, match=match):
        eps_error(**(args | kwargs))
