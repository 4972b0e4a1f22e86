r"""Chebyshev polynomial basis (first kind) on an interval, evaluated with the three-term recursion."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from jaxtt.basis.base import ScaledBasis, as_real_input, jit_method, to_reference

__all__ = ["Chebyshev"]


def _chebyshev(xi, m: int) -> list:
    """Values ``[T_0(xi), ..., T_{m-1}(xi)]`` by ``T_k = 2 xi T_{k-1} - T_{k-2}``."""
    values = [jnp.ones_like(xi), xi][:m]
    for k in range(2, m):
        values.append(2 * xi * values[k - 1] - values[k - 2])
    return values


def _chebyshev_derivative(xi, values: list) -> list:
    """Derivatives ``T_k'(xi)`` from the differentiated recursion ``T_k' = 2 T_{k-1} + 2 xi T_{k-1}' - T_{k-2}'``."""
    derivatives = [jnp.zeros_like(xi), jnp.ones_like(xi)][: len(values)]
    for k in range(2, len(values)):
        derivatives.append(2 * values[k - 1] + 2 * xi * derivatives[k - 1] - derivatives[k - 2])
    return derivatives


class Chebyshev(ScaledBasis):
    r"""Chebyshev polynomials of the first kind :math:`T_0, \dots, T_{m-1}` on ``domain = (a, b)``.

    .. math::
        \phi_k(x) = c_k T_k(\xi(x)), \qquad \xi(x) = \frac{2x - (a + b)}{b - a},
        \qquad T_0 = 1,\; T_1 = \xi,\; T_k = 2 \xi T_{k-1} - T_{k-2}

    (Mason & Handscomb, *Chebyshev Polynomials*, 2003, ch. 1; on :math:`[-1, 1]`,
    :math:`T_k(\cos\theta) = \cos k\theta`).

    ``orthonormal=False`` uses :math:`c_k = 1`. ``orthonormal=True`` normalizes with respect to the
    Chebyshev weight of the interval, :math:`w(x) = 1/\sqrt{(x - a)(b - x)}`:
    :math:`c_0 = 1/\sqrt{\pi}` and :math:`c_k = \sqrt{2/\pi}` for :math:`k \ge 1`, so that
    :math:`\int_a^b \phi_j \phi_k \, w \, dx = \delta_{jk}` (independent of the interval length, because
    :math:`w\,dx = d\xi / \sqrt{1 - \xi^2}`). The family is *not* orthonormal in plain :math:`L^2(dx)`.

    Out-of-domain policy: the polynomials are evaluated (extrapolated) outside :math:`[a, b]`; values then
    grow like :math:`|2\xi|^{m-1}` (finite as long as that is representable in the dtype). Concrete NaN/inf
    input raises ``ValueError``.

    Args:
        m: number of functions (degrees ``0 .. m-1``), ``m >= 1``.
        domain: the interval ``(a, b)`` with ``a < b``.
        orthonormal: normalize with respect to the Chebyshev weight (see above).

    Examples:
        >>> import jax.numpy as jnp
        >>> theta = 0.3
        >>> values = Chebyshev(5)(jnp.cos(jnp.array(theta)))  # T_k(cos θ) = cos kθ
        >>> bool(jnp.allclose(values, jnp.cos(jnp.arange(5) * theta), atol=1e-5))
        True
    """

    def _normalisation(self) -> np.ndarray:
        c = np.full(self.m, np.sqrt(2.0 / np.pi))
        c[0] = np.sqrt(1.0 / np.pi)
        return c

    def __call__(self, x: Float[ArrayLike, "*batch"]) -> Float[Array, "*batch m"]:
        r"""Values :math:`\phi_k(x)`, shape ``[..., m]``, in the floating dtype of ``x``."""
        return self._values(as_real_input(x))

    def derivative(self, x: Float[ArrayLike, "*batch"]) -> Float[Array, "*batch m"]:
        r"""Derivatives :math:`d\phi_k/dx = c_k T_k'(\xi) \cdot 2/(b - a)`, shape ``[..., m]``.

        :math:`T_k'` follows from differentiating the recursion,
        :math:`T_k' = 2 T_{k-1} + 2 \xi T_{k-1}' - T_{k-2}'`, which is finite at :math:`\xi = \pm 1`.
        """
        return self._derivatives(as_real_input(x))

    @jit_method
    def _values(self, x: Array) -> Array:
        xi, _ = to_reference(x, self.domain)
        return self._scaled(jnp.stack(_chebyshev(xi, self.m), axis=-1))

    @jit_method
    def _derivatives(self, x: Array) -> Array:
        xi, scale = to_reference(x, self.domain)
        return self._scaled(jnp.stack(_chebyshev_derivative(xi, _chebyshev(xi, self.m)), axis=-1)) * scale
