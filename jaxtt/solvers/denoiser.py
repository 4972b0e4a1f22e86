"""Closed-form fitting of FTT denoisers on L_simple (seed 001 eqs. 5, 10, 12).

Draws regression triples ``(x_t, t, ε)`` (:func:`jaxtt.diffusion.training_triples`)
and fits ``ε_θ`` by least squares on

    Σ_s ‖ε_s − ε_θ(x_{t,s}, t_s)‖²,

the Monte Carlo estimate of L_simple, with TT-ALS or rank-adaptive DMRG sweeps.
The ``D`` outputs of an ``output="independent"`` denoiser are ``D`` scalar
regressions that share the inputs (one vmapped ALS sweep); an
``output="core"`` denoiser is one regression over the ``N·D`` pairs
``((x_t, t, j), ε_j)``.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from jaxtt._validation import check_array, check_choice, check_finite, check_int, check_real
from jaxtt.diffusion import Schedule, training_triples
from jaxtt.ftt.denoiser import FTTDenoiser
from jaxtt.ftt.functional import FTT
from jaxtt.solvers.als import fit_als
from jaxtt.solvers.dmrg import fit_dmrg
from jaxtt.solvers.riemannian import RCG, RGD, fit_ftt
from jaxtt.tt import TensorTrain

__all__ = ["fit_denoiser", "regression_data"]


def regression_data(denoiser: FTTDenoiser, x_t, t, eps):
    """FTT regression inputs and targets for a denoiser (rows expanded for an output core)."""
    v = denoiser.variables(x_t, t)
    if denoiser.output == "independent":
        return v, eps
    n, dim = eps.shape
    j = jnp.tile(jnp.arange(dim, dtype=v.dtype), n)[:, None]
    return jnp.concatenate([jnp.repeat(v, dim, axis=0), j], axis=1), eps.reshape(-1)


def _pad_ranks(tt: TensorTrain, ranks) -> TensorTrain:
    """The same tensor with ranks zero-padded up to ``ranks``."""
    cores = [
        jnp.pad(c, [(0, ranks[k] - c.shape[0]), (0, 0), (0, ranks[k + 1] - c.shape[2])]) for k, c in enumerate(tt.cores)
    ]
    return TensorTrain(cores)


def _fit_dmrg_outputs(ftt: FTT, v, y, **kwargs):
    """DMRG per output; ranks differ, so the trains are zero-padded to common ranks and stacked."""
    fitted, histories = [], []
    for j in range(y.shape[1]):
        member = FTT(jax.tree_util.tree_map(lambda c: c[j], ftt.tt), ftt.bases)
        member, h = fit_dmrg(member, v, y[:, j], **kwargs)
        fitted.append(member.tt)
        histories.append(h)
    ranks = tuple(max(r) for r in zip(*(f.ranks for f in fitted)))
    stacked = jax.tree_util.tree_map(lambda *cs: jnp.stack(cs), *[_pad_ranks(f, ranks) for f in fitted])
    history = {key: [h[key] for h in histories] for key in histories[0]}
    return FTT(stacked, ftt.bases), history


def fit_denoiser(
    denoiser: FTTDenoiser,
    x0,
    schedule: Schedule,
    key,
    *,
    method: str = "als",
    repeats: int = 8,
    sweeps: int = 6,
    reg: float = 1e-6,
    resample: bool = False,
    progress: bool = True,
    **solver_kwargs,
) -> tuple[FTTDenoiser, dict]:
    """Fit an :class:`~jaxtt.ftt.FTTDenoiser` to data ``x0`` by ALS or DMRG sweeps.

    Args:
        denoiser: the model (its cores are the starting point).
        x0: data ``(N, D)``.
        schedule: the diffusion schedule.
        key: PRNG key for the triples.
        method: ``"als"`` (fixed ranks; extra keyword arguments such as
            ``cg_maxiter`` go to :func:`fit_als`), ``"dmrg"`` (rank-adaptive;
            ``eps``, ``max_rank``, ``truncation``, ``polish`` go to
            :func:`fit_dmrg`), or
            ``"rgd"`` / ``"rcg"`` (Riemannian gradient descent / conjugate
            gradients on the fixed-rank manifold, :func:`fit_ftt`; ``sweeps`` is
            ignored there, pass ``max_iter`` instead).
        repeats: triples per data point (``N·repeats`` regression rows).
        sweeps: number of sweeps.
        reg: ridge weight ``λ`` (relative to the number of rows: the solver gets
            ``λ·N·repeats``, so the value means the same at every data size).
        resample: draw fresh triples before every sweep (one sweep per draw)
            instead of reusing one draw for all sweeps.

    Returns:
        ``(denoiser, history)``; ``history["rounds"]`` holds the solver history of
        each draw.
    """
    if not isinstance(denoiser, FTTDenoiser):
        raise TypeError(f"denoiser must be a jaxtt.ftt.FTTDenoiser, got {type(denoiser).__name__}")
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be a jaxtt.diffusion.Schedule, got {type(schedule).__name__}")
    if schedule.T != denoiser.T:
        raise ValueError(f"schedule has T = {schedule.T} but the denoiser was built for T = {denoiser.T}")
    method = check_choice(method, "method", {"als", "dmrg", "rgd", "rcg"})
    repeats = check_int(repeats, "repeats", minimum=1)
    sweeps = check_int(sweeps, "sweeps", minimum=1)
    reg = check_real(reg, "reg", minimum=0.0)
    x0 = check_array(x0, "x0", ndim=2, floating=True)
    if x0.shape[0] < 1 or x0.shape[1] != denoiser.dim:
        raise ValueError(f"x0 must have shape (N, {denoiser.dim}) with N >= 1, got {tuple(x0.shape)}")
    check_finite(x0, "x0")
    rounds = sweeps if resample else 1
    per_round = 1 if resample else sweeps
    history = {"rounds": []}
    ftt = denoiser.ftt
    for key_round in jax.random.split(key, rounds):
        x_t, t, eps = training_triples(key_round, jnp.asarray(x0, ftt.tt.dtype), schedule, repeats)
        v, y = regression_data(denoiser, x_t, t, eps)
        lam = reg * v.shape[0]
        if method == "als":
            ftt, h = fit_als(ftt, v, y, sweeps=per_round, reg=lam, progress=progress, **solver_kwargs)
        elif method in ("rgd", "rcg"):
            solver = RGD() if method == "rgd" else RCG()
            ftt, h = fit_ftt(ftt, v, y, solver=solver, reg=lam, progress=progress, **solver_kwargs)
        elif denoiser.output == "independent":
            ftt, h = _fit_dmrg_outputs(ftt, v, y, sweeps=per_round, reg=lam, progress=progress, **solver_kwargs)
        else:
            ftt, h = fit_dmrg(ftt, v, y, sweeps=per_round, reg=lam, progress=progress, **solver_kwargs)
        history["rounds"].append(h)
    return eqx.tree_at(lambda m: m.ftt, denoiser, ftt), history
