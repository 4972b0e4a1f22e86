"""Local least-squares problems shared by ALS and DMRG sweeps.

At a sweep position the model is linear in the unknown (super)core ``g``:
``f(x_s) = ⟨a_s, g⟩`` with the design row ``a_s = L_s ⊗ φ_s ⊗ R_s`` built from
the left interface ``L_s``, the feature vector(s) ``φ_s`` and the right
interface ``R_s``. The regularised problem

    min_g  Σ_s (y_s − ⟨a_s, g⟩)² + λ ‖g‖²

is solved through the normal equations ``(AᵀA + λI) g = Aᵀy``, accumulated
over chunks of samples so memory stays ``O(chunk · p + p²)`` for ``p`` unknowns,
or matrix-free by conjugate gradients when ``p`` is too large for a ``p × p``
Gram matrix. The matrix-free operators use the factorisation ``a_s = L_s ⊗ W_s``
(``W_s = φ_s ⊗ R_s``) and cost ``O(N p)`` per product, never forming ``A``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax


def design_rows(left, feats, right):
    """Design rows ``L ⊗ φ_1 ⊗ … ⊗ R`` of shape ``(N, p)`` (one feature or a pair)."""
    w = right_rows(feats, right)
    return (left[:, :, None] * w[:, None, :]).reshape(left.shape[0], -1)


def _chunked(arrays, chunk_size: int):
    """Pad the sample axis to a multiple of ``chunk_size`` (zero rows) and split it."""
    n = arrays[0].shape[0]
    chunk_size = max(1, min(chunk_size, n))
    n_chunks = -(-n // chunk_size)
    pad = n_chunks * chunk_size - n
    return [jnp.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1)).reshape(n_chunks, chunk_size, *a.shape[1:]) for a in arrays]


def normal_equations(left, feats, right, y, chunk_size: int):
    """``G = AᵀA`` and ``h = Aᵀy`` accumulated over chunks (``lax.scan``).

    Zero-padded rows have zero interfaces and contribute nothing. Cost
    ``O(N p²)`` flops, one GEMM per chunk.
    """
    parts = _chunked([left, *feats, right, y], chunk_size)

    def body(carry, chunk):
        gram, rhs = carry
        *interfaces, yc = chunk
        rows = design_rows(interfaces[0], interfaces[1:-1], interfaces[-1])
        return (gram + rows.T @ rows, rhs + rows.T @ yc), None

    p = left.shape[1] * right.shape[1]
    for f in feats:
        p *= f.shape[1]
    zero = (jnp.zeros((p, p), left.dtype), jnp.zeros((p,), left.dtype))
    (gram, rhs), _ = lax.scan(body, zero, parts)
    return gram, rhs


def solve_normal(gram, rhs, reg):
    """Cholesky solve of ``(G + λI) g = h``.

    A jitter of ``10·eps_machine · mean(diag G)`` is added to the diagonal so a
    rank-deficient Gram matrix (e.g. ranks above what the data determine) still
    factors; with ``λ`` well above it the jitter is immaterial. (Scaling it with
    ``tr G`` instead costs accuracy: the float32 W-ALS held-out error rose from
    2e-6 to 8e-4.)
    """
    p = gram.shape[0]
    jitter = 10 * jnp.finfo(gram.dtype).eps * jnp.trace(gram) / p
    factor = jax.scipy.linalg.cho_factor(gram + (reg + jitter) * jnp.eye(p, dtype=gram.dtype))
    return jax.scipy.linalg.cho_solve(factor, rhs)


def right_rows(feats, right):
    """Factor ``W = φ_1 ⊗ … ⊗ R`` of the design rows ``a_s = L_s ⊗ W_s``, shape ``(N, q)``."""
    rows = feats[0]
    for f in (*feats[1:], right):
        rows = (rows[:, :, None] * f[:, None, :]).reshape(rows.shape[0], -1)
    return rows


def _factored_scan(body, init, left, feats, right, *extra, chunk_size: int):
    """Fold ``body(acc, L, W, *extra)`` over chunks of samples; ``W`` is built per chunk (memory ``O(chunk · q)``)."""
    parts = _chunked([left, *feats, right, *extra], chunk_size)
    n_feats = len(feats)

    def step(acc, chunk):
        left_c, *rest = chunk
        w = right_rows(rest[:n_feats], rest[n_feats])
        return body(acc, left_c, w, *rest[n_feats + 1 :]), None

    out, _ = lax.scan(step, init, parts)
    return out


def _apply(left, w, g):
    """``A g`` for design rows ``L ⊗ W``: ``(A g)_s = L_sᵀ G W_s`` with ``G = g`` as an ``r × q`` matrix (O(N r q))."""
    return jnp.sum((left @ g.reshape(left.shape[1], w.shape[1])) * w, axis=1)


def _apply_transpose(left, w, u):
    """``Aᵀ u = Σ_s u_s L_s ⊗ W_s`` as one ``(r × N)(N × q)`` product."""
    return ((left * u[:, None]).T @ w).reshape(-1)


def apply_normal(left, feats, right, g, chunk_size: int):
    """``Aᵀ(A g)`` matrix-free in ``O(N r q)`` flops, never forming the ``N × p`` design matrix."""
    return _factored_scan(
        lambda acc, l, w: acc + _apply_transpose(l, w, _apply(l, w, g)),
        jnp.zeros_like(g), left, feats, right, chunk_size=chunk_size,
    )


def squared_residual(left, feats, right, y, g, chunk_size: int):
    """``‖y − A g‖²`` accumulated over chunks (no cancellation, unlike ``yᵀy − 2gᵀh + gᵀGg``)."""

    def body(acc, l, w, yc):
        r = yc - _apply(l, w, g)
        return acc + r @ r

    return _factored_scan(body, jnp.zeros((), y.dtype), left, feats, right, y, chunk_size=chunk_size)


def rhs_and_diagonal(left, feats, right, y, chunk_size: int):
    """``Aᵀy`` and ``diag(AᵀA) = Σ_s (L_s ⊙ L_s) ⊗ (W_s ⊙ W_s)`` accumulated over chunks."""

    def body(acc, l, w, yc):
        return acc[0] + _apply_transpose(l, w, yc), acc[1] + ((l * l).T @ (w * w)).reshape(-1)

    p = left.shape[1] * right.shape[1]
    for f in feats:
        p *= f.shape[1]
    zero = jnp.zeros((p,), left.dtype)
    return _factored_scan(body, (zero, zero), left, feats, right, y, chunk_size=chunk_size)


def solve_cg(left, feats, right, y, reg, g0, chunk_size: int, maxiter: int):
    """Jacobi-preconditioned, matrix-free CG on ``(AᵀA + λI) g = Aᵀy`` started at ``g0``.

    Each iteration costs ``O(N p)`` flops (:func:`apply_normal`) instead of the
    ``O(N p²)`` Gram assembly, so a few iterations are far cheaper than a
    Cholesky solve when ``p = r m r`` is large, and converge fast when the
    design is well conditioned (orthonormal bases, canonical form). CG minimises the
    quadratic objective over ``g0 +`` the Krylov space, so the objective at the
    returned ``g`` never exceeds its value at ``g0``: warm-started inexact solves
    keep ALS monotone.
    """
    rhs, diagonal = rhs_and_diagonal(left, feats, right, y, chunk_size)
    inverse_diagonal = 1.0 / (diagonal + reg + jnp.finfo(diagonal.dtype).tiny)

    def matvec(g):
        return apply_normal(left, feats, right, g, chunk_size) + reg * g

    g, _ = jax.scipy.sparse.linalg.cg(
        matvec, rhs, x0=g0, tol=1e-10, maxiter=maxiter, M=lambda v: inverse_diagonal * v
    )
    return g, rhs
