"""sklearn digits scaled to [-1, 1]."""

import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.datasets import load_digits

from jaxtt.data import digits


def test_scaling_shapes_and_labels():
    reference = load_digits()
    images, labels = digits()
    assert images.shape == (1797, 64) and images.dtype == jnp.float32
    assert labels.shape == (1797,) and jnp.issubdtype(labels.dtype, jnp.integer)
    np.testing.assert_allclose(images, reference.data / 8.0 - 1.0, atol=1e-7)
    assert float(images.min()) == -1.0 and float(images.max()) == 1.0
    np.testing.assert_array_equal(labels, reference.target)

    square, labels64 = digits(flatten=False, dtype=jnp.float64)
    assert square.shape == (1797, 8, 8) and square.dtype == jnp.float64
    np.testing.assert_array_equal(square.reshape(1797, 64), images.astype(jnp.float64))
    np.testing.assert_array_equal(labels64, labels)


def test_validation():
    with pytest.raises(TypeError, match="flatten must be a bool"):
        digits(flatten="yes")
    with pytest.raises(TypeError, match="dtype must be a floating"):
        digits(dtype=jnp.int32)
