"""Functional tensor trains ``f(x) = ⟨A, Φ(x)⟩`` and their constant-function initialisation."""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from jaxtt._validation import check_array, check_finite, check_key, check_real, check_sequence
from jaxtt.basis import Basis, Indicator
from jaxtt.tt import TensorTrain, absorb, contract_rank1, default_float, interfaces, zeros

__all__ = ["FTT", "constant_init"]


class FTT(eqx.Module):
    """A functional tensor train.

    .. math::
        f(x) = \\sum_{i_1, …, i_d} G_1[:, i_1, :] ⋯ G_d[:, i_d, :]\\,
               φ_1(x_1)_{i_1} ⋯ φ_d(x_d)_{i_d} = ⟨A, φ_1(x_1) ⊗ ⋯ ⊗ φ_d(x_d)⟩

    (Gorodetsky, Karaman, Marzouk 2019, "A continuous analogue of the tensor-train
    decomposition"). Evaluation is :func:`jaxtt.tt.contract_rank1` of the cores
    with the feature vectors: ``O(N d m r²)``.

    The cores may carry leading batch axes (a batch of FTTs sharing the bases,
    e.g. the ``D`` outputs of a denoiser); ``__call__`` then maps over them and
    returns ``(N, *batch)``, samples first like the targets of a fit.

    Args:
        tt: coefficient tensor ``A`` with mode sizes ``n_k = bases[k].m``.
        bases: one 1-D :class:`~jaxtt.basis.Basis` per variable.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxtt.basis import Legendre
        >>> from jaxtt.tt import rank_one
        >>> xi = jnp.array([0.0, 1.0])  # coefficients of P_1(x) = x
        >>> f = FTT(rank_one([xi, xi]), [Legendre(2)] * 2)  # f(x) = x_1 x_2
        >>> x = jnp.array([[0.5, -0.4]])
        >>> round(float(f(x)[0]), 4), [round(float(v), 4) for v in f.grad(x)[0]]
        (-0.2, [-0.4, 0.5])
    """

    tt: TensorTrain
    bases: tuple[Basis, ...]

    def __init__(self, tt: TensorTrain, bases: Sequence[Basis]):
        if not isinstance(tt, TensorTrain):
            raise TypeError(f"tt must be a TensorTrain, got {type(tt).__name__}")
        bases = check_sequence(bases, "bases", "jaxtt.basis.Basis objects, one per variable")
        if len(bases) != tt.ndim:
            raise ValueError(f"bases must hold one basis per mode: {tt.ndim} expected, got {len(bases)}")
        for k, (b, n) in enumerate(zip(bases, tt.shape)):
            if not isinstance(b, Basis):
                raise TypeError(f"bases[{k}] must be a jaxtt.basis.Basis, got {type(b).__name__}")
            if b.m != n:
                raise ValueError(f"bases[{k}] has m = {b.m} functions but mode {k} of tt has size {n}")
        self.tt = tt
        self.bases = bases

    @property
    def ndim(self) -> int:
        """Number of input variables ``d``."""
        return len(self.bases)

    def check_inputs(self, x, name: str = "x") -> Float[Array, "N d"]:
        """Validate a batch of points ``(N, d)`` and return it as a floating array."""
        x = check_array(x, name, ndim=2)
        if x.shape[1] != self.ndim:
            raise ValueError(f"{name} must have shape (N, {self.ndim}), got {tuple(x.shape)}")
        check_finite(x, name)
        x = jnp.asarray(x)
        return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(self.tt.dtype)

    def features(self, x: Float[Array, "N d"]) -> list[Float[Array, "N m"]]:
        """Feature vectors ``φ_k(x_{:, k})``, one ``(N, m_k)`` array per variable."""
        return [basis(x[:, k]).astype(self.tt.dtype) for k, basis in enumerate(self.bases)]

    def __call__(self, x: Float[Array, "N d"]) -> Float[Array, "N *batch"]:
        """``f(x_s)`` for each row ``x_s`` of ``x``, shape ``(N, *batch)``.

        Examples:
            >>> import jax, jax.numpy as jnp
            >>> from jaxtt.basis import Legendre
            >>> bases = [Legendre(3)] * 2
            >>> f = FTT(constant_init(bases, 2, noise=0.0, key=jax.random.key(0)), bases)
            >>> [round(v, 6) for v in f(jnp.array([[0.1, -0.5], [0.7, 0.2]])).tolist()]
            [1.0, 1.0]
        """
        feats = self.features(self.check_inputs(x))
        return _map_batch(lambda t: contract_rank1(t, feats), self.tt)

    def grad(self, x: Float[Array, "N d"]) -> Float[Array, "N *batch d"]:
        """Gradient ``∇_x f(x_s)`` for each row, shape ``(N, *batch, d)``, from the basis derivatives.

        ``∂f/∂x_k = L_{k-1} G_k(φ_k'(x_k)) R_{k+1}`` with left/right interface
        vectors, so all ``d`` partial derivatives cost ``O(N d m r²)``.
        """
        x = self.check_inputs(x)
        feats = self.features(x)
        derivs = [basis.derivative(x[:, k]).astype(self.tt.dtype) for k, basis in enumerate(self.bases)]

        def one(tt: TensorTrain):
            lefts, rights = interfaces(tt, feats)
            cols = [
                jnp.einsum("nb,nb->n", absorb(lefts[k], core, dk), rights[k + 1])
                for k, (core, dk) in enumerate(zip(tt.cores, derivs))
            ]
            return jnp.stack(cols, axis=-1)

        return _map_batch(one, self.tt)


