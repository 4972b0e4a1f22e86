"""Shared pieces of the discrete samplers: argument checks, the initial noise and the per-step keys."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxtt.diffusion._checks import check_eps_fn, check_key, check_schedule, check_shape, check_x_init


def check_sampler_args(eps_fn, schedule, key, shape, x_init):
    """Validate the arguments every sampler shares; return ``(schedule, shape, x_init, dtype)``.

    The sampling dtype is ``x_init``'s when given, else the schedule's.
    """
    check_eps_fn(eps_fn)
    schedule = check_schedule(schedule)
    check_key(key)
    shape = check_shape(shape)
    x_init, dtype = check_x_init(x_init, shape, schedule.dtype)
    return schedule, shape, x_init, dtype


def initial_and_keys(key, shape, dtype, x_init, n_steps):
    """``(x_start, step_keys)``: the key is split into ``(key_init, key_steps)``; ``x_start ~ N(0, I)`` is drawn
    from ``key_init`` unless ``x_init`` is given, and ``key_steps`` is split into one key per step.

    Every discrete sampler uses this layout, so samplers that coincide mathematically (DDIM with all steps
    and eta = 1 versus DDPM with variance beta_tilde) also coincide draw for draw.
    """
    key_init, key_steps = jax.random.split(key)
    x = jax.random.normal(key_init, shape, dtype=dtype) if x_init is None else x_init
    return x, jax.random.split(key_steps, n_steps)


def full_t(t, x):
    """The step ``t`` (a traced int scalar) repeated for every row of ``x``."""
    return jnp.full((x.shape[0],), t, dtype=jnp.int32)


def clipped_x0(x, eps, sqrt_alpha_bar, noise_std, box):
    r"""The predicted data :math:`\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\hat\epsilon)/\sqrt{\bar\alpha_t}`
    (Ho et al. 2020, eq. 15), clipped elementwise to ``box = (lo, hi)`` (Ho et al. 2020, sec. 3.3 clip it to the
    data range; diffusers' ``clip_sample``). Keeps ``x``'s dtype.
    """
    x0 = (x - noise_std * eps) / sqrt_alpha_bar
    return jnp.clip(x0, box[0], box[1])


def eps_from_x0(x, x0, sqrt_alpha_bar, noise_std):
    r"""The noise :math:`\epsilon = (x_t - \sqrt{\bar\alpha_t}\,x_0)/\sqrt{1-\bar\alpha_t}` that maps ``x0`` to
    ``x`` under the forward marginal :math:`x_t = \sqrt{\bar\alpha_t}x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon`."""
    return (x - sqrt_alpha_bar * x0) / noise_std
