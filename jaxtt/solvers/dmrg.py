"""Two-site ALS (DMRG-style, rank-adaptive) for functional tensor trains.

At position ``k`` the neighbouring cores are merged into a supercore
``W ∈ R^{r_{k-1} × m_k × m_{k+1} × r_{k+1}}``, the ridge problem

    min_W  Σ_s (y_s − ⟨L_s ⊗ φ_k(x_{s,k}) ⊗ φ_{k+1}(x_{s,k+1}) ⊗ R_s, W⟩)² + λ ‖W‖²

is solved (normal equations while the supercore has at most
``dense_limit`` entries, matrix-free conjugate gradients started from the
current supercore otherwise), and ``W`` is split back into two cores of a
lower rank ``r`` (White 1992; Schollwöck 2011; Holtz, Rohwedder, Schneider 2012).

The model value at sample ``s`` is ``f_s = a_sᵀ W b_s`` with the left features
``a_s = L_s ⊗ φ_k(x_{s,k})`` (length ``r_{k-1} m_k``), the right features
``b_s = φ_{k+1}(x_{s,k+1}) ⊗ R_s`` (length ``m_{k+1} r_{k+1}``) and ``W`` read
as an ``(r_{k-1} m_k) × (m_{k+1} r_{k+1})`` matrix. Two splits are offered:

* ``truncation="function"`` (default): with the feature covariances
  ``C_L = (1/N) Σ_s a_s a_sᵀ = R_Lᵀ R_L`` and ``C_R = (1/N) Σ_s b_s b_sᵀ = R_Rᵀ R_R``,
  the data error of a replacement ``Ŵ`` is

      Σ_s (a_sᵀ (W − Ŵ) b_s)²  ≈  N ‖R_L (W − Ŵ) R_Rᵀ‖_F²,

  exactly so when the left and right variables are independent under the
  data (e.g. samples on a tensor grid). The truncated SVD
  ``R_L W R_Rᵀ ≈ U_r Σ_r V_rᵀ`` is therefore the best rank-``r`` replacement
  for the model values on the data, and ``Ŵ = (R_L⁻¹ U_r)(Σ_r V_rᵀ R_R⁻ᵀ)``.
  Basis functions are generally not orthonormal on the data, and neither
  are the interfaces ``L_s``, ``R_s``, so this differs from the Frobenius
  truncation of the coefficients.
* ``truncation="coefficients"``: the truncated SVD of ``W`` itself
  (Frobenius-optimal in coefficient space).

The rank is the smallest ``r`` with ``‖σ_{>r}‖ <= eps ‖σ‖`` over the
singular values of the matrix that is truncated, capped at ``max_rank``. With
``"function"`` ``eps`` is thus a relative RMS error of the supercore's
function on the data (under the independence approximation above). After the
split the train is returned to canonical form: moving right the new left core
is left-orthogonal as a coefficient tensor (QR, triangular factor pushed into
the right core), moving left the new right core is right-orthogonal.

The last split of a sweep leaves core 0 holding the truncated singular
values, a truncation that no later solve corrects; by default (``polish``)
that core is re-solved once at the new ranks, the single-site ALS step.

Ranks change between steps, so the sweep runs eagerly in Python with each
local solve jit-compiled per shape: :class:`DMRG` steps cannot be traced by
``jax.jit`` or ``lax.scan``, unlike the fixed-rank solvers.
"""

from __future__ import annotations

from functools import cache, partial

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec
from jaxtyping import Array, Float, Int

from jaxtt._linalg import eigh, qr, svd
from jaxtt._validation import check_bool, check_choice, check_instance, check_int, check_real
from jaxtt.errors import NumericalError
from jaxtt.ftt.functional import FTT
from jaxtt.sharding import check_mesh, replicate, shard_rows
from jaxtt.solvers._local import normal_equations, solve_cgls, solve_normal, squared_residual, sum_rows
from jaxtt.solvers.fit import Solver
from jaxtt.solvers.problem import check_fit_data, check_training_data, model_loss
from jaxtt.tt import TensorTrain, absorb, interfaces, orthogonalize, truncation_rank

__all__ = ["DMRG", "DMRGState", "dmrg_sweep"]


