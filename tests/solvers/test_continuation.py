"""Coarse-to-fine fitting: exact basis resizing, and the fit that plain ALS cannot start."""

import re
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxtt.basis import BSpline, Chebyshev, Fourier, Legendre
from jaxtt.ftt import FTT, constant_init
from jaxtt.tt import TensorTrain
from jaxtt.solvers import continuation
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


def test_the_default_fit_restarts_coarse_to_fine_and_fits_what_plain_als_cannot_start():
    """fit's default call: ALS from the constant start stays in the swamp (E[y | x_i] = 0), the fit restarts
    coarse to fine by itself (levels 3 → 5 → 9, then 14), warns once saying so, and reaches 1e-5 held out."""
    x, y = sin_sum(0, N)
    x_val, y_val = sin_sum(1, 2000)
    bases = [Legendre(M, domain=(-np.pi, np.pi), orthonormal=True)] * D
    start = FTT(constant_init(bases, 2, dtype=jnp.float64, key=jax.random.key(1)), bases)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model, result = fit(start, x, y, ALS(), max_steps=6, validation=(x_val, y_val), progress=False)
    messages = [str(w.message) for w in caught if issubclass(w.category, StalledFitWarning)]
    assert len(messages) == 1 and "restarted by coarse_to_fine from 3 functions per variable (levels 3, 5, 9" in messages[0]
    first = float(re.search(r"stopped \(\w+\) at training residual ([0-9.e+-]+)", messages[0]).group(1))
    assert first > 0.9  # the constant start sees no signal: a swamp
    assert result.restarted and result.ranks[-1] == (1, 2, 2, 2, 2, 2, 1)
    held_out = float(jnp.linalg.norm(model(x_val) - y_val) / jnp.linalg.norm(y_val))
    assert held_out <= 1e-5 and result.val_residual[-1] == pytest.approx(held_out, rel=1e-6)
    assert result.train_residual[-1] <= 1e-5 and result.train_residual[0] < 1e-3  # starts from level 9's fit


def test_restart_false_returns_the_stalled_fit_and_ordinary_fits_never_restart(monkeypatch):
    """restart=False gives the plain stalled fit, with the advice to call coarse_to_fine; a fit that explains
    its target (and one that reached tol) never enters the restart: coarse_to_fine is not called at all."""
    calls = []
    monkeypatch.setattr(continuation, "coarse_to_fine", lambda *a, **k: calls.append(1) or (_ for _ in ()).throw(
        AssertionError("coarse_to_fine called")))
    x, y = sin_sum(0, 4000)
    bases = [Legendre(6, domain=(-np.pi, np.pi))] * D
    start = FTT(constant_init(bases, 2, dtype=jnp.float64, key=jax.random.key(1)), bases)
    with pytest.warns(StalledFitWarning, match=r"try jaxtt.solvers.coarse_to_fine"):
        _, plain = fit(start, x, y, ALS(), max_steps=3, progress=False, restart=False)
    assert not plain.restarted and plain.train_residual[-1] > 0.9
    # an ordinary fit: a product of low-order terms on the same bases explains nearly everything
    ordinary = jnp.cos(x[:, 0]) * (1 + 0.5 * jnp.sin(x[:, 1])) + 0.1 * x[:, 2]
    with warnings.catch_warnings():
        warnings.simplefilter("error", StalledFitWarning)
        _, result = fit(start, x, ordinary, ALS(), max_steps=3, progress=False)
        _, reached = fit(start, x, ordinary, ALS(), max_steps=3, tol=0.5, progress=False)
    assert not result.restarted and result.train_residual[-1] < 0.1 and reached.status == "tol"
    assert calls == []


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


def test_resize_keeps_a_batch_of_ftts_and_a_batch_never_restarts():
    """A batch of FTTs (a denoiser's vector output) resizes member by member; fit does not restart a batch."""
    bases = [Legendre(5)] * 2
    keys = jax.random.split(jax.random.key(0), 3)
    batch = FTT(jax.vmap(lambda k: constant_init(bases, 2, noise=0.5, dtype=jnp.float64, key=k))(keys), bases)
    x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (400, 2)))
    big = resize_bases(batch, 8)
    assert big.tt.batch_shape == (3,) and [b.m for b in big.bases] == [8, 8]
    np.testing.assert_allclose(big(x), batch(x), rtol=1e-13, atol=1e-13)
    noise = jax.random.normal(jax.random.key(1), (400, 3), jnp.float64)
    with pytest.warns(StalledFitWarning, match="try jaxtt.solvers.coarse_to_fine"):
        _, result = fit(batch, x, noise, ALS(), max_steps=2, progress=False)
    assert not result.restarted
