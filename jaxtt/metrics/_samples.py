"""Private helpers shared by the sample-based metrics: eager validation of two samples and pairwise distances."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxtt._validation import check_array, check_finite


def check_samples(x, y, *, names=("x", "y"), min_samples: int = 1):
    """Validate two samples of shape ``(N, D)`` and ``(M, D)``; return them as jax arrays of a common float dtype.

    Raises ``TypeError`` for non-floating input and ``ValueError`` for a wrong number of dimensions, a
    mismatched feature dimension, fewer than ``min_samples`` rows, or non-finite entries (the last only for
    concrete arrays, so the caller stays usable under ``jax.jit``).
    """
    name_x, name_y = names
    x = check_array(x, name_x, ndim=2, floating=True)
    y = check_array(y, name_y, ndim=2, floating=True)
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"{name_x} and {name_y} must have the same feature dimension, got shapes "
            f"{tuple(x.shape)} and {tuple(y.shape)}"
        )
    for arr, name in ((x, name_x), (y, name_y)):
        if arr.shape[0] < min_samples:
            raise ValueError(f"{name} must have at least {min_samples} samples (rows), got shape {tuple(arr.shape)}")
        check_finite(arr, name)
    x, y = jnp.asarray(x), jnp.asarray(y)
    dtype = jnp.result_type(x, y)
    return x.astype(dtype), y.astype(dtype)


def squared_distances(x, y):
    """Matrix of squared Euclidean distances ``||x_i - y_j||^2`` from explicit differences (no cancellation)."""
    return jnp.sum((x[:, None, :] - y[None, :, :]) ** 2, axis=-1)


def distances(x, y):
    """Matrix of Euclidean distances ``||x_i - y_j||`` with a finite (zero) gradient where two points coincide."""
    d2 = squared_distances(x, y)
    positive = d2 > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, d2, jnp.ones_like(d2))), jnp.zeros_like(d2))


def common_scale(x, y):
    """The largest absolute entry of both samples (1 if zero or not finite), held constant under
    differentiation: dividing by it keeps squared distances of very large or very small samples in range.

    The metrics are homogeneous in a common scale (MMD with bandwidths scaled alike is invariant, sliced
    Wasserstein scales like c and the energy distance like sqrt(c)), so rescaling and undoing it changes neither
    their values nor their gradients.
    """
    scale = jax.lax.stop_gradient(jnp.maximum(jnp.max(jnp.abs(x)), jnp.max(jnp.abs(y))))
    return jnp.where(jnp.isfinite(scale) & (scale > 0), scale, jnp.ones_like(scale))
