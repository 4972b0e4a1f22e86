"""Energy distance: scipy in 1-D, direct numpy formula in d-D, zero for equal samples, grad, validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.distance import cdist
from scipy.stats import energy_distance as scipy_energy_distance

from jaxtt.metrics import energy_distance


def test_one_dimension_matches_scipy():
    rng = np.random.default_rng(0)
    u, v = rng.normal(size=15), rng.exponential(size=9)
    np.testing.assert_allclose(energy_distance(u[:, None], v[:, None]), scipy_energy_distance(u, v), rtol=1e-12)


def test_multi_dimension_matches_direct_formula():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(20, 4)), rng.normal(size=(13, 4)) + 0.5
    expected = np.sqrt(2 * cdist(x, y).mean() - cdist(x, x).mean() - cdist(y, y).mean())
    np.testing.assert_allclose(energy_distance(x, y), expected, rtol=1e-12)
    np.testing.assert_allclose(jax.jit(energy_distance)(y, x), expected, rtol=1e-12)


def test_equal_samples_zero_float32_and_finite_gradient():
    x = np.random.default_rng(2).normal(size=(10, 3)).astype(np.float32)
    out = energy_distance(x, x)
    assert out.dtype == jnp.float32 and float(out) < 1e-3
    # coinciding points (self-pairs) must not produce NaN gradients
    y = x + 1.0
    grad = jax.grad(lambda a: energy_distance(a, y))(jnp.asarray(x))
    assert grad.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(grad)))


@pytest.mark.parametrize(
    ("x", "y", "error", "match"),
    [
        (np.zeros((4, 2)), np.zeros((4, 1)), ValueError, "feature dimension"),
        (np.zeros((0, 2)), np.zeros((4, 2)), ValueError, "x must have at least 1"),
        (np.zeros((4, 2)), np.array([[np.nan, 0.0]]), ValueError, "y must be finite"),
    ],
)
def test_validation(x, y, error, match):
    with pytest.raises(error, match=match):
        energy_distance(x, y)
