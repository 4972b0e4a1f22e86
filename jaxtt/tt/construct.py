"""Constructors of tensor trains and the dense reconstruction ``full``."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from jaxtt._sizes import tt_ranks
from jaxtt._validation import (
    check_array,
    check_float_dtype,
    check_instance,
    check_int,
    check_key,
    check_memory,
    check_real,
    check_sequence,
)
from jaxtt.tt.core import TensorTrain

__all__ = ["random", "zeros", "rank_one", "full", "expand_ranks", "feasible_ranks", "default_float"]


def expand_ranks(shape: Sequence[int], ranks) -> tuple[int, ...]:
    """Normalise a rank specification to ``(1, r_1, …, r_{d-1}, 1)``.

    ``ranks`` is an int (every interior rank equal), a sequence of the ``d - 1``
    interior ranks, or the full sequence of ``d + 1`` ranks with both ends 1.

    Examples:
        >>> expand_ranks((2, 3, 4), 5)
        (1, 5, 5, 1)
        >>> expand_ranks((2, 3, 4), [2, 3])
        (1, 2, 3, 1)
    """
    d = len(shape)
    if isinstance(ranks, (int,)) and not isinstance(ranks, bool):
        ranks = [ranks] * (d - 1)
    try:
        ranks = [check_int(r, "ranks") for r in ranks]
    except TypeError as err:
        raise TypeError(f"ranks must be an int or a sequence of ints, got {ranks!r}") from err
    if len(ranks) == d - 1:
        ranks = [1, *ranks, 1]
    if len(ranks) != d + 1:
        raise ValueError(f"ranks must have d - 1 = {d - 1} or d + 1 = {d + 1} entries, got {len(ranks)}")
    if ranks[0] != 1 or ranks[-1] != 1:
        raise ValueError(f"ranks must start and end with 1, got {tuple(ranks)}")
    if min(ranks) < 1:
        raise ValueError(f"ranks must be >= 1, got {tuple(ranks)}")
    return tuple(ranks)


def feasible_ranks(shape: Sequence[int], rank: int) -> tuple[int, ...]:
    """Ranks ``(1, r_1, …, r_{d-1}, 1)`` with ``r_k = min(rank, Π_{j<=k} n_j, Π_{j>k} n_j)``.

    The unfolding ``A_{(k)}`` of a tensor of mode sizes ``n`` is a
    ``Π_{j<=k} n_j × Π_{j>k} n_j`` matrix, so no TT rank can usefully exceed
    either size (Oseledets 2011, Thm. 2.1).

    Examples:
        >>> feasible_ranks((2, 8, 8, 2), 6)
        (1, 2, 6, 2, 1)
    """
    shape = _check_shape(shape)
    rank = check_int(rank, "rank", minimum=1)
    return tt_ranks(shape, rank)


def _check_shape(shape) -> tuple[int, ...]:
    if isinstance(shape, int) or not isinstance(shape, Sequence) or len(shape) == 0:
        raise TypeError(f"shape must be a non-empty sequence of mode sizes, got {shape!r}")
    return tuple(check_int(n, "shape", minimum=1) for n in shape)


def random(
    key: PRNGKeyArray,
    shape: Sequence[int],
    ranks,
    *,
    stddev: float = 1.0,
    dtype=None,
) -> TensorTrain:
    """Tensor train with i.i.d. ``N(0, σ_k²)`` core entries.

    Each core is scaled by ``σ_k = stddev / sqrt(r_{k-1})`` so that every entry of
    the represented tensor has variance ``stddev^{2d}`` independently of the ranks.

    Args:
        key: PRNG key.
        shape: mode sizes ``(n_1, …, n_d)``.
        ranks: int, ``d - 1`` interior ranks, or all ``d + 1`` ranks.
        stddev: scale of the cores.
        dtype: floating dtype of the cores; default float64 when
            ``jax_enable_x64`` is set, else float32.

    Ranks above :func:`feasible_ranks` are allowed (they represent the same
    tensors redundantly).

    Raises:
        ValueError: the cores would not fit in the memory of the default device
            (checked before anything is allocated).

    Examples:
        >>> import jax
        >>> tt = random(jax.random.key(0), (4, 5, 6), 3)
        >>> tt.shape, tt.ranks
        ((4, 5, 6), (1, 3, 3, 1))
        >>> full(tt).shape
        (4, 5, 6)
    """
    key = check_key(key)
    shape = _check_shape(shape)
    ranks = expand_ranks(shape, ranks)
    stddev = check_real(stddev, "stddev", minimum=0.0)
    dtype = default_float(dtype)
    _check_fits(shape, ranks, dtype)
    keys = jax.random.split(key, len(shape))
    cores = [
        jax.random.normal(k, (ranks[i], n, ranks[i + 1]), dtype) * (stddev / ranks[i] ** 0.5)
        for i, (k, n) in enumerate(zip(keys, shape))
    ]
    return TensorTrain(cores)


def _check_fits(shape: tuple[int, ...], ranks: tuple[int, ...], dtype) -> tuple[int, ...]:
    """``ranks`` unchanged, or a ``ValueError`` when the cores would not fit in the device's memory."""
    nbytes = sum(ranks[k] * n * ranks[k + 1] for k, n in enumerate(shape)) * dtype.itemsize
    check_memory(nbytes, "ranks", f"the cores of ranks {ranks} on modes {shape}",
                 f"lower the ranks; no rank can usefully exceed feasible_ranks(shape, rank) = "
                 f"{feasible_ranks(shape, max(ranks))}")
    return ranks


