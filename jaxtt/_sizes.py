"""Size arithmetic that needs neither JAX nor NumPy: TT ranks a shape can hold, the memory of an ALS sweep, the
host's memory.

Plain integer functions without argument checks (their public callers check), so that the ``jaxtt`` command can
refuse an impossible fit from its options alone, before it imports JAX.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

__all__ = ["tt_ranks", "als_sweep_bytes", "host_memory_bytes"]


def tt_ranks(shape: Sequence[int], rank: int) -> tuple[int, ...]:
    """``(1, r_1, …, r_{d-1}, 1)`` with ``r_k = min(rank, Π_{j<=k} n_j, Π_{j>k} n_j)``.

    Examples:
        >>> tt_ranks((2, 8, 8, 2), 6)
        (1, 2, 6, 2, 1)
    """
    return (1,) + tuple(min(rank, math.prod(shape[:k]), math.prod(shape[k:])) for k in range(1, len(shape))) + (1,)


def als_sweep_bytes(ranks: Sequence[int], modes: Sequence[int], n: int, *, batch: int = 1, itemsize: int = 8,
                    chunk_size: int = 4096, cg_maxiter: int = 0) -> int:
    """Bytes of the largest arrays of one ALS sweep over ``n`` rows of a TT with ``ranks`` and ``modes``: the
    estimate of :func:`jaxtt.solvers.sweep_memory` (its docstring has the formula), for ``batch`` outputs swept
    together and entries of ``itemsize`` bytes.

    Examples:
        >>> als_sweep_bytes((1, 64, 64, 64, 1), (64,) * 4, 200) > 2**40
        True
        >>> als_sweep_bytes((1, 64, 64, 64, 1), (64,) * 4, 200, cg_maxiter=8) < 2**30
        True
    """
    d, r, m = len(modes), max(ranks), max(modes)
    p = max(ranks[k] * modes[k] * ranks[k + 1] for k in range(d))
    chunk = max(1, min(chunk_size, n))
    local = min(n, chunk * r) * p if cg_maxiter else 3 * p * p + chunk * p
    return batch * (local + 2 * n * r * d + n * m * r) * itemsize


def host_memory_bytes() -> int | None:
    """Physical memory of this machine in bytes; None where the system does not say.

    Examples:
        >>> host_memory_bytes() is None or host_memory_bytes() > 0
        True
    """
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX systems
        return None
