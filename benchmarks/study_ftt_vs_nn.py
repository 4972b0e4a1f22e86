"""The FTT-vs-NN study (v2): closed-form functional tensor-train denoisers against the ResNet-MLP up to D = 16.

Run (quick mode: 7 problems, 45 minutes measured at load average 7-8 on a shared 2-core CPU)::

    .venv/bin/python benchmarks/study_ftt_vs_nn.py --quick

or the full study (11 problems, three rungs per variant, v1's swiss-roll optimizer and design comparison) without
``--quick``. The full mode needs several hours on a shared 2-core CPU (the third rungs fit up to 320,000 rows), so
a run saves its state after each problem (``benchmarks/results/study_{quick,full}.partial.json`` and ``.npz``) and
``--resume`` continues an interrupted run of the same settings from there, skipping the problems it finished; the
checkpoint is removed once the study is written. (Three full runs hung in the third rungs of the 8-D mixture
with every XLA CPU thread idle: jaxlib's batched LAPACK QR kernels, vmapped over the FTT's eight outputs, had
split their batches over XLA's thread pool and blocked its two threads waiting for each other's pieces, with or
without ``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false``. The sweeps now factor one matrix at a time,
:mod:`jaxtt._linalg`; the checkpoint records the load and the flags each problem ran with.) Writes
``benchmarks/results/study_{quick,full}.json``, ``study_{quick,full}_*.png`` (time to quality per problem, sample
scatter plots; in full mode also the swiss-roll design sweep and loss landscapes) and ``benchmarks/results/STUDY.md``
(the summary tables of every study JSON present).

Workload (the same for every arm): ``N_train = 10,000`` training points (1197 for the digits), the linear schedule
with ``T = 1000`` (Ho et al. 2020), float32. Problems (both modes):

- ``swiss_roll``: the standardised 2-D swiss roll (:mod:`jaxtt.data`);
- ``gmm8``, ``gmm16``: Gaussian mixtures in ``D = 8, 16`` (6 components, means uniform in ``[-2, 2]^D``,
  covariances ``A Aᵀ + 0.05 I``), whose optimal noise prediction ``eps*`` is exact
  (:class:`jaxtt.data.GaussianMixture`);
- ``gmm8rot``: a rotated anisotropic 8-D mixture: 6 components whose covariance eigenvalues run geometrically from
  1.0 to 0.02, each turned by its own random rotation (no component is aligned with the axes), exact ``eps*``;
- ``manifold8``: the swiss roll plus ``N(0, 0.05²)`` in six more coordinates, turned by one random rotation of R^8;
- ``digits_pca8``, ``digits_pca16``: scikit-learn's 8x8 digits on their first 8 / 16 principal axes, divided by
  one scalar (1197 training, 300 held-out, 300 reference digits).

The full mode adds the v1 problems ``eight_gaussians``, ``checkerboard``, ``gmm2`` and ``gmm4``, and on the swiss
roll v1's optimizer and design comparison (Cholesky ALS design points, DMRG, AdamW on the FTT, Riemannian CG) and
the loss landscapes.

Arms (on every problem):

- NN: ``Batched(ResNetMLP(D, width 128, depth 3))`` trained by :func:`jaxtt.train.fit` with the default AdamW
  (warm-up + cosine decay, peak lr 1e-3), batch 256, EMA 0.999; sampled with the EMA weights. Its quality is
  recorded along the run (resumed from checkpoints, same optimizer and compilation): its time-to-quality curve.
- FTT variants: :class:`jaxtt.ftt.FTTDenoiser` (``time="core"``, Legendre basis) fitted in closed form by
  :func:`jaxtt.solvers.fit_denoiser` with ``ALS(cg_maxiter=8)`` (8 Kronecker-preconditioned CGLS steps per core),
  each as a ladder of budgets (rank, basis size, triples per point, sweeps; the rungs depend on D):

  - ``sampled``: regression on the drawn noise ``eps`` (Monte Carlo L_simple, v1's FTT);
  - ``EB``: regression on the empirical-Bayes target ``E[eps | x_t]`` under the training set (the "stable target
    field" of Xu et al. 2023, :func:`jaxtt.diffusion.empirical_bayes_eps`);
  - ``EB x4 draws``: the same with four times as many triples per data point;
  - ``EB v``: empirical-Bayes targets, the FTT represents ``v = sqrt(ᾱ) eps − sqrt(1 − ᾱ) x0`` (Salimans & Ho
    2022; ``prediction="v"``), the model still returns ``eps``;
  - ``EB whitened`` (on ``gmm8rot``, ``manifold8`` and the digits only): empirical-Bayes targets, inputs in the
    data's principal axes with each noised marginal at unit variance (:class:`jaxtt.ftt.Whitening`, fitted on
    the training set inside the timed fit).

Quality: MMD² (:func:`jaxtt.metrics.mmd`) and sliced W2 (:func:`jaxtt.metrics.sliced_wasserstein`) of
``n_eval = 2000`` deterministic DDIM samples (100 steps, ``eta = 0``) against 2000 fresh data points (the 300
held-out digits for the digits); the share of "outliers" (samples farther out than 1.5x the largest test-point
norm) and, as a diagnostic, the sliced W2 without them; MMD² and SW of the same DDIM samples (same initial noise)
drawn with ``clip_x0`` (the predicted x̂0 clipped to the training data's range widened by 5 %, applied to every
arm: both arms equally clipped); the held-out L_simple (fixed noise and steps); for the mixtures the relative
error to the exact ``eps*`` (:func:`jaxtt.metrics.eps_error`, mean over its default steps and at t = 10, 100,
500) and the excess L_simple over the exact optimum (``E‖eps_θ − eps*‖²/D`` on the same draws), which ranks
models better than the mean relative error (dominated by t near T, where ``|eps*|`` is small). The data-vs-data
value of each metric (two independent data samples) is reported as its noise floor.

Headline: "within 10 % of the NN" means MMD² and SW both within 10 % of the NN's final values
(``value <= target + 0.1·|target|``, lower is better; the unbiased MMD² can be negative), evaluated both on the
clipped samples of both arms (the goal's criterion) and on the unclipped ones. Per problem the FTT rungs of all
variants are searched in order of training time; the first one within 10 % gives the time ratio FTT/NN (the
NN's full training time). The goal: a ratio <= 0.1 on ``swiss_roll``, ``gmm8``, ``gmm16`` and ``digits_pca8``;
any rung within 10 % on ``digits_pca16`` and ``gmm8rot``; ``manifold8`` and the full mode's v1 problems are
reported without a goal. Where no rung reaches, the closest rung (smallest worst relative gap of the two
metrics) is reported with its gaps.

Cost: training wall time of a cold start, compilation included: every NN run and every FTT fit begins with
``jax.clear_caches()``, so none reuses a program an earlier arm compiled (a user's first fit; a fit repeated in
one process is faster by its compilation, which the "compute" time estimates); the empirical-Bayes targets and
the whitening are computed inside the timed fit; the compilation is estimated (the first sweep's excess over the
median sweep, which misses the compilation outside the sweeps) and subtracted as "compute" time; parameter
counts; FLOPs per eps evaluation, counted analytically (the reference) and by XLA's ``cost_analysis`` of the jitted model on a batch (per sample; XLA counts
the body of a ``lax.scan`` once, so for FTTs whose interior cores are scanned, ``D >= 4`` here, its count is a
lower bound); memory from XLA's ``memory_analysis`` of the compiled training program (one AdamW step at batch
256, or one ALS sweep over all regression rows): arguments + outputs + temporaries - aliased bytes.

Loss landscapes (full mode): L_simple on a fixed batch with fixed noise and steps, on a 2-D plane through the
trained weights spanned by two random directions with filter normalisation (Li et al. 2018, "Visualizing the Loss
Landscape of Neural Nets", §4): each row of a weight matrix (a neuron) and each TT core (per output) of the
direction is rescaled to the norm of the corresponding weights; biases and LayerNorm parameters get zero
directions.

The machine is shared and timings are noisy: the load average is recorded at the start and the end. To see what
compilation adds to one rung, ``--time-rung PROBLEM VARIANT RUNG`` (with ``--quick`` for the quick ladders) fits
it twice in a fresh process and prints the cold and the warm wall time.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import optax
from tqdm.auto import tqdm

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from jaxtt.data import GaussianMixture, digits, toy_dataset  # noqa: E402
from jaxtt.diffusion import ddim_sample, ddpm_loss, linear_schedule, training_triples  # noqa: E402
from jaxtt.ftt import FTTDenoiser, Whitening  # noqa: E402
from jaxtt.metrics import eps_error, mmd, sliced_wasserstein  # noqa: E402
from jaxtt.nn import Batched, ResNetMLP  # noqa: E402
from jaxtt.solvers import ALS, DMRG, RCG, als_sweep, fit_denoiser, regression_data  # noqa: E402
from jaxtt.solvers import fit as fit_ftt  # noqa: E402
from jaxtt.solvers.als import local_plans  # noqa: E402
from jaxtt.train import default_optimizer, fit  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
TOLERANCE = 1.1
NN_WIDTH, NN_DEPTH, NN_BATCH, NN_LR = 128, 3, 256, 1e-3
FTT_ADAM_LR = 1e-2
DEFAULT_REG = 1e-6
REPEAT_LIMIT_S = 20.0
TIMING_KEYS = ("steps", "train_s", "compile_s", "compute_s", "train_loss")
EPS_ERROR_STEPS = (10, 100, 500)
# The goal per problem: the largest time ratio FTT/NN allowed (None: any budget); problems not listed have none.
GOAL_RATIO = {"swiss_roll": 0.1, "gmm8": 0.1, "gmm16": 0.1, "digits_pca8": 0.1, "digits_pca16": None,
              "gmm8rot": None}
WHITEN_PROBLEMS = ("gmm8rot", "manifold8", "digits_pca8", "digits_pca16")
# FTT variants: overrides of a rung's configuration (``repeats_factor`` multiplies its triples per point).
VARIANTS = {
    "sampled": {},
    "EB": {"targets": "empirical_bayes"},
    "EB x4 draws": {"targets": "empirical_bayes", "repeats_factor": 4},
    "EB v": {"targets": "empirical_bayes", "prediction": "v"},
    "EB whitened": {"targets": "empirical_bayes", "whiten": True},
}


# --------------------------------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Settings:
    """Budgets of one study mode. FTT configurations are dicts made by :func:`_cfg`; ``rungs`` maps ``D`` to the
    budget ladder every FTT variant climbs."""

    mode: str
    problems: tuple[str, ...]
    nn_steps: int
    nn_curve: tuple[int, ...]
    rungs: dict
    design: tuple[dict, ...]
    dmrg: tuple[dict, ...]
    adam_curve: tuple[int, ...]
    rcg_iters: tuple[int, ...]
    landscape_n: int
    timing_repeats: int
    cost_problems: tuple[str, ...]
    n_train: int = 10_000
    n_eval: int = 2000
    ddim_steps: int = 100
    T: int = 1000
    eps_error_n: int = 1000
    gmm_components: int = 6
    seed: int = 0


def _cfg(rank, m, repeats, sweeps, **kw):
    return dict(rank=rank, m=m, repeats=repeats, sweeps=sweeps, basis="legendre", time="core") | kw


def _rung(rank, m, repeats, sweeps):
    return _cfg(rank, m, repeats, sweeps, cg_maxiter=8)


SWISS_REFERENCE = _cfg(8, 12, 2, 2)  # v1's swiss-roll default (Cholesky ALS), the reference of the design sweep
V2_PROBLEMS = ("swiss_roll", "gmm8", "gmm16", "gmm8rot", "manifold8", "digits_pca8", "digits_pca16")


def settings_for(quick: bool) -> Settings:
    """The budgets of ``--quick`` and of the full study.

    The NN budget: on the swiss roll, 3000 AdamW steps at batch 256 leave the ResNet-MLP visibly under-trained
    (blurred spiral, MMD² 5e-3), 10,000 steps resolve it (MMD² 8e-4, SW 0.06) and 20,000 add little, so every NN
    gets 10,000 steps in both modes, its quality recorded along the way.
    """
    if quick:
        return Settings(
            mode="quick",
            problems=V2_PROBLEMS,
            nn_steps=10_000,
            nn_curve=(1000, 2500, 5000, 10_000),
            rungs={2: (_rung(8, 12, 2, 2), _rung(8, 16, 4, 3)),
                   8: (_rung(4, 8, 2, 2), _rung(8, 8, 4, 3)),
                   16: (_rung(4, 6, 2, 2), _rung(6, 8, 2, 3))},
            design=(),
            dmrg=(),
            adam_curve=(),
            rcg_iters=(),
            landscape_n=0,
            timing_repeats=1,
            cost_problems=("swiss_roll", "gmm8"),
        )
    return Settings(
        mode="full",
        problems=V2_PROBLEMS + ("eight_gaussians", "checkerboard", "gmm2", "gmm4"),
        nn_steps=10_000,
        nn_curve=(500, 1000, 2000, 4000, 7000, 10_000),
        rungs={2: (_rung(4, 8, 1, 1), _rung(8, 12, 2, 2), _rung(8, 16, 4, 4)),
               4: (_rung(4, 8, 2, 2), _rung(8, 8, 4, 4), _rung(8, 12, 8, 4)),
               8: (_rung(4, 8, 2, 2), _rung(8, 8, 4, 4), _rung(12, 10, 8, 4)),
               16: (_rung(4, 6, 2, 2), _rung(8, 8, 4, 3), _rung(12, 8, 8, 4))},
        design=(
            SWISS_REFERENCE,
            _cfg(8, 12, 2, 2, basis="bspline"),
            _cfg(8, 24, 2, 2, basis="bspline"),
            _cfg(8, 12, 2, 2, time="additive"),
            _cfg(2, 16, 2, 2),
            _cfg(12, 16, 2, 2),
            _cfg(8, 4, 2, 2),
            _cfg(8, 32, 2, 2),
            _cfg(8, 12, 2, 2, reg=1e-4),
            _cfg(8, 12, 2, 2, reg=1e-2),
        ),
        dmrg=(_cfg(8, 12, 2, 2), _cfg(8, 12, 2, 4)),
        adam_curve=(1000, 5000, 20_000),
        rcg_iters=(20, 60),
        landscape_n=25,
        timing_repeats=2,
        cost_problems=V2_PROBLEMS,
    )


def variant_config(variant: str, rung: dict) -> dict:
    """A rung's configuration with a variant's overrides applied."""
    overrides = dict(VARIANTS[variant])
    factor = overrides.pop("repeats_factor", 1)
    return dict(rung, repeats=rung["repeats"] * factor, **overrides)


def variants_for(problem: str) -> tuple[str, ...]:
    return tuple(v for v in VARIANTS if v != "EB whitened" or problem in WHITEN_PROBLEMS)


# --------------------------------------------------------------------------------------------------- problems


@dataclass
class Problem:
    """A training set, a held-out set and (for mixtures) the exact distribution."""

    name: str
    x: jax.Array
    x_test: jax.Array
    x_ref: jax.Array
    mixture: GaussianMixture | None

    @property
    def dim(self) -> int:
        return self.x.shape[1]


def dim_of(name: str) -> int:
    """The dimension of a named problem."""
    if name.startswith("digits_pca"):
        return int(name[len("digits_pca"):])
    if name.startswith("gmm"):
        return int(name[3:].removesuffix("rot"))
    return 8 if name == "manifold8" else 2


def random_mixture(key, dim: int, k: int) -> GaussianMixture:
    """``k`` components, means uniform in ``[-2, 2]^D``, covariances ``A Aᵀ + 0.05 I`` with ``A_ij ~ N(0, 0.3²/D)``."""
    k_w, k_mu, k_a = jax.random.split(key, 3)
    weights = jax.random.uniform(k_w, (k,), minval=0.5, maxval=1.5)
    means = jax.random.uniform(k_mu, (k, dim), minval=-2.0, maxval=2.0)
    a = 0.3 / math.sqrt(dim) * jax.random.normal(k_a, (k, dim, dim))
    covs = a @ jnp.swapaxes(a, 1, 2) + 0.05 * jnp.eye(dim)
    return GaussianMixture(weights, means, covs)


def rotated_anisotropic_mixture(key, dim: int, k: int, largest: float = 1.0, smallest: float = 0.02
                                ) -> GaussianMixture:
    """``k`` components, means uniform in ``[-2, 2]^D``, covariances ``Q_k diag(λ) Q_kᵀ`` with eigenvalues ``λ``
    running geometrically from ``largest`` to ``smallest`` and an independent random rotation ``Q_k`` per
    component (the Q factor of a Gaussian matrix): strongly elongated components aligned with no axis."""
    k_w, k_mu, k_q = jax.random.split(key, 3)
    weights = jax.random.uniform(k_w, (k,), minval=0.5, maxval=1.5)
    means = jax.random.uniform(k_mu, (k, dim), minval=-2.0, maxval=2.0)
    rotations = jnp.linalg.qr(jax.random.normal(k_q, (k, dim, dim)))[0]
    eigenvalues = jnp.geomspace(largest, smallest, dim)
    covs = rotations @ (eigenvalues[:, None] * jnp.swapaxes(rotations, 1, 2))
    return GaussianMixture(weights, means, 0.5 * (covs + jnp.swapaxes(covs, 1, 2)))


def embedded_swiss_roll(key, n: int, dim: int = 8, noise: float = 0.05) -> jax.Array:
    """The swiss roll plus ``N(0, noise²)`` in ``dim − 2`` extra coordinates, turned by one fixed random rotation:
    a 2-D manifold in ``dim`` dimensions that no coordinate axis is aligned with."""
    k_roll, k_noise = jax.random.split(key)
    rotation = jnp.linalg.qr(jax.random.normal(jax.random.key(8128), (dim, dim)))[0]
    roll = toy_dataset("swiss_roll", k_roll, n)
    return jnp.concatenate([roll, noise * jax.random.normal(k_noise, (n, dim - 2))], axis=1) @ rotation.T


def digits_pca(dim: int, key) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The 1797 scikit-learn digits projected on their first ``dim`` principal axes, divided by one scalar (the
    root mean variance of those axes; their anisotropy is kept), shuffled and split 1197 / 300 / 300 into
    training, held-out and reference sets."""
    images = np.asarray(digits()[0], np.float64)
    centred = images - images.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    scores = centred @ vt[:dim].T
    scores /= np.sqrt(scores.var(0).mean())
    scores = jnp.asarray(scores[np.asarray(jax.random.permutation(key, scores.shape[0]))], jnp.float32)
    return scores[:1197], scores[1197:1497], scores[1497:]


