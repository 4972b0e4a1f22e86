r"""Sampler objects with a pure single-step API (Optax-style ``init``/``step``).

Every discrete sampler is a sequence of model evaluations. ``init(schedule, x)`` returns a
:class:`SamplerState` holding the current point ``state.x``, the step ``state.t`` at which the model is to be
evaluated next, and the per-evaluation coefficient tables; ``step(state, model_output, noise)`` consumes one
model output (and, for stochastic samplers, one standard-normal ``noise`` array of ``x``'s shape) and returns the
next state. After ``sampler.nfe(schedule)`` steps ``state.x`` is the sample. Both functions are pure, so they
run inside ``jax.jit``, ``jax.lax.scan`` and ``jax.vmap``; :func:`jaxtt.diffusion.sample` is a ``lax.scan``
over them::

    state = sampler.init(schedule, x_T)
    for k in range(sampler.nfe(schedule)):
        out = model(state.x, jnp.full((N,), state.t))
        state = sampler.step(state, out, noise_k)

Conventions: a grid is a strictly decreasing array :math:`\tau_1 > \dots > \tau_S` of integer steps in
``1..T`` (:mod:`jaxtt.diffusion.timesteps`), the sampler moves from :math:`\tau_i` to :math:`\tau_{i+1}` and from
:math:`\tau_S` to the data level 0; :math:`a_t = \sqrt{\bar\alpha_t}`, :math:`s_t = \sqrt{1-\bar\alpha_t}`,
:math:`\lambda_t = \log(a_t/s_t)`; the model output of any parameterization (``prediction="eps" | "x0" | "v" |
"score"``) is turned into the pair :math:`(\hat x_0, \hat\epsilon)` with :math:`x_t = a_t\hat x_0 + s_t\hat\epsilon`
(:mod:`jaxtt.diffusion.parameterization`), optionally with :math:`\hat x_0` clipped to a box. All coefficients
are formed from :math:`\log\bar\alpha` (``exp``/``expm1`` of differences), and the data term of the
noise-prediction update is applied as :math:`(a_p/a_t)(x_t - s_t\hat\epsilon)`, which keeps float32 within
round-off of float64 for schedules of up to :math:`10^5` steps.

Per-sample timesteps: ``init(..., index=i)`` with ``i`` of shape ``(N,)`` puts each row at its own position of
the grid (``state.t`` then has shape ``(N,)``); rows then advance independently, one position per step.
"""

from __future__ import annotations

import abc
import numbers
from typing import ClassVar

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from jaxtt._validation import check_batch, check_choice, check_int, check_real, is_concrete
from jaxtt.diffusion._checks import check_clip_x0, check_schedule
from jaxtt.diffusion.parameterization import (
    PREDICTIONS,
    inverse_signal_scale,
    per_row,
    signal_and_noise_scales,
    to_data_and_noise,
)
from jaxtt.diffusion.schedule import Schedule
from jaxtt.diffusion.timesteps import SPACINGS, check_grid, timesteps

__all__ = [
    "AbstractSampler",
    "AnnealedLangevin",
    "DDIM",
    "DDPM",
    "DPMSolver",
    "EulerMaruyama",
    "Heun",
    "Langevin",
    "PredictorCorrector",
    "ProbabilityFlowODE",
    "SamplerState",
    "UniPC",
]


class SamplerState(eqx.Module):
    """The state of a discrete sampler between two model evaluations (a pytree).

    Attributes:
        x: the current point, shape ``(N, *event_shape)``: where the model is evaluated next, and the sample
            once ``index`` has reached the sampler's ``nfe``.
        index: model evaluations consumed so far, ``int32`` of shape ``()`` (or ``(N,)`` per row).
        memory: sampler-specific carry (previous model outputs of a multistep solver; ``()`` if none).
        table: per-evaluation coefficients, each with leading axis ``nfe``.
        box: the clipping box ``(lo, hi)`` of :math:`\\hat x_0` as arrays, or None.
        prediction: the model parameterization (static).
    """

    x: Float[Array, "N *event"]
    index: Int[Array, "*B"]
    memory: tuple
    table: dict
    box: tuple | None
    prediction: str = eqx.field(static=True)

    @property
    def nfe(self) -> int:
        """Number of model evaluations of the whole run."""
        return self.table["t"].shape[0]

    @property
    def t(self) -> Int[Array, "*B"]:
        """The step (``int32``) at which the model is to be evaluated next (the last one once done)."""
        return self.table["t"][jnp.minimum(self.index, self.nfe - 1)]

    @property
    def done(self):
        """True once all ``nfe`` evaluations have been consumed."""
        return self.index >= self.nfe

    def coefficients(self) -> dict:
        """The table entries of the current evaluation (scalars, or ``(N,)`` with per-row indices)."""
        i = jnp.minimum(self.index, self.nfe - 1)
        return {k: v[i] for k, v in self.table.items()}


def _as_grid(grid):
    """A user grid as a static tuple of ints (validated against T when the sampler is used)."""
    if grid is None:
        return None
    return tuple(int(v) for v in check_grid(grid, np.iinfo(np.int32).max))


