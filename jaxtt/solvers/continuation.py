r"""Coarse-to-fine fitting: continuation in the number of basis functions per variable.

Polynomial and trigonometric bases are *hierarchical*: the first :math:`m'` functions of
``Legendre(m)`` (``Chebyshev``, ``Fourier``) are ``Legendre(m')``. An FTT on the small bases is therefore
exactly the FTT on the large ones whose cores have zero coefficients for the extra functions, and a fit can
grow the bases level by level, each level starting where the previous one ended (a nested-space
continuation, as in multigrid and in the rank-and-basis-adaptive TT regression of Grasedyck & Krämer 2019).

Why it helps: an ALS local problem sees the target only through the current interfaces. A target without
low-order ANOVA terms, e.g. :math:`\sin(x_1 + \dots + x_6)` on :math:`[-\pi, \pi]^6` (exact TT rank 2;
:math:`E[y \mid x_i] = 0` for every :math:`i`), has a projection onto the interfaces of a constant or random
start with 16 functions per variable that is smaller than the Monte Carlo noise of 20,000 samples, and the
sweeps stall at residual 0.98 from every start tried (80 sweeps, ranks 2 and 4). With 3 functions per
variable the projection is large, and the levels 3 → 5 → 9 → 16 reach residual 0.886, 0.166, 4e-4 and then
the data's round-off (measured in ``tests/solvers/test_continuation.py``). :func:`~jaxtt.solvers.fit` restarts
this way by itself when a fit ends explaining under 10 % of the variance of ``y``.
"""

from __future__ import annotations

import dataclasses
import numbers
import warnings

import equinox as eqx
import jax.numpy as jnp

from jaxtt._validation import check_instance, check_int, check_sequence
from jaxtt.basis.base import ScaledBasis
from jaxtt.ftt.functional import FTT
from jaxtt.solvers.als import ALS
from jaxtt.solvers.fit import FitResult, Solver, StalledFitWarning, fit
from jaxtt.solvers.problem import feasible_ranks

__all__ = ["coarse_levels", "coarse_to_fine", "resize_bases"]


def resize_bases(model: FTT, sizes) -> FTT:
    """The same FTT on ``sizes[k]`` functions of basis ``k`` (an int: the same for all): truncated or zero-padded.

    Exact in both directions on hierarchical bases: padding adds functions with zero coefficients, so the
    function is unchanged; truncation drops the coefficients of the extra functions.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt.basis import Legendre
        >>> from jaxtt.ftt import FTT, constant_init
        >>> bases = [Legendre(4)] * 2
        >>> model = FTT(constant_init(bases, 2, noise=0.5, key=jax.random.key(0)), bases)
        >>> big = resize_bases(model, 9)
        >>> x = jnp.array([[0.3, -0.7]])
        >>> [b.m for b in big.bases], bool(jnp.allclose(big(x), model(x)))
        ([9, 9], True)
    """
    check_instance(model, "model", FTT)
    d = len(model.bases)
    sizes = [sizes] * d if isinstance(sizes, numbers.Integral) else list(check_sequence(sizes, "sizes",
                                                                                        "basis sizes"))
    if len(sizes) != d:
        raise ValueError(f"sizes must give one basis size per variable ({d}), got {len(sizes)}")
    sizes = [check_int(m, "sizes", minimum=1) for m in sizes]
    for k, basis in enumerate(model.bases):
        if not isinstance(basis, ScaledBasis):
            raise TypeError(f"basis {k} ({type(basis).__name__}) is not hierarchical; coarse-to-fine needs "
                            "Legendre, Chebyshev or Fourier bases")
    cores = [jnp.pad(core[..., :m, :], [(0, 0)] * (core.ndim - 2) + [(0, max(0, m - core.shape[-2])), (0, 0)])
             for core, m in zip(model.tt.cores, sizes)]
    train = eqx.tree_at(lambda t: t.cores, model.tt, tuple(cores))  # keeps the batch axes of a batch of FTTs
    return FTT(train, [dataclasses.replace(b, m=m) for b, m in zip(model.bases, sizes)])