def make_problem(name: str, s: Settings) -> Problem:
    key = jax.random.fold_in(jax.random.key(s.seed), sum(map(ord, name)))
    k_mix, k_train, k_test, k_ref = jax.random.split(key, 4)
    if name.startswith("digits_pca"):
        return Problem(name, *digits_pca(int(name[len("digits_pca"):]), k_mix), None)
    if name == "manifold8":
        return Problem(name, embedded_swiss_roll(k_train, s.n_train), embedded_swiss_roll(k_test, s.n_eval),
                       embedded_swiss_roll(k_ref, s.n_eval), None)
    if name.startswith("gmm"):
        if name.endswith("rot"):
            mixture = rotated_anisotropic_mixture(k_mix, int(name[3:-3]), s.gmm_components)
        else:
            mixture = random_mixture(k_mix, int(name[3:]), s.gmm_components)
        draw = mixture.sample
    else:
        mixture = None

        def draw(k, n):
            return toy_dataset(name, k, n)

    return Problem(name, draw(k_train, s.n_train), draw(k_test, s.n_eval), draw(k_ref, s.n_eval), mixture)


# --------------------------------------------------------------------------------------------------- evaluation


def finite_or_none(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def sample_quality(samples, problem: Problem, key) -> dict:
    """MMD², sliced W2, and the share of samples farther out than 1.5x the largest test-point norm
    ("outliers"); ``sw_trimmed`` is the sliced W2 of the samples without the outliers (bulk quality only)."""
    samples = np.asarray(samples)
    finite = np.isfinite(samples).all(axis=1)
    radius = 1.5 * float(jnp.max(jnp.linalg.norm(problem.x_test, axis=1)))
    out = {"finite_frac": float(finite.mean()), "max_abs": finite_or_none(np.max(np.abs(samples[finite]), initial=0))}
    norms = np.linalg.norm(np.where(finite[:, None], samples, 0), axis=1)
    out["outlier_frac"] = float(np.mean(~finite | (norms > radius)))
    if finite.sum() < 2:
        return out | {"mmd": None, "sw": None}
    good = jnp.asarray(samples[finite])
    inside = norms[finite] <= radius
    trimmed = sliced_wasserstein(key, good[inside], problem.x_test) if inside.sum() > 1 else np.nan
    return out | {
        "mmd": finite_or_none(mmd(good, problem.x_test)),
        "sw": finite_or_none(sliced_wasserstein(key, good, problem.x_test)),
        "sw_trimmed": finite_or_none(trimmed),
    }


class Evaluator:
    """Quality of a noise model on one problem, with fixed keys for sampling, metrics and the held-out loss."""

    def __init__(self, problem: Problem, schedule, s: Settings):
        self.problem, self.schedule, self.s = problem, schedule, s
        base = jax.random.fold_in(jax.random.key(s.seed + 1), sum(map(ord, problem.name)))
        self.k_sample, self.k_sw, self.k_loss, self.k_eps = jax.random.split(base, 4)
        self.floor = sample_quality(problem.x_ref, problem, self.k_sw)
        low, high = float(jnp.min(problem.x)), float(jnp.max(problem.x))
        self.box = (low - 0.05 * (high - low), high + 0.05 * (high - low))
        self.optimal_loss = None
        if problem.mixture is not None:
            mix = problem.mixture
            self.optimal_loss = float(ddpm_loss(lambda x, t: mix.optimal_eps(x, t, schedule), schedule, self.k_loss,
                                                problem.x_test))

    def samples(self, model, clip_x0=None):
        return ddim_sample(model, self.schedule, self.k_sample, (self.s.n_eval, self.problem.dim), self.s.ddim_steps,
                           clip_x0=clip_x0)

    def __call__(self, model, keep_samples: bool = False):
        start = time.perf_counter()
        samples = self.samples(model)
        out = sample_quality(samples, self.problem, self.k_sw)
        clipped = sample_quality(self.samples(model, self.box), self.problem, self.k_sw)
        out["mmd_clip"], out["sw_clip"] = clipped["mmd"], clipped["sw"]
        out["val_loss"] = finite_or_none(ddpm_loss(model, self.schedule, self.k_loss, self.problem.x_test))
        if self.problem.mixture is not None:
            mix, n = self.problem.mixture, self.s.eps_error_n
            out["eps_error"] = finite_or_none(eps_error(model, mix, self.schedule, self.k_eps, n=n))
            out["eps_error_by_t"] = {
                str(t): finite_or_none(eps_error(model, mix, self.schedule, self.k_eps, n=n, t_values=jnp.asarray([t])))
                for t in EPS_ERROR_STEPS}
            out["excess_loss"] = None if out["val_loss"] is None else out["val_loss"] - self.optimal_loss
        out["eval_s"] = time.perf_counter() - start
        return (out, np.asarray(samples)) if keep_samples else out


# --------------------------------------------------------------------------------------------------- cost


def _split_model(model):
    params, static = eqx.partition(model, eqx.is_inexact_array)
    return params, static


def xla_flops_per_eval(model, dim: int, batch: int = 256) -> float | None:
    """FLOPs per sample of one eps evaluation, from XLA's cost analysis of the jitted model on a batch."""
    params, static = _split_model(model)
    x = jnp.zeros((batch, dim), jnp.float32)
    t = jnp.ones((batch,), jnp.int32)
    compiled = jax.jit(lambda p, x, t: eqx.combine(p, static)(x, t)).lower(params, x, t).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    flops = (cost or {}).get("flops")
    return None if flops is None else float(flops) / batch


def analytic_flops_nn(dim: int, width: int = NN_WIDTH, depth: int = NN_DEPTH, embed: int = 32) -> int:
    """2·Σ in·out over the Linear layers (time projection, expansion, blocks, contraction); norms and activations
    are not counted."""
    macs = embed * width + dim * width + depth * 2 * width * width + width * dim
    return 2 * macs


def analytic_flops_ftt(model: FTTDenoiser) -> int:
    """Σ_outputs Σ_k 2 r_{k-1} m_k r_k (the contraction) + 3 m per variable (three-term basis recursions)."""
    ranks = model.ftt.tt.ranks
    shape = model.ftt.tt.shape
    outputs = model.dim if model.output == "independent" else 1
    contraction = sum(2 * ranks[k] * shape[k] * ranks[k + 1] for k in range(len(shape)))
    return outputs * contraction + 3 * sum(shape)


def memory_bytes(compiled) -> int | None:
    """Arguments + outputs + temporaries - aliased bytes of a compiled XLA program."""
    m = compiled.memory_analysis()
    if m is None:
        return None
    return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes)


