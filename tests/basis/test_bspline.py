"""Clamped uniform B-splines against scipy.interpolate.BSpline and B-spline identities."""

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.interpolate import BSpline as ScipyBSpline

from jaxtt.basis import BSpline

DOMAIN = (-1.0, 2.0)


def _clamped_knots(m, degree, a, b):
    """Independent construction: p+1 repeated end knots and the real step (b-a)/(m-p) (not the floored step of a common misprint)."""
    inner = np.linspace(a, b, m - degree + 1)
    return np.concatenate([np.full(degree, a), inner, np.full(degree, b)])


def test_knots_are_clamped_uniform_with_real_step():
    # A floored step, floor(3 / 6) = 0 would collapse all knots on [-1, 2].
    basis = BSpline(6, degree=2, domain=DOMAIN)
    np.testing.assert_allclose(basis.knots, _clamped_knots(6, 2, *DOMAIN), rtol=0, atol=1e-15)
    assert len(basis.knots) == 6 + 2 + 1


@pytest.mark.parametrize(("m", "degree"), [(1, 0), (5, 0), (2, 1), (3, 2), (8, 2), (9, 3)])
def test_values_and_derivatives_match_scipy_with_clamping(m, degree):
    a, b = DOMAIN
    t = _clamped_knots(m, degree, a, b)
    x = np.concatenate([np.linspace(a - 1.0, b + 1.0, 37), t])
    inside = (x >= a) & (x <= b)
    reference = ScipyBSpline(t, np.eye(m), degree)
    basis = BSpline(m, degree, DOMAIN)
    # Out-of-domain policy: clamp to [a, b]; the derivative of the clamped function is zero outside.
    np.testing.assert_allclose(np.asarray(basis(x)), reference(np.clip(x, a, b)), atol=1e-13)
    expected = reference.derivative()(np.clip(x, a, b)) * inside[:, None] if degree else np.zeros((x.size, m))
    np.testing.assert_allclose(np.asarray(basis.derivative(x)), expected, atol=1e-12)


def test_right_endpoint_gives_last_function_one_in_float32():
    # The float64 end point is part of the scipy comparison above (the knots include b).
    for degree in (0, 3):
        values = np.asarray(BSpline(6, degree, DOMAIN)(np.array([2.0], np.float32)))
        np.testing.assert_array_equal(values[:, :-1], 0.0)
        np.testing.assert_array_equal(values[:, -1], 1.0)


# A few fixed modules (each compiles once); hypothesis varies the points.
SCATTER_BASES = [BSpline(1, 0, (-3.0, -2.5)), BSpline(4, 1, (0.0, 7.0)), BSpline(7, 2), BSpline(9, 3, (2.0, 2.1))]


@settings(max_examples=40, deadline=None)
@given(index=st.integers(0, len(SCATTER_BASES) - 1), s=st.lists(st.floats(-0.5, 1.5), min_size=8, max_size=8))
def test_partition_of_unity_nonnegative_and_local_scatter(index, s):
    # Points in [a - width/2, b + width/2]: outside points are clamped, so the identities hold everywhere.
    basis = SCATTER_BASES[index]
    (a, b), m, degree = basis.domain, basis.m, basis.degree
    x = a + (b - a) * np.asarray(s)
    values = np.asarray(basis(x))
    first, local = (np.asarray(v) for v in basis.local(x))
    assert local.shape == (x.size, degree + 1) and basis.support_size == degree + 1
    assert np.all((first >= 0) & (first <= m - degree - 1))
    dense = np.zeros((x.size, m))
    for r in range(degree + 1):
        dense[np.arange(x.size), first + r] = local[:, r]
    # Equal up to rounding: the two compiled functions may contract multiply-adds differently.
    np.testing.assert_allclose(values, dense, rtol=0, atol=1e-15)
    np.testing.assert_allclose(values.sum(axis=-1), 1.0, rtol=1e-13)
    assert np.all(values >= -1e-15)


def test_gradients_match_derivative_at_knots_boundary_and_outside():
    basis = BSpline(7, degree=2, domain=DOMAIN)
    x = np.concatenate([basis.knots, [-3.0, -1.0 - 1e-9, 0.123, 2.0 + 1e-9, 1e30]])
    derivative = np.asarray(basis.derivative(x))
    forward = np.asarray(jax.jit(jax.vmap(jax.jacfwd(basis)))(x))
    reverse = np.asarray(jax.jit(jax.vmap(jax.jacrev(basis)))(x))
    assert np.all(np.isfinite(derivative)) and np.all(np.isfinite(np.asarray(basis(x))))
    np.testing.assert_allclose(forward, derivative, atol=1e-12)
    np.testing.assert_allclose(reverse, derivative, atol=1e-12)
    np.testing.assert_array_equal(derivative[(x < -1.0) | (x > 2.0)], 0.0)
    # At x = b the derivative is the one-sided one from inside (degree 2: -2/Delta and 2/Delta at the end).
    np.testing.assert_allclose(derivative[np.flatnonzero(x == 2.0)[0], -2:], [-2 / 0.6, 2 / 0.6], rtol=1e-13)


def test_degree_one_derivative_is_right_derivative_at_interior_knot():
    basis = BSpline(4, degree=1, domain=(0.0, 3.0))  # hat functions on knots 0, 1, 2, 3
    np.testing.assert_allclose(np.asarray(basis.derivative(1.0)), [0.0, -1.0, 1.0, 0.0], atol=1e-15)
    np.testing.assert_allclose(np.asarray(jax.jit(jax.grad(lambda x: basis(x)[2]))(1.0)), 1.0)


def test_orthonormal_gram_is_identity_by_composite_quadrature():
    a, b = DOMAIN
    basis = BSpline(8, degree=3, domain=DOMAIN, orthonormal=True)
    nodes, weights = np.polynomial.legendre.leggauss(6)
    edges = np.linspace(a, b, 8 - 3 + 1)
    half = np.diff(edges)[:, None] / 2
    x = (edges[:-1, None] + half * (nodes + 1)).ravel()
    w = (half * weights).ravel()
    phi = np.asarray(basis(x))
    np.testing.assert_allclose(phi.T @ (w[:, None] * phi), np.eye(8), atol=1e-12)
    # psi = B T with T upper triangular: psi_j is a combination of B_0 .. B_j.
    plain = np.asarray(BSpline(8, 3, DOMAIN)(x))
    transform = np.linalg.lstsq(plain, phi, rcond=None)[0]
    np.testing.assert_allclose(np.tril(transform, -1), 0.0, atol=1e-10)
    h = 1e-6
    fd = (np.asarray(basis(x + h)) - np.asarray(basis(x - h))) / (2 * h)
    np.testing.assert_allclose(np.asarray(basis.derivative(x)), fd, atol=1e-6)
    assert basis.support_size == 8


def test_local_rejects_orthonormal_basis():
    with pytest.raises(ValueError, match="orthonormal=False"):
        BSpline(5, orthonormal=True).local(0.0)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"m": 3, "degree": 3}, ValueError, "m must be > degree"),
        ({"m": 2, "degree": 2}, ValueError, "m must be > degree"),
        ({"m": 4, "degree": -1}, ValueError, "degree"),
        ({"m": 4, "degree": 1.5}, TypeError, "degree"),
    ],
)
def test_bspline_constructor_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        BSpline(**kwargs)
