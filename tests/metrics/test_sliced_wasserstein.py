"""Sliced Wasserstein: exact 1-D cases against scipy / quantile references, translation closed form, validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import wasserstein_distance

from jaxtt.metrics import sliced_wasserstein


def _w_p_reference(u, v, p):
    """W_p between 1-D empirical measures on the common grid of lcm(N, M) quantile levels (inverted CDF)."""
    grid_size = np.lcm(len(u), len(v))
    levels = (np.arange(grid_size) + 0.5) / grid_size
    qu = np.quantile(u, levels, method="inverted_cdf")
    qv = np.quantile(v, levels, method="inverted_cdf")
    return np.mean(np.abs(qu - qv) ** p) ** (1 / p)


@pytest.fixture(scope="module")
def one_dim():
    rng = np.random.default_rng(0)
    return rng.normal(size=12), rng.gamma(2.0, size=8)


def test_one_dimension_unequal_sizes_p1_matches_scipy(one_dim):
    # in 1-D every direction is +-1, so SW_p = W_p exactly
    u, v = one_dim
    out = sliced_wasserstein(jax.random.key(0), u[:, None], v[:, None], n_projections=3, p=1)
    np.testing.assert_allclose(out, wasserstein_distance(u, v), rtol=1e-12)


@pytest.mark.parametrize("sizes", [(12, 8), (10, 10)])
def test_one_dimension_p2_matches_quantile_reference(one_dim, sizes):
    u, v = one_dim[0][: sizes[0]], np.concatenate(one_dim)[: sizes[1]] + 0.3
    out = sliced_wasserstein(jax.random.key(1), u[:, None], v[:, None], n_projections=2, p=2)
    np.testing.assert_allclose(out, _w_p_reference(u, v, 2), rtol=1e-12)


def test_translation_closed_form():
    # y = x + c: every projection is shifted by theta.c, so SW_2^2 = E (theta.c)^2 = |c|^2 / D
    x = np.random.default_rng(2).normal(size=(50, 2))
    c = np.array([1.5, -2.0])
    out = sliced_wasserstein(jax.random.key(3), x, x + c, n_projections=4000)
    np.testing.assert_allclose(out**2, (c @ c) / 2, rtol=0.05)


def test_deterministic_given_key_and_float32(one_dim):
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(30, 3)).astype(np.float32), rng.normal(size=(30, 3)).astype(np.float32)
    a = sliced_wasserstein(jax.random.key(5), x, y, n_projections=16)
    b = jax.jit(sliced_wasserstein, static_argnames="n_projections")(jax.random.key(5), x, y, n_projections=16)
    assert a.dtype == jnp.float32 and a.shape == ()
    np.testing.assert_allclose(a, b, rtol=1e-6)
    assert float(sliced_wasserstein(jax.random.key(5), x, x, n_projections=16)) == 0.0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"y": np.zeros((4, 3))}, ValueError, "feature dimension"),
        ({"n_projections": 0}, ValueError, "n_projections"),
        ({"p": 0.5}, ValueError, "p must be >= 1"),
        ({"x": np.full((4, 2), np.inf)}, ValueError, "x must be finite"),
    ],
)
def test_validation(kwargs, error, match):
    args = {"x": np.zeros((4, 2)), "y": np.ones((3, 2))} | kwargs
    with pytest.raises(error, match=match):
        sliced_wasserstein(jax.random.key(0), **args)
