"""Eager argument checks shared by the public functions of jaxtt.

Every check runs at the public boundary, before any tracing, and raises a
``ValueError`` or ``TypeError`` that names the offending argument. Value checks
(finiteness, ranges of array entries) are skipped for abstract tracers, so the
same public functions stay usable inside a user's ``jax.jit``; shape checks
always run because shapes are static.
"""

from __future__ import annotations

import numbers
import os

import jax
import jax.numpy as jnp
import numpy as np

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
    "check_key",
    "check_batch",
    "check_shape",
    "available_memory",
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

    Raises ``TypeError`` for non-numeric input (or integer input when ``floating``)
    and ``ValueError`` for a wrong number of dimensions.
    """
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        try:
            x = np.asarray(x)
        except Exception as err:  # pragma: no cover - exotic objects
            raise TypeError(f"{name} must be an array, got {type(x).__name__}") from err
    if not (np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.bool_)):
        raise TypeError(f"{name} must be a numeric array, got dtype {x.dtype}")
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


def available_memory() -> int:
    """Bytes the default device can still allocate: an accelerator's free memory, else the host's ``MemAvailable``."""
    device = jax.devices()[0]
    stats = device.memory_stats() if device.platform != "cpu" else None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_memory(nbytes: int, what: str, remedy: str) -> None:
    """Refuse work whose estimated working set ``nbytes`` exceeds :func:`available_memory`, before it starts."""
    available = available_memory()
    if nbytes > available:
        raise ValueError(f"{what} needs about {nbytes / 2**30:.3g} GiB but {available / 2**30:.3g} GiB are "
                         f"available; {remedy}")
