"""Dense factorizations for the closed-form sweeps that stay safe under ``jax.vmap`` on the CPU.

jaxlib's CPU LAPACK kernels (QR, eigh, SVD, Cholesky, triangular solves) split a batch of matrices over XLA's
intra-op thread pool and block the pool worker that runs them until every piece has finished. When as many such
kernels run at once as the pool has threads (two on a 2-core machine), every worker waits for pieces that no
worker is free to run, and the program deadlocks with all threads idle. A vmapped ALS sweep of an FTT with eight
outputs hung this way (every thread parked in the batched ``geqrf`` / ``orgqr`` kernels) after hours of fitting.
A batch of one runs inline, without the pool, so these wrappers factor a vmapped batch one matrix at a time
(:func:`jax.custom_batching.sequential_vmap`): the matrices of a sweep are small (at most ``r·m × r``), and the
contractions around them stay batched.

They support ``jit``, ``vmap`` and both modes of differentiation; derivatives are taken through the batched
:mod:`jax.numpy.linalg` routine itself (``custom_vmap`` alone has no transpose), so only the factorizations of a
plain evaluation are looped.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.custom_batching import sequential_vmap


def _one_at_a_time(factorize):
    """``factorize`` with a vmapped batch looped over one matrix at a time; differentiated like ``factorize``
    itself (its JVP, and through it reverse mode, is ``factorize``'s own)."""
    wrapped = jax.custom_jvp(sequential_vmap(factorize))
    wrapped.defjvp(lambda primals, tangents: jax.jvp(factorize, primals, tangents))
    return functools.wraps(factorize)(wrapped)


@_one_at_a_time
def qr(a):
    """Reduced QR factorization ``a = q r`` (:func:`jax.numpy.linalg.qr`)."""
    return jnp.linalg.qr(a)


@_one_at_a_time
def eigh(a):
    """Eigenvalues and eigenvectors of a symmetric matrix (:func:`jax.numpy.linalg.eigh`)."""
    return jnp.linalg.eigh(a)


@_one_at_a_time
def svd(a):
    """Thin SVD ``a = u diag(s) vt`` (:func:`jax.numpy.linalg.svd` with ``full_matrices=False``)."""
    return jnp.linalg.svd(a, full_matrices=False)


@_one_at_a_time
def cholesky_solve(a, b):
    """Solve ``a x = b`` for a symmetric positive definite ``a`` by Cholesky."""
    return jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(a), b)
