"""Vector-valued FTT denoisers ``ε_θ(x_t, t)`` (seed 001 §4.1, eqs. 7, 8 and 12)."""

from __future__ import annotations


import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from jaxtt._validation import check_array, check_choice, check_domain, check_finite, check_int, check_real
from jaxtt.basis import Basis, BSpline, Chebyshev, Fourier, Legendre
from jaxtt.basis import Indicator
from jaxtt.ftt.functional import FTT
from jaxtt.nn.embedding import SinusoidalEmbedding
from jaxtt.tt import TensorTrain, absorb, expand_ranks, feasible_ranks

__all__ = ["FTTDenoiser", "constant_init", "make_basis"]

BASES = {"legendre": Legendre, "bspline": BSpline, "chebyshev": Chebyshev, "fourier": Fourier}


def make_basis(name: str, m: int, domain) -> Basis:
    """A basis family by name (``legendre``, ``bspline``, ``chebyshev``, ``fourier``)."""
    check_choice(name, "basis", BASES)
    return BASES[name](m, domain=domain)


def constant_coefficients(basis: Basis) -> np.ndarray:
    """Coefficients ``w`` with ``Σ_i w_i φ_i(x) = 1`` (least squares on a fine grid)."""
    if isinstance(basis, Indicator):
        return np.ones(basis.m)
    a, b = basis.domain
    grid = np.linspace(a, b, 4 * basis.m + 16)
    phi = np.asarray(basis(jnp.asarray(grid, jnp.float64 if jax.config.jax_enable_x64 else jnp.float32)))
    w, *_ = np.linalg.lstsq(phi.astype(np.float64), np.ones_like(grid), rcond=None)
    return w


def constant_init(
    key: PRNGKeyArray, bases, ranks, *, noise: float = 1e-2, dtype=jnp.float32
) -> TensorTrain:
    """TT of the constant function 1 plus i.i.d. ``N(0, noise²)`` perturbations.

    Core ``k`` holds the coefficients of the constant function in basis ``k``
    on the rank-(0, 0) channel. ALS started here converges where a random
    start stalls (a random TT of unit-scale cores has interfaces that are
    nearly orthogonal to the data; see DESIGN.md, known numerical facts).
    """
    noise = check_real(noise, "noise", minimum=0.0)
    shape = [b.m for b in bases]
    ranks = expand_ranks(shape, ranks)
    keys = jax.random.split(key, len(bases))
    cores = []
    for k, (basis, kk) in enumerate(zip(bases, keys)):
        core = noise * jax.random.normal(kk, (ranks[k], basis.m, ranks[k + 1]), dtype)
        cores.append(core.at[0, :, 0].add(jnp.asarray(constant_coefficients(basis), dtype)))
    return TensorTrain(cores)


