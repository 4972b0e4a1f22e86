r"""What every distillation method asks of its teacher: a deterministic DDIM step, and the loss that regresses a
student onto targets.

The deterministic DDIM step (Song et al. 2021, "Denoising diffusion implicit models", eq. 12 with
:math:`\sigma = 0`) of a model from step ``t`` to ``t'`` is

.. math::
    x_{t'} = a_{t'}\,\hat x_0 + \sigma_{t'}\,\hat\epsilon, \qquad a_t = \sqrt{\bar\alpha_t},\
    \sigma_t = \sqrt{1 - \bar\alpha_t},

with :math:`(\hat x_0, \hat\epsilon)` the model's data and noise predictions at :math:`(x_t, t)` (any
``prediction`` kind, :func:`jaxtt.diffusion.convert_prediction`); at ``t' = 0`` it returns :math:`\hat x_0`. It is
the Euler step of the probability-flow ODE in the variables :math:`(x_t/a_t, \sigma_t/a_t)`, which is why
progressive distillation (two steps in one) and consistency distillation (one ODE step) both use it.
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from jaxtt._validation import check_array, check_batch, check_choice, check_instance
from jaxtt.diffusion import PREDICTIONS, Schedule
from jaxtt.diffusion.parameterization import per_row, signal_and_noise_scales, to_data_and_noise

__all__ = ["ddim_step", "regression_loss"]


def ddim_step_unchecked(model, schedule, x, t, t_next, prediction):
    """Unchecked DDIM step from ``t >= 1`` to ``t_next >= 0`` (per row)."""
    x0, eps = to_data_and_noise(model(x, t), x, schedule.log_alpha_bars[t], prediction)
    a, s = signal_and_noise_scales(schedule.log_alpha_bars[t_next])
    return per_row(a, x) * x0 + per_row(s, x) * eps


def ddim_step(
    model: Callable[[Array, Array], Array],
    schedule: Schedule,
    x: Float[Array, "N *event"],
    t: Int[Array, " N"],
    t_next: Int[Array, " N"],
    *,
    prediction: str = "eps",
) -> Float[Array, "N *event"]:
    r"""One deterministic DDIM step of ``model`` from :math:`x_t` to step ``t_next < t`` (module docstring).

    Args:
        model: batched model ``model(x, t)`` predicting ``prediction``.
        schedule: the DDPM schedule.
        x: points :math:`x_t`, ``(N, *event)``.
        t: integer steps in ``1..T``, shape ``(N,)``; t_next: integer steps in ``0..t - 1``.
        prediction: ``"eps"``, ``"x0"``, ``"v"`` or ``"score"``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxtt.diffusion import linear_schedule
        >>> schedule = linear_schedule(100)
        >>> x0_model = lambda x, t: jnp.full_like(x, 2.0)   # always predicts the data point 2
        >>> x = ddim_step(x0_model, schedule, jnp.ones((3, 1)), jnp.full(3, 50), jnp.zeros(3, int), prediction="x0")
        >>> x.ravel().tolist()
        [2.0, 2.0, 2.0]
    """
    if not callable(model):
        raise TypeError(f"model must be callable as model(x, t), got {type(model).__name__}")
    check_instance(schedule, "schedule", Schedule)
    check_choice(prediction, "prediction", PREDICTIONS)
    x = check_batch(x, "x")
    t, t_next = check_steps(t, "t", x.shape[0]), check_steps(t_next, "t_next", x.shape[0])
    if jnp.any(t < 1) or jnp.any(t > schedule.T):
        raise ValueError(f"t must lie in 1..{schedule.T}")
    if jnp.any(t_next < 0) or jnp.any(t_next >= t):
        raise ValueError("t_next must lie in 0..t - 1 for every row")
    return ddim_step_unchecked(model, schedule, x, t, t_next, prediction)


def check_steps(t, name: str, n: int) -> Array:
    """An integer array of shape ``(n,)``, or a ``TypeError``/``ValueError`` naming ``name``."""
    t = check_array(t, name, ndim=1)
    if not jnp.issubdtype(t.dtype, jnp.integer):
        raise TypeError(f"{name} must hold integer steps, got dtype {t.dtype}")
    if t.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},), got {tuple(t.shape)}")
    return jnp.asarray(t)


def regression_loss(
    model: Callable[[Array, Array], Array],
    x: Float[Array, "N *event"],
    t: Array,
    y: Float[Array, "N *event"],
) -> Float[Array, ""]:
    r"""Mean squared error :math:`\frac{1}{N D}\sum_n \|y_n - \mathrm{model}(x_n, t_n)\|^2` of a student on fixed
    targets.

    The objective of every distillation here, for gradient-trained (network) students; an FTT student
    minimises the same sum in closed form (:func:`jaxtt.solvers.fit_regression`). Unchecked and differentiable:
    used inside training losses (``jaxtt.train.fit(..., loss=...)``).

    Examples:
        >>> import jax.numpy as jnp
        >>> float(regression_loss(lambda x, t: 2 * x, jnp.ones((2, 3)), jnp.ones(2), jnp.full((2, 3), 3.0)))
        1.0
    """
    return jnp.mean((model(x, t) - y) ** 2)