def zeros(shape: Sequence[int], ranks=1, *, dtype=None) -> TensorTrain:
    """The zero tensor with the given TT ranks (all cores zero; dtype as in :func:`random`).

    Examples:
        >>> tt = zeros((3, 4), ranks=2)
        >>> tt.ranks, float(abs(full(tt)).max())
        ((1, 2, 1), 0.0)
    """
    shape = _check_shape(shape)
    ranks = expand_ranks(shape, ranks)
    dtype = default_float(dtype)
    _check_fits(shape, ranks, dtype)
    return TensorTrain([jnp.zeros((ranks[i], n, ranks[i + 1]), dtype) for i, n in enumerate(shape)])


def default_float(dtype=None):
    """``dtype`` as JAX will store it; ``None`` is the default float (float64 under ``jax_enable_x64``).

    Raises ``TypeError`` for a dtype that is not floating.

    Examples:
        >>> import jax.numpy as jnp
        >>> default_float(jnp.float32)
        dtype('float32')
    """
    return check_float_dtype(dtype)


def rank_one(vectors: Sequence[Float[Array, " n"]]) -> TensorTrain:
    """The rank-one tensor ``v_1 ⊗ v_2 ⊗ ⋯ ⊗ v_d`` (all TT ranks 1).

    Examples:
        >>> import jax.numpy as jnp
        >>> a, b = jnp.array([1.0, 2.0]), jnp.array([3.0, 4.0, 5.0])
        >>> tt = rank_one([a, b])
        >>> tt.ranks, bool(jnp.allclose(full(tt), jnp.outer(a, b)))
        ((1, 1, 1), True)
    """
    vectors = check_sequence(vectors, "vectors", "1-D arrays")
    cores = []
    for k, v in enumerate(vectors):
        v = jnp.asarray(check_array(v, f"vectors[{k}]", ndim=1))
        cores.append(v[None, :, None])
    return TensorTrain(cores)


def full(tt: TensorTrain) -> Float[Array, "*batch *shape"]:
    """Dense tensor ``A[i_1, …, i_d]`` represented by ``tt``; for a batch of tensor trains (cores with leading
    batch axes) the batch of dense tensors, shape ``(*batch_shape, *shape)``.

    Cost ``O(Π_k n_k · r)`` time and memory: only for small tensors.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxtt.tt import TensorTrain
        >>> g1 = jnp.arange(4.0).reshape(1, 2, 2)
        >>> g2 = jnp.arange(6.0).reshape(2, 3, 1)
        >>> full(TensorTrain([g1, g2])).tolist()  # A[i, j] = g1[0, i, :] @ g2[:, j, 0]
        [[3.0, 4.0, 5.0], [9.0, 14.0, 19.0]]
        >>> import jax
        >>> full(rank_one([jnp.array([1.0, 2.0]), jnp.array([3.0, 4.0])])).tolist()
        [[3.0, 4.0], [6.0, 8.0]]
        >>> batch = jax.vmap(lambda k: random(k, (2, 3), 2))(jax.random.split(jax.random.key(0), 5))
        >>> full(batch).shape
        (5, 2, 3)
    """
    check_instance(tt, "tt", TensorTrain)
    fn = _full
    for _ in tt.batch_shape:
        fn = jax.vmap(fn)
    return fn(tt.cores)


def _full(cores):
    result = cores[0][0]  # (n_1, r_1)
    for core in cores[1:]:
        result = jnp.tensordot(result, core, axes=1)
    return result[..., 0]
