"""1-D basis families for functional tensor trains: Legendre, Chebyshev, Fourier and clamped B-splines.

Each family is a small, hashable ``equinox.Module`` with static fields ``m`` and ``domain``; calling it on
``x`` of shape ``[...]`` returns ``[..., m]`` and ``.derivative(x)`` the derivatives with respect to ``x``.
"""

from jaxtt.basis.base import Basis
from jaxtt.basis.bspline import BSpline
from jaxtt.basis.chebyshev import Chebyshev
from jaxtt.basis.fourier import Fourier
from jaxtt.basis.indicator import Indicator
from jaxtt.basis.legendre import Legendre
from jaxtt.basis.registry import BASES, make_basis

__all__ = ["BASES", "Basis", "BSpline", "Chebyshev", "Fourier", "Indicator", "Legendre", "make_basis"]
