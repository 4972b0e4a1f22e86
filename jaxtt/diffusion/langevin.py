r"""Annealed Langevin dynamics driven by a noise model (Song & Ermon 2019; seed 004 Algorithm 3)."""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from jaxtt._validation import check_int, check_real
from jaxtt.diffusion._checks import call_eps, check_schedule
from jaxtt.diffusion._common import check_sampler_args, full_t, initial_and_keys
from jaxtt.diffusion._scan import sampler_scan
from jaxtt.diffusion.ddim import ddim_timesteps
from jaxtt.diffusion.schedule import Schedule

__all__ = ["langevin_sample"]


def langevin_sample(
    eps_fn: Callable[[Array, Array], Array],
    schedule: Schedule,
    key: PRNGKeyArray,
    shape: tuple[int, ...],
    levels: int,
    n_steps: int,
    step_size: float,
    return_trajectory: bool = False,
    *,
    x_init: Float[Array, "N *event"] | None = None,
    checkpoint: bool = True,
) -> Float[Array, "N *event"] | tuple[Float[Array, "N *event"], Float[Array, "M N *event"]]:
    r"""Annealed Langevin dynamics (seed 004 Algorithm 3) on the noise levels of a DDPM schedule.

    The noise levels are the steps :math:`\tau_L > \dots > \tau_1` of :func:`ddim_timesteps` (``L = levels``,
    :math:`\tau_L = T`, :math:`\tau_1 = 1` when ``levels >= 2``), visited from the noisiest, with
    :math:`\sigma_i^2 = 1 - \bar\alpha_{\tau_i}`. At level :math:`i` the target is :math:`q(x_{\tau_i})` with score
    :math:`s(x, \tau_i) = -\epsilon_\theta(x, \tau_i)/\sigma_i` (seed 004 eq. 3.29), and ``n_steps`` updates

    .. math::
        x \leftarrow x + \frac{a_i}{2}\,s(x, \tau_i) + \sqrt{a_i}\,z,\qquad
        a_i = \varepsilon\,\sigma_i^2/\sigma_{\min}^2,\quad z \sim N(0, I),

    are made, with :math:`\varepsilon` = ``step_size`` and :math:`\sigma_{\min} = \sigma_{\tau_1}` the smallest
    level. The start is :math:`x \sim N(0, I)`. The returned iterate targets :math:`q(x_{\tau_1})` (the data
    distribution up to the noise of step :math:`\tau_1`); apply :func:`jaxtt.diffusion.predict_x0` for a final
    denoising step. For a Gaussian target :math:`N(m, \lambda)` (per eigen-direction) the unadjusted chain
    converges to :math:`N(m, \lambda / (1 - a/(4\lambda)))`: the step size biases the variance.

    Args:
        eps_fn: batched noise model ``eps_fn(x, t)`` (integer ``t`` of shape ``(N,)`` in ``1..T``).
        schedule: the noise schedule.
        key: PRNG key.
        shape: ``(N, *event_shape)``.
        levels: number of noise levels, ``1 <= levels <= T``.
        n_steps: Langevin updates per level, ``>= 1``.
        step_size: :math:`\varepsilon > 0`, the step at the smallest level.
        return_trajectory: also return every iterate, shape ``(levels * n_steps + 1, *shape)``.
        x_init: optional start (its dtype sets the sampling dtype; default: the schedule's dtype).
        checkpoint: rematerialise the steps under reverse-mode differentiation.
    """
    schedule = check_schedule(schedule)
    levels = check_int(levels, "levels", minimum=1, maximum=schedule.T)
    n_steps = check_int(n_steps, "n_steps", minimum=1)
    step_size = check_real(step_size, "step_size", minimum=0.0, strict_minimum=True)
    schedule, shape, x_init, dtype = check_sampler_args(eps_fn, schedule, key, shape, x_init)
    taus = tuple(ddim_timesteps(schedule.T, levels).tolist())
    x, traj = _langevin(
        eps_fn, schedule, key, x_init, shape, dtype, taus, n_steps, step_size, checkpoint, return_trajectory
    )
    return (x, traj) if return_trajectory else x


@eqx.filter_jit
def _langevin(eps_fn, schedule, key, x_init, shape, dtype, taus, n_steps, step_size, checkpoint, trajectory):
    x, keys = initial_and_keys(key, shape, dtype, x_init, len(taus) * n_steps)
    std = schedule.noise_std_at(np.asarray(taus, dtype=np.int32))
    a = step_size * (std / std[-1]) ** 2
    ts = jnp.asarray(np.repeat(np.asarray(taus, dtype=np.int32), n_steps))
    drift = jnp.repeat(0.5 * a / std, n_steps).astype(dtype)
    noise = jnp.repeat(jnp.sqrt(a), n_steps).astype(dtype)

    def step(x, inp):
        t, c, s, k = inp
        eps = call_eps(eps_fn, x, full_t(t, x))
        return x - c * eps + s * jax.random.normal(k, x.shape, dtype=x.dtype)

    return sampler_scan(step, x, (ts, drift, noise, keys), checkpoint=checkpoint, trajectory=trajectory)