def _solve_dense(left, feats, right, y, reg, chunk_size=4096, axis_name=None):
    """Ridge solve for the (super)core with design rows ``L ⊗ φ… ⊗ R``; returns ``(g, J(g))``."""
    gram, rhs = normal_equations(left, feats, right, y, chunk_size, axis_name)
    g = solve_normal(gram, rhs, reg)
    return g, squared_residual(left, feats, right, y, g, chunk_size, axis_name) + reg * g @ g


def _solve_iterative(left, feats, right, y, reg, g0, mask, maxiter=200, chunk_size=4096, axis_name=None):
    """Matrix-free CG version of :func:`_solve_dense`, started at ``g0``."""
    return solve_cgls(left, feats, right, y, reg, g0, chunk_size, maxiter, mask, axis_name)


@cache
def _compiled(function, mesh: Mesh | None, axis: str, shared: tuple[int, ...], **static):
    """``function`` jitted; with a ``mesh`` inside ``jax.shard_map`` with its sums over rows completed over ``axis``.

    The positional arguments are split over ``axis`` by rows except those at the positions ``shared``
    (replicated); the outputs are replicated (psum'd sums, identical small solves on every device).
    """
    if mesh is None:
        return jax.jit(partial(function, **static))
    rows, same = PartitionSpec(axis), PartitionSpec()

    def sharded(*args):
        specs = tuple(same if i in shared else rows for i in range(len(args)))
        return jax.shard_map(partial(function, axis_name=axis, **static), mesh=mesh, in_specs=specs,
                             out_specs=same, check_vma=False)(*args)

    return jax.jit(sharded)


def _local_solve(left, feats, right, y, reg, g0, mask, solver):
    """Normal equations while ``g`` has at most ``dense_limit`` entries, CG otherwise (``mask``: the data rows)."""
    if g0.size <= solver.dense_limit:
        return _compiled(_solve_dense, solver.mesh, solver.axis, (4,))(left, feats, right, y, reg)
    solve = _compiled(_solve_iterative, solver.mesh, solver.axis, (4, 5), maxiter=solver.cg_maxiter)
    return solve(left, feats, right, y, reg, g0, mask)


def _split(w, shape, eps, max_rank, move_right: bool):
    """Coefficient truncation: truncated SVD of the ``(r0 m1) × (m2 r1)`` unfolding of ``W``."""
    r0, m1, m2, r1 = shape
    u, s, vt = svd(w.reshape(r0 * m1, m2 * r1))
    rank = truncation_rank(s, eps * jnp.linalg.norm(s), max_rank)
    u, s, vt = u[:, :rank], s[:rank], vt[:rank]
    if move_right:
        return u.reshape(r0, m1, rank), (s[:, None] * vt).reshape(rank, m2, r1)
    return (u * s).reshape(r0, m1, rank), vt.reshape(rank, m2, r1)


def feature_covariances(left, f1, f2, right, mask=None, chunk_size=4096, axis_name=None):
    """``C_L = (1/N) Σ_s a_s a_sᵀ`` and ``C_R = (1/N) Σ_s b_s b_sᵀ``.

    ``a_s = L_s ⊗ φ_k(x_{s,k})`` and ``b_s = φ_{k+1}(x_{s,k+1}) ⊗ R_s``, in the
    index order of the ``(r0 m1) × (m2 r1)`` unfolding. Accumulated over chunks,
    ``O(N ((r0 m1)² + (m2 r1)²))`` flops. ``mask`` (``(N, 1)``, 1 for data rows,
    0 for padding; ``None``: all rows) restricts the sums and ``N`` to the data
    rows; inside ``jax.shard_map`` the sums run over the mesh axis ``axis_name`` too.

    Examples:
        >>> import jax
        >>> keys = jax.random.split(jax.random.key(0), 4)
        >>> left, f1, f2, right = (jax.random.normal(k, (50, n)) for k, n in zip(keys, (2, 3, 3, 2)))
        >>> cov_l, cov_r = feature_covariances(left, f1, f2, right)
        >>> a = (left[:, :, None] * f1[:, None, :]).reshape(50, 6)  # a_s = L_s ⊗ φ_k
        >>> bool(jax.numpy.allclose(cov_l, a.T @ a / 50)), cov_r.shape
        (True, (6, 6))
    """
    weights = jnp.ones((left.shape[0], 1), left.dtype) if mask is None else mask
    zeros = jnp.zeros((left.shape[0],), left.dtype)
    n = sum_rows(jnp.sum(weights), axis_name)
    cov_l, _ = normal_equations(left, [f1], weights, zeros, chunk_size, axis_name)
    cov_r, _ = normal_equations(weights, [f2], right, zeros, chunk_size, axis_name)
    return cov_l / n, cov_r / n


