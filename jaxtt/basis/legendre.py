r"""Legendre polynomial basis on an interval, evaluated with Bonnet's three-term recursion."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from jaxtt.basis.base import ScaledBasis, as_real_input, jit_method, to_reference

__all__ = ["Legendre"]


def _bonnet(xi, m: int) -> list:
    """Values ``[P_0(xi), ..., P_{m-1}(xi)]`` by Bonnet's recursion ``k P_k = (2k-1) xi P_{k-1} - (k-1) P_{k-2}``."""
    values = [jnp.ones_like(xi), xi][:m]
    for k in range(2, m):
        values.append(((2 * k - 1) * xi * values[k - 1] - (k - 1) * values[k - 2]) / k)
    return values


def _bonnet_derivative(xi, values: list) -> list:
    """Derivatives ``P_k'(xi)`` from the differentiated Bonnet recursion.

    ``k P_k' = (2k-1)(P_{k-1} + xi P_{k-1}') - (k-1) P_{k-2}'``; unlike the identity
    ``(1 - xi^2) P_k' = k (P_{k-1} - xi P_k)`` it has no singularity at ``xi = +-1``.
    """
    derivatives = [jnp.zeros_like(xi), jnp.ones_like(xi)][: len(values)]
    for k in range(2, len(values)):
        derivatives.append(
            ((2 * k - 1) * (values[k - 1] + xi * derivatives[k - 1]) - (k - 1) * derivatives[k - 2]) / k
        )
    return derivatives


class Legendre(ScaledBasis):
    r"""Legendre polynomials :math:`P_0, \dots, P_{m-1}` on ``domain = (a, b)`` (Bonnet's recursion; Abramowitz & Stegun 22.7.10).

    .. math::
        \phi_k(x) = c_k P_k(\xi(x)), \qquad \xi(x) = \frac{2x - (a + b)}{b - a},

    with :math:`P_0 = 1`, :math:`P_1 = \xi` and Bonnet's recursion

    .. math::
        k P_k(\xi) = (2k - 1)\, \xi\, P_{k-1}(\xi) - (k - 1) P_{k-2}(\xi), \qquad k \ge 2.

    **Erratum of a common misprint:** the recursion is sometimes printed as
    :math:`P_k = ((2k+1) x P_{k-1} - k P_{k-2}) / (k+1)`. Those are the coefficients of the step
    :math:`(P_k, P_{k-1}) \to P_{k+1}`, applied to :math:`(P_{k-1}, P_{k-2})`: the index is off by one, and
    the printed formula gives e.g. :math:`P_2 = (5x^2 - 2)/3` instead of :math:`(3x^2 - 1)/2`. The corrected
    recursion above is implemented.

    ``orthonormal=False`` uses :math:`c_k = 1` (so :math:`\phi_k(b) = 1`); ``orthonormal=True`` uses
    :math:`c_k = \sqrt{(2k + 1) / (b - a)}`, so that :math:`\int_a^b \phi_j \phi_k \, dx = \delta_{jk}`.

    Out-of-domain policy: the polynomials are evaluated (extrapolated) outside :math:`[a, b]`; values then
    grow like :math:`|\xi|^{m-1}` (finite as long as that is representable in the dtype). Concrete NaN/inf
    input raises ``ValueError``.

    Cost: :math:`O(m)` elementwise operations per point for the values and again for :meth:`derivative`.

    Args:
        m: number of functions (polynomial degrees ``0 .. m-1``), ``m >= 1``.
        domain: the interval ``(a, b)`` with ``a < b``.
        orthonormal: scale to an :math:`L^2([a, b])`-orthonormal family.

    Examples:
        >>> import jax.numpy as jnp, numpy as np
        >>> [round(float(v), 4) for v in Legendre(3)(jnp.array(0.5))]  # 1, ξ, (3ξ² − 1)/2
        [1.0, 0.5, -0.125]
        >>> basis = Legendre(4, domain=(0.0, 2.0), orthonormal=True)
        >>> nodes, weights = np.polynomial.legendre.leggauss(8)  # exact quadrature on [-1, 1]
        >>> phi = basis(jnp.asarray(nodes + 1.0))  # mapped to [0, 2], dx = dξ
        >>> bool(np.allclose(phi.T @ (weights[:, None] * phi), np.eye(4), atol=1e-5))
        True
    """

    def _normalisation(self) -> np.ndarray:
        a, b = self.domain
        return np.sqrt((2 * np.arange(self.m) + 1) / (b - a))

    def __call__(self, x: Float[ArrayLike, "*batch"]) -> Float[Array, "*batch m"]:
        r"""Values :math:`\phi_k(x)`, shape ``[..., m]``, in the floating dtype of ``x``."""
        return self._values(as_real_input(x))

    def derivative(self, x: Float[ArrayLike, "*batch"]) -> Float[Array, "*batch m"]:
        r"""Derivatives :math:`d\phi_k/dx = c_k P_k'(\xi) \cdot 2/(b - a)`, shape ``[..., m]``.

        :math:`P_k'` follows from differentiating Bonnet's recursion,
        :math:`k P_k' = (2k-1)(P_{k-1} + \xi P_{k-1}') - (k-1) P_{k-2}'`, which is finite at :math:`\xi = \pm 1`.
        """
        return self._derivatives(as_real_input(x))

    @jit_method
    def _values(self, x: Array) -> Array:
        xi, _ = to_reference(x, self.domain)
        return self._scaled(jnp.stack(_bonnet(xi, self.m), axis=-1))

    @jit_method
    def _derivatives(self, x: Array) -> Array:
        xi, scale = to_reference(x, self.domain)
        return self._scaled(jnp.stack(_bonnet_derivative(xi, _bonnet(xi, self.m)), axis=-1)) * scale