def adam_step_memory(model, problem: Problem, schedule, lr: float) -> int | None:
    """Memory of one compiled AdamW step on L_simple at batch 256 (the program :func:`jaxtt.train.fit` loops)."""
    params, static = _split_model(model)
    opt = optax.adamw(lr)
    state = opt.init(params)
    batch = problem.x[:NN_BATCH]

    def step(p, st, key, x):
        loss, g = jax.value_and_grad(lambda q: ddpm_loss(eqx.combine(q, static), schedule, key, x))(p)
        updates, st = opt.update(g, st, p)
        return optax.apply_updates(p, updates), st, loss

    return memory_bytes(jax.jit(step).lower(params, state, jax.random.key(0), batch).compile())


def als_sweep_memory(model: FTTDenoiser, problem: Problem, schedule, repeats: int) -> int | None:
    """Memory of one compiled ALS sweep over all ``N·repeats`` regression rows (vmapped over the outputs)."""
    x_t, t, eps = training_triples(jax.random.key(0), problem.x, schedule, repeats)
    v, y = regression_data(model, x_t, t, eps)
    plans = local_plans(model.ftt, v)
    sweep = jax.vmap(lambda f, y: als_sweep(f, v, y, plans, reg=1e-6 * v.shape[0]), in_axes=(0, 1))
    return memory_bytes(jax.jit(sweep).lower(model.ftt, y).compile())


# --------------------------------------------------------------------------------------------------- arms


def nn_model(dim: int, T: int, key):
    return Batched(ResNetMLP(dim, NN_WIDTH, NN_DEPTH, key=key, time_scale=float(T)))


def compile_estimate(steps, times) -> float | None:
    """Compilation in the first logged chunk: its time minus its steps times the steady per-step rate of the last
    chunk."""
    if len(steps) < 2:
        return None
    rate = (times[-1] - times[-2]) / (steps[-1] - steps[-2])
    return max(0.0, times[0] - rate * steps[0])