def square_root(cov):
    """``R`` and ``R⁻¹`` with ``Rᵀ R = C`` (up to a floor), from ``C = Q diag(λ) Qᵀ``.

    ``R = diag(√λ̃) Qᵀ`` and ``R⁻¹ = Q diag(1/√λ̃)`` with
    ``λ̃ = max(λ, 10 ε_mach max λ)``: eigenvalues under the floor (directions the
    data barely see, rank deficiency included) are raised to it, so ``R`` is
    always invertible and ``R⁻¹ R = I`` whatever the floor.
    """
    lam, q = eigh(cov)
    floor = 10 * jnp.finfo(cov.dtype).eps * jnp.maximum(jnp.max(lam), jnp.finfo(cov.dtype).tiny)
    root = jnp.sqrt(jnp.maximum(lam, floor))
    return root[:, None] * q.T, q / root


@jax.jit
def _whitened_svd(w, cov_l, cov_r):
    """SVD of the whitened supercore ``B = R_L W R_Rᵀ``; returns ``U, σ, Vᵀ, R_L⁻¹, R_R⁻¹``.

    ``N ‖B‖_F² = Σ_{s,s'} (a_sᵀ W b_{s'})² / N``, the squared norm of the
    supercore's function under the product of the left and right empirical
    marginals (equal to ``Σ_s f_s²`` for independent left/right variables).
    """
    root_l, inv_l = square_root(cov_l)
    root_r, inv_r = square_root(cov_r)
    u, s, vt = svd(root_l @ w @ root_r.T)
    return u, s, vt, inv_l, inv_r


def _canonical_pair(a, b, move_right: bool):
    """Re-factor ``A B`` so the core left behind is orthogonal; the product is unchanged.

    Moving right: ``A = Q T`` (QR), returns ``(Q, T B)`` with ``QᵀQ = I``.
    Moving left: ``Bᵀ = Q T``, returns ``(A Tᵀ, Qᵀ)`` with ``Qᵀ Q = I`` (orthonormal rows).
    """
    if move_right:
        q, t = qr(a)
        return q, t @ b
    q, t = qr(b.T)
    return a @ t.T, q.T


def split_function(w, shape, cov_l, cov_r, eps, max_rank, move_right: bool):
    """Function truncation: truncated SVD of ``R_L W R_Rᵀ``, mapped back and made canonical.

    Left factor ``R_L⁻¹ U_r``, right factor ``Σ_r V_rᵀ R_R⁻ᵀ``; their product is the
    data-optimal rank-``r`` replacement of ``W`` (see the module docstring).
    """
    r0, m1, m2, r1 = shape
    u, s, vt, inv_l, inv_r = _whitened_svd(w.reshape(r0 * m1, m2 * r1), cov_l, cov_r)
    rank = truncation_rank(s, eps * jnp.linalg.norm(s), max_rank)
    return _function_factors(u, s, vt, inv_l, inv_r, shape, rank, move_right)


@partial(jax.jit, static_argnums=(5, 6, 7))
def _function_factors(u, s, vt, inv_l, inv_r, shape, rank: int, move_right: bool):
    """The two canonical cores of :func:`split_function` at a chosen ``rank`` (one compiled program)."""
    r0, m1, m2, r1 = shape
    a = inv_l @ u[:, :rank]
    b = (s[:rank, None] * vt[:rank]) @ inv_r.T
    a, b = _canonical_pair(a, b, move_right)
    return a.reshape(r0, m1, rank), b.reshape(rank, m2, r1)


TRUNCATIONS = ("function", "coefficients")


