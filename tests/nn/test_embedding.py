"""SinusoidalEmbedding against an independent NumPy implementation."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxtt.nn import SinusoidalEmbedding


def reference_embedding(t, dim, scale):
    """The sines-then-cosines sinusoidal embedding in NumPy (float64)."""
    half = dim // 2
    factor = np.exp(-np.log(scale) / (half - 1) * np.arange(half))
    angles = np.asarray(t, dtype=np.float64)[:, None] * factor
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=-1)


@pytest.mark.parametrize("dim, scale", [(4, 1000.0), (16, 1000.0), (32, 50.0)])
def test_matches_reference(dim, scale):
    t = np.array([0, 1, 7, 250, 999, 1000])
    emb = SinusoidalEmbedding(dim, scale)
    got = jax.vmap(emb)(jnp.asarray(t))
    assert got.shape == (t.size, dim)
    np.testing.assert_allclose(got, reference_embedding(t, dim, scale), rtol=0, atol=1e-12)
    # the first and last frequencies are 1 and 1/scale
    first_and_last = np.asarray(emb(jnp.asarray(3.0)))[[0, dim // 2 - 1]]
    np.testing.assert_allclose(first_and_last, np.sin([3.0, 3.0 / scale]), atol=1e-14)


def test_dtypes():
    emb = SinusoidalEmbedding(8)
    assert emb(jnp.asarray(5, jnp.int32)).dtype == jnp.float64  # default float (x64 on in the tests)
    out32 = emb(jnp.asarray(5.0, jnp.float32))
    assert out32.dtype == jnp.float32
    np.testing.assert_allclose(out32, reference_embedding([5.0], 8, 1000.0)[0], atol=1e-6)


def test_derivative_in_t():
    emb = SinusoidalEmbedding(8, 100.0)
    t = 3.3
    jac = jax.jacfwd(emb)(jnp.asarray(t))
    h = 1e-6
    fd = (reference_embedding([t + h], 8, 100.0) - reference_embedding([t - h], 8, 100.0))[0] / (2 * h)
    np.testing.assert_allclose(jac, fd, atol=1e-8)


def test_no_trainable_leaves():
    assert jax.tree.leaves(eqx.filter(SinusoidalEmbedding(8), eqx.is_inexact_array)) == []


def test_bad_arguments():
    for kwargs, match in [({"dim": 7}, "even"), ({"dim": 2}, "dim"), ({"dim": 8, "scale": 1.0}, "scale")]:
        with pytest.raises(ValueError, match=match):
            SinusoidalEmbedding(**kwargs)
    with pytest.raises(TypeError, match="dim"):
        SinusoidalEmbedding(8.0)


def test_rejects_batched_t():
    with pytest.raises(ValueError, match="scalar"):
        SinusoidalEmbedding(8)(jnp.arange(3))
