"""Class-conditional FTT denoisers: the label core against exact class-wise functions and exact scores."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxtt.data import GaussianMixture
from jaxtt.diffusion import linear_schedule, q_sample
from jaxtt.ftt import FTTDenoiser
from jaxtt.solvers import fit_denoiser, fit_regression

SCHEDULE = linear_schedule(50)
MEANS = jnp.array([[1.5, 1.0], [-1.5, -0.5]])


def test_each_label_selects_its_own_function():
    """Rows of class c carry y = a_c · x · s (exactly representable): every slice, the null one included, is fitted."""
    key = jax.random.split(jax.random.key(0), 3)
    x = jax.random.uniform(key[0], (900, 2), jnp.float64, -1, 1)
    s = jax.random.uniform(key[1], (900,), jnp.float64, 0.05, 1)
    labels = jnp.arange(900) % 3                                  # classes 0, 1 and the null label 2
    a = jnp.array([1.0, -2.0, 0.5])
    y = a[labels][:, None] * x * s[:, None]
    model = FTTDenoiser(2, 1, rank=3, m=3, classes=2, key=key[2])
    model, result = fit_regression(model, x, s, y, labels=labels, steps=6, reg=0.0)
    assert result.train_residual[-1] < 1e-8
    x_new = jax.random.uniform(jax.random.key(5), (50, 2), jnp.float64, -1, 1)
    s_new = jnp.full(50, 0.3)
    for c in range(3):
        np.testing.assert_allclose(model(x_new, s_new, jnp.full(50, c)), a[c] * 0.3 * x_new, atol=1e-7)


def test_empirical_bayes_fit_learns_each_class_score():
    """Two classes, each Gaussian: each class slice follows its class's exact ε* (not the other class's), the null
    slice the mixture's. The fit is on 300 points per class, so the empirical-Bayes targets (the optimal noise of
    the empirical distribution) leave a few per cent of error against the Gaussians' ε*."""
    n = 300
    keys = jax.random.split(jax.random.key(3), 4)
    labels = jnp.arange(2 * n) % 2
    x0 = MEANS[labels] + 0.4 * jax.random.normal(keys[0], (2 * n, 2), jnp.float64)
    model = FTTDenoiser(2, 50, rank=4, m=8, classes=2, output="core", key=keys[1])
    model, _ = fit_denoiser(model, x0, SCHEDULE, keys[2], steps=4, repeats=4, targets="empirical_bayes",
                            labels=labels, label_dropout=0.25, progress=False)
    cov = 0.16 * jnp.eye(2)[None]
    classes = [GaussianMixture(jnp.ones(1), MEANS[c][None], cov) for c in range(2)]
    both = GaussianMixture(jnp.ones(2), MEANS, jnp.tile(cov, (2, 1, 1)))
    t = jnp.arange(300) % 40 + 5
    for c, exact in enumerate(classes):
        x_t = q_sample(SCHEDULE, exact.sample(keys[3], 300), t, jax.random.normal(jax.random.key(c), (300, 2)))
        truth = exact.optimal_eps(x_t, t, SCHEDULE)
        scale = float(jnp.mean(truth**2))
        own = float(jnp.mean((model(x_t, t, jnp.full(300, c)) - truth) ** 2))
        null = float(jnp.mean((model(x_t, t, jnp.full(300, 2)) - both.optimal_eps(x_t, t, SCHEDULE)) ** 2))
        other_class = float(jnp.mean((classes[1 - c].optimal_eps(x_t, t, SCHEDULE) - truth) ** 2))
        assert own < 0.1 * scale, (c, own, scale)             # measured 0.02-0.06 of the scale over solvers/dropouts
        assert null < 0.15 * scale, (c, null, scale)          # fitted from the 25 % dropped labels: 0.03-0.07
        assert own < 0.02 * other_class, (c, own, other_class)  # the label selects the class


def test_bad_labels():
    model = FTTDenoiser(2, 50, rank=2, m=4, classes=3, key=jax.random.key(0))
    x, t = jnp.zeros((4, 2)), jnp.full(4, 5)
    with pytest.raises(ValueError, match="labels are required"):
        model(x, t)
    with pytest.raises(ValueError, match=r"labels must lie in 0..3"):
        model(x, t, jnp.array([0, 1, 2, 4]))
    with pytest.raises(TypeError, match="labels must be an integer array"):
        model(x, t, jnp.zeros(4))
    with pytest.raises(ValueError, match=r"labels must have shape \(4,\)"):
        model(x, t, jnp.zeros(3, int))
    with pytest.raises(ValueError, match="model is unconditional"):
        FTTDenoiser(2, 50, rank=2, m=4, key=jax.random.key(0))(x, t, jnp.zeros(4, int))
    x0 = jax.random.normal(jax.random.key(1), (10, 2))
    with pytest.raises(ValueError, match="labels must lie in 0..2"):      # the null label is not a data label
        fit_denoiser(model, x0, SCHEDULE, jax.random.key(2), labels=jnp.full(10, 3), progress=False)
    with pytest.raises(ValueError, match="label_dropout must be <= 1"):
        fit_denoiser(model, x0, SCHEDULE, jax.random.key(2), labels=jnp.zeros(10, int), label_dropout=2.0,
                     progress=False)
    with pytest.raises(ValueError, match="labels are required"):
        fit_denoiser(model, x0, SCHEDULE, jax.random.key(2), progress=False)
    with pytest.raises(ValueError, match="denoiser is unconditional"):
        fit_denoiser(FTTDenoiser(2, 50, rank=2, m=4, key=jax.random.key(0)), x0, SCHEDULE, jax.random.key(2),
                     labels=jnp.zeros(10, int), progress=False)