def dmrg_sweep(model: FTT, x, y, *, eps: float = 1e-8, max_rank: int | None = None, reg: float = 0.0,
               dense_limit: int = 2500, cg_maxiter: int = 200, truncation: str = "function",
               polish: bool = True):
    """One two-site sweep (positions ``1..d-1`` and back); returns ``(model, objectives)``.

    Runs eagerly (ranks are chosen from the data). ``objectives`` holds ``J``
    after each two-site solve, before truncation, and (with ``polish``) last
    the ``J`` of the returned model. ``truncation`` is ``"function"``
    (truncate where the model values on the data change least) or
    ``"coefficients"`` (Frobenius truncation of the supercore); see the module
    docstring. ``polish`` re-solves core 0, which carries the singular values
    of the final split, by one single-site ridge solve at the truncated ranks.

    Examples:
        >>> import jax
        >>> from jaxtt.basis import Legendre
        >>> from jaxtt.ftt import FTT, constant_init
        >>> bases = [Legendre(3)] * 3
        >>> x = jax.random.uniform(jax.random.key(0), (300, 3), minval=-1, maxval=1)
        >>> y = x[:, 0] * x[:, 1] + x[:, 1] * x[:, 2]  # TT ranks (1, 2, 2, 1)
        >>> model = FTT(constant_init(bases, 1, key=jax.random.key(1)), bases)
        >>> model, objectives = dmrg_sweep(model, x, y, eps=1e-6)
        >>> model.tt.ranks, bool(objectives[-1] < 1e-8)  # the ranks grew to fit y
        ((1, 2, 2, 1), True)
    """
    solver = DMRG(eps=eps, max_rank=max_rank, reg=reg, dense_limit=dense_limit, cg_maxiter=cg_maxiter,
                  truncation=truncation, polish=polish)  # validates the arguments
    x, y = check_fit_data(check_instance(model, "model", FTT), x, y)
    return _sweep(model, x, y, solver)


def _sweep(model: FTT, x, y, solver: DMRG, mask=None):
    """:func:`dmrg_sweep` with the settings of a validated ``solver``; ``mask`` (1 for data rows, 0 for padding,
    ``None``: all rows) zeroes the left boundary, so padding rows give zero design rows and drop out of every sum."""
    eps, max_rank, reg, truncation = solver.eps, solver.max_rank, solver.reg, solver.truncation
    feats, cores, rights = _start(model, x)
    y = y.astype(model.tt.dtype)
    d = len(cores)
    boundary = rights[d] if mask is None else jnp.asarray(mask, model.tt.dtype)[:, None]
    y = y if mask is None else y * boundary[:, 0]
    lefts = [boundary] + [None] * (d - 1)
    covariances = _compiled(feature_covariances, solver.mesh, solver.axis, ())
    objectives = []
    order = list(range(d - 1)) + list(range(d - 2, -1, -1))
    for step, k in enumerate(order):
        move_right = step < d - 1
        shape = (cores[k].shape[0], cores[k].shape[1], cores[k + 1].shape[1], cores[k + 1].shape[2])
        w0 = _merge(cores[k], cores[k + 1])
        w, obj = _local_solve(lefts[k], [feats[k], feats[k + 1]], rights[k + 2], y, reg, w0, boundary, solver)
        objectives.append(float(obj))
        if not np.isfinite(objectives[-1]):
            raise NumericalError(f"DMRG produced a non-finite local solution at cores ({k}, {k + 1})", core=k,
                                 remedy="increase reg")
        if truncation == "function":
            cov_l, cov_r = covariances(lefts[k], feats[k], feats[k + 1], rights[k + 2], boundary)
            cores[k], cores[k + 1] = split_function(w, shape, cov_l, cov_r, eps, max_rank, move_right)
        else:
            cores[k], cores[k + 1] = _split(w, shape, eps, max_rank, move_right)
        if move_right:
            lefts[k + 1] = _absorb(lefts[k], cores[k], feats[k])
        else:
            rights[k + 1] = _absorb(rights[k + 2], jnp.swapaxes(cores[k + 1], 0, 2), feats[k + 1])
    if solver.polish:
        g, obj = _local_solve(lefts[0], [feats[0]], rights[1], y, reg, cores[0].reshape(-1), boundary, solver)
        objectives.append(float(obj))
        if not np.isfinite(objectives[-1]):
            raise NumericalError("DMRG produced a non-finite solution when re-solving core 0", core=0,
                                 remedy="increase reg")
        cores[0] = g.reshape(cores[0].shape)
    return FTT(TensorTrain(cores), model.bases), np.asarray(objectives)


@eqx.filter_jit
def _start(model: FTT, x):
    """Features of ``x``, the cores in canonical form with centre 0 and their right interfaces (one program)."""
    feats = model.features(x)
    cores = list(orthogonalize(model.tt, 0).cores)
    return feats, cores, list(interfaces(TensorTrain(cores), feats)[1])


