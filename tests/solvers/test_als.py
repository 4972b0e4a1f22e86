"""TT-ALS and DMRG: exact recovery, monotone local solves, chunking, vector-valued fits, errors."""

import re

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxtt import tt
from jaxtt.basis import Legendre
from jaxtt.ftt import FTT, constant_init
from jaxtt.errors import NumericalError
from jaxtt.solvers import ALS, DMRG, als_sweep, dmrg_sweep, fit
from jaxtt.solvers.als import compiled_sweep

D, M = 4, 4
BASES = [Legendre(M, orthonormal=True)] * D


def target_and_data(rank=3, n=1500, seed=0):
    target = FTT(tt.random(jax.random.key(seed), (M,) * D, rank, dtype=jnp.float64), BASES)
    x = jnp.asarray(np.random.default_rng(seed).uniform(-1, 1, (n, D)))
    return target, x, target(x)


def start(rank, seed=1):
    return FTT(constant_init(BASES, rank, dtype=jnp.float64, key=jax.random.key(seed)), BASES)


def objective(model, x, y, reg):
    core = np.asarray(model.tt.cores[0])  # centre after a sweep: ‖A‖ = ‖G_0‖
    return float(np.sum((np.asarray(model(x)) - np.asarray(y)) ** 2) + reg * np.sum(core**2))


def test_als_recovers_exactly_representable_target():
    """Single-site ALS converges linearly (about 10x per sweep here); DMRG below needs one sweep."""
    target, x, y = target_and_data(rank=2, n=2000)
    x_val = jnp.asarray(np.random.default_rng(9).uniform(-1, 1, (500, D)))
    model, hist = fit(start(3), x, y, ALS(), max_steps=12, validation=(x_val, target(x_val)), progress=False,
                      tol=1e-9)
    assert hist.status == "tol"
    assert hist.train_residual[-1] < 1e-8
    assert hist.val_residual[-1] < 1e-8
    loss = np.asarray(hist.loss)
    assert np.all(np.diff(loss) <= 1e-10 * loss[:-1])
    # The reported loss is J/(2N) of the returned model, recomputed here with dense NumPy.
    np.testing.assert_allclose(loss[-1], objective(model, x, y, 0.0) / (2 * len(y)), rtol=1e-6, atol=1e-30)


@pytest.mark.parametrize("ranks", [2, (2, 3, 2)], ids=["uniform-scan", "ragged-loop"])
def test_each_local_solve_does_not_increase_objective(ranks):
    _, x, y = target_and_data(rank=4)
    y = y + 0.05 * jnp.asarray(np.random.default_rng(3).normal(size=y.shape))  # not representable
    reg = 1e-3
    model = start(ranks)
    previous = np.inf
    for _ in range(3):
        model, objs = jax.jit(lambda m: als_sweep(m, x, y, reg=reg, chunk_size=512))(model)
        objs = np.asarray(objs)
        assert objs[0] <= previous * (1 + 1e-10)
        assert np.all(np.diff(objs) <= 1e-10 * objs[:-1])
        previous = objs[-1]
    # The reported objective is the true regularised objective of the returned model.
    assert np.isclose(previous, objective(model, x, y, reg), rtol=1e-8)


def test_chunked_and_unchunked_accumulation_agree():
    _, x, y = target_and_data(n=300)
    sweep = jax.jit(als_sweep, static_argnames="chunk_size")  # compiled, not dispatched op by op
    a, oa = sweep(start(2), x, y, reg=1e-6, chunk_size=37)  # 37 does not divide 300: padding
    b, ob = sweep(start(2), x, y, reg=1e-6, chunk_size=10_000)
    np.testing.assert_allclose(oa, ob, rtol=1e-9)
    for ca, cb in zip(a.tt.cores, b.tt.cores):
        np.testing.assert_allclose(ca, cb, rtol=1e-7, atol=1e-10)


def test_vector_valued_fit_equals_separate_scalar_fits():
    x = jnp.asarray(np.random.default_rng(4).uniform(-1, 1, (200, D)))
    ys = jnp.stack([jnp.sin(x.sum(1)), jnp.cos(x[:, 0] * x[:, 1])], axis=1)
    batch = jax.vmap(lambda k: constant_init(BASES, 2, dtype=jnp.float64, key=k))(jax.random.split(jax.random.key(5), 2))
    joint, result = fit(FTT(batch, BASES), x, ys, ALS(reg=1e-6), max_steps=2, progress=False)
    total = 0.0
    for j in range(2):
        member = FTT(jax.tree_util.tree_map(lambda c: c[j], batch), BASES)
        alone, alone_result = fit(member, x, ys[:, j], ALS(reg=1e-6), max_steps=2, progress=False)
        np.testing.assert_allclose(joint(x)[:, j], alone(x), rtol=1e-8, atol=1e-10)
        total += alone_result.loss[-1]
    np.testing.assert_allclose(result.loss[-1], total, rtol=1e-10)


