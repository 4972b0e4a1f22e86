"""Out-of-core ALS: sweeps over rows streamed in chunks equal the in-memory sweeps."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxtt.basis import Legendre
from jaxtt.ftt import FTT, constant_init
from jaxtt.solvers import ALS, fit
from jaxtt.solvers.streaming import StreamedALS, fit_streamed

BASES = [Legendre(4, orthonormal=True)] * 3


def data(n, seed=0):
    x = np.random.default_rng(seed).uniform(-1, 1, (n, 3))
    return x, np.stack([x[:, 0] * x[:, 1] + np.sin(x[:, 2]), np.cos(x[:, 0] - x[:, 2])], axis=1)


def start(batch: bool):
    if batch:  # two cores keep the compilation short; the scalar case covers interior cores
        return FTT(jax.vmap(lambda k: constant_init(BASES[:2], 2, dtype=jnp.float64, key=k))(
            jax.random.split(jax.random.key(1), 2)), BASES[:2])
    return FTT(constant_init(BASES, 2, dtype=jnp.float64, key=jax.random.key(1)), BASES)


@pytest.mark.parametrize("batch", [False, True])
def test_streamed_fit_equals_the_in_memory_fit(batch):
    """503 rows in chunks of 200 (the last one padded and masked) against ALS on all rows at once."""
    x, y = data(503)
    x, y = (x[:, :2], y) if batch else (x, y[:, 0])
    ref, ref_result = fit(start(batch), x, y, ALS(reg=1e-6, sparse=False), max_steps=2, stagnation=None,
                          progress=False)
    got, result = fit_streamed(start(batch), (x, y), StreamedALS(reg=1e-6, chunk_size=200, block_size=64),
                               max_steps=2, stagnation=None, progress=False)
    np.testing.assert_allclose(result.loss, ref_result.loss, rtol=1e-10)
    np.testing.assert_allclose(result.train_residual, ref_result.train_residual, rtol=1e-8)
    for a, b in zip(got.tt.cores, ref.tt.cores):
        np.testing.assert_allclose(a, b, atol=1e-8)
    assert result.ranks == ref_result.ranks


def test_chunks_regenerated_from_a_key_equal_the_rows_held_in_memory():
    """A chunk function drawing chunk i from fold_in(key, i) fits the same as its concatenated rows."""
    key = jax.random.key(7)

    def rows(i):
        x = jax.random.uniform(jax.random.fold_in(key, i), (200, 3), jnp.float64, -1, 1)
        return x, x[:, 0] * x[:, 1] + x[:, 2] ** 2

    x, y = map(np.concatenate, zip(*[rows(i) for i in range(4)]))
    ref, ref_result = fit(start(False), x, y, ALS(sparse=False), max_steps=1, stagnation=None, progress=False)
    got, result = fit_streamed(start(False), rows, StreamedALS(chunk_size=200, n_chunks=4), max_steps=1,
                               stagnation=None, progress=False)
    np.testing.assert_allclose(np.asarray(got(jnp.asarray(x))), np.asarray(ref(jnp.asarray(x))), atol=1e-10)
    np.testing.assert_allclose(result.train_residual, ref_result.train_residual, rtol=1e-8)


def test_bad_streams_are_named():
    x, y = data(10)
    model = start(False)
    with pytest.raises(ValueError, match="n_chunks"):
        StreamedALS().init(model, lambda i: (x, y[:, 0]))
    with pytest.raises(ValueError, match="more than chunk_size=4"):
        StreamedALS(chunk_size=4, n_chunks=1).init(model, lambda i: (x, y[:, 0]))
    bad = y[:, 0].copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="y of chunk 0"):
        StreamedALS().init(model, (x, bad))
    with pytest.raises(ValueError, match="same number of rows"):
        StreamedALS().init(model, (x, bad[:5]))
    with pytest.raises(TypeError, match="pair"):
        StreamedALS().init(model, x)
    with pytest.raises(ValueError, match="chunk_size"):
        StreamedALS(chunk_size=0)