def train_adam_curve(model, problem: Problem, schedule, optimizer, curve, key, evaluator, log_every=100):
    """Train with :func:`jaxtt.train.fit`, stopping at each step count in ``curve`` (resumed from a checkpoint,
    same optimizer object, so one compilation) to evaluate the EMA model.

    Returns ``(points, final FitResult, final DDIM samples)``."""
    points, samples = [], None
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "ckpt.bin")
        for steps in curve:
            res = fit(model, problem.x, schedule, optimizer, steps=steps, batch_size=NN_BATCH, key=key,
                      log_every=log_every, checkpoint_path=path, checkpoint_every=curve[-1], resume=True,
                      progress=False)
            h = res.history
            if steps == curve[-1]:
                quality, samples = evaluator(res.ema_model, keep_samples=True)
            else:
                quality = evaluator(res.ema_model)
            compile_s = compile_estimate(h["step"], h["time"])
            points.append({"steps": steps, "train_s": h["time"][-1], "compile_s": compile_s,
                           "compute_s": None if compile_s is None else h["time"][-1] - compile_s,
                           "train_loss": h["train_loss"][-1], **quality})
    return points, res, samples


def build_ftt(problem: Problem, schedule, cfg: dict, key) -> FTTDenoiser:
    """The FTT denoiser of a configuration (with ``prediction`` and, if ``whiten``, the training set's
    :class:`jaxtt.ftt.Whitening`)."""
    prediction, whiten = cfg.get("prediction", "eps"), cfg.get("whiten", False)
    needs_schedule = whiten or prediction != "eps"
    return FTTDenoiser(problem.dim, schedule.T, rank=cfg["rank"], m=cfg["m"], basis=cfg["basis"], time=cfg["time"],
                       schedule=schedule if needs_schedule else None, prediction=prediction,
                       whitening=Whitening.fit(problem.x) if whiten else None, dtype=jnp.float32, key=key)


def train_ftt_closed_form(problem: Problem, schedule, cfg: dict, key, method: str = "als"):
    """Build an FTT denoiser and fit it with :func:`jaxtt.solvers.fit_denoiser`, cold (no program compiled
    earlier in the run is reused); return (model, timing dict)."""
    jax.clear_caches()
    k_init, k_fit = jax.random.split(key)
    start = time.perf_counter()
    model = build_ftt(problem, schedule, cfg, k_init)
    if method == "dmrg":
        solver = DMRG(max_rank=cfg["rank"], eps=cfg.get("eps", 1e-3), **({"cg_maxiter": cfg["cg_maxiter"]}
                                                                        if "cg_maxiter" in cfg else {}))
    else:
        solver = ALS(cg_maxiter=cfg.get("cg_maxiter", 0))
    fitted, results = fit_denoiser(model, problem.x, schedule, k_fit, solver=solver, steps=cfg["sweeps"],
                                   repeats=cfg["repeats"], targets=cfg.get("targets", "sampled"),
                                   reg=cfg.get("reg", DEFAULT_REG), progress=False)
    jax.block_until_ready(fitted)
    wall = time.perf_counter() - start
    result = results[0]
    sweep_times, residual = result.time[1:], result.train_residual[-1]  # entry 0 is the starting model
    ranks = fitted.ftt.tt.ranks
    compile_s = max(0.0, sweep_times[0] - float(np.median(sweep_times[1:]))) if len(sweep_times) > 1 else None
    timing = {"train_s": wall, "compile_s": compile_s, "compute_s": None if compile_s is None else wall - compile_s,
              "sweep_s": [float(v) for v in sweep_times], "train_residual": float(residual), "ranks": ranks}
    return fitted, timing


def train_ftt_rcg(problem: Problem, schedule, cfg: dict, key, max_iter: int):
    k_init, k_fit = jax.random.split(key)
    model = build_ftt(problem, schedule, cfg, k_init)
    start = time.perf_counter()
    x_t, t, eps = training_triples(k_fit, problem.x, schedule, cfg["repeats"])
    v, y = regression_data(model, x_t, t, eps)
    ftt, result = fit_ftt(model.ftt, v, y, RCG(), max_steps=max_iter, progress=False)
    fitted = eqx.tree_at(lambda m: m.ftt, model, ftt)
    jax.block_until_ready(fitted)
    wall = time.perf_counter() - start
    times = result.time
    compile_s = max(0.0, sum(times[:2]) - 2 * float(np.median(times[2:]))) if len(times) > 3 else None
    return fitted, {"train_s": wall, "compile_s": compile_s,
                    "compute_s": None if compile_s is None else wall - compile_s,
                    "iterations": len(result.step) - 1, "status": result.status,
                    "final_loss": result.loss[-1], "train_residual": result.train_residual[-1]}


# --------------------------------------------------------------------------------------------------- landscapes


def filter_direction(key, params, per_row: bool):
    """A random direction with filter normalisation (Li et al. 2018, §4).

    ``per_row=True`` (networks): each row of a matrix leaf (one output neuron) gets the norm of that row of the
    weights; vector leaves (biases, LayerNorm) get zero. ``per_row=False`` (TT cores of shape ``(D, r, m, r')``):
    each output's core gets the norm of that core.
    """
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    out = []
    for k, w in zip(keys, leaves):
        d = jax.random.normal(k, w.shape, w.dtype)
        if per_row and w.ndim < 2:
            d = jnp.zeros_like(w)
        else:
            axes = tuple(range(1, w.ndim)) if not per_row else tuple(range(w.ndim - 1, w.ndim))
            norm_w = jnp.sqrt(jnp.sum(w * w, axis=axes, keepdims=True))
            d = d * norm_w / jnp.sqrt(jnp.sum(d * d, axis=axes, keepdims=True))
        out.append(d)
    return jax.tree.unflatten(treedef, out)


