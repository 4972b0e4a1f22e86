"""Coarse-to-fine fitting: exact basis resizing, and the fit that plain ALS cannot start."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxtt.basis import BSpline, Chebyshev, Fourier, Legendre
from jaxtt.ftt import FTT, constant_init
from jaxtt.tt import TensorTrain
from jaxtt.solvers import ALS, StalledFitWarning, coarse_to_fine, fit, resize_bases

D, M, N = 6, 14, 6000


def sin_sum(seed, n):
    """sin(x_1 + … + x_6) on [−π, π]⁶: exact TT rank 2, and E[y | x_i] = 0 for every i."""
    x = jax.random.uniform(jax.random.key(seed), (n, D), jnp.float64, minval=-np.pi, maxval=np.pi)
    return x, jnp.sin(x.sum(1))


@pytest.mark.parametrize("family", [Legendre, Chebyshev, Fourier])
def test_resize_is_exact_on_hierarchical_bases(family):
    bases = [family(5, domain=(-2.0, 3.0), orthonormal=True), family(7, domain=(-2.0, 3.0))]
    model = FTT(constant_init(bases, 3, noise=0.7, dtype=jnp.float64, key=jax.random.key(0)), bases)
    x = jnp.asarray(np.random.default_rng(0).uniform(-2, 3, (50, 2)))
    big = resize_bases(model, [9, 11])
    assert [b.m for b in big.bases] == [9, 11] and big.tt.ranks == model.tt.ranks
    np.testing.assert_allclose(big(x), model(x), rtol=1e-13, atol=1e-13)
    np.testing.assert_array_equal(resize_bases(big, [5, 7]).tt.cores[1], model.tt.cores[1])
    # truncation keeps exactly the leading coefficients: the function loses the dropped terms only
    small = resize_bases(model, 3)
    zeroed = [jnp.asarray(c).at[:, 3:, :].set(0.0) for c in model.tt.cores]
    reference = FTT(TensorTrain(zeroed), model.bases)
    np.testing.assert_allclose(small(x), reference(x), rtol=1e-12, atol=1e-12)


def test_coarse_to_fine_fits_what_plain_als_cannot_start():
    x, y = sin_sum(0, N)
    x_val, y_val = sin_sum(1, 2000)
    bases = [Legendre(M, domain=(-np.pi, np.pi), orthonormal=True)] * D
    start = FTT(constant_init(bases, 2, dtype=jnp.float64, key=jax.random.key(1)), bases)
    with pytest.warns(StalledFitWarning):
        _, plain = fit(start, x, y, ALS(), max_steps=10, progress=False)
    assert plain.train_residual[-1] > 0.9  # the constant start sees no signal: a swamp
    model, results = coarse_to_fine(start, x, y, max_steps=10, progress=False)
    assert [r.ranks[-1] for r in results] == [(1, 2, 2, 2, 2, 2, 1)] * 4  # levels 3, 5, 9, then 14
    assert [results[0].train_residual[-1] > r.train_residual[-1] for r in results[1:]] == [True] * 3
    assert results[-1].train_residual[-1] <= 1e-5
    held_out = float(jnp.linalg.norm(model(x_val) - y_val) / jnp.linalg.norm(y_val))
    assert held_out <= 1e-5


def test_bad_arguments():
    bases = [BSpline(6)] * 2
    model = FTT(constant_init(bases, 2, key=jax.random.key(0)), bases)
    with pytest.raises(TypeError, match="not hierarchical"):
        resize_bases(model, 3)
    bases = [Legendre(6)] * 2
    model = FTT(constant_init(bases, 2, key=jax.random.key(0)), bases)
    x = jnp.zeros((10, 2))
    with pytest.raises(ValueError, match="levels must increase"):
        coarse_to_fine(model, x, x[:, 0], levels=(5, 3))
    with pytest.raises(ValueError, match="one basis size per variable"):
        resize_bases(model, [3, 3, 3])
