"""First-order fitting of functional tensor trains with any Optax optimizer.

Treats the cores ``G_k`` of the coefficient train as free parameters and
applies an ``optax.GradientTransformation`` to the Euclidean gradient of the
least-squares objective (:class:`~jaxtt.solvers.LeastSquares`)

    J(A) = (1/2N) (Σ_s (y_s − ⟨A, Φ(x_s)⟩)² + λ ‖A‖_F²),

full batch, one update per step. Unlike :class:`~jaxtt.solvers.RGD` this
ignores the manifold structure (the gradient with respect to the cores is not
invariant to the gauge of the train), but it is what a neural-network toolkit
does with a TT model and the usual baseline for the closed-form sweeps.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh
from jaxtyping import Array, Float, Int, PyTree

from jaxtt._validation import check_instance, check_real
from jaxtt.ftt.functional import FTT
from jaxtt.sharding import check_mesh, replicate, shard_rows
from jaxtt.solvers.fit import Solver
from jaxtt.solvers.problem import check_training_data, least_squares_loss

__all__ = ["GradientDescent", "GradientDescentState"]


class GradientDescentState(eqx.Module):
    """State of :class:`GradientDescent`.

    Attributes:
        model: the current FTT.
        loss: ``J`` of ``model`` (summed over outputs).
        opt_state: the optimizer state.
        features: the feature arrays ``φ_k(x_{:, k})`` of the training inputs.
        y: the targets (output axes last); with a mesh the rows of ``features`` and ``y`` are padded to a
            multiple of the device count and split over it.
        step: updates taken.
        mask: with a mesh, 1 for the data rows and 0 for padding; else ``None``.
    """

    model: FTT
    loss: Float[Array, ""]
    opt_state: PyTree
    features: tuple[Array, ...]
    y: Float[Array, "N *D"]
    step: Int[Array, ""]
    mask: Float[Array, " N"] | None = None


class GradientDescent(Solver):
    """Full-batch gradient steps on the cores with an Optax optimizer.

    Args:
        optimizer: an ``optax.GradientTransformation``, e.g. ``optax.adam(1e-2)``.
        reg: ridge weight ``λ >= 0`` of the objective (absolute, as for :class:`~jaxtt.solvers.ALS`).
        mesh: a :class:`jax.sharding.Mesh` (e.g. :func:`jaxtt.sharding.data_mesh`)
            to fit data-parallel on: ``init`` splits the rows over ``axis``
            (padding them to a multiple of its size with masked rows,
            :func:`jaxtt.sharding.shard_rows`) and replicates the cores and the
            optimizer state; XLA partitions the jitted update, each device
            differentiating its rows' part of the loss and one all-reduce
            summing the gradient. Equals the single-device fit up to the order
            of the floating-point sums. ``None``: the default device.
        axis: the mesh axis to split rows over.

    Examples:
        >>> import jax, jax.numpy as jnp, optax
        >>> from jaxtt.basis import Legendre
        >>> from jaxtt.ftt import FTT, constant_init
        >>> bases = [Legendre(3)] * 2
        >>> x = jax.random.uniform(jax.random.key(0), (200, 2), minval=-1, maxval=1)
        >>> solver = GradientDescent(optax.adam(0.05))
        >>> state = solver.init(FTT(constant_init(bases, 2, key=jax.random.key(1)), bases), x, x[:, 0] * x[:, 1])
        >>> first = state.loss
        >>> state, _ = jax.lax.scan(lambda s, _: (solver.step(s), None), state, length=100)
        >>> bool(state.loss < 0.1 * first)
        True
    """

    optimizer: optax.GradientTransformation = eqx.field(static=True)
    reg: float = 0.0
    mesh: Mesh | None = eqx.field(default=None, static=True)
    axis: str = eqx.field(default="data", static=True)
    remedy = "lower the learning rate (or use a closed-form solver such as ALS)"

    def __check_init__(self):
        check_instance(self.optimizer, "optimizer", optax.GradientTransformation)
        check_real(self.reg, "reg", minimum=0.0)
        if self.mesh is not None:
            check_mesh(self.mesh, self.axis)

    def init(self, model: FTT, x: Float[Array, "N d"], y: Float[Array, "N *D"]) -> GradientDescentState:
        """Features of the inputs, optimizer state and the starting loss."""
        x, y, _, _ = check_training_data(model, x, y)
        y = y.astype(model.tt.dtype)
        mask = None
        if self.mesh is not None:
            (x, y), mask = shard_rows([x, y], self.mesh, self.axis)
            model = replicate(model, self.mesh)
        features = tuple(model.features(x))
        return GradientDescentState(
            model=model,
            loss=least_squares_loss(model.tt, features, y, self.reg, mask),
            opt_state=self.optimizer.init(model.tt),
            features=features,
            y=y,
            step=jnp.asarray(0),
            mask=mask,
        )

    def step(self, state: GradientDescentState) -> GradientDescentState:
        """One optimizer update; ``loss`` is recomputed at the new cores."""
        return _update(self, state)


@eqx.filter_jit
def _update(solver: GradientDescent, state: GradientDescentState) -> GradientDescentState:
    def objective(tt):
        return least_squares_loss(tt, state.features, state.y, solver.reg, state.mask)

    grads = jax.grad(objective)(state.model.tt)
    updates, opt_state = solver.optimizer.update(grads, state.opt_state, state.model.tt)
    tt = optax.apply_updates(state.model.tt, updates)
    model = FTT(tt, state.model.bases)
    return GradientDescentState(model, objective(tt), opt_state, state.features, state.y, state.step + 1,
                                state.mask)
