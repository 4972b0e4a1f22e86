"""scikit-learn's 8x8 handwritten digits, scaled to [-1, 1]."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from jaxtt._validation import check_int

__all__ = ["digits", "digits_split"]

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


def digits_split(
    validation: int = 300, seed: int = 0, dtype=jnp.float32
) -> tuple[Float[Array, "N 64"], Int[Array, " N"], Float[Array, "M 64"], Int[Array, " M"]]:
    r"""A fixed, stratified train/validation split of :func:`digits` (flattened rows in [-1, 1]).

    ``validation`` images go to the validation set, drawn by ``sklearn.model_selection.train_test_split`` with
    ``stratify=labels`` and ``random_state=seed`` (each class keeps its share of the 1,797 images), so the split
    is a deterministic function of ``(validation, seed)``. The default 1,497 / 300 split is the one the
    latent-diffusion experiment (:mod:`jaxtt.latent_digits`) trains and evaluates on.

    Args:
        validation: size ``M`` of the validation set, ``10 <= M <= 1787`` (at least one image per class on
            either side).
        seed: the split's random seed (a non-negative integer).
        dtype: floating dtype of the images.

    Returns:
        ``(x_train, y_train, x_val, y_val)``: images ``(N, 64)`` and ``(M, 64)`` with ``N = 1797 - M``, integer
        labels ``(N,)`` and ``(M,)``.

    Examples:
        >>> x_train, y_train, x_val, y_val = digits_split()
        >>> x_train.shape, x_val.shape, [int((y_val == k).sum()) for k in (0, 1, 8)]  # ~30 of each class
        ((1497, 64), (300, 64), [30, 30, 29])
        >>> bool((digits_split()[3] == y_val).all())  # fixed: the same split every time
        True
    """
    validation = check_int(validation, "validation", minimum=10, maximum=1787)
    seed = check_int(seed, "seed", minimum=0)
    images, labels = digits(flatten=True, dtype=dtype)
    index = np.arange(images.shape[0])
    train, val = train_test_split(index, test_size=validation, stratify=np.asarray(labels), random_state=seed)
    train, val = np.sort(train), np.sort(val)
    return images[train], labels[train], images[val], labels[val]
