"""Functional tensor trains: scalar FTTs, their constant-function start, and vector-valued FTT denoisers."""

from jaxtt.ftt.denoiser import FTTDenoiser
from jaxtt.ftt.functional import FTT, constant_init

__all__ = ["FTT", "FTTDenoiser", "constant_init"]
