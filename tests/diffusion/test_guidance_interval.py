"""Classifier-free guidance on a limited interval of steps (GuidanceInterval) against the guidance formula."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxtt.diffusion import DDIM, ClassifierFreeGuidance, linear_schedule, sample
from jaxtt.diffusion import GuidanceInterval


def conditional(x, t, y):
    return jnp.tanh(0.5 * x + 0.3 * y[:, None] + t[:, None].astype(x.dtype) / 100)


def test_guidance_only_inside_the_interval():
    """Inside (low, high] the guided model is (1 + w) ε(y) − w ε(∅) (Ho & Salimans 2022, eq. 6), outside it is the
    conditional model; the boundaries belong as stated."""
    x = jax.random.normal(jax.random.key(0), (6, 2), jnp.float64)
    t = jnp.array([1, 20, 21, 50, 60, 61])
    y, null = jnp.arange(6) % 3, jnp.full(6, 3)
    guided = ClassifierFreeGuidance(conditional, label=y, null_label=3, scale=GuidanceInterval(1.5, low=20, high=60))
    inside = jnp.array([False, False, True, True, True, False])[:, None]
    full = 2.5 * conditional(x, t, y) - 1.5 * conditional(x, t, null)
    np.testing.assert_allclose(guided(x, t), jnp.where(inside, full, conditional(x, t, y)), rtol=1e-12)


def test_interval_covering_every_step_is_constant_guidance_in_a_sampler():
    schedule = linear_schedule(100)
    run = lambda scale: sample(ClassifierFreeGuidance(conditional, 1, 3, scale), schedule, DDIM(steps=10),  # noqa: E731
                               jax.random.key(1), (5, 2)).samples
    np.testing.assert_allclose(run(GuidanceInterval(2.0, low=0, high=100)), run(2.0), rtol=1e-10)
    np.testing.assert_allclose(run(GuidanceInterval(2.0, low=100, high=200)), run(0.0), rtol=1e-10)  # no step


def test_interval_checks():
    with pytest.raises(ValueError, match="high must be >= 11"):
        GuidanceInterval(1.0, low=10, high=10)
    with pytest.raises(ValueError, match="low must be >= 0"):
        GuidanceInterval(1.0, low=-1, high=10)
    with pytest.raises(TypeError, match="high must be an integer"):
        GuidanceInterval(1.0, low=1, high=2.5)
    with pytest.raises(ValueError, match="scale"):
        GuidanceInterval(float("nan"), low=1, high=2)
