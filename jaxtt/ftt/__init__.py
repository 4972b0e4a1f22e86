"""Functional tensor trains: scalar FTTs and vector-valued FTT denoisers (seed 001 §3.4, §4.1)."""

from jaxtt.ftt.denoiser import FTTDenoiser, constant_init, make_basis
from jaxtt.ftt.functional import FTT

__all__ = ["FTT", "FTTDenoiser", "constant_init", "make_basis"]
