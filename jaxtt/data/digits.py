"""scikit-learn's 8x8 handwritten digits, scaled to [-1, 1]."""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Float, Int
from sklearn.datasets import load_digits

__all__ = ["digits"]

_MAX_INTENSITY = 16.0


def digits(
    flatten: bool = True, dtype=jnp.float32
) -> tuple[Float[Array, "1797 64"] | Float[Array, "1797 8 8"], Int[Array, " 1797"]]:
    r"""The 1797 8x8 grey-scale digits of ``sklearn.datasets.load_digits`` with labels 0-9.

    The UCI optical-recognition digits ship with scikit-learn (no download). Pixel intensities
    :math:`v \in \{0, \dots, 16\}` are mapped affinely to :math:`v / 8 - 1 \in [-1, 1]`, the pixel range DDPM
    assumes (Ho et al. 2020, sec. 3.3: pixel values scaled to [-1, 1]).

    Args:
        flatten: return images as ``(1797, 64)`` rows (row-major pixels) when true, as ``(1797, 8, 8)`` otherwise.
        dtype: floating dtype of the images.

    Returns:
        ``(images, labels)``: images of ``dtype`` in [-1, 1] and integer labels ``(1797,)``.

    Examples:
        >>> images, labels = digits()
        >>> images.shape, labels.shape, float(images.min()), float(images.max())
        ((1797, 64), (1797,), -1.0, 1.0)
        >>> digits(flatten=False)[0].shape
        (1797, 8, 8)
    """
    if not isinstance(flatten, bool):
        raise TypeError(f"flatten must be a bool, got {type(flatten).__name__} {flatten!r}")
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"dtype must be a floating dtype, got {dtype!r}")
    bunch = load_digits()
    pixels = bunch.data if flatten else bunch.images
    images = jnp.asarray(pixels, dtype=dtype) / (_MAX_INTENSITY / 2) - 1.0
    return images, jnp.asarray(bunch.target, dtype=jnp.int32)