def test_float32_sweep_converges():
    target, x, y = target_and_data(rank=2, n=2000)
    model = FTT(constant_init(BASES, 3, dtype=jnp.float32, key=jax.random.key(1)), BASES)
    model, hist = fit(model, x.astype(jnp.float32), y.astype(jnp.float32), ALS(), max_steps=8, progress=False)
    assert model.tt.dtype == jnp.float32
    assert hist.train_residual[-1] < 1e-4


def test_dmrg_finds_rank_three_from_rank_one():
    _, x, y = target_and_data(rank=3, n=2000)
    model, hist = fit(start(1), x, y, DMRG(eps=1e-9), max_steps=3, progress=False)
    assert hist.ranks[0] == (1, 1, 1, 1, 1) and hist.ranks[-1] == (1, 3, 3, 3, 1)
    assert hist.train_residual[-1] < 1e-8


def test_dmrg_matrix_free_cg_path_matches_normal_equations():
    _, x, y = target_and_data(rank=2, n=800)
    dense, obj_dense = dmrg_sweep(start(2), x, y, max_rank=3, dense_limit=10**6)
    matrix_free, obj_cg = dmrg_sweep(start(2), x, y, max_rank=3, dense_limit=1, cg_maxiter=300)
    assert matrix_free.tt.ranks == dense.tt.ranks == (1, 3, 3, 3, 1)
    np.testing.assert_allclose(obj_cg, obj_dense, rtol=1e-6)
    np.testing.assert_allclose(matrix_free(x), dense(x), rtol=1e-5, atol=1e-6 * float(jnp.abs(y).max()))


def test_fit_errors():
    _, x, y = target_and_data(n=50)
    model = start(2)
    with pytest.raises(ValueError, match="at least one sample"):
        fit(model, x[:0], y[:0], ALS(), max_steps=1, progress=False)
    with pytest.raises(ValueError, match="match x"):
        fit(model, x, y[:-1], ALS(), max_steps=1, progress=False)
    with pytest.raises(ValueError, match="x must be finite"):
        fit(model, x.at[3, 1].set(jnp.nan), y, ALS(), max_steps=1, progress=False)
    with pytest.raises(ValueError, match="y must be finite"):
        fit(model, x, y.at[0].set(jnp.inf), ALS(), max_steps=1, progress=False)
    with pytest.raises(ValueError, match="x_val must have shape"):
        fit(model, x, y, ALS(), max_steps=1, validation=(x[:, :2], y), progress=False)
    with pytest.raises(TypeError, match="validation must be a pair"):
        fit(model, x, y, ALS(), max_steps=1, validation=x, progress=False)
    with pytest.raises(ValueError, match="reg must be >= 0"):
        ALS(reg=-1.0)
    with pytest.raises(ValueError, match="max_steps must be >= 0"):
        fit(model, x, y, ALS(), max_steps=-1, progress=False)
    with pytest.raises(ValueError, match="eps must be >= 0"):
        DMRG(eps=-1.0)
    with pytest.raises(TypeError, match="solver must be a Solver"):
        fit(model, x, y, "als", max_steps=1, progress=False)
    too_big = FTT(constant_init(BASES, 5, dtype=jnp.float64, key=jax.random.key(0)), BASES)
    with pytest.raises(ValueError, match="larger than the basis allows"):
        fit(too_big, x, y, ALS(), max_steps=1, progress=False)
    with pytest.raises(TypeError, match="FTT"):
        fit(model.tt, x, y, ALS(), max_steps=1, progress=False)


def test_non_finite_local_solve_names_the_core_of_its_sweep_position():
    """Sweep positions map to cores 0..d-2 then d-1..1; the first non-finite position of any output is named."""
    _, x, y = target_and_data(n=50)
    state = ALS().init(start(2), x, y)
    assert state.objectives.shape == (2 * (D - 1),)
    objectives = state.objectives.at[4].set(jnp.nan).at[5].set(jnp.inf)  # positions 4, 5 solve cores 2, 1
    with pytest.raises(NumericalError, match="non-finite local solution at step 3, core 2; increase reg") as err:
        ALS().check(eqx.tree_at(lambda s: s.objectives, state, objectives), 3)
    assert (err.value.step, err.value.core) == (3, 2)
    assert isinstance(err.value, ValueError) and isinstance(err.value, FloatingPointError)


