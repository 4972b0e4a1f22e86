"""Riemannian gradient descent and conjugate gradients on the fixed-rank TT manifold.

Minimise ``f : M_r → R`` over tensor trains of fixed ranks ``r`` (Absil,
Mahony, Sepulchre 2008, ch. 4 and 8; Steinlechner 2016, §4)::

    η_k      = −grad f(X_k) + β_k T_{k-1→k}(η_{k-1})        (β = 0: gradient descent)
    X_{k+1}  = R_{X_k}(t_k η_k),   t_k by Armijo backtracking:
               f(R_{X_k}(t η_k)) <= f(X_k) + c₁ t ⟨grad f(X_k), η_k⟩,

with the Riemannian gradient ``grad f = P_X ∇f``, the TT-SVD retraction ``R``
and vector transport ``T`` by projection (:mod:`jaxtt.tt.riemannian`).
Conjugate-gradient β (Nocedal & Wright 2006, §5.2):

* ``"fr"`` (Fletcher–Reeves): ``β = ‖g_{k}‖² / ‖g_{k-1}‖²``;
* ``"pr+"`` (Polak–Ribière+): ``β = max(0, ⟨g_k, g_k − T g_{k-1}⟩ / ‖g_{k-1}‖²)``,
  with ``⟨g_k, T g_{k-1}⟩ = ⟨g_k, g_{k-1}⟩_F`` because ``T`` is the orthogonal
  projection onto the tangent space that contains ``g_k``;

and a restart ``η_k = −g_k`` whenever ``η_k`` is not a descent direction, the
previous line search failed, or consecutive gradients are far from orthogonal
(Powell 1977; see :class:`RCG`).

Initial trial step (``initial_step``):

* ``"newton"``: ``t₀ = −φ'(0)/φ''(0)`` for ``φ(t) = f(X + t η)`` on the
  straight line in the embedding space. It is the exact minimiser along the
  line for every quadratic loss of the tensor (least squares), the "linearized
  line search" of Vandereycken 2013 and Steinlechner 2016, §4.2. ``φ''(0)`` comes
  from the objective's ``line_curvature(η)`` when defined (``O(N d n r²)`` for
  :class:`LeastSquares`), else from a nested forward-mode pass on a
  rank-``2r`` train (measured about 25× the cost of one loss evaluation for
  ``d = 8``, ``N = 20,000``, ``r = 3``: pass ``initial_step="quadratic"`` when the
  objective has no ``line_curvature``, which ``"auto"`` does);
* ``"quadratic"``: ``t₀ = 2.02 (f_k − f_{k-1}) / φ'(0)`` from the last decrease
  (Nocedal & Wright 2006, eq. 3.60), ``step0`` at the first iteration;
* ``"auto"`` (default): ``"newton"`` if the objective defines ``line_curvature``,
  otherwise ``"quadratic"``.

Backtracking replaces ``t`` by the minimiser of the quadratic through ``f(X)``,
``φ'(0)`` and ``f(R(tη))``, safeguarded to ``[0.1 t, 0.5 t]``, at most
``max_backtracks`` times (``lax.while_loop``). A failed line search leaves the
point unchanged, so the loss never increases.

:class:`RGD` and :class:`RCG` are :class:`~jaxtt.solvers.Solver`\ s: for FTT
regression (the :class:`~jaxtt.solvers.LeastSquares` objective) use
``init(model, x, y)`` / ``step(state)`` or :func:`jaxtt.solvers.fit`. For any
other objective over tensor trains the pure pair
``init_objective(objective, X) -> state`` / ``step_objective(objective, state)
-> state`` can be ``jit``-ed and ``vmap``-ped (a batch of independent
problems), and :func:`fit_riemannian` loops over it with stopping rules and a
history.

An *objective* is a callable ``TensorTrain -> scalar`` written with jaxtt
operations; its Riemannian gradient comes from automatic differentiation
(:func:`jaxtt.tt.autodiff.value_and_riemannian_grad`). An objective may also
define ``riemannian_value_and_grad(at: TangentVector) -> (loss, TangentVector)``
and ``line_curvature(direction: TangentVector) -> scalar`` to supply cheaper
versions (as :class:`LeastSquares` does). Pass data-holding
objectives as ``equinox.Module``\\ s so that their arrays are traced, not baked
into the compiled program as constants.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh
from jaxtyping import Array, Bool, Float, Int

from jaxtt._validation import check_choice, check_instance, check_int, check_real
from jaxtt.errors import NumericalError
from jaxtt.ftt.functional import FTT
from jaxtt.sharding import check_mesh, replicate, shard_rows
from jaxtt.solvers.fit import FitResult, Solver, check_untraced, run_steps
from jaxtt.solvers.problem import LeastSquares, check_training_data
from jaxtt.tt import TensorTrain, autodiff
from jaxtt.tt import inner as tt_inner
from jaxtt.tt import riemannian as rm
from jaxtt.tt.riemannian import TangentVector

__all__ = ["RiemannianState", "RiemannianFitState", "RGD", "RCG", "fit_riemannian"]


class RiemannianState(eqx.Module):
    """State of :class:`RGD` / :class:`RCG` (a pytree; batch it with ``vmap``).

    Attributes:
        point: current iterate ``X_k`` (left-canonical).
        loss: ``f(X_k)``.
        grad: Riemannian gradient at ``X_k`` (carries the frames of ``X_k``).
        direction: search direction ``η_k`` at ``X_k``.
        step_size: last accepted step ``t`` (or the initial guess before the first step).
        prev_loss: ``f(X_{k-1})`` (``inf`` before the first step).
        trial_loss: loss at the last trial point of the last line search.
        accepted: whether the last line search met the Armijo condition.
        iteration: number of steps taken.
        n_evals: loss evaluations spent in line searches so far.
    """

    point: TensorTrain
    loss: Float[Array, ""]
    grad: TangentVector
    direction: TangentVector
    step_size: Float[Array, ""]
    prev_loss: Float[Array, ""]
    trial_loss: Float[Array, ""]
    accepted: Bool[Array, ""]
    iteration: Int[Array, ""]
    n_evals: Int[Array, ""]


class RiemannianFitState(eqx.Module):
    """State of :class:`RGD` / :class:`RCG` fitting an FTT (:meth:`RGD.init`).

    Attributes:
        inner: the :class:`RiemannianState` of the coefficient train (with a
            leading batch axis for vector-valued targets).
        objective: the :class:`~jaxtt.solvers.LeastSquares` problem (targets
            ``(D, N)`` for a batch).
        bases: the model's bases.
    """

    inner: RiemannianState
    objective: LeastSquares
    bases: tuple

    @property
    def model(self) -> FTT:
        """The current FTT."""
        return FTT(self.inner.point, self.bases)

    @property
    def loss(self) -> Float[Array, ""]:
        """``J`` summed over the outputs."""
        return jnp.sum(self.inner.loss)


def _value_and_grad(objective, at: TangentVector):
    custom = getattr(objective, "riemannian_value_and_grad", None)
    if custom is not None:
        return custom(at)
    return autodiff.value_and_riemannian_grad(objective, at)


def _select(flag, a, b):
    """``a`` where ``flag`` else ``b``, leaf by leaf (vmap-friendly)."""
    return jax.tree_util.tree_map(lambda x, y: jnp.where(flag, x, y), a, b)


def _line_curvature(objective, direction: TangentVector) -> Float[Array, ""]:
    """``φ''(0)`` of ``φ(t) = f(X + t η)`` (straight line in the embedding space).

    From the objective's ``line_curvature`` when it has one, otherwise by nested
    forward-mode differentiation of ``f`` on the rank-``2r`` train ``X + t η``.
    """
    custom = getattr(objective, "line_curvature", None)
    if custom is not None:
        return custom(direction)

    def phi(t):
        return objective(rm.line_point(direction, t))

    def dphi(t):
        return jax.jvp(phi, (t,), (jnp.ones_like(t),))[1]

    zero = jnp.zeros((), direction.dtype)
    return jax.jvp(dphi, (zero,), (jnp.ones_like(zero),))[1]


class RGD(Solver):
    """Riemannian gradient descent with Armijo backtracking (Absil, Mahony, Sepulchre 2008, Alg. 1).

    Args:
        reg: ridge weight ``λ >= 0`` of the :class:`~jaxtt.solvers.LeastSquares`
            objective built by :meth:`init` (unused by :meth:`init_objective`).
        c1: Armijo constant ``0 < c₁ < 1``.
        max_backtracks: most step reductions per line search (``>= 0``).
        initial_step: rule for the first trial step, ``"newton"``, ``"quadratic"``
            or ``"auto"`` (``"newton"`` when the objective defines
            ``line_curvature``, else ``"quadratic"``); see the module docstring.
        step0: first trial step of the ``"quadratic"`` rule and the fallback of
            ``"newton"`` when ``φ''(0) <= 0``.
        mesh: a :class:`jax.sharding.Mesh` (e.g. :func:`jaxtt.sharding.data_mesh`)
            to fit data-parallel on: :meth:`init` splits the rows of the
            features and targets over ``axis`` (padding them to a multiple of
            its size with rows that the objective's ``mask`` drops,
            :func:`jaxtt.sharding.shard_rows`) and replicates the train. The
            loss, gradient and line-search values are sums over rows, so the
            jitted step is partitioned by XLA with one all-reduce per sum
            (the rows are never gathered). Equals the single-device fit up to
            the order of the floating-point sums. ``None``: the default device.
            (:meth:`init_objective` / :func:`fit_riemannian` take objectives
            whose arrays are already placed, e.g. a
            :class:`~jaxtt.solvers.LeastSquares` built from :func:`~jaxtt.sharding.shard_rows`
            with its ``mask``.)
        axis: the mesh axis to split rows over.

    Examples:
        >>> import jax
        >>> from jaxtt.basis import Legendre
        >>> from jaxtt.ftt import FTT, constant_init
        >>> from jaxtt.solvers import fit
        >>> bases = [Legendre(4)] * 3
        >>> x = jax.random.uniform(jax.random.key(0), (500, 3), minval=-1, maxval=1)
        >>> y = x[:, 0] * x[:, 1] + x[:, 2] ** 2
        >>> start = FTT(constant_init(bases, 2, key=jax.random.key(1)), bases)
        >>> model, result = fit(start, x, y, RCG(), max_steps=30, progress=False)
        >>> result.train_residual[-1] < 1e-3, result.loss[-1] < result.loss[0]
        (True, True)
    """

    reg: float = 0.0
    c1: float = 1e-4
    max_backtracks: int = 30
    initial_step: str = "auto"
    step0: float = 1.0
    mesh: Mesh | None = eqx.field(default=None, static=True)
    axis: str = eqx.field(default="data", static=True)

    def __check_init__(self):
        check_real(self.reg, "reg", minimum=0.0)
        if not 0.0 < check_real(self.c1, "c1") < 1.0:
            raise ValueError(f"c1 must satisfy 0 < c1 < 1, got {self.c1}")
        check_int(self.max_backtracks, "max_backtracks", minimum=0)
        check_choice(self.initial_step, "initial_step", {"auto", "newton", "quadratic"})
        check_real(self.step0, "step0", minimum=0.0, strict_minimum=True)
        if self.mesh is not None:
            check_mesh(self.mesh, self.axis)

    def init(self, model: FTT, x: Float[Array, "N d"], y: Float[Array, "N *D"]) -> RiemannianFitState:
        """Start fitting ``model`` to ``(x, y)`` on the :class:`~jaxtt.solvers.LeastSquares` objective.

        A batch of FTTs (targets ``(N, D)``) becomes ``D`` independent problems
        sharing the features, stepped together with ``vmap``.
        """
        x, y, _, _ = check_training_data(model, x, y)
        if len(model.tt.batch_shape) > 1:
            raise ValueError(f"model may carry at most one batch axis, got batch shape {model.tt.batch_shape}")
        y = y.astype(model.tt.dtype)
        batched = bool(model.tt.batch_shape)
        mask = None
        if self.mesh is not None:
            (x, y), mask = shard_rows([x, y], self.mesh, self.axis)
            model = replicate(model, self.mesh)
        objective = LeastSquares(model.features(x), y[:, 0] if batched else y, reg=self.reg, mask=mask)
        if batched:
            objective = eqx.tree_at(lambda o: o.targets, objective, y.T)
        else:
            rm.zeros(model.tt)  # eager rank validation with a clear message
        axes = _least_squares_axes(objective) if batched else 0
        inner = _apply(self.init_objective, len(model.tt.batch_shape), axes, objective, model.tt)
        return RiemannianFitState(inner, objective, model.bases)

    def step(self, state: RiemannianFitState) -> RiemannianFitState:
        """One line-search step of every output (compiled once per configuration and shapes)."""
        batch = len(state.inner.point.batch_shape)
        axes = _least_squares_axes(state.objective) if batch else 0
        inner = _apply(self.step_objective, batch, axes, state.objective, state.inner)
        return RiemannianFitState(inner, state.objective, state.bases)

    def check(self, state: RiemannianFitState, step: int) -> None:
        """Raise when every trial point of a line search was non-finite, or the loss or gradient is."""
        loss, grad_norm, _, _, _, blow_up = jax.device_get(_summary(state.inner))
        _check_finite_state(float(loss), float(grad_norm), bool(blow_up), step)

    def init_objective(self, objective: Callable[[TensorTrain], Float[Array, ""]], X: TensorTrain) -> RiemannianState:
        """Loss, gradient and steepest-descent direction at the starting point ``X``."""
        if not callable(objective):
            raise TypeError(f"objective must be callable, got {type(objective).__name__}")
        loss, grad = _value_and_grad(objective, rm.zeros(X))
        dtype = grad.dtype
        return RiemannianState(
            point=grad.point,
            loss=loss,
            grad=grad,
            direction=rm.scale(grad, -1.0),
            step_size=jnp.asarray(self.step0, dtype),
            prev_loss=jnp.asarray(jnp.inf, dtype),
            trial_loss=loss,
            accepted=jnp.asarray(True),
            iteration=jnp.asarray(0),
            n_evals=jnp.asarray(0),
        )

    def _trial_step(self, objective, state: RiemannianState, slope):
        guess = 2.02 * (state.loss - state.prev_loss) / slope
        quadratic = jnp.where(jnp.isfinite(guess) & (guess > 0), guess, state.step_size)
        newton_rule = self.initial_step == "newton" or (
            self.initial_step == "auto" and hasattr(objective, "line_curvature")
        )
        if not newton_rule:
            return quadratic
        curvature = _line_curvature(objective, state.direction)
        newton = -slope / curvature
        return jnp.where(jnp.isfinite(newton) & (newton > 0), newton, quadratic)

    def _line_search(self, objective, state: RiemannianState, slope, t0):
        """Armijo backtracking; the carry starts unevaluated so the retraction is traced once."""

        def failed(t, value):
            return ~(jnp.isfinite(value) & (value <= state.loss + self.c1 * t * slope))

        def cond(carry):
            t, _, value, count = carry
            return (count == 0) | (failed(t, value) & (count <= self.max_backtracks))

        def body(carry):
            t, _, value, count = carry
            quad = -slope * t * t / (2.0 * (value - state.loss - slope * t))
            quad = jnp.where(jnp.isfinite(quad), quad, 0.1 * t)
            t = jnp.where(count == 0, t, jnp.clip(quad, 0.1 * t, 0.5 * t))
            point = rm.retract(state.point, state.direction, t)
            return t, point, objective(point), count + 1

        start = (t0, state.point, jnp.asarray(jnp.inf, state.loss.dtype), jnp.asarray(0))
        t, point, value, count = lax.while_loop(cond, body, start)
        return t, point, value, count, ~failed(t, value)

    def _direction(self, state: RiemannianState, grad: TangentVector, accepted) -> TangentVector:
        return rm.scale(grad, -1.0)

    def step_objective(
        self, objective: Callable[[TensorTrain], Float[Array, ""]], state: RiemannianState
    ) -> RiemannianState:
        """One line-search step from ``state`` (pure; ``jit``/``vmap`` it freely)."""
        slope = rm.inner(state.grad, state.direction)
        t0 = self._trial_step(objective, state, slope)
        t, trial_point, trial_loss, count, accepted = self._line_search(objective, state, slope, t0)
        point = _select(accepted, trial_point, state.point)
        _, grad = _value_and_grad(objective, rm.zeros(point))
        direction = self._direction(state, grad, accepted)
        return RiemannianState(
            point=grad.point,
            loss=jnp.where(accepted, trial_loss, state.loss),  # the Armijo-checked value: exactly monotone
            grad=grad,
            direction=direction,
            step_size=jnp.where(accepted, t, state.step_size),
            prev_loss=state.loss,
            trial_loss=trial_loss,
            accepted=accepted,
            iteration=state.iteration + 1,
            n_evals=state.n_evals + count,
        )


class RCG(RGD):
    """Riemannian nonlinear conjugate gradients (Absil, Mahony, Sepulchre 2008, §8.3; Sato 2021).

    Same line search as :class:`RGD`; directions ``η_k = −g_k + β_k T(η_{k-1})``
    with ``beta`` ``"pr+"`` (default) or ``"fr"``. Restarts ``η_k = −g_k`` when
    the previous line search failed, when ``η_k`` is not a descent direction
    (``⟨g_k, η_k⟩ >= 0``) and, following Powell (1977), when consecutive
    gradients are far from orthogonal, ``|⟨g_k, T g_{k-1}⟩| >= powell · ‖g_k‖²``.
    Without the Powell restart Fletcher–Reeves jams on TT regression (tiny steps
    with ``β ≈ 1``; measured on a ``d = 5``, rank-2 exactly representable
    problem from five random starts: losses ``1e-3 … 8e1`` after 300 steps,
    where PR+ and FR with the restart reach ``1e-27`` in about 110). Each step
    adds one vector transport (projection of a rank-``2r`` train, ``O(d n r³)``).

    Args:
        beta: ``"pr+"`` or ``"fr"``.
        powell: restart threshold ``ν > 0`` (a large value disables the test).
        c1, max_backtracks, initial_step, step0: as in :class:`RGD`.

    Examples:
        >>> import jax
        >>> from jaxtt import tt
        >>> target = tt.random(jax.random.key(0), (4, 4, 4), 2)
        >>> def objective(X):  # ‖X − A‖² / 2, any jaxtt-differentiable function works
        ...     diff = tt.add(X, tt.scale(target, -1.0))
        ...     return 0.5 * tt.inner(diff, diff)
        >>> solver = RCG()
        >>> state = solver.init_objective(objective, tt.random(jax.random.key(1), (4, 4, 4), 2))
        >>> first = state.loss
        >>> state, _ = jax.lax.scan(lambda s, _: (solver.step_objective(objective, s), None), state, length=40)
        >>> bool(state.loss < 1e-6 * first), int(state.iteration)
        (True, 40)
    """

    beta: str = "pr+"
    powell: float = 0.2

    def __check_init__(self):
        check_choice(self.beta, "beta", {"pr+", "fr"})
        check_real(self.powell, "powell", minimum=0.0, strict_minimum=True)

    def _direction(self, state: RiemannianState, grad: TangentVector, accepted) -> TangentVector:
        gg_old = rm.inner(state.grad, state.grad)
        gg_new = rm.inner(grad, grad)
        overlap = tt_inner(rm.to_tt(grad), rm.to_tt(state.grad))
        numerator = gg_new - overlap if self.beta == "pr+" else gg_new
        keep = accepted & (gg_old > 0) & (jnp.abs(overlap) < self.powell * gg_new)
        beta = jnp.where(keep, jnp.maximum(numerator / gg_old, 0.0), 0.0)
        steepest = rm.scale(grad, -1.0)
        direction = rm.add(steepest, rm.scale(rm.transport(grad, state.direction), beta))
        descent = rm.inner(grad, direction) < 0
        return _select(descent, direction, steepest)


# ----------------------------------------------------------------------------- loops


@eqx.filter_jit
def _apply(method, n_batch: int, objective_axes, objective, arg):
    """``method(objective, arg)``, vmapped over ``n_batch`` leading axes; compiled once per solver configuration."""
    for _ in range(n_batch):
        method = eqx.filter_vmap(method, in_axes=(objective_axes, 0))
    return method(objective, arg)


@jax.jit
def _summary(state: RiemannianState):
    """Loss, gradient norm, step size, evaluations (summed over a batch) and per-member flags."""
    sq = sum(jnp.sum(g * g, axis=(-3, -2, -1)) for g in state.grad.deltas)
    return (jnp.sum(state.loss), jnp.sum(jnp.sqrt(sq)), jnp.max(state.step_size), jnp.sum(state.n_evals),
            jnp.any(state.accepted), jnp.any(~state.accepted & ~jnp.isfinite(state.trial_loss)))


def fit_riemannian(
    objective: Callable[[TensorTrain], Float[Array, ""]],
    X0: TensorTrain,
    *,
    solver: RGD | None = None,
    max_steps: int = 100,
    gtol: float = 0.0,
    stagnation: float | None = 0.0,
    objective_axes=0,
    progress: bool = True,
) -> tuple[TensorTrain, FitResult]:
    """Minimise any ``objective`` over the TTs of ``X0``'s ranks, starting at ``X0``.

    For FTT regression use :func:`jaxtt.solvers.fit` with an :class:`RGD` or
    :class:`RCG` solver; this is the same loop (:func:`jaxtt.solvers.fit.run_steps`) for
    other objectives (tensor completion, custom losses), stepping ``solver.step_objective``
    (jitted). Stops after ``max_steps`` steps, when ``‖grad f‖ <= gtol``, or after two
    consecutive steps that lower the loss by at most ``stagnation · |f|`` (a failed line
    search leaves the point unchanged, so two failures in a row stop it: converged to
    working precision).

    A batch of TTs (cores with one leading axis, e.g. the ``D`` outputs of a
    vector-valued FTT) is optimised as independent problems with the step
    ``vmap``-ped; ``objective_axes`` is the ``in_axes`` of the objective for that
    map (default ``0``: every array of the objective is batched; use ``None`` for
    leaves shared by all members). Losses in the history are then sums over the batch.

    Args:
        objective: ``TensorTrain -> scalar`` (see the module docstring).
        X0: starting point with full ranks.
        solver: :class:`RGD` or :class:`RCG` (default ``RCG()``).
        max_steps: most steps (``>= 0``).
        gtol: absolute tolerance on the Riemannian gradient norm.
        stagnation: relative decrease per step below which a step counts as stalled.
        objective_axes: ``in_axes`` of the objective for batched ``X0``.
        progress: show a tqdm progress bar.

    Returns:
        ``(X, result)``: the last point and its :class:`~jaxtt.solvers.FitResult`
        (``train_residual`` is ``None``: there is no data).

    Raises:
        TypeError, ValueError: bad arguments.
        jaxtt.errors.NumericalError: a non-finite loss or gradient (naming the step).

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt import tt
        >>> target = tt.random(jax.random.key(0), (4, 4, 4), 2)
        >>> def objective(X):  # ‖X − A‖² / 2
        ...     diff = tt.add(X, tt.scale(target, -1.0))
        ...     return 0.5 * tt.inner(diff, diff)
        >>> X, result = fit_riemannian(objective, tt.random(jax.random.key(1), (4, 4, 4), 2), max_steps=60,
        ...                            progress=False)
        >>> result.loss[-1] < 1e-6 * result.loss[0], result.train_residual is None
        (True, True)
    """
    solver = RCG() if solver is None else check_instance(solver, "solver", RGD)
    check_instance(X0, "X0", TensorTrain)
    check_untraced(objective, X0)
    if len(X0.batch_shape) > 1:
        raise ValueError(f"X0 may carry at most one batch axis, got batch shape {X0.batch_shape}")
    max_steps = check_int(max_steps, "max_steps", minimum=0)
    gtol = check_real(gtol, "gtol", minimum=0.0)
    if stagnation is not None:
        stagnation = check_real(stagnation, "stagnation", minimum=0.0)
    n_batch = len(X0.batch_shape)
    if n_batch == 0:
        rm.zeros(X0)  # eager rank validation with a clear message

    result = FitResult([], [], None, None, [], [], "max_steps")

    def check(state, step):
        loss, grad_norm, _, _, _, blow_up = jax.device_get(_summary(state))
        _check_finite_state(float(loss), float(grad_norm), bool(blow_up), step)

    def observe(state, step, seconds):
        loss, grad_norm = (float(v) for v in jax.device_get(_summary(state))[:2])
        result.step.append(step)
        result.loss.append(loss)
        result.ranks.append(state.point.ranks)
        result.time.append(seconds)
        return loss, ("gtol" if grad_norm <= gtol else None), {"grad": f"{grad_norm:.2e}"}

    state, status = run_steps(
        solver, lambda: _apply(solver.init_objective, n_batch, objective_axes, objective, X0),
        lambda state: _apply(solver.step_objective, n_batch, objective_axes, objective, state), check, observe,
        max_steps=max_steps, stagnation=stagnation, progress=progress)
    return state.point, result._replace(status=status)


def _check_finite_state(loss: float, grad_norm: float, blow_up: bool, step: int) -> None:
    remedy = "check the objective for overflow or lower step0"
    if blow_up:
        raise NumericalError("every trial point of the line search gave a non-finite loss", step=step, remedy=remedy)
    if not np.isfinite(loss):
        raise NumericalError(f"non-finite loss {loss}", step=step, remedy=remedy)
    if not np.isfinite(grad_norm):
        raise NumericalError("non-finite Riemannian gradient", step=step, remedy=remedy)


def _least_squares_axes(objective: LeastSquares):
    """``in_axes`` for a batch of least-squares problems sharing the features (targets batched on axis 0)."""
    spec = jax.tree_util.tree_map(lambda _: None, objective)
    return eqx.tree_at(lambda o: o.targets, spec, 0, is_leaf=lambda x: x is None)
