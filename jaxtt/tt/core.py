"""The :class:`TensorTrain` pytree.

A tensor train (Oseledets 2011) represents a tensor
``A ∈ R^{n_1 × … × n_d}`` by cores ``G_k ∈ R^{r_{k-1} × n_k × r_k}`` with
``r_0 = r_d = 1``::

    A[i_1, …, i_d] = G_1[:, i_1, :] G_2[:, i_2, :] ⋯ G_d[:, i_d, :].

The cores are ordinary array leaves, so a ``TensorTrain`` can be passed through
``jax.jit``, differentiated with ``jax.grad`` and batched with ``jax.vmap``. A
tensor train whose cores carry extra *leading* axes (as produced by ``vmap`` of
a constructor) is a batch of tensor trains; ``shape`` and ``ranks`` always
describe one member of the batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

__all__ = ["TensorTrain", "check_single"]


class TensorTrain(eqx.Module):
    """A tensor in tensor-train (TT) format.

    Args:
        cores: sequence of ``d >= 1`` arrays, core ``k`` of shape
            ``(r_{k-1}, n_k, r_k)``, with ``r_0 = r_d = 1``; all cores share one
            floating dtype.

    Raises:
        TypeError: if ``cores`` is not a non-empty sequence of floating arrays of
            one dtype.
        ValueError: if a core is not 3-D, the ranks do not chain
            (``cores[k].shape[2] != cores[k+1].shape[0]``) or ``r_0, r_d != 1``.

    Storage is ``Σ_k r_{k-1} n_k r_k`` numbers instead of ``Π_k n_k``.

    Examples:
        >>> import jax.numpy as jnp
        >>> tt = TensorTrain([jnp.ones((1, 4, 2)), jnp.ones((2, 5, 3)), jnp.ones((3, 6, 1))])
        >>> tt
        TensorTrain(shape=(4, 5, 6), ranks=(1, 2, 3, 1), dtype=float...)
        >>> tt.ndim, tt.size  # 8 + 30 + 18 parameters instead of 120
        (3, 56)
    """

    cores: tuple[Float[Array, "r_prev n r_next"], ...]

    def __init__(self, cores: Sequence[Float[Array, "r_prev n r_next"]]):
        self.cores = tuple(_as_core(c, k) for k, c in enumerate(_check_sequence(cores)))
        _check_chain(self.cores)

    @property
    def ndim(self) -> int:
        """Number of modes ``d``."""
        return len(self.cores)

    @property
    def shape(self) -> tuple[int, ...]:
        """Mode sizes ``(n_1, …, n_d)``."""
        return tuple(int(c.shape[-2]) for c in self.cores)

    @property
    def ranks(self) -> tuple[int, ...]:
        """TT ranks ``(r_0, r_1, …, r_d)`` with ``r_0 = r_d = 1``."""
        return (int(self.cores[0].shape[-3]),) + tuple(int(c.shape[-1]) for c in self.cores)

    @property
    def dtype(self):
        """Floating dtype shared by all cores."""
        return self.cores[0].dtype

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """Leading axes of a batch of tensor trains (``()`` for a single one)."""
        return tuple(self.cores[0].shape[:-3])

    @property
    def size(self) -> int:
        """Number of stored parameters ``Σ_k r_{k-1} n_k r_k``."""
        return int(sum(np.prod(c.shape[-3:]) for c in self.cores))

    def __repr__(self) -> str:
        return f"TensorTrain(shape={self.shape}, ranks={self.ranks}, dtype={self.dtype})"


def _check_sequence(cores) -> tuple:
    if isinstance(cores, TensorTrain):
        return cores.cores
    if hasattr(cores, "shape") or not isinstance(cores, Sequence) or len(cores) == 0:
        raise TypeError("cores must be a non-empty sequence of 3-D arrays (r_prev, n, r_next)")
    return tuple(cores)


def _as_core(core, k: int):
    if not hasattr(core, "shape") or not hasattr(core, "dtype"):
        core = jnp.asarray(core)
    if not jnp.issubdtype(core.dtype, jnp.floating):
        raise TypeError(f"cores[{k}] must be a floating-point array, got dtype {core.dtype}")
    if core.ndim != 3:
        raise ValueError(f"cores[{k}] must be 3-D (r_prev, n, r_next), got shape {tuple(core.shape)}")
    if min(core.shape) < 1:
        raise ValueError(f"cores[{k}] has an empty axis: shape {tuple(core.shape)}")
    return core


def _check_chain(cores: tuple) -> None:
    dtypes = {c.dtype for c in cores}
    if len(dtypes) > 1:
        raise TypeError(f"all cores must share one dtype, got {sorted(str(d) for d in dtypes)}")
    if cores[0].shape[0] != 1:
        raise ValueError(f"r_0 must be 1: cores[0] has shape {tuple(cores[0].shape)}")
    if cores[-1].shape[2] != 1:
        raise ValueError(f"r_d must be 1: cores[{len(cores) - 1}] has shape {tuple(cores[-1].shape)}")
    for k in range(len(cores) - 1):
        if cores[k].shape[2] != cores[k + 1].shape[0]:
            raise ValueError(
                f"ranks do not chain: cores[{k}] has shape {tuple(cores[k].shape)} but "
                f"cores[{k + 1}] has shape {tuple(cores[k + 1].shape)}"
            )


def check_single(tt: TensorTrain, name: str, op: str) -> TensorTrain:
    """``tt`` if it is one tensor train, else a ``ValueError`` naming ``name`` that says to map ``op`` over the
    batch with ``jax.vmap`` (inside ``vmap`` every member is a single train)."""
    if tt.batch_shape:
        raise ValueError(
            f"{name} is a batch of tensor trains (cores with leading axes {tt.batch_shape}); {op} takes one "
            f"tensor train: map it over the batch with jax.vmap"
        )
    return tt