def _map_batch(fn, tt: TensorTrain):
    """Apply ``fn`` (whose output leads with the samples) to each member of a (possibly batched) TT."""
    for _ in tt.batch_shape:
        fn = jax.vmap(fn, out_axes=1)
    return fn(tt)


def constant_coefficients(basis: Basis) -> np.ndarray:
    """Coefficients ``w`` with ``Σ_i w_i φ_i(x) = 1`` (least squares on a fine grid of the domain)."""
    if isinstance(basis, Indicator):
        return np.ones(basis.m)
    a, b = basis.domain
    grid = np.linspace(a, b, 4 * basis.m + 16)
    phi = np.asarray(basis(jnp.asarray(grid, default_float())))
    w, *_ = np.linalg.lstsq(phi.astype(np.float64), np.ones_like(grid), rcond=None)
    return w


def constant_init(bases, ranks, *, noise: float = 1e-2, dtype=None, key: PRNGKeyArray) -> TensorTrain:
    """Coefficient train of the constant function 1 plus i.i.d. ``N(0, noise²)`` perturbations.

    Core ``k`` holds the coefficients of the constant function in basis ``k``
    on the rank-(0, 0) channel. ALS started here converges where a random
    start stalls: a random TT of unit-scale cores has interface vectors that are
    nearly orthogonal to the data, so the first local problems are badly
    conditioned (from a random start the sweeps stall at ``d >= 8``; see
    :mod:`jaxtt.solvers.als`).

    Args:
        bases: one basis per variable (mode sizes ``bases[k].m``).
        ranks: int, ``d - 1`` interior ranks or all ``d + 1`` ranks.
        noise: standard deviation of the perturbation (``>= 0``).
        dtype: floating dtype (default: float64 under ``jax_enable_x64``, else float32).
        key: PRNG key of the perturbation.

    Examples:
        >>> import jax
        >>> from jaxtt.basis import Legendre
        >>> constant_init([Legendre(3)] * 3, 2, key=jax.random.key(0)).ranks
        (1, 2, 2, 1)
    """
    key = check_key(key)
    noise = check_real(noise, "noise", minimum=0.0)
    dtype = default_float(dtype)
    bases = check_sequence(bases, "bases", "jaxtt.basis.Basis objects, one per variable")
    for k, basis in enumerate(bases):
        if not isinstance(basis, Basis):
            raise TypeError(f"bases[{k}] must be a jaxtt.basis.Basis, got {type(basis).__name__}")
    shape = [b.m for b in bases]
    ranks = zeros(shape, ranks, dtype=dtype).ranks  # checks the ranks and that the cores fit in memory
    keys = jax.random.split(key, len(bases))
    cores = []
    for k, (basis, kk) in enumerate(zip(bases, keys)):
        core = noise * jax.random.normal(kk, (ranks[k], basis.m, ranks[k + 1]), dtype)
        cores.append(core.at[0, :, 0].add(jnp.asarray(constant_coefficients(basis), dtype)))
    return TensorTrain(cores)
