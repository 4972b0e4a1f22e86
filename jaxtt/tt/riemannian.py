"""Riemannian geometry of the manifold ``M_r`` of tensor trains with fixed TT ranks.

A point ``X ∈ M_r`` (ranks ``r = (1, r_1, …, r_{d-1}, 1)``) has a left-canonical
representation with left-orthogonal cores ``U_1 … U_{d-1}`` (``unfold_L(U_k)ᵀ
unfold_L(U_k) = I``; ``U_d`` holds the norm) and a right-canonical one with
right-orthogonal ``V_2 … V_d``. Every tangent vector at ``X`` is (Holtz,
Rohwedder, Schneider 2012; Lubich, Oseledets, Vandereycken 2015; Steinlechner
2016, eq. 3.8)::

    ξ = Σ_k U_1 ⋯ U_{k-1} δ_k V_{k+1} ⋯ V_d,

with *δ-cores* ``δ_k`` of the shape of ``X``'s cores and the gauge condition
``unfold_L(U_k)ᵀ unfold_L(δ_k) = 0`` for ``k < d``. The gauge makes the ``d``
terms mutually orthogonal, so ``⟨ξ, η⟩_F = Σ_k ⟨δ_k^ξ, δ_k^η⟩`` and the
Riemannian metric (the one inherited from the Frobenius inner product) costs
``O(d n r²)``.

A :class:`TangentVector` stores its δ-cores together with the frames ``U, V``
of its base point, so vectors of different points cannot be mixed silently:
shapes are always compared, values when they are concrete
(:func:`check_tangent`, :func:`check_same_point`).

Costs (``n`` mode size, ``r`` rank of ``X``, ``R`` rank of a projected TT, ``N``
rank-one terms): frames ``O(d n r³)``; :func:`project` of a TT
``O(d n r R (r + R))``, of a :class:`Rank1Sum` ``O(N d n r²)`` (``O(N d r²)`` when
the terms are unit vectors given by multi-indices) without forming a dense
tensor; :func:`retract` ``O(d n r³)`` (TT-SVD of a rank-``2r`` train);
:func:`inner` ``O(d n r²)``. The numerical kernels are jitted (validation stays
eager, so bad input fails with a clear message); Python loops run over the ``d``
cores, so compile time grows with ``d`` (measured in
``benchmarks/bench_riemannian.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from jaxtt._validation import check_array, check_instance, check_real, is_concrete
from jaxtt.tt.core import TensorTrain
from jaxtt.tt.decompositions import orthogonalize
from jaxtt.tt.ops import absorb
from jaxtt.tt.ops import add as tt_add
from jaxtt.tt.ops import scale as tt_scale

__all__ = [
    "TangentVector",
    "Rank1Sum",
    "zeros",
    "project",
    "to_tt",
    "contract_rank1",
    "retract",
    "transport",
    "inner",
    "norm",
    "add",
    "scale",
    "project_rank1",
    "line_point",
    "gauge_fixed",
    "check_tangent",
    "check_same_point",
]

Core = Float[Array, "r_prev n r_next"]


class TangentVector(eqx.Module):
    """Tangent vector ``ξ = Σ_k U_{<k} δ_k V_{>k}`` at a point of ``M_r`` (gauge-fixed δ-core form).

    Args:
        left: cores ``U_1 … U_d`` of the base point in left-canonical form
            (``U_1 … U_{d-1}`` left-orthogonal).
        right: cores ``V_1 … V_d`` of the base point in right-canonical form
            (``V_2 … V_d`` right-orthogonal).
        deltas: δ-cores, ``deltas[k]`` of the shape of ``left[k]``; the gauge
            ``unfold_L(U_k)ᵀ unfold_L(δ_k) = 0`` (``k < d``) is the caller's
            responsibility when building one by hand (see :func:`check_tangent`).

    Obtain one from :func:`zeros`, :func:`project`, :func:`jaxtt.tt.autodiff.riemannian_grad` or
    :func:`transport` rather than by hand.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt import tt
        >>> X = tt.random(jax.random.key(0), (3, 4, 3), 2)
        >>> xi = zeros(X)
        >>> xi.shape, xi.ranks, [g.shape for g in xi.deltas]
        ((3, 4, 3), (1, 2, 2, 1), [(1, 3, 2), (2, 4, 2), (2, 3, 1)])
        >>> bool(jnp.allclose(tt.full(xi.point), tt.full(X), atol=1e-5))
        True
    """

    left: tuple[Core, ...]
    right: tuple[Core, ...]
    deltas: tuple[Core, ...]

    def __init__(self, left: Sequence[Core], right: Sequence[Core], deltas: Sequence[Core]):
        left, right, deltas = TensorTrain(left).cores, TensorTrain(right).cores, tuple(deltas)
        if not (len(left) == len(right) == len(deltas)):
            raise ValueError(
                f"left, right and deltas must hold d cores each, got {len(left)}, {len(right)} and {len(deltas)}"
            )
        for k, (u, v, g) in enumerate(zip(left, right, deltas)):
            if not (u.shape == v.shape == tuple(getattr(g, "shape", ()))):
                raise ValueError(
                    f"core {k}: left {tuple(u.shape)}, right {tuple(v.shape)} and delta "
                    f"{tuple(getattr(g, 'shape', ()))} must have one shape"
                )
        self.left, self.right, self.deltas = left, right, tuple(jnp.asarray(g) for g in deltas)

    @property
    def ndim(self) -> int:
        """Number of modes ``d``."""
        return len(self.deltas)

    @property
    def shape(self) -> tuple[int, ...]:
        """Mode sizes ``(n_1, …, n_d)`` of the base point."""
        return tuple(int(g.shape[-2]) for g in self.deltas)

    @property
    def ranks(self) -> tuple[int, ...]:
        """TT ranks ``(1, r_1, …, r_{d-1}, 1)`` of the base point."""
        return (int(self.deltas[0].shape[-3]),) + tuple(int(g.shape[-1]) for g in self.deltas)

    @property
    def dtype(self):
        """Floating dtype of the δ-cores."""
        return self.deltas[0].dtype

    @property
    def point(self) -> TensorTrain:
        """The base point ``X = U_1 ⋯ U_d`` (left-canonical form)."""
        return TensorTrain(self.left)


class Rank1Sum(eqx.Module):
    """A sum of rank-one tensors ``Z = Σ_s c_s φ_1^s ⊗ ⋯ ⊗ φ_d^s``, never formed densely.

    The Euclidean gradient of the least-squares loss ``½ Σ_s (⟨X, Φ_s⟩ − y_s)²``
    is ``Σ_s (⟨X, Φ_s⟩ − y_s) Φ_s`` (FTT regression with ``Φ_s = Φ(x_s)``), i.e.
    a ``Rank1Sum`` with ``coeffs`` = residuals and ``vectors`` = features.

    Args:
        coeffs: ``(N,)`` weights ``c_s``.
        vectors: ``d`` floating arrays ``(N, n_k)`` (or one ``(d, N, n)`` array),
            or one integer array ``(N, d)`` of multi-indices ``i_s``, which stands
            for the unit vectors ``φ_k^s = e_{i_{s,k}}``: then ``Z = Σ_s c_s e_{i_s}``
            is a sparse tensor with ``N`` entries (tensor completion) and every
            contraction is a gather, ``O(N d r²)`` instead of ``O(N d n r²)``.
            Modes may also mix the two: a sequence of ``(N, n_k)`` floating and
            ``(N,)`` integer arrays.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt import tt
        >>> X = tt.random(jax.random.key(0), (3, 4, 3), 2)
        >>> Z = Rank1Sum(jnp.array([2.0]), jnp.array([[0, 1, 2]]))  # 2 e_(0,1,2), a sparse tensor
        >>> e = jnp.eye(4)
        >>> dense = tt.rank_one([2 * e[0, :3], e[1], e[2, :3]])  # the same tensor as a TT
        >>> bool(jnp.allclose(tt.full(to_tt(project(X, Z))), tt.full(to_tt(project(X, dense))), atol=1e-5))
        True
    """

    coeffs: Float[Array, " N"]
    vectors: tuple[Array, ...]

    def __init__(self, coeffs: Float[Array, " N"], vectors):
        coeffs = check_array(coeffs, "coeffs", ndim=1, floating=True)
        vectors = _as_vectors(vectors)
        if vectors[0].shape[0] != coeffs.shape[0]:
            raise ValueError(f"vectors must have N = {coeffs.shape[0]} rows, got shape {tuple(vectors[0].shape)}")
        self.coeffs = jnp.asarray(coeffs)
        self.vectors = vectors


def _check_modes(vectors, shape: tuple[int, ...], what: str) -> None:
    """Mode sizes of feature vectors, or index ranges of multi-indices, against ``shape``."""
    if len(vectors) != len(shape):
        raise ValueError(f"{what} has d = {len(vectors)} modes but the point has d = {len(shape)}")
    for k, (v, n) in enumerate(zip(vectors, shape)):
        if v.ndim == 2 and v.shape[1] != n:
            raise ValueError(f"{what} has mode size {v.shape[1]} in mode {k} but the point has shape {shape}")
        if v.ndim == 1 and is_concrete(v) and v.shape[0] and not 0 <= np.min(v) <= np.max(v) < n:
            raise ValueError(f"{what} has indices outside [0, {n}) in mode {k}")


# ----------------------------------------------------------------------------- validation


def _as_vectors(vectors) -> tuple:
    """Per-mode data of ``N`` rank-one terms: floating ``(N, n_k)`` feature vectors or integer ``(N,)`` indices.

    Accepts a sequence of such arrays, one floating ``(d, N, n)`` array or one
    integer ``(N, d)`` array of multi-indices.
    """
    if hasattr(vectors, "shape") and jnp.issubdtype(vectors.dtype, jnp.integer):
        indices = jnp.asarray(check_array(vectors, "vectors", ndim=2))
        return tuple(indices[:, k] for k in range(indices.shape[1]))
    if hasattr(vectors, "shape"):
        vectors = check_array(vectors, "vectors", ndim=3)
        vectors = [vectors[k] for k in range(vectors.shape[0])]
    if not isinstance(vectors, Sequence) or len(vectors) == 0:
        raise TypeError(
            "vectors must be a non-empty sequence of (N, n_k) arrays, one (d, N, n) array or an integer (N, d) array"
        )
    vectors = [_as_mode_data(v, f"vectors[{k}]") for k, v in enumerate(vectors)]
    for k, v in enumerate(vectors):
        if v.shape[0] != vectors[0].shape[0]:
            raise ValueError(f"vectors[{k}] must have N = {vectors[0].shape[0]} rows, got shape {tuple(v.shape)}")
    return tuple(jnp.asarray(v) for v in vectors)


def _as_mode_data(v, name: str):
    v = check_array(v, name)
    if jnp.issubdtype(v.dtype, jnp.integer):
        return check_array(v, name, ndim=1)
    return check_array(v, name, ndim=2, floating=True)


def _tolerance(dtype) -> float:
    """Relative tolerance ``sqrt(eps)`` of a floating dtype for the point/gauge checks."""
    return float(np.sqrt(np.finfo(np.dtype(dtype)).eps))


def _check_feasible(tt: TensorTrain, name: str) -> None:
    """Ranks must survive both orthogonalizations: ``r_k <= r_{k-1} n_k`` and ``r_{k-1} <= n_k r_k``."""
    ranks, shape = tt.ranks, tt.shape
    for k, n in enumerate(shape):
        if ranks[k + 1] > ranks[k] * n or ranks[k] > n * ranks[k + 1]:
            raise ValueError(
                f"{name} has ranks {ranks} that are not full for mode sizes {shape} (core {k}: "
                f"r_{k} = {ranks[k]}, n = {n}, r_{k + 1} = {ranks[k + 1]}); it is not a point of a "
                "fixed-rank manifold, round it first"
            )


def _require_tangent(xi, name: str) -> None:
    if not isinstance(xi, TangentVector):
        raise TypeError(f"{name} must be a riemannian.TangentVector, got {type(xi).__name__}")


def _check_matches(X: TensorTrain, xi: TangentVector, name: str) -> None:
    if xi.shape != X.shape or xi.ranks != X.ranks:
        raise ValueError(
            f"{name} lives on the manifold of shape {xi.shape} and ranks {xi.ranks}, "
            f"but the point has shape {X.shape} and ranks {X.ranks}"
        )


@eqx.filter_jit
def _relative_distance(a: TensorTrain, b: TensorTrain) -> Float[Array, ""]:
    """``‖A − B‖_F / ‖A‖_F`` from a QR sweep (no cancellation of ``⟨A,A⟩ − 2⟨A,B⟩ + ⟨B,B⟩``)."""
    diff = orthogonalize(tt_add(a, tt_scale(b, -1.0)), a.ndim - 1)
    ref = orthogonalize(a, a.ndim - 1)
    return jnp.linalg.norm(diff.cores[-1]) / jnp.maximum(jnp.linalg.norm(ref.cores[-1]), jnp.finfo(a.dtype).tiny)


def check_tangent(X: TensorTrain, xi: TangentVector, rtol: float | None = None) -> None:
    """Raise ``ValueError`` unless ``xi`` is a tangent vector at ``X``.

    Checks the shapes and ranks, that the base point stored in ``xi`` represents
    ``X`` (``‖X − U_1⋯U_d‖_F <= rtol ‖X‖_F``) and the gauge condition
    ``‖unfold_L(U_k)ᵀ unfold_L(δ_k)‖ <= rtol · max(‖δ‖, 1)``. The default
    ``rtol`` is ``sqrt(eps)`` of the dtype. Value checks need concrete arrays and
    are skipped under ``jit``. Cost ``O(d n r³)``.

    Examples:
        >>> import jax
        >>> from jaxtt import tt
        >>> X = tt.random(jax.random.key(0), (3, 4, 3), 2)
        >>> xi = project(X, tt.random(jax.random.key(1), (3, 4, 3), 2))
        >>> check_tangent(X, xi)  # passes silently
        >>> Y = tt.random(jax.random.key(2), (3, 4, 3), 2)
        >>> check_tangent(Y, xi)
        Traceback (most recent call last):
            ...
        ValueError: xi is not a tangent vector at X: its base point differs from X by a relative distance ...
    """
    check_instance(X, "X", TensorTrain)
    _require_tangent(xi, "xi")
    _check_matches(X, xi, "xi")
    rtol = _tolerance(X.dtype) if rtol is None else check_real(rtol, "rtol", minimum=0.0)
    if not (is_concrete(X.cores[0]) and is_concrete(xi.deltas[0])):
        return
    distance = float(_relative_distance(X, xi.point))
    if not distance <= rtol:
        raise ValueError(
            f"xi is not a tangent vector at X: its base point differs from X by a relative distance {distance:.3g}"
        )
    scale = max(float(norm(xi)), 1.0)
    for k in range(xi.ndim - 1):
        u = np.asarray(xi.left[k]).reshape(-1, xi.left[k].shape[-1])
        violation = float(np.linalg.norm(u.T @ np.asarray(xi.deltas[k]).reshape(u.shape)))
        if not violation <= rtol * scale:
            raise ValueError(f"xi violates the gauge condition U_kᵀ δ_k = 0 at core {k} (norm {violation:.3g})")


def check_same_point(a: TangentVector, b: TangentVector, rtol: float | None = None) -> None:
    """Raise ``ValueError`` unless ``a`` and ``b`` are tangent vectors at the same point.

    Shapes and ranks are always compared; the stored frames ``U, V`` are compared
    entrywise (relative tolerance ``rtol``, default ``sqrt(eps)``) when the
    arrays are concrete. Cost ``O(d n r²)``.

    Examples:
        >>> import jax
        >>> from jaxtt import tt
        >>> X = tt.random(jax.random.key(0), (3, 4, 3), 2)
        >>> Y = tt.random(jax.random.key(1), (3, 4, 3), 2)
        >>> xi = project(X, Y)
        >>> check_same_point(xi, zeros(X))  # passes silently
        >>> check_same_point(xi, zeros(Y))
        Traceback (most recent call last):
            ...
        ValueError: tangent vectors at different points cannot be combined; transport one of them first
    """
    _require_tangent(a, "a")
    _require_tangent(b, "b")
    if a.shape != b.shape or a.ranks != b.ranks:
        raise ValueError(
            f"tangent vectors of different manifolds: shapes {a.shape} / {b.shape}, ranks {a.ranks} / {b.ranks}"
        )
    frames = list(zip(a.left + a.right, b.left + b.right))
    if not all(is_concrete(x) and is_concrete(y) for x, y in frames):
        return
    rtol = _tolerance(a.dtype) if rtol is None else check_real(rtol, "rtol", minimum=0.0)
    for x, y in frames:
        if x is y:
            continue
        x, y = np.asarray(x), np.asarray(y)
        if not np.allclose(x, y, rtol=rtol, atol=rtol * float(np.max(np.abs(x)))):
            raise ValueError("tangent vectors at different points cannot be combined; transport one of them first")


def _check_step(step, name: str = "step"):
    """A positive finite scalar; traced values are accepted unchecked."""
    if isinstance(step, (int, float, np.number)) and not isinstance(step, bool):
        return check_real(step, name, minimum=0.0, strict_minimum=True)
    step = check_array(step, name, ndim=0, floating=True)
    if is_concrete(step) and not (np.isfinite(float(step)) and float(step) > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {float(step)}")
    return step


# ----------------------------------------------------------------------------- frames and projections


@eqx.filter_jit
def _frames(X: TensorTrain) -> tuple[tuple, tuple]:
    """Left-canonical cores ``U`` (centre ``d-1``) and right-canonical cores ``V`` (centre 0)."""
    return orthogonalize(X, X.ndim - 1).cores, orthogonalize(X, 0).cores


def _at(at, name: str = "at") -> tuple[tuple, tuple]:
    """Frames of a point given as a TensorTrain or as a TangentVector (whose frames are reused)."""
    if isinstance(at, TangentVector):
        return at.left, at.right
    check_instance(at, name, TensorTrain)
    _check_feasible(at, name)
    return _frames(at)


def _gauge(u: Core, delta: Core) -> Core:
    """``(I − U Uᵀ) δ`` on the left unfoldings: removes the component along ``range(U)``."""
    um = u.reshape(-1, u.shape[-1])
    dm = delta.reshape(um.shape[0], -1)
    return (dm - um @ (um.T @ dm)).reshape(delta.shape)


def _gauged(left, deltas) -> tuple:
    return tuple(_gauge(u, g) for u, g in zip(left[:-1], deltas[:-1])) + (deltas[-1],)


def gauge_fixed(xi: TangentVector) -> TangentVector:
    """``xi`` with each ``δ_k`` (``k < d``) replaced by ``(I − U_k U_kᵀ) δ_k`` on the left unfoldings.

    For δ-cores that are *derivatives* ``∂f/∂δ_k = U_{<k}ᵀ Z V_{>k}ᵀ`` of a
    function of the points ``X + Σ_k U_{<k} δ_k V_{>k}`` this gives the δ-cores of
    the projection ``P_X Z`` (Steinlechner 2016, §3.3); see
    :func:`jaxtt.tt.autodiff.value_and_riemannian_grad`. Cost ``O(d n r³)``.

    Examples:
        >>> import jax
        >>> from jaxtt import tt
        >>> X = tt.random(jax.random.key(0), (3, 4, 3), 2)
        >>> z = zeros(X)
        >>> keys = jax.random.split(jax.random.key(1), 3)
        >>> raw = TangentVector(z.left, z.right, [jax.random.normal(k, u.shape) for k, u in zip(keys, z.left)])
        >>> check_tangent(X, raw)
        Traceback (most recent call last):
            ...
        ValueError: xi violates the gauge condition U_kᵀ δ_k = 0 at core 0 ...
        >>> check_tangent(X, gauge_fixed(raw))  # passes silently
    """
    _require_tangent(xi, "xi")
    return TangentVector(xi.left, xi.right, _gauged(xi.left, xi.deltas))


def zeros(X: TensorTrain) -> TangentVector:
    """The zero tangent vector at ``X``; it carries ``X``'s frames ``U, V``.

    Pass it as ``at`` to :func:`project`, :func:`jaxtt.tt.autodiff.value_and_riemannian_grad` or
    :func:`transport` to reuse the frames instead of recomputing them
    (``O(d n r³)``, two QR sweeps).

    Raises:
        ValueError: when ``X``'s ranks are not full (``r_k > r_{k-1} n_k`` or
            ``r_{k-1} > n_k r_k``): such a train is not a point of ``M_r``.

    Examples:
        >>> import jax
        >>> from jaxtt import tt
        >>> X = tt.random(jax.random.key(0), (3, 4, 3), 2)
        >>> xi = zeros(X)
        >>> xi.ranks == X.ranks, float(norm(xi))
        (True, 0.0)
    """
    left, right = _at(X, "X")
    return TangentVector(left, right, [jnp.zeros_like(u) for u in left])


def _project_tt(left, right, cores) -> tuple:
    d = len(left)
    dtype = jnp.result_type(left[0].dtype, cores[0].dtype)
    lefts = [jnp.ones((1, 1), dtype)]
    for u, z in zip(left[:-1], cores[:-1]):
        lefts.append(jnp.einsum("ab,aic,bid->cd", lefts[-1], u, z))
    rights = [jnp.ones((1, 1), dtype)]
    for v, z in zip(right[:0:-1], cores[:0:-1]):
        rights.append(jnp.einsum("aic,bid,cd->ab", v, z, rights[-1]))
    rights = rights[::-1]  # rights[k] contracts cores k+1 … d-1
    return tuple(jnp.einsum("ab,bid,cd->aic", lefts[k], cores[k], rights[k]) for k in range(d))


def _interfaces(left, right, vectors) -> tuple[list, list]:
    """Interface vectors of the frames with rank-one terms.

    ``lefts[k] = U_1(v_1) ⋯ U_k(v_k)`` (``(N, r_k)``, ``k = 0..d``; ``lefts[d]`` is
    ``⟨X, v_1 ⊗ ⋯ ⊗ v_d⟩``) and ``rights[k] = V_{k+1}(v_{k+1}) ⋯ V_d(v_d)``
    (``(N, r_{k+1})``, ``k = 0..d-1``); cost ``O(N d n r²)``.
    """
    ones = jnp.ones((vectors[0].shape[0], 1), _float_type(left[0].dtype, vectors))
    lefts = [ones]
    for u, v in zip(left, vectors):
        lefts.append(absorb(lefts[-1], u, v))
    rights = [ones]
    for w, v in zip(right[:0:-1], vectors[:0:-1]):
        rights.append(absorb(rights[-1], jnp.swapaxes(w, 0, 2), v))
    return lefts, rights[::-1]


def _float_type(dtype, vectors):
    return jnp.result_type(dtype, *[v.dtype for v in vectors if jnp.issubdtype(v.dtype, jnp.floating)])


def _rank1_deltas(lefts, rights, coeffs, vectors, shape) -> tuple:
    """Ungauged δ-cores ``δ_k = Σ_s c_s lefts[k]_s ⊗ v_k^s ⊗ rights[k]_s`` (index data: a segment sum)."""
    deltas = []
    for a, v, b, n in zip(lefts, vectors, rights, shape):
        ca = coeffs[:, None] * a
        if jnp.issubdtype(v.dtype, jnp.integer):
            slices = jax.ops.segment_sum(ca[:, :, None] * b[:, None, :], v, num_segments=n)  # (n, r, r')
            deltas.append(jnp.transpose(slices, (1, 0, 2)))
        else:
            deltas.append(jnp.einsum("sa,si,sb->aib", ca, v, b))
    return tuple(deltas)


def project_rank1(
    at: TangentVector, vectors, coeffs: Callable[[Float[Array, " N"]], Float[Array, " N"]]
) -> tuple[Float[Array, " N"], TangentVector]:
    """Values ``v_s = ⟨X, Φ_s⟩`` and ``P_X Σ_s c_s Φ_s`` with coefficients ``c = coeffs(v)``, in one pass.

    ``Φ_s = φ_1^s ⊗ ⋯ ⊗ φ_d^s``. The left interface vectors of the projection
    already hold the values, so coefficients that depend on them (residuals of
    a least-squares loss, ``c_s = (v_s − y_s)/N``) cost nothing extra: total
    ``O(N d n r²)``, as one :func:`project` of a :class:`Rank1Sum`.
    Unvalidated; it is meant for the inner loops of solvers.

    Args:
        at: a tangent vector at ``X`` (e.g. :func:`zeros` ``(X)``); its frames are used.
        vectors: ``d`` arrays ``(N, n_k)`` or integer index arrays ``(N,)``.
        coeffs: function of the values ``(N,)`` returning the coefficients ``(N,)``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt import tt
        >>> X = tt.random(jax.random.key(0), (3, 4, 3), 2)
        >>> vecs = [jax.random.normal(jax.random.key(k), (5, n)) for k, n in enumerate(X.shape)]
        >>> y = jnp.ones(5)
        >>> values, g = project_rank1(zeros(X), vecs, lambda v: v - y)  # gradient of ½‖v − y‖²
        >>> bool(jnp.allclose(values, tt.contract_rank1(X, vecs), atol=1e-5))
        True
        >>> g2 = project(X, Rank1Sum(values - y, vecs))
        >>> bool(jnp.allclose(tt.full(to_tt(g)), tt.full(to_tt(g2)), atol=1e-4))
        True
    """
    lefts, rights = _interfaces(at.left, at.right, vectors)
    values = lefts[-1][:, 0]
    deltas = _rank1_deltas(lefts, rights, coeffs(values), vectors, [u.shape[1] for u in at.left])
    return values, TangentVector(at.left, at.right, _gauged(at.left, deltas))


def project(at: TensorTrain | TangentVector, Z: TensorTrain | Rank1Sum) -> TangentVector:
    """Orthogonal projection ``P_X Z`` onto the tangent space of ``M_r`` at ``X``.

    ``δ_k = (I − P_{U_k}) [U_{<k}ᵀ Z V_{>k}ᵀ]`` for ``k < d`` and
    ``δ_d = U_{<d}ᵀ Z`` (Lubich, Oseledets, Vandereycken 2015, Thm. 3.1;
    Steinlechner 2016, §3.3), computed from left/right interface contractions:

    * ``Z`` a :class:`TensorTrain` of ranks ``R``: cost ``O(d n r R (r + R))``;
    * ``Z`` a :class:`Rank1Sum` (e.g. the Euclidean gradient of a least-squares
      loss): batched interface vectors ``(N, r)``, cost ``O(N d n r²)`` (``O(N d r²)``
      for multi-indices) — no dense tensor is formed.

    Args:
        at: the point ``X`` (a :class:`TensorTrain` with full ranks) or any
            tangent vector at it (its frames are reused).
        Z: the tensor to project, of ``X``'s mode sizes.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt import tt
        >>> X = tt.random(jax.random.key(0), (3, 4, 3), 2)
        >>> xi = project(X, X)  # X lies in its own tangent space
        >>> bool(jnp.allclose(tt.full(to_tt(xi)), tt.full(X), atol=1e-5))
        True
        >>> retract(X, xi, 0.5).ranks  # (1 + 0.5) X, back on the manifold
        (1, 2, 2, 1)
    """
    left, right = _at(at)
    shape = tuple(int(u.shape[1]) for u in left)
    if isinstance(Z, TensorTrain):
        if Z.shape != shape:
            raise ValueError(f"Z has shape {Z.shape} but the point has shape {shape}")
    elif isinstance(Z, Rank1Sum):
        _check_modes(Z.vectors, shape, "Z")
    else:
        raise TypeError(f"Z must be a TensorTrain or a riemannian.Rank1Sum, got {type(Z).__name__}")
    return TangentVector(left, right, _project_kernel(left, right, Z))


@eqx.filter_jit
def _project_kernel(left, right, Z) -> tuple:
    if isinstance(Z, TensorTrain):
        deltas = _project_tt(left, right, Z.cores)
    else:
        lefts, rights = _interfaces(left, right, Z.vectors)
        deltas = _rank1_deltas(lefts, rights, Z.coeffs, Z.vectors, [u.shape[1] for u in left])
    return _gauged(left, deltas)


# ----------------------------------------------------------------------------- tangent algebra


def _plus_cores(left, right, deltas, x_weight) -> list:
    """Cores of ``x_weight · X + ξ``: ``[U_1 δ_1]``, ``[[U_k δ_k], [0 V_k]]``, ``[x_weight U_d + δ_d; V_d]``.

    Ranks ``2 r_k``; block structure of Steinlechner 2016, §3.4.
    """
    d = len(left)
    if d == 1:
        return [x_weight * left[0] + deltas[0]]
    cores = [jnp.concatenate([left[0], deltas[0]], axis=2)]
    for u, v, g in zip(left[1:-1], right[1:-1], deltas[1:-1]):
        top = jnp.concatenate([u, g], axis=2)
        bottom = jnp.concatenate([jnp.zeros_like(v), v], axis=2)
        cores.append(jnp.concatenate([top, bottom], axis=0))
    cores.append(jnp.concatenate([x_weight * left[-1] + deltas[-1], right[-1]], axis=0))
    return cores


def line_point(xi: TangentVector, step: float | Float[Array, ""] = 1.0) -> TensorTrain:
    """The point ``X + t ξ`` on the straight line through ``X`` in the embedding space, untruncated.

    A :class:`TensorTrain` of ranks ``<= 2 r`` with cores ``[U_1 tδ_1]``,
    ``[[U_k tδ_k], [0 V_k]]``, ``[U_d + tδ_d; V_d]`` (Steinlechner 2016, §3.4);
    :func:`retract` truncates it back to ``M_r``. Differentiable in ``step`` and
    in the δ-cores, with no validation of traced values.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt import tt
        >>> X = tt.random(jax.random.key(0), (3, 4, 3), 2)
        >>> xi = project(X, tt.random(jax.random.key(1), (3, 4, 3), 2))
        >>> P = line_point(xi, 0.5)
        >>> P.ranks, bool(jnp.allclose(tt.full(P), tt.full(X) + 0.5 * tt.full(to_tt(xi)), atol=1e-5))
        ((1, 4, 4, 1), True)
    """
    _require_tangent(xi, "xi")
    return TensorTrain(_plus_cores(xi.left, xi.right, [step * g for g in xi.deltas], 1.0))


def to_tt(xi: TangentVector) -> TensorTrain:
    """The tangent vector as a :class:`TensorTrain` of ranks ``<= 2 r``.

    Cores ``[U_1 δ_1]``, ``[[U_k δ_k], [0 V_k]]``, ``[δ_d; V_d]`` (Steinlechner
    2016, §3.4); no arithmetic, ``O(d n r²)`` memory.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt import tt
        >>> X = tt.random(jax.random.key(0), (3, 4, 3), 2)
        >>> xi = project(X, tt.random(jax.random.key(1), (3, 4, 3), 2))
        >>> T = to_tt(xi)
        >>> T.ranks, bool(jnp.allclose(tt.norm(T), norm(xi), rtol=1e-4))
        ((1, 4, 4, 1), True)
    """
    _require_tangent(xi, "xi")
    return TensorTrain(_to_tt_kernel(xi.left, xi.right, xi.deltas))


@eqx.filter_jit
def _to_tt_kernel(left, right, deltas) -> list:
    return _plus_cores(left, right, deltas, 0.0)


def contract_rank1(xi: TangentVector, vectors: Sequence[Array] | Array) -> Float[Array, " N"]:
    """Batched contraction ``q_s = ⟨ξ, v_1^s ⊗ ⋯ ⊗ v_d^s⟩`` of a tangent vector with rank-one tensors.

    For a functional TT this is the directional derivative of
    ``f(x_s) = ⟨X, Φ(x_s)⟩`` along ``ξ``. One left-to-right pass over the block
    cores of :func:`to_tt` without their zero block: ``a_{k+1} = a_k U_k(v_k)``,
    ``c_{k+1} = a_k δ_k(v_k) + c_k V_k(v_k)``, ``q = c_d``; cost ``O(N d n r²)``.

    Args:
        xi: tangent vector.
        vectors: ``d`` arrays ``(N, n_k)`` (or one ``(d, N, n)`` array), or an
            integer ``(N, d)`` array of multi-indices (then ``q_s = ξ[i_s]``, the
            entries of the tangent vector, by gathers in ``O(N d r²)``).

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt import tt
        >>> X = tt.random(jax.random.key(0), (3, 4, 3), 2)
        >>> xi = project(X, tt.random(jax.random.key(1), (3, 4, 3), 2))
        >>> vecs = [jax.random.normal(jax.random.key(k), (5, n)) for k, n in enumerate(X.shape)]
        >>> bool(jnp.allclose(contract_rank1(xi, vecs), tt.contract_rank1(to_tt(xi), vecs), atol=1e-4))
        True
        >>> idx = jnp.array([[0, 1, 2], [2, 3, 0]])  # multi-indices: entries of ξ
        >>> bool(jnp.allclose(contract_rank1(xi, idx), tt.get(to_tt(xi), idx), atol=1e-5))
        True
    """
    _require_tangent(xi, "xi")
    vecs = _as_vectors(vectors)
    _check_modes(vecs, xi.shape, "vectors")
    return _contract_kernel(xi, vecs)


@eqx.filter_jit
def _contract_kernel(xi: TangentVector, vecs) -> Array:
    a = jnp.ones((vecs[0].shape[0], 1), _float_type(xi.dtype, vecs))
    c = jnp.zeros_like(a)
    for k, (u, v, g, phi) in enumerate(zip(xi.left, xi.right, xi.deltas, vecs)):
        c = absorb(a, g, phi) + (absorb(c, v, phi) if k > 0 else 0.0)
        a = absorb(a, u, phi)
    return c[:, 0]


def _combine(a: TangentVector, deltas) -> TangentVector:
    return TangentVector(a.left, a.right, deltas)


def inner(a: TangentVector, b: TangentVector) -> Float[Array, ""]:
    """Riemannian metric ``⟨ξ, η⟩ = ⟨ξ, η⟩_F = Σ_k ⟨δ_k^ξ, δ_k^η⟩``.

    Exact thanks to the gauge condition and the orthogonality of ``U`` and
    ``V`` (Steinlechner 2016, Prop. 3.3). Both vectors must live at the same
    point (:func:`check_same_point`). Cost ``O(d n r²)``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt import tt
        >>> X = tt.random(jax.random.key(0), (3, 4, 3), 2)
        >>> Z = tt.random(jax.random.key(1), (3, 4, 3), 2)
        >>> xi, eta = project(X, Z), project(X, X)  # P_X X = X and P_X is self-adjoint
        >>> bool(jnp.allclose(inner(xi, eta), tt.inner(Z, X), rtol=1e-4))
        True
    """
    check_same_point(a, b)
    return _dot(a.deltas, b.deltas)


@eqx.filter_jit
def _dot(xs, ys) -> Array:
    return sum(jnp.vdot(x, y) for x, y in zip(xs, ys))


def norm(xi: TangentVector) -> Float[Array, ""]:
    """``‖ξ‖_F = sqrt(Σ_k ‖δ_k‖²)``; cost ``O(d n r²)``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt import tt
        >>> X = tt.random(jax.random.key(0), (3, 4, 3), 2)
        >>> xi = project(X, tt.random(jax.random.key(1), (3, 4, 3), 2))
        >>> bool(jnp.allclose(norm(xi) ** 2, inner(xi, xi), rtol=1e-5))
        True
    """
    _require_tangent(xi, "xi")
    return jnp.sqrt(_dot(xi.deltas, xi.deltas))


def add(a: TangentVector, b: TangentVector) -> TangentVector:
    """``ξ + η`` of two tangent vectors at the same point (δ-cores add).

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt import tt
        >>> X = tt.random(jax.random.key(0), (3, 4, 3), 2)
        >>> Z, W = (tt.random(jax.random.key(k), (3, 4, 3), 2) for k in (1, 2))
        >>> lhs = to_tt(add(project(X, Z), project(X, W)))
        >>> rhs = to_tt(project(X, tt.add(Z, W)))  # the projection is linear
        >>> bool(jnp.allclose(tt.full(lhs), tt.full(rhs), atol=1e-4))
        True
    """
    check_same_point(a, b)
    return _combine(a, _add_cores(a.deltas, b.deltas))


@eqx.filter_jit
def _add_cores(xs, ys) -> list:
    return [x + y for x, y in zip(xs, ys)]


@eqx.filter_jit
def _scale_cores(alpha, xs) -> list:
    return [alpha * x for x in xs]


def scale(xi: TangentVector, alpha: float | Float[Array, ""]) -> TangentVector:
    """``α ξ`` (δ-cores scale).

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt import tt
        >>> X = tt.random(jax.random.key(0), (3, 4, 3), 2)
        >>> xi = project(X, tt.random(jax.random.key(1), (3, 4, 3), 2))
        >>> bool(jnp.allclose(norm(scale(xi, -3.0)), 3 * norm(xi), rtol=1e-5))
        True
    """
    _require_tangent(xi, "xi")
    alpha = jnp.asarray(alpha, xi.dtype)
    if alpha.ndim != 0:
        raise ValueError(f"alpha must be a scalar, got shape {tuple(alpha.shape)}")
    return _combine(xi, _scale_cores(alpha, xi.deltas))


# ----------------------------------------------------------------------------- retraction and transport


def _truncate(cores, ranks) -> TensorTrain:
    """TT-SVD rounding to the given per-mode ranks (right-orthogonalize, then truncated SVDs left to right)."""
    cores = list(orthogonalize(TensorTrain(cores), 0).cores)
    for k in range(len(cores) - 1):
        r, n, _ = cores[k].shape
        u, s, vt = jnp.linalg.svd(cores[k].reshape(r * n, -1), full_matrices=False)
        rank = ranks[k + 1]
        cores[k] = u[:, :rank].reshape(r, n, rank)
        cores[k + 1] = jnp.einsum("ab,bic->aic", s[:rank, None] * vt[:rank], cores[k + 1])
    return TensorTrain(cores)


def retract(X: TensorTrain, xi: TangentVector, step: float | Float[Array, ""] = 1.0) -> TensorTrain:
    """Retraction ``R_X(t ξ) = round_r(X + t ξ)``: TT-SVD back to ``X``'s ranks.

    ``X + t ξ`` has the rank-``2r`` cores ``[U_1 tδ_1]``, ``[[U_k tδ_k], [0 V_k]]``,
    ``[U_d + tδ_d; V_d]``; rounding it to ranks ``r`` is a retraction (quasi-best
    approximation, Absil & Oseledets 2015; Steinlechner 2016, §3.5):
    ``‖R_X(tξ) − (X + tξ)‖ = O(t²)``. The result is left-canonical (cores
    ``1 … d-1`` left-orthogonal) and keeps the ranks of ``X``. Cost
    ``O(d n r³)``; jit-able (ranks are static).

    Args:
        X: the base point.
        xi: a tangent vector at ``X``.
        step: ``t > 0`` (a Python or 0-d array scalar; traced values are not checked).

    Raises:
        ValueError: ``step <= 0``, ``xi`` with other ranks/shape than ``X``, or (for
            concrete arrays) ``xi`` taken at another point than ``X``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt import tt
        >>> X = tt.random(jax.random.key(0), (3, 4, 3), 2)
        >>> xi = project(X, tt.random(jax.random.key(1), (3, 4, 3), 2))
        >>> def gap(t):  # ‖R_X(tξ) − (X + tξ)‖, second order in t
        ...     return float(jnp.linalg.norm(tt.full(retract(X, xi, t)) - tt.full(line_point(xi, t))))
        >>> retract(X, xi, 0.1).ranks, gap(0.1) / gap(0.05) > 3.5
        ((1, 2, 2, 1), True)
    """
    check_instance(X, "X", TensorTrain)
    _require_tangent(xi, "xi")
    _check_matches(X, xi, "xi")
    step = _check_step(step)
    if is_concrete(X.cores[0]) and is_concrete(xi.left[0]):
        distance = float(_relative_distance(X, xi.point))
        if not distance <= _tolerance(X.dtype):
            raise ValueError(
                f"xi is a tangent vector at another point (relative distance {distance:.3g} from X); "
                "transport it to X first"
            )
    return _retract_kernel(xi, jnp.asarray(step, xi.dtype), X.ranks)


@eqx.filter_jit
def _retract_kernel(xi: TangentVector, t, ranks) -> TensorTrain:
    return _truncate(_plus_cores(xi.left, xi.right, [t * g for g in xi.deltas], 1.0), ranks)


def transport(at: TensorTrain | TangentVector, xi: TangentVector) -> TangentVector:
    """Vector transport by projection, ``T(ξ) = P_{X_new} ξ`` (Absil, Mahony, Sepulchre 2008, §8.1.3).

    Projects the rank-``2r`` train :func:`to_tt` ``(ξ)`` onto the tangent space
    at the new point; cost ``O(d n r³)``.

    Args:
        at: the new point (TensorTrain) or a tangent vector at it.
        xi: tangent vector at the old point, of the same mode sizes.

    Examples:
        >>> import jax
        >>> from jaxtt import tt
        >>> X = tt.random(jax.random.key(0), (3, 4, 3), 2)
        >>> xi = project(X, tt.random(jax.random.key(1), (3, 4, 3), 2))
        >>> Y = retract(X, xi, 0.1)
        >>> eta = transport(Y, xi)
        >>> check_tangent(Y, eta)  # passes silently: eta lives at Y
        >>> float(norm(eta)) <= float(norm(xi))  # a projection does not lengthen
        True
    """
    _require_tangent(xi, "xi")
    return project(at, to_tt(xi))
