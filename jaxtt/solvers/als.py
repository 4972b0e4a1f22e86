"""TT-ALS: alternating least squares for functional tensor trains.

Fits ``f(x) = ⟨A, Φ(x)⟩`` (:class:`jaxtt.ftt.FTT`) to samples ``(x_s, y_s)`` by

    min_A  J(A) = Σ_s (y_s − f(x_s))² + λ ‖A‖_F²,

optimising one core at a time with the others fixed (Holtz, Rohwedder,
Schneider 2012). The train is kept in mixed canonical form with the
orthogonality centre at the core being solved: then ``‖A‖_F = ‖G_k‖_F`` and the
local problem is the ridge regression of :mod:`jaxtt.solvers._local` — its
exact solution can only decrease ``J``. After each local solve a QR step moves
the centre to the next core (left-to-right, then back).

One *sweep* is ``2(d-1)`` local solves: cores ``1..d-1`` left to right, then
``d..2`` right to left. Left interfaces are updated as the centre moves right,
right interfaces as it moves back, so a sweep costs
``O(N Σ_k (r_{k-1} m_k r_k)²)`` for the Gram matrices plus ``O(N d m r²)`` for
interfaces.

Initialisation matters: from a random TT the sweeps stall at d ≥ 8, from
:func:`jaxtt.ftt.constant_init` (the constant function plus small noise, the
default of :class:`jaxtt.ftt.FTTDenoiser`) they converge.

Bases matter for long trains: with left-orthogonal cores ``Q_k`` the left
interfaces obey ``E[L_{k+1} L_{k+1}ᵀ] = Q_kᵀ (E[L_k L_kᵀ] ⊗ E[φ_k φ_kᵀ]) Q_k``
for independent inputs. A basis orthonormal for the data (``E[φ φᵀ] = I``) keeps
the interfaces at unit second moment; plain Legendre on uniform data
(``E[φ φᵀ] = diag(1/(2i+1))``) shrinks them core by core — at d = 64 the float32
Gram matrices of the middle cores underflow (measured: the largest Gram
diagonal fell about 10× per core, NaN at core 33), the orthonormal basis runs
the same fit in float32 without trouble.

Local solves: exact Cholesky on the ``(r m r)²`` normal equations
(``O(N (r m r)²)`` per core), or ``cg_maxiter`` warm-started iterations of
Kronecker-preconditioned CGLS (``O(N r m r)`` each, never forming the Gram
matrix). For independent inputs the Gram matrix of a canonical-form train is
close to the Kronecker product the preconditioner inverts, and a handful of
iterations per solve reaches the exact solver's held-out error in a fraction of
its time (benchmarks/bench_als.py).
"""

from __future__ import annotations

from functools import cache, partial

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, PartitionSpec
from jaxtyping import Array, Float, Int

from jaxtt._linalg import qr
from jaxtt._sizes import als_sweep_bytes
from jaxtt._validation import check_bool, check_instance, check_int, check_real, is_concrete
from jaxtt.errors import NumericalError
from jaxtt.ftt.functional import FTT
from jaxtt.solvers._local import normal_equations, solve_cgls, solve_normal, squared_residual
from jaxtt.solvers._sparse import local_plan, normal_equations_local, squared_residual_local, supports_local
from jaxtt.solvers.fit import Solver
from jaxtt.solvers.problem import check_feasible_ranks, check_fit_data, check_training_data, model_loss
from jaxtt.sharding import check_mesh, replicate, shard_rows
from jaxtt.tt import TensorTrain, absorb, orthogonalize

__all__ = ["ALS", "ALSState", "als_sweep", "compiled_sweep", "local_plans", "sweep_memory", "sweep_order"]


def _local_solve(left, feat, right, plan, core, y, mask, reg, chunk_size, cg_maxiter, axis_name):
    if cg_maxiter:
        g, objective = solve_cgls(left, [feat], right, y, reg, core.reshape(-1), chunk_size, cg_maxiter, mask,
                                  axis_name)
        return g.reshape(core.shape), objective
    if plan is None:
        g = solve_normal(*normal_equations(left, [feat], right, y, chunk_size, axis_name), reg)
    else:
        g = solve_normal(*normal_equations_local(plan, left, right, y, feat.shape[1]), reg)
    if plan is None:
        residual = squared_residual(left, [feat], right, y, g, chunk_size, axis_name)
    else:
        residual = squared_residual_local(plan, left, right, y, g, feat.shape[1])
    return g.reshape(left.shape[1], feat.shape[1], right.shape[1]), residual + reg * g @ g


