r"""Timestep grids for the discrete samplers: named spacings and user-given grids.

A grid is a strictly decreasing array of integer steps :math:`\tau_1 > \tau_2 > \dots > \tau_S` in ``1..T``
(the steps at which the model is evaluated); every sampler then moves from :math:`\tau_i` to
:math:`\tau_{i+1}` and from :math:`\tau_S` to the data level ``0``.

The named spacings are those of Lin et al. 2024 ("Common Diffusion Noise Schedules and Sample Steps are
Flawed", Table 2) as implemented by diffusers' ``DDIMScheduler``. jaxtt's steps are diffusers' plus one:
diffusers indexes :math:`\bar\alpha` from 0 (its ``alphas_cumprod[0]`` is jaxtt's ``alpha_bars[1]``), so its
DDIM-50 grid ``980, 960, ..., 0`` on 1000 training steps is ``timesteps(1000, 50, "leading")`` =
``981, 961, ..., 1`` here — the same noise levels.

- ``"linspace"``: ``round(linspace(0, T - 1, S)) + 1`` reversed (always contains ``T`` and, for ``S >= 2``, ``1``).
- ``"leading"``: ``1 + k * (T // S)`` for ``k = S-1, ..., 0`` (diffusers' default for DDIM).
- ``"trailing"``: ``round(T - k * T / S)`` for ``k = 0, ..., S-1`` (starts at ``T``; Lin et al. recommend it).
- ``"log_snr"``: uniform in the log signal-to-noise ratio
  :math:`\lambda_t = \tfrac12\log(\bar\alpha_t/(1-\bar\alpha_t))` between :math:`\lambda_T` and
  :math:`\lambda_1` (the "logSNR" grid of Lu et al. 2022, DPM-Solver, sec. 3.3), rounded to distinct integers;
  needs the schedule.
"""

from __future__ import annotations

import numbers

import numpy as np

from jaxtt._validation import check_choice, check_int, is_concrete

__all__ = ["SPACINGS", "check_grid", "timesteps"]

#: The named spacings accepted by :func:`timesteps` and by the samplers' ``spacing`` option.
SPACINGS = ("linspace", "leading", "trailing", "log_snr")


def timesteps(T: int, steps: int, spacing: str = "linspace", *, schedule=None) -> np.ndarray:
    r"""The ``steps`` evaluation steps of a named ``spacing`` on ``1..T`` (module docstring), descending.

    Args:
        T: number of training steps of the schedule, ``>= 1``.
        steps: number of evaluation steps ``S``, ``1 <= S <= T``.
        spacing: ``"linspace"``, ``"leading"``, ``"trailing"`` or ``"log_snr"``.
        schedule: the :class:`~jaxtt.diffusion.Schedule` (needed by ``"log_snr"`` only; concrete).

    Returns:
        A strictly decreasing ``int32`` NumPy array of length ``steps`` with entries in ``1..T``.

    Examples:
        >>> from jaxtt.diffusion import timesteps
        >>> timesteps(1000, 5, "leading").tolist()
        [801, 601, 401, 201, 1]
        >>> timesteps(1000, 5, "trailing").tolist()
        [1000, 800, 600, 400, 200]
        >>> timesteps(10, 4).tolist()
        [10, 7, 4, 1]
    """
    T = check_int(T, "T", minimum=1)
    steps = check_int(steps, "steps", minimum=1, maximum=T)
    check_choice(spacing, "spacing", SPACINGS)
    if spacing == "linspace":
        grid = np.linspace(0, T - 1, steps).round()[::-1] + 1
    elif spacing == "leading":
        grid = 1 + np.arange(steps)[::-1] * (T // steps)
    elif spacing == "trailing":
        grid = np.round(np.arange(T, 0, -T / steps))[:steps]
    else:
        if schedule is None:
            raise ValueError('spacing="log_snr" needs the schedule: pass schedule=...')
        grid = _log_snr_grid(schedule, T, steps)
    return np.asarray(grid, dtype=np.int32)


def _log_snr_grid(schedule, T: int, steps: int) -> np.ndarray:
    """Integer steps nearest to a uniform grid in log-SNR, made strictly decreasing inside ``1..T``."""
    if schedule.T != T:
        raise ValueError(f"schedule has T = {schedule.T}, but T = {T} was given")
    if not is_concrete(schedule.log_alpha_bars):
        raise ValueError('spacing="log_snr" needs a concrete schedule (its values pick the grid); build the '
                         "grid outside jax.jit and pass it as timesteps=")
    log_ab = np.asarray(schedule.log_alpha_bars, dtype=np.float64)[1:]
    lam = 0.5 * (log_ab - np.log(-np.expm1(log_ab)))  # lam[k] at step k + 1, decreasing
    targets = np.linspace(lam[T - 1], lam[0], steps)
    # lam is decreasing: search on its negation to find the nearest step to each target
    neg = -lam
    idx = np.clip(np.searchsorted(neg, -targets), 1, T - 1) if T > 1 else np.zeros(steps, dtype=int)
    lo, hi = np.maximum(idx - 1, 0), idx
    nearest = np.where(np.abs(neg[lo] + targets) <= np.abs(neg[hi] + targets), lo, hi) + 1
    grid = nearest.astype(np.int64)
    # enforce strict decrease: from the top (<= previous - 1) and from the bottom (>= next + 1)
    for i in range(1, steps):
        grid[i] = min(grid[i], grid[i - 1] - 1)
    for i in range(steps - 1, -1, -1):
        floor = 1 if i == steps - 1 else grid[i + 1] + 1
        grid[i] = max(grid[i], floor)
    return grid


def check_grid(grid, T: int, name: str = "timesteps") -> np.ndarray:
    """A user grid as a strictly decreasing ``int32`` NumPy array in ``1..T``, or a ``ValueError``/``TypeError``.

    The grid must be concrete (it fixes the number of sampler steps, a static quantity).
    """
    if isinstance(grid, (str, bytes)) or isinstance(grid, numbers.Number):
        raise TypeError(f"{name} must be a 1-D array of integer steps, got {grid!r}")
    if not is_concrete(grid):
        raise TypeError(f"{name} must be concrete (a NumPy array or list), not traced: it sets the number of steps")
    arr = np.asarray(grid)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise TypeError(f"{name} must hold integer steps, got dtype {arr.dtype}")
    if arr.min() < 1 or arr.max() > T:
        raise ValueError(f"{name} must lie in 1..T = 1..{T}, got values in [{arr.min()}, {arr.max()}]")
    if np.any(np.diff(arr) >= 0):
        i = int(np.argmax(np.diff(arr) >= 0))
        raise ValueError(
            f"{name} must be strictly decreasing (from noise to data), got {name}[{i}] = {arr[i]} followed by "
            f"{arr[i + 1]}"
        )
    return arr.astype(np.int32)
