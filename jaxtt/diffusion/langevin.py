r"""Annealed Langevin dynamics as a function (Song & Ermon 2019): a thin wrapper of
``sample(eps_fn, schedule, AnnealedLangevin(levels, n_steps, step_size), ...)``."""

from __future__ import annotations

from collections.abc import Callable

from jaxtyping import Array, Float, PRNGKeyArray

from jaxtt.diffusion._checks import check_eps_fn
from jaxtt.diffusion.samplers import AnnealedLangevin
from jaxtt.diffusion.sampling import sample
from jaxtt.diffusion.schedule import Schedule

__all__ = ["langevin_sample"]


def langevin_sample(
    eps_fn: Callable[[Array, Array], Array],
    schedule: Schedule,
    key: PRNGKeyArray,
    shape: tuple[int, ...],
    levels: int,
    n_steps: int,
    step_size: float,
    return_trajectory: bool = False,
    *,
    x_init: Float[Array, "N *event"] | None = None,
    checkpoint: bool = True,
    clip_x0: float | tuple[float, float] | None = None,
) -> Float[Array, "N *event"] | tuple[Float[Array, "N *event"], Float[Array, "M N *event"]]:
    r"""Annealed Langevin dynamics: :func:`jaxtt.diffusion.sample` with :class:`~jaxtt.diffusion.AnnealedLangevin`
    (see there for the update). The result targets :math:`q(x_{\tau_1})`, the data law noised to the smallest
    level; ``return_trajectory=True`` also returns every iterate (``levels * n_steps + 1`` of them).

    Examples:
        >>> import jax
        >>> from jaxtt.diffusion import langevin_sample, linear_schedule
        >>> langevin_sample(lambda x, t: 0.9 * x, linear_schedule(50), jax.random.key(0), (3, 2), 5, 2, 0.1).shape
        (3, 2)
    """
    check_eps_fn(eps_fn)
    result = sample(eps_fn, schedule, AnnealedLangevin(levels, n_steps, step_size), key, shape, x_init=x_init,
                    clip_x0=clip_x0, save="all" if return_trajectory else "final", checkpoint=checkpoint)
    return (result.samples, result.trajectory) if return_trajectory else result.samples
