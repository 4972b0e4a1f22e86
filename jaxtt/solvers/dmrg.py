"""Two-site ALS (DMRG-style, rank-adaptive) for functional tensor trains (seed 001 §3.5.2).

At position ``k`` the neighbouring cores are merged into a supercore
``W ∈ R^{r_{k-1} × m_k × m_{k+1} × r_{k+1}}``, the ridge problem

    min_W  Σ_s (y_s − ⟨L_s ⊗ φ_k(x_{s,k}) ⊗ φ_{k+1}(x_{s,k+1}) ⊗ R_s, W⟩)² + λ ‖W‖²

is solved (normal equations while the supercore has at most
``dense_limit`` entries, matrix-free conjugate gradients started from the
current supercore otherwise), and ``W`` is split back by a truncated SVD of
its ``(r_{k-1} m_k) × (m_{k+1} r_{k+1})`` unfolding: the smallest rank with
``‖σ_{>r}‖ <= eps ‖σ‖``, capped at ``max_rank``. Ranks therefore grow or shrink
to what the data support (White 1992; Holtz, Rohwedder, Schneider 2012).

Ranks change between steps, so the sweep runs eagerly in Python with each
local solve jit-compiled per shape.
"""

from __future__ import annotations

import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jaxtt._validation import check_int, check_real
from jaxtt.ftt.functional import FTT
from jaxtt.solvers._local import normal_equations, solve_cg, solve_normal, squared_residual
from jaxtt.solvers.als import _relative_residual, _right_interfaces, check_training_data
from jaxtt.tt import TensorTrain, orthogonalize
from jaxtt.tt.decompositions import _truncation_rank
from jaxtt.tt.ops import _absorb_vectors

__all__ = ["fit_dmrg", "dmrg_sweep"]


@partial(jax.jit, static_argnames=("chunk_size",))
def _solve_dense(left, f1, f2, right, y, reg, chunk_size=4096):
    gram, rhs = normal_equations(left, [f1, f2], right, y, chunk_size)
    w = solve_normal(gram, rhs, reg)
    return w, squared_residual(left, [f1, f2], right, y, w, chunk_size) + reg * w @ w


@partial(jax.jit, static_argnames=("maxiter", "chunk_size"))
def _solve_iterative(left, f1, f2, right, y, reg, w0, maxiter=200, chunk_size=4096):
    w, _ = solve_cg(left, [f1, f2], right, y, reg, w0, chunk_size, maxiter)
    return w, squared_residual(left, [f1, f2], right, y, w, chunk_size) + reg * w @ w


def _split(w, shape, eps, max_rank, move_right: bool):
    r0, m1, m2, r1 = shape
    u, s, vt = jnp.linalg.svd(w.reshape(r0 * m1, m2 * r1), full_matrices=False)
    rank = _truncation_rank(s, eps * jnp.linalg.norm(s), max_rank)
    u, s, vt = u[:, :rank], s[:rank], vt[:rank]
    if move_right:
        return u.reshape(r0, m1, rank), (s[:, None] * vt).reshape(rank, m2, r1)
    return (u * s).reshape(r0, m1, rank), vt.reshape(rank, m2, r1)


