r"""Flow matching and rectified flow: the regression rows, the loss, the sampling grid, straightness and reflow.

Rectified flow (Liu et al. 2022, "Flow straight and fast") and conditional flow matching (Lipman et al. 2022,
"Flow matching for generative modeling") with the linear interpolant between data :math:`x_0 \sim \pi_0` and
noise :math:`\epsilon \sim N(0, I)`,

.. math::
    x_s = (1 - s)\,x_0 + s\,\epsilon, \qquad s \in [0, 1],

learn a velocity :math:`v_\theta(x_s, s)` by least squares on the fixed target :math:`\epsilon - x_0`,

.. math::
    \min_\theta\ \mathbb{E}_{s \sim U[0,1],\,(x_0, \epsilon)}\,\|(\epsilon - x_0) - v_\theta(x_s, s)\|^2,

whose minimiser is the conditional mean :math:`v^*(x, s) = \mathbb{E}[\epsilon - x_0 \mid x_s = x]`. The ODE
:math:`dx_s/ds = v(x_s, s)`, integrated from :math:`s = 1` (noise) to :math:`s = 0`, transports the noise to the
data. Because the target is fixed, the regression is exactly the kind a functional tensor train solves in
closed form: :func:`flow_matching_triples` gives the rows ``(x_s, s, ε − x0)`` for
:func:`jaxtt.solvers.fit_regression`; :func:`flow_matching_loss` is the same objective for gradient training.
With ``targets="empirical_bayes"`` the rows carry the conditional mean of ``ε − x0`` under the empirical data
distribution instead (:func:`jaxtt.diffusion.targets.empirical_bayes_velocity`; Xu et al. 2023): the same minimiser,
without the target noise a fit on a fixed set of rows keeps.

Time variable of an FTT velocity: :class:`jaxtt.ftt.FTTDenoiser` with ``time="core"`` feeds the normalised time
``t/T`` to a basis on ``[0, 1]``; built with ``T = 1`` and called with the real ``s`` it is a functional TT of
``(x, s)`` — time as one more core, continuous in ``s`` — so the velocity FTT is ``FTTDenoiser(D, 1, ...)``.
(A fine integer grid would only round ``s``.)

Sampling goes through :func:`jaxtt.diffusion.sample`: :class:`~jaxtt.diffusion.FlowVelocity` turns ``v`` into a
noise model on a DDPM schedule, on which :class:`~jaxtt.diffusion.DDIM` is exactly Euler's method in ``s`` and
:class:`~jaxtt.diffusion.Heun` Heun's method; :func:`flow_timesteps` picks the schedule steps whose ``s`` values
are evenly spaced, so that ``DDIM(timesteps=flow_timesteps(schedule, K))`` is Euler with ``K`` equal steps. The
exact likelihood through the ODE is :func:`jaxtt.diffusion.log_likelihood` of the same ``FlowVelocity``.

Reflow (Liu et al. 2022, sec. 2.3): :func:`reflow_pairs` runs the trained flow from fresh noise and returns the
coupled pairs :math:`(\epsilon, \hat x_0)`; fitting a new flow on the straight interpolants of these pairs
(``flow_matching_triples(key, x0_hat, eps=eps)``) gives the 2-rectified flow, whose paths are straighter.
:func:`straightness` measures it, :math:`S = \int_0^1 \mathbb{E}\|(\epsilon - x_0) - \dot x_s\|^2 ds`
(Liu et al. 2022, eq. 5; zero exactly for straight paths, on which one Euler step is exact).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from jaxtt._validation import check_array, check_batch, check_choice, check_finite, check_int, check_key
from jaxtt.diffusion._checks import check_model, check_schedule
from jaxtt.diffusion.parameterization import FlowVelocity, per_row, signal_and_noise_scales
from jaxtt.diffusion.samplers import DDIM, AbstractSampler
from jaxtt.diffusion.sampling import sample
from jaxtt.diffusion.schedule import Schedule
from jaxtt.diffusion.targets import empirical_bayes_velocity

__all__ = [
    "flow_matching_loss",
    "flow_matching_triples",
    "flow_path",
    "flow_timesteps",
    "interpolant",
    "reflow_pairs",
    "straightness",
]


def interpolant(x0: Float[Array, "N *event"], eps: Float[Array, "N *event"], s) -> Float[Array, "N *event"]:
    r"""The linear interpolant :math:`x_s = (1 - s)\,x_0 + s\,\epsilon` (``s`` scalar or one value per row).

    Examples:
        >>> import jax.numpy as jnp
        >>> interpolant(jnp.zeros((2, 1)), jnp.ones((2, 1)), jnp.array([0.25, 1.0])).ravel().tolist()
        [0.25, 1.0]
    """
    x0 = check_batch(x0, "x0")
    eps = check_batch(eps, "eps", event_shape=tuple(x0.shape[1:]))
    if eps.shape[0] != x0.shape[0]:
        raise ValueError(f"eps must have the shape of x0 {tuple(x0.shape)}, got {tuple(eps.shape)}")
    s = check_array(s, "s", floating=True)
    check_finite(s, "s")
    if s.ndim > 1 or (s.ndim == 1 and s.shape[0] != x0.shape[0]):
        raise ValueError(f"s must be a scalar or have shape ({x0.shape[0]},), got {tuple(s.shape)}")
    return _interpolant(x0, eps, s)


def _interpolant(x0, eps, s):
    s = per_row(s, x0)
    return (1.0 - s) * x0 + s * eps


def _check_pairs(x0, eps):
    x0 = check_batch(x0, "x0")
    if eps is not None:
        eps = check_batch(eps, "eps")
        if eps.shape != x0.shape:
            raise ValueError(f"eps must have the shape of x0 {tuple(x0.shape)} (one noise per data point), "
                             f"got {tuple(eps.shape)}")
    return x0, eps


def _triples(key, x0, eps, repeats):
    k_s, k_eps = jax.random.split(key)
    x = jnp.tile(x0, (repeats,) + (1,) * (x0.ndim - 1))
    e = (jax.random.normal(k_eps, x.shape, x.dtype) if eps is None
         else jnp.tile(eps.astype(x.dtype), (repeats,) + (1,) * (x0.ndim - 1)))
    s = jax.random.uniform(k_s, (x.shape[0],), x.dtype)
    return _interpolant(x, e, s), s, e - x


def flow_matching_triples(
    key: PRNGKeyArray,
    x0: Float[Array, "N *event"],
    repeats: int = 1,
    *,
    eps: Float[Array, "N *event"] | None = None,
    targets: str = "sampled",
) -> tuple[Float[Array, "M *event"], Float[Array, " M"], Float[Array, "M *event"]]:
    r"""Regression rows ``(x_s, s, ε − x0)`` of the flow-matching objective (module docstring).

    Each data point is used ``repeats`` times (row ``r * N + n`` holds point ``n``) with its own
    :math:`s \sim U[0, 1]`; the noise is a fresh :math:`\epsilon \sim N(0, I)` per row (the independent coupling
    of 1-rectified flow), or the given ``eps[n]`` for every repeat of point ``n`` (a coupling such as the
    pairs of :func:`reflow_pairs`). Least squares of :math:`v_\theta(x_s, s)` on these rows is the Monte Carlo
    flow-matching loss.

    ``targets="empirical_bayes"`` replaces the sampled velocity by its conditional mean
    :math:`E[\epsilon - x_0 \mid x_s]` when :math:`x_0` is uniform on ``x0``
    (:func:`jaxtt.diffusion.targets.empirical_bayes_velocity`; the "stable target field" of Xu et al. 2023): the same
    minimiser of the loss over all functions, without the conditional variance of :math:`\epsilon - x_0`
    that a closed-form fit on a fixed set of rows keeps. It costs ``O(N² · repeats · D)`` and holds only for
    the independent coupling (no ``eps``).

    Args:
        key: PRNG key of ``s`` (and of the noise when ``eps`` is None).
        x0: data ``(N, *event)``.
        repeats: rows per data point.
        eps: optional coupled noise, shape of ``x0``.
        targets: ``"sampled"`` (``ε − x0``) or ``"empirical_bayes"`` (its conditional mean under ``x0``).

    Returns:
        ``x_s`` ``(N·repeats, *event)``, ``s`` ``(N·repeats,)`` in ``x0``'s dtype, and the target.

    Raises:
        ValueError: ``eps`` of another shape than ``x0``, ``repeats < 1``, an unknown ``targets``, or
            ``targets="empirical_bayes"`` with a coupling ``eps``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> x0 = jnp.ones((3, 2))
        >>> x_s, s, v = flow_matching_triples(jax.random.key(0), x0, 2)
        >>> x_s.shape, s.shape, bool(jnp.allclose(x_s, 1.0 + s[:, None] * v))
        ((6, 2), (6,), True)
        >>> # one data point: x0 is known from x_s, and the conditional mean is the sampled velocity itself
        >>> _, _, v_eb = flow_matching_triples(jax.random.key(0), x0[:1], 2, targets="empirical_bayes")
        >>> bool(jnp.allclose(v_eb, flow_matching_triples(jax.random.key(0), x0[:1], 2)[2], atol=1e-5))
        True
    """
    check_key(key)
    x0, eps = _check_pairs(x0, eps)
    repeats = check_int(repeats, "repeats", minimum=1)
    check_choice(targets, "targets", ("sampled", "empirical_bayes"))
    if targets == "empirical_bayes" and eps is not None:
        raise ValueError("targets='empirical_bayes' is the conditional mean under the independent coupling; "
                         "with a coupling eps (reflow pairs) use targets='sampled'")
    x_s, s, velocity = _triples(key, x0, eps, repeats)
    if targets == "empirical_bayes":
        velocity = empirical_bayes_velocity(x_s, s, x0)
    return x_s, s, velocity


def flow_matching_loss(
    velocity: Callable[[Array, Array], Array],
    key: PRNGKeyArray,
    x0: Float[Array, "N *event"],
    *,
    eps: Float[Array, "N *event"] | None = None,
) -> Float[Array, ""]:
    r"""Monte Carlo flow-matching loss :math:`\frac1{ND}\sum_n \|(\epsilon_n - x_{0,n}) - v(x_{s_n}, s_n)\|^2`.

    One row per data point (:func:`flow_matching_triples` with ``repeats = 1``); differentiable in the
    parameters of ``velocity``, so it trains a network with any Optax optimizer (e.g. as the ``loss`` of
    :func:`jaxtt.train.fit`). Its minimum over all functions is
    :math:`\mathbb{E}\,\mathrm{Var}(\epsilon - x_0 \mid x_s)/D`, not 0.

    Args:
        velocity: batched model ``velocity(x_s, s)`` with real ``s`` of shape ``(N,)``.
        key: PRNG key of ``s`` and the noise.
        x0: data batch ``(N, *event)``.
        eps: optional coupled noise (reflow), shape of ``x0``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> x0 = jnp.full((4000, 1), 2.0)  # a point mass at 2: E[eps - x0 | x_s = x] = (x - 2)/s
        >>> exact = lambda x, s: (x - 2.0) / s[:, None]
        >>> float(flow_matching_loss(exact, jax.random.key(0), x0)) < 1e-10
        True
    """
    check_model(velocity, "velocity")
    check_key(key)
    x0, eps = _check_pairs(x0, eps)
    return _flow_matching_loss(velocity, key, x0, eps)


def _flow_matching_loss(velocity, key, x0, eps):
    x_s, s, target = _triples(key, x0, eps, 1)
    return jnp.mean((velocity(x_s, s) - target) ** 2)


def _interpolant_times(schedule: Schedule) -> np.ndarray:
    """``s_t = σ_t/(a_t + σ_t)`` for ``t = 0..T`` (NumPy, float64)."""
    lab = np.asarray(schedule.log_alpha_bars, dtype=np.float64)
    a, s = np.exp(0.5 * lab), np.sqrt(-np.expm1(lab))
    return s / (a + s)


def flow_timesteps(schedule: Schedule, steps: int) -> np.ndarray:
    r"""Schedule steps :math:`\tau_1 = T > \dots > \tau_K` whose interpolant times are evenly spaced in ``s``.

    Under :class:`~jaxtt.diffusion.FlowVelocity` step ``t`` is the interpolant time
    :math:`s_t = \sigma_t/(a_t + \sigma_t)` (:math:`a_t = \sqrt{\bar\alpha_t}`,
    :math:`\sigma_t = \sqrt{1-\bar\alpha_t}`).
    This picks, for :math:`k = 0..K-1`, the step whose :math:`s_t` is nearest to :math:`s_T (K - k)/K`, so
    ``DDIM(timesteps=flow_timesteps(schedule, K))`` on a ``FlowVelocity`` is Euler's method with ``K`` equal
    steps (up to the rounding of ``s`` to the schedule's steps) from :math:`s_T \approx 1` to 0.

    Args:
        schedule: the DDPM schedule (a schedule with :math:`\bar\alpha_T \approx 0`, such as
            :func:`~jaxtt.diffusion.cosine_schedule`, makes :math:`s_T \approx 1`).
        steps: ``K >= 1``.

    Raises:
        ValueError: two of the ``K`` times round to the same step (``steps`` too large for ``T``).

    Examples:
        >>> from jaxtt.diffusion import cosine_schedule
        >>> flow_timesteps(cosine_schedule(1000), 4).tolist()
        [1000, 794, 496, 199]
    """
    schedule = check_schedule(schedule)
    steps = check_int(steps, "steps", minimum=1, maximum=schedule.T)
    u = _interpolant_times(schedule)
    targets = u[-1] * (steps - np.arange(steps)) / steps
    grid = np.array([int(np.argmin(np.abs(u[1:] - target))) + 1 for target in targets], dtype=np.int32)
    if np.any(np.diff(grid) >= 0):
        raise ValueError(f"steps = {steps} is too many for T = {schedule.T}: evenly spaced times share schedule "
                         "steps; use a schedule with more steps")
    return grid


def flow_path(
    velocity: Callable[[Array, Array], Array],
    schedule: Schedule,
    sampler: AbstractSampler,
    key: PRNGKeyArray,
    shape: tuple[int, ...],
    *,
    x_init: Float[Array, "N *event"] | None = None,
) -> tuple[Float[Array, "K1 N *event"], Float[Array, " K1"]]:
    r"""The path of the flow ``velocity`` from noise to data, in the interpolant variable, with its times.

    Runs :func:`jaxtt.diffusion.sample` on ``FlowVelocity(velocity, schedule)`` with ``save="all"`` and maps
    every iterate :math:`x_t` back to :math:`x_s = x_t/(a_t + \sigma_t)` at :math:`s = \sigma_t/(a_t + \sigma_t)`.
    With :class:`~jaxtt.diffusion.DDIM` the path is the Euler polygon of :math:`dx_s/ds = v`.

    Args:
        velocity: batched ``velocity(x_s, s)``.
        schedule, sampler, key, shape, x_init: as for :func:`jaxtt.diffusion.sample` (a discrete sampler with
            one evaluation per grid step, e.g. ``DDIM``).

    Returns:
        ``(path, s)``: the iterates ``(K + 1, N, *event)`` from :math:`x_{s_T}` to the samples at ``s = 0``, and
        their times ``(K + 1,)``, decreasing to 0.
    """
    schedule = check_schedule(schedule)
    check_model(velocity, "velocity")
    if not isinstance(sampler, DDIM):
        raise TypeError(f"sampler must be a DDIM sampler (one evaluation per grid step), got {type(sampler).__name__}")
    out = sample(FlowVelocity(velocity, schedule), schedule, sampler, key, shape, x_init=x_init, save="all")
    grid = np.concatenate([sampler.resolve(schedule).grid(schedule), [0]])
    a, s = signal_and_noise_scales(schedule.log_alpha_bars[grid])
    path = out.trajectory / per_row(a + s, out.trajectory)
    return path, (s / (a + s)).astype(path.dtype)


def straightness(path: Float[Array, "K1 N *event"], s: Float[Array, " K1"]) -> Float[Array, ""]:
    r"""Straightness :math:`S = \frac{1}{|s_K - s_0|}\int \mathbb{E}\,\|\dot x_s - c\|^2\,|ds|` of piecewise-linear
    paths, :math:`c = (x_{s_K} - x_{s_0})/(s_K - s_0)` the chord (Liu et al. 2022, eq. 5, on ``[s_K, s_0]``).

    For the polygon through ``path[k]`` at times ``s[k]`` the velocity on piece ``k`` is
    :math:`(x_{k+1} - x_k)/(s_{k+1} - s_k)`, so

    .. math:: S = \frac{1}{|s_K - s_0|}\sum_k |s_{k+1} - s_k|\ \frac1N\sum_n
              \Big\|\frac{x_{k+1,n} - x_{k,n}}{s_{k+1} - s_k} - c_n\Big\|^2,

    zero exactly when every path is a straight line run at constant speed. On the Euler path of
    :func:`flow_path` the piece velocities are the model's; for a flow, :math:`S` is the transport's departure
    from straight lines, the quantity reflow reduces.

    Args:
        path: ``(K + 1, N, *event)`` points of ``N`` paths, ``K >= 1``.
        s: ``(K + 1,)`` strictly monotone times.

    Examples:
        >>> import jax.numpy as jnp
        >>> s = jnp.linspace(1.0, 0.0, 5)
        >>> line = s[:, None, None] * jnp.ones((1, 3, 2))   # straight paths at constant speed
        >>> float(straightness(line, s))
        0.0
        >>> # x = s^2 on 4 pieces: speeds 7/4, 5/4, 3/4, 1/4 against the chord 1, in each of the 2 coordinates
        >>> round(float(straightness(line ** 2, s)), 6)
        0.625
    """
    path = check_array(path, "path", floating=True)
    if path.ndim < 3 or path.shape[0] < 2:
        raise ValueError(f"path must have shape (K + 1, N, *event) with K >= 1, got {tuple(path.shape)}")
    s = check_array(s, "s", ndim=1, floating=True)
    if s.shape[0] != path.shape[0]:
        raise ValueError(f"s must have shape ({path.shape[0]},) to match path, got {tuple(s.shape)}")
    ds = np.diff(np.asarray(s, dtype=np.float64))
    if not (np.all(ds > 0) or np.all(ds < 0)):
        raise ValueError("s must be strictly monotone")
    return _straightness(jnp.asarray(path), jnp.asarray(s, path.dtype))


def _straightness(path, s):
    ds = jnp.diff(s)
    chord = (path[-1] - path[0]) / (s[-1] - s[0])
    speed = jnp.diff(path, axis=0) / ds.reshape((-1,) + (1,) * (path.ndim - 1))
    dev = jnp.sum((speed - chord[None]) ** 2, axis=tuple(range(2, path.ndim))).mean(axis=1)
    return jnp.sum(jnp.abs(ds) * dev) / jnp.abs(s[-1] - s[0])


def reflow_pairs(
    velocity: Callable[[Array, Array], Array],
    schedule: Schedule,
    sampler: AbstractSampler,
    key: PRNGKeyArray,
    n: int,
    dim: int | tuple[int, ...],
) -> tuple[Float[Array, "n *event"], Float[Array, "n *event"]]:
    r"""The coupling :math:`(\epsilon, \hat x_0)` of the flow ``velocity``: noise and where the flow takes it.

    Draws :math:`\epsilon \sim N(0, I)` and integrates the flow from it to ``s = 0`` with ``sampler`` through
    :func:`jaxtt.diffusion.sample` (``FlowVelocity``; the start is :math:`x_{s_T} = \epsilon/(a_T + \sigma_T)`,
    which is :math:`\epsilon` when :math:`\bar\alpha_T \approx 0`). Refitting a flow on
    ``flow_matching_triples(key, x0_hat, eps=eps)`` is one round of reflow (Liu et al. 2022, Alg. 1).

    Args:
        velocity: the trained flow ``velocity(x_s, s)``.
        schedule: DDPM schedule for ``FlowVelocity``.
        sampler: e.g. ``Heun(timesteps=flow_timesteps(schedule, 50))`` or ``DDIM(...)``.
        key: PRNG key (of the noise, and of the sampler).
        n: number of pairs.
        dim: event shape (an int for vectors).

    Returns:
        ``(eps, x0_hat)``, each ``(n, *event)``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt.diffusion import DDIM, cosine_schedule
        >>> schedule = cosine_schedule(100)
        >>> eps, x0 = reflow_pairs(lambda x, s: x - 3.0, schedule, DDIM(timesteps=(100,)), jax.random.key(0), 4, 2)
        >>> bool(jnp.allclose(x0, 3.0, atol=1e-2))  # one Euler step of v = x - 3 from s_T = 1 - 5e-4
        True
    """
    schedule = check_schedule(schedule)
    check_model(velocity, "velocity")
    check_key(key)
    n = check_int(n, "n", minimum=1)
    event = (dim,) if isinstance(dim, int | np.integer) else tuple(dim)
    for d in event:
        check_int(d, "dim", minimum=1)
    k_eps, k_sample = jax.random.split(key)
    eps = jax.random.normal(k_eps, (n, *event), schedule.dtype)
    out = sample(FlowVelocity(velocity, schedule), schedule, sampler, k_sample, (n, *event), x_init=eps)
    return eps, out.samples