@jax.jit
def _merge(a, b):
    """The flattened supercore ``W = A ×₃ B`` of two neighbouring cores."""
    return jnp.einsum("aib,bjc->aijc", a, b).reshape(-1)


_absorb = jax.jit(absorb)


def _pad_ranks(tt: TensorTrain, ranks) -> TensorTrain:
    """The same tensor with ranks zero-padded up to ``ranks``."""
    return TensorTrain([
        jnp.pad(c, [(0, ranks[k] - c.shape[0]), (0, 0), (0, ranks[k + 1] - c.shape[2])]) for k, c in enumerate(tt.cores)
    ])


def _stack(trains) -> TensorTrain:
    """One batch of trains (leading axis) from ``trains``, zero-padded to common ranks."""
    ranks = tuple(max(r) for r in zip(*(t.ranks for t in trains)))
    return jax.tree_util.tree_map(lambda *cs: jnp.stack(cs), *[_pad_ranks(t, ranks) for t in trains])


class DMRGState(eqx.Module):
    """State of :class:`DMRG`.

    Attributes:
        trains: the coefficient train of each output at its own ranks (one for a scalar FTT).
        bases: the model's bases.
        batched: whether the model is a batch of FTTs (vector-valued targets).
        loss: objective ``J = (1/2N)(‖y − f(x)‖² + λ‖A‖²)`` summed over outputs.
        x, y: the training data; with a mesh padded to a multiple of the device count and split over it.
        step: sweeps taken.
        mask: with a mesh, 1 for the data rows of ``x`` and 0 for padding; else ``None``.
    """

    trains: tuple[TensorTrain, ...]
    bases: tuple
    batched: bool = eqx.field(static=True)
    loss: Float[Array, ""]
    x: Float[Array, "N d"]
    y: Float[Array, "N *D"]
    step: Int[Array, ""]
    mask: Float[Array, " N"] | None = None

    @property
    def model(self) -> FTT:
        """The current FTT; outputs of different ranks are zero-padded to common ranks and stacked."""
        return FTT(_stack(self.trains) if self.batched else self.trains[0], self.bases)


