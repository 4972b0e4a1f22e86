"""TT algebra against dense NumPy references (float32 and float64)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxtt import tt

DTYPES = [jnp.float32, jnp.float64]
TOL = {jnp.float32: 1e-4, jnp.float64: 1e-11}


def rand_tt(seed, shape, ranks, dtype=jnp.float64):
    return tt.random(jax.random.key(seed), shape, ranks, dtype=dtype)


def dense(a):
    return np.asarray(tt.full(a), dtype=np.float64)


def rel(x, y):
    return np.linalg.norm(np.asarray(x, np.float64) - np.asarray(y, np.float64)) / max(np.linalg.norm(y), 1e-300)


# ---------------------------------------------------------------- construction


@pytest.mark.parametrize("dtype", DTYPES)
def test_random_and_properties(dtype):
    a = rand_tt(0, (3, 4, 5), (2, 3), dtype)
    assert a.shape == (3, 4, 5) and a.ranks == (1, 2, 3, 1) and a.ndim == 3
    assert a.dtype == dtype and a.size == 1 * 3 * 2 + 2 * 4 * 3 + 3 * 5 * 1
    assert dense(a).shape == (3, 4, 5)


def test_full_matches_explicit_product():
    a = rand_tt(1, (2, 3, 4), 2)
    g = [np.asarray(c) for c in a.cores]
    ref = np.einsum("aib,bjc,ckd->ijk", *g)
    np.testing.assert_allclose(dense(a), ref, rtol=1e-12)


def test_zeros_and_rank_one():
    z = tt.zeros((2, 3, 4), 3)
    assert z.ranks == (1, 3, 3, 1) and np.all(dense(z) == 0)
    vs = [np.arange(1.0, 3.0), np.array([1.0, -2.0, 0.5]), np.array([3.0, 4.0])]
    r1 = tt.rank_one([jnp.asarray(v) for v in vs])
    np.testing.assert_allclose(dense(r1), np.einsum("i,j,k->ijk", *vs))



def test_default_dtype_follows_jax_enable_x64():
    """No dtype given: float64 with jax_enable_x64 (as in this suite), float32 without; explicit dtypes win."""
    from jaxtt.basis import Legendre
    from jaxtt.ftt import FTTDenoiser, constant_init

    def defaults():
        return {tt.zeros((2, 3), 2).dtype, tt.random(jax.random.key(0), (2, 3), 2).dtype,
                constant_init([Legendre(3)] * 2, 2, key=jax.random.key(0)).dtype,
                FTTDenoiser(2, 10, rank=2, m=3, key=jax.random.key(0)).ftt.tt.dtype}

    assert defaults() == {jnp.dtype(jnp.float64)}
    with jax.enable_x64(False):
        assert defaults() == {jnp.dtype(jnp.float32)}
    assert tt.zeros((2, 3), 2, dtype=jnp.float32).dtype == jnp.float32


# ------------------------------------------------------------------ operations


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(3, 4, 2), (2, 3, 2, 3, 2)])
def test_ops_against_dense(dtype, shape):
    a, b = rand_tt(2, shape, 3, dtype), rand_tt(3, shape, 2, dtype)
    fa, fb = dense(a), dense(b)
    tol = TOL[dtype]
    assert rel(dense(tt.add(a, b)), fa + fb) < tol
    assert rel(dense(tt.scale(a, -1.5)), -1.5 * fa) < tol
    assert rel(dense(tt.hadamard(a, b)), fa * fb) < tol
    assert abs(float(tt.inner(a, b)) - np.sum(fa * fb)) < tol * np.linalg.norm(fa) * np.linalg.norm(fb)
    assert abs(float(tt.norm(a)) - np.linalg.norm(fa)) < tol * np.linalg.norm(fa)
    for out in (tt.add(a, b), tt.hadamard(a, b), tt.inner(a, b)):
        assert jax.tree_util.tree_leaves(out)[0].dtype == dtype


@pytest.mark.parametrize("dtype", DTYPES)
def test_get_and_contract_rank1_against_dense(dtype):
    shape = (3, 4, 2, 5)
    a = rand_tt(4, shape, 3, dtype)
    fa = dense(a)
    rng = np.random.default_rng(0)
    idx = np.stack([rng.integers(0, n, 50) for n in shape], axis=1)
    assert rel(tt.get(a, jnp.asarray(idx)), fa[tuple(idx.T)]) < TOL[dtype]
    vs = [rng.standard_normal((50, n)).astype(dtype) for n in shape]
    ref = np.einsum("abcd,na,nb,nc,nd->n", fa, *vs)
    out = tt.contract_rank1(a, vs)
    assert out.dtype == dtype and rel(out, ref) < TOL[dtype]
    lefts, rights = tt.interfaces(a, vs)
    assert [x.shape for x in lefts] == [x.shape for x in rights] == [(50, r) for r in a.ranks]
    assert rel(lefts[-1][:, 0], ref) < TOL[dtype] and rel(rights[0][:, 0], ref) < TOL[dtype]
    for k in range(a.ndim + 1):  # every split point gives the full contraction
        assert rel(jnp.sum(lefts[k] * rights[k], axis=1), ref) < TOL[dtype]


def test_one_dimensional_train():
    a = tt.TensorTrain([jnp.arange(4.0).reshape(1, 4, 1)])
    np.testing.assert_allclose(dense(a), np.arange(4.0))
    np.testing.assert_allclose(tt.get(a, jnp.array([[3], [1]])), [3.0, 1.0])
    np.testing.assert_allclose(tt.contract_rank1(a, [jnp.ones((2, 4))]), [6.0, 6.0])
    np.testing.assert_allclose(dense(tt.add(a, a)), 2 * np.arange(4.0))


def test_scan_path_equals_python_loop():
    """Uniform interior ranks take the lax.scan path; mixed ranks the loop."""
    d, n = 12, 3
    uniform = rand_tt(5, (n,) * d, 2)
    mixed = tt.TensorTrain([*uniform.cores[:5], uniform.cores[5] + 0.0, *uniform.cores[6:]])
    ragged = rand_tt(5, (n,) * d, [2, 3] * 5 + [2])  # interior shapes alternate: loop path
    rng = np.random.default_rng(1)
    vs = jnp.asarray(rng.standard_normal((d, 20, n)))
    idx = jnp.asarray(rng.integers(0, n, (20, d)))
    for a in (uniform, mixed, ragged):
        cores = [np.asarray(c) for c in a.cores]
        ref = np.ones((20, 1))
        ref_get = np.ones((20, 1))
        for k, c in enumerate(cores):
            ref = np.einsum("nr,ris,ni->ns", ref, c, np.asarray(vs[k]))
            ref_get = np.einsum("nr,nrs->ns", ref_get, c[:, np.asarray(idx[:, k]), :].transpose(1, 0, 2))
        assert rel(tt.contract_rank1(a, vs), ref[:, 0]) < 1e-12
        assert rel(tt.get(a, idx), ref_get[:, 0]) < 1e-12


# -------------------------------------------------------------- decompositions


@pytest.mark.parametrize("dtype", DTYPES)
def test_from_dense_recovers_low_rank_tensor(dtype):
    a = rand_tt(6, (4, 5, 3, 4), (2, 3, 2), dtype)
    fa = dense(a).astype(dtype)
    b = tt.from_dense(jnp.asarray(fa), eps=1e-5 if dtype == jnp.float32 else 1e-12)
    assert b.ranks == a.ranks
    assert rel(dense(b), fa) < (1e-5 if dtype == jnp.float32 else 1e-10)


def test_from_dense_honours_eps_bound():
    x = jnp.asarray(np.random.default_rng(2).standard_normal((4, 5, 6, 3)))
    sizes = []
    for eps in (0.0, 0.05, 0.2, 0.5):
        a = tt.from_dense(x, eps=eps)
        assert rel(dense(a), x) <= eps * (1 + 1e-10) + 1e-12
        sizes.append(a.size)
    assert sizes == sorted(sizes, reverse=True) and sizes[-1] < sizes[0]


def test_from_dense_max_rank_and_jit():
    x = jnp.asarray(np.random.default_rng(3).standard_normal((3, 4, 5)))
    a = jax.jit(lambda y: tt.from_dense(y, max_rank=2))(x)
    assert max(a.ranks) <= 2
    # Full-rank TT-SVD is exact.
    assert rel(dense(tt.from_dense(x)), np.asarray(x)) < 1e-12


@pytest.mark.parametrize("dtype", DTYPES)
def test_orthogonalize_canonical_forms(dtype):
    a = rand_tt(7, (3, 4, 5, 3), 3, dtype)
    fa = dense(a)
    for center in range(a.ndim):
        o = tt.orthogonalize(a, center)
        assert rel(dense(o), fa) < TOL[dtype]
        for k, c in enumerate(o.cores):
            c = np.asarray(c, np.float64)
            r0, n, r1 = c.shape
            if k < center:
                m = c.reshape(r0 * n, r1)
                np.testing.assert_allclose(m.T @ m, np.eye(r1), atol=TOL[dtype] * 10)
            elif k > center:
                m = c.reshape(r0, n * r1)
                np.testing.assert_allclose(m @ m.T, np.eye(r0), atol=TOL[dtype] * 10)
        assert abs(np.linalg.norm(np.asarray(o.cores[center])) - np.linalg.norm(fa)) < TOL[dtype] * np.linalg.norm(fa)


def test_round_recovers_true_ranks_of_inflated_sum():
    a = rand_tt(8, (4, 4, 4, 4, 4), (2, 3, 3, 2))
    s = tt.add(tt.add(a, a), tt.scale(a, -0.5))  # = 1.5 a, ranks 3x inflated
    assert s.ranks == (1, 6, 9, 9, 6, 1)
    r = tt.round(s, eps=1e-10)
    assert r.ranks == a.ranks
    assert rel(dense(r), 1.5 * dense(a)) < 1e-10


@pytest.mark.parametrize("eps", [0.1, 0.3])
def test_round_honours_eps_bound(eps):
    a = tt.from_dense(jnp.asarray(np.random.default_rng(4).standard_normal((4, 4, 4, 4))))
    r = tt.round(a, eps=eps)
    assert rel(dense(r), dense(a)) <= eps * (1 + 1e-10)
    assert sum(r.ranks) < sum(a.ranks)


def test_round_max_rank_is_jittable_and_optimal_for_matrices():
    """For d = 2 rounding is the truncated SVD (Eckart–Young)."""
    x = np.random.default_rng(5).standard_normal((6, 7))
    a = tt.from_dense(jnp.asarray(x))
    r = jax.jit(lambda b: tt.round(b, max_rank=3))(a)
    u, s, vt = np.linalg.svd(x)
    best = (u[:, :3] * s[:3]) @ vt[:3]
    assert r.ranks == (1, 3, 1)
    np.testing.assert_allclose(dense(r), best, atol=1e-10)


# -------------------------------------------------------------- transformations


def test_jit_vmap_grad():
    a, b = rand_tt(9, (3, 4, 3), 2), rand_tt(10, (3, 4, 3), 3)
    assert np.isclose(jax.jit(tt.inner)(a, b), tt.inner(a, b))
    # vmap over a batch of tensor trains built by vmap
    keys = jax.random.split(jax.random.key(0), 4)
    batch = jax.vmap(lambda k: tt.random(k, (3, 4, 3), 2, dtype=jnp.float64))(keys)
    assert batch.batch_shape == (4,) and batch.ranks == (1, 2, 2, 1)
    norms = jax.vmap(tt.norm)(batch)
    for i in range(4):
        member = jax.tree_util.tree_map(lambda c: c[i], batch)
        assert np.isclose(norms[i], np.linalg.norm(dense(member)))
    # grad of inner w.r.t. cores against central finite differences
    grads = jax.grad(lambda x: tt.inner(x, b))(a)
    h = 1e-6
    for k in range(3):
        for pos in [(0, 0, 0), (0, 1, 1)]:
            if any(p >= s for p, s in zip(pos, a.cores[k].shape)):
                continue
            def shifted(delta):
                cores = list(a.cores)
                cores[k] = cores[k].at[pos].add(delta)
                return float(tt.inner(tt.TensorTrain(cores), b))
            fd = (shifted(h) - shifted(-h)) / (2 * h)
            assert abs(fd - float(grads.cores[k][pos])) < 1e-6 * max(1.0, abs(fd))


def test_grad_of_contract_rank1_in_vectors():
    a = rand_tt(11, (3, 3, 3), 2)
    v = jnp.asarray(np.random.default_rng(6).standard_normal((3, 1, 3)))
    g = jax.grad(lambda x: tt.contract_rank1(a, x).sum())(v)
    h = 1e-6
    e = jnp.zeros_like(v).at[1, 0, 2].set(h)
    fd = (tt.contract_rank1(a, v + e).sum() - tt.contract_rank1(a, v - e).sum()) / (2 * h)
    assert abs(float(fd) - float(g[1, 0, 2])) < 1e-7


# ---------------------------------------------------------------------- errors


def test_constructor_errors():
    with pytest.raises(ValueError, match="ranks do not chain"):
        tt.TensorTrain([jnp.ones((1, 2, 3)), jnp.ones((2, 2, 1))])
    with pytest.raises(ValueError, match="r_0 must be 1"):
        tt.TensorTrain([jnp.ones((2, 2, 1))])
    with pytest.raises(ValueError, match="r_d must be 1"):
        tt.TensorTrain([jnp.ones((1, 2, 2))])
    with pytest.raises(ValueError, match=r"cores\[0\] must be 3-D"):
        tt.TensorTrain([jnp.ones((2, 2))])
    with pytest.raises(TypeError, match="floating"):
        tt.TensorTrain([jnp.ones((1, 2, 1), jnp.int32)])
    with pytest.raises(TypeError, match="non-empty sequence"):
        tt.TensorTrain([])
    with pytest.raises(ValueError, match="ranks must be >= 1"):
        tt.random(jax.random.key(0), (2, 2, 2), (1, 0, 1, 1))
    with pytest.raises(ValueError, match="ranks must be >= 1"):
        tt.random(jax.random.key(0), (2, 2, 2), 0)
    with pytest.raises(ValueError, match="start and end with 1"):
        tt.zeros((2, 2), (2, 2, 1))
    with pytest.raises(ValueError, match="shape must be >= 1"):
        tt.zeros((2, 0))


def test_truncation_errors():
    a = rand_tt(12, (2, 3, 2), 2)
    with pytest.raises(ValueError, match="max_rank must be >= 1"):
        tt.round(a, max_rank=0)
    with pytest.raises(ValueError, match="eps must be >= 0"):
        tt.round(a, eps=-0.1)
    with pytest.raises(ValueError, match="max_rank must be >= 1"):
        tt.from_dense(jnp.ones((2, 2)), max_rank=0)
    with pytest.raises(ValueError, match="eps must be >= 0"):
        tt.from_dense(jnp.ones((2, 2)), eps=-1.0)
    with pytest.raises(ValueError, match="x must be finite"):
        tt.from_dense(jnp.array([[1.0, jnp.nan], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="outside jax.jit"):
        jax.jit(lambda b: tt.round(b, eps=0.1))(a)


def test_operation_errors():
    a, b = rand_tt(13, (2, 3, 2), 2), rand_tt(14, (2, 3, 3), 2)
    for op in (tt.add, tt.inner, tt.hadamard):
        with pytest.raises(ValueError, match="shapes differ"):
            op(a, b)
    with pytest.raises(TypeError, match="must be a TensorTrain"):
        tt.norm(np.ones((2, 3)))
    with pytest.raises(ValueError, match="out of range"):
        tt.get(a, jnp.array([[0, 3, 0]]))
    with pytest.raises(ValueError, match="out of range"):
        tt.get(a, jnp.array([[-1, 0, 0]]))
    with pytest.raises(ValueError, match=r"shape \(N, d\)"):
        tt.get(a, jnp.array([[0, 0]]))
    with pytest.raises(TypeError, match="integer"):
        tt.get(a, jnp.array([[0.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="d = 3 arrays"):
        tt.contract_rank1(a, [jnp.ones((4, 2)), jnp.ones((4, 3))])
    with pytest.raises(ValueError, match=r"vectors\[1\] must have shape"):
        tt.contract_rank1(a, [jnp.ones((4, 2)), jnp.ones((4, 2)), jnp.ones((4, 2))])
    with pytest.raises(ValueError, match="center must be <= 2"):
        tt.orthogonalize(a, 3)


# ------------------------------------------------------------------- properties

shapes = st.lists(st.integers(2, 3), min_size=2, max_size=4).map(tuple)
PROPS = settings(max_examples=12, deadline=None)


def tt_pair(data, shape):
    r1, r2 = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    s1, s2 = data.draw(st.integers(0, 2**16)), data.draw(st.integers(0, 2**16))
    return rand_tt(s1, shape, r1), rand_tt(s2, shape, r2)


@PROPS
@given(shape=shapes, data=st.data())
def test_prop_inner_symmetric(shape, data):
    a, b = tt_pair(data, shape)
    assert np.isclose(tt.inner(a, b), tt.inner(b, a), rtol=1e-10, atol=1e-12)


@PROPS
@given(shape=shapes, data=st.data(), alpha=st.floats(-3, 3), beta=st.floats(-3, 3))
def test_prop_inner_bilinear(shape, data, alpha, beta):
    a, b = tt_pair(data, shape)
    c, _ = tt_pair(data, shape)
    lhs = tt.inner(tt.add(tt.scale(a, alpha), tt.scale(b, beta)), c)
    rhs = alpha * tt.inner(a, c) + beta * tt.inner(b, c)
    assert np.isclose(lhs, rhs, rtol=1e-9, atol=1e-9)


@PROPS
@given(shape=shapes, data=st.data())
def test_prop_norm_squared_is_inner(shape, data):
    a, _ = tt_pair(data, shape)
    assert np.isclose(tt.norm(a) ** 2, tt.inner(a, a), rtol=1e-10)


@PROPS
@given(shape=shapes, data=st.data())
def test_prop_add_is_dense_sum(shape, data):
    a, b = tt_pair(data, shape)
    np.testing.assert_allclose(dense(tt.add(a, b)), dense(a) + dense(b), atol=1e-12)


@PROPS
@given(shape=shapes, data=st.data())
def test_prop_hadamard_is_elementwise_product(shape, data):
    a, b = tt_pair(data, shape)
    np.testing.assert_allclose(dense(tt.hadamard(a, b)), dense(a) * dense(b), atol=1e-12)


@PROPS
@given(shape=shapes, data=st.data())
def test_prop_inner_is_sum_of_hadamard(shape, data):
    a, b = tt_pair(data, shape)
    ones = tt.rank_one([jnp.ones(n, jnp.float64) for n in shape])
    assert np.isclose(tt.inner(a, b), tt.inner(tt.hadamard(a, b), ones), rtol=1e-10, atol=1e-12)


@PROPS
@given(shape=shapes, data=st.data(), eps=st.sampled_from([1e-8, 0.1, 0.4]))
def test_prop_round_idempotent(shape, data, eps):
    """Rounding twice changes nothing beyond the error bound; with a tolerance far below the
    spectral gap of an exactly representable sum it is idempotent. (With a large ``eps`` the second
    call has a fresh error budget and may truncate further, so only non-increasing ranks hold.)"""
    a, b = tt_pair(data, shape)
    once = tt.round(tt.add(a, b), eps=eps)
    twice = tt.round(once, eps=eps)
    assert all(r2 <= r1 for r2, r1 in zip(twice.ranks, once.ranks))
    assert rel(dense(twice), dense(once)) <= eps * (1 + 1e-8) + 1e-12
    if eps < 1e-6:
        assert twice.ranks == once.ranks
        assert rel(dense(twice), dense(once)) < 1e-10


@PROPS
@given(shape=shapes, data=st.data())
def test_prop_contract_rank1_is_dense_contraction(shape, data):
    a, _ = tt_pair(data, shape)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    vs = [rng.standard_normal((5, n)) for n in shape]
    letters = "abcd"[: len(shape)]
    ref = np.einsum(f"{letters}," + ",".join(f"n{c}" for c in letters) + "->n", dense(a), *vs)
    np.testing.assert_allclose(tt.contract_rank1(a, vs), ref, atol=1e-10)


@PROPS
@given(shape=shapes, data=st.data())
def test_prop_get_is_dense_indexing(shape, data):
    a, _ = tt_pair(data, shape)
    idx = np.array([[data.draw(st.integers(0, n - 1)) for n in shape] for _ in range(3)])
    np.testing.assert_allclose(tt.get(a, jnp.asarray(idx)), dense(a)[tuple(idx.T)], atol=1e-12)


@PROPS
@given(shape=shapes, data=st.data())
def test_prop_from_dense_full_roundtrip(shape, data):
    x = np.random.default_rng(data.draw(st.integers(0, 2**16))).standard_normal(shape)
    np.testing.assert_allclose(dense(tt.from_dense(jnp.asarray(x))), x, atol=1e-11)


@PROPS
@given(shape=shapes, data=st.data(), center=st.integers(0, 3))
def test_prop_orthogonalize_preserves_tensor(shape, data, center):
    a, _ = tt_pair(data, shape)
    o = tt.orthogonalize(a, min(center, len(shape) - 1))
    np.testing.assert_allclose(dense(o), dense(a), atol=1e-11)


@PROPS
@given(shape=shapes, data=st.data())
def test_prop_norm_triangle_inequality(shape, data):
    a, b = tt_pair(data, shape)
    assert tt.norm(tt.add(a, b)) <= tt.norm(a) + tt.norm(b) + 1e-10