def local_plans(model: FTT, x, chunk_size: int = 512):
    """Sparse-assembly plans for the locally supported bases of ``model`` (``None`` elsewhere).

    Computed eagerly from concrete ``x``; pass the result to :func:`als_sweep`.
    """
    return tuple(
        local_plan(b, x[:, k], chunk_size, model.tt.dtype) if supports_local(b) else None
        for k, b in enumerate(model.bases)
    )


def als_sweep(
    model: FTT,
    x: Float[Array, "N d"],
    y: Float[Array, " N"],
    plans=None,
    *,
    reg: float = 0.0,
    chunk_size: int = 4096,
    cg_maxiter: int = 0,
    mask: Float[Array, " N"] | None = None,
    axis_name: str | None = None,
) -> tuple[FTT, Float[Array, " steps"]]:
    """One ALS sweep; pure and jit-able (``reg`` static or traced; ``chunk_size`` and ``cg_maxiter`` static).

    Inside ``jax.shard_map`` with the rows split over the mesh axis ``axis_name``
    every sum over rows (Gram matrices, right-hand sides, CGLS products,
    residuals) is completed by a ``psum`` and each device runs the same small
    solves, so all devices hold the same updated cores (what
    ``ALS(mesh=...)`` does, :func:`compiled_sweep`).

    Args:
        model: scalar FTT (no batch axes; ``jax.vmap`` this function over a batch
            of FTTs for vector-valued targets, with ``in_axes=(0, None, 1)``).
        x: inputs ``(N, d)``.
        y: targets ``(N,)``.
        plans: optional per-core :class:`~jaxtt.solvers._sparse.LocalPlan` (from
            :func:`local_plans`) to assemble the Gram matrices of B-spline
            cores sparsely; ``None`` assembles all of them densely.
        reg: ridge weight ``λ >= 0`` on ``‖A‖_F²``.
        chunk_size: samples per chunk of the Gram accumulation (memory
            ``O(chunk · r m r)``).
        cg_maxiter: if positive, solve each local problem matrix-free by this
            many iterations of Kronecker-preconditioned CGLS, warm-started from
            the current core, instead of forming the ``(r m r)²`` Gram matrix
            (:func:`jaxtt.solvers._local.solve_cgls`).
        mask: optional ``(N,)`` row mask, 1 for data rows and 0 for padding rows,
            which then contribute nothing; ``None``: all rows are data.
        axis_name: the mesh axis the rows are split over when called inside
            ``jax.shard_map`` (``None``: not sharded). Sparse ``plans`` are not supported then.

    Returns:
        The updated FTT (orthogonality centre at core 0) and the objective ``J``
        after each of the ``2(d-1)`` local solves (``1`` solve if ``d = 1``).

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt.basis import Legendre
        >>> from jaxtt.ftt import FTT, constant_init
        >>> bases = [Legendre(3)] * 3
        >>> x = jax.random.uniform(jax.random.key(0), (300, 3), minval=-1, maxval=1)
        >>> y = x[:, 0] * x[:, 1] + x[:, 2] ** 2
        >>> model = FTT(constant_init(bases, 2, key=jax.random.key(1)), bases)
        >>> model, objectives = als_sweep(model, x, y)
        >>> objectives.shape, bool(objectives[-1] <= objectives[0])  # 2(d - 1) local solves
        ((4,), True)

    Raises:
        TypeError, ValueError: ``model`` not an FTT, ``chunk_size``/``cg_maxiter`` not integers ``>= 1``/``>= 0``,
            ``reg`` not a finite real ``>= 0`` (checked when concrete), ``x`` or ``y`` of the wrong shape (checked
            also under ``jit``) or non-finite (checked when concrete).
    """
    check_instance(model, "model", FTT)
    x, y = check_fit_data(model, x, y)
    chunk_size = check_int(chunk_size, "chunk_size", minimum=1)
    cg_maxiter = check_int(cg_maxiter, "cg_maxiter", minimum=0)
    if is_concrete(reg):  # a traced reg (the compiled sweep's) is unchecked
        check_real(reg.item() if isinstance(reg, jax.Array | np.ndarray) and reg.ndim == 0 else reg, "reg",
                   minimum=0.0)
    dtype = model.tt.dtype
    cores = list(orthogonalize(model.tt, 0).cores)
    d = len(cores)
    plans = plans or (None,) * d
    # Pad the samples once to whole chunks. Padding rows get a zero left boundary, so every left
    # interface and design row built from them vanishes; the chunked passes then reshape in place.
    n = x.shape[0]
    pad = -n % max(1, min(chunk_size, n))
    columns = jnp.pad(x, ((0, pad), (0, 0))).T
    if mask is not None and jnp.shape(mask) != (n,):
        raise ValueError(f"mask must have shape ({n},) like the rows of x, got {jnp.shape(mask)}")
    rows = jnp.ones((n,), dtype) if mask is None else jnp.asarray(mask, dtype)
    y = jnp.pad(y.astype(dtype) * rows, (0, pad))
    boundary = jnp.pad(rows, (0, pad))[:, None]
    ones = jnp.ones_like(boundary)
    solve = partial(_local_solve, y=y, mask=boundary, reg=reg, chunk_size=chunk_size, cg_maxiter=cg_maxiter,
                    axis_name=axis_name)
    if d == 1:
        g, obj = solve(boundary, model.bases[0](columns[0]).astype(dtype), ones, plans[0], cores[0])
        return FTT(TensorTrain([g]), model.bases), obj[None]

    absorb = partial(_absorb_in_chunks, chunk_size=max(1, min(chunk_size, n)))

    # Features are evaluated where they are used (never stored for all cores at once).
    def forward(basis, carry, xs):
        left, pending = carry
        core, column, right, plan = xs
        feat = basis(column).astype(dtype)
        core, obj = solve(left, feat, right, plan, jnp.einsum("ab,bic->aic", pending, core))
        r, m, s = core.shape
        q, factor = qr(core.reshape(r * m, s))
        q = q.reshape(r, m, q.shape[1])
        return (absorb(left, q, feat), factor), (q, left, obj)

    def backward(basis, carry, xs):
        right, pending = carry
        core, column, left, plan = xs
        feat = basis(column).astype(dtype)
        core, obj = solve(left, feat, right, plan, jnp.einsum("aib,bc->aic", core, pending))
        r, m, s = core.shape
        q, factor = qr(core.reshape(r, m * s).T)
        q = q.T.reshape(q.shape[1], m, s)
        return (absorb(right, jnp.swapaxes(q, 0, 2), feat), factor.T), (q, obj)

    def absorb_right(basis, right, xs):
        core, column = xs
        return absorb(right, jnp.swapaxes(core, 0, 2), basis(column).astype(dtype)), (right,)

    scan = _scannable(cores, model.bases, plans)
    interior = range(1, d - 1)
    fold = partial(_fold, bases=model.bases[1 : d - 1], scan=scan)
    # rights[k] for the interior k = 2..d-1 (each step emits the interface entering its core), then rights[1].
    last_right, _ = absorb_right(model.bases[d - 1], ones, (cores[d - 1], columns[d - 1]))
    xs = ([cores[k] for k in interior], [columns[k] for k in interior])
    right_1, (rights,) = fold(absorb_right, last_right, xs, reverse=True, arity=1)
    identity = jnp.ones((1, 1), dtype)

    carry, (cores[0], _, obj_first) = forward(model.bases[0], (boundary, identity),
                                              (cores[0], columns[0], right_1, plans[0]))
    xs = ([cores[k] for k in interior], [columns[k] for k in interior], rights, [plans[k] for k in interior])
    (last_left, pending), (qs, lefts, objs) = fold(forward, carry, xs, arity=3)
    objectives = [obj_first, *_items(objs, d - 2)]
    last = jnp.einsum("ab,bic->aic", pending, cores[d - 1])
    carry, (cores[d - 1], obj_last) = backward(model.bases[d - 1], (ones, identity),
                                               (last, columns[d - 1], last_left, plans[d - 1]))
    xs = (qs, [columns[k] for k in interior], lefts, [plans[k] for k in interior])
    (_, pending), (qs, objs) = fold(backward, carry, xs, reverse=True, arity=2)
    cores[1 : d - 1] = _items(qs, d - 2)
    objectives += [obj_last, *reversed(_items(objs, d - 2))]
    cores[0] = jnp.einsum("aib,bc->aic", cores[0], pending)
    return FTT(TensorTrain(cores), model.bases), jnp.stack(objectives)


