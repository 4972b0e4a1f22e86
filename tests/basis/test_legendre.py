"""Legendre basis against scipy.special.eval_legendre and numpy's Legendre series."""

import numpy as np
from numpy.polynomial import legendre as npleg
from scipy.special import eval_legendre

from jaxtt.basis import Legendre

DOMAIN = (-0.5, 2.5)


def _xi(x):
    a, b = DOMAIN
    return (2 * x - (a + b)) / (b - a)


def test_values_match_scipy_including_extrapolation():
    # Points outside [a, b] follow the documented policy: the polynomial is evaluated (extrapolated).
    x = np.linspace(-1.5, 3.5, 33)
    got = np.asarray(Legendre(9, DOMAIN)(x))
    ref = np.stack([eval_legendre(k, _xi(x)) for k in range(9)], axis=-1)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


def test_corrected_recursion_not_the_printed_one():
    # The misprinted recursion gives P_2 = (5 x P_1 - 2 P_0) / 3; the true P_2 = (3 x^2 - 1) / 2.
    x = np.array([0.3, 0.9])
    got = np.asarray(Legendre(3)(x))[:, 2]
    np.testing.assert_allclose(got, (3 * x**2 - 1) / 2, rtol=1e-14)
    assert not np.allclose(got, (5 * x * x - 2) / 3)


def test_derivative_matches_numpy_legder_at_ends_and_inside():
    a, b = DOMAIN
    x = np.concatenate([[a, b], np.linspace(a, b, 17)])
    got = np.asarray(Legendre(8, DOMAIN).derivative(x))
    ref = np.stack([npleg.legval(_xi(x), npleg.legder(np.eye(8)[k])) for k in range(8)], axis=-1) * 2 / (b - a)
    np.testing.assert_allclose(got, ref, rtol=1e-11, atol=1e-11)


def test_orthonormal_gram_is_identity_and_plain_is_diagonal():
    a, b = DOMAIN
    nodes, weights = np.polynomial.legendre.leggauss(12)
    x, w = a + (b - a) * (nodes + 1) / 2, weights * (b - a) / 2
    phi = np.asarray(Legendre(7, DOMAIN, orthonormal=True)(x))
    np.testing.assert_allclose(phi.T @ (w[:, None] * phi), np.eye(7), atol=1e-12)
    plain = np.asarray(Legendre(7, DOMAIN)(x))
    np.testing.assert_allclose(plain.T @ (w[:, None] * plain), np.diag((b - a) / (2 * np.arange(7) + 1)), atol=1e-12)


def test_any_input_shape_maps_to_trailing_m_axis():
    basis = Legendre(4, DOMAIN)
    assert basis(1.0).shape == (4,) and basis.derivative(1.0).shape == (4,)
    assert basis(np.zeros((2, 0, 3))).shape == (2, 0, 3, 4)
    np.testing.assert_allclose(np.asarray(basis(np.full((1, 2), 2.5))), np.ones((1, 2, 4)), rtol=1e-14)  # P_k(1) = 1
