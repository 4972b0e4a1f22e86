r"""The denoising training objective in every parameterization, with the usual loss weightings.

For a row with :math:`t \sim U\{1..T\}`, :math:`\epsilon \sim N(0, I)` and
:math:`x_t = a_t x_0 + s_t\epsilon` (:math:`a_t = \sqrt{\bar\alpha_t}`, :math:`s_t = \sqrt{1-\bar\alpha_t}`), a
model of kind ``prediction`` is regressed on its own target: :math:`\epsilon` (Ho et al. 2020, L_simple),
:math:`x_0`, :math:`v = a_t\epsilon - s_t x_0` (Salimans & Ho 2022) or the score :math:`-\epsilon/s_t`.

Errors in the four parameterizations are proportional at fixed :math:`x_t`:
:math:`\|\delta x_0\|^2 = \|\delta\epsilon\|^2/\mathrm{SNR}_t`, :math:`\|\delta v\|^2 = \|\delta\epsilon\|^2/\bar\alpha_t`,
:math:`\|\delta\,\mathrm{score}\|^2 = \|\delta\epsilon\|^2/s_t^2`, with :math:`\mathrm{SNR}_t = \bar\alpha_t/(1-\bar\alpha_t)`.
:func:`loss_weights` therefore defines each weighting once, as a weight :math:`\lambda_t` on the noise error,
and returns the weight on the model's own error that gives the same objective.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from jaxtt._validation import (
    check_array,
    check_batch,
    check_choice,
    check_finite,
    check_key,
    check_real,
    is_concrete,
)
from jaxtt.diffusion._checks import call_model, check_model, check_schedule
from jaxtt.diffusion.parameterization import PREDICTIONS, from_data_and_noise
from jaxtt.diffusion.schedule import Schedule

__all__ = ["WEIGHTINGS", "ddpm_loss", "loss_weights"]

#: The named loss weightings of :func:`loss_weights`.
WEIGHTINGS = ("uniform", "snr", "min_snr", "p2")


def loss_weights(
    schedule: Schedule,
    weighting: str = "uniform",
    *,
    prediction: str = "eps",
    gamma: float | None = None,
    k: float = 1.0,
) -> Float[Array, " T1"]:
    r"""Per-step weights ``(T + 1,)`` (entry 0 unused, set to 0) for :func:`ddpm_loss` of a model of kind
    ``prediction``.

    The weighting is defined as a weight :math:`\lambda_t` on the noise error :math:`\|\epsilon - \hat\epsilon\|^2`
    and converted to the model's own error (module docstring):

    - ``"uniform"``: :math:`\lambda_t = 1` (L_simple of Ho et al. 2020, whatever the parameterization);
    - ``"snr"``: :math:`\lambda_t = \mathrm{SNR}_t` (the plain :math:`x_0` error);
    - ``"min_snr"``: :math:`\lambda_t = \min(\mathrm{SNR}_t, \gamma)/\mathrm{SNR}_t` (Min-SNR-:math:`\gamma`,
      Hang et al. 2023; :math:`\gamma = 5` by default), whose :math:`x_0` weight is
      :math:`\min(\mathrm{SNR}_t, \gamma)` and :math:`v` weight :math:`\min(\mathrm{SNR}_t,\gamma)/(\mathrm{SNR}_t+1)`;
    - ``"p2"``: :math:`\lambda_t = (k + \mathrm{SNR}_t)^{-\gamma}` (perception-prioritized weighting, Choi et al.
      2022; :math:`\gamma = 1`, :math:`k = 1` by default).

    Examples:
        >>> from jaxtt.diffusion import linear_schedule, loss_weights
        >>> w = loss_weights(linear_schedule(1000), "min_snr", prediction="x0")
        >>> float(w[1]), float(w[1000]) < 1e-3   # min(SNR, 5) at t = 1 and at t = T
        (5.0, True)
    """
    schedule = check_schedule(schedule)
    check_choice(weighting, "weighting", WEIGHTINGS)
    check_choice(prediction, "prediction", PREDICTIONS)
    if gamma is None:
        gamma = 5.0 if weighting == "min_snr" else 1.0
    gamma = check_real(gamma, "gamma", minimum=0.0, strict_minimum=True)
    k = check_real(k, "k", minimum=0.0)
    lab = schedule.log_alpha_bars[1:]
    var = -jnp.expm1(lab)
    snr = jnp.exp(lab) / var
    if weighting == "uniform":
        lam = jnp.ones_like(snr)
    elif weighting == "snr":
        lam = snr
    elif weighting == "min_snr":
        lam = jnp.minimum(snr, gamma) / snr
    else:
        lam = (k + snr) ** (-gamma)
    to_own = {"eps": jnp.ones_like(snr), "x0": snr, "v": jnp.exp(lab), "score": var}[prediction]
    return jnp.concatenate([jnp.zeros((1,), snr.dtype), lam * to_own])


def ddpm_loss(
    model: Callable[[Array, Array], Array],
    schedule: Schedule,
    key: PRNGKeyArray,
    x0: Float[Array, "N *event"],
    weights: Float[Array, " T1"] | None = None,
    *,
    prediction: str = "eps",
) -> Float[Array, ""]:
    r"""Monte Carlo estimate of the denoising loss, optionally weighted per time step.

    For each row ``n`` draw :math:`t_n \sim U\{1, \dots, T\}` and :math:`\epsilon_n \sim N(0, I)`, form
    :math:`x_{t_n} = a_{t_n}x_{0,n} + s_{t_n}\epsilon_n` and return

    .. math::
        \frac{1}{N}\sum_{n=1}^N w_{t_n}\,\frac{1}{D}\big\|y_n - m(x_{t_n}, t_n)\big\|^2,

    where :math:`y_n` is the target of the model's kind (module docstring) and ``D`` the event size (the loss of
    the perfect-noise predictor of pure noise is 1 whatever ``D`` is). ``w = 1`` with ``prediction="eps"`` is
    L_simple (Ho et al. 2020, eq. 14); :func:`loss_weights` gives the SNR, Min-SNR-:math:`\gamma` and P2
    weightings in any parameterization.

    Args:
        model: batched model ``model(x, t)`` (``x`` of shape ``(N, *event_shape)``, integer ``t`` ``(N,)``).
        schedule: the noise schedule.
        key: PRNG key for ``t`` and ``eps``.
        x0: data batch ``(N, *event_shape)``, finite.
        weights: optional per-step weights of shape ``(T + 1,)`` indexed by ``t`` (entry 0 unused), finite and
            non-negative.
        prediction: what ``model`` outputs: ``"eps"``, ``"x0"``, ``"v"`` or ``"score"``.

    Returns:
        A scalar in ``x0``'s dtype; differentiable in the parameters of ``model``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt.diffusion import ddpm_loss, linear_schedule
        >>> x0 = jnp.zeros((256, 2))
        >>> float(ddpm_loss(lambda x, t: jnp.zeros_like(x), linear_schedule(100), jax.random.key(0), x0)) > 0.8
        True
    """
    schedule = check_schedule(schedule)
    check_model(model, schedule=schedule)
    check_key(key)
    x0 = check_batch(x0, "x0")
    check_choice(prediction, "prediction", PREDICTIONS)
    if weights is not None:
        weights = check_array(weights, "weights", ndim=1, floating=True)
        if weights.shape[0] != schedule.T + 1:
            raise ValueError(f"weights must have shape (T + 1,) = ({schedule.T + 1},), got {tuple(weights.shape)}")
        check_finite(weights, "weights")
        if is_concrete(weights) and not bool(np.all(np.asarray(weights) >= 0)):
            raise ValueError("weights must be non-negative")
    return _ddpm_loss(model, schedule, key, x0, weights, prediction)


@eqx.filter_jit
def _ddpm_loss(model, schedule, key, x0, weights, prediction):
    k_t, k_eps = jax.random.split(key)
    n = x0.shape[0]
    t = jax.random.randint(k_t, (n,), 1, schedule.T + 1, dtype=jnp.int32)
    eps = jax.random.normal(k_eps, x0.shape, dtype=x0.dtype)
    expand = (n,) + (1,) * (x0.ndim - 1)
    lab = schedule.log_alpha_bars[t]
    x_t = jnp.exp(0.5 * lab).astype(x0.dtype).reshape(expand) * x0 + schedule.noise_std_at(t).astype(
        x0.dtype
    ).reshape(expand) * eps
    target = from_data_and_noise(x0, eps, x_t, lab, prediction)
    err = jnp.mean(((target - call_model(model, x_t, t)) ** 2).reshape(n, -1), axis=1)
    if weights is not None:
        err = jnp.asarray(weights).astype(x0.dtype)[t] * err
    return jnp.mean(err)
