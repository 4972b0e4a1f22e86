"""Fitting functional tensor trains: one loop, :func:`fit`, over interchangeable solvers.

``model, result = fit(model, x, y, solver, max_steps=...)`` with ``solver`` one of

* :class:`ALS` — single-site TT-ALS sweeps (Holtz, Rohwedder, Schneider 2012);
* :class:`DMRG` — rank-adaptive two-site sweeps (White 1992; Schollwöck 2011);
* :class:`RGD`, :class:`RCG` — Riemannian gradient descent / conjugate gradients on the
  fixed-rank manifold (Steinlechner 2016);
* :class:`GradientDescent` — any Optax optimizer on the cores.

Each solver is an immutable module with pure ``init(model, x, y) -> state`` and
``step(state) -> state``; all minimise the :class:`LeastSquares` objective and
report a :class:`FitResult` with the same fields. :func:`fit_denoiser` fits an
:class:`~jaxtt.ftt.FTTDenoiser` on the DDPM loss with any of them; :func:`fit_regression` fits one to
fixed rows ``(x_t, t, y)`` (flow matching, distillation, compression).
"""

from jaxtt.solvers.als import ALS, ALSState, als_sweep, sweep_memory
from jaxtt.solvers.continuation import coarse_levels, coarse_to_fine, resize_bases
from jaxtt.solvers.denoiser import fit_denoiser, fit_regression, regression_data
from jaxtt.solvers.dmrg import DMRG, DMRGState, dmrg_sweep
from jaxtt.solvers.fit import FitResult, Solver, StalledFitWarning, fit
from jaxtt.solvers.gradient import GradientDescent, GradientDescentState
from jaxtt.solvers.problem import LeastSquares
from jaxtt.solvers.riemannian import RCG, RGD, RiemannianFitState, RiemannianState, fit_riemannian
from jaxtt.solvers.streaming import StreamedALS, fit_streamed

__all__ = [
    "fit",
    "FitResult",
    "StalledFitWarning",
    "Solver",
    "ALS",
    "ALSState",
    "DMRG",
    "DMRGState",
    "RGD",
    "RCG",
    "RiemannianState",
    "RiemannianFitState",
    "GradientDescent",
    "GradientDescentState",
    "LeastSquares",
    "als_sweep",
    "sweep_memory",
    "dmrg_sweep",
    "fit_denoiser",
    "coarse_levels",
    "coarse_to_fine",
    "resize_bases",
    "fit_regression",
    "fit_riemannian",
    "regression_data",
    "StreamedALS",
    "fit_streamed",
]
