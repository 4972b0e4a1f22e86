r"""Ancestral DDPM sampling (Ho et al. 2020, Algorithm 2; seed 002 eq. 4-6)."""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from jaxtt._validation import check_choice
from jaxtt.diffusion._checks import call_eps
from jaxtt.diffusion._common import check_sampler_args, full_t, initial_and_keys
from jaxtt.diffusion._scan import sampler_scan
from jaxtt.diffusion.schedule import Schedule

__all__ = ["ddpm_sample"]


def ddpm_sample(
    eps_fn: Callable[[Array, Array], Array],
    schedule: Schedule,
    key: PRNGKeyArray,
    shape: tuple[int, ...],
    variance: str = "beta",
    return_trajectory: bool = False,
    *,
    x_init: Float[Array, "N *event"] | None = None,
    checkpoint: bool = True,
) -> Float[Array, "N *event"] | tuple[Float[Array, "N *event"], Float[Array, "T1 N *event"]]:
    r"""Sample by ancestral DDPM steps ``t = T, ..., 1`` from :math:`x_T \sim N(0, I)`:

    .. math::
        x_{t-1} = \frac{1}{\sqrt{\alpha_t}}\Big(x_t - \frac{1-\alpha_t}{\sqrt{1-\bar\alpha_t}}
        \epsilon_\theta(x_t, t)\Big) + \sigma_t z,\qquad z \sim N(0, I),

    the mean of seed 002 eq. 6 with :math:`\sigma_t^2 = \beta_t` (``variance="beta"``) or
    :math:`\sigma_t^2 = \tilde\beta_t` (``"beta_tilde"``), and no noise in the last step ``t = 1``
    (Ho et al. 2020, Algorithm 2).

    The loop is a ``lax.scan``; the noise is reparameterised, so ``jax.grad`` of a function of the samples
    with respect to the parameters of ``eps_fn`` or to ``x_init`` is the pathwise gradient. With
    ``checkpoint=True`` each step is rematerialised (two-level checkpointing in blocks of ``ceil(sqrt(T))`` steps),
    so reverse-mode memory grows like ``sqrt(T)`` carries instead of ``T`` steps of activations. Cost: ``T``
    calls of ``eps_fn`` on a batch of ``N``.

    Args:
        eps_fn: batched noise model ``eps_fn(x, t)``, ``x`` of shape ``shape`` and integer ``t`` of shape
            ``(N,)`` in ``1..T``, returning ``x``'s shape.
        schedule: the noise schedule.
        key: PRNG key.
        shape: ``(N, *event_shape)``.
        variance: ``"beta"`` or ``"beta_tilde"``.
        return_trajectory: also return all iterates :math:`x_T, \dots, x_0`, shape ``(T + 1, *shape)``.
        x_init: optional :math:`x_T` to start from (instead of a draw from ``key``); its dtype sets the
            sampling dtype (default: the schedule's dtype).
        checkpoint: rematerialise the steps under reverse-mode differentiation.

    Returns:
        The samples :math:`x_0` of shape ``shape`` (and the trajectory when requested).
    """
    check_choice(variance, "variance", ("beta", "beta_tilde"))
    schedule, shape, x_init, dtype = check_sampler_args(eps_fn, schedule, key, shape, x_init)
    x0, traj = _ddpm(eps_fn, schedule, key, x_init, shape, dtype, variance, checkpoint, return_trajectory)
    return (x0, traj) if return_trajectory else x0


@eqx.filter_jit
def _ddpm(eps_fn, schedule, key, x_init, shape, dtype, variance, checkpoint, trajectory):
    x, keys = initial_and_keys(key, shape, dtype, x_init, schedule.T)
    ts = jnp.arange(schedule.T, 0, -1, dtype=jnp.int32)
    var = schedule.betas if variance == "beta" else schedule.posterior_variance
    sigma = jnp.where(ts > 1, jnp.sqrt(var[ts]), 0.0).astype(dtype)
    mean_x = jax.lax.rsqrt(schedule.alphas[ts]).astype(dtype)
    mean_eps = (schedule.betas[ts] * jax.lax.rsqrt(schedule.alphas[ts]) / schedule.noise_std_at(ts)).astype(dtype)

    def step(x, inp):
        t, c_x, c_eps, s, k = inp
        eps = call_eps(eps_fn, x, full_t(t, x))
        return c_x * x - c_eps * eps + s * jax.random.normal(k, x.shape, dtype=x.dtype)

    return sampler_scan(step, x, (ts, mean_x, mean_eps, sigma, keys), checkpoint=checkpoint, trajectory=trajectory)
