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
from jaxtt.diffusion._checks import call_eps, check_clip_x0, check_eta, check_schedule
from jaxtt.diffusion._common import check_sampler_args, clipped_x0, eps_from_x0, full_t, initial_and_keys
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
    clip_x0: float | tuple[float, float] | None = None,
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

    With ``clip_x0`` set, :math:`\hat x_0` is clipped elementwise to the box ``[lo, hi]`` (Ho et al. 2020,
    sec. 3.3; diffusers' ``DDIMScheduler(clip_sample=True)``) and the direction term uses the noise that is
    consistent with the clipped prediction,

    .. math::
        \hat x_0^c = \operatorname{clip}(\hat x_0, lo, hi),\qquad
        \hat\epsilon' = \frac{x_t - \sqrt{\bar\alpha_t}\,\hat x_0^c}{\sqrt{1-\bar\alpha_t}},\qquad
        x_p = \sqrt{\bar\alpha_p}\,\hat x_0^c + \sqrt{1-\bar\alpha_p-\sigma_t^2}\,\hat\epsilon' + \sigma_t z,

    (diffusers' ``use_clipped_model_output=True``): :math:`x_p` is then the DDIM step of the pair
    :math:`(\hat x_0^c, \hat\epsilon')` that reproduces :math:`x_t` exactly, instead of mixing a clipped data
    prediction with the unclipped noise that pointed outside the box. Without any active clip this is the
    update above; the last step returns :math:`\hat x_0^c`, so every sample lies in the box. The clip is
    differentiable almost everywhere.

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
        clip_x0: None (no clipping, the update above), a positive real ``c`` (the box ``[-c, c]``) or a pair
            ``(lo, hi)``, ``lo < hi``, applied to every coordinate of :math:`\hat x_0` (the bounds are rounded
            to the sampling dtype).

    Raises:
        ValueError, TypeError: an argument has the wrong form; ``clip_x0`` is not finite, not positive, or
            ``lo >= hi``.
    """
    schedule = check_schedule(schedule)
    steps = check_int(steps, "steps", minimum=1, maximum=schedule.T)
    eta = check_eta(eta)
    box = check_clip_x0(clip_x0)
    schedule, shape, x_init, dtype = check_sampler_args(eps_fn, schedule, key, shape, x_init)
    deterministic = isinstance(eta, float) and eta == 0.0
    ts = ddim_timesteps(schedule.T, steps)
    ts = tuple(ts.tolist())
    args = (eps_fn, schedule, key, x_init, shape, dtype, ts, eta, deterministic)
    if box is None:
        x0, traj = _ddim(*args, checkpoint, return_trajectory)
    else:
        bounds = tuple(jnp.asarray(b, dtype=dtype) for b in box)  # traced: no recompilation per box
        x0, traj = _ddim_clipped(*args, bounds, checkpoint, return_trajectory)
    return (x0, traj) if return_trajectory else x0


def _ddim_coefficients(schedule, ts, eta):
    r"""Per-step DDIM quantities for the pairs :math:`(t, p) = (\tau_i, \tau_{i-1})`, ``tau_0 = 0``:
    ``(log ᾱ_t, log ᾱ_p, sqrt(1 - ᾱ_t), σ_t(η), sqrt(1 - ᾱ_p - σ_t²))`` in the schedule's dtype (seed 004
    eq. 4.19; the direction weight is 0 where rounding makes its radicand non-positive)."""
    prev = np.append(ts[1:], 0).astype(np.int32)
    ts = np.asarray(ts, dtype=np.int32)
    log_ab_t, log_ab_p = schedule.log_alpha_bars[ts], schedule.log_alpha_bars[prev]
    std_t, std_p = schedule.noise_std_at(ts), schedule.noise_std_at(prev)
    sigma = eta * std_p / std_t * jnp.sqrt(-jnp.expm1(log_ab_t - log_ab_p))
    inside = std_p**2 - sigma**2
    positive = inside > 0
    direction = jnp.where(positive, jnp.sqrt(jnp.where(positive, inside, 1.0)), 0.0)
    return log_ab_t, log_ab_p, std_t, sigma, direction


@eqx.filter_jit
def _ddim(eps_fn, schedule, key, x_init, shape, dtype, ts, eta, deterministic, checkpoint, trajectory):
    x, keys = initial_and_keys(key, shape, dtype, x_init, len(ts))
    log_ab_t, log_ab_p, std_t, sigma, direction = _ddim_coefficients(schedule, ts, eta)
    ratio = jnp.exp(0.5 * (log_ab_p - log_ab_t))
    c_x = ratio.astype(dtype)
    c_eps = (direction - ratio * std_t).astype(dtype)
    sigma = sigma.astype(dtype)

    def step(x, inp):
        t, cx, ce, s, k = inp
        out = cx * x + ce * call_eps(eps_fn, x, full_t(t, x))
        return out if deterministic else out + s * jax.random.normal(k, x.shape, dtype=x.dtype)

    xs = (jnp.asarray(ts, dtype=jnp.int32), c_x, c_eps, sigma, keys)
    return sampler_scan(step, x, xs, checkpoint=checkpoint, trajectory=trajectory)


@eqx.filter_jit
def _ddim_clipped(eps_fn, schedule, key, x_init, shape, dtype, ts, eta, deterministic, box, checkpoint, trajectory):
    x, keys = initial_and_keys(key, shape, dtype, x_init, len(ts))
    log_ab_t, log_ab_p, std_t, sigma, direction = _ddim_coefficients(schedule, ts, eta)
    coefs = (jnp.exp(0.5 * log_ab_t), std_t, jnp.exp(0.5 * log_ab_p), direction, sigma)
    coefs = tuple(c.astype(dtype) for c in coefs)

    def step(x, inp):
        t, a_t, s_t, a_p, d, s, k = inp
        x0 = clipped_x0(x, call_eps(eps_fn, x, full_t(t, x)), a_t, s_t, box)
        out = a_p * x0 + d * eps_from_x0(x, x0, a_t, s_t)
        return out if deterministic else out + s * jax.random.normal(k, x.shape, dtype=x.dtype)

    xs = (jnp.asarray(ts, dtype=jnp.int32), *coefs, keys)
    return sampler_scan(step, x, xs, checkpoint=checkpoint, trajectory=trajectory)
