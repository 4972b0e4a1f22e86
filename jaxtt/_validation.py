"""Eager argument checks shared by the public functions of jaxtt.

Every check runs at the public boundary, before any tracing, and raises a
``ValueError`` or ``TypeError`` that names the offending argument. Value checks
(finiteness, ranges of array entries) are skipped for abstract tracers, so the
same public functions stay usable inside a user's ``jax.jit``; shape checks
always run because shapes are static.
"""

from __future__ import annotations

import numbers
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from jaxtt._sizes import host_memory_bytes

__all__ = [
    "is_concrete",
    "check_int",
    "check_real",
    "check_array",
    "check_finite",
    "check_domain",
    "check_choice",
    "check_bool",
    "check_instance",
    "check_sequence",
    "check_key",
    "check_batch",
    "check_shape",
    "check_float_dtype",
    "check_time_steps",
    "check_labels",
    "warn_clamped",
    "device_memory_bytes",
    "check_memory",
]


def is_concrete(x) -> bool:
    """True when ``x`` holds actual values (not an abstract tracer)."""
    return not isinstance(x, jax.core.Tracer)


def check_int(value, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return ``value`` as a Python int, or raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_real(
    value,
    name: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    strict_minimum: bool = False,
) -> float:
    """Return ``value`` as a finite Python float in the given range, or raise naming ``name``.

    ``strict_minimum=True`` requires ``value > minimum`` instead of ``>=``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if minimum is not None:
        if strict_minimum and value <= minimum:
            raise ValueError(f"{name} must be > {minimum}, got {value}")
        if not strict_minimum and value < minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_array(x, name: str, *, ndim: int | None = None, floating: bool = False):
    """Check that ``x`` is array-like with ``ndim`` dimensions; return it as a jax/numpy array.

    Raises ``TypeError`` for non-numeric or complex input (or integer input when ``floating``)
    and ``ValueError`` for a wrong number of dimensions.

    Examples:
        >>> check_array([1.0, 2.0], "x", ndim=1).tolist()
        [1.0, 2.0]
        >>> check_array(np.ones(2, np.complex64), "x")
        Traceback (most recent call last):
        ...
        TypeError: x must be a real array, got dtype complex64
    """
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        try:
            x = np.asarray(x)
        except Exception as err:  # pragma: no cover - exotic objects
            raise TypeError(f"{name} must be an array, got {type(x).__name__}") from err
    if not (np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.bool_)):
        raise TypeError(f"{name} must be a numeric array, got dtype {x.dtype}")
    if np.issubdtype(x.dtype, np.complexfloating):
        raise TypeError(f"{name} must be a real array, got dtype {x.dtype}")
    if floating and not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{name} must be a floating-point array, got dtype {x.dtype}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(x.shape)}")
    return x


def check_finite(x, name: str) -> None:
    """Raise ``ValueError`` if a concrete array ``x`` holds NaN or infinity."""
    if is_concrete(x) and not bool(np.all(np.isfinite(np.asarray(x)))):
        raise ValueError(f"{name} must be finite; it contains NaN or infinity")


def check_domain(domain, name: str = "domain") -> tuple[float, float]:
    """Return ``(a, b)`` as floats with ``a < b``, or raise naming ``name``."""
    try:
        a, b = domain
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a pair (a, b), got {domain!r}") from err
    a = check_real(a, f"{name}[0]")
    b = check_real(b, f"{name}[1]")
    if not a < b:
        raise ValueError(f"{name} must satisfy a < b, got ({a}, {b})")
    return a, b


def check_choice(value, name: str, choices) -> str:
    """Raise ``ValueError`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return value


def check_bool(value, name: str) -> bool:
    """Return ``value`` if it is a Python or NumPy bool, else raise ``TypeError`` naming ``name``."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return bool(value)


def check_instance(value, name: str, cls: type):
    """Return ``value`` if it is an instance of ``cls``, else raise ``TypeError`` naming ``name``.

    Examples:
        >>> check_instance(2.5, "step", float)
        2.5
        >>> check_instance("2.5", "step", float)
        Traceback (most recent call last):
        ...
        TypeError: step must be a float, got str
    """
    if not isinstance(value, cls):
        raise TypeError(f"{name} must be a {cls.__qualname__}, got {type(value).__name__}")
    return value


def check_sequence(value, name: str, what: str, *, nonempty: bool = True) -> tuple:
    """``value`` (a list, tuple or other non-string sequence) as a tuple, or a ``TypeError``/``ValueError`` naming
    ``name`` and saying that it should hold ``what``.

    Examples:
        >>> check_sequence([1, 2], "sizes", "basis sizes")
        (1, 2)
        >>> check_sequence(3, "sizes", "basis sizes")
        Traceback (most recent call last):
        ...
        TypeError: sizes must be a sequence of basis sizes, got int 3
    """
    try:
        if isinstance(value, str | bytes):
            raise TypeError
        value = tuple(value)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of {what}, got {type(value).__name__} {value!r}"[:300]) from None
    if nonempty and not value:
        raise ValueError(f"{name} must hold at least one of {what}, got an empty sequence")
    return value


def check_key(key, name: str = "key"):
    """A single JAX PRNG key, returned typed (a raw ``uint32[2]`` key is wrapped; its random stream is the
    same), or a ``TypeError``/``ValueError`` naming ``name``."""
    dtype = getattr(key, "dtype", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError(f"{name} must be a single PRNG key, got a key array of shape {key.shape}")
        return key
    if dtype == np.uint32 and tuple(key.shape) == (2,):
        return jax.random.wrap_key_data(key)
    raise TypeError(f"{name} must be a single JAX PRNG key (jax.random.key or jax.random.PRNGKey), got {key!r}")


def check_batch(x, name: str, *, min_ndim: int = 1, event_shape: tuple | None = None):
    """A floating array ``(N, *event_shape)`` with at least one row (and ``min_ndim`` dimensions), finite when
    concrete, as a JAX array; or a ``TypeError``/``ValueError`` naming ``name``."""
    x = check_array(x, name, floating=True)
    if x.ndim < max(min_ndim, 1):
        raise ValueError(f"{name} must have shape (N, *event_shape) with a leading batch axis, got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one row, got shape {tuple(x.shape)}")
    if event_shape is not None and tuple(x.shape[1:]) != tuple(event_shape):
        raise ValueError(f"{name} must have event shape {tuple(event_shape)}, got {tuple(x.shape[1:])}")
    check_finite(x, name)
    return jnp.asarray(x)


def check_shape(shape, name: str = "shape") -> tuple[int, ...]:
    """``shape`` as a non-empty tuple ``(N, *event_shape)`` of positive ints."""
    try:
        dims = tuple(shape)
    except TypeError as err:
        raise TypeError(f"{name} must be a tuple (N, *event_shape) of ints, got {shape!r}") from err
    if len(dims) < 1 or not all(isinstance(d, numbers.Integral) and not isinstance(d, bool) for d in dims):
        raise TypeError(f"{name} must be a non-empty tuple (N, *event_shape) of ints, got {shape!r}")
    if any(d < 1 for d in dims):
        raise ValueError(f"{name} must have positive entries, got {shape!r}")
    return tuple(int(d) for d in dims)


def check_float_dtype(dtype, name: str = "dtype"):
    """``dtype`` as JAX will store it (``None``: the default float, float64 under ``jax_enable_x64``), or a
    ``TypeError`` naming ``name`` when it is not a floating dtype.

    Examples:
        >>> check_float_dtype("float32")
        dtype('float32')
        >>> check_float_dtype("int32")
        Traceback (most recent call last):
        ...
        TypeError: dtype must be a floating dtype such as jnp.float32, got int32
    """
    try:
        canonical = jax.dtypes.canonicalize_dtype(jnp.float64 if dtype is None else dtype)
    except TypeError as err:
        raise TypeError(f"{name} must be a floating dtype such as jnp.float32, got {dtype!r}") from err
    if not jnp.issubdtype(canonical, jnp.floating):
        raise TypeError(f"{name} must be a floating dtype such as jnp.float32, got {canonical}")
    return canonical


def check_time_steps(t, T: int, name: str = "t", *, n: int | None = None, unit_interval: bool = True):
    """Diffusion time steps for a model or schedule of ``T`` steps: integers in ``1..T`` or reals in ``(0, T]``,
    of shape ``()`` or ``(n,)``, as a JAX array; a ``TypeError``/``ValueError`` naming ``name`` otherwise.

    Values are checked only when concrete (under ``jax.jit`` only the dtype and shape are). With
    ``unit_interval=False`` real steps that all lie in ``(0, 1]`` without all being whole numbers are refused
    when ``T > 1``: they look like a normalised time ``t / T`` passed where the step ``t`` is expected.

    Examples:
        >>> check_time_steps(jnp.array([1, 50]), 100).tolist()
        [1, 50]
        >>> check_time_steps(jnp.array([0, 50]), 100)
        Traceback (most recent call last):
        ...
        ValueError: t must lie in 1..T = 1..100, got values in [0, 50]
    """
    t = check_array(t, name)
    if np.issubdtype(t.dtype, np.bool_):
        raise TypeError(f"{name} must be an integer (or real) array of time steps, got dtype bool")
    if n is not None and (t.ndim > 1 or (t.ndim == 1 and t.shape[0] != n)):
        raise ValueError(f"{name} must have shape ({n},) (one step per row) or be a scalar, got {tuple(t.shape)}")
    if is_concrete(t) and t.size:
        v = np.asarray(t)
        if np.issubdtype(v.dtype, np.integer):
            if v.min() < 1 or v.max() > T:
                raise ValueError(f"{name} must lie in 1..T = 1..{T}, got values in [{v.min()}, {v.max()}]")
        else:
            if not np.all(np.isfinite(v)):
                raise ValueError(f"{name} must be finite; it contains NaN or infinity")
            if v.min() <= 0 or v.max() > T:
                raise ValueError(f"real {name} must lie in (0, T] = (0, {T}], got values in [{v.min()}, {v.max()}]")
            if not unit_interval and T > 1 and v.max() <= 1 and not np.all(v == np.round(v)):
                raise ValueError(
                    f"{name} holds real values in (0, 1] but is the step in 1..T = 1..{T}: it looks like a "
                    f"normalised time; pass {name} * {T} (or integer steps)"
                )
    return jnp.asarray(t)


def check_labels(labels, name: str, n: int, num_values: int | None = None):
    """Integer class labels of shape ``(n,)`` (with values in ``0..num_values-1`` when given, checked when
    concrete), as a JAX array; a ``TypeError``/``ValueError`` naming ``name`` otherwise.

    Examples:
        >>> check_labels(jnp.array([0, 2]), "labels", 2, 3).tolist()
        [0, 2]
        >>> check_labels(jnp.array([0, 3]), "labels", 2, 3)
        Traceback (most recent call last):
        ...
        ValueError: labels must lie in 0..2, got values in [0, 3]
    """
    labels = check_array(labels, name, ndim=1)
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"{name} must be an integer array of class labels, got dtype {labels.dtype}")
    if labels.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},) (one label per row), got {tuple(labels.shape)}")
    if num_values is not None and is_concrete(labels) and labels.size:
        v = np.asarray(labels)
        if v.min() < 0 or v.max() >= num_values:
            raise ValueError(f"{name} must lie in 0..{num_values - 1}, got values in [{v.min()}, {v.max()}]")
    return jnp.asarray(labels)


def warn_clamped(x, lo, hi, name: str, *, threshold: float = 1e-2, remedy: str = "") -> None:
    """Warn (once per call, with the fraction affected) when more than ``threshold`` of the entries of a
    concrete array ``x (N, d)`` lie outside ``[lo, hi]`` (per-column bounds) and will be clamped to it.

    Nothing happens for traced values, so callers stay usable under ``jax.jit``.
    """
    if not is_concrete(x) or x.size == 0:
        return
    outside = (x < jnp.asarray(lo, x.dtype)) | (x > jnp.asarray(hi, x.dtype))
    per_column = np.asarray(jnp.mean(outside, axis=0))
    total = float(per_column.mean())
    if total > threshold:
        worst = int(np.argmax(per_column))
        warnings.warn(
            f"{100 * total:.3g} % of the entries of {name} lie outside the domain and are clamped to it "
            f"(most in column {worst}: {100 * per_column[worst]:.3g} % outside "
            f"[{np.asarray(lo).reshape(-1)[worst]:g}, {np.asarray(hi).reshape(-1)[worst]:g}])"
            + (f"; {remedy}" if remedy else ""),
            UserWarning,
            stacklevel=3,
        )


def device_memory_bytes(device=None) -> int | None:
    """Memory of ``device`` (default: JAX's first device) in bytes: the allocator's limit on accelerators, the
    physical memory on CPU; None when unknown."""
    device = jax.devices()[0] if device is None else device
    try:
        stats = device.memory_stats()
    except Exception:  # pragma: no cover - backends without memory statistics
        stats = None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"])
    return host_memory_bytes() if device.platform == "cpu" else None


def check_memory(nbytes: int, name: str, what: str, remedy: str, device=None) -> None:
    """Raise ``ValueError`` naming ``name`` when ``nbytes`` (the memory ``what`` needs) exceeds the device's
    memory (:func:`device_memory_bytes`), before anything is allocated; say ``remedy``.

    Examples:
        >>> check_memory(10**18, "ranks", "the cores", "lower the ranks")
        Traceback (most recent call last):
        ...
        ValueError: ranks: the cores need 1e+09 GB, more than the ... GB of memory of ...; lower the ranks
    """
    limit = device_memory_bytes(device)
    if limit is not None and nbytes > limit:
        device = jax.devices()[0] if device is None else device
        raise ValueError(
            f"{name}: {what} need {nbytes / 1e9:.3g} GB, more than the {limit / 1e9:.3g} GB of memory of "
            f"{device.platform} device {device.id}; {remedy}"
        )