def loss_landscape(model, problem: Problem, schedule, key, n: int, per_row: bool, span: float = 1.0) -> dict:
    """L_simple on the plane ``θ + a·d1 + b·d2`` for ``a, b ∈ [-span, span]`` (``n × n`` grid)."""
    params, static = _split_model(model)
    k1, k2, k_loss = jax.random.split(key, 3)
    d1, d2 = filter_direction(k1, params, per_row), filter_direction(k2, params, per_row)
    x = problem.x[:2048]

    def loss_at(ab):
        p = jax.tree.map(lambda w, u, v: w + ab[0].astype(w.dtype) * u + ab[1].astype(w.dtype) * v, params, d1, d2)
        return ddpm_loss(eqx.combine(p, static), schedule, k_loss, x)

    grid = np.linspace(-span, span, n)
    a, b = np.meshgrid(grid, grid, indexing="ij")
    pts = jnp.asarray(np.stack([a.ravel(), b.ravel()], axis=1), jnp.float32)
    losses = np.asarray(jax.jit(lambda q: jax.lax.map(loss_at, q))(pts)).reshape(n, n)
    centre = losses[n // 2, n // 2]
    half = [int(np.abs(grid - v).argmin()) for v in (-0.5 * span, 0.5 * span)]
    ring = [losses[i, n // 2] for i in half] + [losses[n // 2, j] for j in half]
    return {"grid": grid.tolist(), "loss": losses.tolist(), "centre": float(centre),
            "relative_rise_at_half_span": float(np.mean(ring) / centre - 1.0)}


# --------------------------------------------------------------------------------------------------- the study


def machine_info() -> dict:
    return {"processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "python": platform.python_version(), "jax": jax.__version__, "platform": platform.platform(),
            "backend": jax.default_backend()}


class Study:
    def __init__(self, s: Settings):
        self.s = s
        self.schedule = linear_schedule(s.T)
        self.problems: dict[str, Problem] = {}
        self.evaluators: dict[str, Evaluator] = {}
        self.runs: list[dict] = []
        self.samples: dict[str, dict[str, np.ndarray]] = {}
        self.models: dict[str, object] = {}
        self.landscapes: dict[str, dict] = {}
        self.cost: dict[str, dict] = {}
        self.fitted: dict[tuple, tuple] = {}
        self.task_s: dict[str, float] = {}
        self.notes: list[str] = []
        self.chunk_load: dict[str, dict] = {}  # load average and XLA_FLAGS when each chunk finished
        self.task_load: dict[str, list] = {}  # 1-minute load average at the start and the end of each task

    def key(self, *tags):
        k = jax.random.key(self.s.seed + 2)
        for tag in tags:
            k = jax.random.fold_in(k, tag if isinstance(tag, int) else sum(map(ord, str(tag))))
        return k

    # tasks --------------------------------------------------------------------------------------------

    def tasks(self):
        """``(chunk, name, task)`` in order. A chunk is one problem's tasks (the swiss roll's with v1's design,
        optimizer and landscape tasks, which reuse its models): the unit a checkpoint records as done."""
        s = self.s
        yield "setup", "problems", self.setup_problems
        for name in s.problems:
            yield name, f"nn {name}", lambda name=name: self.nn_arm(name)
            for variant in variants_for(name):
                for i in range(len(s.rungs[dim_of(name)])):
                    yield name, f"{variant} {name} {i}", lambda name=name, v=variant, i=i: self.variant_rung(name, v, i)
            if name != "swiss_roll":
                continue
            for cfg in s.design:
                yield name, f"design {cfg}", lambda cfg=cfg: self.design_point(cfg)
            for cfg in s.dmrg:
                yield name, f"dmrg {cfg}", lambda cfg=cfg: self.dmrg_point(cfg)
            if s.adam_curve:
                yield name, "adam-ftt", self.adam_ftt
            for iters in s.rcg_iters:
                yield name, f"rcg {iters}", lambda iters=iters: self.rcg_point(iters)
            if s.landscape_n:
                yield name, "landscapes", self.landscape_task

    def run(self, checkpoint: Path | None = None, resume: bool = False):
        """Run the tasks; with ``checkpoint`` save the state after each chunk, with ``resume`` first load it and
        skip the chunks it records as done."""
        done = self.load(checkpoint) if resume else []
        tasks = [task for task in self.tasks() if task[0] not in done]
        bar = tqdm(tasks, desc=f"study ({self.s.mode})", unit="task")
        for i, (chunk, name, task) in enumerate(bar):
            bar.set_postfix_str(name[:40])
            start, load_start = time.perf_counter(), os.getloadavg()[0]
            task()
            self.task_s[name] = time.perf_counter() - start
            self.task_load[name] = [load_start, os.getloadavg()[0]]
            if checkpoint is not None and chunk != "setup" and (i + 1 == len(tasks) or tasks[i + 1][0] != chunk):
                done.append(chunk)
                self.chunk_load[chunk] = {"load": os.getloadavg(), "xla_flags": os.environ.get("XLA_FLAGS", "")}
                self.save(checkpoint, done)

    def state(self) -> dict:
        return {"settings": json.loads(json.dumps(asdict(self.s))), "runs": self.runs, "task_s": self.task_s,
                "notes": self.notes, "cost": self.cost, "landscapes": self.landscapes, "chunk_load": self.chunk_load,
                "task_load": self.task_load}

    def save(self, checkpoint: Path, done: list):
        """Write the state and the kept samples atomically (the JSON last: it names the chunks done)."""
        arrays = {f"{problem}|{arm}": x for problem, by_arm in self.samples.items() for arm, x in by_arm.items()}
        with tempfile.NamedTemporaryFile(dir=checkpoint.parent, delete=False, suffix=".npz") as f:
            np.savez(f, **arrays)
        os.replace(f.name, checkpoint.with_suffix(".npz"))
        atomic_write_text(checkpoint, json.dumps(self.state() | {"done": done}))

    def load(self, checkpoint: Path) -> list:
        """Restore a saved state of the same settings; return the chunks it finished."""
        if not checkpoint.exists():
            raise SystemExit(f"--resume: no checkpoint {checkpoint} to resume from")
        state = json.loads(checkpoint.read_text())
        if state["settings"] != self.state()["settings"]:
            raise SystemExit(f"--resume: {checkpoint} was written with other settings; run without --resume to "
                             "start over")
        for field in ("runs", "task_s", "notes", "cost", "landscapes", "chunk_load", "task_load"):
            setattr(self, field, state[field])
        with np.load(checkpoint.with_suffix(".npz")) as arrays:
            for key in arrays.files:
                problem, arm = key.split("|", 1)
                self.samples.setdefault(problem, {})[arm] = arrays[key]
        return list(state["done"])

    def setup_problems(self):
        for name in self.s.problems:
            problem = make_problem(name, self.s)
            self.problems[name] = problem
            self.evaluators[name] = Evaluator(problem, self.schedule, self.s)

    def record(self, problem: str, arm: str, config: dict, timing: dict, quality: dict, model=None, **extra):
        run = {"problem": problem, "arm": arm, "config": config, **timing, "quality": quality, **extra}
        if model is not None:
            run["params"] = model.num_params if isinstance(model, FTTDenoiser) else int(
                sum(x.size for x in jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array))))
        self.runs.append(run)
        return run

    def cost_of(self, key: str, model, problem: Problem, train: str, repeats: int = 2):
        """FLOPs and training-program memory of a model, once per structure ``key``."""
        if key in self.cost:
            return self.cost[key]
        entry = {"flops_xla": xla_flops_per_eval(model, problem.dim),
                 "flops_analytic": analytic_flops_ftt(model) if isinstance(model, FTTDenoiser)
                 else analytic_flops_nn(problem.dim)}
        if train == "adam":
            entry["train_memory_bytes"] = adam_step_memory(model, problem, self.schedule, NN_LR)
            entry["train_program"] = f"one AdamW step, batch {NN_BATCH}"
        else:
            entry["train_memory_bytes"] = als_sweep_memory(model, problem, self.schedule, repeats)
            entry["train_program"] = f"one ALS sweep over {repeats * problem.x.shape[0]} rows"
        self.cost[key] = entry
        return entry

    # arms ---------------------------------------------------------------------------------------------

    def nn_arm(self, name: str):
        problem, evaluator = self.problems[name], self.evaluators[name]
        steps = self.s.nn_steps
        jax.clear_caches()  # timed cold, like every FTT fit
        model = nn_model(problem.dim, self.s.T, self.key("nn-init", name))
        optimizer = default_optimizer(steps, NN_LR)
        points, res, samples = train_adam_curve(model, problem, self.schedule, optimizer, self.s.nn_curve,
                                                self.key("nn-fit", name), evaluator)
        final = points[-1]
        quality = {k: v for k, v in final.items() if k not in TIMING_KEYS}
        self.samples.setdefault(name, {})["NN"] = samples
        self.models[f"nn {name}"] = res.ema_model
        cost = {}
        if name in self.s.cost_problems:
            cost = self.cost_of(f"nn D={problem.dim}", res.ema_model, problem, "adam")
        self.record(name, "NN", {"width": NN_WIDTH, "depth": NN_DEPTH, "steps": steps, "batch": NN_BATCH,
                                 "optimizer": f"default_optimizer(steps, {NN_LR}) (AdamW, warm-up + cosine)"},
                    {k: final[k] for k in ("train_s", "compile_s", "compute_s")}, quality, res.ema_model,
                    cost=cost, loss_curve={"step": res.history["step"], "train_loss": res.history["train_loss"],
                                           "time": res.history["time"]}, curve=points)

    def ftt_run(self, name: str, cfg: dict, arm: str, method: str = "als", keep: bool = False, tag=None):
        """Fit (or reuse an identical earlier fit of) an FTT denoiser and record it under ``arm``.

        Fits shorter than ``REPEAT_LIMIT_S`` are timed ``timing_repeats`` times (median)."""
        cache_key = (name, json.dumps(cfg, sort_keys=True), method)
        if cache_key not in self.fitted:
            timings = []
            for r in range(self.s.timing_repeats):
                model, timing = train_ftt_closed_form(self.problems[name], self.schedule, cfg,
                                                      self.key(method, name, cache_key[1], r), method)
                timings.append(timing)
                if timing["train_s"] > REPEAT_LIMIT_S:
                    break
            timing = dict(timings[0])
            if len(timings) > 1:
                timing["train_s_repeats"] = [t["train_s"] for t in timings]
                timing["train_s"] = float(np.median(timing["train_s_repeats"]))
                valid = [t["compute_s"] for t in timings if t["compute_s"] is not None]
                timing["compute_s"] = float(np.median(valid)) if valid else None
            self.fitted[cache_key] = (model, timing, *self.evaluators[name](model, keep_samples=True))
        model, timing, quality, samples = self.fitted[cache_key]
        if keep:
            self.samples.setdefault(name, {})[tag or arm] = samples
            self.models[f"{tag or arm} {name}"] = model
        return self.record(name, arm, dict(cfg, method=method), timing, quality, model), model

    def variant_rung(self, name: str, variant: str, i: int):
        """Rung ``i`` of an FTT variant's budget ladder; the largest rung keeps its samples and model, and carries
        the cost analysis on the cost problems."""
        problem = self.problems[name]
        ladder = self.s.rungs[problem.dim]
        cfg = variant_config(variant, ladder[i])
        largest = i == len(ladder) - 1
        run, model = self.ftt_run(name, cfg, "FTT", keep=largest, tag=variant)
        run["variant"], run["rung"] = variant, i
        if largest and variant == "EB" and name in self.s.cost_problems:
            run["cost"] = self.cost_of(f"ftt {problem.dim} {json.dumps(cfg, sort_keys=True)}", model, problem,
                                       "als", cfg["repeats"])

    def design_point(self, cfg: dict):
        self.ftt_run("swiss_roll", cfg, "FTT-ALS design", keep=cfg == SWISS_REFERENCE, tag="FTT-ALS")

    def dmrg_point(self, cfg: dict):
        self.ftt_run("swiss_roll", cfg, "FTT-DMRG", method="dmrg", keep=cfg == self.s.dmrg[0], tag="FTT-DMRG")

    def adam_ftt(self):
        name = "swiss_roll"
        problem, evaluator = self.problems[name], self.evaluators[name]
        cfg = SWISS_REFERENCE
        model = build_ftt(problem, self.schedule, cfg, self.key("adam-init"))
        optimizer = default_optimizer(self.s.adam_curve[-1], FTT_ADAM_LR)
        points, res, samples = train_adam_curve(model, problem, self.schedule, optimizer, self.s.adam_curve,
                                                self.key("adam-fit"), evaluator, log_every=250)
        self.samples[name]["FTT-Adam"] = samples
        final = points[-1]
        quality = {k: v for k, v in final.items() if k not in TIMING_KEYS}
        self.record(name, "FTT-Adam", dict(cfg, steps=self.s.adam_curve[-1], batch=NN_BATCH,
                                           optimizer=f"default_optimizer(steps, {FTT_ADAM_LR})"),
                    {k: final[k] for k in ("train_s", "compile_s", "compute_s")}, quality, res.ema_model,
                    curve=points, cost=self.cost_of("ftt-adam", res.ema_model, problem, "adam"))

    def rcg_point(self, iters: int):
        name = "swiss_roll"
        cfg = SWISS_REFERENCE
        try:
            model, timing = train_ftt_rcg(self.problems[name], self.schedule, cfg, self.key("rcg"), iters)
        except Exception as err:  # report a broken optional arm instead of aborting the study
            self.notes.append(f"FTT-RCG failed at max_iter={iters}: {type(err).__name__}: {err}")
            return
        quality, samples = self.evaluators[name](model, keep_samples=True)
        if iters == self.s.rcg_iters[-1]:
            self.samples[name]["FTT-RCG"] = samples
        self.record(name, "FTT-RCG", dict(cfg, max_iter=iters), timing, quality, model)

    def landscape_task(self):
        nn = self.models["nn swiss_roll"]
        ftt = self.models.get("FTT-ALS swiss_roll", self.models["EB swiss_roll"])
        problem = self.problems["swiss_roll"]
        self.landscapes["NN"] = loss_landscape(nn, problem, self.schedule, self.key("land"), self.s.landscape_n, True)
        self.landscapes["FTT-ALS"] = loss_landscape(ftt, problem, self.schedule, self.key("land"),
                                                    self.s.landscape_n, False)


# --------------------------------------------------------------------------------------------------- analysis


def runs_of(runs, problem, arm):
    return [r for r in runs if r["problem"] == problem and r["arm"] == arm]


def within(value, target) -> bool:
    """``value <= target + 10 % of |target|`` (lower is better; the unbiased MMD² estimate can be negative)."""
    return value is not None and target is not None and value <= target + (TOLERANCE - 1.0) * abs(target)


def metric_keys(clipped: bool) -> tuple[str, str]:
    return ("mmd_clip", "sw_clip") if clipped else ("mmd", "sw")


def reaches(quality: dict, target: dict, clipped: bool) -> bool:
    """MMD² and SW within 10 % of the target's; ``clipped`` compares the samples drawn with ``clip_x0`` (both arms
    clipped)."""
    return all(within(quality.get(k), target.get(k)) for k in metric_keys(clipped))


def relative_gaps(quality: dict, target: dict, clipped: bool) -> list[float]:
    """``(value − target) / |target|`` of MMD² and SW (infinite where a value is missing); <= 0.1 is "within"."""
    gaps = []
    for k in metric_keys(clipped):
        value, goal = quality.get(k), target.get(k)
        gaps.append(math.inf if value is None or goal is None else (value - goal) / max(abs(goal), 1e-12))
    return gaps


def ftt_summary(run: dict, nn: dict, clipped: bool) -> dict:
    return {"variant": run["variant"], "label": describe(run), "config": run["config"], "quality": run["quality"],
            "train_s": run["train_s"], "compute_s": run["compute_s"],
            "time_ratio_ftt_over_nn": run["train_s"] / nn["train_s"],
            "compute_ratio_ftt_over_nn": (run["compute_s"] / nn["compute_s"]
                                          if run["compute_s"] and nn["compute_s"] else None),
            "relative_gaps": relative_gaps(run["quality"], nn["quality"], clipped)}


def headline(runs) -> dict:
    """Per problem: the NN's final quality and time, the first point of its own curve within 10 % of its final
    quality, and for clipped and unclipped samples the first FTT rung (all variants, in order of training time)
    within 10 % of the NN with its time ratio, or else the closest rung (smallest worst relative gap); the goal's
    verdict (clipped); the winning variant by the closest clipped rung and, for mixtures, by the excess loss."""
    out = {}
    for nn in (r for r in runs if r["arm"] == "NN"):
        name, target = nn["problem"], nn["quality"]
        rungs = sorted(runs_of(runs, name, "FTT"), key=lambda r: r["train_s"])
        if not rungs:
            continue
        nn_reach = next((p for p in nn["curve"] if reaches(p, target, clipped=True)), None)
        entry = {"nn": {"quality": target, "train_s": nn["train_s"], "compute_s": nn["compute_s"]},
                 "nn_first_within_10pct_clipped": None if nn_reach is None else {
                     "steps": nn_reach["steps"], "train_s": nn_reach["train_s"]}}
        for clipped in (True, False):
            first = next((r for r in rungs if reaches(r["quality"], target, clipped)), None)
            closest = min(rungs, key=lambda r: max(relative_gaps(r["quality"], target, clipped)))
            entry["clipped" if clipped else "unclipped"] = {
                "first": None if first is None else ftt_summary(first, nn, clipped),
                "closest": ftt_summary(closest, nn, clipped)}
        first = entry["clipped"]["first"]
        if name not in GOAL_RATIO:
            entry["goal"], entry["target_met"] = "none", None
        elif GOAL_RATIO[name] is None:
            entry["goal"], entry["target_met"] = "within 10 % at any budget", first is not None
        else:
            entry["goal"] = f"within 10 % in <= {GOAL_RATIO[name]:g} of the NN's time"
            entry["target_met"] = first is not None and first["time_ratio_ftt_over_nn"] <= GOAL_RATIO[name]
        entry["winner_clipped"] = entry["clipped"]["closest"]["variant"]
        scored = [r for r in rungs if r["quality"].get("excess_loss") is not None]
        if scored:
            best = min(scored, key=lambda r: r["quality"]["excess_loss"])
            entry["winner_excess_loss"] = {"variant": best["variant"], "label": describe(best),
                                           "excess_loss": best["quality"]["excess_loss"],
                                           "nn_excess_loss": target.get("excess_loss")}
        out[name] = entry
    return out


# --------------------------------------------------------------------------------------------------- output


def atomic_write_text(path: Path, text: str):
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as f:
        f.write(text)
        tmp = f.name
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def atomic_savefig(fig, path: Path):
    with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".png") as f:
        tmp = f.name
    fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def fmt(value, spec=".3g"):
    return "-" if value is None else format(value, spec)


