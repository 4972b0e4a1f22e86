"""Eager argument checks specific to the diffusion functions (schedule, time steps, models, clipping box); the
generic ones (keys, batches, shapes) are in :mod:`jaxtt._validation`."""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
import numpy as np

from jaxtt._validation import check_array, check_batch, check_real, check_time_steps, is_concrete
from jaxtt.diffusion.schedule import Schedule


def check_schedule(schedule) -> Schedule:
    """Raise ``TypeError`` unless ``schedule`` is a :class:`Schedule`."""
    if not isinstance(schedule, Schedule):
        raise TypeError(
            f"schedule must be a jaxtt.diffusion.Schedule (e.g. linear_schedule(T)), got {type(schedule).__name__}"
        )
    return schedule


def check_model(model, name: str = "model", schedule=None) -> None:
    """Raise ``TypeError`` unless ``model`` is callable as ``model(x, t)``, and ``ValueError`` when the model
    declares a number of steps ``model.T`` (as FTT denoisers do) that differs from ``schedule.T``."""
    if not callable(model):
        raise TypeError(f"{name} must be callable as {name}(x, t), got {type(model).__name__}")
    model_T = getattr(model, "T", None)
    if schedule is not None and isinstance(model_T, int) and model_T != schedule.T:
        raise ValueError(f"{name} was built for T = {model_T} steps, but the schedule has T = {schedule.T}")


def check_eps_fn(eps_fn) -> None:
    """Raise ``TypeError`` unless ``eps_fn`` is callable."""
    check_model(eps_fn, "eps_fn")


def check_x_init(x_init, shape, dtype):
    """``x_init`` (or a fresh draw when it is None) as an array of ``shape``; returns ``(x_init, dtype)``."""
    if x_init is None:
        return None, dtype
    x_init = check_batch(x_init, "x_init")
    if tuple(x_init.shape) != tuple(shape):
        raise ValueError(f"x_init must have the shape {tuple(shape)} given by shape, got {tuple(x_init.shape)}")
    return x_init, x_init.dtype


def check_timesteps(t, schedule: Schedule, n: int, name: str = "t"):
    """Time steps for a batch of ``n``: integers in ``1..T`` or reals in ``(0, T]``, shape ``()`` or ``(n,)``
    (:func:`jaxtt._validation.check_time_steps` with ``T = schedule.T``)."""
    return check_time_steps(t, schedule.T, name, n=n)


def check_eta(eta):
    """``eta`` in ``[0, 1]`` (value checked when concrete)."""
    if isinstance(eta, numbers.Real) and not isinstance(eta, bool):
        return check_real(eta, "eta", minimum=0.0, maximum=1.0)
    eta = check_array(eta, "eta", floating=True)
    if eta.ndim != 0:
        raise ValueError(f"eta must be a scalar, got shape {tuple(eta.shape)}")
    if is_concrete(eta) and not (0.0 <= float(eta) <= 1.0):
        raise ValueError(f"eta must lie in [0, 1], got {float(eta)}")
    return eta


def call_model(model, x, t, name: str = "model"):
    """``model(x, t)`` checked to return an array of ``x``'s shape, cast to ``x``'s dtype."""
    out = model(x, t)
    shape = getattr(out, "shape", None)
    if shape is None:
        raise TypeError(f"{name} must return an array, got {type(out).__name__}")
    if tuple(shape) != tuple(x.shape):
        raise ValueError(
            f"{name}(x, t) must return an array of x's shape {tuple(x.shape)}, got {tuple(shape)}; "
            f"{name} takes a batch x of shape (N, *event_shape) and t of shape (N,)"
        )
    return jnp.asarray(out).astype(x.dtype)


def call_eps(eps_fn, x, t):
    """:func:`call_model` for a noise model named ``eps_fn``."""
    return call_model(eps_fn, x, t, "eps_fn")


def _scalar_item(value):
    """A concrete 0-d array as its Python scalar; anything else unchanged."""
    if getattr(value, "shape", None) == () and is_concrete(value) and not isinstance(value, numbers.Number):
        return np.asarray(value).item()
    return value


def check_clip_x0(clip_x0) -> tuple[float, float] | None:
    """The clipping box of the predicted data as ``(lo, hi)`` floats, or None when ``clip_x0`` is None.

    A positive finite real ``c`` means ``(-c, c)``; a pair ``(lo, hi)`` of finite reals with ``lo < hi`` is taken
    as given. Raises ``TypeError``/``ValueError`` naming ``clip_x0`` otherwise.
    """
    if clip_x0 is None:
        return None
    if any(not is_concrete(v) for v in jax.tree.leaves(clip_x0)):
        raise TypeError(
            "clip_x0 must be concrete numbers, not traced values: it fixes the form of the compiled sampler "
            "(the bounds themselves enter the computation as arrays, so new bounds do not recompile)"
        )
    clip_x0 = _scalar_item(clip_x0)
    if isinstance(clip_x0, numbers.Real) and not isinstance(clip_x0, bool):
        c = check_real(clip_x0, "clip_x0", minimum=0.0, strict_minimum=True)
        return -c, c
    if isinstance(clip_x0, (str, bytes)) or not hasattr(clip_x0, "__len__") or len(clip_x0) != 2:
        raise TypeError(
            f"clip_x0 must be None, a positive real c (the box [-c, c]) or a pair (lo, hi), got {clip_x0!r}"
        )
    lo, hi = (check_real(_scalar_item(v), f"clip_x0[{i}]") for i, v in enumerate(clip_x0))
    if not lo < hi:
        raise ValueError(f"clip_x0 = (lo, hi) must satisfy lo < hi, got ({lo}, {hi})")
    return lo, hi
