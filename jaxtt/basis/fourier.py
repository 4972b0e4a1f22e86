r"""Real trigonometric (Fourier) basis on an interval, periodic with the interval's length."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from jaxtt.basis.base import ScaledBasis, as_real_input, jit_method, to_reference

__all__ = ["Fourier"]


def _layout(m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cosine frequencies ``0..C-1``, sine frequencies ``1..S`` and the order that interleaves them.

    ``concatenate([cos terms, sin terms])[..., order]`` is ``1, cos 1, sin 1, cos 2, sin 2, ...`` (``m`` terms).
    """
    n_sin = (m - 1) // 2
    n_cos = m - n_sin
    order = [0] + [(k + 1) // 2 if k % 2 else n_cos + k // 2 - 1 for k in range(1, m)]
    return np.arange(n_cos), np.arange(1, n_sin + 1), np.asarray(order)


class Fourier(ScaledBasis):
    r"""Real Fourier basis on ``domain = (a, b)`` (a standard FTT basis; Gorodetsky et al. 2019).

    With :math:`\xi(x) = (2x - (a + b)) / (b - a) \in [-1, 1]`, the ``m`` functions are, in this order,

    .. math::
        \phi_0 = c_0, \quad \phi_{2j-1} = c\, \cos(\pi j \xi), \quad \phi_{2j} = c\, \sin(\pi j \xi),
        \qquad j = 1, 2, \dots

    truncated after ``m`` terms: odd ``m`` ends with a complete pair (:math:`\sin(\pi K\xi)`,
    :math:`K = (m-1)/2`), even ``m`` ends with the cosine :math:`\cos(\pi (m/2) \xi)`.

    ``orthonormal=False`` uses :math:`c_0 = c = 1`; ``orthonormal=True`` uses :math:`c_0 = 1/\sqrt{b - a}`
    and :math:`c = \sqrt{2 / (b - a)}`, so that :math:`\int_a^b \phi_j \phi_k \, dx = \delta_{jk}`.

    Out-of-domain policy: every function is periodic with period :math:`b - a`, so inputs outside
    :math:`[a, b]` are evaluated at their periodic image (no clamping, always finite).

    Args:
        m: number of functions, ``m >= 1``.
        domain: the interval ``(a, b)`` with ``a < b`` (one period).
        orthonormal: scale to an :math:`L^2([a, b])`-orthonormal family.

    Examples:
        >>> import jax.numpy as jnp
        >>> basis = Fourier(3)  # 1, cos(πξ), sin(πξ) on (-1, 1)
        >>> [round(float(v), 4) for v in basis(jnp.array(1 / 3))]
        [1.0, 0.5, 0.866]
        >>> x = jnp.linspace(-1.0, 1.0, 7)
        >>> bool(jnp.allclose(basis(x + 2.0), basis(x), atol=1e-5))  # periodic with period b - a
        True
    """

    def _normalisation(self) -> np.ndarray:
        a, b = self.domain
        c = np.full(self.m, np.sqrt(2.0 / (b - a)))
        c[0] = np.sqrt(1.0 / (b - a))
        return c

    def __call__(self, x: Float[ArrayLike, "*batch"]) -> Float[Array, "*batch m"]:
        r"""Values :math:`\phi_k(x)`, shape ``[..., m]``, in the floating dtype of ``x``."""
        return self._values(as_real_input(x))

    def derivative(self, x: Float[ArrayLike, "*batch"]) -> Float[Array, "*batch m"]:
        r"""Derivatives :math:`d\phi_k/dx`, shape ``[..., m]``, in the floating dtype of ``x``.

        :math:`\frac{d}{dx}\cos(\pi j \xi) = -\frac{2 \pi j}{b - a} \sin(\pi j \xi)` and
        :math:`\frac{d}{dx}\sin(\pi j \xi) = \frac{2 \pi j}{b - a} \cos(\pi j \xi)`, times the normalization.
        """
        return self._derivatives(as_real_input(x))

    @jit_method
    def _values(self, x: Array) -> Array:
        xi, _ = to_reference(x, self.domain)
        cos_freq, sin_freq, order = _layout(self.m)
        cos_terms = jnp.cos(xi[..., None] * jnp.asarray(np.pi * cos_freq, dtype=x.dtype))
        sin_terms = jnp.sin(xi[..., None] * jnp.asarray(np.pi * sin_freq, dtype=x.dtype))
        return self._scaled(jnp.concatenate([cos_terms, sin_terms], axis=-1)[..., order])

    @jit_method
    def _derivatives(self, x: Array) -> Array:
        xi, scale = to_reference(x, self.domain)
        cos_freq, sin_freq, order = _layout(self.m)
        cos_rate = jnp.asarray(np.pi * cos_freq, dtype=x.dtype)
        sin_rate = jnp.asarray(np.pi * sin_freq, dtype=x.dtype)
        cos_terms = -cos_rate * jnp.sin(xi[..., None] * cos_rate)
        sin_terms = sin_rate * jnp.cos(xi[..., None] * sin_rate)
        return self._scaled(jnp.concatenate([cos_terms, sin_terms], axis=-1)[..., order] * scale)