def plot_quality_vs_time(result, path: Path):
    """One row per problem: clipped MMD² and SW against training time, the NN along its run and each FTT variant
    along its budget ladder."""
    names = [r["problem"] for r in result["runs"] if r["arm"] == "NN"]
    fig, axes = plt.subplots(len(names), 2, figsize=(11, 3.6 * len(names)), squeeze=False, layout="constrained")
    for row, name in zip(axes, names):
        nn = runs_of(result["runs"], name, "NN")[0]
        rungs = runs_of(result["runs"], name, "FTT")
        for ax, metric, label in zip(row, ("mmd_clip", "sw_clip"), ("MMD² (clip_x0)", "sliced W2 (clip_x0)")):
            pts = [(p["train_s"], p[metric]) for p in nn["curve"] if p.get(metric) is not None]
            ax.plot(*zip(*pts), "o-", color="k", label="NN (AdamW) along its run")
            for i, variant in enumerate(VARIANTS):
                ladder = sorted((r for r in rungs if r["variant"] == variant), key=lambda r: r["rung"])
                pts = [(r["train_s"], r["quality"][metric]) for r in ladder if r["quality"].get(metric) is not None]
                if pts:
                    ax.plot(*zip(*pts), "s--", color=f"C{i}", label=f"FTT {variant}")
            goal = nn["quality"][metric]
            ax.axhline(goal + (TOLERANCE - 1.0) * abs(goal), color="k", lw=0.8, ls=":", label="NN final + 10 %")
            floor = result["problems"][name]["floor"]["mmd" if metric == "mmd_clip" else "sw"]
            if floor is not None and floor > 0:
                ax.axhline(floor, color="grey", lw=0.8, ls="-.", label="data vs data")
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            if metric == "mmd_clip":  # the unbiased MMD² estimate can be slightly negative
                ax.set_yscale("symlog", linthresh=1e-4)
            else:
                ax.set_yscale("log")
            ax.set_xlabel("training wall time incl. compilation [s]")
            ax.set_ylabel(label)
            ax.set_title(f"{name} (D = {result['problems'][name]['dim']}): {label}", fontsize=9)
            ax.legend(fontsize=6)
    atomic_savefig(fig, path)


