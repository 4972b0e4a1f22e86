"""Gram assembly that exploits locally supported bases (B-splines).

A degree-``p`` B-spline basis has only ``q = p + 1`` non-zero functions at any
point: ``φ(x) = Σ_u w_u e_{f+u}`` with first index ``f``. Ordering the unknowns
of a core as ``(i, a, b)`` (basis index outermost), the design row of sample
``s`` is the compact row ``c_s = w_s ⊗ L_s ⊗ R_s`` (length ``q r r'``) placed at
offset ``f_s r r'``, so ``AᵀA`` is a sum of ``c_s c_sᵀ`` blocks on a band
(``f_s + q <= m`` always holds for a clamped basis).

Samples are grouped by ``f`` once per fit (:func:`local_plan`, on the host:
the inputs do not change between sweeps) and padded to whole chunks, so every
chunk has one offset and contributes one dense ``(q r r')²`` block: the
assembly costs ``O(N (q r r')²)`` instead of ``O(N (m r r')²)`` — a factor
``(m/q)²`` (28× for ``m = 16``, ``p = 2``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array, Float, Int

from jaxtt.basis import BSpline

__all__ = ["LocalPlan", "local_plan", "supports_local"]


class LocalPlan(NamedTuple):
    """Samples grouped by their first non-zero basis function, padded to whole chunks.

    Attributes:
        order: ``(M,)`` sample index of each padded row (padding rows repeat sample 0).
        valid: ``(M,)`` 1 for real rows, 0 for padding.
        offset: ``(M // chunk,)`` first basis index ``f`` shared by the rows of each chunk.
        values: ``(M, q)`` the non-zero basis values of each row (zero for padding).
    """

    order: Int[Array, " M"]
    valid: Float[Array, " M"]
    offset: Int[Array, " C"]
    values: Float[Array, "M q"]


def supports_local(basis) -> bool:
    """Whether a basis has a :meth:`local` evaluation usable for sparse assembly."""
    return isinstance(basis, BSpline) and not basis.orthonormal


def local_plan(basis: BSpline, x: Float[Array, " N"], chunk_size: int, dtype) -> LocalPlan:
    """Group the samples ``x`` by first non-zero function (host computation, eager)."""
    first, values = basis.local(x)
    first = np.asarray(first)
    order_parts, offsets = [], []
    for f in np.unique(first):
        idx = np.flatnonzero(first == f)
        pad = -len(idx) % chunk_size
        order_parts.append(np.concatenate([idx, np.full(pad, -1, np.int64)]))
        offsets.append(np.full((len(idx) + pad) // chunk_size, f))
    order = np.concatenate(order_parts)
    valid = order >= 0
    order = np.where(valid, order, 0)
    vals = np.asarray(values)[order] * valid[:, None]
    return LocalPlan(jnp.asarray(order, jnp.int32), jnp.asarray(valid, dtype), jnp.asarray(np.concatenate(offsets),
                     jnp.int32), jnp.asarray(vals, dtype))


def _compact_rows(values, left, right):
    """Rows ``w ⊗ L ⊗ R`` of shape ``(chunk, q r r')``."""
    rows = values[:, :, None] * left[:, None, :]
    return (rows.reshape(rows.shape[0], -1)[:, :, None] * right[:, None, :]).reshape(rows.shape[0], -1)


def _chunks(plan: LocalPlan, left, right, y):
    n_chunks = plan.offset.shape[0]
    take = lambda a: a[plan.order].reshape(n_chunks, -1, *a.shape[1:])  # noqa: E731
    weight = plan.valid.reshape(n_chunks, -1)
    values = plan.values.reshape(n_chunks, -1, plan.values.shape[1])
    return values, take(left), take(right), take(y) * weight


def normal_equations_local(plan: LocalPlan, left, right, y, m: int):
    """``AᵀA`` and ``Aᵀy`` in the core layout ``(a, i, b)`` from banded chunk contributions."""
    r0, r1 = left.shape[1], right.shape[1]
    block = r0 * r1
    values, lefts, rights, ys = _chunks(plan, left, right, y)

    def body(carry, chunk):
        gram, rhs = carry
        vals, lc, rc, yc, f = chunk
        rows = _compact_rows(vals, lc, rc)
        start, width = f * block, rows.shape[1]
        band = lax.dynamic_slice(gram, (start, start), (width, width)) + rows.T @ rows
        part = lax.dynamic_slice(rhs, (start,), (width,)) + rows.T @ yc
        return (lax.dynamic_update_slice(gram, band, (start, start)), lax.dynamic_update_slice(rhs, part, (start,))), None

    p = m * block
    zero = (jnp.zeros((p, p), left.dtype), jnp.zeros((p,), left.dtype))
    (gram, rhs), _ = lax.scan(body, zero, (values, lefts, rights, ys, plan.offset))
    # (i, a, b) -> (a, i, b)
    perm = jnp.arange(m * block).reshape(m, r0, r1).transpose(1, 0, 2).reshape(-1)
    return gram[perm][:, perm], rhs[perm]


def squared_residual_local(plan: LocalPlan, left, right, y, g, m: int):
    """``‖y − A g‖²`` with ``g`` in the core layout ``(a, i, b)``."""
    r0, r1, q = left.shape[1], right.shape[1], plan.values.shape[1]
    block = r0 * r1
    g_iab = g.reshape(r0, m, r1).transpose(1, 0, 2).reshape(-1)
    values, lefts, rights, ys = _chunks(plan, left, right, y)

    def body(acc, chunk):
        vals, lc, rc, yc, f = chunk
        rows = _compact_rows(vals, lc, rc)
        res = yc - rows @ lax.dynamic_slice(g_iab, (f * block,), (q * block,))
        return acc + res @ res, None

    out, _ = lax.scan(body, jnp.zeros((), y.dtype), (values, lefts, rights, ys, plan.offset))
    return out
