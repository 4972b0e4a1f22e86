"""Fourier basis against explicit trigonometric formulas."""

import numpy as np
import pytest

from jaxtt.basis import Fourier

DOMAIN = (-2.0, 1.0)


def _reference(x, m):
    a, b = DOMAIN
    xi = (2 * x - (a + b)) / (b - a)
    columns = [np.ones_like(x)]
    for j in range(1, m):
        columns += [np.cos(np.pi * j * xi), np.sin(np.pi * j * xi)]
    return np.stack(columns[:m], axis=-1)


@pytest.mark.parametrize("m", [1, 4, 5])
def test_values_and_ordering_for_odd_and_even_m(m):
    x = np.linspace(-3.0, 2.0, 21)
    np.testing.assert_allclose(np.asarray(Fourier(m, DOMAIN)(x)), _reference(x, m), atol=1e-13)


def test_periodic_outside_domain():
    x = np.linspace(-2.0, 1.0, 9)
    basis = Fourier(6, DOMAIN)
    np.testing.assert_allclose(np.asarray(basis(x + 3.0 * 7)), np.asarray(basis(x)), atol=1e-12)


def test_derivative_matches_central_differences():
    x, h = np.linspace(-2.5, 1.5, 13), 1e-6
    basis = Fourier(7, DOMAIN)
    fd = (_reference(x + h, 7) - _reference(x - h, 7)) / (2 * h)
    np.testing.assert_allclose(np.asarray(basis.derivative(x)), fd, atol=1e-7)
    np.testing.assert_array_equal(np.asarray(Fourier(1, DOMAIN).derivative(x)), 0.0)


def test_orthonormal_gram_is_identity():
    # The rectangle rule on Q equispaced points of one period is exact for trigonometric degree < Q.
    a, b = DOMAIN
    q = 16
    x = a + (b - a) * np.arange(q) / q
    phi = np.asarray(Fourier(7, DOMAIN, orthonormal=True)(x))
    np.testing.assert_allclose(phi.T @ phi * (b - a) / q, np.eye(7), atol=1e-12)
