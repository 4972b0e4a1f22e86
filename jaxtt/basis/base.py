r"""Common interface of the 1-D basis families and the helpers they share.

A basis is a family of ``m`` real functions :math:`\phi_0, \dots, \phi_{m-1}` on an interval
:math:`[a, b]` (the ``domain``). Evaluating it maps inputs of any shape ``[...]`` to ``[..., m]``; the
functional tensor train contracts these feature vectors with its cores (:class:`jaxtt.ftt.FTT`). Every family
works on a reference interval and reaches it through the affine map

.. math::
    \xi(x) = \frac{2x - (a + b)}{b - a}, \qquad \frac{d\xi}{dx} = \frac{2}{b - a},

so derivatives with respect to ``x`` carry the factor :math:`2 / (b - a)` (chain rule).
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from jaxtt._validation import check_array, check_bool, check_domain, check_finite, check_int

__all__ = ["Basis", "ScaledBasis", "as_real_input", "check_bool", "jit_method", "to_reference"]


class Basis(eqx.Module):
    """Abstract family of ``m`` real functions on the interval ``domain = (a, b)``.

    Concrete families (:class:`~jaxtt.basis.Legendre`, :class:`~jaxtt.basis.Chebyshev`,
    :class:`~jaxtt.basis.Fourier`, :class:`~jaxtt.basis.BSpline`) hold only static fields, so they are
    hashable, compare by value and pass through ``jax.jit`` as static data. Calling a basis on ``x`` of shape
    ``[...]`` returns the values ``[..., m]`` in the floating dtype of ``x`` (integer input is promoted to
    the default float dtype); :meth:`derivative` returns :math:`d\\phi_k / dx` with the same shape.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxtt.basis import Basis, Chebyshev, Legendre
        >>> basis = Chebyshev(4, domain=(0.0, 2.0))
        >>> isinstance(basis, Basis), basis(jnp.zeros((2, 5))).shape, basis.derivative(jnp.zeros(3)).shape
        (True, (2, 5, 4), (3, 4))
        >>> Legendre(3) == Legendre(3)  # static fields: compares by value, hashable
        True
    """

    m: eqx.AbstractVar[int]
    domain: eqx.AbstractVar[tuple[float, float]]
    orthonormal: eqx.AbstractVar[bool]

    @abc.abstractmethod
    def __call__(self, x: Float[ArrayLike, "*batch"]) -> Float[Array, "*batch m"]:
        """Values :math:`\\phi_k(x)` of all ``m`` functions, shape ``[..., m]``."""

    @abc.abstractmethod
    def derivative(self, x: Float[ArrayLike, "*batch"]) -> Float[Array, "*batch m"]:
        """Derivatives :math:`d\\phi_k / dx` of all ``m`` functions, shape ``[..., m]``."""


class ScaledBasis(Basis):
    """A global family (polynomial or trigonometric) whose ``k``-th function is optionally scaled by ``c_k``.

    Subclasses give the normalisation constants :meth:`_normalisation` (``c_k`` that make the family
    orthonormal for its weight on ``domain``); ``orthonormal=False`` leaves the functions unscaled.
    """

    m: int = eqx.field(static=True)
    domain: tuple[float, float] = eqx.field(static=True)
    orthonormal: bool = eqx.field(static=True)

    def __init__(self, m: int, domain: tuple[float, float] = (-1.0, 1.0), orthonormal: bool = False):
        self.m = check_int(m, "m", minimum=1)
        self.domain = check_domain(domain, "domain")
        self.orthonormal = check_bool(orthonormal, "orthonormal")

    @abc.abstractmethod
    def _normalisation(self) -> np.ndarray:
        """The constants ``c_0 .. c_{m-1}`` of the orthonormal family."""

    def _scaled(self, stacked: Array) -> Array:
        """``stacked[..., k] · c_k`` when orthonormal, else ``stacked``."""
        if not self.orthonormal:
            return stacked
        return stacked * jnp.asarray(self._normalisation(), dtype=stacked.dtype)


def as_real_input(x) -> Array:
    """Validate the evaluation points ``x`` and return them as a floating JAX array.

    Floating input keeps its dtype; integer and bool input is promoted to the default float dtype
    (float64 when ``jax_enable_x64`` is on, else float32). Complex or non-numeric input raises
    ``TypeError``; concrete input holding NaN or infinity raises ``ValueError`` (skipped for tracers).
    """
    if not (hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating)):
        x = check_array(x, "x")
        if np.issubdtype(x.dtype, np.complexfloating):
            raise TypeError(f"x must be real, got dtype {x.dtype}")
    check_finite(x, "x")
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    return x


def to_reference(x: Float[Array, "*batch"], domain: tuple[float, float]) -> tuple[Float[Array, "*batch"], float]:
    r"""Map ``x`` from ``domain = (a, b)`` to :math:`\xi \in [-1, 1]`; return :math:`\xi` and :math:`d\xi/dx`."""
    a, b = domain
    scale = 2.0 / (b - a)
    return (x - 0.5 * (a + b)) * scale, scale


def jit_method(method):
    """Compile ``method(self, x)`` with ``jax.jit``, the (array-free, hashable) basis module ``self`` static.

    Equal modules share one compiled function per input shape and dtype, so eager calls cost one dispatch
    instead of one per primitive. Validation stays in the public methods, outside the compiled function;
    inside a user's ``jax.jit``/``vmap``/``grad`` the inner ``jit`` is traced through as usual.
    """
    return jax.jit(method, static_argnums=0)
