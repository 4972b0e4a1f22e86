"""Solvers for functional tensor trains: TT-ALS, two-site DMRG and closed-form denoiser fitting."""

from jaxtt.solvers.als import als_sweep, fit_als
from jaxtt.solvers.denoiser import fit_denoiser, regression_data
from jaxtt.solvers.dmrg import dmrg_sweep, fit_dmrg

__all__ = ["als_sweep", "fit_als", "dmrg_sweep", "fit_dmrg", "fit_denoiser", "regression_data"]
