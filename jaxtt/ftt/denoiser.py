"""Vector-valued FTT denoisers ``ε_θ(x_t, t)`` for DDPM/DDIM (Ho et al. 2020; Song et al. 2021)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from jaxtt._validation import check_array, check_choice, check_domain, check_finite, check_int
from jaxtt.basis import Basis, Indicator, make_basis
from jaxtt.ftt.functional import FTT, constant_init
from jaxtt.nn.embedding import SinusoidalEmbedding
from jaxtt.tt import absorb, feasible_ranks

__all__ = ["FTTDenoiser"]


class FTTDenoiser(eqx.Module):
    """``ε_θ : R^D × {1..T} → R^D`` built from functional tensor trains.

    Time coupling (``time``):

    * ``"core"`` (default): the normalised time ``s = t/T ∈ (0, 1]`` is one more
      FTT variable with its own basis, so ``ε_θ`` is a TT function of
      ``(x_1, …, x_D, s)``.
    * ``"additive"``: ``u = x_t + t'`` with the sinusoidal embedding ``t' ∈ R^D``
      (the first ``D`` features of the :class:`jaxtt.nn.SinusoidalEmbedding` in
      the field ``embedding``, Vaswani et al. 2017), and ``ε_θ = F(u)``.

    Outputs (``output``):

    * ``"independent"`` (default): ``D`` separate scalar FTTs, stored as one TT
      whose cores carry a leading axis of size ``D``.
    * ``"core"``: one TT with an extra last mode of size ``D`` (an
      :class:`~jaxtt.basis.Indicator` basis), so all outputs share the input cores.

    Inputs are clamped to ``domain`` before the bases are evaluated, so the
    denoiser stays bounded on the far tails of ``x_T ~ N(0, I)``.

    Measured default: on the swiss roll and on Gaussian mixtures the
    ``time="core"`` coupling fits ``ε*`` far better than the additive one, whose
    sinusoid of the integer step aliases (``sin(t)`` for integer ``t`` is
    essentially a pseudo-random sign); see ``benchmarks/study_ftt_vs_nn.py``.

    The module is batched: ``model(x, t)`` takes ``x`` of shape ``(N, D)`` and
    integer (or real) ``t`` of shape ``(N,)`` and returns ``(N, D)``. With
    ``time="core"``, ``T = 1`` and real ``t`` in ``[0, 1]`` it is a functional TT
    of ``(x, s)`` with a continuous time: the velocity model of rectified flow
    (:mod:`jaxtt.diffusion.flow_matching`).

    Args:
        dim: data dimension ``D``.
        T: number of diffusion steps.
        rank: TT rank (capped by :func:`jaxtt.tt.feasible_ranks`).
        m: basis functions per variable.
        basis: basis family name (:func:`jaxtt.basis.make_basis`).
        domain: input interval of the bases; inputs are clamped to it.
        time, time_m, output: time coupling, basis size of the time variable
            (default ``m``) and output layout, see above.
        noise: perturbation of the constant-function start (:func:`jaxtt.ftt.constant_init`).
        dtype: floating dtype (default: float64 under ``jax_enable_x64``, else float32).
        key: PRNG key of the initial perturbation.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> model = FTTDenoiser(2, 100, rank=3, m=6, key=jax.random.key(0))
        >>> model(jnp.zeros((5, 2)), jnp.full(5, 10)).shape
        (5, 2)
    """

    ftt: FTT
    embedding: SinusoidalEmbedding | None
    T: int = eqx.field(static=True)
    time: str = eqx.field(static=True)
    output: str = eqx.field(static=True)

    def __init__(
        self,
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
        dtype=None,
        key: PRNGKeyArray,
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
            tt = jax.vmap(lambda k: constant_init(bases, ranks, noise=noise, dtype=dtype, key=k))(keys)
        else:
            tt = constant_init(bases, ranks, noise=noise, dtype=dtype, key=key)
        self.ftt = FTT(tt, bases)
        self.embedding = (SinusoidalEmbedding(max(4, dim + dim % 2), scale=float(max(self.T, 2)))
                          if self.time == "additive" else None)

    @property
    def dim(self) -> int:
        """Data dimension ``D``."""
        return self.ftt.ndim - (self.time == "core") - (self.output == "core")

    @property
    def input_bases(self) -> tuple[Basis, ...]:
        """Bases of the FTT variables built from ``(x_t, t)`` (without the output mode)."""
        return self.ftt.bases[: len(self.ftt.bases) - (self.output == "core")]

    def variables(self, x: Float[Array, "N D"], t) -> Float[Array, "N d"]:
        """The FTT input variables: ``[clip(x), t/T]`` or ``clip(x + t')``."""
        x = jnp.asarray(x)
        t = jnp.asarray(t)
        if self.time == "core":
            s = (t.astype(x.dtype) / self.T)[:, None]
            v = jnp.concatenate([x, s], axis=1)
        else:
            v = x + jax.vmap(self.embedding)(t.astype(x.dtype))[:, : self.dim]
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
            return self.ftt(v)
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

