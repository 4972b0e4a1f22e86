"""Riemannian gradients of tensor-train functions by automatic differentiation.

The construction of t3f (Novikov, Rakhuba, Oseledets 2022, "Automatic
differentiation for Riemannian optimization on low-rank matrix and
tensor-train manifolds"): points near ``X ∈ M_r`` are parametrized by δ-cores
as ``X + Σ_k U_{<k} δ_k V_{>k}`` (the rank-``2r`` train
:func:`jaxtt.tt.riemannian.line_point`). By the chain rule
``∂f/∂δ_k |_{δ=0} = U_{<k}ᵀ ∇f(X) V_{>k}ᵀ``, and the gauge projection
``(I − U_k U_kᵀ)`` for ``k < d`` turns these into exactly the δ-cores of
``P_X ∇f(X)`` (:func:`jaxtt.tt.riemannian.gauge_fixed`). One reverse pass of
the function on a rank-``2r`` train: it works for any function written with
jaxtt operations, and no dense gradient is formed.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from jaxtt.tt import riemannian as rm
from jaxtt.tt.core import TensorTrain

__all__ = ["value_and_riemannian_grad", "riemannian_grad"]


def value_and_riemannian_grad(
    loss_fn: Callable[[TensorTrain], Float[Array, ""]], at: TensorTrain | rm.TangentVector
) -> tuple[Float[Array, ""], rm.TangentVector]:
    """Loss value and Riemannian gradient ``grad f(X) = P_X ∇f(X)`` by automatic differentiation.

    Args:
        loss_fn: ``TensorTrain -> scalar``, differentiable with ``jax.grad``.
        at: the point ``X`` (a TensorTrain with full ranks) or a tangent vector
            at it (its frames are reused).

    Returns:
        ``(f(X), grad f(X))`` with the gradient a
        :class:`~jaxtt.tt.riemannian.TangentVector` at ``X``. Cost: one
        evaluation and one reverse pass of ``loss_fn`` on a rank-``2r`` train.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt import tt
        >>> X = tt.random(jax.random.key(0), (3, 4, 3), 2)
        >>> value, grad = value_and_riemannian_grad(lambda A: 0.5 * tt.inner(A, A), X)
        >>> bool(jnp.allclose(value, 0.5 * tt.norm(X) ** 2))
        True
        >>> # ∇f(X) = X lies in the tangent space, so the projection keeps it
        >>> bool(jnp.allclose(tt.full(rm.to_tt(grad)), tt.full(X), atol=1e-5))
        True
    """
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
    base = at if isinstance(at, rm.TangentVector) else rm.zeros(at)
    value, deltas = _grad_kernel(loss_fn, base)
    return value, rm.gauge_fixed(rm.TangentVector(base.left, base.right, deltas))


@eqx.filter_jit
def _grad_kernel(loss_fn, base: rm.TangentVector):
    def perturbed(deltas):
        return loss_fn(rm.line_point(rm.TangentVector(base.left, base.right, deltas)))

    return jax.value_and_grad(perturbed)([jnp.zeros_like(u) for u in base.left])


def riemannian_grad(
    loss_fn: Callable[[TensorTrain], Float[Array, ""]], at: TensorTrain | rm.TangentVector
) -> rm.TangentVector:
    """Riemannian gradient ``P_X ∇f(X)``; see :func:`value_and_riemannian_grad`.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt import tt
        >>> X = tt.random(jax.random.key(0), (3, 4, 3), 2)
        >>> Z = tt.random(jax.random.key(1), (3, 4, 3), 2)
        >>> grad = riemannian_grad(lambda A: tt.inner(A, Z), X)  # ∇f = Z, so grad f(X) = P_X Z
        >>> bool(jnp.allclose(tt.full(rm.to_tt(grad)), tt.full(rm.to_tt(rm.project(X, Z))), atol=1e-5))
        True
    """
    return value_and_riemannian_grad(loss_fn, at)[1]
