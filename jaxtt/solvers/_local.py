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

Every quantity the solves need from the samples is a sum over rows (``AᵀA``,
``Aᵀy``, ``AᵀA p``, ``‖A p‖²``, the factor second moments), so with the rows
split over devices inside ``jax.shard_map`` each device sums its own rows and
one ``psum`` over ``axis_name`` completes the sum; the small solves then run
identically on every device. ``axis_name=None`` is the single-device case.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from jaxtt._linalg import cholesky_solve, eigh


def sum_rows(value, axis_name=None):
    """``value`` (a sum over this device's rows) summed over the devices of mesh axis ``axis_name`` (``None``: as is)."""
    return value if axis_name is None else lax.psum(value, axis_name)


def design_rows(left, feats, right):
    """Design rows ``L ⊗ φ_1 ⊗ … ⊗ R`` of shape ``(N, p)`` (one feature or a pair)."""
    w = right_rows(feats, right)
    return (left[:, :, None] * w[:, None, :]).reshape(left.shape[0], -1)


def chunked(arrays, chunk_size: int):
    """Pad the sample axis to a multiple of ``chunk_size`` (zero rows) and split it."""
    n = arrays[0].shape[0]
    chunk_size = max(1, min(chunk_size, n))
    n_chunks = -(-n // chunk_size)
    pad = n_chunks * chunk_size - n
    return [jnp.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1)).reshape(n_chunks, chunk_size, *a.shape[1:]) for a in arrays]


def normal_equations(left, feats, right, y, chunk_size: int, axis_name=None):
    """``G = AᵀA`` and ``h = Aᵀy`` accumulated over chunks (``lax.scan``), summed over ``axis_name``.

    Zero-padded rows have zero interfaces and contribute nothing. Cost
    ``O(N p²)`` flops, one GEMM per chunk.
    """
    parts = chunked([left, *feats, right, y], chunk_size)

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
    return sum_rows((gram, rhs), axis_name)


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
    return cholesky_solve(gram + (reg + jitter) * jnp.eye(p, dtype=gram.dtype), rhs)


def right_rows(feats, right):
    """Factor ``W = φ_1 ⊗ … ⊗ R`` of the design rows ``a_s = L_s ⊗ W_s``, shape ``(N, q)``."""
    rows = feats[0]
    for f in (*feats[1:], right):
        rows = (rows[:, :, None] * f[:, None, :]).reshape(rows.shape[0], -1)
    return rows


def _apply(left, w, g):
    """``A g`` for design rows ``L ⊗ W``: ``(A g)_s = L_sᵀ G W_s`` with ``G = g`` as an ``r × q`` matrix (O(N r q)).

    Contracted as ``W Gᵀ`` first, so the only intermediate is ``(N, r)``, not ``(N, q)``.
    """
    return jnp.sum(left * (w @ g.reshape(left.shape[1], w.shape[1]).T), axis=1)


def _apply_transpose(left, w, u):
    """``Aᵀ u = Σ_s u_s L_s ⊗ W_s`` as one ``(r × N)(N × q)`` product."""
    return ((left * u[:, None]).T @ w).reshape(-1)


def residual_pass(parts, g, offset=None):
    """One pass over the chunked factors ``parts = chunked([L, *feats, R])``.

    Returns ``Aᵀv`` and the chunked ``v = offset − A g`` (``offset`` chunked like
    the samples, ``None`` for zero). ``W = φ ⊗ … ⊗ R`` is rebuilt per chunk, so
    memory stays ``O(chunk · q)``; cost ``O(N p)`` flops, never forming ``A``.
    """
    n_feats = len(parts) - 2
    offset = jnp.zeros(parts[0].shape[:2], g.dtype) if offset is None else offset

    def step(acc, xs):
        chunk, c = xs
        left, w = chunk[0], right_rows(chunk[1 : 1 + n_feats], chunk[-1])
        v = c - _apply(left, w, g)
        return acc + _apply_transpose(left, w, v), v

    return lax.scan(step, jnp.zeros_like(g), (parts, offset))


def squared_residual(left, feats, right, y, g, chunk_size: int, axis_name=None):
    """``‖y − A g‖²`` accumulated over chunks (no cancellation, unlike ``yᵀy − 2gᵀh + gᵀGg``), summed over
    ``axis_name``."""
    _, v = residual_pass(chunked([left, *feats, right], chunk_size), g, chunked([y], chunk_size)[0])
    return sum_rows(jnp.sum(v * v), axis_name)


