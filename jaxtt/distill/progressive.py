r"""Progressive distillation (Salimans & Ho 2022, "Progressive distillation for fast sampling of diffusion
models", Alg. 2): a student learns two deterministic teacher steps in one.

On a teacher grid :math:`\tau_0 > \tau_1 > \dots > \tau_{2K-1}` (then the data level 0) the student's grid is
every other step, :math:`\tau_0, \tau_2, \dots` (``teacher_grid[::2]``). For :math:`x_t` at a student step
:math:`t = \tau_{2i}` the teacher takes two DDIM steps, :math:`x_t \to x_{t'} \to x_{t''}` with
:math:`t' = \tau_{2i+1}`, :math:`t'' = \tau_{2i+2}` (0 past the end; with an odd number of teacher steps the
last student step is one teacher step). The student's DDIM step from ``t`` lands on :math:`x_{t''}` exactly when
its data prediction is (Salimans & Ho 2022, eq. 8 and Alg. 2)

.. math::
    \tilde x = \frac{x_{t''} - (\sigma_{t''}/\sigma_t)\,x_t}{a_{t''} - (\sigma_{t''}/\sigma_t)\,a_t},
    \qquad \tilde\epsilon = \frac{x_t - a_t \tilde x}{\sigma_t},

because the DDIM step :math:`a_{t''}\tilde x + \sigma_{t''}\tilde\epsilon` is affine in :math:`\tilde x` with
:math:`\tilde\epsilon` tied to it through :math:`x_t`. The target in the student's parameterization (``target``:
``"x0"``, ``"v"`` :math:`= a_t\tilde\epsilon - \sigma_t\tilde x`, or ``"eps"``) follows; the paper recommends
x0- or v-targets, since an :math:`\epsilon`-student must divide by :math:`a_t \to 0` at the first step.

The rows ``(x_t, t, target)``, with :math:`x_t = a_t x_0 + \sigma_t\epsilon` from data and ``t`` uniform on the
student's grid, are a fixed regression: one closed-form fit for an FTT student
(:func:`jaxtt.solvers.fit_regression`), a short Adam run for a network (:func:`jaxtt.distill.regression_loss`).
Halving again (student as the next teacher, on ``grid[::2]``) gives 2^k → 1 steps. The student samples with
``DDIM(timesteps=tuple(teacher_grid[::2]))`` and ``prediction=target``.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from jaxtt._validation import check_batch, check_choice, check_instance, check_int, check_key
from jaxtt.diffusion import PREDICTIONS, Schedule
from jaxtt.diffusion.parameterization import from_data_and_noise, per_row, signal_and_noise_scales
from jaxtt.diffusion.timesteps import check_grid
from jaxtt.distill.teacher import ddim_step_unchecked

__all__ = ["progressive_distillation_rows", "progressive_distillation_targets", "student_grid"]


def student_grid(teacher_grid) -> tuple[int, ...]:
    """The student's grid: every other step of the teacher's, ``teacher_grid[::2]``.

    Examples:
        >>> student_grid((1000, 750, 500, 250))
        (1000, 500)
    """
    grid = np.asarray(teacher_grid)
    if grid.ndim != 1 or grid.shape[0] < 1:
        raise ValueError(f"teacher_grid must be a non-empty 1-D sequence of steps, got shape {grid.shape}")
    return tuple(int(t) for t in grid[::2])


def _pairs(grid: np.ndarray):
    """Per student step ``i``: ``(t, t', t'')`` as arrays (``0`` past the end of the teacher grid)."""
    padded = np.concatenate([grid, [0, 0]])
    idx = np.arange(0, len(grid), 2)
    return (jnp.asarray(padded[idx], jnp.int32), jnp.asarray(padded[idx + 1], jnp.int32),
            jnp.asarray(padded[idx + 2], jnp.int32))


def _targets(teacher, schedule, x, t, t_mid, t_next, prediction, target):
    lab = schedule.log_alpha_bars
    z_mid = ddim_step_unchecked(teacher, schedule, x, t, t_mid, prediction)
    # a second step only where the first did not already reach the data level (odd teacher grids)
    z_next = ddim_step_unchecked(teacher, schedule, z_mid, jnp.maximum(t_mid, 1), t_next, prediction)
    z_next = jnp.where(per_row(t_mid == 0, x), z_mid, z_next)
    a, s = signal_and_noise_scales(lab[t])
    a2, s2 = signal_and_noise_scales(lab[t_next])
    ratio = s2 / s
    x0 = (z_next - per_row(ratio, x) * x) / per_row(a2 - ratio * a, x)
    eps = (x - per_row(a, x) * x0) / per_row(s, x)
    return from_data_and_noise(x0, eps, x, lab[t], target)


def _check_common(teacher, schedule, teacher_grid, prediction, target):
    if not callable(teacher):
        raise TypeError(f"teacher must be callable as teacher(x, t), got {type(teacher).__name__}")
    check_instance(schedule, "schedule", Schedule)
    grid = check_grid(np.asarray(teacher_grid), schedule.T, "teacher_grid")
    check_choice(prediction, "prediction", PREDICTIONS)
    check_choice(target, "target", PREDICTIONS)
    return grid


def progressive_distillation_targets(
    teacher: Callable[[Array, Array], Array],
    schedule: Schedule,
    teacher_grid,
    x_t: Float[Array, "N *event"],
    index: Int[Array, " N"],
    *,
    prediction: str = "eps",
    target: str = "x0",
) -> Float[Array, "N *event"]:
    r"""The student's targets at given points: row ``n`` sits at student step ``index[n]``, i.e. at
    ``t = teacher_grid[2 index[n]]`` (module docstring for the formula).

    Args:
        teacher: batched teacher ``teacher(x, t)`` predicting ``prediction``.
        schedule: the DDPM schedule.
        teacher_grid: the teacher's strictly decreasing grid of steps in ``1..T``.
        x_t: points ``(N, *event)``.
        index: student step of each row, integers in ``0..ceil(len(teacher_grid)/2) - 1``.
        prediction: what the teacher predicts; target: what the student predicts.

    Returns:
        Targets of ``x_t``'s shape.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxtt.diffusion import linear_schedule
        >>> teacher = lambda x, t: jnp.full_like(x, 2.0)  # an x0-model of the point mass at 2
        >>> y = progressive_distillation_targets(teacher, linear_schedule(100), (100, 60, 30), jnp.ones((2, 1)),
        ...                                      jnp.array([0, 1]), prediction="x0")
        >>> [round(v, 6) for v in y.ravel().tolist()]
        [2.0, 2.0]
    """
    grid = _check_common(teacher, schedule, teacher_grid, prediction, target)
    x_t = check_batch(x_t, "x_t")
    index = jnp.asarray(index)
    if index.shape != (x_t.shape[0],) or not jnp.issubdtype(index.dtype, jnp.integer):
        raise ValueError(f"index must be integers of shape ({x_t.shape[0]},), got {index.dtype} {index.shape}")
    t, t_mid, t_next = _pairs(grid)
    if jnp.any(index < 0) or jnp.any(index >= t.shape[0]):
        raise ValueError(f"index must lie in 0..{t.shape[0] - 1} (the student's steps)")
    return _targets(teacher, schedule, x_t, t[index], t_mid[index], t_next[index], prediction, target)


def progressive_distillation_rows(
    teacher: Callable[[Array, Array], Array],
    schedule: Schedule,
    teacher_grid,
    key: PRNGKeyArray,
    x0: Float[Array, "N *event"],
    repeats: int = 1,
    *,
    prediction: str = "eps",
    target: str = "x0",
) -> tuple[Float[Array, "M *event"], Int[Array, " M"], Float[Array, "M *event"]]:
    r"""Regression rows ``(x_t, t, target)`` of one progressive-distillation round (module docstring).

    Each data point is used ``repeats`` times with a student step drawn uniformly from ``teacher_grid[::2]``
    and :math:`x_t = a_t x_0 + \sigma_t\epsilon`, :math:`\epsilon \sim N(0, I)`.

    Args:
        teacher, schedule, teacher_grid, prediction, target: as for :func:`progressive_distillation_targets`.
        key: PRNG key of the steps and the noise.
        x0: data ``(N, *event)``.
        repeats: rows per data point.

    Returns:
        ``x_t`` ``(N·repeats, *event)``, integer ``t`` ``(N·repeats,)`` and the targets.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt.diffusion import linear_schedule
        >>> x, t, y = progressive_distillation_rows(lambda x, t: 0.5 * x, linear_schedule(100), (100, 50),
        ...                                          jax.random.key(0), jnp.zeros((4, 2)), 3)
        >>> x.shape, sorted(set(t.tolist())), y.shape
        ((12, 2), [100], (12, 2))
    """
    grid = _check_common(teacher, schedule, teacher_grid, prediction, target)
    check_key(key)
    x0 = check_batch(x0, "x0")
    repeats = check_int(repeats, "repeats", minimum=1)
    t_all, mid_all, next_all = _pairs(grid)
    k_i, k_eps = jax.random.split(key)
    x = jnp.tile(x0, (repeats,) + (1,) * (x0.ndim - 1))
    i = jax.random.randint(k_i, (x.shape[0],), 0, t_all.shape[0])
    t = t_all[i]
    a, s = signal_and_noise_scales(schedule.log_alpha_bars[t])
    x_t = per_row(a, x) * x + per_row(s, x) * jax.random.normal(k_eps, x.shape, x.dtype)
    return x_t, t, _targets(teacher, schedule, x_t, t, mid_all[i], next_all[i], prediction, target)
