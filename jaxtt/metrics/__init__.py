"""Sample-quality metrics: MMD, sliced Wasserstein, energy and Frechet distances, eps-error to the exact optimum."""

from jaxtt.metrics.energy import energy_distance
from jaxtt.metrics.eps_error import default_eps_error_steps, eps_error
from jaxtt.metrics.frechet import frechet_distance, gaussian_frechet_distance
from jaxtt.metrics.mmd import DEFAULT_BANDWIDTH_MULTIPLES, mmd
from jaxtt.metrics.sliced_wasserstein import sliced_wasserstein

__all__ = [
    "DEFAULT_BANDWIDTH_MULTIPLES",
    "default_eps_error_steps",
    "energy_distance",
    "eps_error",
    "frechet_distance",
    "gaussian_frechet_distance",
    "mmd",
    "sliced_wasserstein",
]