def _absorb_in_chunks(v, core, vec, chunk_size: int):
    """:func:`~jaxtt.tt.ops.absorb` over blocks of ``r · chunk_size`` samples.

    The one-shot version forms an ``(N, m r)`` intermediate — at ``N = 10⁶`` the
    largest array of a sweep; in blocks it is ``(r · chunk_size, m r)``, the size
    of a chunk of design rows.
    """
    return lax.map(lambda rows: absorb(rows[0][None], core, rows[1][None])[0], (v, vec),
                   batch_size=chunk_size * core.shape[0])


def _scannable(cores, bases, plans) -> bool:
    """Interior positions share shapes and bases and use dense assembly: sweep them with ``lax.scan``."""
    interior = cores[1:-1]
    return (
        len(interior) >= 2
        and len({c.shape for c in interior}) == 1
        and len(set(bases[1:-1])) == 1
        and all(p is None for p in plans[1:-1])
    )


def _items(stacked, count: int) -> list:
    """The ``count`` items of a scan's stacked output (or a list from the loop) as a list."""
    if isinstance(stacked, list):
        return stacked
    return [jax.tree_util.tree_map(lambda a, i=i: a[i], stacked) for i in range(count)]


def _fold(step, carry, xs, *, bases, scan: bool, arity: int, reverse: bool = False):
    """``carry, ys[i] = step(bases[i], carry, xs_i)`` over positions ``i`` (reversed if asked).

    ``xs`` is a tuple of per-field sequences (lists, or arrays already stacked
    along the position axis); ``step`` returns a tuple of ``arity`` outputs.
    With ``scan`` all bases are equal and the fold is one ``lax.scan``
    (compiled size independent of the number of cores) whose outputs stay
    stacked, so large interfaces are never unstacked and restacked; otherwise
    a Python loop returning a tuple of lists.
    """
    if scan:
        stacked = tuple(f if hasattr(f, "shape") else jax.tree_util.tree_map(lambda *a: jnp.stack(a), *f) for f in xs)
        return lax.scan(partial(step, bases[0]), carry, stacked, reverse=reverse)
    count = len(bases)
    fields = [f if isinstance(f, list) else _items(f, count) for f in xs]
    ys = [None] * count
    for i in reversed(range(count)) if reverse else range(count):
        carry, ys[i] = step(bases[i], carry, tuple(f[i] for f in fields))
    return carry, tuple([y[j] for y in ys] for j in range(arity))


