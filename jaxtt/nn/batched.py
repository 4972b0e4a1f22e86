"""Batch a per-example noise model into the batched ``eps_fn(x, t)`` form used by jaxtt's losses and samplers."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Real

__all__ = ["Batched"]


class Batched(eqx.Module):
    r"""Wrap a per-example module ``module(x, t)`` into a batched one: ``Batched(module)(x, t)`` with ``x`` of shape
    ``(N, *event)`` and ``t`` of shape ``(N,)`` returns :math:`(\mathrm{module}(x_i, t_i))_{i=1}^N`.

    jaxtt's diffusion losses, samplers and :func:`jaxtt.train.fit` take batched noise models
    ``eps_fn(x, t)``; Equinox modules follow the one-example convention, so ``Batched`` is the bridge.
    A conditional module ``module(x, t, y)`` is batched the same way: ``Batched(module)(x, t, y)`` with labels
    ``y`` of shape ``(N, ...)`` (the form :class:`jaxtt.diffusion.ClassifierFreeGuidance` calls).

    It is itself an Equinox module: its parameters are the wrapped module's parameters, so it trains,
    serialises and averages (EMA) like the module. Models that are batched already (such as the FTT
    denoiser) are passed to ``fit`` directly.

    Args:
        module: a callable pytree (usually an ``eqx.Module``) taking one example ``x`` and a scalar ``t``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt.nn import ResNetMLP
        >>> model = Batched(ResNetMLP(2, width=16, depth=1, key=jax.random.key(0)))
        >>> x, t = jnp.ones((5, 2)), jnp.arange(1, 6)
        >>> out = model(x, t)
        >>> out.shape, bool(jnp.allclose(out[3], model.module(x[3], t[3])))  # row i is module(x_i, t_i)
        ((5, 2), True)
    """

    module: eqx.Module

    def __init__(self, module):
        if not callable(module):
            raise TypeError(f"module must be callable as module(x, t), got {type(module).__name__}")
        self.module = module

    def __call__(
        self, x: Float[Array, "N *event"], t: Real[Array, " N"], y: Array | None = None
    ) -> Float[Array, "N *event"]:
        t = jnp.asarray(t)
        if t.shape != x.shape[:1]:
            raise ValueError(f"t must have shape ({x.shape[0]},) to match x of shape {x.shape}, got {t.shape}")
        if y is None:
            return jax.vmap(self.module)(x, t)
        y = jnp.asarray(y)
        if y.shape[:1] != x.shape[:1]:
            raise ValueError(f"y must have {x.shape[0]} rows to match x of shape {x.shape}, got {y.shape}")
        return jax.vmap(self.module)(x, t, y)
