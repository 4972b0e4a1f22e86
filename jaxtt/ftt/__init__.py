"""Functional tensor trains: scalar FTTs, their constant-function start, vector-valued FTT denoisers, and TT
densities whose noised densities and scores are exact."""

from jaxtt.ftt.denoiser import FTTDenoiser
from jaxtt.ftt.density import DensityDenoiser, TTDensity, fit_density
from jaxtt.ftt.functional import FTT, constant_init
from jaxtt.ftt.whitening import Whitening

__all__ = ["FTT", "FTTDenoiser", "constant_init", "TTDensity", "DensityDenoiser", "fit_density", "Whitening"]
