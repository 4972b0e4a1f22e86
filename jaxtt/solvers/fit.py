"""One loop for every solver: ``fit(model, x, y, solver)``.

A *solver* is an immutable :class:`Solver` (its hyperparameters are fields)
with two pure methods, in the style of Optax's ``init``/``update``:

* ``state = solver.init(model, x, y)`` — the starting state for fitting the
  functional TT ``model`` to samples ``(x, y)``;
* ``state = solver.step(state)`` — one step (a sweep for ALS/DMRG, a
  line-search iteration for Riemannian GD/CG, an optimizer update for
  :class:`~jaxtt.solvers.GradientDescent`).

Every state has the current ``model`` and its ``loss``, the objective
``J = (1/2N)(Σ_s (y_s − f(x_s))² + λ‖A‖²)`` of
:class:`~jaxtt.solvers.LeastSquares` (summed over the outputs of a batch of
FTTs), so solvers can be compared step by step. :func:`fit` runs the steps with
stopping rules, a history (:class:`FitResult`, the same fields for every
solver) and a progress bar; the states can equally be driven by hand, inside
``jax.jit`` or ``lax.scan`` (all solvers but the rank-adaptive
:class:`~jaxtt.solvers.DMRG`, whose array shapes change between steps).
"""

from __future__ import annotations

import abc
import time
import warnings
from typing import NamedTuple

import equinox as eqx
import jax
import numpy as np
from jaxtyping import Array, Float
from tqdm.auto import tqdm

from jaxtt._validation import check_bool, check_instance, check_int, check_memory, check_real, is_concrete
from jaxtt.errors import NumericalError
from jaxtt.ftt.functional import FTT
from jaxtt.solvers.problem import check_training_data, outside_domain, relative_residual

__all__ = ["Solver", "FitResult", "StalledFitWarning", "check_untraced", "fit", "run_steps"]


class Solver(eqx.Module):
    """Base class of the FTT solvers: ``init(model, x, y) -> state`` and ``step(state) -> state``.

    Subclasses define both methods; the state is an Equinox module with at
    least the fields (or properties) ``model`` (the current :class:`~jaxtt.ftt.FTT`)
    and ``loss`` (its objective ``J``, a scalar array). :meth:`check` is called
    by :func:`fit` after every step.

    Examples:
        >>> import jax
        >>> from jaxtt.basis import Legendre
        >>> from jaxtt.ftt import FTT, constant_init
        >>> from jaxtt.solvers import ALS
        >>> bases = [Legendre(3)] * 2
        >>> x = jax.random.uniform(jax.random.key(0), (200, 2), minval=-1, maxval=1)
        >>> solver = ALS()  # driven by hand instead of through fit
        >>> state = solver.init(FTT(constant_init(bases, 2, key=jax.random.key(1)), bases), x, x[:, 0] * x[:, 1])
        >>> first = state.loss
        >>> state = solver.step(state)
        >>> isinstance(solver, Solver), bool(state.loss < 1e-3 * first)
        (True, True)
    """

    @abc.abstractmethod
    def init(self, model: FTT, x: Float[Array, "N d"], y: Float[Array, "N *D"]):
        """Starting state for fitting ``model`` to ``(x, y)``."""

    @abc.abstractmethod
    def step(self, state):
        """The state after one step."""

    #: what :meth:`check` suggests when the loss goes non-finite
    remedy = "increase reg or check the scaling of the data"
    #: what :func:`fit` suggests when :meth:`step_memory` exceeds the device's memory
    memory_remedy = "lower the rank or the basis size, or fit on fewer rows"

    def step_memory(self, model: FTT, n: int) -> int:
        """Estimated bytes of the largest arrays of one step on ``n`` samples, checked by :func:`fit` before it
        starts. This default counts what every solver holds: each core's features and the left and right
        interfaces, ``N (m + 2r) d`` numbers per output; solvers with larger local problems override it."""
        m, r = max(b.m for b in model.bases), max(model.tt.ranks)
        batch = int(np.prod(model.tt.batch_shape, dtype=np.int64))
        return int(batch * n * (m + 2 * r) * model.ndim * np.dtype(model.tt.dtype).itemsize)

    def check(self, state, step: int) -> None:
        """Raise :class:`~jaxtt.errors.NumericalError` (with :attr:`remedy`) if ``state`` holds a non-finite loss."""
        if not np.isfinite(float(state.loss)):
            raise NumericalError(f"{type(self).__name__} produced a non-finite loss", step=step, remedy=self.remedy)