def plot_design(result, path: Path):
    runs = [r for r in result["runs"] if r["problem"] == "swiss_roll" and r["arm"] == "FTT-ALS design"]
    if not runs:
        return
    nn = runs_of(result["runs"], "swiss_roll", "NN")
    panels = (("mmd", "MMD²"), ("sw", "sliced W2"), ("sw_trimmed", "sliced W2 without outliers"),
              ("train_s", "train s (incl. compilation)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 0.35 * len(runs) + 1.5), sharey=True)
    for ax, (metric, title) in zip(axes, panels):
        def value(r):
            v = r["train_s"] if metric == "train_s" else r["quality"].get(metric)
            return np.nan if v is None else v

        ax.barh(range(len(runs)), [value(r) for r in runs], color="C1")
        if nn:
            ax.axvline(value(nn[0]), color="C0", label="NN")
            ax.legend(fontsize=7)
        if metric == "mmd":  # the unbiased MMD² estimate can be slightly negative
            ax.set_xscale("symlog", linthresh=1e-4)
        else:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_title(f"swiss roll: {title}", fontsize=9)
    axes[0].set_yticks(range(len(runs)))
    axes[0].set_yticklabels([describe(r) for r in runs], fontsize=7)
    atomic_savefig(fig, path)


def plot_landscapes(result, path: Path):
    lands = result["landscapes"]
    if not lands:
        return
    fig, axes = plt.subplots(1, len(lands) + 1, figsize=(5.5 * (len(lands) + 1), 4.2), layout="constrained")
    for ax, (name, land) in zip(axes, lands.items()):
        grid = np.asarray(land["grid"])
        loss = np.asarray(land["loss"])
        cs = ax.contourf(grid, grid, np.log10(loss.T), levels=20, cmap="viridis")
        fig.colorbar(cs, ax=ax, label="log10 L_simple")
        ax.plot(0, 0, "r+")
        ax.set_title(f"{name}: filter-normalised plane")
        ax.set_xlabel("a (direction 1)")
        ax.set_ylabel("b (direction 2)")
        axes[-1].plot(grid, loss[:, len(grid) // 2], label=name)
    axes[-1].set_yscale("log")
    axes[-1].set_xlabel("a (b = 0)")
    axes[-1].set_ylabel("L_simple")
    axes[-1].set_title("1-D slices")
    axes[-1].legend()
    atomic_savefig(fig, path)


def plot_samples(study: Study, path: Path):
    names = [n for n in study.s.problems if n in study.samples]
    arms = ["data", "NN", *VARIANTS, "FTT-ALS", "FTT-DMRG", "FTT-Adam", "FTT-RCG"]
    arms = [a for a in arms if a == "data" or any(a in study.samples[n] for n in names)]
    fig, axes = plt.subplots(len(names), len(arms), figsize=(2.4 * len(arms), 2.4 * len(names)), squeeze=False)
    for i, (row, name) in enumerate(zip(axes, names)):
        data = np.asarray(study.problems[name].x_test)
        lim = 1.3 * np.max(np.abs(data[:, :2]))
        for ax, arm in zip(row, arms):
            pts = data if arm == "data" else study.samples[name].get(arm)
            if pts is not None:
                ax.scatter(pts[:, 0], pts[:, 1], s=1, alpha=0.4)
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(arm if arm in ("data", "NN") or arm.startswith("FTT") else f"FTT {arm}", fontsize=9)
            if arm == "data":
                ax.set_ylabel(name, fontsize=9)
    atomic_savefig(fig, path)


def describe(run: dict) -> str:
    """A short label of a run's configuration."""
    c = run["config"]
    if run["arm"] == "NN":
        return f"{c['width']}x{c['depth']}, {c['steps']} steps"
    label = f"{c['basis']} {c['time']} r{c['rank']} m{c['m']}"
    if run["arm"] == "FTT":
        return f"{run['variant']} r{c['rank']} m{c['m']} x{c['repeats']}/{c['sweeps']}"
    if run["arm"] == "FTT-Adam":
        return f"{label}, {c['steps']} steps"
    if run["arm"] == "FTT-RCG":
        return f"{label} x{c['repeats']}, {c['max_iter']} iterations"
    label += f" x{c['repeats']}/{c['sweeps']}"
    label += f" reg {c['reg']:g}" if "reg" in c else ""
    return label + (f" CGLS {c['cg_maxiter']}" if "cg_maxiter" in c else "")


def quality_cells(q: dict) -> str:
    by_t = q.get("eps_error_by_t") or {}
    by_t_text = " / ".join(fmt(by_t.get(str(t)), ".2f") for t in EPS_ERROR_STEPS) if by_t else "-"
    return (f"{fmt(q['mmd'])} | {fmt(q['sw'])} | {fmt(q.get('sw_trimmed'))} | {fmt(q['outlier_frac'], '.4f')} | "
            f"{fmt(q.get('mmd_clip'))} | {fmt(q.get('sw_clip'))} | "
            f"{fmt(q.get('eps_error'))} | {by_t_text} | "
            f"{fmt(q['val_loss'], '.4f')} | {fmt(q.get('excess_loss'), '.4f')}")


QUALITY_HEADER = ("MMD² | SW | SW w/o outliers | outliers | MMD² clip_x0 | SW clip_x0 | eps-err (mean) | "
                  f"eps-err t={'/'.join(map(str, EPS_ERROR_STEPS))} | val L_simple | excess L_simple")


def header_lines(result: dict) -> list[str]:
    m = result["machine"]
    load = (f"load average {result['load_start'][0]:.1f} at the start, {result['load_end'][0]:.1f} at the end. "
            f"Total {result['total_s'] / 60:.1f} min.")
    if result.get("resumed"):  # the run spans several processes: their tasks' time and each chunk's load
        chunks = ", ".join(f"{name} {entry['load'][0]:.1f}" for name, entry in result["chunk_load"].items())
        load = (f"resumed from its checkpoint, so it ran in several processes: {sum(result['task_s'].values()) / 60:.1f} "
                f"min of tasks; load average at each problem's end: {chunks} (each task's load at its start and "
                f"end: `task_load` in the JSON, where recorded).")
    return [f"### Study `{result['mode']}` mode", "",
            f"Command: `{result['command']}`  ",
            f"Machine: {m['processor']}, {m['cpu_count']} cores, {m['platform']}, Python {m['python']}, "
            f"jax {m['jax']} ({m['backend']}); shared, so timings are noisy; {load}", ""]


def gap_text(entry: dict) -> str:
    return " / ".join(f"{100 * g:+.0f} %" if math.isfinite(g) else "-" for g in entry["relative_gaps"])


def headline_rows(result: dict, clipped: bool) -> list[str]:
    mmd, sw = metric_keys(clipped)
    rows = []
    for name, h in result["headline"].items():
        nn, part = h["nn"], h["clipped" if clipped else "unclipped"]
        f = part["first"] or part["closest"]
        what = (f"reached: {f['label']}" if part["first"] else
                f"not reached; closest {f['label']} (gaps MMD²/SW {gap_text(f)})")
        cells = [name, result["problems"][name]["dim"], fmt(nn["quality"][mmd]), fmt(nn["quality"][sw]),
                 fmt(nn["train_s"], ".1f")]
        if clipped:
            reach = h["nn_first_within_10pct_clipped"]
            cells.append("-" if reach is None else f"{reach['steps']} ({reach['train_s']:.1f} s)")
        cells += [what, fmt(f["quality"][mmd]), fmt(f["quality"][sw])]
        if not clipped:
            cells.append(fmt(f["quality"]["outlier_frac"], ".4f"))
        ratios = (fmt(f["time_ratio_ftt_over_nn"], ".3f"), fmt(f["compute_ratio_ftt_over_nn"], ".3f"))
        cells += [fmt(f["train_s"], ".1f"), *(ratios if part["first"] else ("-", "-"))]
        if clipped:
            verdict = {None: "-", True: "**yes**", False: "no"}[h["target_met"]]
            cells += [h["goal"], verdict]
        rows.append("| " + " | ".join(map(str, cells)) + " |")
    return rows


def summary_markdown(result: dict) -> str:
    """The summary tables of one study result."""
    lines = header_lines(result)
    lines += ["Headline, both arms sampled with `clip_x0` (the goal's criterion): the first FTT rung of any variant, "
              "in order of training time, with MMD² and SW within 10 % of the NN's final values, else the closest "
              "rung with its relative gaps:", "",
              "| problem | D | NN MMD² | NN SW | NN train s | NN steps to within 10 % of its final | FTT | FTT MMD² "
              "| FTT SW | FTT train s | time ratio FTT/NN | compute ratio | goal | goal met |", "|---" * 14 + "|"]
    lines += headline_rows(result, clipped=True)
    lines += ["", "The same without clipping (plain DDIM samples of both arms; outliers: the FTT rung's share of "
              "samples beyond 1.5x the largest test-point norm):", "",
              "| problem | D | NN MMD² | NN SW | NN train s | FTT | FTT MMD² | FTT SW | FTT outliers | FTT train s "
              "| time ratio FTT/NN | compute ratio |", "|---" * 12 + "|"]
    lines += headline_rows(result, clipped=False)
    lines += ["", "Which variant won where (closest clipped rung; for the mixtures also the smallest excess L_simple "
              "E‖eps_θ − eps*‖²/D, NN's for comparison):", "",
              "| problem | closest to the NN (clipped) | best excess L_simple | its excess | NN excess |",
              "|---|---|---|---|---|"]
    for name, h in result["headline"].items():
        w = h.get("winner_excess_loss")
        lines.append(f"| {name} | {h['clipped']['closest']['label']} | " + (
            f"{w['label']} | {fmt(w['excess_loss'], '.4f')} | {fmt(w['nn_excess_loss'], '.4f')} |" if w else
            "- | - | - |"))
    lines += ["", "All runs (`floor`: a second data sample against the test sample and, for the mixtures, the exact "
              "eps*; FLOPs and memory on the cost problems for the NN and the largest EB rung):", "",
              *runs_table(result, ("NN", "FTT"))]
    others = [r for r in result["runs"] if r["arm"] not in ("NN", "FTT")]
    if others:
        lines += ["", "Swiss roll: v1's FTT optimizers and design choices (Cholesky ALS unless CGLS is named):", "",
                  *design_table(others)]
    lines += closing_lines(result)
    return "\n".join(lines) + "\n"


def runs_table(result: dict, arms: tuple[str, ...]) -> list[str]:
    """Markdown rows of every run of ``arms`` per problem, after the problem's data-vs-data floor."""
    lines = ["| problem | D | arm | config | params | FLOPs/eval analytic (XLA) | train memory (XLA) | train s "
             f"| compute s | {QUALITY_HEADER} |", "|---" * 20 + "|"]
    for name, p in result["problems"].items():
        fl, exact = p["floor"], "-" if p["optimal_val_loss"] is None else "0"
        lines.append(f"| {name} | {p['dim']} | floor | data vs data | | | | | | {fmt(fl['mmd'])} | {fmt(fl['sw'])} "
                     f"| | | | | {exact} | | {fmt(p['optimal_val_loss'], '.4f')} | {exact} |")
        for r in result["runs"]:
            if r["problem"] != name or r["arm"] not in arms:
                continue
            cost = r.get("cost") or {}
            mem = cost.get("train_memory_bytes")
            flops = f"{fmt(cost.get('flops_analytic'), '.0f')} ({fmt(cost.get('flops_xla'), '.0f')})" if cost else "-"
            mem = "-" if mem is None else f"{mem / 2**20:.1f} MiB"
            lines.append(
                f"| {name} | {p['dim']} | {r['arm']} | {describe(r)} | {r.get('params', '-')} | {flops} | {mem} | "
                f"{fmt(r['train_s'], '.1f')} | {fmt(r['compute_s'], '.1f')} | {quality_cells(r['quality'])} |")
    return lines


def design_table(runs: list[dict]) -> list[str]:
    lines = [f"| arm | config | params | train s | compute s | {QUALITY_HEADER} |", "|---" * 15 + "|"]
    return lines + [f"| {r['arm']} | {describe(r)} | {r.get('params', '-')} | {fmt(r['train_s'], '.1f')} | "
                    f"{fmt(r['compute_s'], '.1f')} | {quality_cells(r['quality'])} |" for r in runs]


def closing_lines(result: dict) -> list[str]:
    """The loss landscapes and the notes of a study, when it has them."""
    lines, lands = [], result["landscapes"]
    if lands:
        lines += ["", "Loss landscapes (L_simple on a filter-normalised random plane through the trained weights): "
                  + "; ".join(f"{k}: L = {v['centre']:.4f} at the trained point, mean relative rise "
                              f"{v['relative_rise_at_half_span']:.3g} at distance 0.5" for k, v in lands.items())]
    if result["notes"]:
        lines += ["", "Notes: " + "; ".join(result["notes"])]
    return lines


def write_study_md(results_dir: Path):
    parts = ["# FTT vs NN study", "",
             "Produced by `benchmarks/study_ftt_vs_nn.py`; JSON and figures (`study_<mode>_*.png`) in "
             "`benchmarks/results/`. Quality: MMD² and sliced W2 (SW) of 2000 DDIM samples (100 steps) against "
             "2000 fresh data points; outliers: share of samples beyond 1.5x the largest test-point norm; "
             "clip_x0: the same DDIM samples with x̂0 clipped to the training range +5 %; eps-err: "
             "relative error to the exact eps* of the Gaussian mixtures; excess L_simple: held-out L_simple minus "
             "that of the exact eps* (= E‖eps_θ − eps*‖²/D); train s: wall time including compilation; "
             "compute s: the same minus the estimated compilation; FLOPs per eps evaluation: analytic count "
             "(XLA's count, which sees a scanned core loop once); train memory: XLA memory analysis of the "
             "compiled training step (AdamW step at batch 256, or one ALS sweep over all regression rows).", ""]
    for mode in ("quick", "full"):
        path = results_dir / f"study_{mode}.json"
        if path.exists():
            parts.append(summary_markdown(json.loads(path.read_text())))
    atomic_write_text(results_dir / "STUDY.md", "\n".join(parts))


def print_table(result: dict):
    print()
    print(f"{'problem':<14}{'arm':<30}{'train s':>9}{'MMD²':>10}{'SW':>9}{'MMD² clip':>11}{'SW clip':>9}"
          f"{'excess':>9}")
    for r in result["runs"]:
        if r["arm"] in ("NN", "FTT"):
            q = r["quality"]
            label = "NN" if r["arm"] == "NN" else describe(r)
            print(f"{r['problem']:<14}{label:<30}{r['train_s']:>9.1f}{fmt(q['mmd']):>10}{fmt(q['sw']):>9}"
                  f"{fmt(q.get('mmd_clip')):>11}{fmt(q.get('sw_clip')):>9}{fmt(q.get('excess_loss')):>9}")
    for name, h in result["headline"].items():
        first = h["clipped"]["first"]
        text = (f"first within 10 % (clipped): {first['label']}, time ratio {first['time_ratio_ftt_over_nn']:.3f}"
                if first else f"not within 10 % (clipped); closest {h['clipped']['closest']['label']} "
                f"(gaps {gap_text(h['clipped']['closest'])})")
        print(f"headline {name}: {text}; goal ({h['goal']}) met: {h['target_met']}")
    m = result["machine"]
    print(f"machine: {m['processor']}, {m['cpu_count']} cores, jax {m['jax']}; total {result['total_s']:.0f} s")


def time_rung_cold(problem_name: str, variant: str, rung: int, quick: bool) -> dict:
    """Fit one rung of one variant twice in this process: the first fit pays every compilation (as a user's
    first fit does), the second reuses it (as later variants in a study run do)."""
    s = settings_for(quick)
    schedule = linear_schedule(s.T)
    problem = make_problem(problem_name, s)
    cfg = variant_config(variant, s.rungs[problem.dim][rung])
    times = [train_ftt_closed_form(problem, schedule, cfg, jax.random.key(s.seed))[1]["train_s"] for _ in range(2)]
    return {"problem": problem_name, "variant": variant, "rung": rung, "config": cfg, "cold_s": times[0],
            "warm_s": times[1], "load": os.getloadavg()}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="reduced budgets (7 problems, two rungs per variant)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="output directory")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted run of the same mode from its checkpoint in --results")
    parser.add_argument("--time-rung", nargs=3, metavar=("PROBLEM", "VARIANT", "RUNG"),
                        help="only time one rung's fit cold (fresh process) and warm, print it and exit")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.time_rung:
        name, variant, rung = args.time_rung
        print(json.dumps(time_rung_cold(name, variant, int(rung), args.quick)))
        return
    s = settings_for(args.quick)
    args.results.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()
    start = time.perf_counter()
    study = Study(s)
    checkpoint = args.results / f"study_{s.mode}.partial.json"
    study.run(checkpoint, args.resume)
    result = {
        "version": 2,
        "mode": s.mode,
        "command": " ".join([".venv/bin/python", "benchmarks/study_ftt_vs_nn.py", *sys.argv[1:]]),
        "machine": machine_info(),
        "settings": asdict(s),
        "problems": {n: {"dim": p.dim, "floor": study.evaluators[n].floor,
                         "optimal_val_loss": study.evaluators[n].optimal_loss} for n, p in study.problems.items()},
        "runs": study.runs,
        "landscapes": study.landscapes,
        "notes": study.notes,
        "task_s": study.task_s,
        "chunk_load": study.chunk_load,
        "task_load": study.task_load,
        "resumed": args.resume,
    }
    result["headline"] = headline(study.runs)
    prefix = f"study_{s.mode}"
    plot_quality_vs_time(result, args.results / f"{prefix}_quality_vs_time.png")
    plot_design(result, args.results / f"{prefix}_design.png")
    plot_landscapes(result, args.results / f"{prefix}_landscape.png")
    plot_samples(study, args.results / f"{prefix}_samples.png")
    result["load_end"] = os.getloadavg()
    result["load_start"] = load_start
    result["total_s"] = time.perf_counter() - start
    atomic_write_text(args.results / f"{prefix}.json", json.dumps(result, indent=1))
    write_study_md(args.results)
    checkpoint.unlink()
    checkpoint.with_suffix(".npz").unlink()
    print_table(result)


if __name__ == "__main__":
    main()
