"""The basis families by name, for configuration files and command lines."""

from __future__ import annotations

from jaxtt._validation import check_choice
from jaxtt.basis.base import Basis
from jaxtt.basis.bspline import BSpline
from jaxtt.basis.chebyshev import Chebyshev
from jaxtt.basis.fourier import Fourier
from jaxtt.basis.legendre import Legendre

__all__ = ["BASES", "make_basis"]

BASES = {"legendre": Legendre, "bspline": BSpline, "chebyshev": Chebyshev, "fourier": Fourier}


def make_basis(name: str, m: int, domain) -> Basis:
    """A basis family by name (``legendre``, ``bspline``, ``chebyshev``, ``fourier``).

    Examples:
        >>> make_basis("legendre", 4, (-1.0, 1.0))
        Legendre(m=4, domain=(-1.0, 1.0), orthonormal=False)
    """
    check_choice(name, "basis", BASES)
    return BASES[name](m, domain=domain)