def kronecker_preconditioner(left, feats, right, reg, mask=None, axis_name=None):
    """``v ↦ (N S_L ⊗ S_1 ⊗ … ⊗ S_R + λI)⁻¹ v`` with the factor second moments ``S = FᵀF / N``.

    ``mask`` (``(N, 1)``, 1 for data rows and 0 for padding, ``None``: all rows)
    restricts the moments and ``N`` to the data rows, so padding (to whole
    chunks, or to a multiple of the device count) leaves the preconditioner
    unchanged; the sums run over ``axis_name`` too.

    The design rows are Kronecker products ``a_s = L_s ⊗ φ_s ⊗ R_s``, so
    ``AᵀA = Σ_s (L_s L_sᵀ) ⊗ (φ_s φ_sᵀ) ⊗ (R_s R_sᵀ)``, whose expectation is
    ``N S_L ⊗ S_φ ⊗ S_R`` when the factors are independent — as they are for
    independent input coordinates, since ``L_s``, ``φ_s`` and ``R_s`` depend on
    disjoint sets of them. With the eigendecompositions ``S = U diag(μ) Uᵀ``
    the inverse is applied exactly in the product eigenbasis,
    ``(U_L ⊗ … ⊗ U_R) diag(1 / (N μ_a μ_i μ_b + λ)) (U_L ⊗ … ⊗ U_R)ᵀ``, in
    ``O(p (r + m))`` flops (Kronecker-factored preconditioning, as in K-FAC,
    Martens & Grosse 2015). Building it costs one pass ``O(N (r² + m²))``.
    """
    factors = [left, *feats, right]
    weighted = factors if mask is None else [f * mask for f in factors]
    n = sum_rows(jnp.asarray(left.shape[0], left.dtype) if mask is None else jnp.sum(mask), axis_name)
    moments = sum_rows([w.T @ f for w, f in zip(weighted, factors, strict=True)], axis_name)
    eigen = [eigh(moment / n) for moment in moments]
    scale = n * eigen[0][0]
    for mu, _ in eigen[1:]:
        scale = scale[..., None] * jnp.maximum(mu, 0)
    scale = jnp.maximum(scale, 0) + reg + jnp.finfo(left.dtype).tiny
    shape = tuple(f.shape[1] for f in factors)

    def rotate(v, transpose: bool):
        for axis, (_, u) in enumerate(eigen):
            v = jnp.moveaxis(jnp.tensordot(u.T if transpose else u, v, axes=(1, axis)), 0, axis)
        return v

    def apply(v):
        return rotate(rotate(v.reshape(shape), True) / scale, False).reshape(-1)

    return apply


def _longer_chunks(n: int, chunk_size: int, factor: int) -> int:
    """Chunks up to ``factor`` times longer; a multiple of ``chunk_size`` that tiles ``n`` when it already does.

    Matrix-free passes form only ``W`` (``chunk × q``), so chunks ``r`` times longer
    than the Gram path's use the same memory with fewer loop steps; keeping the
    tiling of pre-padded samples avoids padding copies.
    """
    base = max(1, min(chunk_size, n))
    if n % base:
        return base * factor
    count = n // base
    return base * max(k for k in range(1, factor + 1) if count % k == 0)


def solve_cgls(left, feats, right, y, reg, g0, chunk_size: int, maxiter: int, mask=None, axis_name=None):
    """``maxiter`` steps of preconditioned CGLS on ``min ‖y − A g‖² + λ‖g‖²`` from ``g0``; returns ``(g, J(g))``.

    ``mask`` and ``axis_name`` as in :func:`kronecker_preconditioner`; every sum over rows is completed
    over ``axis_name``.

    Conjugate gradients on the normal equations ``(AᵀA + λI) g = Aᵀy`` in the
    least-squares form (CGLS, Björck 1996, §7.4): the sample residual
    ``e = y − A g`` is updated alongside ``g``, so every iteration is a single
    pass over the samples (``A p`` and ``AᵀA p`` together, :func:`residual_pass`)
    and the objective ``J = ‖e‖² + λ‖g‖²`` comes for free. Preconditioned by
    :func:`kronecker_preconditioner`.

    Each iteration costs ``O(N p)`` flops instead of the ``O(N p²)`` Gram
    assembly of :func:`normal_equations`. CG minimises the quadratic over
    ``g0 +`` the Krylov space, so ``J(g) <= J(g0)``: warm-started inexact solves
    keep ALS monotone. Memory ``O(chunk_size · p)`` like :func:`normal_equations`:
    the chunks hold up to ``r_{k-1}·chunk_size`` samples (:func:`_longer_chunks`).
    """
    chunk_size = _longer_chunks(left.shape[0], chunk_size, left.shape[1])
    parts = chunked([left, *feats, right], chunk_size)
    precondition = kronecker_preconditioner(left, feats, right, reg, mask, axis_name)
    gradient, e = residual_pass(parts, g0, chunked([y], chunk_size)[0])
    s = sum_rows(gradient, axis_name) - reg * g0
    z = precondition(s)

    def ratio(a, b):
        return jnp.where(b > 0, a / jnp.where(b > 0, b, 1), 0)

    def step(_, state):
        g, e, s, p, gamma = state
        normal, minus_ap = residual_pass(parts, p)  # -AᵀA p and -A p
        normal, norm_ap = sum_rows((normal, jnp.sum(minus_ap * minus_ap)), axis_name)
        t = reg * p - normal
        alpha = ratio(gamma, norm_ap + reg * p @ p)
        g, e, s = g + alpha * p, e + alpha * minus_ap, s - alpha * t
        z = precondition(s)
        gamma_next = s @ z
        return g, e, s, z + ratio(gamma_next, gamma) * p, gamma_next

    g, e, *_ = lax.fori_loop(0, maxiter, step, (g0, e, s, z, s @ z))
    return g, sum_rows(jnp.sum(e * e), axis_name) + reg * g @ g
