"""Local least-squares problems shared by ALS and DMRG sweeps.

At a sweep position the model is linear in the unknown (super)core ``g``:
``f(x_s) = ⟨a_s, g⟩`` with the design row ``a_s = L_s ⊗ φ_s ⊗ R_s`` built from
the left interface ``L_s``, the feature vector(s) ``φ_s`` and the right
interface ``R_s``. The regularised problem

    min_g  Σ_s (y_s − ⟨a_s, g⟩)² + λ ‖g‖²

is solved through the normal equations ``(AᵀA + λI) g = Aᵀy``, accumulated
over chunks of samples so memory stays ``O(chunk · p + p²)`` for ``p`` unknowns,
or matrix-free by conjugate gradients when ``p`` is too large for a ``p × p``
Gram matrix.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax


def design_rows(left, feats, right):
    """Design rows ``L ⊗ φ_1 ⊗ … ⊗ R`` of shape ``(N, p)`` (one feature or a pair)."""
    rows = left
    for f in (*feats, right):
        rows = (rows[:, :, None] * f[:, None, :]).reshape(rows.shape[0], -1)
    return rows


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


def apply_design(left, feats, right, g, chunk_size: int):
    """``Aᵀ(A g)`` matrix-free, by contracting ``g`` with the interfaces per chunk."""
    parts = _chunked([left, *feats, right], chunk_size)

    def body(acc, chunk):
        rows = design_rows(chunk[0], chunk[1:-1], chunk[-1])
        return acc + rows.T @ (rows @ g), None

    out, _ = lax.scan(body, jnp.zeros_like(g), parts)
    return out


def squared_residual(left, feats, right, y, g, chunk_size: int):
    """``‖y − A g‖²`` accumulated over chunks (no cancellation, unlike ``yᵀy − 2gᵀh + gᵀGg``)."""
    parts = _chunked([left, *feats, right, y], chunk_size)

    def body(acc, chunk):
        *interfaces, yc = chunk
        r = yc - design_rows(interfaces[0], interfaces[1:-1], interfaces[-1]) @ g
        return acc + r @ r, None

    out, _ = lax.scan(body, jnp.zeros((), y.dtype), parts)
    return out


def rhs_and_diagonal(left, feats, right, y, chunk_size: int):
    """``Aᵀy`` and ``diag(AᵀA)`` accumulated over chunks."""
    parts = _chunked([left, *feats, right, y], chunk_size)

    def body(acc, chunk):
        *interfaces, yc = chunk
        rows = design_rows(interfaces[0], interfaces[1:-1], interfaces[-1])
        return (acc[0] + rows.T @ yc, acc[1] + jnp.sum(rows * rows, axis=0)), None

    p = left.shape[1] * right.shape[1]
    for f in feats:
        p *= f.shape[1]
    zero = jnp.zeros((p,), left.dtype)
    out, _ = lax.scan(body, (zero, zero), parts)
    return out


def solve_cg(left, feats, right, y, reg, g0, chunk_size: int, maxiter: int):
    """Jacobi-preconditioned, matrix-free CG on ``(AᵀA + λI) g = Aᵀy`` started at ``g0``."""
    rhs, diagonal = rhs_and_diagonal(left, feats, right, y, chunk_size)
    inverse_diagonal = 1.0 / (diagonal + reg + jnp.finfo(diagonal.dtype).tiny)

    def matvec(g):
        return apply_design(left, feats, right, g, chunk_size) + reg * g

    g, _ = jax.scipy.sparse.linalg.cg(
        matvec, rhs, x0=g0, tol=1e-10, maxiter=maxiter, M=lambda v: inverse_diagonal * v
    )
    return g, rhs
