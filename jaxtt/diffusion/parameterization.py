r"""What a diffusion model predicts, and exact conversions between the four usual choices.

With the forward marginal :math:`x_t = a_t x_0 + s_t\epsilon`, :math:`a_t = \sqrt{\bar\alpha_t}`,
:math:`s_t = \sqrt{1-\bar\alpha_t}` (so :math:`a_t^2 + s_t^2 = 1`), a model may predict

- ``"eps"``: the noise :math:`\epsilon` (Ho et al. 2020);
- ``"x0"``: the data :math:`x_0`;
- ``"v"``: the velocity :math:`v = a_t\epsilon - s_t x_0` (Salimans & Ho 2022, "Progressive Distillation",
  appendix D), for which :math:`x_0 = a_t x_t - s_t v` and :math:`\epsilon = s_t x_t + a_t v`;
- ``"score"``: :math:`\nabla_{x_t}\log q_t(x_t) = -\epsilon / s_t` (Song et al. 2021; Vincent 2011).

Any one of them, together with :math:`x_t`, fixes the pair :math:`(\hat x_0, \hat\epsilon)` with
:math:`x_t = a_t\hat x_0 + s_t\hat\epsilon`; the samplers, losses and likelihoods work from that pair, so every
model parameterization is accepted everywhere through ``prediction=``.

Coefficients are computed from :math:`\log\bar\alpha_t` (``exp`` and ``expm1``), which keeps them accurate in
float32 where :math:`\bar\alpha_t` itself underflows or :math:`1-\bar\alpha_t` rounds to 1.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Real

from jaxtt._validation import check_batch, check_choice
from jaxtt.diffusion._checks import check_model, check_schedule, check_timesteps
from jaxtt.diffusion.schedule import Schedule

__all__ = [
    "PREDICTIONS",
    "FlowVelocity",
    "convert_prediction",
    "from_data_and_noise",
    "per_row",
    "to_data_and_noise",
]

#: The model parameterizations understood by ``prediction=`` arguments.
PREDICTIONS = ("eps", "x0", "v", "score")


def per_row(values, x):
    """Broadcast per-row coefficients ``(N,)`` (or a scalar) against ``x`` of shape ``(N, *event)``, in ``x``'s
    dtype."""
    values = jnp.asarray(values).astype(x.dtype)
    return values.reshape(values.shape + (1,) * (x.ndim - values.ndim)) if values.ndim else values


def signal_and_noise_scales(log_alpha_bar):
    r""":math:`(a_t, s_t) = (\sqrt{\bar\alpha_t}, \sqrt{1-\bar\alpha_t})` from :math:`\log\bar\alpha_t`."""
    return jnp.exp(0.5 * log_alpha_bar), jnp.sqrt(-jnp.expm1(log_alpha_bar))


def inverse_signal_scale(log_alpha_bar):
    r""":math:`1/a_t`, capped at :math:`\sqrt{\text{max float}}` so that ``0 * (1/a_t)`` stays 0 where
    :math:`\bar\alpha_t` underflows (the data term is then exactly zero in the noise prediction anyway)."""
    dtype = jnp.result_type(log_alpha_bar)
    cap = 0.5 * np.log(np.finfo(dtype).max)
    return jnp.exp(jnp.minimum(-0.5 * log_alpha_bar, cap))


def to_data_and_noise(output, x, log_alpha_bar, prediction: str, box=None):
    r"""The pair :math:`(\hat x_0, \hat\epsilon)` implied by a model ``output`` of kind ``prediction`` at
    :math:`x_t` = ``x`` (module docstring); ``log_alpha_bar`` is a scalar or one value per row.

    With ``box = (lo, hi)``, :math:`\hat x_0` is clipped to the box and :math:`\hat\epsilon` recomputed from the
    clipped data, :math:`\hat\epsilon = (x_t - a_t\,\mathrm{clip}(\hat x_0))/s_t`, so the pair still reproduces
    :math:`x_t` (diffusers' ``clip_sample`` with ``use_clipped_model_output=True``). Unchecked kernel: ``x`` and
    ``output`` share a shape, ``prediction`` is one of :data:`PREDICTIONS`.
    """
    a, s = (per_row(c, x) for c in signal_and_noise_scales(log_alpha_bar))
    if prediction == "x0":
        x0 = output
    elif prediction == "v":
        x0 = a * x - s * output
    else:
        eps = output if prediction == "eps" else -s * output
        x0 = (x - s * eps) * per_row(inverse_signal_scale(log_alpha_bar), x)
        if box is None:
            return x0, eps
    if box is not None:
        x0 = jnp.clip(x0, box[0], box[1])
    if prediction == "v" and box is None:
        return x0, s * x + a * output
    return x0, (x - a * x0) / s


def from_data_and_noise(x0, eps, x, log_alpha_bar, prediction: str):
    r"""The model output of kind ``prediction`` that corresponds to the pair :math:`(x_0, \epsilon)` at
    :math:`x_t` = ``x`` (the inverse of :func:`to_data_and_noise`; unchecked kernel)."""
    a, s = (per_row(c, x) for c in signal_and_noise_scales(log_alpha_bar))
    if prediction == "eps":
        return eps
    if prediction == "x0":
        return x0
    if prediction == "v":
        return a * eps - s * x0
    return -eps / s


def convert_prediction(
    schedule: Schedule,
    x_t: Float[Array, "N *event"],
    t: Real[Array, " N"],
    output: Float[Array, "N *event"],
    *,
    source: str,
    target: str,
) -> Float[Array, "N *event"]:
    r"""Convert a model ``output`` of kind ``source`` at :math:`(x_t, t)` into the kind ``target``.

    The kinds are ``"eps"``, ``"x0"``, ``"v"`` and ``"score"`` (module docstring); the conversion is exact
    (affine in ``output`` and :math:`x_t`) and keeps ``x_t``'s dtype.

    Args:
        schedule: the noise schedule.
        x_t: noised data ``(N, *event_shape)``.
        t: steps in ``1..T`` (or real in ``(0, T]``), shape ``(N,)`` or scalar.
        output: the model output, shape of ``x_t``.
        source, target: kinds from :data:`PREDICTIONS`.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxtt.diffusion import convert_prediction, linear_schedule
        >>> sched = linear_schedule(100)
        >>> x, eps = jnp.ones((2, 3)), jnp.full((2, 3), 0.5)
        >>> v = convert_prediction(sched, x, 40, eps, source="eps", target="v")
        >>> back = convert_prediction(sched, x, 40, v, source="v", target="eps")
        >>> bool(jnp.allclose(back, eps, atol=1e-6))
        True
    """
    schedule = check_schedule(schedule)
    check_choice(source, "source", PREDICTIONS)
    check_choice(target, "target", PREDICTIONS)
    x_t = check_batch(x_t, "x_t")
    output = check_batch(output, "output")
    if output.shape != x_t.shape:
        raise ValueError(f"output must have the shape of x_t {tuple(x_t.shape)}, got {tuple(output.shape)}")
    t = check_timesteps(t, schedule, x_t.shape[0])
    output = output.astype(x_t.dtype)
    log_ab = schedule.log_alpha_bar_at(t)
    x0, eps = to_data_and_noise(output, x_t, log_ab, source)
    return from_data_and_noise(x0, eps, x_t, log_ab, target)


class FlowVelocity(eqx.Module):
    r"""A rectified-flow velocity model as a noise model on a DDPM schedule, so every jaxtt sampler samples it.

    The linear interpolant :math:`x_u = (1-u)x_0 + u\epsilon` of rectified flow (Liu et al. 2022; flow
    matching, Lipman et al. 2022) has the velocity :math:`v = \epsilon - x_0`. It is the VP marginal
    :math:`x_t = a_t x_0 + s_t\epsilon` rescaled: :math:`x_u = x_t/(a_t + s_t)` at :math:`u = s_t/(a_t + s_t)`
    (Kingma & Gao 2023, "Understanding diffusion objectives", appendix on flow matching). So the velocity
    model ``velocity(x_u, u)`` (``u`` real in ``[0, 1]``, shape ``(N,)``) gives the noise prediction

    .. math:: \hat\epsilon(x_t, t) = x_u + (1 - u)\,v(x_u, u).

    With it, deterministic DDIM on a grid :math:`\tau_i` is exactly Euler's method for
    :math:`dx_u/du = v(x_u, u)` on the grid :math:`u_i = s_{\tau_i}/(a_{\tau_i} + s_{\tau_i})` (to :math:`u = 0`),
    in the rescaled variable; DPM-Solver and the probability-flow ODE give higher-order solutions of the same ODE.

    Args:
        velocity: the velocity model ``velocity(x_u, u)``.
        schedule: the DDPM schedule whose steps the samplers use.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt.diffusion import DDIM, FlowVelocity, linear_schedule, sample
        >>> schedule = linear_schedule(1000)
        >>> model = FlowVelocity(lambda x, u: x - 0.5 * jnp.ones_like(x), schedule)  # v = eps - x0 for x0 = 1/2
        >>> sample(model, schedule, DDIM(steps=10), jax.random.key(0), (3, 2)).samples.shape
        (3, 2)
    """

    velocity: Callable
    schedule: eqx.Module

    def __init__(self, velocity, schedule):
        check_model(velocity, "velocity")
        self.velocity = velocity
        self.schedule = check_schedule(schedule)

    def __call__(self, x, t):
        a, s = signal_and_noise_scales(self.schedule.log_alpha_bar_at(t))
        u = (s / (a + s)).astype(x.dtype)
        x_u = x / per_row(a + s, x)
        return x_u + per_row(1.0 - u, x) * self.velocity(x_u, u)