class StalledFitWarning(UserWarning):
    """A fit ended explaining less than 10 % of the variance of ``y``, or stalled far (10×) above its ``tol``, or
    :func:`fit` restarted it coarse to fine."""


class FitResult(NamedTuple):
    """History of :func:`fit` (and :func:`~jaxtt.solvers.fit_riemannian`): the start (step 0) and each step.

    Attributes:
        step: step numbers ``0, 1, …``.
        loss: the objective ``J = (1/2N)(‖y − f(x)‖² + λ‖A‖²)`` (summed over outputs); for
            :func:`~jaxtt.solvers.fit_riemannian` the user's objective.
        train_residual: ``‖y − f(x)‖ / ‖y‖`` on the training data (``None`` for
            :func:`~jaxtt.solvers.fit_riemannian`, which has no data).
        val_residual: the same on the validation data, ``None`` without validation data.
        ranks: TT ranks of the model.
        time: seconds spent on each entry (``init`` for step 0, including compilation).
        status: why the loop stopped: ``"max_steps"``, ``"tol"`` (training residual
            reached ``tol``), ``"gtol"`` (:func:`~jaxtt.solvers.fit_riemannian`: the gradient
            norm reached ``gtol``) or ``"stalled"`` (two steps in a row without a relative
            decrease of the loss above ``stagnation``).
        restarted: ``True`` when the returned model comes from :func:`fit`'s automatic coarse-to-fine
            restart (``restart=True``); the other fields are then the history of the restart's final fit
            on the full bases.
    """

    step: list[int]
    loss: list[float]
    train_residual: list[float] | None
    val_residual: list[float] | None
    ranks: list[tuple[int, ...]]
    time: list[float]
    status: str
    restarted: bool = False


