"""Indicator (one-hot) basis of a discrete variable."""

import jax.numpy as jnp
import numpy as np

from jaxtt.basis import Basis
from jaxtt.basis.indicator import Indicator


def test_one_hot_with_rounding_clamping_and_zero_derivative():
    basis = Indicator(4)
    x = np.array([0.0, 1.4, 2.6, 3.0, -2.0, 9.0], np.float32)
    values = basis(x)
    assert isinstance(basis, Basis) and values.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(values), np.eye(4)[[0, 1, 3, 3, 0, 3]])
    np.testing.assert_array_equal(np.asarray(basis.derivative(x)), np.zeros((6, 4)))
