"""Chebyshev basis against numpy.polynomial.chebyshev."""

import numpy as np
from numpy.polynomial import chebyshev as npcheb

from jaxtt.basis import Chebyshev

DOMAIN = (1.0, 4.0)


def _xi(x):
    a, b = DOMAIN
    return (2 * x - (a + b)) / (b - a)


def test_values_match_numpy_including_extrapolation():
    x = np.linspace(0.0, 5.0, 29)
    got = np.asarray(Chebyshev(8, DOMAIN)(x))
    ref = npcheb.chebvander(_xi(x), 7)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


def test_derivative_matches_numpy_chebder():
    a, b = DOMAIN
    x = np.concatenate([[a, b], np.linspace(0.5, 4.5, 15)])
    got = np.asarray(Chebyshev(8, DOMAIN).derivative(x))
    ref = np.stack([npcheb.chebval(_xi(x), npcheb.chebder(np.eye(8)[k])) for k in range(8)], axis=-1) * 2 / (b - a)
    np.testing.assert_allclose(got, ref, rtol=1e-11, atol=1e-11)


def test_orthonormal_under_chebyshev_weight():
    # Gauss–Chebyshev: int_a^b f w dx with w = 1/sqrt((x-a)(b-x)) equals (pi/Q) sum f(x_q), exact for deg < 2Q.
    a, b = DOMAIN
    nodes, weights = npcheb.chebgauss(10)
    x = a + (b - a) * (nodes + 1) / 2
    phi = np.asarray(Chebyshev(6, DOMAIN, orthonormal=True)(x))
    np.testing.assert_allclose(phi.T @ (weights[:, None] * phi), np.eye(6), atol=1e-12)
