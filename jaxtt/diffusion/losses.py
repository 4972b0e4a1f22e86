r"""The DDPM training objective L_simple (seed 001 eq. 5/10; seed 002 eq. 5)."""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from jaxtt._validation import check_array, check_finite, is_concrete
from jaxtt.diffusion._checks import call_eps, check_data, check_eps_fn, check_key, check_schedule
from jaxtt.diffusion.schedule import Schedule

__all__ = ["ddpm_loss"]


def ddpm_loss(
    eps_fn: Callable[[Array, Array], Array],
    schedule: Schedule,
    key: PRNGKeyArray,
    x0: Float[Array, "N *event"],
    weights: Float[Array, " T1"] | None = None,
) -> Float[Array, ""]:
    r"""Monte Carlo estimate of L_simple (seed 001 eq. 5/10), optionally weighted per time step.

    For each row ``n`` of the batch draw :math:`t_n \sim U\{1, \dots, T\}` and :math:`\epsilon_n \sim N(0, I)`,
    form :math:`x_{t_n} = \sqrt{\bar\alpha_{t_n}}x_{0,n} + \sqrt{1-\bar\alpha_{t_n}}\epsilon_n` (seed 001 eq. 4)
    and return

    .. math::
        \frac{1}{N}\sum_{n=1}^N w_{t_n}\,\frac{1}{D}\big\|\epsilon_n - \epsilon_\theta(x_{t_n}, t_n)\big\|^2,

    where ``D`` is the event size (product of ``event_shape``): the squared error is the per-element mean, so
    the loss of the perfect-noise predictor of pure noise is 1 whatever ``D`` is. ``w = 1`` gives L_simple;
    other weights give the :math:`L_\gamma` family of seed 004 eq. 4.17 (e.g. the true-VLB weights of seed 003
    eq. 1.50).

    Args:
        eps_fn: batched noise model ``eps_fn(x, t)`` (``x`` of shape ``(N, *event_shape)``, integer ``t`` of
            shape ``(N,)``) returning ``x``'s shape.
        schedule: the noise schedule.
        key: PRNG key for ``t`` and ``eps``.
        x0: data batch ``(N, *event_shape)``, finite.
        weights: optional per-step weights of shape ``(T + 1,)`` indexed by ``t`` (entry 0 unused), finite and
            non-negative.

    Returns:
        A scalar in ``x0``'s dtype; differentiable in the parameters of ``eps_fn``.
    """
    check_eps_fn(eps_fn)
    schedule = check_schedule(schedule)
    check_key(key)
    x0 = check_data(x0, "x0")
    if weights is not None:
        weights = check_array(weights, "weights", ndim=1, floating=True)
        if weights.shape[0] != schedule.T + 1:
            raise ValueError(f"weights must have shape (T + 1,) = ({schedule.T + 1},), got {tuple(weights.shape)}")
        check_finite(weights, "weights")
        if is_concrete(weights) and not bool(np.all(np.asarray(weights) >= 0)):
            raise ValueError("weights must be non-negative")
    return _ddpm_loss(eps_fn, schedule, key, x0, weights)


@eqx.filter_jit
def _ddpm_loss(eps_fn, schedule, key, x0, weights):
    k_t, k_eps = jax.random.split(key)
    n = x0.shape[0]
    t = jax.random.randint(k_t, (n,), 1, schedule.T + 1, dtype=jnp.int32)
    eps = jax.random.normal(k_eps, x0.shape, dtype=x0.dtype)
    expand = (n,) + (1,) * (x0.ndim - 1)
    scale = jnp.exp(0.5 * schedule.log_alpha_bars[t]).astype(x0.dtype).reshape(expand)
    std = schedule.noise_std_at(t).astype(x0.dtype).reshape(expand)
    x_t = scale * x0 + std * eps
    err = jnp.mean(((eps - call_eps(eps_fn, x_t, t)) ** 2).reshape(n, -1), axis=1)
    if weights is not None:
        err = jnp.asarray(weights).astype(x0.dtype)[t] * err
    return jnp.mean(err)
