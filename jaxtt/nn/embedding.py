"""Sinusoidal time embedding (the transformer positional encoding with the position replaced by the time)."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float, Real

from jaxtt._validation import check_int, check_real

__all__ = ["SinusoidalEmbedding"]


class SinusoidalEmbedding(eqx.Module):
    r"""Sinusoidal embedding of a scalar time ``t`` into ``R^dim`` (Vaswani et al. 2017; Ho et al. 2020).

    With ``h = dim / 2`` frequencies :math:`\omega_i = s^{-i/(h-1)}`, ``i = 0, ..., h-1`` (geometrically spaced
    from 1 down to ``1/s``),

    .. math::
        e(t) = \bigl(\sin(\omega_0 t), \dots, \sin(\omega_{h-1} t),\
        \cos(\omega_0 t), \dots, \cos(\omega_{h-1} t)\bigr).

    The layout is all sines, then all cosines, with exponent ``i/(h-1)``; the formula of Vaswani et al.
    interleaves sines and cosines with exponent ``2i/d``, which is the same set of features up to a
    permutation and a slightly different frequency grid. The frequencies are computed on the fly, so the module
    has no array leaves and nothing in it is trained.

    The module embeds one time, ``t`` of shape ``()``; callers ``vmap`` over a batch. A floating ``t`` keeps
    its dtype; an integer ``t`` is embedded in JAX's default floating dtype.

    Args:
        dim: embedding size, even and ``>= 4``.
        scale: the scale ``s > 1``; the slowest frequency is ``1/s`` (``1000`` is usual, the number of
            diffusion steps, so that the slowest feature changes monotonically over ``t in [1, T]``).

    Examples:
        >>> import jax.numpy as jnp
        >>> embed = SinusoidalEmbedding(8, scale=100.0)
        >>> embed(jnp.array(0.0)).tolist()  # sin(0) = 0, then cos(0) = 1
        [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
        >>> e = embed(jnp.array(37.0))
        >>> bool(jnp.allclose(e[:4] ** 2 + e[4:] ** 2, 1.0, atol=1e-6))
        True
    """

    dim: int = eqx.field(static=True)
    scale: float = eqx.field(static=True)

    def __init__(self, dim: int, scale: float = 1000.0):
        dim = check_int(dim, "dim", minimum=4)
        if dim % 2:
            raise ValueError(f"dim must be even, got {dim}")
        self.dim = dim
        self.scale = check_real(scale, "scale", minimum=1.0, strict_minimum=True)

    def __call__(self, t: Real[Array, ""]) -> Float[Array, " dim"]:
        t = jnp.asarray(t)
        if t.shape != ():
            raise ValueError(f"t must be a scalar (one example; vmap over a batch), got shape {t.shape}")
        dtype = t.dtype if jnp.issubdtype(t.dtype, jnp.floating) else jnp.result_type(float)
        half = self.dim // 2
        freqs = jnp.exp(-jnp.log(jnp.asarray(self.scale, dtype)) * jnp.arange(half, dtype=dtype) / (half - 1))
        angles = t.astype(dtype) * freqs
        return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)])
