r"""Consistency distillation (Song, Dhariwal, Chen, Sutskever 2023, "Consistency models", Alg. 2).

A consistency model :math:`f(x_t, t) \approx x_0` maps every point of a probability-flow ODE trajectory to the
trajectory's end, with :math:`f(x, 0) = x`. Song et al. build the boundary condition into the
parameterization :math:`f = c_{skip}(t)\,x + c_{out}(t)\,F_\theta(x, t)` (their eq. 3, EDM scalings of Karras
et al. 2022 with :math:`\epsilon \to 0`) for the variance-exploding variable :math:`\tilde x = x_t/a_t` at noise
level :math:`\sigma = \sigma_t/a_t`:
:math:`c_{skip} = \sigma_d^2/(\sigma^2 + \sigma_d^2)`, :math:`c_{out} = \sigma\sigma_d/\sqrt{\sigma^2 + \sigma_d^2}`.
Written for the VP point :math:`x_t` (:math:`a_t = \sqrt{\bar\alpha_t}`, :math:`\sigma_t = \sqrt{1 - \bar\alpha_t}`)
this is

.. math::
    f(x_t, t) = \frac{\sigma_d^2\, a_t}{\sigma_t^2 + \sigma_d^2 a_t^2}\,x_t
              + \frac{\sigma_d\,\sigma_t}{\sqrt{\sigma_t^2 + \sigma_d^2 a_t^2}}\,F_\theta(x_t, t),

bounded for all ``t`` (also where :math:`a_t \to 0`), with :math:`c_{skip}(0) = 1`, :math:`c_{out}(0) = 0`.

Distillation: on a grid :math:`\tau_1 > \dots > \tau_K` (then 0) draw :math:`x_{\tau_n} = a x_0 + \sigma\epsilon`,
take one teacher DDIM step (:func:`jaxtt.distill.ddim_step`, the ODE solver :math:`\Phi`) to
:math:`\hat x_{\tau_{n+1}}`, and regress :math:`f_\theta(x_{\tau_n}, \tau_n)` onto the frozen copy's
:math:`f_{\theta^-}(\hat x_{\tau_{n+1}}, \tau_{n+1})` (and onto :math:`\hat x_0` itself at the last step, the
boundary condition). With the frozen copy fixed this is a least-squares problem with fixed targets, linear
in :math:`F_\theta`: :math:`F^* = (y - c_{skip}x)/c_{out}` (:meth:`ConsistencyModel.network_targets`) — one
closed-form fit of an FTT per outer iteration, the frozen copy replaced by the fit after each (the target
network update with EMA rate :math:`\mu = 0`). We weight by :math:`\lambda(t) = 1/c_{out}(t)^2`, so the FTT fit
is unweighted in :math:`F`. After ``K`` outer iterations the targets have propagated from the data level
through all ``K`` grid intervals.

Sampling (Song et al. 2023, Alg. 1): one step :math:`x_0 = f(x_T, T)`; more steps re-noise,
:math:`x_\tau = a_\tau x_0 + \sigma_\tau z`, and apply :math:`f` again. Through
:func:`jaxtt.diffusion.sample`: ``DDIM(timesteps=(T,))`` with ``prediction="x0"`` is the one-step map, and
``DDIM(timesteps=grid, eta=1)`` the multistep sampler (its remaining :math:`\hat\epsilon` weight is
:math:`O(a_T/a_\tau)`, zero for a schedule with :math:`\bar\alpha_T \approx 0`).
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from jaxtt._validation import check_batch, check_choice, check_instance, check_int, check_key, check_real
from jaxtt.diffusion import PREDICTIONS, Schedule
from jaxtt.diffusion.parameterization import per_row, signal_and_noise_scales
from jaxtt.diffusion.timesteps import check_grid
from jaxtt.distill.teacher import ddim_step_unchecked

__all__ = ["ConsistencyModel", "consistency_distillation_rows", "consistency_scalings"]


def _scalings(log_alpha_bar, sigma_data):
    a, s = signal_and_noise_scales(log_alpha_bar)
    denom = s * s + sigma_data**2 * a * a
    return sigma_data**2 * a / denom, sigma_data * s / jnp.sqrt(denom)


def consistency_scalings(schedule: Schedule, t, sigma_data: float = 0.5) -> tuple[Array, Array]:
    r"""``(c_skip, c_out)`` of the boundary-respecting parameterization at steps ``t`` (module docstring).

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxtt.diffusion import cosine_schedule
        >>> c_skip, c_out = consistency_scalings(cosine_schedule(100), jnp.array([0, 100]))
        >>> [round(v, 4) for v in c_skip.tolist()], [round(abs(v), 4) for v in c_out.tolist()]
        ([1.0, 0.0001], [0.0, 0.5])
    """
    check_instance(schedule, "schedule", Schedule)
    sigma_data = check_real(sigma_data, "sigma_data", minimum=0.0, strict_minimum=True)
    t = jnp.asarray(t)
    if not jnp.issubdtype(t.dtype, jnp.integer) or jnp.any(t < 0) or jnp.any(t > schedule.T):
        raise ValueError(f"t must be integer steps in 0..{schedule.T}")
    return _scalings(schedule.log_alpha_bars[t], sigma_data)


class ConsistencyModel(eqx.Module):
    r"""A consistency model :math:`f = c_{skip}(t)\,x + c_{out}(t)\,F(x, t)` around a network ``F`` (module
    docstring); it predicts the data (``prediction="x0"``) and is exact at ``t = 0``.

    Args:
        network: batched ``network(x, t)`` (an :class:`~jaxtt.ftt.FTTDenoiser`, a batched network).
        schedule: the DDPM schedule.
        sigma_data: :math:`\sigma_d`, the data's standard deviation (0.5 as in Song et al.).

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxtt.diffusion import linear_schedule
        >>> f = ConsistencyModel(lambda x, t: jnp.zeros_like(x), linear_schedule(10))
        >>> f(jnp.ones((2, 1)), jnp.zeros(2, int)).ravel().tolist()   # the identity at t = 0
        [1.0, 1.0]
    """

    network: Callable
    schedule: Schedule
    sigma_data: float = eqx.field(static=True)

    def __init__(self, network, schedule: Schedule, sigma_data: float = 0.5):
        if not callable(network):
            raise TypeError(f"network must be callable as network(x, t), got {type(network).__name__}")
        self.network = network
        self.schedule = check_instance(schedule, "schedule", Schedule)
        self.sigma_data = check_real(sigma_data, "sigma_data", minimum=0.0, strict_minimum=True)

    @property
    def T(self) -> int:
        """Number of steps of the schedule."""
        return self.schedule.T

    def __call__(self, x, t):
        c_skip, c_out = _scalings(self.schedule.log_alpha_bar_at(t), self.sigma_data)
        return per_row(c_skip, x) * x + per_row(c_out, x) * self.network(x, t)

    def network_targets(self, x, t, y):
        r"""The network output :math:`F^* = (y - c_{skip}x)/c_{out}` that makes :math:`f(x, t) = y` (``t >= 1``)."""
        c_skip, c_out = _scalings(self.schedule.log_alpha_bar_at(t), self.sigma_data)
        return (y - per_row(c_skip, x) * x) / per_row(c_out, x)


def consistency_distillation_rows(
    frozen: Callable[[Array, Array], Array],
    teacher: Callable[[Array, Array], Array],
    schedule: Schedule,
    grid,
    key: PRNGKeyArray,
    x0: Float[Array, "N *event"],
    repeats: int = 1,
    *,
    prediction: str = "eps",
) -> tuple[Float[Array, "M *event"], Int[Array, " M"], Float[Array, "M *event"]]:
    r"""Regression rows ``(x_t, t, y)`` of one consistency-distillation iteration (module docstring).

    Row: ``t = grid[n]`` with ``n`` uniform, :math:`x_t = a_t x_0 + \sigma_t\epsilon`, ``t' = grid[n + 1]`` (0 after
    the last), :math:`\hat x_{t'}` the teacher's DDIM step, and :math:`y = f^-(\hat x_{t'}, t')` for ``t' >= 1``,
    :math:`y = \hat x_0` for ``t' = 0``.

    Args:
        frozen: the frozen copy :math:`f^-(x, t)`, a batched data predictor (a :class:`ConsistencyModel`, or the
            teacher's x0-prediction to start from).
        teacher: batched teacher ``teacher(x, t)`` predicting ``prediction``.
        schedule: the DDPM schedule.
        grid: strictly decreasing steps in ``1..T``.
        key: PRNG key of the steps and the noise.
        x0: data ``(N, *event)``.
        repeats: rows per data point.
        prediction: what the teacher predicts.

    Returns:
        ``x_t`` ``(N·repeats, *event)``, integer ``t`` and the data-space targets ``y``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt.diffusion import linear_schedule
        >>> teacher = lambda x, t: jnp.full_like(x, 2.0)                 # x0-teacher of the point mass at 2
        >>> x, t, y = consistency_distillation_rows(teacher, teacher, linear_schedule(100), (100, 50),
        ...                                         jax.random.key(0), jnp.zeros((3, 1)), prediction="x0")
        >>> bool(jnp.allclose(y, 2.0))
        True
    """
    if not callable(frozen):
        raise TypeError(f"frozen must be callable as frozen(x, t), got {type(frozen).__name__}")
    if not callable(teacher):
        raise TypeError(f"teacher must be callable as teacher(x, t), got {type(teacher).__name__}")
    check_instance(schedule, "schedule", Schedule)
    grid = check_grid(np.asarray(grid), schedule.T, "grid")
    check_key(key)
    x0 = check_batch(x0, "x0")
    repeats = check_int(repeats, "repeats", minimum=1)
    check_choice(prediction, "prediction", PREDICTIONS)
    steps = jnp.asarray(grid, jnp.int32)
    following = jnp.asarray(np.concatenate([grid[1:], [0]]), jnp.int32)
    k_i, k_eps = jax.random.split(key)
    x = jnp.tile(x0, (repeats,) + (1,) * (x0.ndim - 1))
    i = jax.random.randint(k_i, (x.shape[0],), 0, len(grid))
    t, t_next = steps[i], following[i]
    a, s = signal_and_noise_scales(schedule.log_alpha_bars[t])
    x_t = per_row(a, x) * x + per_row(s, x) * jax.random.normal(k_eps, x.shape, x.dtype)
    x_next = ddim_step_unchecked(teacher, schedule, x_t, t, t_next, prediction)
    y = jnp.where(per_row(t_next == 0, x), x_next, frozen(x_next, jnp.maximum(t_next, 1)))
    return x_t, t, y
