"""Indicator (one-hot) basis of a discrete variable."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from jaxtt._validation import check_int
from jaxtt.basis.base import Basis, as_real_input

__all__ = ["Indicator"]


class Indicator(Basis):
    r"""One-hot basis of a variable with values ``0, 1, …, m-1``: :math:`\phi_k(j) = \delta_{jk}`.

    A TT mode with this basis is an index mode: a functional TT whose last mode
    is an ``Indicator(D)`` is a vector-valued function with ``D`` outputs that
    share all other cores (the "output core" of :class:`jaxtt.ftt.FTTDenoiser`).
    Inputs are rounded to the nearest integer and clamped to ``[0, m-1]``; the
    derivative is zero.

    Examples:
        >>> import jax.numpy as jnp
        >>> Indicator(3)(jnp.array([0.0, 2.0, 1.4])).tolist()  # rounded to the nearest value
        [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
    """

    m: int = eqx.field(static=True)
    domain: tuple[float, float] = eqx.field(static=True)
    orthonormal: bool = eqx.field(static=True)

    def __init__(self, m: int):
        self.m = check_int(m, "m", minimum=1)
        self.domain = (0.0, float(self.m - 1))
        self.orthonormal = True

    def __call__(self, x: Float[ArrayLike, "*batch"]) -> Float[Array, "*batch m"]:
        x = as_real_input(x)
        j = jnp.clip(jnp.round(x), 0, self.m - 1).astype(jnp.int32)
        return (j[..., None] == jnp.arange(self.m)).astype(x.dtype)

    def derivative(self, x: Float[ArrayLike, "*batch"]) -> Float[Array, "*batch m"]:
        x = as_real_input(x)
        return jnp.zeros(x.shape + (self.m,), x.dtype)
