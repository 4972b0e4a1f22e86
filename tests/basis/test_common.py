"""Behaviour shared by all basis families: transforms, dtypes, shapes, hashing and argument errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxtt.basis import Basis, BSpline, Chebyshev, Fourier, Legendre

DOMAIN = (0.0, 2.0)
FAMILIES = [
    Legendre(5, DOMAIN),
    Chebyshev(5, DOMAIN, orthonormal=True),
    Fourier(5, DOMAIN),
    BSpline(6, 3, DOMAIN),
    BSpline(5, 2, DOMAIN, orthonormal=True),
]
CONSTRUCTORS = [Legendre, Chebyshev, Fourier, BSpline]


# Interior points off the B-spline knots (end points and knots are covered per family). All tests here use
# this one shape, so each module compiles its values and derivatives once.
X = np.array([[0.05, 0.37, 0.93], [1.5, 1.91, 1.99]])


@pytest.mark.parametrize("basis", FAMILIES, ids=repr)
def test_jit_vmap_grad_and_finite_differences(basis):
    values, derivative = basis(X), basis.derivative(X)
    assert values.shape == derivative.shape == (2, 3, basis.m)
    np.testing.assert_allclose(jax.vmap(basis)(X), values, atol=1e-13)
    # The module is hashable, so it can be a static argument of a user's jit.
    jacobian = jax.jit(lambda b, z: jax.vmap(jax.vmap(jax.jacfwd(b)))(z), static_argnums=0)(basis, X)
    np.testing.assert_allclose(jacobian, derivative, atol=1e-11)
    h = 1e-6
    np.testing.assert_allclose((basis(X + h) - basis(X - h)) / (2 * h), derivative, atol=2e-6)


@pytest.mark.parametrize("basis", FAMILIES, ids=repr)
def test_dtype_follows_input(basis):
    for method in (basis, basis.derivative):
        out32 = method(X.astype(np.float32))
        assert out32.dtype == jnp.float32
        np.testing.assert_allclose(out32, method(X), rtol=2e-5, atol=2e-5)
        assert method(np.round(X).astype(int)).dtype == jnp.float64  # integers: default float (x64 is on)
    if isinstance(basis, BSpline) and not basis.orthonormal:
        first, local = basis.local(X.astype(np.float32))
        assert local.dtype == jnp.float32 and jnp.issubdtype(first.dtype, jnp.integer)


def test_modules_are_static_hashable_bases():
    for basis in FAMILIES:
        assert isinstance(basis, Basis)
        assert jax.tree_util.tree_leaves(basis) == []
        assert basis == type(basis)(**_kwargs(basis)) and hash(basis) == hash(type(basis)(**_kwargs(basis)))
        assert isinstance(basis.m, int) and all(isinstance(v, float) for v in basis.domain)
    assert Legendre(5, (0.0, 1.0)) != Legendre(5, (0.0, 2.0))
    with pytest.raises(TypeError):
        Basis()


def _kwargs(basis):
    kwargs = {"m": basis.m, "domain": basis.domain, "orthonormal": basis.orthonormal}
    if isinstance(basis, BSpline):
        kwargs["degree"] = basis.degree
    return kwargs


@pytest.mark.parametrize("cls", CONSTRUCTORS)
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"m": 0}, ValueError, "m must be >= 1"),
        ({"m": 2.5}, TypeError, "m must be an integer"),
        ({"m": True}, TypeError, "m must be an integer"),
        ({"m": 4, "domain": (1.0, 1.0)}, ValueError, "domain must satisfy a < b"),
        ({"m": 4, "domain": (2.0, -1.0)}, ValueError, "domain must satisfy a < b"),
        ({"m": 4, "domain": (0.0, np.inf)}, ValueError, r"domain\[1\] must be finite"),
        ({"m": 4, "domain": 1.0}, TypeError, "domain must be a pair"),
        ({"m": 4, "orthonormal": 1}, TypeError, "orthonormal must be a bool"),
    ],
)
def test_constructor_errors(cls, kwargs, error, match):
    with pytest.raises(error, match=match):
        cls(**kwargs)


@pytest.mark.parametrize("basis", FAMILIES[:4], ids=repr)
def test_input_errors_name_x(basis):
    bad = [
        (np.array([0.5 + 1j]), TypeError, "x must be a real array"),
        (["a"], TypeError, "x must be a numeric array"),
        (np.array([0.5, np.nan]), ValueError, "x must be finite"),
        (np.array([np.inf]), ValueError, "x must be finite"),
    ]
    methods = (basis, basis.derivative) + ((basis.local,) if isinstance(basis, BSpline) else ())
    for x, error, match in bad:
        for method in methods:
            with pytest.raises(error, match=match):
                method(x)
