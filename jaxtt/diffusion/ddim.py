r"""DDIM sampling as a function (Song, Meng & Ermon 2021): a thin wrapper of
``sample(eps_fn, schedule, DDIM(steps=steps, eta=eta), ...)``."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from jaxtt.diffusion._checks import check_eps_fn
from jaxtt.diffusion.samplers import DDIM
from jaxtt.diffusion.sampling import sample
from jaxtt.diffusion.schedule import Schedule
from jaxtt.diffusion.timesteps import timesteps

__all__ = ["ddim_sample", "ddim_timesteps"]


def ddim_timesteps(T: int, steps: int) -> np.ndarray:
    r"""The default DDIM grid :math:`\tau_S > \dots > \tau_1`: ``timesteps(T, steps, "linspace")``.

    :math:`\tau_S = T` always, :math:`\tau_1 = 1` when ``steps >= 2``, all distinct, and ``steps = T`` gives
    every step.

    Examples:
        >>> ddim_timesteps(1000, 5).tolist()
        [1000, 750, 501, 251, 1]
        >>> ddim_timesteps(4, 4).tolist()
        [4, 3, 2, 1]
    """
    return timesteps(T, steps, "linspace")


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
    r"""Sample with DDIM on the ``"linspace"`` grid of ``steps`` steps: :func:`jaxtt.diffusion.sample` with
    :class:`~jaxtt.diffusion.DDIM` (see there for the update and the clipped form).

    Returns the samples, and with ``return_trajectory=True`` also :math:`x_{\tau_S}, \dots, x_0` (shape
    ``(steps + 1, *shape)``). ``eta`` may be traced (differentiable).

    Examples:
        >>> import jax
        >>> from jaxtt.diffusion import ddim_sample, linear_schedule
        >>> ddim_sample(lambda x, t: 0.9 * x, linear_schedule(50), jax.random.key(0), (3, 2), steps=10).shape
        (3, 2)
    """
    check_eps_fn(eps_fn)
    result = sample(eps_fn, schedule, DDIM(steps=steps, eta=eta), key, shape, x_init=x_init, clip_x0=clip_x0,
                    save="all" if return_trajectory else "final", checkpoint=checkpoint)
    return (result.samples, result.trajectory) if return_trajectory else result.samples
