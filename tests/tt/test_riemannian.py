"""Tests of jaxtt.tt.riemannian against dense NumPy linear algebra on small tensors.

The independent truth for the tangent space is the range of the Jacobian of the
core-to-tensor map ``(G_1, …, G_d) ↦ A`` at a point of full rank, assembled in
NumPy column by column (the derivative along one core entry is the TT with that
core replaced by a unit tensor) and orthonormalised by an SVD; its orthogonal
projector is compared with :func:`project`. Test tensors are built and expanded
in NumPy so that only jaxtt's own (jitted) kernels compile.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxtt.tt as T
from jaxtt.tt import autodiff as AD
from jaxtt.tt import riemannian as R

SHAPE = (3, 4, 3, 2)
RANKS = (1, 2, 3, 2, 1)


def _tt(seed, ranks=RANKS, shape=SHAPE, dtype=np.float64):
    ranks = T.expand_ranks(shape, ranks)
    rng = np.random.default_rng(seed)
    cores = [rng.standard_normal((ranks[k], n, ranks[k + 1])) / np.sqrt(ranks[k]) for k, n in enumerate(shape)]
    return T.TensorTrain([jnp.asarray(c.astype(dtype)) for c in cores])


def _dense_cores(cores):
    out = np.ones((1, 1))
    for c in cores:
        out = np.tensordot(out, np.asarray(c, np.float64), axes=1)
    return out[0, ..., 0]


def _dense(x):
    return _dense_cores(x.cores)


@pytest.fixture(scope="module")
def point():
    return _tt(0)


def _basis(x):
    """Orthonormal basis (columns) of the tangent space: range of the Jacobian of the core map."""
    cores = [np.asarray(c, np.float64) for c in x.cores]
    columns = []
    for k, core in enumerate(cores):
        for index in np.ndindex(core.shape):
            unit = np.zeros_like(core)
            unit[index] = 1.0
            columns.append(_dense_cores(cores[:k] + [unit] + cores[k + 1 :]).ravel())
    u, s, _ = np.linalg.svd(np.stack(columns, axis=1), full_matrices=False)
    return u[:, s > 1e-10 * s[0]]


@pytest.fixture(scope="module")
def tangent_basis(point):
    return _basis(point)


def _dense_projection(basis, z):
    flat = np.asarray(z, np.float64).ravel()
    return (basis @ (basis.T @ flat)).reshape(SHAPE)


def test_tangent_dimension_and_projection_match_dense(point, tangent_basis):
    # dim T_X M_r = Σ r_{k-1} n_k r_k − Σ r_k² (Holtz, Rohwedder, Schneider 2012)
    dim = sum(RANKS[k] * n * RANKS[k + 1] for k, n in enumerate(SHAPE)) - sum(r * r for r in RANKS[1:-1])
    assert tangent_basis.shape[1] == dim
    z = _tt(1, ranks=3)
    xi = R.project(point, z)
    np.testing.assert_allclose(_dense(R.to_tt(xi)), _dense_projection(tangent_basis, _dense(z)), atol=1e-12)
    assert max(R.to_tt(xi).ranks) <= 2 * max(RANKS)


def test_projection_is_idempotent_and_fixes_tangent_vectors(point, tangent_basis):
    xi = R.project(point, _tt(2, ranks=2))
    again = R.project(point, R.to_tt(xi))
    for a, b in zip(xi.deltas, again.deltas):
        np.testing.assert_allclose(a, b, atol=1e-13)
    # the velocity of a curve of TTs through X is tangent, so P leaves it unchanged
    rng = np.random.default_rng(3)
    cores = [np.asarray(c) for c in point.cores]
    dcores = [rng.standard_normal(c.shape) for c in cores]
    velocity = sum(_dense_cores(cores[:k] + [dcores[k]] + cores[k + 1 :]) for k in range(len(cores)))
    # the same velocity as a TT of rank 2r: d/dt Π_k (G_k + t dG_k) at t = 0
    blocks = [np.concatenate([cores[0], dcores[0]], axis=2)]
    for g, dg in zip(cores[1:-1], dcores[1:-1]):
        top = np.concatenate([g, dg], axis=2)
        blocks.append(np.concatenate([top, np.concatenate([np.zeros_like(g), g], axis=2)], axis=0))
    blocks.append(np.concatenate([dcores[-1], cores[-1]], axis=0))
    np.testing.assert_allclose(_dense_cores(blocks), velocity, atol=1e-12)
    projected = R.project(point, T.TensorTrain([jnp.asarray(b) for b in blocks]))
    np.testing.assert_allclose(_dense(R.to_tt(projected)), velocity, atol=1e-12)


def test_rank1_sum_projection_matches_dense(point, tangent_basis):
    rng = np.random.default_rng(4)
    vectors = [jnp.asarray(rng.standard_normal((7, n))) for n in SHAPE]
    coeffs = jnp.asarray(rng.standard_normal(7))
    dense = np.einsum("s,si,sj,sk,sl->ijkl", coeffs, *vectors)
    xi = R.project(point, R.Rank1Sum(coeffs, vectors))
    np.testing.assert_allclose(_dense(R.to_tt(xi)), _dense_projection(tangent_basis, dense), atol=1e-12)
    # directional derivative <ξ, v^s> of the rank-one evaluation
    q = R.contract_rank1(xi, vectors)
    np.testing.assert_allclose(q, np.einsum("ijkl,si,sj,sk,sl->s", _dense(R.to_tt(xi)), *vectors), atol=1e-12)


def test_inner_norm_and_gauge(point):
    a = R.project(point, _tt(5, ranks=2))
    b = R.project(point, _tt(6, ranks=3))
    np.testing.assert_allclose(R.inner(a, b), np.sum(_dense(R.to_tt(a)) * _dense(R.to_tt(b))), rtol=1e-12)
    np.testing.assert_allclose(R.norm(a), np.linalg.norm(_dense(R.to_tt(a))), rtol=1e-12)
    combo = R.add(R.scale(a, 2.0), b)
    np.testing.assert_allclose(_dense(R.to_tt(combo)), 2 * _dense(R.to_tt(a)) + _dense(R.to_tt(b)), atol=1e-12)
    R.check_tangent(point, combo)
    zero = R.zeros(point)
    assert float(R.norm(zero)) == 0.0
    np.testing.assert_allclose(_dense(zero.point), _dense(point), atol=1e-13)


@settings(max_examples=8, deadline=None)
@given(st.integers(0, 2**30), st.integers(0, 2**30))
def test_projection_is_self_adjoint_and_contractive(point, seed_a, seed_b):
    za, zb = _tt(seed_a, ranks=2), _tt(seed_b, ranks=2)
    pa, pb = R.project(point, za), R.project(point, zb)
    lhs = float(T.inner(R.to_tt(pa), zb))
    rhs = float(T.inner(za, R.to_tt(pb)))
    assert abs(lhs - rhs) <= 1e-10 * (1 + abs(lhs))
    assert float(R.norm(pa)) <= float(T.norm(za)) * (1 + 1e-12)


def test_retraction_ranks_orthogonality_and_second_order(point):
    xi = R.project(point, _tt(7, ranks=2))
    xi = R.scale(xi, 1.0 / R.norm(xi))
    errors = []
    for t in (1e-1, 1e-2, 1e-3):
        y = R.retract(point, xi, t)
        assert y.ranks == point.ranks
        for core in y.cores[:-1]:
            m = np.asarray(core).reshape(-1, core.shape[-1])
            np.testing.assert_allclose(m.T @ m, np.eye(m.shape[1]), atol=1e-12)
        errors.append(np.linalg.norm(_dense(y) - _dense(point) - t * _dense(R.to_tt(xi))))
    # ‖R_X(tξ) − (X + tξ)‖ = O(t²): dividing t by 10 divides the error by about 100
    assert errors[1] / errors[0] < 0.02 and errors[2] / errors[1] < 0.02
    assert errors[0] < 0.1**2 * 10


def test_transport_and_riemannian_grad_match_dense(point, tangent_basis):
    xi = R.project(point, _tt(8, ranks=2))
    new = R.retract(point, xi, 0.3)
    moved = R.transport(new, xi)
    np.testing.assert_allclose(
        _dense(R.to_tt(moved)), _dense_projection(_basis(new), _dense(R.to_tt(xi))), atol=1e-12
    )
    again = R.transport(R.zeros(new), moved)  # already tangent at the new point: unchanged
    for a, b in zip(moved.deltas, again.deltas):
        np.testing.assert_allclose(a, b, atol=1e-12)
    R.check_tangent(new, moved)

    rng = np.random.default_rng(9)
    vectors = [jnp.asarray(rng.standard_normal((11, n))) for n in SHAPE]
    y = jnp.asarray(rng.standard_normal(11))

    def loss(tt):  # a non-quadratic loss written with jaxtt operations
        return 0.5 * jnp.sum((T.contract_rank1(tt, vectors) - y) ** 2) + 0.1 * T.norm(tt) ** 4

    a = _dense(point)
    vecs = [np.asarray(v) for v in vectors]
    res = np.einsum("ijkl,si,sj,sk,sl->s", a, *vecs) - np.asarray(y)
    # ∇f(A) = Σ_s r_s φ^s + 0.4 ‖A‖² A
    euclid = np.einsum("s,si,sj,sk,sl->ijkl", res, *vecs) + 0.4 * np.sum(a * a) * a

    value, grad = AD.value_and_riemannian_grad(loss, point)
    np.testing.assert_allclose(value, 0.5 * res @ res + 0.1 * np.sum(a * a) ** 2, rtol=1e-12)
    np.testing.assert_allclose(_dense(R.to_tt(grad)), _dense_projection(tangent_basis, euclid), atol=1e-10)
    # the least-squares part as a sum of rank-one terms gives the same projected gradient
    residual = T.contract_rank1(point, vectors) - y
    ls = AD.riemannian_grad(lambda tt: 0.5 * jnp.sum((T.contract_rank1(tt, vectors) - y) ** 2), point)
    direct = R.project(point, R.Rank1Sum(residual, vectors))
    for a, b in zip(ls.deltas, direct.deltas):
        np.testing.assert_allclose(a, b, atol=1e-11)


def test_jit_vmap_and_float32(point):
    z = _tt(10, ranks=2)
    eager = R.project(point, z)
    jitted = jax.jit(R.project)(point, z)
    for a, b in zip(eager.deltas, jitted.deltas):
        np.testing.assert_allclose(a, b, atol=1e-13)
    # retract and the tangent algebra run under jit and vmap inside the solvers (tests/solvers)
    members = [_tt(11 + i, ranks=2) for i in range(3)]
    batch = jax.tree_util.tree_map(lambda *cs: jnp.stack(cs), *members)
    norms = jax.vmap(lambda zz: R.norm(R.project(point, zz)))(batch)
    np.testing.assert_allclose(norms[1], R.norm(R.project(point, members[1])), rtol=1e-12)

    x64, z64 = _tt(12), _tt(13, ranks=2)
    x32, z32 = _tt(12, dtype=np.float32), _tt(13, ranks=2, dtype=np.float32)
    xi32 = R.project(x32, z32)
    assert all(g.dtype == jnp.float32 for g in xi32.deltas)
    assert R.retract(x32, xi32, 0.1).dtype == jnp.float32
    assert AD.riemannian_grad(lambda tt: T.norm(tt) ** 2, x32).dtype == jnp.float32
    # float32 geometry agrees with float64 to single precision
    xi64 = R.project(x64, z64)
    np.testing.assert_allclose(_dense(R.to_tt(xi32)), _dense(R.to_tt(xi64)), atol=1e-4)


def test_bad_input(point):
    xi = R.project(point, _tt(14, ranks=2))
    other = _tt(15)
    with pytest.raises(ValueError, match="another point"):
        R.retract(other, xi, 0.1)
    with pytest.raises(ValueError, match="ranks"):
        R.retract(_tt(16, ranks=(1, 2, 2, 2, 1)), xi, 0.1)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="step"):
            R.retract(point, xi, bad)
    with pytest.raises(ValueError, match="step"):
        R.retract(point, xi, jnp.asarray(-0.5))
    with pytest.raises(ValueError, match="different points"):
        R.inner(xi, R.project(other, _tt(14, ranks=2)))
    with pytest.raises(ValueError, match="not a tangent vector"):
        R.check_tangent(other, xi)
    broken = R.TangentVector(xi.left, xi.right, [g + u for g, u in zip(xi.deltas, xi.left)])
    with pytest.raises(ValueError, match="gauge"):
        R.check_tangent(point, broken)
    with pytest.raises(ValueError, match="not full"):
        R.zeros(_tt(0, ranks=(1, 3, 2, 1), shape=(2, 2, 2)))
    with pytest.raises(ValueError, match="shape"):
        R.project(point, _tt(17, shape=(3, 4, 3, 3)))
    with pytest.raises(TypeError, match="Z must be"):
        R.project(point, np.zeros(SHAPE))
    with pytest.raises(TypeError, match="TangentVector"):
        R.to_tt(point)
    with pytest.raises(ValueError, match="rows"):
        R.Rank1Sum(jnp.ones(3), [jnp.ones((3, 3)), jnp.ones((4, 4))])
    with pytest.raises(ValueError, match="one shape"):
        R.TangentVector(xi.left, xi.right, [g[..., :1] for g in xi.deltas])


def test_multi_indices_are_unit_vectors(point):
    rng = np.random.default_rng(20)
    idx = np.stack([rng.integers(0, n, 9) for n in SHAPE], axis=1)
    idx[1] = idx[0]  # a repeated entry is summed
    coeffs = jnp.asarray(rng.standard_normal(9))
    onehot = [jnp.asarray(np.eye(n)[idx[:, k]]) for k, n in enumerate(SHAPE)]
    by_index = R.project(point, R.Rank1Sum(coeffs, jnp.asarray(idx)))
    by_vector = R.project(point, R.Rank1Sum(coeffs, onehot))
    for a, b in zip(by_index.deltas, by_vector.deltas):
        np.testing.assert_allclose(a, b, atol=1e-13)
    entries = _dense(R.to_tt(by_index))[tuple(idx.T)]
    np.testing.assert_allclose(R.contract_rank1(by_index, jnp.asarray(idx)), entries, atol=1e-12)
    with pytest.raises(ValueError, match="outside"):
        R.project(point, R.Rank1Sum(coeffs, jnp.asarray(np.where(idx == 0, SHAPE[0] + 5, idx))))