def coarse_levels(model: FTT, levels: tuple[int, ...] | None = None) -> tuple[int, ...]:
    """The coarse basis sizes :func:`coarse_to_fine` fits ``model`` on: ``levels`` (default ``3, 5, 9, 17, …``,
    ``2^j + 1`` below the largest basis size) without those too small for the model's ranks; ``()`` when the
    bases are not hierarchical.

    Raises:
        TypeError: ``model`` is not an FTT, or ``levels`` is not a sequence of ints.
        ValueError: ``levels`` does not increase or reaches the largest basis size.

    Examples:
        >>> import jax
        >>> from jaxtt.basis import BSpline, Legendre
        >>> from jaxtt.ftt import FTT, constant_init
        >>> bases = [Legendre(16)] * 3
        >>> coarse_levels(FTT(constant_init(bases, 2, key=jax.random.key(0)), bases))
        (3, 5, 9)
        >>> coarse_levels(FTT(constant_init(bases, 4, key=jax.random.key(0)), bases))  # 3 functions cannot hold rank 4
        (5, 9)
        >>> coarse_levels(FTT(constant_init([BSpline(16)] * 3, 2, key=jax.random.key(0)), [BSpline(16)] * 3))
        ()
    """
    check_instance(model, "model", FTT)
    if not all(isinstance(b, ScaledBasis) for b in model.bases):
        return ()
    top = max(b.m for b in model.bases)
    if levels is None:
        levels = tuple(2**j + 1 for j in range(1, 32) if 2**j + 1 < top)
    levels = tuple(check_int(m, "levels", minimum=1) for m in check_sequence(levels, "levels", "basis sizes",
                                                                              nonempty=False))
    if any(b <= a for a, b in zip(levels, levels[1:])) or (levels and levels[-1] >= top):
        raise ValueError(f"levels must increase and stay below the largest basis size {top}, got {levels}")
    shapes = [[min(m, b.m) for b in model.bases] for m in levels]
    return tuple(m for m, shape in zip(levels, shapes)
                 if all(r <= bound for r, bound in zip(model.tt.ranks, feasible_ranks(shape, max(model.tt.ranks)))))


def coarse_to_fine(
    model: FTT,
    x,
    y,
    solver: Solver | None = None,
    *,
    levels: tuple[int, ...] | None = None,
    steps: int = 4,
    max_steps: int = 20,
    tol: float = 0.0,
    stagnation: float | None = 0.0,
    validation=None,
    progress: bool = True,
) -> tuple[FTT, list[FitResult]]:
    """Fit ``model`` to ``(x, y)`` on growing bases: ``steps`` solver steps per coarse level, then :func:`fit`.

    Args:
        model: the start on its final bases (Legendre, Chebyshev or Fourier), e.g. from
            :func:`~jaxtt.ftt.constant_init`; its ranks are kept.
        x, y: training data, as in :func:`~jaxtt.solvers.fit`.
        solver: default ``ALS()``.
        levels: basis sizes of the coarse levels (increasing, below the model's largest basis size);
            default ``3, 5, 9, 17, …`` (``2^j + 1``). Levels too small for the model's ranks are skipped.
        steps: solver steps on each coarse level (``>= 1``).
        max_steps, tol, stagnation: of the final fit on the full bases (see :func:`~jaxtt.solvers.fit`).
        validation, progress: as in :func:`~jaxtt.solvers.fit`, for every level.

    Raises:
        TypeError, ValueError: bad arguments, named (as in :func:`coarse_levels` and :func:`~jaxtt.solvers.fit`).

    Returns:
        ``(model, results)``: the fitted model on the full bases and one
        :class:`~jaxtt.solvers.FitResult` per level, the final fit last.

    Examples:
        >>> import jax, jax.numpy as jnp, numpy as np
        >>> from jaxtt.basis import Legendre
        >>> from jaxtt.ftt import FTT, constant_init
        >>> bases = [Legendre(8, domain=(-np.pi, np.pi))] * 3
        >>> x = jax.random.uniform(jax.random.key(0), (2000, 3), minval=-np.pi, maxval=np.pi)
        >>> y = jnp.sin(x.sum(1))  # no first-order ANOVA terms
        >>> start = FTT(constant_init(bases, 2, key=jax.random.key(1)), bases)
        >>> model, results = coarse_to_fine(start, x, y, progress=False)
        >>> [r.ranks[0] for r in results][:1], results[-1].train_residual[-1] < 1e-2
        ([(1, 2, 2, 1)], True)
    """
    check_instance(model, "model", FTT)
    solver = ALS() if solver is None else check_instance(solver, "solver", Solver)
    steps = check_int(steps, "steps", minimum=1)
    results = []
    current = model
    for m in coarse_levels(model, levels):
        coarse = resize_bases(current, [min(m, b.m) for b in model.bases])
        with warnings.catch_warnings():  # a coarse level is not expected to explain y
            warnings.simplefilter("ignore", StalledFitWarning)
            coarse, result = fit(coarse, x, y, solver, max_steps=steps, stagnation=None, validation=validation,
                                 progress=progress, restart=False)
        results.append(result)
        current = resize_bases(coarse, [b.m for b in model.bases])
    final, result = fit(current, x, y, solver, max_steps=max_steps, tol=tol, stagnation=stagnation,
                        validation=validation, progress=progress, restart=False)
    return final, [*results, result]