def sweep_memory(model: FTT, n: int, *, chunk_size: int = 4096, cg_maxiter: int = 0) -> int:
    """Estimated bytes of the largest arrays of one :func:`als_sweep` of ``model`` on ``n`` samples.

    With ``p = max_k r_{k-1} m_k r_k`` local unknowns: the Gram matrix, its
    regularised copy and its Cholesky factor (``3 p²``, Cholesky only) and the
    design rows of a chunk (``chunk · p``; CGLS chunks hold up to ``r`` times
    more samples, at most ``N``), plus the stored left and right interfaces (``2 N r d``) and
    one core's features times a rank (``N m r``); all times the number of
    outputs swept together (the batch) and the item size.

    Examples:
        >>> import jax
        >>> from jaxtt.basis import Legendre
        >>> from jaxtt.ftt import FTT, constant_init
        >>> model = FTT(constant_init([Legendre(64)] * 4, 64, key=jax.random.key(0)), [Legendre(64)] * 4)
        >>> sweep_memory(model, 200) > 2**40  # 3 (64·64·64)² doubles: the Cholesky solves cannot run
        True
        >>> sweep_memory(model, 200, cg_maxiter=8) < 2**30  # matrix-free CGLS can
        True
    """
    check_instance(model, "model", FTT)
    n = check_int(n, "n", minimum=1)
    chunk_size = check_int(chunk_size, "chunk_size", minimum=1)
    cg_maxiter = check_int(cg_maxiter, "cg_maxiter", minimum=0)
    batch = int(np.prod(model.tt.batch_shape, dtype=np.int64))
    return als_sweep_bytes(model.tt.ranks, [b.m for b in model.bases], n, batch=batch,
                           itemsize=np.dtype(model.tt.dtype).itemsize, chunk_size=chunk_size, cg_maxiter=cg_maxiter)


def sweep_order(d: int) -> list[int]:
    """Core index solved at each step of a sweep."""
    return [0] if d == 1 else list(range(d - 1)) + list(range(d - 1, 0, -1))


