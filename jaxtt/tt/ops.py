"""Algebra on tensor trains: sums, products, inner products, element access.

All functions are pure, work under ``jax.jit``/``jax.grad``/``jax.vmap`` and
never form the dense tensor. ``r`` denotes the maximal rank, ``n`` the maximal
mode size, ``d`` the number of modes and ``N`` a batch of samples.

Long trains whose interior cores share one shape are contracted with
``lax.scan`` over the stacked interior cores, so the compiled program does not
grow with ``d`` (``d = 64`` compiles in about a second instead of unrolling 64
contractions).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array, Float, Int

from jaxtt._validation import check_array, check_finite, check_instance, is_concrete
from jaxtt.tt.core import TensorTrain, check_single

__all__ = ["add", "scale", "inner", "norm", "hadamard", "get", "absorb", "contract_rank1", "interfaces"]


def _check_same_shape(a: TensorTrain, b: TensorTrain, op: str) -> None:
    check_single(check_instance(a, "a", TensorTrain), "a", op)
    check_single(check_instance(b, "b", TensorTrain), "b", op)
    if a.shape != b.shape:
        raise ValueError(f"{op}: shapes differ, a.shape={a.shape} but b.shape={b.shape}")


def add(a: TensorTrain, b: TensorTrain) -> TensorTrain:
    """Sum ``a + b`` by block-diagonal cores; ranks add (``r_k^a + r_k^b``).

    Cost ``O(d n r²)``; follow with :func:`jaxtt.tt.round` to recompress.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt.tt import random, full
        >>> a = random(jax.random.key(0), (3, 4, 5), 2)
        >>> b = random(jax.random.key(1), (3, 4, 5), 3)
        >>> c = add(a, b)
        >>> c.ranks, bool(jnp.allclose(full(c), full(a) + full(b), atol=1e-5))
        ((1, 5, 5, 1), True)
    """
    _check_same_shape(a, b, "add")
    d = a.ndim
    if d == 1:
        return TensorTrain([a.cores[0] + b.cores[0]])
    cores = [jnp.concatenate([a.cores[0], b.cores[0]], axis=2)]
    for ca, cb in zip(a.cores[1:-1], b.cores[1:-1]):
        top = jnp.concatenate([ca, jnp.zeros((ca.shape[0], ca.shape[1], cb.shape[2]), ca.dtype)], axis=2)
        bottom = jnp.concatenate([jnp.zeros((cb.shape[0], cb.shape[1], ca.shape[2]), cb.dtype), cb], axis=2)
        cores.append(jnp.concatenate([top, bottom], axis=0))
    cores.append(jnp.concatenate([a.cores[-1], b.cores[-1]], axis=0))
    return TensorTrain(cores)


def scale(tt: TensorTrain, alpha) -> TensorTrain:
    """``α · A``, applied to the first core; ranks unchanged.

    Raises:
        TypeError: ``alpha`` is not a real scalar; ValueError: it is (when concrete) NaN or infinite.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt.tt import random, full
        >>> a = random(jax.random.key(0), (3, 4, 5), 2)
        >>> bool(jnp.allclose(full(scale(a, -2.5)), -2.5 * full(a), atol=1e-5))
        True
    """
    check_single(check_instance(tt, "tt", TensorTrain), "tt", "scale")
    if isinstance(alpha, str | bytes) or alpha is None:
        raise TypeError(f"alpha must be a real scalar, got {type(alpha).__name__} {alpha!r}")
    alpha = jnp.asarray(check_array(alpha, "alpha"), tt.dtype)
    if alpha.ndim != 0:
        raise ValueError(f"alpha must be a scalar, got shape {tuple(alpha.shape)}")
    check_finite(alpha, "alpha")
    return TensorTrain([tt.cores[0] * alpha, *tt.cores[1:]])


def hadamard(a: TensorTrain, b: TensorTrain) -> TensorTrain:
    """Elementwise product ``A ∘ B``; ranks multiply (``r_k^a r_k^b``).

    Core ``k`` is the slice-wise Kronecker product
    ``C_k[(α,β), i, (γ,δ)] = A_k[α, i, γ] B_k[β, i, δ]``. Cost ``O(d n r⁴)``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt.tt import random, full
        >>> a = random(jax.random.key(0), (3, 4, 5), 2)
        >>> b = random(jax.random.key(1), (3, 4, 5), 3)
        >>> c = hadamard(a, b)
        >>> c.ranks, bool(jnp.allclose(full(c), full(a) * full(b), atol=1e-5))
        ((1, 6, 6, 1), True)
    """
    _check_same_shape(a, b, "hadamard")
    cores = []
    for ca, cb in zip(a.cores, b.cores):
        c = jnp.einsum("aic,bid->abicd", ca, cb)
        cores.append(c.reshape(ca.shape[0] * cb.shape[0], ca.shape[1], ca.shape[2] * cb.shape[2]))
    return TensorTrain(cores)


def inner(a: TensorTrain, b: TensorTrain) -> Float[Array, ""]:
    """Frobenius inner product ``⟨A, B⟩ = Σ_i A[i] B[i]``.

    Left-to-right transfer matrices ``W_k = Σ_i A_k[:, i, :]ᵀ W_{k-1} B_k[:, i, :]``;
    cost ``O(d n r³)``.

    Each transfer matrix is divided by its largest entry and the factors are kept
    as a sum of logarithms, so long trains (``d`` in the hundreds) neither
    overflow nor underflow in between: the result is ``inf`` or ``0`` only when the
    inner product itself is out of the dtype's range.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt.tt import random, full
        >>> a = random(jax.random.key(0), (3, 4, 5), 2)
        >>> b = random(jax.random.key(1), (3, 4, 5), 3)
        >>> bool(jnp.allclose(inner(a, b), jnp.sum(full(a) * full(b)), atol=1e-4))
        True
    """
    _check_same_shape(a, b, "inner")
    w, log_scale = _scaled_inner(a.cores, b.cores)
    return w * jnp.exp(log_scale)


def _scaled_inner(a_cores, b_cores):
    """``(w, log_scale)`` with ``⟨A, B⟩ = w · exp(log_scale)``, rescaling the transfer matrix at every core."""
    w = jnp.ones((1, 1), jnp.result_type(a_cores[0].dtype, b_cores[0].dtype))
    log_scale = jnp.zeros((), w.dtype)
    for ca, cb in zip(a_cores, b_cores):
        w = jnp.einsum("ab,aic,bid->cd", w, ca, cb)
        size = jax.lax.stop_gradient(jnp.max(jnp.abs(w)))
        size = jnp.where(jnp.isfinite(size) & (size > 0), size, jnp.ones_like(size))
        w, log_scale = w / size, log_scale + jnp.log(size)
    return w[0, 0], log_scale


def norm(tt: TensorTrain) -> Float[Array, ""]:
    """Frobenius norm ``‖A‖_F = sqrt(⟨A, A⟩)``; cost ``O(d n r³)``.

    Computed from the rescaled transfer matrices of :func:`inner`, so it stays
    finite for long trains whose squared norm alone would overflow; the square
    root is taken of ``max(⟨A, A⟩, 0)`` so that rounding cannot produce a NaN.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt.tt import random, full
        >>> a = random(jax.random.key(0), (3, 4, 5), 2)
        >>> bool(jnp.allclose(norm(a) ** 2, inner(a, a), rtol=1e-5))
        True
        >>> bool(jnp.allclose(norm(a), jnp.linalg.norm(full(a)), rtol=1e-5))
        True
        >>> from jaxtt.tt import rank_one
        >>> x = rank_one([jnp.array([1.2, 1.6])] * 100)  # ‖x‖ = 2**100 = 1.3e30; in float32 ‖x‖² overflows
        >>> round(float(norm(x)) / 2.0**100, 4)
        1.0
    """
    check_single(check_instance(tt, "tt", TensorTrain), "tt", "norm")
    w, log_scale = _scaled_inner(tt.cores, tt.cores)
    return jnp.sqrt(jnp.maximum(w, 0.0)) * jnp.exp(log_scale / 2)


def _uniform_interior(cores: Sequence) -> bool:
    interior = cores[1:-1]
    return len(interior) >= 2 and all(c.shape == interior[0].shape for c in interior)


def _chain(cores, step, first, interior_data):
    """Fold ``carry = step(carry, core_k, data_k)`` over the interior cores ``1..d-2``.

    ``interior_data`` is an array whose leading axis runs over the ``d - 2``
    interior cores. Uses ``lax.scan`` over the stacked interior when all
    interior cores share one shape, and a Python loop otherwise.
    """
    interior = cores[1:-1]
    if _uniform_interior(cores):
        carry, _ = lax.scan(lambda c, xs: (step(c, *xs), None), first, (jnp.stack(interior), interior_data))
        return carry
    carry = first
    for k, core in enumerate(interior):
        carry = step(carry, core, interior_data[k])
    return carry


def absorb(v: Float[Array, "N r"], core: Float[Array, "r n s"], data) -> Float[Array, "N s"]:
    """One step of a batched rank-one contraction, ``v'_s[b] = Σ_{a,i} v_s[a] G[a, i, b] φ_s[i]``.

    The primitive behind :func:`contract_rank1`, :func:`interfaces`, functional
    TT evaluation and the interface updates of ALS/DMRG sweeps. Pass
    ``jnp.swapaxes(core, 0, 2)`` to absorb a core from the right.

    Args:
        v: interface vectors ``(N, r)``.
        core: TT core ``(r, n, s)``.
        data: feature vectors ``φ_s`` of shape ``(N, n)``, or integer indices
            ``i_s`` of shape ``(N,)`` standing for unit vectors ``e_{i_s}`` (then a
            gather of the slices ``G[:, i_s, :]``, ``O(N r s)``).

    Returns:
        ``(N, s)``; for features one GEMM ``(N, r) × (r, n s)`` and a reduction
        over ``n``, ``O(N r n s)``. Unvalidated (it runs inside compiled loops).

    Examples:
        >>> import jax.numpy as jnp
        >>> core = jnp.arange(12.0).reshape(2, 3, 2)
        >>> v, phi = jnp.array([[1.0, 2.0]]), jnp.array([[0.0, 1.0, 0.0]])
        >>> absorb(v, core, phi).tolist()  # v @ core[:, 1, :]
        [[18.0, 21.0]]
        >>> absorb(v, core, jnp.array([1])).tolist()  # the same unit vector, as an index
        [[18.0, 21.0]]
    """
    if jnp.issubdtype(data.dtype, jnp.integer):
        return jnp.einsum("sa,asb->sb", v, jnp.take(core, data, axis=1))
    r, n, s = core.shape
    w = (v @ core.reshape(r, n * s)).reshape(v.shape[0], n, s)
    return jnp.einsum("nis,ni->ns", w, data)


def _check_vectors(tt: TensorTrain, vectors):
    if hasattr(vectors, "shape"):
        vectors = check_array(vectors, "vectors", ndim=3)
        vectors = [vectors[k] for k in range(vectors.shape[0])]
    if not isinstance(vectors, Sequence):
        raise TypeError("vectors must be a sequence of d arrays of shape (N, n_k) or an array (d, N, n)")
    if len(vectors) != tt.ndim:
        raise ValueError(f"vectors must hold d = {tt.ndim} arrays, got {len(vectors)}")
    vectors = [check_array(v, f"vectors[{k}]", ndim=2) for k, v in enumerate(vectors)]
    n_samples = vectors[0].shape[0]
    for k, (v, n) in enumerate(zip(vectors, tt.shape)):
        if v.shape != (n_samples, n):
            raise ValueError(f"vectors[{k}] must have shape (N, n_{k + 1}) = ({n_samples}, {n}), got {tuple(v.shape)}")
    return vectors


def contract_rank1(tt: TensorTrain, vectors) -> Float[Array, " N"]:
    """Batched contraction with rank-one tensors, ``y_s = ⟨A, v_1^s ⊗ ⋯ ⊗ v_d^s⟩``.

    This is the evaluation of a functional TT ``f(x) = ⟨A, Φ(x)⟩`` (Gorodetsky,
    Karaman, Marzouk 2019) with ``vectors[k][s] = φ_k(x_{s,k})``. Each step is one GEMM
    ``(N, r) × (r, n r)`` followed by a reduction over ``n``: cost
    ``O(N d n r²)`` time and ``O(N n r)`` memory.

    Args:
        tt: tensor train with mode sizes ``n_k``.
        vectors: ``d`` arrays of shape ``(N, n_k)`` (a sequence, or one array of
            shape ``(d, N, n)`` when all ``n_k`` are equal).

    Returns:
        Array of shape ``(N,)``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt.tt import random, full
        >>> a = random(jax.random.key(0), (3, 4, 5), 2)
        >>> u, v, w = (jax.random.normal(jax.random.key(k), (7, n)) for k, n in enumerate(a.shape))
        >>> y = contract_rank1(a, [u, v, w])
        >>> y.shape, bool(jnp.allclose(y, jnp.einsum("ijk,si,sj,sk->s", full(a), u, v, w), atol=1e-4))
        ((7,), True)
    """
    check_single(check_instance(tt, "tt", TensorTrain), "tt", "contract_rank1")
    vectors = _check_vectors(tt, vectors)
    return _contract_rank1(tt.cores, vectors)


@jax.jit
def _contract_rank1(cores, vectors):
    dtype = jnp.result_type(cores[0].dtype, *[v.dtype for v in vectors])
    v = vectors[0].astype(dtype) @ cores[0][0].astype(dtype)  # (N, r_1)
    if len(cores) == 1:
        return v[:, 0]
    interior = vectors[1:-1]
    if len({x.shape for x in interior}) == 1:
        interior = jnp.stack(interior)
    v = _chain(cores, absorb, v, interior)
    last = cores[-1][:, :, 0]  # (r_{d-1}, n_d)
    return jnp.einsum("nr,ri,ni->n", v, last, vectors[-1])


def interfaces(tt: TensorTrain, vectors) -> tuple[list[Float[Array, "N r"]], list[Float[Array, "N r"]]]:
    """Left and right interface vectors of a batched rank-one contraction.

    ``lefts[k][s] = v_1^sᵀ G_1 ⋯ v_k^sᵀ G_k`` (cores ``1..k``) and
    ``rights[k][s] = G_{k+1} v_{k+1}^s ⋯ G_d v_d^s`` (cores ``k+1..d``), each of
    shape ``(N, r_k)`` for ``k = 0..d``, with ``lefts[0] = rights[d] = 1``; so
    ``lefts[d] = rights[0] =`` :func:`contract_rank1`. Used for gradients of
    functional TTs and by ALS sweeps. Cost ``O(N d n r²)``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt.tt import random
        >>> a = random(jax.random.key(0), (3, 4, 5), 2)
        >>> vecs = [jax.random.normal(jax.random.key(k), (7, n)) for k, n in enumerate(a.shape)]
        >>> lefts, rights = interfaces(a, vecs)
        >>> [l.shape for l in lefts]
        [(7, 1), (7, 2), (7, 2), (7, 1)]
        >>> y = contract_rank1(a, vecs)
        >>> bool(jnp.allclose(lefts[3][:, 0], y, atol=1e-5)), bool(jnp.allclose(rights[0][:, 0], y, atol=1e-5))
        (True, True)
    """
    check_single(check_instance(tt, "tt", TensorTrain), "tt", "interfaces")
    vectors = _check_vectors(tt, vectors)
    ones = jnp.ones((vectors[0].shape[0], 1), jnp.result_type(tt.dtype, vectors[0].dtype))
    lefts, rights = [ones], [ones]
    for core, vec in zip(tt.cores, vectors):
        lefts.append(absorb(lefts[-1], core, vec))
    for core, vec in zip(reversed(tt.cores), reversed(vectors)):
        rights.append(absorb(rights[-1], jnp.swapaxes(core, 0, 2), vec))
    return lefts, rights[::-1]


def get(tt: TensorTrain, indices: Int[Array, "N d"]) -> Float[Array, " N *batch"]:
    """Entries ``A[i_1^s, …, i_d^s]`` for a batch of multi-indices.

    Gathers the slices ``G_k[:, i_k, :]`` and multiplies left to right:
    cost ``O(N d r²)``. For a batch of tensor trains (cores with leading batch
    axes) the entries of every member, shape ``(N, *batch_shape)`` (samples
    first, as in :class:`jaxtt.ftt.FTT`).

    Raises:
        TypeError: for non-integer ``indices``.
        ValueError: for a wrong shape or (when concrete) an index out of range.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt.tt import random, full
        >>> a = random(jax.random.key(0), (3, 4, 5), 2)
        >>> idx = jnp.array([[0, 1, 2], [2, 3, 4]])
        >>> bool(jnp.allclose(get(a, idx), full(a)[idx[:, 0], idx[:, 1], idx[:, 2]]))
        True
    """
    check_instance(tt, "tt", TensorTrain)
    indices = check_array(indices, "indices", ndim=2)
    if not jnp.issubdtype(indices.dtype, jnp.integer):
        raise TypeError(f"indices must be an integer array, got dtype {indices.dtype}")
    if indices.shape[1] != tt.ndim:
        raise ValueError(f"indices must have shape (N, d) with d = {tt.ndim}, got {tuple(indices.shape)}")
    if is_concrete(indices) and indices.shape[0] > 0:
        idx = np.asarray(indices)
        bad = (idx < 0) | (idx >= np.asarray(tt.shape))
        if bad.any():
            s, k = np.argwhere(bad)[0]
            raise ValueError(
                f"indices out of range: indices[{s}, {k}] = {idx[s, k]} but mode {k} has size {tt.shape[k]}"
            )
    fn = _get
    for _ in tt.batch_shape:
        fn = jax.vmap(fn, in_axes=(0, None), out_axes=-1)
    return fn(tt.cores, jnp.asarray(indices))


def _gather_step(v, core, col):
    """``v'[s] = Σ_a v[s, a] G[a, col_s, :]``, unrolled over ``a`` so XLA fuses the gathers."""
    slices = jnp.swapaxes(core, 0, 1)  # (n, r, s)
    out = v[:, :1] * slices[col, 0, :]
    for a in range(1, core.shape[0]):
        out = out + v[:, a : a + 1] * slices[col, a, :]
    return out


@jax.jit
def _get(cores, indices):
    v = cores[0][0, indices[:, 0], :]  # (N, r_1)
    if len(cores) == 1:
        return v[:, 0]
    v = _chain(cores, _gather_step, v, indices[:, 1:-1].T)
    return jnp.sum(v * cores[-1][:, indices[:, -1], 0].T, axis=1)
