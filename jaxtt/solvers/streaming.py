"""Out-of-core TT-ALS: regression rows streamed from the host in chunks.

:class:`~jaxtt.solvers.ALS` holds ``O(N r d)`` interface vectors on the device
(the left and right interfaces of all samples). When ``N`` rows do not fit, the
sweep can instead be run with device memory independent of ``N``: every local
problem of a sweep is the ridge regression with normal equations

    (Σ_s a_s a_sᵀ + λ I) g = Σ_s a_s y_s,      a_s = L_s ⊗ φ_s ⊗ R_s,

a sum over rows, so it is accumulated chunk by chunk — each chunk of rows is
moved to the device, its interfaces ``L_s`` and ``R_s`` recomputed from the
current cores (``O(chunk · d m r²)``), its part of the Gram matrix and
right-hand side added, and the chunk dropped. Peak device memory is
``O(chunk · (d + m r) + (r m r)²)``; the price is one pass over the rows per
local solve (``2(d−1)`` per sweep, plus one for the loss) and the interface
recomputation, ``O(N d² m r²)`` per sweep instead of ``O(N d m r²)``.

The sweep visits the cores in the order of :func:`~jaxtt.solvers.als.als_sweep`
and solves the same local problems exactly (Cholesky), so the streamed fit
equals the in-memory ``ALS()`` fit up to the order of floating-point sums.

Rows come from host arrays (NumPy, memory-mapped files) or from a function
``rows(i) -> (x_i, y_i)`` that produces chunk ``i`` — e.g. regenerates the
``i``-th chunk of diffusion training triples from ``jax.random.fold_in(key, i)``,
so the data never exist in memory at all.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from jaxtt._linalg import qr
from jaxtt._validation import check_bool, check_finite, check_int, check_real
from jaxtt.errors import NumericalError
from jaxtt.ftt.functional import FTT
from jaxtt.solvers._local import normal_equations, solve_normal
from jaxtt.solvers.als import sweep_order
from jaxtt.solvers.fit import FitResult, check_untraced, run_steps
from jaxtt.solvers.problem import check_feasible_ranks, check_fit_data
from jaxtt.tt import TensorTrain, absorb, norm, orthogonalize

__all__ = ["StreamedALS", "StreamedALSState", "fit_streamed"]


def _over_batch(fn, batch_ndim: int, in_axes):
    """``fn`` vmapped over the ``batch_ndim`` leading axes of a batch of trains."""
    for _ in range(batch_ndim):
        fn = jax.vmap(fn, in_axes=in_axes)
    return fn


def _interfaces_at(cores, feats, k: int, mask):
    """Left interfaces through cores ``0..k-1`` (started from ``mask``, so padding rows vanish) and right
    interfaces through cores ``k+1..d-1``, of one chunk of rows."""
    left = mask[:, None]
    for j in range(k):
        left = absorb(left, cores[j], feats[j])
    right = jnp.ones_like(left[:, :1])
    for j in range(len(cores) - 1, k, -1):
        right = absorb(right, jnp.swapaxes(cores[j], 0, 2), feats[j])
    return left, right


@eqx.filter_jit
def _chunk_normal_equations(model: FTT, k: int, x, y, mask, block_size: int):
    """This chunk's part of the Gram matrix and right-hand side of the local problem at core ``k``."""
    feats = model.features(x)

    def one(tt, targets):
        left, right = _interfaces_at(tt.cores, feats, k, mask)
        return normal_equations(left, [feats[k]], right, targets, block_size)

    return _over_batch(one, len(model.tt.batch_shape), (0, -1))(model.tt, y)


@eqx.filter_jit
def _chunk_errors(model: FTT, x, y, mask):
    """``(Σ_s mask_s ‖y_s − f(x_s)‖², Σ_s mask_s ‖y_s‖²)`` over one chunk (all outputs)."""
    weights = mask.reshape(-1, *([1] * (y.ndim - 1)))
    return jnp.sum(weights * (y - model(x)) ** 2), jnp.sum(weights * y**2)


@eqx.filter_jit
def _solve_and_move(tt: TensorTrain, k: int, forward: bool, gram, rhs, reg):
    """Solve the local problem at core ``k`` and move the orthogonality centre one core on (QR / LQ)."""
    last = len(tt.cores) == 1

    def one(tt, gram, rhs):
        cores = list(tt.cores)
        r, m, s = cores[k].shape
        g = solve_normal(gram, rhs, reg).reshape(r, m, s)
        if last:
            cores[k] = g
        elif forward:
            q, factor = qr(g.reshape(r * m, s))
            cores[k] = q.reshape(r, m, q.shape[1])
            cores[k + 1] = jnp.einsum("ab,bic->aic", factor, cores[k + 1])
        else:
            q, factor = qr(g.reshape(r, m * s).T)
            cores[k] = q.T.reshape(q.shape[1], m, s)
            cores[k - 1] = jnp.einsum("aib,bc->aic", cores[k - 1], factor.T)
        return TensorTrain(cores)

    return _over_batch(one, len(tt.batch_shape), (0, 0, 0))(tt, gram, rhs)