def test_sparse_bspline_assembly_equals_dense():
    """Banded Gram assembly from local B-spline values gives the same sweep as the dense one."""
    from jaxtt.basis import BSpline
    from jaxtt.solvers.als import local_plans

    bases = [BSpline(7, domain=(-1.2, 1.2)), Legendre(4), BSpline(6, degree=3)]
    x = jnp.asarray(np.random.default_rng(8).uniform(-1, 1, (700, 3)))
    y = jnp.sin(x.sum(1)) * jnp.cos(x[:, 0])
    model = FTT(constant_init(bases, 3, dtype=jnp.float64, key=jax.random.key(0)), bases)
    plans = local_plans(model, x, chunk_size=32)
    assert plans[1] is None and plans[0] is not None
    sweep = jax.jit(als_sweep)
    sparse, obj_sparse = sweep(model, x, y, plans, reg=1e-6)
    dense, obj_dense = sweep(model, x, y, None, reg=1e-6)
    np.testing.assert_allclose(obj_sparse, obj_dense, rtol=1e-9)
    np.testing.assert_allclose(sparse(x), dense(x), rtol=1e-8, atol=1e-10)


def test_matrix_free_cg_local_solves_match_cholesky():
    _, x, y = target_and_data(rank=2, n=600)
    sweep = jax.jit(als_sweep, static_argnames="cg_maxiter")
    chol, obj_chol = sweep(start(2), x, y, None, reg=1e-6)
    cg, obj_cg = sweep(start(2), x, y, None, reg=1e-6, cg_maxiter=200)
    np.testing.assert_allclose(obj_cg, obj_chol, rtol=1e-6)
    fitted, hist = fit(start(2), x, y, ALS(reg=1e-6, cg_maxiter=200), max_steps=2, progress=False)
    assert hist.loss[-1] * 2 * len(y) <= obj_chol[-1] * (1 + 1e-6)


def _dense_design(left, feats, right):
    rows = []
    for i in range(left.shape[0]):
        row = left[i]
        for f in (*feats, right):
            row = np.kron(row, f[i])
        rows.append(row)
    return np.stack(rows)


@pytest.mark.parametrize("n_feats", [1, 2], ids=["single-site", "two-site"])
def test_matrix_free_pass_matches_dense_design_matrix(n_feats):
    """residual_pass / squared_residual equal y − A g, Aᵀ(y − A g) and ‖y − A g‖² of the explicit design."""
    from jaxtt.solvers._local import chunked, residual_pass, squared_residual

    rng = np.random.default_rng(4)
    n, shapes = 203, [3, 4, 5, 2][: n_feats + 2]
    left, *feats, right = (rng.standard_normal((n, s)) for s in shapes)
    y = rng.standard_normal(n)
    design = _dense_design(left, feats, right)
    g = rng.standard_normal(design.shape[1])
    factors = [jnp.asarray(a) for a in (left, *feats, right)]
    gradient, v = residual_pass(chunked(factors, 50), jnp.asarray(g), chunked([jnp.asarray(y)], 50)[0])
    np.testing.assert_allclose(np.ravel(v)[:n], y - design @ g, rtol=1e-12)
    np.testing.assert_allclose(np.ravel(v)[n:], 0.0)  # zero-padded rows
    np.testing.assert_allclose(gradient, design.T @ (y - design @ g), rtol=1e-12)
    np.testing.assert_allclose(squared_residual(factors[0], factors[1:-1], factors[-1], jnp.asarray(y), jnp.asarray(g), 50),
                               np.sum((y - design @ g) ** 2), rtol=1e-12)


def test_kronecker_preconditioner_is_exact_for_independent_factors():
    """On the Cartesian product of left, feature and right vectors AᵀA = N S_L ⊗ S_φ ⊗ S_R exactly."""
    from jaxtt.solvers._local import kronecker_preconditioner

    rng = np.random.default_rng(5)
    base = [rng.standard_normal((k, s)) for k, s in [(4, 2), (5, 3), (3, 2)]]
    grid = np.stack(np.meshgrid(*[np.arange(len(b)) for b in base], indexing="ij"), -1).reshape(-1, 3)
    left, feat, right = (b[grid[:, i]] for i, b in enumerate(base))
    design = _dense_design(left, [feat], right)
    reg = 0.3
    apply = kronecker_preconditioner(jnp.asarray(left), [jnp.asarray(feat)], jnp.asarray(right), reg)
    v = rng.standard_normal(design.shape[1])
    np.testing.assert_allclose(apply(jnp.asarray(v)), np.linalg.solve(design.T @ design + reg * np.eye(len(v)), v),
                               rtol=1e-10)


