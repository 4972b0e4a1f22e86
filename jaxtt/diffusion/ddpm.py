r"""Ancestral DDPM sampling (Ho et al. 2020, Algorithm 2; seed 002 eq. 4-6)."""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from jaxtt._validation import check_choice
from jaxtt.diffusion._checks import call_eps, check_clip_x0
from jaxtt.diffusion._common import check_sampler_args, clipped_x0, full_t, initial_and_keys
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
    clip_x0: float | tuple[float, float] | None = None,
) -> Float[Array, "N *event"] | tuple[Float[Array, "N *event"], Float[Array, "T1 N *event"]]:
    r"""Sample by ancestral DDPM steps ``t = T, ..., 1`` from :math:`x_T \sim N(0, I)`:

    .. math::
        x_{t-1} = \frac{1}{\sqrt{\alpha_t}}\Big(x_t - \frac{1-\alpha_t}{\sqrt{1-\bar\alpha_t}}
        \epsilon_\theta(x_t, t)\Big) + \sigma_t z,\qquad z \sim N(0, I),

    the mean of seed 002 eq. 6 with :math:`\sigma_t^2 = \beta_t` (``variance="beta"``) or
    :math:`\sigma_t^2 = \tilde\beta_t` (``"beta_tilde"``), and no noise in the last step ``t = 1``
    (Ho et al. 2020, Algorithm 2).

    With ``clip_x0`` set, each step instead predicts the data, clips it elementwise to the box ``[lo, hi]`` and
    takes the posterior mean in its :math:`x_0` form (Ho et al. 2020, eq. 7 and sec. 3.3; diffusers'
    ``DDPMScheduler(clip_sample=True)``):

    .. math::
        \hat x_0 = \operatorname{clip}\Big(\frac{x_t - \sqrt{1-\bar\alpha_t}\,\epsilon_\theta(x_t, t)}
        {\sqrt{\bar\alpha_t}}, lo, hi\Big),\qquad
        x_{t-1} = \frac{\sqrt{\bar\alpha_{t-1}}\beta_t}{1-\bar\alpha_t}\hat x_0
        + \frac{\sqrt{\alpha_t}(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}x_t + \sigma_t z,

    which is the update above whenever nothing is clipped; the last step returns the clipped :math:`\hat x_0`,
    so every sample lies in the box. This is the remedy for noise models that occasionally throw a sample far
    outside the data. The clip is differentiable almost everywhere (zero gradient where it is active).

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
        clip_x0: None (no clipping, the update above), a positive real ``c`` (the box ``[-c, c]``) or a pair
            ``(lo, hi)``, ``lo < hi``, applied to every coordinate of the predicted data (the bounds are rounded
            to the sampling dtype).

    Returns:
        The samples :math:`x_0` of shape ``shape`` (and the trajectory when requested).

    Raises:
        ValueError, TypeError: an argument has the wrong form; ``clip_x0`` is not finite, not positive, or
            ``lo >= hi``.
    """
    check_choice(variance, "variance", ("beta", "beta_tilde"))
    box = check_clip_x0(clip_x0)
    schedule, shape, x_init, dtype = check_sampler_args(eps_fn, schedule, key, shape, x_init)
    args = (eps_fn, schedule, key, x_init, shape, dtype, variance)
    if box is None:
        x0, traj = _ddpm(*args, checkpoint, return_trajectory)
    else:
        bounds = tuple(jnp.asarray(b, dtype=dtype) for b in box)  # traced: no recompilation per box
        x0, traj = _ddpm_clipped(*args, bounds, checkpoint, return_trajectory)
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


@eqx.filter_jit
def _ddpm_clipped(eps_fn, schedule, key, x_init, shape, dtype, variance, box, checkpoint, trajectory):
    x, keys = initial_and_keys(key, shape, dtype, x_init, schedule.T)
    ts = jnp.arange(schedule.T, 0, -1, dtype=jnp.int32)
    var = schedule.betas if variance == "beta" else schedule.posterior_variance
    last = ts == 1
    sigma = jnp.where(last, 0.0, jnp.sqrt(var[ts])).astype(dtype)
    sqrt_ab = jnp.exp(0.5 * schedule.log_alpha_bars[ts]).astype(dtype)
    std = schedule.noise_std_at(ts).astype(dtype)
    # at t = 1 the posterior mean is x0 itself (coefficients 1 and 0 exactly, so the sample stays in the box)
    coef_x0 = jnp.where(last, 1.0, schedule.posterior_mean_coef_x0[ts]).astype(dtype)
    coef_xt = jnp.where(last, 0.0, schedule.posterior_mean_coef_xt[ts]).astype(dtype)

    def step(x, inp):
        t, a, s_t, c0, ct, s, k = inp
        x0 = clipped_x0(x, call_eps(eps_fn, x, full_t(t, x)), a, s_t, box)
        return c0 * x0 + ct * x + s * jax.random.normal(k, x.shape, dtype=x.dtype)

    xs = (ts, sqrt_ab, std, coef_x0, coef_xt, sigma, keys)
    return sampler_scan(step, x, xs, checkpoint=checkpoint, trajectory=trajectory)