class StreamedALSState(eqx.Module):
    """State of :class:`StreamedALS`.

    Attributes:
        model: the current FTT (orthogonality centre at core 0 after a step).
        loss: ``J = (1/2N)(‖y − f(x)‖² + λ‖A‖²)`` (summed over outputs), from one pass over the rows.
        residual: ``‖y − f(x)‖ / ‖y‖`` from the same pass.
        rows: the number of data rows ``N``.
        step: sweeps taken.
    """

    model: FTT
    loss: Float[Array, ""]
    residual: Float[Array, ""]
    rows: int = eqx.field(static=True)
    step: Int[Array, ""]


class StreamedALS(eqx.Module):
    """TT-ALS sweeps with the rows streamed from the host (see the module docstring).

    ``init(model, data)`` and ``step(state, data)`` as for the in-memory solvers,
    where ``data`` is either a pair ``(x, y)`` of host arrays (``(N, d)`` and
    ``(N, *batch)``, e.g. NumPy or memory-mapped) or a function ``rows(i) ->
    (x_i, y_i)`` returning chunk ``i < n_chunks`` (at most ``chunk_size`` rows,
    the same rows on every call).

    Args:
        reg: ridge weight ``λ >= 0`` on ``‖A‖_F²``.
        chunk_size: rows moved to the device at a time (device memory ``O(chunk_size)``).
        block_size: rows per block of the Gram accumulation within a chunk (memory ``O(block · r m r)``).
        n_chunks: the number of chunks when ``data`` is a function (ignored for arrays).

    Examples:
        >>> import jax, numpy as np
        >>> from jaxtt.basis import Legendre
        >>> from jaxtt.ftt import FTT, constant_init
        >>> bases = [Legendre(3)] * 2
        >>> x = np.random.default_rng(0).uniform(-1, 1, (1000, 2))
        >>> solver = StreamedALS(chunk_size=256)  # four chunks
        >>> data = (x, x[:, 0] * x[:, 1])
        >>> state = solver.init(FTT(constant_init(bases, 2, key=jax.random.key(1)), bases), data)
        >>> first = state.loss
        >>> state = solver.step(solver.step(state, data), data)
        >>> state.rows, bool(state.loss < 1e-6 * first)
        (1000, True)
    """

    reg: float = 0.0
    chunk_size: int = 65536
    block_size: int = 4096
    n_chunks: int | None = None

    def __check_init__(self):
        check_real(self.reg, "reg", minimum=0.0)
        check_int(self.chunk_size, "chunk_size", minimum=1)
        check_int(self.block_size, "block_size", minimum=1)
        if self.n_chunks is not None:
            check_int(self.n_chunks, "n_chunks", minimum=1)

    def _source(self, data) -> tuple[Callable, int]:
        """``(rows, n_chunks)`` for a pair of host arrays or a chunk function."""
        if callable(data):
            if self.n_chunks is None:
                raise ValueError("data is a function rows(i) -> (x_i, y_i): pass StreamedALS(n_chunks=...)")
            return data, self.n_chunks
        if not (isinstance(data, tuple | list) and len(data) == 2):
            raise TypeError(f"data must be a pair (x, y) of host arrays or a function rows(i) -> (x_i, y_i), "
                            f"got {type(data).__name__}")
        x, y = data
        if len(x) != len(y):
            raise ValueError(f"x and y must have the same number of rows, got {len(x)} and {len(y)}")
        size = self.chunk_size
        return (lambda i: (x[i * size : (i + 1) * size], y[i * size : (i + 1) * size])), -(-len(x) // size)

    def _chunks(self, model: FTT, data, check: bool = False):
        """The chunks ``(x, y, mask)`` on the device, padded to ``chunk_size`` rows (mask 0 on padding)."""
        rows, n_chunks = self._source(data)
        dtype = model.tt.dtype
        for i in range(n_chunks):
            x, y = rows(i)
            x, y = np.asarray(x, dtype), np.asarray(y, dtype)
            if check:
                check_fit_data(model, x, y, f"x of chunk {i}", f"y of chunk {i}")
                check_finite(x, f"x of chunk {i}")
                check_finite(y, f"y of chunk {i}")
                if len(x) > self.chunk_size:
                    raise ValueError(f"chunk {i} holds {len(x)} rows, more than chunk_size={self.chunk_size}")
            pad = self.chunk_size - len(x)
            mask = np.concatenate([np.ones(len(x), dtype), np.zeros(pad, dtype)])
            yield (jnp.asarray(np.pad(x, ((0, pad), (0, 0)))), jnp.asarray(np.pad(y, [(0, pad)] + [(0, 0)] * (y.ndim - 1))),
                   jnp.asarray(mask))

    def _measure(self, model: FTT, data, step, check: bool = False) -> StreamedALSState:
        """One pass over the rows: the loss and relative residual of ``model``."""
        error = total = jnp.zeros((), model.tt.dtype)
        rows = 0
        for x, y, mask in self._chunks(model, data, check):
            e, t = _chunk_errors(model, x, y, mask)
            error, total, rows = error + e, total + t, rows + int(np.sum(np.asarray(mask)))
        norms = _over_batch(norm, len(model.tt.batch_shape), 0)(model.tt)
        loss = (error + self.reg * jnp.sum(norms**2)) / (2 * rows)
        residual = jnp.sqrt(error / jnp.maximum(total, jnp.finfo(total.dtype).tiny))
        return StreamedALSState(model, loss, residual, rows, step)

    def init(self, model: FTT, data) -> StreamedALSState:
        """Validate the model and every chunk (one pass), and measure the starting loss."""
        if not isinstance(model, FTT):
            raise TypeError(f"model must be an FTT, got {type(model).__name__}")
        check_feasible_ranks(model.tt)
        check_untraced(model)
        self._source(data)
        return self._measure(model, data, jnp.asarray(0), check=True)

    def step(self, state: StreamedALSState, data) -> StreamedALSState:
        """One sweep (``2(d-1)`` local solves, one pass over the rows each) and one pass for the loss."""
        model = state.model
        tt = _over_batch(lambda t: orthogonalize(t, 0), len(model.tt.batch_shape), 0)(model.tt)
        reg = jnp.asarray(self.reg, tt.dtype)
        order = sweep_order(model.ndim)
        for position, k in enumerate(order):
            current = FTT(tt, model.bases)
            gram = rhs = None
            for x, y, mask in self._chunks(model, data):
                g, h = _chunk_normal_equations(current, k, x, y, mask, self.block_size)
                gram, rhs = (g, h) if gram is None else (gram + g, rhs + h)
            tt = _solve_and_move(tt, k, position < model.ndim - 1, gram, rhs, reg)
        return self._measure(FTT(tt, model.bases), data, state.step + 1)


def fit_streamed(
    model: FTT,
    data,
    solver: StreamedALS | None = None,
    *,
    max_steps: int,
    tol: float = 0.0,
    stagnation: float | None = 0.0,
    progress: bool = True,
) -> tuple[FTT, FitResult]:
    """Fit ``model`` by :class:`StreamedALS` sweeps over rows streamed from the host; stopping rules as
    :func:`~jaxtt.solvers.fit`.

    Args:
        model: the starting :class:`~jaxtt.ftt.FTT` (its ranks are kept).
        data: a pair ``(x, y)`` of host arrays, or a function ``rows(i) -> (x_i, y_i)`` (then pass
            ``StreamedALS(n_chunks=...)``).
        solver: the :class:`StreamedALS` hyperparameters (default ``StreamedALS()``).
        max_steps: most sweeps; tol: relative training residual at which to stop; stagnation: as
            :func:`~jaxtt.solvers.fit`; progress: show a progress bar.

    Returns:
        ``(model, result)`` with a :class:`~jaxtt.solvers.FitResult` (no validation residuals).

    Raises:
        TypeError, ValueError: bad arguments or chunks, named.
        jaxtt.errors.NumericalError: a sweep produced a non-finite loss.

    Examples:
        >>> import jax, numpy as np
        >>> from jaxtt.basis import Legendre
        >>> from jaxtt.ftt import FTT, constant_init
        >>> bases = [Legendre(3)] * 3
        >>> x = np.random.default_rng(0).uniform(-1, 1, (2000, 3))
        >>> y = x[:, 0] * x[:, 1] + x[:, 2] ** 2
        >>> model = FTT(constant_init(bases, 2, key=jax.random.key(1)), bases)
        >>> model, result = fit_streamed(model, (x, y), StreamedALS(chunk_size=1024), max_steps=10, tol=1e-6,
        ...                              progress=False)
        >>> result.status, bool(result.train_residual[-1] < 1e-6)
        ('tol', True)
    """
    solver = StreamedALS() if solver is None else solver
    if not isinstance(solver, StreamedALS):
        raise TypeError(f"solver must be a StreamedALS, got {type(solver).__name__}")
    max_steps = check_int(max_steps, "max_steps", minimum=0)
    tol = check_real(tol, "tol", minimum=0.0)
    if stagnation is not None:
        stagnation = check_real(stagnation, "stagnation", minimum=0.0)
    check_bool(progress, "progress")
    result = FitResult([], [], [], None, [], [], "max_steps")

    def observe(state, step: int, seconds: float):
        loss, residual = float(np.sum(state.loss)), float(state.residual)
        result.step.append(step)
        result.loss.append(loss)
        result.train_residual.append(residual)
        result.ranks.append(state.model.tt.ranks)
        result.time.append(seconds)
        return loss, ("tol" if residual <= tol else None), {"residual": f"{residual:.2e}"}

    def check(state, step: int):
        if not np.isfinite(float(state.loss)):
            raise NumericalError("StreamedALS produced a non-finite loss", step=step,
                                 remedy="increase reg or check the scaling of the data")

    state, status = run_steps(solver, lambda: solver.init(model, data), lambda s: solver.step(s, data), check,
                              observe, max_steps=max_steps, stagnation=stagnation, progress=progress)
    return state.model, result._replace(status=status)
