"""Data sets: standardised 2-D toy densities, Gaussian mixtures with exact scores, sklearn digits."""

from jaxtt.data.digits import digits, digits_split
from jaxtt.data.mixture import GaussianMixture
from jaxtt.data.toy import (
    TOY_DATASETS,
    checkerboard,
    circles,
    eight_gaussians,
    moons,
    pinwheel,
    swiss_roll,
    toy_dataset,
)

__all__ = [
    "GaussianMixture",
    "TOY_DATASETS",
    "checkerboard",
    "circles",
    "digits",
    "digits_split",
    "eight_gaussians",
    "moons",
    "pinwheel",
    "swiss_roll",
    "toy_dataset",
]