def fit(
    model: FTT,
    x: Float[Array, "N d"],
    y: Float[Array, "N *D"],
    solver: Solver,
    *,
    max_steps: int,
    tol: float = 0.0,
    stagnation: float | None = 0.0,
    validation: tuple[Array, Array] | None = None,
    progress: bool = True,
    restart: bool = True,
) -> tuple[FTT, FitResult]:
    """Fit the functional TT ``model`` to samples ``(x, y)`` with ``solver``.

    Runs ``solver.init`` and up to ``max_steps`` ``solver.step``\\ s. Stops early
    when the relative training residual ``‖y − f(x)‖/‖y‖`` is at most ``tol``,
    or when two consecutive steps lower the loss by at most ``stagnation · |J|``
    each (with the default ``0``: the loss stopped decreasing; ``None`` runs all
    ``max_steps``).

    A fit of a single FTT that ends explaining less than 10 % of the variance of
    ``y`` (adjusted for what its coefficients fit of noise, ``p/N`` on pure noise; the
    swamp of targets without low-order ANOVA terms, e.g. ``sin(x_1 + … + x_6)``
    on ``[−π, π]^6``, whose projection onto the interfaces of a constant or
    random start is below the sampling noise) is restarted from ``model`` by
    :func:`~jaxtt.solvers.coarse_to_fine` when the bases are hierarchical
    (Legendre, Chebyshev, Fourier with more than 3 functions): the basis sizes
    grow 3 → 5 → 9 → … as a nested-space continuation (Grasedyck & Krämer
    2019). The better of the two fits (lower training residual) is returned,
    with one :class:`StalledFitWarning` saying what happened. Fits that
    explain more never pay for this.

    Vector-valued targets ``y`` of shape ``(N, D)`` are fitted by a batch of
    ``D`` FTTs (cores with a leading axis of size ``D``, e.g. ``denoiser.ftt``
    of an :class:`~jaxtt.ftt.FTTDenoiser`) as independent problems.

    Args:
        model: the starting :class:`~jaxtt.ftt.FTT` (its ranks are kept, except by
            :class:`~jaxtt.solvers.DMRG`).
        x: inputs ``(N, d)``; y: targets ``(N,)`` or ``(N, D)``; finite.
        solver: :class:`~jaxtt.solvers.ALS`, :class:`~jaxtt.solvers.DMRG`,
            :class:`~jaxtt.solvers.RGD`, :class:`~jaxtt.solvers.RCG` or
            :class:`~jaxtt.solvers.GradientDescent`.
        max_steps: most steps (``>= 0``).
        tol: relative training residual at which to stop.
        stagnation: relative decrease of the loss below which a step counts as
            stalled (``None``: never stop for stalling).
        validation: optional ``(x_val, y_val)`` whose residual is recorded.
        progress: show a progress bar.
        restart: restart coarse to fine when the fit ends explaining under 10 %
            of the variance (see above); ``False`` returns the stalled fit.

    Returns:
        ``(model, result)``: the fitted FTT and its :class:`FitResult`
        (``result.restarted`` says whether the model comes from the restart).

    Raises:
        TypeError, ValueError: bad arguments, named.
        jaxtt.errors.NumericalError: a step produced NaN or infinity (naming the
            step, the core where the solver knows it, and a remedy).

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt.basis import Legendre
        >>> from jaxtt.ftt import FTT, constant_init
        >>> from jaxtt.solvers import ALS, fit
        >>> bases = [Legendre(4)] * 3
        >>> x = jax.random.uniform(jax.random.key(0), (500, 3), minval=-1, maxval=1)
        >>> y = x[:, 0] * x[:, 1] + x[:, 2] ** 2
        >>> model = FTT(constant_init(bases, 2, key=jax.random.key(1)), bases)
        >>> model, result = fit(model, x, y, ALS(), max_steps=10, tol=1e-4, progress=False)
        >>> result.train_residual[-1] < 1e-4, result.status
        (True, 'tol')

        A target without low-order terms stalls from the constant start; the default call restarts:

        >>> import warnings
        >>> bases = [Legendre(6, domain=(-jnp.pi, jnp.pi))] * 6
        >>> x = jax.random.uniform(jax.random.key(0), (2000, 6), minval=-jnp.pi, maxval=jnp.pi)
        >>> start = FTT(constant_init(bases, 2, key=jax.random.key(1)), bases)
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     model, result = fit(start, x, jnp.sin(x.sum(1)), ALS(), max_steps=8, progress=False)
        >>> "at training residual 0.9" in str(caught[-1].message)  # the first fit: nothing explained
        True
        >>> result.restarted, result.train_residual[-1] < 0.1, "restarted by coarse_to_fine" in str(caught[-1].message)
        (True, True, True)
    """
    check_instance(solver, "solver", Solver)
    check_untraced(model, x, y)
    if validation is not None:
        if not (isinstance(validation, tuple | list) and len(validation) == 2):
            raise TypeError(f"validation must be a pair (x_val, y_val), got {type(validation).__name__}")
    x, y, x_val, y_val = check_training_data(model, x, y, *(validation or (None, None)))
    check_memory(solver.step_memory(model, x.shape[0]), "model",
                 f"the arrays of one {type(solver).__name__} step at ranks {model.tt.ranks} with up to "
                 f"{max(b.m for b in model.bases)} basis functions", solver.memory_remedy)
    max_steps = check_int(max_steps, "max_steps", minimum=0)
    restart = check_bool(restart, "restart")
    progress = check_bool(progress, "progress")
    tol = check_real(tol, "tol", minimum=0.0)
    if stagnation is not None:
        stagnation = check_real(stagnation, "stagnation", minimum=0.0)

    result = FitResult([], [], [], [] if x_val is not None else None, [], [], "max_steps")

    def observe(state, step: int, seconds: float):
        loss, residual = float(np.sum(state.loss)), float(relative_residual(state.model, x, y))
        result.step.append(step)
        result.loss.append(loss)
        result.train_residual.append(residual)
        if x_val is not None:
            result.val_residual.append(float(relative_residual(state.model, x_val, y_val)))
        result.ranks.append(state.model.tt.ranks)
        result.time.append(seconds)
        return loss, ("tol" if residual <= tol else None), {"residual": f"{residual:.2e}"}

    outside = outside_domain(model, x)
    if outside:
        warnings.warn(f"{outside}: polynomial and trigonometric bases extrapolate there (values grow like "
                      "|ξ|^(m-1)), B-splines and indicators vanish; rescale the inputs or widen the domains",
                      stacklevel=2)
    try:
        state, status = run_steps(solver, lambda: solver.init(model, x, y), solver.step, solver.check, observe,
                                  max_steps=max_steps, stagnation=stagnation, progress=progress)
    except NumericalError as err:
        if not outside:
            raise
        raise NumericalError(err.what, step=err.step, core=err.core,
                             remedy=f"{err.remedy}; first bring the inputs into the bases' domains ({outside})"
                             ) from None
    result = result._replace(status=status)
    explained, adjusted = _explained_variance(state.model, result, y)
    # a restart is tried for a single FTT (not a batch such as a denoiser's) on hierarchical bases
    restarts = (restart and not state.model.tt.batch_shape and adjusted < 0.1
                and _stopped_unexplained(result, adjusted, tol))
    if not (restarts or _stopped_unexplained(result, explained, tol)):
        return state.model, result
    message = (f"{type(solver).__name__} stopped ({status}) at training residual {result.train_residual[-1]:.3g}, "
               f"explaining {max(explained, 0.0):.1%} of the variance of y ({max(adjusted, 0.0):.1%} beyond what its "
               "coefficients fit of noise)" + (f" (tol {tol:g})" if tol > 0 else ""))
    fitted = state.model
    if restarts:
        fitted, result, message = _restart_coarse_to_fine(model, x, y, solver, fitted, result, message,
                                                          max_steps=max_steps, tol=tol, stagnation=stagnation,
                                                          validation=validation, progress=progress)
    if _stopped_unexplained(result, _explained_variance(fitted, result, y)[1], tol):
        message += ("; try jaxtt.solvers.coarse_to_fine (grows the bases from 3 functions per variable: escapes the "
                    "stall of targets without low-order terms), a larger rank, a basis suited to the data, or inputs "
                    "scaled to the bases' domain")
    warnings.warn(message, StalledFitWarning, stacklevel=2)
    return fitted, result