def _as_static_int(value):
    """NumPy and JAX integer scalars as a Python int, so that a sampler's step count stays static under jit."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if hasattr(value, "dtype") and getattr(value, "shape", None) == () and is_concrete(value) \
            and np.issubdtype(value.dtype, np.integer):
        return int(value)
    return value


def _check_steps_or_grid(steps, grid, spacing):
    if (steps is None) == (grid is None):
        raise ValueError("give exactly one of steps (with spacing) and timesteps")
    check_choice(spacing, "spacing", SPACINGS)
    if steps is not None:
        check_int(steps, "steps", minimum=1)


def _grid(schedule, steps, grid, spacing):
    """The evaluation grid of a sampler configured with ``steps`` + ``spacing`` or an explicit ``grid``."""
    if grid is not None:
        return check_grid(np.asarray(grid), schedule.T)
    if steps > schedule.T:
        raise ValueError(f"steps must be <= T = {schedule.T}, got {steps}")
    return timesteps(schedule.T, steps, spacing, schedule=schedule)


def _log_ab_pair(schedule, grid):
    r""":math:`\log\bar\alpha` at each grid step and at the next one (0 after the last)."""
    nxt = np.append(grid[1:], 0).astype(np.int32)
    return schedule.log_alpha_bars[np.asarray(grid, np.int32)], schedule.log_alpha_bars[nxt]


def _noise_var(log_ab):
    r""":math:`1 - \bar\alpha = -\mathrm{expm1}(\log\bar\alpha)`."""
    return -jnp.expm1(log_ab)


def _safe_sqrt(v):
    """``sqrt(max(v, 0))`` with a zero (not NaN) derivative at and below 0."""
    positive = v > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, v, 1.0)), 0.0)


def _scaled_data(state, x, out, lab, lab_next):
    r"""``(a_next * x0_hat, eps_hat, x0_hat)`` for the model output ``out`` at ``x``.

    For unclipped noise (or score) predictions the data term is formed as
    :math:`(a_{next}/a_t)(x_t - s_t\hat\epsilon)` with the ratio from :math:`\log\bar\alpha` differences, which
    stays exact where :math:`a_t` underflows (the DDIM map itself).
    """
    x0, eps = to_data_and_noise(out, x, lab, state.prediction, state.box)
    if state.box is None and state.prediction in ("eps", "score"):
        _, s = signal_and_noise_scales(lab)
        # a_next / a_t, capped like 1/a_t so that a vanishing data term stays 0 instead of 0 * inf
        ratio = inverse_signal_scale(lab - lab_next)
        scaled = per_row(ratio, x) * (x - per_row(s, x) * eps)
    else:
        scaled = per_row(jnp.exp(0.5 * lab_next), x) * x0
    return scaled, eps, x0


class AbstractSampler(eqx.Module):
    """Base class of the discrete samplers: ``grid``, ``nfe``, ``init`` and ``step`` (module docstring).

    Subclasses implement ``grid(schedule)``, ``_table(schedule, dtype)`` (per-evaluation coefficients, with
    the evaluation steps under key ``"t"``) and ``_update(state, c, out, noise)``; they set ``stochastic``.

    Examples:
        >>> from jaxtt.diffusion import DDIM, DDPM, Heun, PredictorCorrector, linear_schedule
        >>> schedule = linear_schedule(50)
        >>> samplers = [DDPM(), DDIM(steps=10), Heun(steps=10), PredictorCorrector(DDIM(steps=10))]
        >>> all(isinstance(s, AbstractSampler) for s in samplers), [s.nfe(schedule) for s in samplers]
        (True, [50, 10, 19, 20])
        >>> DDIM(steps=4).grid(schedule).tolist()
        [50, 34, 17, 1]
    """

    stochastic: ClassVar[bool] = True

    @abc.abstractmethod
    def grid(self, schedule: Schedule) -> np.ndarray:
        """The steps at which the model is evaluated, one per evaluation (``int32``, length ``nfe``)."""

    def nfe(self, schedule: Schedule) -> int:
        """Number of model evaluations of a run on ``schedule``."""
        return int(len(self.grid(schedule)))

    def resolve(self, schedule: Schedule) -> AbstractSampler:
        """The same sampler with its grid fixed for ``schedule`` (a grid that depends on the schedule's values,
        ``spacing="log_snr"``, is computed here, outside any ``jit``)."""
        return self

    @abc.abstractmethod
    def _table(self, schedule: Schedule, dtype) -> dict:
        """Per-evaluation coefficient arrays (leading axis ``nfe``), including ``"t"``."""

    @abc.abstractmethod
    def _update(self, state: SamplerState, c: dict, out, noise):
        """``(x_next, memory_next)`` after consuming ``out`` at the current evaluation."""

    def _memory(self, x) -> tuple:
        return ()

    def init(
        self,
        schedule: Schedule,
        x: Float[Array, "N *event"],
        *,
        prediction: str = "eps",
        clip_x0: float | tuple[float, float] | None = None,
        index: int | Int[Array, " N"] = 0,
    ) -> SamplerState:
        r"""The state at the start of a run from ``x`` (e.g. :math:`x_T \sim N(0, I)`).

        Args:
            schedule: the noise schedule.
            x: the starting point ``(N, *event_shape)``; its floating dtype is the sampling dtype.
            prediction: what the model outputs: ``"eps"``, ``"x0"``, ``"v"`` or ``"score"``.
            clip_x0: None, a positive ``c`` (the box ``[-c, c]``) or ``(lo, hi)``: clip :math:`\hat x_0` at
                every step (diffusers' ``clip_sample``), the last step returning the clipped prediction.
            index: the position in the grid to start from: an int, or one per row (``(N,)``).
        """
        schedule = check_schedule(schedule)
        x = check_batch(x, "x")
        check_choice(prediction, "prediction", PREDICTIONS)
        box = check_clip_x0(clip_x0)
        sampler = self.resolve(schedule)
        nfe = sampler.nfe(schedule)
        if isinstance(index, numbers.Integral) and not isinstance(index, bool):
            index = check_int(index, "index", minimum=0, maximum=nfe)
        else:
            index = jnp.asarray(index)
            if not jnp.issubdtype(index.dtype, jnp.integer) or index.ndim > 1 or (
                index.ndim == 1 and index.shape[0] != x.shape[0]
            ):
                raise ValueError(f"index must be an int or an integer array of shape ({x.shape[0]},)")
            if is_concrete(index) and index.size and (int(index.min()) < 0 or int(index.max()) > nfe):
                raise ValueError(f"index must lie in 0..nfe = 0..{nfe}")
        return sampler.init_unchecked(schedule, x, prediction, box, index)

    def init_unchecked(self, schedule, x, prediction, box, index=0) -> SamplerState:
        """:meth:`init` without argument checks (``box`` already a validated pair or None)."""
        dtype = x.dtype
        table = {k: (v.astype(dtype) if jnp.issubdtype(v.dtype, jnp.floating) else v)
                 for k, v in self._table(schedule, dtype).items()}
        if box is not None:
            box = tuple(jnp.asarray(b, dtype=dtype) for b in box)
        return SamplerState(
            x=x, index=jnp.asarray(index, dtype=jnp.int32), memory=self._memory(x), table=table, box=box,
            prediction=prediction,
        )

    def step(
        self,
        state: SamplerState,
        model_output: Float[Array, "N *event"],
        noise: Float[Array, "N *event"] | None = None,
    ) -> SamplerState:
        """Consume one model output (evaluated at ``state.x``, ``state.t``) and return the next state.

        ``noise`` is a standard-normal array of ``state.x``'s shape, required by stochastic samplers and
        ignored by deterministic ones. Rows whose run is already complete are left unchanged.
        """
        if not isinstance(state, SamplerState):
            raise TypeError(f"state must be a SamplerState from init, got {type(state).__name__}")
        if getattr(model_output, "shape", None) != state.x.shape:
            raise ValueError(
                f"model_output must have the shape of state.x {tuple(state.x.shape)}, "
                f"got {getattr(model_output, 'shape', type(model_output).__name__)}"
            )
        if self.stochastic:
            if noise is None:
                raise ValueError(f"{type(self).__name__} is stochastic: pass noise (standard normal, x's shape)")
            if getattr(noise, "shape", None) != state.x.shape:
                raise ValueError(f"noise must have the shape of state.x {tuple(state.x.shape)}")
        return self.step_unchecked(state, model_output, noise)

    def step_unchecked(self, state, model_output, noise=None) -> SamplerState:
        """:meth:`step` without argument checks."""
        x = state.x
        out = jnp.asarray(model_output).astype(x.dtype)
        if noise is not None:
            noise = jnp.asarray(noise).astype(x.dtype)
        new_x, memory = self._update(state, state.coefficients(), out, noise)
        active = ~state.done

        def keep(new, old):
            mask = active.reshape(active.shape + (1,) * (new.ndim - active.ndim)) if active.ndim else active
            return jnp.where(mask, new, old)

        new_x = keep(new_x, x)
        memory = jax.tree.map(keep, memory, state.memory)
        return eqx.tree_at(lambda s: (s.x, s.index, s.memory), state,
                           (new_x, state.index + active.astype(jnp.int32), memory))


class AbstractGridSampler(AbstractSampler):
    """A sampler on a grid of steps, given by ``steps`` (with a named ``spacing``) or by explicit ``timesteps``
    (:mod:`jaxtt.diffusion.timesteps`); exactly one of the two, unless the sampler defaults to every step."""

    steps: int | None = eqx.field(default=None, converter=_as_static_int)
    timesteps: tuple | None = eqx.field(default=None, converter=_as_grid)
    spacing: str = "linspace"
    every_step_by_default: ClassVar[bool] = False

    def __check_init__(self):
        if not (self.every_step_by_default and self.steps is None and self.timesteps is None):
            _check_steps_or_grid(self.steps, self.timesteps, self.spacing)

    def steps_grid(self, schedule: Schedule) -> np.ndarray:
        """The grid of steps :math:`\\tau_1 > \\dots > \\tau_S` on ``schedule``."""
        if self.steps is None and self.timesteps is None:
            return np.arange(schedule.T, 0, -1, dtype=np.int32)
        return _grid(schedule, self.steps, self.timesteps, self.spacing)

    def grid(self, schedule):
        return self.steps_grid(schedule)

    def resolve(self, schedule):
        if self.spacing == "log_snr" and self.steps is not None:
            grid = tuple(int(v) for v in self.steps_grid(schedule))
            return eqx.tree_at(lambda s: (s.steps, s.timesteps, s.spacing), self, (None, grid, "linspace"),
                               is_leaf=lambda v: v is None)
        return self


class DDPM(AbstractSampler):
    r"""Ancestral sampling (Ho et al. 2020, Algorithm 2) on a grid: from :math:`t` to :math:`p` draw from the
    posterior :math:`q(x_p \mid x_t, \hat x_0)`,

    .. math::
        x_p = \frac{a_p\beta_{t|p}}{s_t^2}\hat x_0 + \frac{a_t s_p^2}{a_p s_t^2}x_t + \sigma z,\qquad
        \beta_{t|p} = 1 - \frac{\bar\alpha_t}{\bar\alpha_p},

    with :math:`\sigma^2 = \beta_{t|p}` (``variance="beta"``) or the posterior variance
    :math:`\tilde\beta = \frac{s_p^2}{s_t^2}\beta_{t|p}` (``"beta_tilde"``, diffusers' ``fixed_small``), and no
    noise in the last step, which returns :math:`\hat x_0`. On the full grid ``T, ..., 1`` (the default) this is
    :math:`x_{t-1} = \alpha_t^{-1/2}(x_t - \beta_t s_t^{-1}\hat\epsilon) + \sigma_t z`; on a sub-grid it is
    diffusers' ``DDPMScheduler`` with fewer inference steps.

    Args:
        variance: ``"beta"`` or ``"beta_tilde"``.
        timesteps: optional evaluation grid (default: every step ``T, ..., 1``).

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt.data import GaussianMixture
        >>> from jaxtt.diffusion import DDPM, cosine_schedule, sample
        >>> schedule = cosine_schedule(50)
        >>> data = GaussianMixture(jnp.ones(1), jnp.zeros((1, 2)), 0.25 * jnp.eye(2)[None])  # N(0, 0.5² I)
        >>> eps = lambda x, t: data.optimal_eps(x, t, schedule)  # the exact noise model
        >>> out = sample(eps, schedule, DDPM(), jax.random.key(0), (2000, 2))  # every step T, ..., 1
        >>> out.samples.shape, abs(float(out.samples.std()) - 0.5) < 0.05
        ((2000, 2), True)
    """

    variance: str = "beta"
    timesteps: tuple | None = eqx.field(default=None, converter=_as_grid)

    def __check_init__(self):
        check_choice(self.variance, "variance", ("beta", "beta_tilde"))

    def grid(self, schedule):
        if self.timesteps is None:
            return np.arange(schedule.T, 0, -1, dtype=np.int32)
        return check_grid(np.asarray(self.timesteps), schedule.T)

    def _table(self, schedule, dtype):
        grid = self.grid(schedule)
        lab, lab_next = _log_ab_pair(schedule, grid)
        beta = -jnp.expm1(lab - lab_next)
        var_t, var_p = _noise_var(lab), _noise_var(lab_next)
        sigma2 = beta if self.variance == "beta" else var_p / var_t * beta
        last = np.arange(len(grid)) == len(grid) - 1
        return {
            "t": jnp.asarray(grid),
            "lab": lab,
            "lab_next": lab_next,
            "coef_xt": jnp.exp(0.5 * (lab - lab_next)) * var_p / var_t,
            "coef_x0": beta / var_t,
            "sigma": jnp.where(last, 0.0, jnp.sqrt(sigma2)),
        }

    def _update(self, state, c, out, noise):
        x = state.x
        scaled, _, _ = _scaled_data(state, x, out, c["lab"], c["lab_next"])
        new = per_row(c["coef_xt"], x) * x + per_row(c["coef_x0"], x) * scaled
        return new + per_row(c["sigma"], x) * noise, ()


class DDIM(AbstractGridSampler):
    r"""DDIM (Song, Meng & Ermon 2021, eq. 12 and 16): from :math:`t` to :math:`p`

    .. math::
        x_p = a_p\hat x_0 + \sqrt{s_p^2 - \sigma^2}\,\hat\epsilon + \sigma z,\qquad
        \sigma = \eta\frac{s_p}{s_t}\sqrt{1 - \frac{\bar\alpha_t}{\bar\alpha_p}},

    deterministic for ``eta = 0`` (a first-order solver of the probability-flow ODE; equal to DPM-Solver
    order 1), DDPM with :math:`\tilde\beta` for ``eta = 1`` on the full grid. The last step returns
    :math:`\hat x_0`.

    Args:
        steps: number of steps (with ``spacing``), or
        timesteps: an explicit strictly decreasing grid in ``1..T``.
        spacing: ``"linspace"`` (default), ``"leading"``, ``"trailing"`` or ``"log_snr"``.
        eta: stochasticity in ``[0, 1]`` (a float or a traced scalar; differentiable).

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt.data import GaussianMixture
        >>> from jaxtt.diffusion import DDIM, cosine_schedule, sample
        >>> schedule = cosine_schedule(50)
        >>> data = GaussianMixture(jnp.ones(1), jnp.zeros((1, 2)), 0.25 * jnp.eye(2)[None])  # N(0, 0.5² I)
        >>> eps = lambda x, t: data.optimal_eps(x, t, schedule)  # the exact noise model
        >>> out = sample(eps, schedule, DDIM(steps=50), jax.random.key(0), (2000, 2))  # deterministic (eta = 0)
        >>> out.samples.shape, abs(float(out.samples.std()) - 0.5) < 0.05
        ((2000, 2), True)
    """

    eta: float | Array = 0.0

    def __check_init__(self):
        _check_eta(self.eta)

    @property
    def stochastic(self):  # type: ignore[override]
        return not (isinstance(self.eta, numbers.Real) and float(self.eta) == 0.0)

    def _table(self, schedule, dtype):
        grid = self.grid(schedule)
        lab, lab_next = _log_ab_pair(schedule, grid)
        var_t, var_p = _noise_var(lab), _noise_var(lab_next)
        sigma = self.eta * jnp.sqrt(var_p / var_t) * jnp.sqrt(-jnp.expm1(lab - lab_next))
        return {"t": jnp.asarray(grid), "lab": lab, "lab_next": lab_next, "sigma": sigma,
                "direction": _safe_sqrt(var_p - sigma**2)}

    def _update(self, state, c, out, noise):
        x = state.x
        scaled, eps, _ = _scaled_data(state, x, out, c["lab"], c["lab_next"])
        new = scaled + per_row(c["direction"], x) * eps
        return (new if noise is None else new + per_row(c["sigma"], x) * noise), ()


def _check_eta(eta):
    if isinstance(eta, numbers.Real) and not isinstance(eta, bool):
        check_real(eta, "eta", minimum=0.0, maximum=1.0)
        return
    if not hasattr(eta, "dtype"):  # None, strings, lists: not a scalar
        raise TypeError(f"eta must be a real scalar in [0, 1], got {type(eta).__name__} {eta!r}")
    eta = jnp.asarray(eta)
    if eta.ndim != 0 or not jnp.issubdtype(eta.dtype, jnp.floating):
        raise TypeError(f"eta must be a real scalar, got {eta!r}")
    if is_concrete(eta) and not 0.0 <= float(eta) <= 1.0:
        raise ValueError(f"eta must lie in [0, 1], got {float(eta)}")


class DPMSolver(AbstractGridSampler):
    r"""Multistep DPM-Solver (Lu et al. 2022) and DPM-Solver++ (Lu et al. 2023) of order 1–3 on the discrete
    schedule, in log-SNR time :math:`\lambda_t = \log(a_t/s_t)`.

    For the step :math:`s_0 = \tau_i \to t = \tau_{i+1}` with :math:`h = \lambda_t - \lambda_{s_0}`, previous
    evaluations :math:`s_1 = \tau_{i-1}`, :math:`s_2 = \tau_{i-2}`, :math:`r_0 = (\lambda_{s_0}-\lambda_{s_1})/h`,
    :math:`r_1 = (\lambda_{s_1}-\lambda_{s_2})/h`, and the model's data predictions :math:`m_k = \hat x_0(s_k)`
    (``variant="++"``), DPM-Solver++ (Lu et al. 2023, Alg. 2, "midpoint" second order; third order as in
    diffusers) reads

    .. math::
        x_t = \frac{s_t}{s_{s_0}}x_{s_0} + a_t(1 - e^{-h})\,D_0
        + \begin{cases} \tfrac12 a_t(1-e^{-h})\,D_1 & \text{order 2}\\
        a_t\big(1 - \tfrac{1-e^{-h}}{h}\big)D_1 - a_t\big(\tfrac{h - (1-e^{-h})}{h^2} - \tfrac12\big)D_2
        & \text{order 3}\end{cases}

    with :math:`D_0 = m_0`; order 2: :math:`D_1 = (m_0 - m_1)/r_0`; order 3:
    :math:`D_{1,0} = (m_0 - m_1)/r_0`, :math:`D_{1,1} = (m_1 - m_2)/r_1`,
    :math:`D_1 = D_{1,0} + \frac{r_0}{r_0+r_1}(D_{1,0}-D_{1,1})`, :math:`D_2 = \frac{D_{1,0}-D_{1,1}}{r_0+r_1}`.
    ``variant=""`` is the noise-prediction DPM-Solver (Lu et al. 2022): the same with :math:`m_k = \hat\epsilon(s_k)`
    and :math:`x_t = \frac{a_t}{a_{s_0}}x_{s_0} - s_t(e^h-1)D_0 - \tfrac12 s_t(e^h-1)D_1` (order 2),
    :math:`\dots - s_t(\tfrac{e^h-1}{h}-1)D_1 - s_t(\tfrac{e^h-1-h}{h^2}-\tfrac12)D_2` (order 3).
    The first-order part of both is the DDIM step, computed as such.

    Lower orders are used where the history is short (warm-up) and at the end as in diffusers'
    ``DPMSolverMultistepScheduler(lower_order_final=True, final_sigmas_type="zero")``: the last step (to
    :math:`\lambda = \infty`, which returns :math:`\hat x_0`) is first order, and with fewer than 15 steps the
    second-to-last is at most second order.

    Args:
        steps / timesteps / spacing: the grid, as for :class:`DDIM` (``spacing="log_snr"`` is the paper's).
        order: 1, 2 (default) or 3.
        variant: ``"++"`` (default, data prediction) or ``""`` (noise prediction).

    Examples:
        A hand-written loop over the pure step (what :func:`jaxtt.diffusion.sample` scans):

        >>> import jax, jax.numpy as jnp
        >>> from jaxtt.diffusion import DPMSolver, linear_schedule
        >>> schedule, solver = linear_schedule(1000), DPMSolver(steps=10, order=3)
        >>> state = solver.init(schedule, jax.random.normal(jax.random.key(0), (4, 2)))
        >>> model = lambda x, t: 0.9 * x
        >>> for _ in range(solver.nfe(schedule)):
        ...     state = solver.step(state, model(state.x, jnp.full((4,), state.t)))
        >>> bool(state.done), state.x.shape
        (True, (4, 2))
    """

    order: int = 2
    variant: str = "++"
    stochastic: ClassVar[bool] = False

    def __check_init__(self):
        check_int(self.order, "order", minimum=1, maximum=3)
        check_choice(self.variant, "variant", ("++", ""))

    def orders(self, schedule) -> np.ndarray:
        """The order used at each step (warm-up and final lowering as in diffusers)."""
        n = len(self.grid(schedule))
        orders = np.minimum(self.order, np.arange(n) + 1)
        if n >= 2 and n < 15:
            orders[n - 2] = min(orders[n - 2], 2)
        orders[n - 1] = 1
        return orders.astype(np.int32)

    def _table(self, schedule, dtype):
        grid = self.grid(schedule)
        n = len(grid)
        lab, lab_next = _log_ab_pair(schedule, grid)
        orders = self.orders(schedule)
        # log-SNR at each grid step (finite: steps >= 1); lam_next is used only where the order is > 1
        lam = 0.5 * (lab - jnp.log(_noise_var(lab)))
        nxt_ok = np.arange(n) < n - 1
        lam_next = jnp.concatenate([lam[1:], lam[-1:] + 1.0])
        h = jnp.where(nxt_ok, lam_next - lam, 1.0)
        prev1 = jnp.concatenate([lam[:1] - 1.0, lam[:-1]])
        prev2 = jnp.concatenate([lam[:1] - 1.0, lam[:1] - 2.0, lam[:-2]])[:n]
        r0 = jnp.where(orders >= 2, (lam - prev1) / h, 1.0)
        r1 = jnp.where(orders >= 3, (prev1 - prev2) / h, 1.0)
        a_next, s_next = signal_and_noise_scales(lab_next)
        if self.variant == "++":
            phi1 = -jnp.expm1(-h)
            k2 = 0.5 * a_next * phi1
            k31 = a_next * (1.0 - phi1 / h)
            k32 = -a_next * ((h - phi1) / h**2 - 0.5)
        else:
            e = jnp.expm1(h)
            k2 = -0.5 * s_next * e
            k31 = -s_next * (e / h - 1.0)
            k32 = -s_next * ((e - h) / h**2 - 0.5)
        zero = jnp.zeros_like(h)
        return {
            "t": jnp.asarray(grid),
            "lab": lab,
            "lab_next": lab_next,
            "order": jnp.asarray(orders),
            "r0": r0,
            "r1": r1,
            "k2": jnp.where(orders == 2, k2, zero),
            "k31": jnp.where(orders == 3, k31, zero),
            "k32": jnp.where(orders == 3, k32, zero),
            "s_next": s_next,
        }

    def _memory(self, x):
        return (jnp.zeros_like(x), jnp.zeros_like(x))

    def _update(self, state, c, out, noise):
        x = state.x
        scaled, eps, x0 = _scaled_data(state, x, out, c["lab"], c["lab_next"])
        first = scaled + per_row(c["s_next"], x) * eps
        m0 = x0 if self.variant == "++" else eps
        m1, m2 = state.memory
        r0, r1 = per_row(c["r0"], x), per_row(c["r1"], x)
        d1_0 = (m0 - m1) / r0
        d1_1 = (m1 - m2) / r1
        d1_3 = d1_0 + r0 / (r0 + r1) * (d1_0 - d1_1)
        d2 = (d1_0 - d1_1) / (r0 + r1)
        new = first + per_row(c["k2"], x) * d1_0 + per_row(c["k31"], x) * d1_3 + per_row(c["k32"], x) * d2
        return new, (m0, m1)


class UniPC(AbstractGridSampler):
    r"""UniPC (Zhao et al. 2023, "UniPC: A Unified Predictor-Corrector Framework for Fast Sampling of Diffusion
    Models"): the multistep data-prediction predictor UniP-p with the :math:`B(h) = e^{h} - 1` variant ("bh2")
    and the corrector UniC, which reuses the model evaluation at the new point (no extra evaluations), as in
    diffusers' ``UniPCMultistepScheduler`` (its defaults: ``predict_x0=True``, ``solver_type="bh2"``,
    ``lower_order_final=True``, final step to :math:`\lambda = \infty`).

    For the step :math:`s_0 = \tau_k \to t = \tau_{k+1}` with :math:`h = \lambda_t - \lambda_{s_0}`,
    :math:`r_i = (\lambda_{s_i} - \lambda_{s_0})/h` and :math:`D_i = (m_i - m_0)/r_i` (data predictions
    :math:`m_i` at earlier steps :math:`s_i`):

    .. math::
        \tilde x_t = \frac{s_t}{s_{s_0}}x_{s_0} - a_t(e^{-h} - 1)\,m_0 - a_t B(-h)\sum_i \rho^p_i D_i,

    and once :math:`m_t = \hat x_0(\tilde x_t)` is known (at the next step's evaluation), the corrected point

    .. math::
        x_t = \frac{s_t}{s_{s_0}}x_{s_0} - a_t(e^{-h} - 1)\,m_0
        - a_t B(-h)\Big(\sum_i \rho^c_i D_i + \rho^c_t (m_t - m_0)\Big),

    where :math:`\rho^p` solves the order conditions :math:`\sum_i \rho_i r_i^{k-1} = b_k` of Zhao et al.
    (Alg. 2; :math:`\rho^p = 1/2` for order 2) and :math:`\rho^c` the same system including :math:`r_t = 1`
    (:math:`\rho^c = 1/2` for order 1). The order at step :math:`k` is
    :math:`\min(\text{order}, S - k, k + 1)`; the predictor of order 2 is DPM-Solver++(2).

    Args:
        steps / timesteps / spacing: the grid, as for :class:`DDIM`.
        order: 1, 2 (default) or 3.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt.data import GaussianMixture
        >>> from jaxtt.diffusion import UniPC, cosine_schedule, sample
        >>> schedule = cosine_schedule(50)
        >>> data = GaussianMixture(jnp.ones(1), jnp.zeros((1, 2)), 0.25 * jnp.eye(2)[None])  # N(0, 0.5² I)
        >>> eps = lambda x, t: data.optimal_eps(x, t, schedule)  # the exact noise model
        >>> out = sample(eps, schedule, UniPC(steps=25), jax.random.key(0), (2000, 2))
        >>> out.samples.shape, abs(float(out.samples.std()) - 0.5) < 0.05
        ((2000, 2), True)
    """

    order: int = 2
    stochastic: ClassVar[bool] = False

    def __check_init__(self):
        check_int(self.order, "order", minimum=1, maximum=3)

    def _table(self, schedule, dtype):
        grid = self.grid(schedule)
        n = len(grid)
        k = np.arange(n)
        orders = np.minimum(np.minimum(self.order, n - k), k + 1)
        lab, lab_next = _log_ab_pair(schedule, grid)
        lam = 0.5 * (lab - jnp.log(_noise_var(lab)))
        last = k == n - 1
        lam_next = jnp.concatenate([lam[1:], lam[-1:] + 1.0])
        h = jnp.where(last, 1.0, lam_next - lam)  # the last step (to lambda = inf) is first order
        hh = -h
        phi1 = jnp.where(last, -1.0, jnp.expm1(hh))  # e^{-h} - 1, = B(-h) for "bh2"
        rk1 = jnp.where(orders >= 2, (jnp.concatenate([lam[:1] - 1.0, lam[:-1]]) - lam) / h, -1.0)
        rk2 = jnp.where(orders >= 3, (jnp.concatenate([lam[:2] - 2.0, lam[:-2]])[:n] - lam) / h, -2.0)
        hk = phi1 / hh - 1.0
        b1 = hk / phi1
        hk = hk / hh - 0.5
        b2 = 2.0 * hk / phi1
        hk = hk / hh - 1.0 / 6.0
        b3 = 6.0 * hk / phi1
        zero = jnp.zeros_like(h)
        # predictor: order 2 uses rho = 1/2 (as diffusers), order 3 the 2x2 order conditions
        det = rk2 - rk1
        rp1 = jnp.where(orders == 2, 0.5, jnp.where(orders == 3, (b1 * rk2 - b2) / det, 0.0))
        rp2 = jnp.where(orders == 3, (b2 - b1 * rk1) / det, 0.0)
        # corrector of the same step (applied at the next evaluation): the systems including r_t = 1
        rc1_2 = (b1 - b2) / (1.0 - rk1)
        one = jnp.ones_like(h)
        r3 = jnp.stack([jnp.stack([one, one, one], -1), jnp.stack([rk1, rk2, one], -1),
                        jnp.stack([rk1**2, rk2**2, one], -1)], -2)
        rho3 = jnp.linalg.solve(r3, jnp.stack([b1, b2, b3], -1)[..., None])[..., 0]
        rc1 = jnp.where(orders == 2, rc1_2, jnp.where(orders == 3, rho3[:, 0], zero))
        rc2 = jnp.where(orders == 3, rho3[:, 1], zero)
        rcl = jnp.where(orders == 1, 0.5, jnp.where(orders == 2, b1 - rc1_2, rho3[:, 2]))
        var_t, var_next = _noise_var(lab), _noise_var(lab_next)
        sig = jnp.sqrt(var_next / var_t)
        a_next = jnp.exp(0.5 * lab_next)
        predictor = {"sig": sig, "a": a_next, "phi1": phi1, "rk1": rk1, "rk2": rk2, "rp1": rp1, "rp2": rp2}
        corrector = {"sig": sig, "a": a_next, "phi1": phi1, "rk1": rk1, "rk2": rk2, "rc1": rc1, "rc2": rc2,
                     "rcl": rcl}
        shift = lambda v: jnp.concatenate([v[:1], v[:-1]])  # noqa: E731 - step k - 1's entries at evaluation k
        table = {"t": jnp.asarray(grid), "lab": lab, "c_active": jnp.asarray(k > 0)}
        table.update(predictor)
        table.update({f"c_{name}": shift(v) for name, v in corrector.items()})
        return table

    def _memory(self, x):
        return (jnp.zeros_like(x),) * 4

    def _update(self, state, c, out, noise):
        x = state.x
        row = lambda v: per_row(v, x)  # noqa: E731
        m_t, _ = to_data_and_noise(out, x, c["lab"], state.prediction, state.box)
        x_prev, h1, h2, h3 = state.memory
        # UniC for the previous step, with the model output at the point its predictor reached
        base = row(c["c_sig"]) * x_prev - row(c["c_a"] * c["c_phi1"]) * h1
        d1, d2 = (h2 - h1) / row(c["c_rk1"]), (h3 - h1) / row(c["c_rk2"])
        corr = row(c["c_rc1"]) * d1 + row(c["c_rc2"]) * d2 + row(c["c_rcl"]) * (m_t - h1)
        corrected = base - row(c["c_a"] * c["c_phi1"]) * corr
        active = c["c_active"]
        xc = jnp.where(active if jnp.ndim(active) == 0 else row(active) > 0, corrected, x)
        # UniP from the corrected point
        d1, d2 = (h1 - m_t) / row(c["rk1"]), (h2 - m_t) / row(c["rk2"])
        new = (row(c["sig"]) * xc - row(c["a"] * c["phi1"]) * m_t
               - row(c["a"] * c["phi1"]) * (row(c["rp1"]) * d1 + row(c["rp2"]) * d2))
        return new, (xc, m_t, h1, h2)


class Heun(AbstractGridSampler):
    r"""Heun's method (second order, two model evaluations per step) on the probability-flow ODE written in the
    time of the linear interpolant, :math:`u_t = s_t/(a_t + s_t)`, :math:`x_u = x_t/(a_t + s_t)`:

    .. math::
        \frac{dx_u}{du} = \hat\epsilon - \hat x_0,\qquad
        d_1 = (\hat\epsilon - \hat x_0)(x_{u_i}),\quad
        \tilde x = x_{u_i} + \Delta u\,d_1,\quad
        x_{u_{i+1}} = x_{u_i} + \tfrac12\Delta u\,\big(d_1 + (\hat\epsilon - \hat x_0)(\tilde x)\big),

    with a final Euler step to :math:`u = 0` (which returns :math:`\hat x_0`), as in Karras et al. 2022
    (Algorithm 1). For a rectified-flow model (:class:`~jaxtt.diffusion.FlowVelocity`) :math:`\hat\epsilon -
    \hat x_0` is its velocity, so this is Heun's method of rectified flow (Liu et al. 2022) on the grid
    :math:`u_{\tau_i}`; the Euler counterpart is :class:`DDIM` with ``eta = 0``. ``nfe = 2 S - 1``.

    Args:
        steps / timesteps / spacing: the grid, as for :class:`DDIM`.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt.data import GaussianMixture
        >>> from jaxtt.diffusion import Heun, cosine_schedule, sample
        >>> schedule = cosine_schedule(50)
        >>> data = GaussianMixture(jnp.ones(1), jnp.zeros((1, 2)), 0.25 * jnp.eye(2)[None])  # N(0, 0.5² I)
        >>> eps = lambda x, t: data.optimal_eps(x, t, schedule)  # the exact noise model
        >>> out = sample(eps, schedule, Heun(steps=10), jax.random.key(0), (2000, 2))  # 19 evaluations
        >>> out.samples.shape, abs(float(out.samples.std()) - 0.5) < 0.05
        ((2000, 2), True)
    """

    stochastic: ClassVar[bool] = False

    def grid(self, schedule):
        steps = self.steps_grid(schedule)
        return np.concatenate([steps[:1], np.repeat(steps[1:], 2)]).astype(np.int32)

    def _table(self, schedule, dtype):
        steps = self.steps_grid(schedule)
        n = len(steps)
        lab = schedule.log_alpha_bars[np.asarray(steps)]
        a, s = signal_and_noise_scales(lab)
        scale = jnp.concatenate([a + s, jnp.ones((1,), a.dtype)])  # a + s at each step and at t = 0
        u = jnp.concatenate([s / (a + s), jnp.zeros((1,), a.dtype)])
        # evaluation k: phase 0 at step i = k // 2 (predictor from i), phase 1 at step i + 1 (corrector of i)
        k = np.arange(2 * n - 1)
        step = k // 2
        phase = k % 2
        at = np.where(phase == 0, step, step + 1)
        return {"t": jnp.asarray(self.grid(schedule)), "lab": lab[at], "phase": jnp.asarray(phase),
                "du": (u[step + 1] - u[step]), "scale_here": scale[at], "scale_next": scale[step + 1]}

    def _memory(self, x):
        return (jnp.zeros_like(x), jnp.zeros_like(x))

    def _update(self, state, c, out, noise):
        x = state.x
        x0, eps = to_data_and_noise(out, x, c["lab"], state.prediction, state.box)
        d = eps - x0
        x_u_prev, d1_prev = state.memory
        x_u = x / per_row(c["scale_here"], x)
        du = per_row(c["du"], x)
        first = c["phase"] == 0
        predictor = (x_u + du * d) * per_row(c["scale_next"], x)
        corrected = (x_u_prev + 0.5 * du * (d1_prev + d)) * per_row(c["scale_next"], x)
        mask = first if jnp.ndim(first) == 0 else per_row(first, x) > 0
        new = jnp.where(mask, predictor, corrected)
        memory = (jnp.where(mask, x_u, x_u_prev), jnp.where(mask, d, d1_prev))
        return new, memory


class EulerMaruyama(AbstractGridSampler):
    r"""Euler–Maruyama on the reverse-time VP SDE (Song et al. 2021, eq. 6 and the score_sde sampler):

    .. math::
        x_p = x_t + \beta(s)\Big(\tfrac12 x_t + \nabla\log q_t(x_t)\Big)\Delta s + \sqrt{\beta(s)\Delta s}\,z,
        \qquad \nabla\log q_t = -\hat\epsilon/s_t,\quad \Delta s = (t - p)/T,

    with :math:`\beta(s)` the continuous rate of the schedule at :math:`s = t/T`
    (:meth:`Schedule.beta_continuous`). The last step adds no noise (score_sde's "noise removal").

    Args:
        steps / timesteps / spacing: the grid, as for :class:`DDIM` (default: ``steps=T``, every step).

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt.data import GaussianMixture
        >>> from jaxtt.diffusion import EulerMaruyama, cosine_schedule, sample
        >>> schedule = cosine_schedule(50)
        >>> data = GaussianMixture(jnp.ones(1), jnp.zeros((1, 2)), 0.25 * jnp.eye(2)[None])  # N(0, 0.5² I)
        >>> eps = lambda x, t: data.optimal_eps(x, t, schedule)  # the exact noise model
        >>> out = sample(eps, schedule, EulerMaruyama(), jax.random.key(0), (2000, 2))
        >>> out.samples.shape, abs(float(out.samples.std()) - 0.5) < 0.05
        ((2000, 2), True)
    """

    every_step_by_default: ClassVar[bool] = True

    def _table(self, schedule, dtype):
        grid = self.grid(schedule)
        lab, _ = _log_ab_pair(schedule, grid)
        nxt = np.append(grid[1:], 0)
        ds = jnp.asarray((grid - nxt) / schedule.T, dtype=schedule.dtype)
        beta = schedule.beta_continuous(jnp.asarray(grid / schedule.T, dtype=schedule.dtype))
        last = np.arange(len(grid)) == len(grid) - 1
        return {"t": jnp.asarray(grid), "lab": lab, "drift": beta * ds,
                "sigma": jnp.where(last, 0.0, jnp.sqrt(beta * ds))}

    def _update(self, state, c, out, noise):
        x = state.x
        _, eps = to_data_and_noise(out, x, c["lab"], state.prediction, state.box)
        _, s = signal_and_noise_scales(c["lab"])
        score = -eps / per_row(s, x)
        new = x + per_row(c["drift"], x) * (0.5 * x + score)
        return new + per_row(c["sigma"], x) * noise, ()


class AnnealedLangevin(AbstractSampler):
    r"""Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1) on the noise levels of a DDPM schedule.

    The levels are the ``levels`` steps of the ``"linspace"`` grid, :math:`\sigma_i = s_{\tau_i}`; at each,
    ``n_steps`` updates

    .. math::
        x \leftarrow x + \frac{a_i}{2}\nabla\log q_{\tau_i}(x) + \sqrt{a_i}\,z,\qquad
        a_i = \varepsilon\,\sigma_i^2/\sigma_{\min}^2,

    with :math:`\varepsilon` = ``step_size`` and :math:`\sigma_{\min}` the smallest level. The result targets
    :math:`q(x_{\tau_L})` (no final denoising step). For a Gaussian target :math:`N(m, \lambda)` the unadjusted
    chain converges to :math:`N(m, \lambda/(1 - a/(4\lambda)))`.

    Args:
        levels: number of noise levels, ``1 <= levels <= T``.
        n_steps: updates per level, ``>= 1``.
        step_size: :math:`\varepsilon > 0`.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt.data import GaussianMixture
        >>> from jaxtt.diffusion import AnnealedLangevin, cosine_schedule, sample
        >>> schedule = cosine_schedule(50)
        >>> data = GaussianMixture(jnp.ones(1), jnp.zeros((1, 2)), 0.25 * jnp.eye(2)[None])  # N(0, 0.5² I)
        >>> eps = lambda x, t: data.optimal_eps(x, t, schedule)  # the exact noise model
        >>> langevin = AnnealedLangevin(levels=50, n_steps=5, step_size=1e-3)  # targets q(x_1)
        >>> out = sample(eps, schedule, langevin, jax.random.key(0), (2000, 2))
        >>> out.samples.shape, abs(float(out.samples.std()) - 0.5) < 0.05
        ((2000, 2), True)
    """

    levels: int
    n_steps: int
    step_size: float

    def __check_init__(self):
        check_int(self.levels, "levels", minimum=1)
        check_int(self.n_steps, "n_steps", minimum=1)
        check_real(self.step_size, "step_size", minimum=0.0, strict_minimum=True)

    def grid(self, schedule):
        if self.levels > schedule.T:
            raise ValueError(f"levels must be <= T = {schedule.T}, got {self.levels}")
        return np.repeat(timesteps(schedule.T, self.levels), self.n_steps).astype(np.int32)

    def _table(self, schedule, dtype):
        levels = timesteps(schedule.T, self.levels)
        std = schedule.noise_std_at(jnp.asarray(levels))
        a = self.step_size * (std / std[-1]) ** 2
        return {"t": jnp.asarray(self.grid(schedule)),
                "lab": jnp.repeat(schedule.log_alpha_bars[levels], self.n_steps),
                "drift": jnp.repeat(0.5 * a / std, self.n_steps),
                "sigma": jnp.repeat(jnp.sqrt(a), self.n_steps)}

    def _update(self, state, c, out, noise):
        x = state.x
        _, eps = to_data_and_noise(out, x, c["lab"], state.prediction, state.box)
        return x - per_row(c["drift"], x) * eps + per_row(c["sigma"], x) * noise, ()


class Langevin(eqx.Module):
    r"""The Langevin corrector of Song et al. 2021 (Algorithm 4, VP version as in score_sde): ``n_steps``
    updates at the current noise level,

    .. math::
        x \leftarrow x + \epsilon\,g + \sqrt{2\epsilon}\,z,\qquad
        \epsilon = 2\alpha_t\Big(r\frac{\overline{\|z\|}}{\overline{\|g\|}}\Big)^2,\quad g = \nabla\log q_t(x),

    with :math:`r` = ``snr``, :math:`\alpha_t = 1 - \beta_t` and the norms averaged over the batch (as
    score_sde does; the step size couples the rows of a batch).

    Args:
        snr: target signal-to-noise ratio :math:`r > 0` (0.16 in Song et al. for CIFAR-10).
        n_steps: corrector updates per predictor step, ``>= 1``.

    Examples:
        >>> from jaxtt.diffusion import DDIM, PredictorCorrector, linear_schedule
        >>> pc = PredictorCorrector(DDIM(steps=10), Langevin(snr=0.16, n_steps=2))
        >>> pc.nfe(linear_schedule(50))  # two corrector updates before each of the 10 predictor steps
        30
    """

    snr: float = 0.16
    n_steps: int = 1

    def __check_init__(self):
        check_real(self.snr, "snr", minimum=0.0, strict_minimum=True)
        check_int(self.n_steps, "n_steps", minimum=1)


class PredictorCorrector(AbstractSampler):
    r"""Predictor–corrector sampling (Song et al. 2021, Algorithm 1/2 and score_sde's ``pc_sampler``): at each
    grid step of the ``predictor``, first ``corrector.n_steps`` Langevin updates at that noise level, then the
    predictor step. Each update is one model evaluation, so ``nfe = S (n_steps + 1)``.

    Args:
        predictor: a single-evaluation sampler (:class:`DDPM`, :class:`DDIM`, :class:`EulerMaruyama`,
            :class:`DPMSolver`).
        corrector: a :class:`Langevin` corrector.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt.data import GaussianMixture
        >>> from jaxtt.diffusion import DDIM, Langevin, PredictorCorrector, cosine_schedule, sample
        >>> schedule = cosine_schedule(50)
        >>> data = GaussianMixture(jnp.ones(1), jnp.zeros((1, 2)), 0.25 * jnp.eye(2)[None])  # N(0, 0.5² I)
        >>> eps = lambda x, t: data.optimal_eps(x, t, schedule)  # the exact noise model
        >>> pc = PredictorCorrector(DDIM(steps=25), Langevin(snr=0.16))
        >>> out = sample(eps, schedule, pc, jax.random.key(0), (2000, 2))
        >>> int(out.steps), abs(float(out.samples.std()) - 0.5) < 0.05
        (50, True)
    """

    predictor: AbstractSampler
    corrector: Langevin = Langevin()

    def __check_init__(self):
        if not isinstance(self.predictor, (DDPM, DDIM, EulerMaruyama, DPMSolver)):
            raise TypeError(
                "predictor must be DDPM, DDIM, EulerMaruyama or DPMSolver, got " + type(self.predictor).__name__
            )
        if not isinstance(self.corrector, Langevin):
            raise TypeError(f"corrector must be a Langevin corrector, got {type(self.corrector).__name__}")

    def grid(self, schedule):
        return np.repeat(self.predictor.grid(schedule), self.corrector.n_steps + 1).astype(np.int32)

    def resolve(self, schedule):
        return eqx.tree_at(lambda s: s.predictor, self, self.predictor.resolve(schedule))

    def _table(self, schedule, dtype):
        n = self.corrector.n_steps + 1
        grid = self.grid(schedule)
        return {"t": jnp.asarray(grid), "lab": schedule.log_alpha_bars[grid],
                "alpha": schedule.alphas[grid], "corrector": jnp.asarray(np.arange(len(grid)) % n < n - 1)}

    def init_unchecked(self, schedule, x, prediction, box, index=0):
        if jnp.ndim(index) != 0:
            raise ValueError("PredictorCorrector runs all rows at the same step: index must be an int")
        state = super().init_unchecked(schedule, x, prediction, box, index)
        inner = self.predictor.init_unchecked(schedule, x, prediction, box, jnp.asarray(index) // (
            self.corrector.n_steps + 1))
        return eqx.tree_at(lambda s: s.memory, state, (inner,))

    def _update(self, state, c, out, noise):
        (inner,) = state.memory
        x = state.x
        # corrector (score_sde LangevinCorrector): batch-averaged norms of score and noise
        _, eps = to_data_and_noise(out, x, c["lab"], state.prediction, state.box)
        _, s = signal_and_noise_scales(c["lab"])
        grad = -eps / s
        norm = lambda v: jnp.mean(jnp.sqrt(jnp.sum(v.reshape(v.shape[0], -1) ** 2, axis=1)))  # noqa: E731
        size = 2.0 * c["alpha"] * (self.corrector.snr * norm(noise) / norm(grad)) ** 2
        corrected = x + size * grad + jnp.sqrt(2.0 * size) * noise
        stepped = self.predictor.step_unchecked(inner, out, noise if self.predictor.stochastic else None)
        moved = eqx.tree_at(lambda s: s.x, inner, corrected)
        inner = jax.tree.map(lambda a, b: jnp.where(c["corrector"], a, b), moved, stepped)
        return inner.x, (inner,)


class ProbabilityFlowODE(eqx.Module):
    r"""Adaptive solution of the probability-flow ODE with diffrax (Song et al. 2021, sec. 4.3), in log-SNR time
    (see :mod:`jaxtt.diffusion.ode`). Not a step-by-step sampler: :func:`jaxtt.diffusion.sample` solves it in
    one ``diffrax.diffeqsolve``; the number of model evaluations is the solver's.

    Args:
        solver: a diffrax solver (default ``diffrax.Tsit5()``).
        rtol, atol: tolerances of the PID step-size controller.
        s_min: end time in ``(0, 1)`` (the ODE is singular at 0).
        max_steps: solver step limit.
        integer_t: query the model at rounded integer steps instead of real ``t``.
        save_points: number of evenly spaced times saved when the trajectory is requested.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt.data import GaussianMixture
        >>> from jaxtt.diffusion import ProbabilityFlowODE, cosine_schedule, sample
        >>> schedule = cosine_schedule(50)
        >>> data = GaussianMixture(jnp.ones(1), jnp.zeros((1, 2)), 0.25 * jnp.eye(2)[None])  # N(0, 0.5² I)
        >>> eps = lambda x, t: data.optimal_eps(x, t, schedule)  # the exact noise model
        >>> out = sample(eps, schedule, ProbabilityFlowODE(), jax.random.key(0), (2000, 2))  # adaptive Tsit5
        >>> out.samples.shape, abs(float(out.samples.std()) - 0.5) < 0.05
        ((2000, 2), True)
    """

    solver: diffrax.AbstractSolver = diffrax.Tsit5()
    rtol: float = 1e-5
    atol: float = 1e-5
    s_min: float = 1e-3
    max_steps: int = 4096
    integer_t: bool = False
    save_points: int = 101

    def __check_init__(self):
        if not isinstance(self.solver, diffrax.AbstractSolver):
            raise TypeError(f"solver must be a diffrax solver (e.g. diffrax.Dopri5()), got {self.solver!r}")
        check_real(self.rtol, "rtol", minimum=0.0, strict_minimum=True)
        check_real(self.atol, "atol", minimum=0.0, strict_minimum=True)
        s_min = check_real(self.s_min, "s_min", minimum=0.0, maximum=1.0, strict_minimum=True)
        if s_min >= 1.0:
            raise ValueError(f"s_min must be < 1, got {s_min}")
        check_int(self.max_steps, "max_steps", minimum=1)
        check_int(self.save_points, "save_points", minimum=2)