@cache
def compiled_sweep(batch_ndim: int, chunk_size: int, cg_maxiter: int, mesh: Mesh | None = None, axis: str = "data"):
    """One jitted (and vmapped over ``batch_ndim`` FTT axes) sweep per configuration.

    Cached so that repeated fits (e.g. every resampling round of a denoiser
    fit) reuse the compiled program instead of tracing a fresh closure. The
    program is ``sweep(model, x, y, plans, reg, mask=None)``. With a ``mesh`` it is
    wrapped in ``jax.shard_map``: the rows of ``x``, ``y`` and ``mask`` are
    split over ``axis``, the model is replicated, and the sums over rows are
    completed by ``psum`` (:func:`als_sweep` with ``axis_name``). An explicit
    ``shard_map`` rather than leaving the partitioning to XLA: the sweep scans
    over chunks of rows, and a scan over a sharded axis would gather the rows.
    """
    axis_name = None if mesh is None else axis

    def sweep(model, x, y, plans, reg, mask):
        return als_sweep(model, x, y, plans, reg=reg, chunk_size=chunk_size, cg_maxiter=cg_maxiter, mask=mask,
                         axis_name=axis_name)

    for _ in range(batch_ndim):
        sweep = jax.vmap(sweep, in_axes=(0, None, -1, None, None, None))
    if mesh is not None:
        rows, same = PartitionSpec(axis), PartitionSpec()
        # Replication of the outputs holds by construction (psum'd sums, identical solves); the scans over
        # chunks mix per-device and replicated carries, which the varying-axes type check would refuse.
        sweep = jax.shard_map(sweep, mesh=mesh, in_specs=(same, rows, rows, same, same, rows), out_specs=same,
                              check_vma=False)

    def program(model, x, y, plans, reg, mask=None):
        return sweep(model, x, y, plans, reg, mask)

    return jax.jit(program)


class ALSState(eqx.Module):
    """State of :class:`ALS`.

    Attributes:
        model: the current FTT (orthogonality centre at core 0 after a step).
        loss: its objective ``J = (1/2N)(‖y − f(x)‖² + λ‖A‖²)``, summed over outputs.
        objectives: unnormalised ``2N J`` after each local solve of the last sweep,
            ``(*batch, 2(d-1))`` (zeros before the first sweep).
        x, y: the training data (``y`` with the output axes last); with a mesh
            padded to a multiple of the device count and split over it.
        plans: per-core sparse-assembly plans (:func:`local_plans`) or ``None``.
        step: sweeps taken.
        mask: with a mesh, 1 for the data rows of ``x`` and 0 for padding; else ``None``.
    """

    model: FTT
    loss: Float[Array, ""]
    objectives: Float[Array, "*batch steps"]
    x: Float[Array, "N d"]
    y: Float[Array, "N *batch"]
    plans: tuple | None
    step: Int[Array, ""]
    mask: Float[Array, " N"] | None = None