def _explained_variance(model: FTT, result: FitResult, y) -> tuple[float, float]:
    """The fraction ``R² = 1 − ‖y − f(x)‖² / ‖y − ȳ‖²`` of the variance of ``y`` that the fit's last model
    explains, and its adjusted value ``1 − (1 − R²)(N − 1)/(N − p − 1)`` (Theil 1961) with ``p`` the dimension
    ``Σ_k r_{k−1} m_k r_k − Σ_k r_k²`` of the fixed-rank TT manifold (Holtz, Rohwedder, Schneider 2012): a fit to
    pure noise explains about ``p/N`` by chance, which the adjustment removes (``R²`` itself when ``N ≤ p + 1``)."""
    y = np.asarray(y)
    spread = max(float(np.sum((y - y.mean(axis=0)) ** 2)), np.finfo(np.float64).tiny)
    explained = 1.0 - (result.train_residual[-1] * np.linalg.norm(y)) ** 2 / spread
    ranks = model.tt.ranks
    p = sum(ranks[k] * b.m * ranks[k + 1] for k, b in enumerate(model.bases)) - sum(r * r for r in ranks[1:-1])
    n = y.shape[0]
    return explained, (1.0 - (1.0 - explained) * (n - 1) / (n - p - 1) if n > p + 1 else explained)


