"""Toy 2-D data sets: exact standardisation, geometry of each construction, determinism, dtype, validation."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import quad

from jaxtt.data import TOY_DATASETS, checkerboard, circles, eight_gaussians, moons, pinwheel, swiss_roll, toy_dataset
from jaxtt.data.toy import _swiss_roll_moments

N_LARGE = 200_000


@pytest.mark.parametrize("name", sorted(TOY_DATASETS))
def test_standardised_over_the_distribution(name):
    x = np.asarray(toy_dataset(name, jax.random.key(0), N_LARGE, dtype=jnp.float64))
    assert x.shape == (N_LARGE, 2) and x.dtype == np.float64
    # standard error of the mean is 1/sqrt(N) ~ 0.0022; of the variance at most ~0.01 for these shapes
    np.testing.assert_allclose(x.mean(0), 0.0, atol=0.012)
    np.testing.assert_allclose(x.var(0), 1.0, atol=0.03)


def test_swiss_roll_moments_match_quadrature():
    a, b = 1.5 * math.pi, 4.5 * math.pi
    avg = lambda f: quad(f, a, b, limit=200)[0] / (b - a)  # noqa: E731
    mean_x, mean_y = avg(lambda t: t * math.cos(t)), avg(lambda t: t * math.sin(t))
    var_x = avg(lambda t: (t * math.cos(t)) ** 2) - mean_x**2
    var_y = avg(lambda t: (t * math.sin(t)) ** 2) - mean_y**2
    (m_x, m_y), (v_x, v_y) = _swiss_roll_moments()
    np.testing.assert_allclose([m_x, m_y, v_x, v_y], [mean_x, mean_y, var_x, var_y], rtol=1e-10)


def _raw(points, mean, var):
    return np.asarray(points) * np.sqrt(var) + np.asarray(mean)


def test_noise_free_geometry():
    # same n and dtype as the standardisation test: the real parameters are traced, so nothing recompiles
    key, n = jax.random.key(1), N_LARGE
    (m_roll, v_roll) = _swiss_roll_moments()
    roll = _raw(swiss_roll(key, n, noise=0.0, dtype=jnp.float64), m_roll, v_roll)
    t = np.hypot(roll[:, 0], roll[:, 1])  # radius of (t cos t, t sin t) is t
    assert t.min() >= 1.5 * math.pi - 1e-9 and t.max() <= 4.5 * math.pi + 1e-9
    np.testing.assert_allclose(roll, np.stack([t * np.cos(t), t * np.sin(t)], 1), atol=1e-9)

    moon = _raw(moons(key, n, noise=0.0, dtype=jnp.float64), (0.5, 0.25), (0.75, 9 / 16 - 1 / math.pi))
    on_upper = np.isclose(np.hypot(*moon.T), 1.0) & (moon[:, 1] >= -1e-12)
    on_lower = np.isclose(np.hypot(moon[:, 0] - 1, moon[:, 1] - 0.5), 1.0) & (moon[:, 1] <= 0.5 + 1e-12)
    assert np.all(on_upper | on_lower) and abs(on_upper.mean() - 0.5) < 0.01

    ring = _raw(circles(key, n, noise=0.0, factor=0.3, dtype=jnp.float64), (0, 0), [(1 + 0.09) / 4] * 2)
    radius = np.hypot(*ring.T)
    assert np.all(np.isclose(radius, 1.0) | np.isclose(radius, 0.3))

    centres = _raw(eight_gaussians(key, n, noise=0.0, dtype=jnp.float64), (0, 0), (0.5, 0.5))
    angles = (np.round(np.arctan2(centres[:, 1], centres[:, 0]) / (math.pi / 4)) % 8).astype(int)
    np.testing.assert_allclose(np.bincount(angles, minlength=8) / n, 1 / 8, atol=0.005)
    np.testing.assert_allclose(np.hypot(*centres.T), 1.0, atol=1e-12)

    board = _raw(checkerboard(key, n, dtype=jnp.float64), (0, 0), (4 / 3, 4 / 3))
    cells = np.floor(board).astype(int)
    assert np.all(np.abs(board) <= 2) and np.all((cells.sum(1) % 2) == 0)
    assert len(np.unique(cells, axis=0)) == 8

    # no spread: every point of arm k sits at angle 2 pi k / K + rate e on the unit circle
    wheel = np.asarray(pinwheel(key, n, radial_std=0.0, tangential_std=0.0, num_arms=5, rate=0.3, dtype=jnp.float64))
    wheel = wheel * np.sqrt(0.5)
    np.testing.assert_allclose(np.hypot(*wheel.T), 1.0, atol=1e-12)
    arms = (np.arctan2(wheel[:, 1], wheel[:, 0]) - 0.3 * math.e) / (2 * math.pi / 5)
    np.testing.assert_allclose(arms, np.round(arms), atol=1e-9)
    assert len(np.unique(np.round(arms) % 5)) == 5


def test_deterministic_jittable_and_float32():
    key = jax.random.key(2)
    for name, generator in TOY_DATASETS.items():
        a = generator(key, 64)
        assert a.dtype == jnp.float32 and a.shape == (64, 2), name
        np.testing.assert_array_equal(a, generator(key, 64))
        assert not np.allclose(a, generator(jax.random.key(3), 64)), name
    jitted = jax.jit(lambda k: swiss_roll(k, 64))
    np.testing.assert_allclose(jitted(key), swiss_roll(key, 64), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda k: toy_dataset("spiral", k, 10), ValueError, "name must be one of"),
        (lambda k: swiss_roll(k, 0), ValueError, "n must be >= 1"),
        (lambda k: moons(k, 10.0), TypeError, "n must be an integer"),
        (lambda k: circles(k, 10, noise=-0.1), ValueError, "noise must be >= 0"),
        (lambda k: circles(k, 10, factor=1.0), ValueError, "factor must be < 1"),
        (lambda k: eight_gaussians(k, 10, dtype=jnp.int32), TypeError, "dtype must be a floating"),
        (lambda k: toy_dataset("pinwheel", k, 10, num_arms=2), ValueError, "num_arms must be >= 3"),
        (lambda k: checkerboard(np.zeros(3), 10), TypeError, "key must be a single JAX PRNG key"),
    ],
)
def test_validation(call, error, match):
    with pytest.raises(error, match=match):
        call(jax.random.key(0))