class ALS(Solver):
    """Single-site TT-ALS sweeps (Holtz, Rohwedder, Schneider 2012); see the module docstring.

    Each step is one :func:`als_sweep` (``2(d-1)`` exact or CGLS local ridge
    solves). The objective never increases with exact solves (``cg_maxiter=0``)
    nor with warm-started CGLS. Vector-valued targets run all outputs in one
    vmapped sweep. The sweep is compiled once per ``(batch rank, chunk_size,
    cg_maxiter)`` (:func:`compiled_sweep`) with ``reg`` and the data traced, so
    refits with new data or a new ``reg`` reuse the program.

    Args:
        reg: ridge weight ``λ >= 0`` on ``‖A‖_F²`` (absolute, not per sample).
        chunk_size: samples per chunk of the Gram accumulation.
        cg_maxiter: ``> 0``: solve local problems matrix-free by this many
            Kronecker-preconditioned CGLS iterations instead of Cholesky.
        sparse: assemble the Gram matrices of plain B-spline cores from the
            ``degree + 1`` non-zero basis values per sample (a factor
            ``(m / (degree + 1))²`` fewer flops; only when ``init`` sees concrete
            data and ``cg_maxiter = 0``, and without a ``mesh``).
        mesh: a :class:`jax.sharding.Mesh` (e.g. :func:`jaxtt.sharding.data_mesh`)
            to fit data-parallel on: ``init`` splits the rows over ``axis``
            (padding them to a multiple of its size with masked rows,
            :func:`jaxtt.sharding.shard_rows`) and replicates the model; each
            device assembles its rows' part of every Gram matrix, right-hand
            side and CGLS product and one ``psum`` completes them. The fit
            equals the single-device fit up to the order of the floating-point
            sums. Works across processes after ``jax.distributed.initialize``.
            ``None``: the default device.
        axis: the mesh axis to split rows over.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt.basis import Legendre
        >>> from jaxtt.ftt import FTT, constant_init
        >>> bases = [Legendre(3)] * 2
        >>> x = jax.random.uniform(jax.random.key(0), (200, 2), minval=-1, maxval=1)
        >>> solver = ALS(reg=1e-8)
        >>> state = solver.init(FTT(constant_init(bases, 2, key=jax.random.key(1)), bases), x, x[:, 0] * x[:, 1])
        >>> first, step = state.loss, jax.jit(solver.step)
        >>> state = step(step(state))
        >>> bool(state.loss < 1e-6 * first), int(state.step)
        (True, 2)
    """

    reg: float = 0.0
    chunk_size: int = 4096
    cg_maxiter: int = 0
    sparse: bool = True
    mesh: Mesh | None = eqx.field(default=None, static=True)
    axis: str = eqx.field(default="data", static=True)

    def __check_init__(self):
        check_real(self.reg, "reg", minimum=0.0)
        check_int(self.chunk_size, "chunk_size", minimum=1)
        check_int(self.cg_maxiter, "cg_maxiter", minimum=0)
        check_bool(self.sparse, "sparse")
        if self.mesh is not None:
            check_mesh(self.mesh, self.axis)

    def step_memory(self, model: FTT, n: int) -> int:
        """:func:`sweep_memory` with this solver's ``chunk_size`` and ``cg_maxiter`` (per device: the rows of one
        device with a ``mesh``)."""
        if self.mesh is not None:
            n = -(-n // check_mesh(self.mesh, self.axis))
        return sweep_memory(model, n, chunk_size=self.chunk_size, cg_maxiter=self.cg_maxiter)

    @property
    def memory_remedy(self) -> str:
        """What to change when a sweep does not fit in memory."""
        if self.cg_maxiter:
            return "lower the rank or the basis size, or use a smaller chunk_size"
        return "use matrix-free local solves (ALS(cg_maxiter=8) forms no Gram matrix) or lower the rank or basis size"

    def init(self, model: FTT, x: Float[Array, "N d"], y: Float[Array, "N *D"]) -> ALSState:
        """Validate the problem; build the sparse plans (concrete ``x`` only) and the starting loss."""
        x, y, _, _ = check_training_data(model, x, y)
        check_feasible_ranks(model.tt)
        y = y.astype(model.tt.dtype)
        sparse = self.sparse and not self.cg_maxiter and self.mesh is None and is_concrete(x)
        plans = local_plans(model, x) if sparse else None
        if plans is not None and all(p is None for p in plans):
            plans = None
        steps = len(sweep_order(model.ndim))
        loss = model_loss(model, x, y, self.reg)
        objectives = jnp.zeros((*model.tt.batch_shape, steps), model.tt.dtype)
        mask = None
        if self.mesh is not None:
            (x, y), mask = shard_rows([x, y], self.mesh, self.axis)
            model, loss, objectives = replicate((model, loss, objectives), self.mesh)
        return ALSState(model=model, loss=loss, objectives=objectives, x=x, y=y, plans=plans, step=jnp.asarray(0),
                        mask=mask)

    def step(self, state: ALSState) -> ALSState:
        """One sweep with the cached compiled program; ``reg`` and the data stay traced."""
        config = (len(state.model.tt.batch_shape), self.chunk_size, self.cg_maxiter)
        sweep = compiled_sweep(*config) if self.mesh is None else compiled_sweep(*config, self.mesh, self.axis)
        reg = jnp.asarray(self.reg, state.model.tt.dtype)
        model, objectives = sweep(state.model, state.x, state.y, state.plans, reg, state.mask)
        n = state.x.shape[0] if state.mask is None else jnp.sum(state.mask)
        loss = jnp.sum(objectives[..., -1]) / (2 * n)
        return ALSState(model, loss, objectives, state.x, state.y, state.plans, state.step + 1, state.mask)

    def check(self, state: ALSState, step: int) -> None:
        """Name the first core whose local solve went non-finite."""
        objectives = np.asarray(state.objectives).reshape(-1, state.objectives.shape[-1])
        bad = ~np.isfinite(objectives).all(axis=0)
        if bad.any():
            raise NumericalError(
                "ALS produced a non-finite local solution", step=step,
                core=sweep_order(state.model.ndim)[int(np.argmax(bad))],
                remedy="increase reg, check the data scaling, or use bases orthonormal for the data "
                "(e.g. Legendre(m, orthonormal=True) on uniform data) so that the interfaces of long trains "
                "do not decay below the float range")
        super().check(state, step)