def _stopped_unexplained(result: FitResult, explained: float, tol: float) -> bool:
    """A fit that took steps and ended without reaching ``tol`` explaining under 10 % of the variance of ``y``,
    or stalled more than 10× above ``tol``."""
    far_above_tol = result.status == "stalled" and result.train_residual[-1] > 10 * tol > 0
    return result.status != "tol" and len(result.step) >= 2 and (explained < 0.1 or far_above_tol)


def _restart_coarse_to_fine(model, x, y, solver, fitted, result, message, **options):
    """Refit from ``model`` by :func:`~jaxtt.solvers.coarse_to_fine` when its bases allow a coarse level; return
    the better of the two fits and the warning message extended by what the restart did."""
    # imported here: the continuation module builds on fit
    from jaxtt.solvers.continuation import coarse_levels, coarse_to_fine

    levels = coarse_levels(model)
    if not levels:
        return fitted, result, message
    with warnings.catch_warnings():  # the first fit has already said what there is to say about the data
        warnings.simplefilter("ignore")
        try:
            again, results = coarse_to_fine(model, x, y, solver, levels=levels, **options)
        except NumericalError as err:
            return fitted, result, message + f"; a coarse-to-fine restart failed ({err})"
    residual = results[-1].train_residual[-1]
    message += (f"; restarted by coarse_to_fine from {levels[0]} functions per variable (levels "
                f"{', '.join(map(str, levels))}; restart=False turns this off): training residual {residual:.3g}")
    if residual < result.train_residual[-1]:
        return again, results[-1]._replace(restarted=True), message
    return fitted, result, message + ", no better: the first fit is returned"


def check_untraced(*trees) -> None:
    """Refuse traced arguments: the fitting loops are Python loops and cannot run under ``jax.jit``."""
    if not all(is_concrete(leaf) for leaf in jax.tree_util.tree_leaves(trees)):
        raise TypeError("this fit runs a Python loop (stopping rules, history, progress bar) and cannot be traced by "
                        "jax.jit/vmap/grad; inside a traced function drive the solver by hand: "
                        "state = solver.init(model, x, y), then state = solver.step(state) (or lax.scan over step)")


def run_steps(solver, init, step, check, observe, *, max_steps: int, stagnation: float | None, progress: bool):
    """The loop behind :func:`fit` and :func:`~jaxtt.solvers.fit_riemannian`: ``init``, then ``step`` until done.

    ``observe(state, k, seconds) -> (loss, status, postfix)`` records step ``k`` and returns the summed loss,
    a stop reason (``None`` to go on) and the progress-bar fields; ``check(state, k)`` raises
    :class:`~jaxtt.errors.NumericalError`. Stops after ``max_steps`` steps (status ``"max_steps"``), when
    ``observe`` says so, or after two consecutive steps that lower the loss by at most ``stagnation · |J|``
    (``"stalled"``; ``None`` never stalls). Returns ``(state, status)``.
    """
    start = time.perf_counter()
    state = jax.block_until_ready(init())
    check(state, 0)
    loss, status, _ = observe(state, 0, time.perf_counter() - start)
    stalled = 0
    bar = tqdm(range(1, max_steps + 1), desc=type(solver).__name__, disable=not progress or status is not None,
               leave=False)
    for k in bar:
        if status is not None:
            break
        start = time.perf_counter()
        try:
            state = jax.block_until_ready(step(state))
        except NumericalError as err:
            raise err.at_step(k) from None
        check(state, k)
        previous = loss
        loss, status, postfix = observe(state, k, time.perf_counter() - start)
        bar.set_postfix(loss=f"{loss:.3e}", **postfix)
        stalled = stalled + 1 if stagnation is not None and previous - loss <= stagnation * abs(previous) else 0
        if status is None and stalled >= 2:
            status = "stalled"
    return state, status or "max_steps"

