"""Shared fixtures of the diffusion tests: exact noise models for Gaussian and Gaussian-mixture data."""

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pytest

from jaxtt.data.mixture import GaussianMixture
from jaxtt.diffusion import Schedule


class OptimalEps(eqx.Module):
    """The exact eps*(x_t, t) of a Gaussian mixture as an Equinox noise model (parameters are traced)."""

    mixture: GaussianMixture
    schedule: Schedule

    def __call__(self, x, t):
        return self.mixture.optimal_eps(x, t, self.schedule)


MU = np.array([0.8, -0.4])
SIGMA = np.array([[0.5, 0.2], [0.2, 0.3]])


@pytest.fixture(scope="session")
def gaussian():
    """N(MU, SIGMA) as a one-component mixture."""
    return GaussianMixture(jnp.ones(1), jnp.asarray(MU[None]), jnp.asarray(SIGMA[None]))


@pytest.fixture(scope="session")
def mixture():
    """A well separated three-component mixture in 2-D."""
    return GaussianMixture(
        jnp.array([0.3, 0.3, 0.4]),
        jnp.array([[-2.0, 0.0], [2.0, 0.5], [0.0, 2.0]]),
        jnp.array([[[0.2, 0.05], [0.05, 0.1]], [[0.1, 0.0], [0.0, 0.3]], [[0.25, -0.1], [-0.1, 0.15]]]),
    )


@pytest.fixture(scope="session")
def optimal_eps():
    """``optimal_eps(mixture, schedule)``: an eps_fn for the samplers."""
    return OptimalEps