class FTTDenoiser(eqx.Module):
    """``ε_θ : R^D × {1..T} → R^D`` built from functional tensor trains.

    Time coupling (``time``):

    * ``"core"`` (default): the normalised time ``s = t/T ∈ (0, 1]`` is one more
      FTT variable with its own basis, so ``ε_θ`` is a TT function of
      ``(x_1, …, x_D, s)``.
    * ``"additive"``: seed 001 eq. (12a), ``u = x_t + t'`` with the sinusoidal
      embedding ``t' ∈ R^D`` (the first ``D`` features of
      :class:`jaxtt.nn.SinusoidalEmbedding`), and ``ε_θ = F(u)`` (eq. 12b–d).

    Outputs (``output``):

    * ``"independent"`` (default): ``D`` separate scalar FTTs (seed 001 eqs. 7–8),
      stored as one TT whose cores carry a leading axis of size ``D``.
    * ``"core"``: one TT with an extra last mode of size ``D`` (an
      :class:`~jaxtt.basis.Indicator` basis), so all outputs share the input cores.

    Inputs are clamped to ``domain`` before the bases are evaluated, so the
    denoiser stays bounded on the far tails of ``x_T ~ N(0, I)``.

    Measured default: on the swiss roll and on Gaussian mixtures the
    ``time="core"`` coupling fits ``ε*`` far better than the additive one, whose
    sinusoid of the integer step aliases (``sin(t)`` for integer ``t`` is
    essentially a pseudo-random sign); see ``benchmarks/study_ftt_vs_nn.py``.

    The module is batched: ``model(x, t)`` takes ``x`` of shape ``(N, D)`` and
    integer (or real) ``t`` of shape ``(N,)`` and returns ``(N, D)``.
    """

    ftt: FTT
    T: int = eqx.field(static=True)
    time: str = eqx.field(static=True)
    output: str = eqx.field(static=True)

    def __init__(
        self,
        key: PRNGKeyArray,
        dim: int,
        T: int,
        *,
        rank: int = 4,
        m: int = 8,
        basis: str = "legendre",
        domain=(-4.0, 4.0),
        time: str = "core",
        time_m: int | None = None,
        output: str = "independent",
        noise: float = 1e-2,
        dtype=jnp.float32,
    ):
        dim = check_int(dim, "dim", minimum=1)
        self.T = check_int(T, "T", minimum=1)
        rank = check_int(rank, "rank", minimum=1)
        m = check_int(m, "m", minimum=1)
        self.time = check_choice(time, "time", {"core", "additive"})
        self.output = check_choice(output, "output", {"independent", "core"})
        domain = check_domain(domain)
        bases = [make_basis(basis, m, domain) for _ in range(dim)]
        if self.time == "core":
            bases.append(make_basis(basis, check_int(time_m or m, "time_m", minimum=1), (0.0, 1.0)))
        if self.output == "core":
            bases.append(Indicator(dim))
        ranks = feasible_ranks([b.m for b in bases], rank)
        if self.output == "independent":
            keys = jax.random.split(key, dim)
            tt = jax.vmap(lambda k: constant_init(k, bases, ranks, noise=noise, dtype=dtype))(keys)
        else:
            tt = constant_init(key, bases, ranks, noise=noise, dtype=dtype)
        self.ftt = FTT(tt, bases)

    @property
    def dim(self) -> int:
        """Data dimension ``D``."""
        return self.ftt.ndim - (self.time == "core") - (self.output == "core")

    @property
    def input_bases(self) -> tuple[Basis, ...]:
        """Bases of the FTT variables built from ``(x_t, t)`` (without the output mode)."""
        return self.ftt.bases[: len(self.ftt.bases) - (self.output == "core")]

    def variables(self, x: Float[Array, "N D"], t) -> Float[Array, "N d"]:
        """The FTT input variables: ``[clip(x), t/T]`` or ``clip(x + t')`` (eq. 12a)."""
        x = jnp.asarray(x)
        t = jnp.asarray(t)
        if self.time == "core":
            s = (t.astype(x.dtype) / self.T)[:, None]
            v = jnp.concatenate([x, s], axis=1)
        else:
            emb = SinusoidalEmbedding(max(4, self.dim + self.dim % 2), scale=float(max(self.T, 2)))
            v = x + jax.vmap(emb)(t.astype(x.dtype))[:, : self.dim]
        lo = jnp.asarray([b.domain[0] for b in self.input_bases], x.dtype)
        hi = jnp.asarray([b.domain[1] for b in self.input_bases], x.dtype)
        return jnp.clip(v, lo, hi)

    def check_inputs(self, x, t) -> tuple[Array, Array]:
        """Validate a batch ``x (N, D)``, ``t (N,)``; raise naming the argument."""
        x = check_array(x, "x", ndim=2, floating=True)
        if x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (N, {self.dim}), got {tuple(x.shape)}")
        check_finite(x, "x")
        t = check_array(t, "t", ndim=1)
        if t.shape[0] != x.shape[0]:
            raise ValueError(f"t must have shape ({x.shape[0]},) to match x, got {tuple(t.shape)}")
        return x, t

    def __call__(self, x: Float[Array, "N D"], t: Int[Array, " N"]) -> Float[Array, "N D"]:
        x, t = self.check_inputs(x, t)
        v = self.variables(x, t)
        if self.output == "independent":
            return self.ftt(v).T
        cores = self.ftt.tt.cores
        feats = [b(v[:, k]).astype(cores[0].dtype) for k, b in enumerate(self.input_bases)]
        left = jnp.ones((v.shape[0], 1), cores[0].dtype)
        for core, f in zip(cores[:-1], feats):
            left = absorb(left, core, f)
        return left @ cores[-1][:, :, 0]

    @property
    def num_params(self) -> int:
        """Number of trained parameters."""
        return int(sum(np.prod(c.shape) for c in self.ftt.tt.cores))