class DMRG(Solver):
    """Rank-adaptive two-site sweeps; see the module docstring.

    Each step is one :func:`dmrg_sweep`. Ranks adapt to the data, so each output
    of a vector-valued model is swept on its own and the outputs are padded to
    common ranks in ``state.model``. Steps run eagerly (no ``jit``/``scan``).

    Args:
        eps: relative truncation threshold of the SVD split (``>= 0``); with
            ``truncation="function"`` a relative RMS error of the supercore's
            values on the data, with ``"coefficients"`` a relative Frobenius
            error of its coefficients.
        max_rank: cap on every rank (default 16; ``None``: no cap, so with a small
            ``eps`` the ranks grow until the local problems take minutes).
        reg: ridge weight ``λ >= 0``.
        dense_limit: largest supercore size solved by normal equations; larger
            ones use matrix-free CG with ``cg_maxiter`` iterations.
        cg_maxiter: CG iterations of large local solves (``>= 1``).
        truncation: ``"function"`` (whitened split that best keeps the model
            values on the data) or ``"coefficients"`` (truncated SVD of the
            supercore coefficients).
        polish: after each sweep re-solve core 0 by a single-site ridge solve.
            ``truncation="coefficients", polish=False`` is the classical two-site sweep.
        mesh: a :class:`jax.sharding.Mesh` (e.g. :func:`jaxtt.sharding.data_mesh`)
            to fit data-parallel on: ``init`` splits the rows over ``axis``
            (padding them to a multiple of its size with masked rows,
            :func:`jaxtt.sharding.shard_rows`) and replicates the model; each
            two-site solve, covariance and residual runs inside
            ``jax.shard_map``, every device summing its rows and one ``psum``
            completing the sums, so all devices choose the same ranks. The fit
            equals the single-device fit up to the order of the floating-point
            sums. ``None``: the default device.
        axis: the mesh axis to split rows over.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt.basis import Legendre
        >>> from jaxtt.ftt import FTT, constant_init
        >>> from jaxtt.solvers import fit
        >>> bases = [Legendre(4)] * 3
        >>> x = jax.random.uniform(jax.random.key(0), (400, 3), minval=-1, maxval=1)
        >>> y = x[:, 0] * x[:, 1] + x[:, 1] * x[:, 2]
        >>> start = FTT(constant_init(bases, 1, key=jax.random.key(1)), bases)
        >>> model, result = fit(start, x, y, DMRG(eps=1e-4), max_steps=2, progress=False)
        >>> model.tt.ranks, result.train_residual[-1] < 1e-5
        ((1, 2, 2, 1), True)
    """

    eps: float = 1e-8
    max_rank: int | None = 16
    reg: float = 0.0
    dense_limit: int = 2500
    cg_maxiter: int = 200
    truncation: str = "function"
    polish: bool = True
    mesh: Mesh | None = eqx.field(default=None, static=True)
    axis: str = eqx.field(default="data", static=True)

    def __check_init__(self):
        check_real(self.eps, "eps", minimum=0.0)
        if self.max_rank is not None:
            check_int(self.max_rank, "max_rank", minimum=1)
        check_real(self.reg, "reg", minimum=0.0)
        check_int(self.dense_limit, "dense_limit", minimum=1)
        check_int(self.cg_maxiter, "cg_maxiter", minimum=1)
        check_choice(self.truncation, "truncation", TRUNCATIONS)
        check_bool(self.polish, "polish")
        if self.mesh is not None:
            check_mesh(self.mesh, self.axis)

    def step_memory(self, model: FTT, n: int) -> int:
        """Estimated bytes of the largest arrays of one sweep at ranks up to ``max_rank`` (outputs are swept one
        at a time): every core's features and the interfaces (``N (m + 2r) d``), the feature covariances
        (``2 (r m)²``) and the two-site solve of ``p = r m² r`` unknowns: normal equations (``3 p²`` plus a
        chunk of design rows) up to ``dense_limit`` unknowns, matrix-free CGLS (chunks of up to ``r`` times
        4096 rows of ``p``) above (per device: the rows of one device with a ``mesh``)."""
        if self.mesh is not None:
            n = -(-n // check_mesh(self.mesh, self.axis))
        m = max(b.m for b in model.bases)
        r = max(self.max_rank or 0, *model.tt.ranks)
        p = r * m * m * r
        solve = min(n, 4096) * p + 3 * p * p if p <= self.dense_limit else min(n, 4096 * r) * p
        words = n * (m + 2 * r) * model.ndim + 2 * (r * m) ** 2 + solve
        return int(words * np.dtype(model.tt.dtype).itemsize)

    memory_remedy = "lower max_rank or the basis size, or fit on fewer rows"

    def init(self, model: FTT, x: Float[Array, "N d"], y: Float[Array, "N *D"]) -> DMRGState:
        """Validate the problem and split a batch of FTTs into its members."""
        x, y, _, _ = check_training_data(model, x, y)
        if model.ndim < 2:
            raise ValueError("DMRG needs at least two variables")
        if len(model.tt.batch_shape) > 1:
            raise ValueError(f"DMRG fits a scalar FTT or one batch axis of outputs, got batch shape "
                             f"{model.tt.batch_shape}")
        y = y.astype(model.tt.dtype)
        batched = bool(model.tt.batch_shape)
        trains = (tuple(jax.tree_util.tree_map(lambda c, j=j: c[j], model.tt) for j in range(model.tt.batch_shape[0]))
                  if batched else (model.tt,))
        loss = model_loss(model, x, y, self.reg)
        mask = None
        if self.mesh is not None:
            (x, y), mask = shard_rows([x, y], self.mesh, self.axis)
            trains, loss = replicate((trains, loss), self.mesh)
        return DMRGState(trains, model.bases, batched, loss, x, y, jnp.asarray(0), mask)

    def step(self, state: DMRGState) -> DMRGState:
        """One two-site sweep per output (eager)."""
        targets = [state.y[:, j] for j in range(state.y.shape[1])] if state.batched else [state.y]
        trains = tuple(_sweep(FTT(train, state.bases), state.x, target, self, state.mask)[0].tt
                       for train, target in zip(state.trains, targets))
        state = DMRGState(trains, state.bases, state.batched, state.loss, state.x, state.y, state.step + 1,
                          state.mask)
        return eqx.tree_at(lambda s: s.loss, state, model_loss(state.model, state.x, state.y, self.reg, state.mask))

