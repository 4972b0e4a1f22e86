"""The FTT least-squares problem shared by all solvers: its objective, data checks and residual.

Every solver of :func:`jaxtt.solvers.fit` minimises, over the coefficient train
``A`` of a functional TT ``f(x) = ⟨A, Φ(x)⟩``,

    J(A) = (1/2N) (Σ_s (y_s − f(x_s))² + λ ‖A‖_F²),

the ridge regression of Holtz, Rohwedder, Schneider (2012) normalised by the
number of samples; a batch of FTTs (vector-valued targets) is a sum of
independent problems that share the inputs.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from jaxtt._validation import check_array, check_finite, check_instance, check_real, is_concrete
from jaxtt.ftt.functional import FTT
from jaxtt.tt import TensorTrain, absorb, contract_rank1, feasible_ranks
from jaxtt.tt import inner as tt_inner
from jaxtt.tt import riemannian as rm
from jaxtt.tt.riemannian import TangentVector

__all__ = [
    "LeastSquares",
    "check_fit_data",
    "check_training_data",
    "check_feasible_ranks",
    "least_squares_loss",
    "model_loss",
    "relative_residual",
]


class LeastSquares(eqx.Module):
    """Least-squares regression loss of a (functional) tensor train.

    .. math::
        f(X) = \\frac{1}{2N} \\Big( \\sum_{s=1}^N (⟨X, Φ_s⟩ − y_s)^2 + λ ‖X‖_F^2 \\Big),
        \\qquad Φ_s = φ_1^s ⊗ ⋯ ⊗ φ_d^s

    (FTT regression with ``φ_k^s = φ_k(x_{s,k})``; the objective of every solver of
    :func:`jaxtt.solvers.fit`: the ALS objective ``Σ_s (y_s − f(x_s))² + λ ‖A‖²``
    divided by ``2N``). Its Euclidean gradient is the sum of rank-one terms
    ``(1/N) Σ_s (⟨X, Φ_s⟩ − y_s) Φ_s`` plus ``(λ/N) X``, projected without a dense
    tensor by :func:`jaxtt.tt.riemannian.project` of a
    :class:`~jaxtt.tt.riemannian.Rank1Sum` (``P_X X = X``: only ``δ_d`` gets
    ``(λ/N) U_d``): value and Riemannian gradient cost ``O(N d n r²)``.

    With an integer ``(N, d)`` array of multi-indices ``i_s`` as ``features``
    (unit feature vectors ``e_{i_{s,k}}``) it is least squares on observed
    entries, ``Σ_s (X[i_s] − y_s)²`` (tensor completion, the discrete analogue of
    FTT regression), evaluated by gathers in ``O(N d r²)``.

    Args:
        features: ``d`` arrays ``(N, n_k)`` (e.g. ``FTT.features(x)``), or an
            integer ``(N, d)`` array of multi-indices (see
            :class:`~jaxtt.tt.riemannian.Rank1Sum`).
        targets: ``(N,)`` finite values ``y_s``.
        reg: ridge weight ``λ >= 0``.
        mask: optional ``(N,)`` row weights, 1 for data rows and 0 for padding
            rows (:func:`jaxtt.sharding.shard_rows`), which then contribute
            nothing; ``N`` in the normalisation becomes ``Σ_s mask_s``, the
            number of data rows. ``None``: all rows are data.

    Examples:
        >>> import jax
        >>> from jaxtt import tt
        >>> X = tt.random(jax.random.key(0), (3, 4, 3), 2)
        >>> keys = jax.random.split(jax.random.key(1), 3)
        >>> features = [jax.random.normal(k, (50, n)) for k, n in zip(keys, X.shape)]
        >>> objective = LeastSquares(features, tt.contract_rank1(X, features), reg=0.1)
        >>> bool(abs(objective(X) - 0.1 * tt.norm(X) ** 2 / 100) < 1e-6 * objective(X))  # no misfit: ridge only
        True
    """

    features: tuple[Array, ...]
    targets: Float[Array, " N"]
    reg: float = eqx.field(static=True)
    mask: Float[Array, " N"] | None = None

    def __init__(self, features, targets: Float[Array, " N"], reg: float = 0.0, mask=None):
        targets = check_array(targets, "targets", ndim=1, floating=True)
        check_finite(targets, "targets")
        if targets.shape[0] < 1:
            raise ValueError("targets must hold at least one sample (N >= 1)")
        terms = rm.Rank1Sum(jnp.asarray(targets), features)
        for k, f in enumerate(terms.vectors):
            if f.ndim == 2:
                check_finite(f, f"features[{k}]")
        self.features = terms.vectors
        self.targets = terms.coeffs
        self.reg = check_real(reg, "reg", minimum=0.0)
        if mask is not None:
            mask = check_array(mask, "mask", ndim=1, floating=True)
            if mask.shape != self.targets.shape[-1:]:
                raise ValueError(f"mask must have shape {self.targets.shape[-1:]} like targets, got {mask.shape}")
        self.mask = mask

    def _rows(self, values: Float[Array, " N"]) -> tuple[Float[Array, " N"], Float[Array, ""]]:
        """``values`` with the padding rows zeroed, and the number ``N`` of data rows."""
        if self.mask is None:
            return values, jnp.asarray(values.shape[0], values.dtype)
        return values * self.mask, jnp.sum(self.mask)

    def residuals(self, tt: TensorTrain) -> Float[Array, " N"]:
        """``⟨X, Φ_s⟩ − y_s`` for all samples (0 on padding rows); cost ``O(N d n r²)`` (``O(N d r²)`` for
        indices)."""
        if all(f.ndim == 2 for f in self.features):
            return self._rows(contract_rank1(tt, self.features) - self.targets)[0]
        v = jnp.ones((self.targets.shape[0], 1), tt.dtype)
        for core, f in zip(tt.cores, self.features):
            v = absorb(v, core, f)
        return self._rows(v[:, 0] - self.targets)[0]

    def __call__(self, tt: TensorTrain) -> Float[Array, ""]:
        res = self.residuals(tt)
        n = self._rows(res)[1]
        value = 0.5 * jnp.sum(res * res) / n
        return value + 0.5 * self.reg / n * tt_inner(tt, tt) if self.reg else value

    def line_curvature(self, direction: TangentVector) -> Float[Array, ""]:
        """``φ''(0) = (1/N) (Σ_s ⟨η, Φ_s⟩² + λ ‖η‖²)`` for ``φ(t) = f(X + t η)``; ``O(N d n r²)``."""
        q, n = self._rows(rm.contract_rank1(direction, self.features))
        return (jnp.sum(q * q) + self.reg * rm.inner(direction, direction)) / n

    def riemannian_value_and_grad(self, at: TangentVector) -> tuple[Float[Array, ""], TangentVector]:
        """``f(X)`` and ``P_X ∇f(X) = P_X (1/N) Σ_s r_s Φ_s`` at the point of ``at``; ``O(N d n r²)``."""
        n = self._rows(self.targets)[1]
        values, grad = rm.project_rank1(at, self.features, lambda v: self._rows(v - self.targets)[0] / n)
        res = self._rows(values - self.targets)[0]
        deltas = grad.deltas[:-1] + (grad.deltas[-1] + self.reg / n * at.left[-1],)  # X = U_1 ⋯ U_{d-1} U_d
        value = 0.5 * jnp.sum(res * res) / n + 0.5 * self.reg / n * jnp.vdot(at.left[-1], at.left[-1])
        return value, TangentVector(at.left, at.right, deltas)


def least_squares_loss(tt: TensorTrain, features, y: Float[Array, "N *batch"], reg: float,
                       mask: Float[Array, " N"] | None = None) -> Float[Array, ""]:
    """``J = (1/2N)(‖y − f(x)‖² + λ‖A‖²)`` of a (batch of) coefficient trains, summed over the batch.

    ``features`` are the ``d`` feature arrays ``(N, m_k)`` (:meth:`FTT.features`)
    shared by the batch; ``y`` has the batch axes last, as the solvers take it;
    ``mask`` as in :class:`LeastSquares` (padding rows dropped).
    Cost ``O(N d m r²)`` per member; unvalidated, jit-able and differentiable.
    """

    def one(t, targets):
        return LeastSquares(features, targets, reg, mask)(t)

    for _ in tt.batch_shape:
        one = jax.vmap(one, in_axes=(0, -1))
    return jnp.sum(one(tt, y))


@eqx.filter_jit
def model_loss(model: FTT, x, y, reg: float, mask=None) -> Float[Array, ""]:
    """:func:`least_squares_loss` of ``model`` on the raw inputs ``x`` (features evaluated inside).

    One compiled program per shape: evaluated op by op, the features, contractions and the ridge term would
    each be compiled separately on first use, seconds of latency before a fit's first step.
    """
    return least_squares_loss(model.tt, model.features(x), y, reg, mask)


@eqx.filter_jit
def relative_residual(model: FTT, x, y) -> Float[Array, ""]:
    """``‖y − f(x)‖ / ‖y‖`` over all samples and outputs (``y`` of shape ``(N, *batch)`` like ``f(x)``); one
    compiled program per shape, like :func:`model_loss`."""
    return jnp.linalg.norm(model(x) - y) / jnp.maximum(jnp.linalg.norm(y), jnp.finfo(y.dtype).tiny)


def check_fit_data(model: FTT, x, y, name_x: str = "x", name_y: str = "y"):
    """Validate regression data for a (possibly batched) FTT; return jnp arrays."""
    x = check_array(x, name_x, ndim=2, floating=True)
    if x.shape[0] < 1:
        raise ValueError(f"{name_x} must hold at least one sample (N >= 1), got N = 0")
    if x.shape[1] != model.ndim:
        raise ValueError(f"{name_x} must have shape (N, {model.ndim}), got {tuple(x.shape)}")
    batch = model.tt.batch_shape
    y = check_array(y, name_y, ndim=1 + len(batch), floating=True)
    if y.shape != (x.shape[0], *batch):
        raise ValueError(
            f"{name_y} must have shape {(x.shape[0], *batch)} to match {name_x} and the model, got {tuple(y.shape)}"
        )
    check_finite(x, name_x)
    check_finite(y, name_y)
    return jnp.asarray(x), jnp.asarray(y)


def outside_domain(model: FTT, x) -> str:
    """A sentence naming the variables of concrete ``x`` that leave their basis' domain, or ``""``."""
    if not is_concrete(x):
        return ""
    x = np.asarray(x)
    parts = []
    for k, basis in enumerate(model.bases):
        low, high = basis.domain
        fraction = float(np.mean((x[:, k] < low) | (x[:, k] > high)))
        if fraction > 0:
            parts.append(f"x[:, {k}] leaves the domain ({low:g}, {high:g}) of basis {k} in {fraction:.1%} of the rows")
    more = f" and {len(parts) - 2} more variables" if len(parts) > 2 else ""
    return "; ".join(parts[:2]) + more


def check_training_data(model, x, y, x_val=None, y_val=None):
    """Validate a model and its training (and optional validation) data; return jnp arrays."""
    check_instance(model, "model", FTT)
    x, y = check_fit_data(model, x, y)
    if (x_val is None) != (y_val is None):
        raise ValueError("x_val and y_val must be given together")
    if x_val is not None:
        x_val, y_val = check_fit_data(model, x_val, y_val, "x_val", "y_val")
    return x, y, x_val, y_val


def check_feasible_ranks(tt: TensorTrain) -> None:
    """Raise if a rank exceeds ``min(Π_{j<=k} n_j, Π_{j>k} n_j)`` (the basis cannot support it)."""
    bound = feasible_ranks(tt.shape, max(tt.ranks))
    for k in range(1, tt.ndim):
        if tt.ranks[k] > bound[k]:
            raise ValueError(
                f"rank r_{k} = {tt.ranks[k]} is larger than the basis allows: with mode sizes {tt.shape} "
                f"it can be at most {bound[k]}"
            )
