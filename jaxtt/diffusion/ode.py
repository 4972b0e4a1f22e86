r"""The probability-flow ODE: deterministic sampling, encoding and exact log-likelihoods (Song et al. 2021,
"Score-Based Generative Modeling through SDEs", sec. 4.3 and appendix D.2), solved with diffrax.

In the continuous time ``s = t/T`` of :mod:`jaxtt.diffusion.schedule` (VP-SDE with :math:`\beta(s)` and
:math:`\sigma(s) = \sqrt{1-\bar\alpha(s)}`) the probability-flow ODE written with the noise model is

.. math::
    \frac{dx}{ds} = -\tfrac12\beta(s)\Big[x - \frac{\epsilon_\theta(x, sT)}{\sigma(s)}\Big],

using :math:`\nabla_x \log q_s(x) = -\epsilon/\sigma(s)` (Song et al. 2021, sec. 3.3). Its solution from
:math:`x(1) \sim N(0, I)` has the marginals :math:`q_s` of the forward process when
:math:`\epsilon_\theta = \epsilon^*`.

The solver integrates the same ODE in the log signal-to-noise ratio
:math:`\lambda = \log(\bar\alpha / (1 - \bar\alpha))` (Lu et al. 2022, "DPM-Solver", eq. 3.3), where with
:math:`d\lambda/ds = -\beta/\sigma^2` it reads

.. math::
    \frac{dx}{d\lambda} = \tfrac12\sigma^2 x - \tfrac12\sigma\,\epsilon_\theta(x, t(\lambda)),\qquad
    \sigma^2 = 1 - \bar\alpha = \mathrm{sigmoid}(-\lambda),

and :math:`t(\lambda)` is the real step of that noise level (:meth:`Schedule.step_at_log_alpha_bar`). The
field depends on the schedule only through the noise level, so it is as smooth as the noise model itself:
the kinks of the interpolated :math:`\beta(s)` between grid points never enter, and adaptive steps stay long.
Deterministic DDIM (eta = 0) is a first-order discretisation of this ODE.

Querying a discrete noise model at non-integer times: by default ``eps_fn`` receives the real step
``t(λ)`` in ``(0, T]`` (an array of ``x``'s dtype, shape ``(N,)``), which suits models with a continuous time
input (FTT denoisers, sinusoidal embeddings, the exact :meth:`GaussianMixture.optimal_eps`). With
``integer_t=True`` it receives ``clip(round(t), 1, T)`` as ``int32`` instead, for models defined only on the
integer steps; the field is then piecewise constant in ``t`` and the solve is less accurate.

The integration stops at ``s = s_min > 0`` (the noise level :math:`\bar\alpha(s_{\min})`) rather than at 0,
where :math:`\lambda = \infty`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from jaxtt._validation import check_batch, check_choice, check_int, check_key
from jaxtt.diffusion._checks import call_model, check_eps_fn, check_schedule
from jaxtt.diffusion.parameterization import PREDICTIONS, to_data_and_noise
from jaxtt.diffusion.samplers import ProbabilityFlowODE
from jaxtt.diffusion.schedule import Schedule

__all__ = ["LogLikelihood", "log_likelihood", "ode_encode", "ode_sample"]

#: Event sizes up to this use the exact divergence under ``divergence="auto"``; larger ones use Hutchinson.
EXACT_DIVERGENCE_MAX_DIM = 16


class LogLikelihood(NamedTuple):
    """Per-sample log-likelihood from :func:`log_likelihood`.

    Attributes:
        log_prob: :math:`\\log p(x)` in nats, shape ``(N,)``; the negative log-likelihood in nats is its negative.
        bits_per_dim: :math:`-\\log_2 p(x) / D`, shape ``(N,)``, with ``D`` the event size (continuous density,
            no dequantisation offset).
    """

    log_prob: Float[Array, " N"]
    bits_per_dim: Float[Array, " N"]


def _log_snr(schedule: Schedule, s, dtype):
    r""":math:`\lambda(s) = \log\bar\alpha(s) - \log(1 - \bar\alpha(s))` in ``dtype``."""
    log_ab = schedule.log_alpha_bar_at(jnp.asarray(s, dtype=schedule.dtype) * schedule.T)
    return (log_ab - jnp.log(-jnp.expm1(log_ab))).astype(dtype)


def _drift(eps_fn, schedule: Schedule, integer_t: bool, prediction: str = "eps", name: str = "eps_fn"):
    """The probability-flow field ``g(lam, x) = (sigma^2 x - sigma eps(x, t(lam))) / 2`` for a batch ``x``;
    a model of another ``prediction`` kind is converted to its noise prediction first."""

    def g(lam, x):
        var = jax.nn.sigmoid(-lam).astype(x.dtype)
        log_ab = -jax.nn.softplus(-lam)
        t = schedule.step_at_log_alpha_bar(log_ab)
        t_in = jnp.clip(jnp.round(t), 1, schedule.T).astype(jnp.int32) if integer_t else t.astype(x.dtype)
        out = call_model(eps_fn, x, jnp.full((x.shape[0],), t_in), name)
        eps = out if prediction == "eps" else to_data_and_noise(out, x, log_ab.astype(x.dtype), prediction)[1]
        return 0.5 * var * x - 0.5 * jnp.sqrt(var) * eps

    return g


def _config(solver, rtol, atol, s_min, max_steps, integer_t, save_points=101) -> ProbabilityFlowODE:
    """The solver options as a validated :class:`ProbabilityFlowODE` (its checks name each argument)."""
    solver = diffrax.Tsit5() if solver is None else solver
    return ProbabilityFlowODE(solver, rtol, atol, s_min, max_steps, integer_t, save_points)


def _solve(field, y0, s0, s1, ode, saveat):
    return diffrax.diffeqsolve(
        diffrax.ODETerm(field),
        ode.solver,
        t0=s0,
        t1=s1,
        dt0=None,
        y0=y0,
        saveat=saveat,
        stepsize_controller=diffrax.PIDController(rtol=ode.rtol, atol=ode.atol),
        max_steps=ode.max_steps,
    )


def ode_sample(
    eps_fn: Callable[[Array, Array], Array],
    schedule: Schedule,
    key: PRNGKeyArray,
    shape: tuple[int, ...],
    return_trajectory: bool = False,
    *,
    x_init: Float[Array, "N *event"] | None = None,
    s_min: float = 1e-3,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    solver: diffrax.AbstractSolver | None = None,
    max_steps: int = 4096,
    integer_t: bool = False,
    trajectory_points: int = 101,
) -> Float[Array, "N *event"] | tuple[Float[Array, "N *event"], Float[Array, "P N *event"]]:
    r"""Sample by solving the probability-flow ODE (module docstring) from ``s = 1`` down to ``s = s_min``:
    ``sample(eps_fn, schedule, ProbabilityFlowODE(...), key, shape)`` with the arguments spread out.

    :math:`x(1) \sim N(0, I)` is drawn from ``key`` with the key layout of every jaxtt sampler (the same key gives
    the same :math:`x(1)` as :func:`jaxtt.diffusion.sample` with any sampler) unless ``x_init`` is given;
    ``ode_sample(x_init=ode_encode(x))`` decodes back to ``x`` up to the solver tolerance. Adaptive Tsit5
    (default) with a PID step-size controller; differentiable (diffrax's recursive checkpointing adjoint).

    Args:
        eps_fn: batched noise model ``eps_fn(x, t)``; see the module docstring for how ``t`` is passed.
        schedule: the noise schedule.
        key: PRNG key for :math:`x(1)`.
        shape: ``(N, *event_shape)``.
        return_trajectory: also return the solution at ``trajectory_points`` evenly spaced ``s`` from 1 to
            ``s_min``, shape ``(trajectory_points, *shape)``.
        x_init: optional :math:`x(1)` (its dtype sets the dtype; default: the schedule's dtype).
        s_min: end time in ``(0, 1)``.
        rtol, atol: tolerances of the step-size controller.
        solver: a diffrax solver (default ``diffrax.Tsit5()``).
        max_steps: solver step limit.
        integer_t: query ``eps_fn`` at rounded integer steps.
        trajectory_points: number of saved points when ``return_trajectory``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt.data import GaussianMixture
        >>> from jaxtt.diffusion import cosine_schedule
        >>> schedule = cosine_schedule(50)
        >>> data = GaussianMixture(jnp.ones(1), jnp.zeros((1, 2)), 0.25 * jnp.eye(2)[None])  # N(0, 0.5² I)
        >>> eps = lambda x, t: data.optimal_eps(x, t, schedule)  # the exact noise model
        >>> x = ode_sample(eps, schedule, jax.random.key(0), (2000, 2))
        >>> x.shape, abs(float(x.std()) - 0.5) < 0.05
        ((2000, 2), True)
    """
    from jaxtt.diffusion.sampling import sample  # sampling imports this module

    check_eps_fn(eps_fn)
    trajectory_points = check_int(trajectory_points, "trajectory_points", minimum=2)
    ode = _config(solver, rtol, atol, s_min, max_steps, integer_t, trajectory_points)
    result = sample(eps_fn, schedule, ode, key, shape, x_init=x_init, save="all" if return_trajectory else "final")
    return (result.samples, result.trajectory) if return_trajectory else result.samples


def solve_probability_flow(model, schedule, x, ode, prediction: str, save: bool, name: str = "model"):
    """Unchecked kernel of the ODE sampler: solve from ``s = 1`` (at ``x``) to ``ode.s_min``; returns
    ``(ys, nfe)`` with ``ys`` the saved states (the last is the sample)."""
    drift = _drift(model, schedule, ode.integer_t, prediction, name)
    if save:
        saveat = diffrax.SaveAt(ts=_log_snr(schedule, np.linspace(1.0, ode.s_min, ode.save_points), x.dtype))
    else:
        saveat = diffrax.SaveAt(t1=True)
    lam0, lam1 = _log_snr(schedule, 1.0, x.dtype), _log_snr(schedule, ode.s_min, x.dtype)
    field = lambda lam, y, _: drift(lam, y)  # noqa: E731
    sol = _solve(field, x, lam0, lam1, ode, saveat)
    return sol.ys, sol.stats["num_steps"]


def ode_encode(
    eps_fn: Callable[[Array, Array], Array],
    schedule: Schedule,
    x: Float[Array, "N *event"],
    *,
    s_min: float = 1e-3,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    solver: diffrax.AbstractSolver | None = None,
    max_steps: int = 4096,
    integer_t: bool = False,
    prediction: str = "eps",
) -> Float[Array, "N *event"]:
    r"""Encode data into the latent :math:`x(1)` by solving the probability-flow ODE forward from ``s_min``
    to 1 (the deterministic inverse of :func:`ode_sample`; same arguments, and ``prediction`` names what the
    model outputs: ``"eps"``, ``"x0"``, ``"v"`` or ``"score"``).

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt.data import GaussianMixture
        >>> from jaxtt.diffusion import cosine_schedule
        >>> schedule = cosine_schedule(50)
        >>> data = GaussianMixture(jnp.ones(1), jnp.zeros((1, 2)), 0.25 * jnp.eye(2)[None])  # N(0, 0.5² I)
        >>> eps = lambda x, t: data.optimal_eps(x, t, schedule)
        >>> x = data.sample(jax.random.key(1), 4)
        >>> z = ode_encode(eps, schedule, x)  # the flow of a Gaussian rescales it to N(0, I)
        >>> bool(jnp.allclose(z, 2 * x, atol=1e-2))
        True
        >>> bool(jnp.allclose(ode_sample(eps, schedule, jax.random.key(0), x.shape, x_init=z), x, atol=1e-2))
        True
    """
    check_eps_fn(eps_fn)
    schedule = check_schedule(schedule)
    x = check_batch(x, "x")
    check_choice(prediction, "prediction", PREDICTIONS)
    ode = _config(solver, rtol, atol, s_min, max_steps, integer_t)
    return _ode_encode(eps_fn, schedule, x, ode, prediction)


@eqx.filter_jit
def _ode_encode(eps_fn, schedule, x, ode, prediction):
    drift = _drift(eps_fn, schedule, ode.integer_t, prediction)
    lam0, lam1 = _log_snr(schedule, ode.s_min, x.dtype), _log_snr(schedule, 1.0, x.dtype)
    return _solve(lambda lam, y, _: drift(lam, y), x, lam0, lam1, ode, diffrax.SaveAt(t1=True)).ys[-1]


def _divergence(drift, x, lam, kind, probe):
    """``div_x f(s, x)`` per row: exact via one JVP per coordinate, or Hutchinson with the fixed ``probe``."""
    f = lambda y: drift(lam, y)  # noqa: E731
    if kind == "hutchinson":
        fx, jv = jax.jvp(f, (x,), (probe,))
        return fx, jnp.sum((probe * jv).reshape(x.shape[0], -1), axis=1)
    n, d = x.shape[0], math.prod(x.shape[1:])
    basis = jnp.broadcast_to(jnp.eye(d, dtype=x.dtype)[:, None, :], (d, n, d)).reshape((d,) + x.shape)
    fx = f(x)
    jv = jax.vmap(lambda v: jax.jvp(f, (x,), (v,))[1])(basis).reshape(d, n, d)
    return fx, jnp.einsum("ini->n", jv)


def log_likelihood(
    eps_fn: Callable[[Array, Array], Array],
    schedule: Schedule,
    x: Float[Array, "N *event"],
    key: PRNGKeyArray,
    *,
    divergence: str = "auto",
    s_min: float = 1e-5,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    solver: diffrax.AbstractSolver | None = None,
    max_steps: int = 4096,
    integer_t: bool = False,
    prediction: str = "eps",
) -> LogLikelihood:
    r"""Log-likelihood of ``x`` under the probability-flow ODE (Song et al. 2021, eq. 39-40; Chen et al. 2018,
    "Neural ODEs", instantaneous change of variables).

    With :math:`g` the field of the module docstring (in the log-SNR time :math:`\lambda`), solve jointly from
    the noise level of ``s_min`` to that of ``s = 1``

    .. math::
        \frac{dx}{d\lambda} = g(\lambda, x),\qquad \frac{d\ell}{d\lambda} = \nabla_x\cdot g(\lambda, x),\qquad
        x(\lambda(s_{\min})) = x,\ \ell = 0,

    and return :math:`\log p(x) = \log N(x(\lambda(1)); 0, I) + \ell(\lambda(1))`, the density at
    :math:`s_{\min}` (close to the data density when :math:`s_{\min}` is small) of the model whose prior at
    ``s = 1`` is :math:`N(0, I)`. (The change of variables is invariant to the choice of time variable.)

    The divergence is exact (one forward-mode JVP per coordinate, ``divergence="exact"``) or the Hutchinson
    estimate :math:`v^\top (\partial f/\partial x) v` with one Rademacher probe :math:`v` drawn from ``key`` and
    held fixed during the solve (``"hutchinson"``, unbiased, one JVP). ``"auto"`` is exact for event sizes up
    to :data:`EXACT_DIVERGENCE_MAX_DIM` (16). The row-wise divergence assumes ``eps_fn`` treats the rows of
    its batch independently (no batch statistics).

    Args:
        eps_fn: batched noise model; see the module docstring for how ``t`` is passed.
        schedule: the noise schedule.
        x: data ``(N, *event_shape)``, finite.
        key: PRNG key for the Hutchinson probe (unused by the exact divergence).
        divergence: ``"auto"``, ``"exact"`` or ``"hutchinson"``.
        s_min: start time in ``(0, 1)``.
        rtol, atol, solver, max_steps, integer_t: as in :func:`ode_sample`.
        prediction: what the model outputs (``"eps"``, ``"x0"``, ``"v"`` or ``"score"``).

    Returns:
        :class:`LogLikelihood` with ``log_prob`` (nats) and ``bits_per_dim``, each ``(N,)`` in ``x``'s dtype.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt.data import GaussianMixture
        >>> from jaxtt.diffusion import cosine_schedule
        >>> schedule = cosine_schedule(50)
        >>> data = GaussianMixture(jnp.ones(1), jnp.zeros((1, 2)), 0.25 * jnp.eye(2)[None])  # N(0, 0.5² I)
        >>> eps = lambda x, t: data.optimal_eps(x, t, schedule)
        >>> x = data.sample(jax.random.key(1), 4)
        >>> result = log_likelihood(eps, schedule, x, jax.random.key(2))
        >>> bool(jnp.allclose(result.log_prob, data.log_prob(x), atol=1e-3))  # the exact model recovers log p
        True
        >>> bool(jnp.allclose(result.bits_per_dim, -result.log_prob / (2 * jnp.log(2.0))))
        True
    """
    check_eps_fn(eps_fn)
    schedule = check_schedule(schedule)
    x = check_batch(x, "x")
    check_key(key)
    check_choice(divergence, "divergence", ("auto", "exact", "hutchinson"))
    check_choice(prediction, "prediction", PREDICTIONS)
    ode = _config(solver, rtol, atol, s_min, max_steps, integer_t)
    d = math.prod(x.shape[1:])
    kind = divergence if divergence != "auto" else ("exact" if d <= EXACT_DIVERGENCE_MAX_DIM else "hutchinson")
    log_prob = _log_likelihood(eps_fn, schedule, x, key, kind, ode, prediction)
    return LogLikelihood(log_prob=log_prob, bits_per_dim=-log_prob / (d * math.log(2.0)))


@eqx.filter_jit
def _log_likelihood(eps_fn, schedule, x, key, kind, ode, prediction):
    n, d = x.shape[0], math.prod(x.shape[1:])
    probe = jax.random.rademacher(key, x.shape, dtype=x.dtype)
    drift = _drift(eps_fn, schedule, ode.integer_t, prediction)
    y0 = (x, jnp.zeros((n,), dtype=x.dtype))
    field = lambda lam, y, _: _divergence(drift, y[0], lam, kind, probe)  # noqa: E731
    lam0, lam1 = _log_snr(schedule, ode.s_min, x.dtype), _log_snr(schedule, 1.0, x.dtype)
    sol = _solve(field, y0, lam0, lam1, ode, diffrax.SaveAt(t1=True))
    x1, delta = sol.ys[0][-1], sol.ys[1][-1]
    prior = -0.5 * jnp.sum((x1**2).reshape(n, -1), axis=1) - 0.5 * d * math.log(2 * math.pi)
    return (prior + delta).astype(x.dtype)
