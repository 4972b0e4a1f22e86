"""Decompositions: TT-SVD, canonical forms and rounding (Oseledets 2011).

Rank truncation with a relative tolerance ``eps`` picks ranks from the singular
values, i.e. from the data, so it runs eagerly (outside ``jit``). With
``eps = 0`` the ranks are ``min(max_rank, full rank)`` — known from the shapes —
and the functions are jit- and grad-compatible.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from jaxtt._linalg import qr
from jaxtt._validation import check_array, check_instance, check_finite, check_int, check_real, is_concrete
from jaxtt.tt.core import TensorTrain, check_single

__all__ = ["from_dense", "orthogonalize", "round", "truncation_rank"]


def _check_truncation(max_rank, eps) -> tuple[int | None, float]:
    if max_rank is not None:
        max_rank = check_int(max_rank, "max_rank", minimum=1)
    eps = check_real(eps, "eps", minimum=0.0)
    return max_rank, eps


def truncation_rank(s, delta, max_rank: int | None = None) -> int:
    """Smallest ``r`` with ``‖s[r:]‖₂ <= delta``, at least 1, capped by ``max_rank``.

    The rank rule of truncated SVDs (Oseledets 2011, Alg. 1): dropping the
    singular values ``s[r:]`` costs ``‖s[r:]‖₂`` in Frobenius norm. ``delta=None``
    keeps all of ``s`` (up to ``max_rank``); a ``delta`` needs concrete values.

    Examples:
        >>> import numpy as np
        >>> truncation_rank(np.array([4.0, 2.0, 0.3, 0.4]), 0.5)
        2
        >>> truncation_rank(np.array([4.0, 2.0, 0.3, 0.4]), 0.1, max_rank=3)
        3
    """
    r = s.shape[0]
    if delta is not None:
        if not (is_concrete(s) and is_concrete(delta)):
            raise ValueError(
                "eps > 0 chooses ranks from the singular values and needs concrete arrays; "
                "call it outside jax.jit, or use eps=0 with max_rank inside jit"
            )
        s = np.asarray(s, dtype=np.float64)
        tail = np.sqrt(np.cumsum(s[::-1] ** 2))[::-1]  # tail[k] = ‖s[k:]‖
        r = max(int(np.sum(tail > float(delta))), 1)
    return r if max_rank is None else min(r, max_rank)


def _svd_split(matrix, delta, max_rank):
    """Truncated SVD ``M ≈ U (S Vᵀ)`` returning ``(U_r, S_r Vᵀ_r)``."""
    if matrix.shape[0] < matrix.shape[1]:  # LAPACK-backed SVD is several times faster on tall matrices
        v, s, ut = jnp.linalg.svd(matrix.T, full_matrices=False)
        u, vt = ut.T, v.T
    else:
        u, s, vt = jnp.linalg.svd(matrix, full_matrices=False)
    r = truncation_rank(s, delta, max_rank)
    return u[:, :r], s[:r, None] * vt[:r]


def from_dense(x: Float[Array, "*shape"], max_rank: int | None = None, eps: float = 0.0) -> TensorTrain:
    """TT-SVD of a dense tensor (Oseledets 2011, Alg. 1).

    Sequential truncated SVDs of the unfoldings, each with absolute threshold
    ``δ = eps ‖x‖_F / sqrt(d - 1)``, so that ``‖x - full(tt)‖_F <= eps ‖x‖_F``
    when ``max_rank`` does not cap a rank. Cost ``O(n^{d+1})`` for the first SVD.

    Args:
        x: dense floating array with ``d >= 1`` axes, finite.
        max_rank: optional cap on every TT rank (``>= 1``).
        eps: relative Frobenius error bound (``>= 0``); ``eps > 0`` runs eagerly.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxtt.tt import full
        >>> x = jnp.einsum("i,j,k->ijk", jnp.arange(1.0, 4.0), jnp.ones(4), jnp.arange(5.0))  # rank one
        >>> tt = from_dense(x, eps=1e-6)
        >>> tt.ranks, bool(jnp.allclose(full(tt), x, atol=1e-4))
        ((1, 1, 1, 1), True)
        >>> from_dense(x, max_rank=2).ranks  # no truncation: min(max_rank, unfolding rank bound)
        (1, 2, 2, 1)
    """
    x = check_array(x, "x", floating=True)
    if x.ndim < 1:
        raise ValueError("x must have at least one axis")
    if 0 in x.shape:
        raise ValueError(f"x must not have an empty axis, got shape {tuple(x.shape)}")
    check_finite(x, "x")
    max_rank, eps = _check_truncation(max_rank, eps)
    x = jnp.asarray(x)
    d = x.ndim
    delta = eps * jnp.linalg.norm(x) / max(d - 1, 1) ** 0.5 if eps > 0 else None
    cores = []
    rank = 1
    rest = x.reshape(1, -1)
    for n in x.shape[:-1]:
        u, rest = _svd_split(rest.reshape(rank * n, -1), delta, max_rank)
        cores.append(u.reshape(rank, n, u.shape[1]))
        rank = u.shape[1]
    cores.append(rest.reshape(rank, x.shape[-1], 1))
    return TensorTrain(cores)


def _left_qr(core, nxt):
    r, n, s = core.shape
    q, rr = qr(core.reshape(r * n, s))
    return q.reshape(r, n, q.shape[1]), jnp.einsum("ab,bic->aic", rr, nxt)


def _right_qr(prev, core):
    r, n, s = core.shape
    q, rr = qr(core.reshape(r, n * s).T)
    return jnp.einsum("aib,bc->aic", prev, rr.T), q.T.reshape(q.shape[1], n, s)


@partial(jax.jit, static_argnames=("max_rank",))
def _round_masked(cores, eps, max_rank):
    """The ``eps`` rounding sweep as one compiled program at full shapes.

    Singular values that the ``eps`` rule (or ``max_rank``) drops are masked to
    zero instead of cut, so every shape is static; the kept ranks come back as
    an array and the zero slices are removed afterwards. The masked rows and
    columns carry exact zeros, so each later SVD sees the truncated matrix padded
    with zero rows: the same nonzero singular values and vectors as the
    sequential algorithm.
    """
    d = len(cores)
    cores = list(orthogonalize(TensorTrain(list(cores)), 0).cores)
    delta = eps * jnp.linalg.norm(cores[0]) / max(d - 1, 1) ** 0.5
    ranks = []
    for k in range(d - 1):
        r, n, _ = cores[k].shape
        u, s, vt = jnp.linalg.svd(cores[k].reshape(r * n, -1), full_matrices=False)
        tail = jnp.sqrt(jnp.cumsum(s[::-1] ** 2))[::-1]  # tail[j] = ‖s[j:]‖
        keep = jnp.maximum(jnp.sum(tail > delta), 1)
        if max_rank is not None:
            keep = jnp.minimum(keep, max_rank)
        kept = jnp.arange(s.shape[0]) < keep
        s = jnp.where(kept, s, 0)
        cores[k] = (u * kept).reshape(r, n, u.shape[1])
        cores[k + 1] = jnp.einsum("ab,bic->aic", s[:, None] * vt, cores[k + 1])
        ranks.append(keep)
    return cores, jnp.stack(ranks)


@partial(jax.jit, static_argnames=("ranks",))
def _cut(cores, ranks):
    """Drop the zero slices left by :func:`_round_masked` (one dispatch per rank pattern)."""
    return [c[: ranks[k], :, : ranks[k + 1]] for k, c in enumerate(cores)]


def orthogonalize(tt: TensorTrain, center: int = -1) -> TensorTrain:
    """Mixed canonical form with orthogonality centre ``center``.

    Cores left of the centre become left-orthogonal
    (``Σ_{a,i} G[a,i,b] G[a,i,c] = δ_bc``), cores right of it right-orthogonal,
    by QR sweeps from both ends; the represented tensor is unchanged and
    ``‖A‖_F = ‖G_center‖_F``. ``center=-1`` (or ``d - 1``) gives the left-canonical
    form, ``center=0`` the right-canonical one. Ranks may shrink to
    ``min(r_{k-1} n_k, r_k)``. Cost ``O(d n r³)``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt.tt import random, full, norm
        >>> a = random(jax.random.key(0), (3, 4, 5), 2)
        >>> b = orthogonalize(a, center=1)
        >>> g = b.cores[0].reshape(-1, b.ranks[1])  # left-orthogonal: GᵀG = I
        >>> bool(jnp.allclose(g.T @ g, jnp.eye(b.ranks[1]), atol=1e-5))
        True
        >>> bool(jnp.allclose(full(b), full(a), atol=1e-5))  # the same tensor
        True
        >>> bool(jnp.allclose(jnp.linalg.norm(b.cores[1]), norm(a), rtol=1e-5))  # the centre holds the norm
        True
    """
    check_single(check_instance(tt, "tt", TensorTrain), "tt", "orthogonalize")
    d = tt.ndim
    center = check_int(center, "center", minimum=-d, maximum=d - 1) % d
    cores = list(tt.cores)
    for k in range(center):
        cores[k], cores[k + 1] = _left_qr(cores[k], cores[k + 1])
    for k in range(d - 1, center, -1):
        cores[k - 1], cores[k] = _right_qr(cores[k - 1], cores[k])
    return TensorTrain(cores)


def round(tt: TensorTrain, max_rank: int | None = None, eps: float = 0.0) -> TensorTrain:
    """TT rounding (Oseledets 2011, Alg. 2): recompress to lower ranks.

    Right-orthogonalize, then sweep left to right with truncated SVDs of
    threshold ``δ = eps ‖A‖_F / sqrt(d - 1)``, which guarantees
    ``‖A - round(A)‖_F <= eps ‖A‖_F`` when ``max_rank`` does not cap a rank.
    Cost ``O(d n r³)``.

    Args:
        tt: tensor train.
        max_rank: optional cap on every rank (``>= 1``).
        eps: relative Frobenius error bound (``>= 0``); ``eps > 0`` runs eagerly.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt.tt import random, add, full
        >>> a = random(jax.random.key(0), (3, 4, 5), 2)
        >>> b = add(a, a)  # 2A, stored with ranks (1, 4, 4, 1)
        >>> c = round(b, eps=1e-4)
        >>> c.ranks, bool(jnp.allclose(full(c), 2 * full(a), atol=1e-4))
        ((1, 2, 2, 1), True)
    """
    check_single(check_instance(tt, "tt", TensorTrain), "tt", "round")
    max_rank, eps = _check_truncation(max_rank, eps)
    d = tt.ndim
    if d == 1:  # a vector: both ranks are 1, nothing to truncate
        return TensorTrain(tt.cores)
    if eps > 0:
        if not all(is_concrete(c) for c in tt.cores):
            raise ValueError(
                "eps > 0 chooses ranks from the singular values and needs concrete arrays; "
                "call it outside jax.jit, or use eps=0 with max_rank inside jit"
            )
        cores, ranks = _round_masked(tuple(tt.cores), eps, max_rank)
        return TensorTrain(_cut(tuple(cores), (1, *np.asarray(ranks).tolist(), 1)))  # one host transfer
    cores = list(orthogonalize(tt, 0).cores)
    delta = None
    for k in range(d - 1):
        r, n, _ = cores[k].shape
        u, sv = _svd_split(cores[k].reshape(r * n, -1), delta, max_rank)
        cores[k] = u.reshape(r, n, u.shape[1])
        cores[k + 1] = jnp.einsum("ab,bic->aic", sv, cores[k + 1])
    return TensorTrain(cores)
