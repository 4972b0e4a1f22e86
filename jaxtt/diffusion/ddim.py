r"""DDIM sampling on a strided sub-sequence of steps (Song, Meng & Ermon 2021; seed 003 eq. 1.57, seed 004
eq. 4.14 and 4.19)."""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from jaxtt._validation import check_int
from jaxtt.diffusion._checks import call_eps, check_eta, check_schedule
from jaxtt.diffusion._common import check_sampler_args, full_t, initial_and_keys
from jaxtt.diffusion._scan import sampler_scan
from jaxtt.diffusion.schedule import Schedule

__all__ = ["ddim_sample", "ddim_timesteps"]


def ddim_timesteps(T: int, steps: int) -> np.ndarray:
    r"""The DDIM sub-sequence :math:`\tau_S > \dots > \tau_1` (descending, ``S = steps``) of ``1..T``.

    :math:`\tau_i` are the rounded points of an even grid from ``T`` down to ``1``: :math:`\tau_S = T` always,
    :math:`\tau_1 = 1` when ``steps >= 2``, all distinct, and ``steps = T`` gives every step.
    """
    T = check_int(T, "T", minimum=1)
    steps = check_int(steps, "steps", minimum=1, maximum=T)
    return np.round(np.linspace(T, 1, steps)).astype(np.int32)


def ddim_sample(
    eps_fn: Callable[[Array, Array], Array],
    schedule: Schedule,
    key: PRNGKeyArray,
    shape: tuple[int, ...],
    steps: int,
    eta: float = 0.0,
    return_trajectory: bool = False,
    *,
    x_init: Float[Array, "N *event"] | None = None,
    checkpoint: bool = True,
) -> Float[Array, "N *event"] | tuple[Float[Array, "N *event"], Float[Array, "S1 N *event"]]:
    r"""Sample with DDIM on the sub-sequence :math:`\tau` of :func:`ddim_timesteps`, from :math:`x_T \sim N(0,I)`.

    For each pair :math:`t = \tau_i`, :math:`p = \tau_{i-1}` (with :math:`\tau_0 = 0`, :math:`\bar\alpha_0 = 1`):

    .. math::
        \hat x_0 = \frac{x_t - \sqrt{1-\bar\alpha_t}\,\epsilon_\theta(x_t, t)}{\sqrt{\bar\alpha_t}},\qquad
        x_p = \sqrt{\bar\alpha_p}\,\hat x_0 + \sqrt{1-\bar\alpha_p-\sigma_t^2}\,\epsilon_\theta(x_t, t)
        + \sigma_t z,

    .. math::
        \sigma_t(\eta) = \eta\sqrt{\frac{1-\bar\alpha_p}{1-\bar\alpha_t}}\sqrt{1-\frac{\bar\alpha_t}{\bar\alpha_p}}

    (seed 004 eq. 4.14 and 4.19, whose :math:`\alpha` is our :math:`\bar\alpha`; seed 003 eq. 1.57 prints the
    :math:`\hat x_0` term without its factor :math:`\sqrt{\bar\alpha_{t-1}}`). ``eta = 0`` is the deterministic
    DDIM (a discretisation of the probability-flow ODE); ``eta = 1`` with ``steps = T`` is DDPM with
    :math:`\sigma_t^2 = \tilde\beta_t` and coincides draw for draw with
    ``ddpm_sample(..., variance="beta_tilde")`` under the same key. The last step (to :math:`\tau_0 = 0`)
    returns :math:`\hat x_0`.

    A ``lax.scan`` over the ``steps`` steps; differentiable in the parameters of ``eps_fn``, in ``x_init`` and
    in ``eta``, with two-level rematerialisation when ``checkpoint=True`` (reverse-mode memory ~
    ``sqrt(steps)`` carries). Cost: ``steps`` calls of ``eps_fn``.

    Args:
        eps_fn: batched noise model ``eps_fn(x, t)`` (integer ``t`` of shape ``(N,)`` in ``1..T``).
        schedule: the noise schedule.
        key: PRNG key (for ``x_T`` and, when ``eta > 0``, the step noise).
        shape: ``(N, *event_shape)``.
        steps: number of sampling steps, ``1 <= steps <= T``.
        eta: stochasticity in ``[0, 1]``.
        return_trajectory: also return :math:`x_{\tau_S}, \dots, x_{\tau_1}, x_0`, shape ``(steps + 1, *shape)``.
        x_init: optional :math:`x_T` (its dtype sets the sampling dtype; default: the schedule's dtype).
        checkpoint: rematerialise the steps under reverse-mode differentiation.
    """
    schedule = check_schedule(schedule)
    steps = check_int(steps, "steps", minimum=1, maximum=schedule.T)
    eta = check_eta(eta)
    schedule, shape, x_init, dtype = check_sampler_args(eps_fn, schedule, key, shape, x_init)
    deterministic = isinstance(eta, float) and eta == 0.0
    ts = ddim_timesteps(schedule.T, steps)
    ts = tuple(ts.tolist())
    x0, traj = _ddim(eps_fn, schedule, key, x_init, shape, dtype, ts, eta, deterministic, checkpoint, return_trajectory)
    return (x0, traj) if return_trajectory else x0


@eqx.filter_jit
def _ddim(eps_fn, schedule, key, x_init, shape, dtype, ts, eta, deterministic, checkpoint, trajectory):
    x, keys = initial_and_keys(key, shape, dtype, x_init, len(ts))
    prev = np.append(ts[1:], 0).astype(np.int32)
    ts = np.asarray(ts, dtype=np.int32)
    log_ab_t, log_ab_p = schedule.log_alpha_bars[ts], schedule.log_alpha_bars[prev]
    std_t, std_p = schedule.noise_std_at(ts), schedule.noise_std_at(prev)
    sigma = eta * std_p / std_t * jnp.sqrt(-jnp.expm1(log_ab_t - log_ab_p))
    inside = std_p**2 - sigma**2
    positive = inside > 0
    direction = jnp.where(positive, jnp.sqrt(jnp.where(positive, inside, 1.0)), 0.0)
    ratio = jnp.exp(0.5 * (log_ab_p - log_ab_t))
    c_x = ratio.astype(dtype)
    c_eps = (direction - ratio * std_t).astype(dtype)
    sigma = sigma.astype(dtype)

    def step(x, inp):
        t, cx, ce, s, k = inp
        out = cx * x + ce * call_eps(eps_fn, x, full_t(t, x))
        return out if deterministic else out + s * jax.random.normal(k, x.shape, dtype=x.dtype)

    xs = (jnp.asarray(ts), c_x, c_eps, sigma, keys)
    return sampler_scan(step, x, xs, checkpoint=checkpoint, trajectory=trajectory)
