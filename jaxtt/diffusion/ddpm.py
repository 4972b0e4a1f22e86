r"""Ancestral DDPM sampling as a function (Ho et al. 2020, Algorithm 2): a thin wrapper of
``sample(eps_fn, schedule, DDPM(variance), ...)``."""

from __future__ import annotations

from collections.abc import Callable

from jaxtyping import Array, Float, PRNGKeyArray

from jaxtt.diffusion._checks import check_eps_fn
from jaxtt.diffusion.samplers import DDPM
from jaxtt.diffusion.sampling import sample
from jaxtt.diffusion.schedule import Schedule

__all__ = ["ddpm_sample"]


def ddpm_sample(
    eps_fn: Callable[[Array, Array], Array],
    schedule: Schedule,
    key: PRNGKeyArray,
    shape: tuple[int, ...],
    variance: str = "beta",
    return_trajectory: bool = False,
    *,
    x_init: Float[Array, "N *event"] | None = None,
    checkpoint: bool = True,
    clip_x0: float | tuple[float, float] | None = None,
) -> Float[Array, "N *event"] | tuple[Float[Array, "N *event"], Float[Array, "T1 N *event"]]:
    r"""Sample by ancestral DDPM steps ``t = T, ..., 1``: :func:`jaxtt.diffusion.sample` with
    :class:`~jaxtt.diffusion.DDPM` (see there for the update, the clipped form and the variance choices).

    Returns the samples, and with ``return_trajectory=True`` also the iterates :math:`x_T, \dots, x_0`
    (shape ``(T + 1, *shape)``).

    Examples:
        >>> import jax
        >>> from jaxtt.diffusion import ddpm_sample, linear_schedule
        >>> ddpm_sample(lambda x, t: 0.9 * x, linear_schedule(50), jax.random.key(0), (3, 2)).shape
        (3, 2)
    """
    check_eps_fn(eps_fn)
    result = sample(eps_fn, schedule, DDPM(variance), key, shape, x_init=x_init, clip_x0=clip_x0,
                    save="all" if return_trajectory else "final", checkpoint=checkpoint)
    return (result.samples, result.trajectory) if return_trajectory else result.samples
