r"""Distillation-based compression (Hinton, Vinyals, Dean 2015, "Distilling the knowledge in a neural network"):
a student copies a trained teacher's outputs.

For a diffusion teacher the outputs at noised points are the whole model, so the student regresses on them:

.. math::
    \min_\theta\ \sum_n \|y_n - \mathrm{student}_\theta(x_{t_n}, t_n)\|^2,\qquad
    y_n = \mathrm{teacher}(x_{t_n}, t_n),\quad x_t = a_t x_0 + \sigma_t\epsilon,\ t \sim U\{1..T\},

(converted to the student's parameterization). Unlike the DDPM loss the targets carry no sampling noise —
only the teacher's own error — which is what makes a small functional tensor train fitted in closed form
(:func:`jaxtt.solvers.fit_regression`) a compressed copy of a network many times its size.
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from jaxtt._validation import check_batch, check_choice, check_instance, check_int, check_key
from jaxtt.diffusion import PREDICTIONS, Schedule, training_triples
from jaxtt.diffusion.parameterization import from_data_and_noise, to_data_and_noise

__all__ = ["compression_rows"]


def compression_rows(
    teacher: Callable[[Array, Array], Array],
    schedule: Schedule,
    key: PRNGKeyArray,
    x0: Float[Array, "N *event"],
    repeats: int = 1,
    *,
    prediction: str = "eps",
    target: str = "eps",
) -> tuple[Float[Array, "M *event"], Int[Array, " M"], Float[Array, "M *event"]]:
    r"""Regression rows ``(x_t, t, teacher output)`` at noised data points (module docstring).

    Args:
        teacher: batched teacher ``teacher(x, t)`` predicting ``prediction``.
        schedule: the DDPM schedule.
        key: PRNG key of the steps and the noise (as :func:`jaxtt.diffusion.training_triples`).
        x0: data ``(N, *event)``.
        repeats: rows per data point.
        prediction: what the teacher predicts; target: what the student predicts.

    Returns:
        ``x_t`` ``(N·repeats, *event)``, integer ``t`` and the teacher's output converted to ``target``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt.diffusion import linear_schedule
        >>> x, t, y = compression_rows(lambda x, t: 0.5 * x, linear_schedule(50), jax.random.key(0),
        ...                            jnp.ones((4, 2)), 2)
        >>> bool(jnp.allclose(y, 0.5 * x))
        True
    """
    if not callable(teacher):
        raise TypeError(f"teacher must be callable as teacher(x, t), got {type(teacher).__name__}")
    check_instance(schedule, "schedule", Schedule)
    check_key(key)
    x0 = check_batch(x0, "x0")
    repeats = check_int(repeats, "repeats", minimum=1)
    check_choice(prediction, "prediction", PREDICTIONS)
    check_choice(target, "target", PREDICTIONS)
    x_t, t, _ = training_triples(key, x0, schedule, repeats)
    out = teacher(x_t, t)
    if target == prediction:
        return x_t, t, jnp.asarray(out).astype(x_t.dtype)
    lab = schedule.log_alpha_bars[t]
    return x_t, t, from_data_and_noise(*to_data_and_noise(out, x_t, lab, prediction), x_t, lab, target)