def dmrg_sweep(model: FTT, x, y, *, eps: float = 1e-8, max_rank: int | None = None, reg: float = 0.0,
               dense_limit: int = 2500, cg_maxiter: int = 200):
    """One two-site sweep (positions ``1..d-1`` and back); returns ``(model, objectives)``.

    Runs eagerly (ranks are chosen from the data). ``objectives`` holds ``J``
    after each local solve, before truncation.
    """
    feats = model.features(x)
    y = y.astype(model.tt.dtype)
    cores = list(orthogonalize(model.tt, 0).cores)
    d = len(cores)
    rights = _right_interfaces(cores, feats)
    lefts = [rights[d]] + [None] * (d - 1)
    objectives = []
    order = list(range(d - 1)) + list(range(d - 2, -1, -1))
    for step, k in enumerate(order):
        move_right = step < d - 1
        shape = (cores[k].shape[0], cores[k].shape[1], cores[k + 1].shape[1], cores[k + 1].shape[2])
        w0 = jnp.einsum("aib,bjc->aijc", cores[k], cores[k + 1]).reshape(-1)
        args = (lefts[k], feats[k], feats[k + 1], rights[k + 2], y, reg)
        if w0.size <= dense_limit:
            w, obj = _solve_dense(*args)
        else:
            w, obj = _solve_iterative(*args, w0, maxiter=cg_maxiter)
        objectives.append(float(obj))
        if not np.isfinite(objectives[-1]):
            raise ValueError(f"DMRG produced a non-finite local solution at cores ({k}, {k + 1}); increase reg")
        cores[k], cores[k + 1] = _split(w, shape, eps, max_rank, move_right)
        if move_right:
            lefts[k + 1] = _absorb_vectors(lefts[k], cores[k], feats[k])
        else:
            rights[k + 1] = _absorb_vectors(rights[k + 2], jnp.swapaxes(cores[k + 1], 0, 2), feats[k + 1])
    return FTT(TensorTrain(cores), model.bases), np.asarray(objectives)


def fit_dmrg(
    model: FTT,
    x,
    y,
    *,
    sweeps: int = 5,
    eps: float = 1e-8,
    max_rank: int | None = None,
    reg: float = 0.0,
    tol: float = 0.0,
    x_val=None,
    y_val=None,
    dense_limit: int = 2500,
    cg_maxiter: int = 200,
    progress: bool = True,
) -> tuple[FTT, dict]:
    """Rank-adaptive fit by two-site sweeps; history records the ranks after each sweep.

    Args:
        model: scalar FTT (its ranks are only the starting point; rank 1 is fine).
        x, y: data ``(N, d)``, ``(N,)``.
        sweeps: maximal number of sweeps (``>= 1``).
        eps: relative truncation threshold of the SVD split (``>= 0``).
        max_rank: cap on every rank.
        reg: ridge weight ``λ >= 0``.
        tol: stop when the relative training residual is below it.
        dense_limit: largest supercore size solved by normal equations; larger
            ones use matrix-free CG with ``cg_maxiter`` iterations.

    Returns:
        ``(model, history)`` with keys ``sweep``, ``train_residual``,
        ``val_residual`` (if validation data is given), ``ranks``, ``time``.
    """
    x, y, x_val, y_val = check_training_data(model, x, y, x_val, y_val)
    if model.tt.batch_shape:
        raise ValueError("fit_dmrg fits one scalar FTT; ranks adapt per output, so fit outputs separately")
    if model.ndim < 2:
        raise ValueError("DMRG needs at least two variables")
    sweeps = check_int(sweeps, "sweeps", minimum=1)
    eps = check_real(eps, "eps", minimum=0.0)
    if max_rank is not None:
        max_rank = check_int(max_rank, "max_rank", minimum=1)
    reg = check_real(reg, "reg", minimum=0.0)
    tol = check_real(tol, "tol", minimum=0.0)
    dense_limit = check_int(dense_limit, "dense_limit", minimum=1)
    cg_maxiter = check_int(cg_maxiter, "cg_maxiter", minimum=1)
    history = {"sweep": [], "train_residual": [], "ranks": [], "time": []}
    if x_val is not None:
        history["val_residual"] = []
    bar = tqdm(range(1, sweeps + 1), desc="DMRG", disable=not progress, leave=False)
    for s in bar:
        start = time.perf_counter()
        try:
            model, _ = dmrg_sweep(model, x, y, eps=eps, max_rank=max_rank, reg=reg,
                                  dense_limit=dense_limit, cg_maxiter=cg_maxiter)
        except ValueError as err:
            raise ValueError(f"sweep {s}: {err}") from None
        history["time"].append(time.perf_counter() - start)
        history["sweep"].append(s)
        history["ranks"].append(model.tt.ranks)
        history["train_residual"].append(_relative_residual(model, x, y))
        if x_val is not None:
            history["val_residual"].append(_relative_residual(model, x_val, y_val))
        bar.set_postfix(residual=f"{history['train_residual'][-1]:.2e}", rank=max(model.tt.ranks))
        if history["train_residual"][-1] <= tol:
            break
    return model, history
