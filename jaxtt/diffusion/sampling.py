r"""One entry point for sampling: ``sample(model, schedule, sampler, key, shape, ...)``.

It draws :math:`x_T \sim N(0, I)`, runs the sampler object (:mod:`jaxtt.diffusion.samplers`) as a
``lax.scan`` over its pure ``step`` (or, for :class:`~jaxtt.diffusion.ProbabilityFlowODE`, one diffrax solve)
and returns a :class:`SampleResult`. Key layout, shared by every sampler: ``key`` is split into
``(key_init, key_steps)``; :math:`x_T` is drawn from ``key_init`` and ``key_steps`` is split into one key per
model evaluation, from which that step's standard-normal noise is drawn. The same key therefore gives the same
:math:`x_T` for every sampler, and samplers that coincide mathematically (DDIM with all steps and
``eta = 1`` and DDPM with :math:`\tilde\beta`) coincide draw for draw.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jaxtyping import Array, Float, Int, PRNGKeyArray

from jaxtt._validation import check_bool, check_choice, check_key, check_memory, check_shape, is_concrete
from jaxtt.diffusion._checks import call_model, check_clip_x0, check_model, check_schedule, check_x_init
from jaxtt.diffusion._scan import sampler_scan
from jaxtt.diffusion.ode import solve_probability_flow
from jaxtt.diffusion.parameterization import PREDICTIONS
from jaxtt.diffusion.samplers import AbstractSampler, ProbabilityFlowODE
from jaxtt.diffusion.schedule import Schedule
from jaxtt.sharding import check_mesh, replicate

__all__ = ["SampleResult", "sample"]


class SampleResult(eqx.Module):
    """What :func:`sample` returns (a pytree).

    Attributes:
        samples: the samples, shape ``(N, *event_shape)``.
        trajectory: with ``save="all"``, the iterates from :math:`x_T` on, shape ``(steps + 1, N, *event)``
            (for the ODE sampler: ``save_points`` evenly spaced times); None with ``save="final"``.
        steps: model evaluations of a discrete sampler; solver steps (accepted and rejected) of the ODE.
    """

    samples: Float[Array, "N *event"]
    trajectory: Float[Array, "S N *event"] | None
    steps: Int[Array, ""]


def sample(
    model: Callable[[Array, Array], Array],
    schedule: Schedule,
    sampler: AbstractSampler | ProbabilityFlowODE,
    key: PRNGKeyArray,
    shape: tuple[int, ...],
    *,
    x_init: Float[Array, "N *event"] | None = None,
    prediction: str = "eps",
    clip_x0: float | tuple[float, float] | None = None,
    save: str = "final",
    checkpoint: bool = True,
    mesh: Mesh | None = None,
    axis: str = "data",
) -> SampleResult:
    r"""Draw samples from a diffusion ``model`` with a ``sampler`` object.

    Samplers (each documented with its update formula): :class:`~jaxtt.diffusion.DDPM`,
    :class:`~jaxtt.diffusion.DDIM`, :class:`~jaxtt.diffusion.DPMSolver` (DPM-Solver/DPM-Solver++, orders 1–3),
    :class:`~jaxtt.diffusion.EulerMaruyama` (reverse VP SDE), :class:`~jaxtt.diffusion.PredictorCorrector`,
    :class:`~jaxtt.diffusion.AnnealedLangevin`, :class:`~jaxtt.diffusion.ProbabilityFlowODE` (diffrax).

    The whole run is compiled once per model structure and sampler configuration (``equinox.filter_jit``:
    array leaves of ``model`` are traced, so new parameters reuse the compiled code; a new Python closure
    compiles again). Differentiable: the noise is reparameterised, so ``jax.grad`` of a function of the samples
    with respect to the model's parameters or ``x_init`` is the pathwise gradient; with ``checkpoint=True`` the
    steps are rematerialised in two levels (reverse-mode memory ~ ``sqrt(steps)`` carries).

    A model output that is not finite raises an ``equinox`` runtime error naming the evaluation and its step
    (one ``isfinite`` reduction per step on the device; also inside ``jax.jit``).

    Args:
        model: batched model ``model(x, t)``: ``x`` of shape ``shape``, integer ``t`` of shape ``(N,)`` in
            ``1..T`` (real ``t`` for the ODE sampler), returning ``x``'s shape. Guided models:
            :class:`~jaxtt.diffusion.ClassifierFreeGuidance`, :class:`~jaxtt.diffusion.ClassifierGuidance`.
        schedule: the noise schedule.
        sampler: a sampler object.
        key: PRNG key (module docstring for its layout).
        shape: ``(N, *event_shape)``.
        x_init: optional :math:`x_T` instead of a draw from ``key``; its dtype sets the sampling dtype
            (default: the schedule's).
        prediction: what ``model`` outputs: ``"eps"`` (default), ``"x0"``, ``"v"`` or ``"score"``.
        clip_x0: None, ``c > 0`` (the box ``[-c, c]``) or ``(lo, hi)``: clip the predicted data at every step
            (discrete samplers only; the samples then lie in the box).
        save: ``"final"`` (default) or ``"all"`` (also return the trajectory).
        checkpoint: rematerialise the steps under reverse-mode differentiation.
        mesh: a :class:`jax.sharding.Mesh` (e.g. :func:`jaxtt.sharding.data_mesh`) to sample on: the model is
            replicated and the batch of samples (``x_T``, every step's noise and iterate) is split over ``axis``,
            whose size must divide ``N``; the draws are the same as on one device (JAX's partitionable
            Threefry), so are the samples, up to the model's own floating-point reductions. A non-finite model
            output then raises ``FloatingPointError`` after the run (from the host: an error inside the program
            would stop one device amid the others' collectives). With :class:`~jaxtt.diffusion.ProbabilityFlowODE`
            diffrax's own in-program checks still gather the final state onto one device once (XLA warns of a
            "full rematerialization"); the samples are the same. ``None``: the default device.
        axis: the mesh axis to split the samples over.

    Returns:
        A :class:`SampleResult`.

    Examples:
        >>> import jax
        >>> from jaxtt.diffusion import DDIM, DPMSolver, linear_schedule, sample
        >>> schedule = linear_schedule(1000)
        >>> model = lambda x, t: 0.9 * x   # a stand-in noise model
        >>> out = sample(model, schedule, DPMSolver(steps=10), jax.random.key(0), (4, 2))
        >>> out.samples.shape, int(out.steps)
        ((4, 2), 10)
        >>> x_T = sample(model, schedule, DDIM(steps=5), jax.random.key(0), (4, 2), save="all").trajectory[0]
        >>> bool((x_T == sample(model, schedule, DDIM(steps=50), jax.random.key(0), (4, 2), save="all").trajectory[0]).all())
        True
    """
    schedule = check_schedule(schedule)
    check_model(model, schedule=schedule)
    if not isinstance(sampler, (AbstractSampler, ProbabilityFlowODE)):
        raise TypeError(
            "sampler must be a jaxtt sampler object (DDPM, DDIM, DPMSolver, EulerMaruyama, PredictorCorrector, "
            f"AnnealedLangevin, ProbabilityFlowODE), got {type(sampler).__name__}"
        )
    check_key(key)
    shape = check_shape(shape)
    x_init, dtype = check_x_init(x_init, shape, schedule.dtype)
    check_choice(prediction, "prediction", PREDICTIONS)
    box = check_clip_x0(clip_x0)
    check_choice(save, "save", ("final", "all"))
    check_bool(checkpoint, "checkpoint")
    rows = None
    if mesh is not None:
        devices = check_mesh(mesh, axis)
        if shape[0] % devices:
            raise ValueError(f"shape[0] (the number of samples, {shape[0]}) must be a multiple of the {devices} "
                             f"devices on mesh axis {axis!r}")
        rows = NamedSharding(mesh, PartitionSpec(axis))
        model, x_init = replicate(model, mesh), None if x_init is None else jax.device_put(x_init, rows)
    if isinstance(sampler, ProbabilityFlowODE):
        if box is not None:
            raise ValueError("clip_x0 applies to the discrete samplers, not to ProbabilityFlowODE")
        out = _sample_ode(model, schedule, sampler, key, x_init, shape, dtype, prediction, save == "all", rows)
        return out if rows is None else _checked(out, (_ODE_MESSAGE,))
    sampler = sampler.resolve(schedule)
    grid = sampler.grid(schedule)  # validates the sampler against the schedule (steps <= T, ...)
    if save == "all":  # the trajectory is the one working array that grows with the number of steps
        check_memory((len(grid) + 1) * math.prod(shape) * jnp.dtype(dtype).itemsize, "save",
                     f"the saved trajectories of {len(grid)} steps of shape {shape}",
                     "use save='final', fewer steps, or sample in smaller batches")
    messages = tuple(
        f"the model output is not finite at evaluation {k} (t = {int(t)}) of {type(sampler).__name__}; "
        "check the model (and the dtype of a long schedule)"
        for k, t in enumerate(grid)
    )
    bounds = None if box is None else tuple(jnp.asarray(b, dtype=dtype) for b in box)  # traced: no recompile
    out = _sample(model, schedule, sampler, key, x_init, shape, dtype, prediction, bounds, save == "all",
                  checkpoint, messages, rows)
    return out if rows is None else _checked(out, messages)


def initial_noise_and_keys(key, shape, dtype, x_init, n_steps):
    """``(x_start, step_keys)`` in the key layout of the module docstring."""
    key_init, key_steps = jax.random.split(key)
    x = jax.random.normal(key_init, shape, dtype=dtype) if x_init is None else x_init
    return x, jax.random.split(key_steps, n_steps)


def _split_rows(x, rows):
    """``x`` constrained to the row sharding ``rows`` (``None``: unconstrained)."""
    return x if rows is None else jax.lax.with_sharding_constraint(x, rows)


@eqx.filter_jit
def _sample(model, schedule, sampler, key, x_init, shape, dtype, prediction, box, save, checkpoint, messages,
            rows=None):
    nfe = len(messages)
    x, keys = initial_noise_and_keys(key, shape, dtype, x_init, nfe)
    x = _split_rows(x, rows)
    state = sampler.init_unchecked(schedule, x, prediction, box)
    stochastic = sampler.stochastic
    # the scan carries only what changes; the coefficient tables stay constants of the loop, so the
    # rematerialised carries (checkpoint=True) are O(N) each, not O(N + steps)
    constant = lambda s: eqx.tree_at(lambda s: (s.x, s.index, s.memory), s, (None, None, None))  # noqa: E731
    fixed = constant(state)

    def body(carry, k):
        x, index, memory, bad = carry
        state = eqx.tree_at(lambda s: (s.x, s.index, s.memory), fixed, (x, index, memory),
                            is_leaf=lambda v: v is None)
        t = jnp.full((shape[0],), state.t, dtype=jnp.int32)
        out = call_model(model, x, t)
        noise = _split_rows(jax.random.normal(k, shape, dtype=dtype), rows) if stochastic else None
        bad = jnp.where((bad < 0) & ~jnp.all(jnp.isfinite(out)), index, bad)
        new = sampler.step_unchecked(state, out, noise)
        return new.x, new.index, new.memory, bad

    record = (lambda carry: carry[0]) if save else None
    init = (state.x, state.index, state.memory, jnp.asarray(-1, dtype=jnp.int32))
    (x, _, _, bad), trajectory = sampler_scan(body, init, keys, checkpoint=checkpoint, record=record)
    steps = jnp.asarray(nfe, dtype=jnp.int32)
    if rows is not None:  # checked by the caller: an in-program error would stop one device amid collectives
        return SampleResult(samples=_split_rows(x, rows), trajectory=trajectory, steps=steps), bad
    samples = eqx.branched_error_if(x, bad >= 0, jnp.maximum(bad, 0), messages)
    return SampleResult(samples=samples, trajectory=trajectory, steps=steps)


@eqx.filter_jit
def _sample_ode(model, schedule, ode, key, x_init, shape, dtype, prediction, save, rows=None):
    x, _ = initial_noise_and_keys(key, shape, dtype, x_init, 1)
    x = _split_rows(x, rows)
    ys, steps = solve_probability_flow(model, schedule, x, ode, prediction, save)
    steps = jnp.asarray(steps, jnp.int32)
    if rows is not None:  # checked by the caller, as in _sample
        bad = jnp.where(jnp.all(jnp.isfinite(ys[-1])), -1, 0)
        return SampleResult(samples=_split_rows(ys[-1], rows), trajectory=ys if save else None, steps=steps), bad
    samples = eqx.error_if(ys[-1], ~jnp.all(jnp.isfinite(ys[-1])), _ODE_MESSAGE)
    return SampleResult(samples=samples, trajectory=ys if save else None, steps=steps)


_ODE_MESSAGE = "the probability-flow ODE produced non-finite samples; check the model"


def _checked(out, messages):
    """The result of a run on a mesh after raising for its first non-finite model output (if any)."""
    result, bad = out
    if is_concrete(bad) and int(bad) >= 0:
        raise FloatingPointError(messages[int(bad)])
    return result
