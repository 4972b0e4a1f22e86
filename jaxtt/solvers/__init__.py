"""Solvers for functional tensor trains: TT-ALS, two-site DMRG, Riemannian GD/CG and denoiser fitting."""

from jaxtt.solvers.als import als_sweep, fit_als
from jaxtt.solvers.denoiser import fit_denoiser, regression_data
from jaxtt.solvers.dmrg import dmrg_sweep, fit_dmrg
from jaxtt.solvers.riemannian import RCG, RGD, LeastSquares, fit_ftt, fit_riemannian

__all__ = [
    "als_sweep",
    "fit_als",
    "dmrg_sweep",
    "fit_dmrg",
    "fit_denoiser",
    "regression_data",
    "RGD",
    "RCG",
    "LeastSquares",
    "fit_riemannian",
    "fit_ftt",
]