def test_cgls_with_enough_iterations_is_the_exact_ridge_solution():
    from jaxtt.solvers._local import solve_cgls

    rng = np.random.default_rng(6)
    left, feat, right = (rng.standard_normal((400, s)) for s in (3, 4, 2))
    y = rng.standard_normal(400)
    design = _dense_design(left, [feat], right)
    reg = 1e-3
    exact = np.linalg.solve(design.T @ design + reg * np.eye(24), design.T @ y)
    g, objective = solve_cgls(jnp.asarray(left), [jnp.asarray(feat)], jnp.asarray(right), jnp.asarray(y), reg,
                              jnp.zeros(24), 64, 60)
    np.testing.assert_allclose(g, exact, rtol=1e-8)
    np.testing.assert_allclose(objective, np.sum((y - design @ exact) ** 2) + reg * exact @ exact, rtol=1e-10)


def test_inexact_cg_sweeps_stay_monotone_and_converge():
    """A few warm-started CG iterations per local solve never increase J and still fit the target."""
    target, x, y = target_and_data(rank=2, n=1500)
    model, previous = start(2), np.inf
    sweep = jax.jit(als_sweep, static_argnames="cg_maxiter")
    for _ in range(6):
        model, objs = sweep(model, x, y, reg=1e-8, cg_maxiter=3)
        objs = np.asarray(objs)
        assert objs[0] <= previous * (1 + 1e-10)
        assert np.all(np.diff(objs) <= 1e-10 * objs[:-1])
        previous = objs[-1]
    assert np.isclose(previous, objective(model, x, y, 1e-8), rtol=1e-8)  # CGLS's running residual is exact
    assert np.linalg.norm(model(x) - y) / np.linalg.norm(y) < 1e-3


def test_als_fits_reuse_the_compiled_sweep():
    """Refits with new data values, models and reg hit the same compiled program."""
    _, x, y = target_and_data(rank=2, n=200)
    sweep = compiled_sweep(0, 64, 0)
    before = sweep._cache_size()
    for seed, reg in [(1, 0.0), (2, 1e-3), (3, 0.5)]:
        fit(start(2, seed), x + 0.01 * seed, y, ALS(reg=reg, chunk_size=64), max_steps=1, progress=False)
    assert sweep._cache_size() == before + 1


def test_sweeps_check_the_data_shapes_even_under_jit():
    """Too few columns were read out of bounds, extra ones ignored; NaN targets gave NaN cores."""
    bases = [Legendre(3)] * 3
    model = FTT(constant_init(bases, 2, dtype=jnp.float64, key=jax.random.key(0)), bases)
    x = jnp.zeros((20, 3))
    for bad in (x[:, :2], jnp.zeros((20, 4))):
        with pytest.raises(ValueError, match=r"x must have shape \(N, 3\)"):
            als_sweep(model, bad, x[:, 0])
        with pytest.raises(ValueError, match=r"x must have shape \(N, 3\)"):
            jax.jit(als_sweep)(model, bad, x[:, 0])
        with pytest.raises(ValueError, match=r"x must have shape \(N, 3\)"):
            dmrg_sweep(model, bad, x[:, 0])
    with pytest.raises(ValueError, match="y must have shape"):
        jax.jit(als_sweep)(model, x, x[:10, 0])
    with pytest.raises(ValueError, match="y must be finite"):
        als_sweep(model, x, x[:, 0].at[3].set(jnp.nan))


@pytest.mark.parametrize("cg_maxiter", [0, 3])
def test_vmapped_sweeps_hand_lapack_one_matrix_at_a_time(cg_maxiter):
    """jaxlib's batched CPU LAPACK kernels split a batch over XLA's thread pool and block a pool thread until it
    finishes; two at once deadlock a 2-thread pool. The compiled sweep of a vector-valued FTT must therefore call
    every LAPACK kernel (QR, eigh, Cholesky, triangular solves) on a single matrix."""
    x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (64, D)))
    y = jnp.stack([jnp.sin(x.sum(1)), jnp.cos(x[:, 0])], axis=1)
    batch = jax.vmap(lambda k: constant_init(BASES, 2, dtype=jnp.float64, key=k))(jax.random.split(jax.random.key(1), 2))
    state = ALS(cg_maxiter=cg_maxiter, chunk_size=16, sparse=False).init(FTT(batch, BASES), x, y)
    program = compiled_sweep(1, 16, cg_maxiter).lower(state.model, state.x, state.y, None, jnp.asarray(1e-6),
                                                      state.mask).compile().as_text()
    operands = re.findall(r'custom_call_target="lapack_\w+".*?operand_layout_constraints=\{\w+\[([\d,]*)\]', program)
    assert len(operands) >= 4  # the QRs of the sweep and the local solves' factorizations
    assert all(len(shape.split(",")) <= 2 for shape in operands), operands
