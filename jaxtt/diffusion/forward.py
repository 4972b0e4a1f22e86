r"""The forward (noising) process and the conversions between noise, data and score predictions.

All functions take time steps ``t`` of shape ``(N,)`` (or a scalar, broadcast over the batch): integers in
``1..T``, or reals in ``(0, T]`` for the continuous view of :mod:`jaxtt.diffusion.schedule`. Arrays ``x`` have
shape ``(N, *event_shape)``; the per-step coefficients broadcast over the event axes. Results keep the dtype
of the floating inputs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray, Real

from jaxtt._validation import check_batch, check_int, check_key
from jaxtt.diffusion._checks import check_schedule, check_timesteps
from jaxtt.diffusion.parameterization import per_row
from jaxtt.diffusion.schedule import Schedule

__all__ = ["eps_to_score", "predict_x0", "q_sample", "score_to_eps", "training_triples"]


def _checked(schedule, x, t, other, x_name, other_name):
    schedule = check_schedule(schedule)
    x = check_batch(x, x_name)
    other = check_batch(other, other_name)
    if other.shape != x.shape:
        raise ValueError(f"{other_name} must have the shape of {x_name} {tuple(x.shape)}, got {tuple(other.shape)}")
    t = check_timesteps(t, schedule, x.shape[0])
    return schedule, x, t, other


def q_sample(
    schedule: Schedule,
    x0: Float[Array, "N *event"],
    t: Real[Array, " N"],
    eps: Float[Array, "N *event"],
) -> Float[Array, "N *event"]:
    r"""Draw from :math:`q(x_t \mid x_0)` by reparameterisation (Ho et al. 2020, eq. 4):
    :math:`x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon`.

    Args:
        schedule: the noise schedule.
        x0: data, ``(N, *event_shape)``, finite.
        t: steps in ``1..T`` (or real in ``(0, T]``), shape ``(N,)`` or scalar.
        eps: the standard normal noise :math:`\epsilon`, shape of ``x0``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxtt.diffusion import linear_schedule
        >>> schedule = linear_schedule(100)
        >>> x0, t = jnp.ones((2, 3)), jnp.array([1, 100])
        >>> x_t = q_sample(schedule, x0, t, jnp.zeros((2, 3)))  # without noise: sqrt(ᾱ_t) x_0
        >>> bool(jnp.allclose(x_t, jnp.sqrt(schedule.alpha_bars[t])[:, None] * x0))
        True
    """
    schedule, x0, t, eps = _checked(schedule, x0, t, eps, "x0", "eps")
    log_ab = schedule.log_alpha_bar_at(t)
    return per_row(jnp.exp(0.5 * log_ab), x0) * x0 + per_row(schedule.noise_std_at(t), x0) * eps


def predict_x0(
    schedule: Schedule,
    x_t: Float[Array, "N *event"],
    t: Real[Array, " N"],
    eps: Float[Array, "N *event"],
) -> Float[Array, "N *event"]:
    r"""The data prediction implied by a noise prediction (Ho et al. 2020, eq. 4 solved for
    :math:`x_0`): :math:`\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\epsilon)/\sqrt{\bar\alpha_t}`.

    With the optimal :math:`\epsilon^*` this is Tweedie's posterior mean :math:`E[x_0 \mid x_t]`.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt.diffusion import linear_schedule
        >>> schedule = linear_schedule(100)
        >>> x0, eps = jnp.ones((4, 2)), jax.random.normal(jax.random.key(0), (4, 2))
        >>> t = jnp.array([1, 10, 50, 100])
        >>> bool(jnp.allclose(predict_x0(schedule, q_sample(schedule, x0, t, eps), t, eps), x0, atol=1e-4))
        True
    """
    schedule, x_t, t, eps = _checked(schedule, x_t, t, eps, "x_t", "eps")
    log_ab = schedule.log_alpha_bar_at(t)
    return (x_t - per_row(schedule.noise_std_at(t), x_t) * eps) * per_row(jnp.exp(-0.5 * log_ab), x_t)


def eps_to_score(
    schedule: Schedule,
    eps: Float[Array, "N *event"],
    t: Real[Array, " N"],
) -> Float[Array, "N *event"]:
    r"""Score of :math:`q(x_t)` from a noise prediction (Song et al. 2021, sec. 3.3; Vincent 2011):
    :math:`\nabla_{x_t}\log q(x_t) = -\epsilon/\sqrt{1-\bar\alpha_t}`.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxtt.diffusion import linear_schedule
        >>> schedule = linear_schedule(100)
        >>> score = eps_to_score(schedule, jnp.ones((1, 2)), jnp.array([100]))
        >>> bool(jnp.allclose(score, -1.0 / jnp.sqrt(1.0 - schedule.alpha_bars[100])))
        True
    """
    schedule = check_schedule(schedule)
    eps = check_batch(eps, "eps")
    t = check_timesteps(t, schedule, eps.shape[0])
    return -eps / per_row(schedule.noise_std_at(t), eps)


def score_to_eps(
    schedule: Schedule,
    score: Float[Array, "N *event"],
    t: Real[Array, " N"],
) -> Float[Array, "N *event"]:
    r"""Noise prediction from a score (the inverse relation):
    :math:`\epsilon = -\sqrt{1-\bar\alpha_t}\,\nabla_{x_t}\log q(x_t)`.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt.diffusion import linear_schedule
        >>> schedule = linear_schedule(100)
        >>> eps, t = jax.random.normal(jax.random.key(0), (3, 2)), jnp.array([1, 20, 100])
        >>> bool(jnp.allclose(score_to_eps(schedule, eps_to_score(schedule, eps, t), t), eps, atol=1e-5))
        True
    """
    schedule = check_schedule(schedule)
    score = check_batch(score, "score")
    t = check_timesteps(t, schedule, score.shape[0])
    return -per_row(schedule.noise_std_at(t), score) * score


def training_triples(
    key: PRNGKeyArray,
    x0: Float[Array, "N *event"],
    schedule: Schedule,
    repeats: int,
) -> tuple[Float[Array, "M *event"], Int[Array, " M"], Float[Array, "M *event"]]:
    r"""Regression data ``(x_t, t, eps)`` for fitting a noise model in closed form (e.g. TT-ALS) on L_simple.

    Each of the ``N`` data points is used ``repeats`` times (row ``r * N + n`` holds data point ``n``), each
    time with its own step :math:`t \sim U\{1, \dots, T\}` and noise :math:`\epsilon \sim N(0, I)`, and
    :math:`x_t` from Ho et al. 2020, eq. 4. Minimising :math:`\sum_m \|\epsilon_m - \epsilon_\theta(x_{t,m}, t_m)\|^2`
    over these ``M = N * repeats`` rows is the Monte Carlo L_simple of Ho et al. 2020, eq. 14.

    Returns:
        ``x_t`` of shape ``(M, *event_shape)`` in ``x0``'s dtype, integer ``t`` of shape ``(M,)`` and ``eps``
        of ``x_t``'s shape.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt.diffusion import linear_schedule
        >>> schedule = linear_schedule(100)
        >>> x0 = jax.random.normal(jax.random.key(0), (5, 2))
        >>> x_t, t, eps = training_triples(jax.random.key(1), x0, schedule, repeats=3)
        >>> x_t.shape, t.shape, bool((t >= 1).all() & (t <= 100).all())
        ((15, 2), (15,), True)
        >>> bool(jnp.allclose(x_t, q_sample(schedule, jnp.tile(x0, (3, 1)), t, eps), atol=1e-5))
        True
    """
    check_key(key)
    schedule = check_schedule(schedule)
    x0 = check_batch(x0, "x0")
    repeats = check_int(repeats, "repeats", minimum=1)
    k_t, k_eps = jax.random.split(key)
    x = jnp.tile(x0, (repeats,) + (1,) * (x0.ndim - 1))
    t = jax.random.randint(k_t, (x.shape[0],), 1, schedule.T + 1, dtype=jnp.int32)
    eps = jax.random.normal(k_eps, x.shape, dtype=x.dtype)
    x_t = per_row(jnp.exp(0.5 * schedule.log_alpha_bars[t]), x) * x + per_row(schedule.noise_std_at(t), x) * eps
    return x_t, t, eps
