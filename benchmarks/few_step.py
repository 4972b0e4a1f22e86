"""Few-step generation solved in closed form: rectified flow, reflow, progressive and consistency distillation
and compression, each with an FTT (closed-form TT-ALS fits) and a network (Adam) model, quality against NFE.

    python benchmarks/few_step.py [--quick] [--problems swiss_roll gmm8 digits] [--ftt-targets empirical_bayes]
    python benchmarks/few_step.py --quick --study [reflow pd far reflow8] [--seeds 10]

Problems: the swiss roll (2-D), an 8-D Gaussian mixture (4 components, as in ``study_ftt_vs_nn.py``) and the
8-D VAE latents of scikit-learn's digits (``digits``): the feature classifier, the VAE and the standardized
training latents of :func:`jaxtt.latent_digits.run` rebuilt exactly (its ``QUICK``/``FULL`` configuration, the
same keys in the same order, in float32 as there), the 1,497 training latents as data and the 300 validation
latents as the held-out sample. Its quality columns add the Fréchet distance (:func:`jaxtt.metrics.frechet_distance`)
of the classifier's penultimate features of the decoded samples against the training images' (the scale of
``benchmarks/latent_digits.py``'s table, whose latent NN-DDPM and validation rows the table quotes), and every
digits sampler clips the predicted data to the latent box of that benchmark. The flow FTT's whitening
(:class:`jaxtt.ftt.Whitening`) belongs to DDPM marginals, not to the interpolant's, so the FTTs see the
standardized latents.
Schedule: cosine, T = 1000 (so the flow's start ``s_T`` is 1 up to 1e-5). Methods, each for an FTT and a network:

* ``RF``: 1-rectified flow fitted by flow matching (Liu et al. 2022; Lipman et al. 2022); Euler on evenly
  spaced times (``DDIM`` on ``FlowVelocity`` at ``flow_timesteps``); its 100-step samples are the teacher
  reference of every other method.
* ``reflow``: one reflow round on pairs coupled by the RF (Heun, 32 steps); straightness reported. The FTT
  student warm-starts from the 1-RF, except on the swiss roll (``reflow_ftt``): there a fresh rank-8, m-32 FTT,
  which ``--study reflow`` found closer to the teacher at 1 NFE (the 1-step map of noise onto the spiral needs
  the resolution; more sweeps or pairs did not help).
* ``PD``: progressive distillation of the RF from 16 Euler steps to 8, 4, 2, 1 (Salimans & Ho 2022; x0 targets);
  the student of the round with ``k`` steps is evaluated at NFE ``k``.
* ``CD``: consistency distillation of the RF on an evenly spaced grid of ``K`` Euler steps (8 quick, 16 full;
  Song et al. 2023), ``K`` outer iterations with the frozen copy replaced by each fit (the first frozen copy is
  the teacher's own data prediction), so the targets reach from the data level to ``T``; 1-step and multistep
  (re-noising) sampling.
* ``compress``: the network RF teacher copied into FTT students of a few ranks by regression on its outputs
  (v targets at sampled ``(x_t, t)``); DDIM at each NFE. Parameter counts reported.

FTT fits: :func:`jaxtt.solvers.fit_regression` with ``ALS(cg_maxiter=8)`` in float32 (half the time of float64
at the same error); the flows' rows repeat each data point ``repeats`` times (their targets are noisy), the
PD/CD/compression rows only ``distill_repeats`` times (their targets are functions of ``x_t``), and a
warm-started distillation round takes ``distill_sweeps`` sweeps. ``--ftt-targets empirical_bayes`` fits the FTT
flow to :math:`E[\epsilon - x_0 \mid x_s]` under the training set instead of the sampled ``ε − x0``
(:func:`jaxtt.diffusion.targets.empirical_bayes_velocity`). Networks: :func:`jaxtt.train.fit`
(AdamW, cosine decay) with the flow-matching or distillation ``loss``. Times are wall-clock seconds of the fit
or training run, compilation included. Quality: unbiased MMD² (median-heuristic RBF) and sliced
Wasserstein-2 of ``n_eval`` samples against a held-out data sample, next to the floor of two data samples.

Writes ``benchmarks/results/few_step[_quick].json`` and one PNG of samples per problem (columns: NFE; digits:
decoded samples).

``--study [reflow pd far reflow8] [--seeds K]`` runs, instead of the table, the checks behind the goal: the
swiss-roll teacher's 100-step quality over ``K`` sampler keys (the noise of a 1000-sample MMD²), reflow students
that differ in sweeps, pairs, rank, basis size or basis, PD students of two sizes (each as the paired difference to
the teacher over the same keys), the share of far-out samples of the full-mode FTT flows per NFE with the SW
without them, and (``reflow8``) the same reflow-student ladder on the 8-D mixture with a network trained on the
FTT teacher's pairs next to it and each student's held-out error on the coupling map; it writes
``benchmarks/results/few_step_study[_quick].json`` (parts not rerun keep their results).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from dataclasses import asdict, dataclass, replace

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from jaxtt.data import swiss_roll
from jaxtt.data.mixture import GaussianMixture
from jaxtt.diffusion import (
    DDIM,
    FlowVelocity,
    Heun,
    convert_prediction,
    cosine_schedule,
    flow_matching_loss,
    flow_matching_triples,
    flow_path,
    flow_timesteps,
    reflow_pairs,
    sample,
    straightness,
)
from jaxtt.distill import (
    ConsistencyModel,
    compression_rows,
    consistency_distillation_rows,
    progressive_distillation_rows,
    regression_loss,
    student_grid,
)
from jaxtt.ftt import FTTDenoiser
from jaxtt.metrics import mmd, sliced_wasserstein
from jaxtt.nn import Batched, ResNetMLP
from jaxtt.solvers import ALS, fit_regression
from jaxtt.train import fit as train_fit

RESULTS = os.path.join(os.path.dirname(__file__), "results")
T = 1000
NFES = (1, 2, 4, 8, 100)
PROBLEMS = ("swiss_roll", "gmm8", "digits")
TEACHER_STEPS = 16
STUDY_PARTS = ("reflow", "pd", "far", "reflow8")


@dataclass(frozen=True)
class Settings:
    n_train: int
    n_eval: int
    repeats: int
    sweeps: int
    ftt: dict  # problem -> (rank, m)
    nn_width: int
    nn_depth: int
    nn_steps: int
    student_steps: int
    cd_steps: int
    cd_iterations: int
    compress_ranks: tuple
    distill_repeats: int  # rows per data point of the PD/CD/compression fits (their targets are noise-free)
    distill_sweeps: int  # ALS sweeps of a warm-started distillation fit
    reflow_ftt: dict  # problem -> (rank, m) of a fresh reflow FTT; other problems warm-start from the 1-RF
    ftt_dtype: str = "float32"
    ftt_targets: str = "sampled"  # RF rows: "sampled" eps - x0 or "empirical_bayes" E[eps - x0 | x_s]
    seed: int = 0


QUICK = Settings(n_train=4000, n_eval=1000, repeats=8, sweeps=4,
                 ftt={"swiss_roll": (6, 10), "gmm8": (6, 8), "digits": (6, 8)},
                 nn_width=64, nn_depth=2, nn_steps=3000, student_steps=400, cd_steps=8, cd_iterations=8,
                 compress_ranks=(2, 6), distill_repeats=4, distill_sweeps=2, reflow_ftt={"swiss_roll": (8, 32)})
# FULL: 2x the data and evaluation samples, larger FTTs and networks, 2x the Adam steps and a 16-step CD grid
FULL = Settings(n_train=8000, n_eval=2000, repeats=8, sweeps=4,
                ftt={"swiss_roll": (8, 12), "gmm8": (8, 8), "digits": (8, 8)},
                nn_width=128, nn_depth=2, nn_steps=6000, student_steps=800, cd_steps=16, cd_iterations=8,
                compress_ranks=(2, 4, 8), distill_repeats=2, distill_sweeps=2, reflow_ftt={"swiss_roll": (8, 32)})


class ScaledTime(eqx.Module):
    """A network of the integer-step convention fed the interpolant time ``s in [0, 1]`` as ``T s``."""

    network: eqx.Module

    def __call__(self, x, s):
        return self.network(x, T * s)


def random_mixture(key, dim: int, k: int) -> GaussianMixture:
    k_w, k_mu, k_a = jax.random.split(key, 3)
    weights = jax.random.uniform(k_w, (k,), minval=0.5, maxval=1.5)
    means = jax.random.uniform(k_mu, (k, dim), minval=-2.0, maxval=2.0)
    a = 0.3 / math.sqrt(dim) * jax.random.normal(k_a, (k, dim, dim))
    return GaussianMixture(weights, means, a @ jnp.swapaxes(a, 1, 2) + 0.05 * jnp.eye(dim))


@dataclass
class Digits:
    """The digits latents and the Fréchet-distance scorer of ``benchmarks/latent_digits.py`` (float32, as there)."""

    z_train: jax.Array
    z_val: jax.Array
    fd: object  # latents -> Fréchet distance of their decoded images
    decode: object  # latents -> flat 8x8 images
    clip: tuple
    scale: dict  # reference Fréchet distances


def prepare_digits(quick: bool) -> Digits:
    """The classifier, VAE and latents of :func:`jaxtt.latent_digits.run` (:func:`jaxtt.latent_digits.prepare`; call
    before enabling float64, as that run is float32)."""
    from jaxtt.latent_digits import FULL as DIGITS_FULL
    from jaxtt.latent_digits import QUICK as DIGITS_QUICK
    from jaxtt.latent_digits import prepare

    setup = prepare(DIGITS_QUICK if quick else DIGITS_FULL)

    def decode(z):
        return setup.space.decode(jnp.asarray(z, jnp.float32))

    scale = {"validation set": setup.frechet(setup.x_val), "VAE reconstructions (validation)": setup.frechet(
        decode(setup.z_val))}
    path = os.path.join(RESULTS, f"latent_digits{'_quick' if quick else ''}.json")
    if os.path.exists(path):
        with open(path) as fh:
            table = json.load(fh)["results"]
        scale |= {f"{k} (latent_digits table)": table[k]["fd"] for k in
                  ("latent NN-DDPM", "latent FTT-DDPM", "VAE reconstructions (validation)") if k in table}
    return Digits(setup.z_train, setup.z_val, lambda z: setup.frechet(decode(z)), decode, setup.clip, scale)


def make_data(name, s: Settings, digits: Digits | None = None):
    if name == "digits":  # training latents, validation latents, a training subset of the validation's size
        z = digits.z_train.astype(jnp.float64)
        return z, digits.z_val.astype(jnp.float64), z[: digits.z_val.shape[0]]
    key = jax.random.fold_in(jax.random.key(s.seed), sum(map(ord, name)))
    k_mix, k_train, k_ref, k_floor = jax.random.split(key, 4)
    if name == "swiss_roll":
        draw = lambda k, n: swiss_roll(k, n, dtype=jnp.float64)  # noqa: E731
    else:
        mixture = random_mixture(k_mix, 8, 4)
        draw = lambda k, n: mixture.sample(k, n).astype(jnp.float64)  # noqa: E731
    return draw(k_train, s.n_train), draw(k_ref, s.n_eval), draw(k_floor, s.n_eval)


def quality(x, ref, key):
    return {"mmd2": float(mmd(x, ref)), "sw": float(sliced_wasserstein(key, x, ref))}


def timed(fn):
    start = time.perf_counter()
    out = jax.block_until_ready(fn())
    return out, time.perf_counter() - start


def x0_of(model, schedule, prediction):
    """A batched data predictor from a model on the schedule (for the frozen copy of CD)."""
    return lambda x, t: convert_prediction(schedule, x, t, model(x, t), source=prediction, target="x0")


class Run:
    def __init__(self, name, s: Settings, quick: bool, digits: Digits | None = None):
        self.name, self.s, self.quick = name, s, quick
        self.digits = digits if name == "digits" else None
        self.clip = None if self.digits is None else self.digits.clip
        self.x, self.ref, floor = make_data(name, s, digits)
        self.dim = self.x.shape[1]
        self.schedule = cosine_schedule(T, dtype=jnp.float64)
        self.key = jax.random.key(s.seed + 1)
        self.rank, self.m = s.ftt[name]
        self.sigma_data = float(jnp.sqrt(jnp.mean(self.x**2)))
        self.rows = []  # one dict per (method, model, nfe)
        self.info = {"floor": quality(floor, self.ref, jax.random.key(7)), "train_time": {}, "params": {},
                     "straightness": {}}
        if self.digits is not None:
            self.info["fd_scale"] = self.digits.scale
        self.samples = {}

    def k(self, tag):
        return jax.random.fold_in(self.key, sum(map(ord, tag)))

    # ------------------------------------------------------------------ models
    def ftt(self, T_model, rank=None, m=None, key="ftt"):
        return FTTDenoiser(self.dim, T_model, rank=rank or self.rank, m=m or self.m, time_m=m or self.m,
                           domain=(-5.0, 5.0), dtype=self.s.ftt_dtype, key=self.k(key))

    def nn(self, key="nn"):
        return Batched(ResNetMLP(self.dim, self.s.nn_width, self.s.nn_depth, key=self.k(key), time_scale=float(T)))

    def fit_ftt(self, model, rows, sweeps=None):
        """Closed-form fit of ``model`` to rows ``(x, t, y)`` in the FTT's dtype (integer steps stay integers)."""
        x, t, y = (a.astype(self.s.ftt_dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a for a in rows)
        return fit_regression(model, x, t, y, solver=ALS(cg_maxiter=8), steps=sweeps or self.s.sweeps)[0]

    def distill_rows(self):
        return jnp.tile(self.x, (self.s.distill_repeats, 1))

    def train_nn(self, model, data, loss, steps, ema=0.999):
        out = train_fit(model, data, None, steps=steps, batch_size=256, key=self.k("train"), loss=loss,
                        ema_decay=ema, progress=False, log_every=steps)
        return out.ema_model

    # ------------------------------------------------------------------ evaluation
    def record(self, method, kind, nfe, samples, seconds=None):
        samples = np.asarray(samples)
        ok = bool(np.all(np.isfinite(samples)))
        q = quality(jnp.asarray(samples), self.ref, jax.random.key(11)) if ok else {"mmd2": None, "sw": None}
        if self.digits is not None:
            q["fd"] = self.digits.fd(samples) if ok else None
        self.rows.append({"problem": self.name, "method": method, "model": kind, "nfe": nfe, **q,
                          "train_time": seconds})
        self.samples[(method, kind, nfe)] = samples[:1000]
        print(f"  {self.name:10s} {method:9s} {kind:4s} NFE {nfe:4d}  MMD² {q['mmd2'] if ok else float('nan'):9.5f}"
              f"  SW {q['sw'] if ok else float('nan'):7.4f}" + (f"  FD {q['fd']:7.2f}" if ok and "fd" in q else ""),
              flush=True)

    def draw(self, model, sampler, prediction="eps"):
        return sample(model, self.schedule, sampler, jax.random.key(99), (self.s.n_eval, self.dim),
                      prediction=prediction, clip_x0=self.clip).samples

    def eval_flow(self, method, kind, velocity, seconds):
        model = FlowVelocity(velocity, self.schedule)
        for nfe in NFES:
            self.record(method, kind, nfe, self.draw(model, DDIM(timesteps=flow_timesteps(self.schedule, nfe))),
                        seconds)
        path = flow_path(velocity, self.schedule, DDIM(timesteps=flow_timesteps(self.schedule, 32)),
                         jax.random.key(5), (self.s.n_eval, self.dim))
        self.info["straightness"][f"{method} {kind}"] = float(straightness(*path))

    # ------------------------------------------------------------------ methods
    def rectified_flow(self):
        s = self.s
        rows = flow_matching_triples(self.k("rf rows"), self.x, s.repeats, targets=s.ftt_targets)
        ftt, t_ftt = timed(lambda: self.fit_ftt(self.ftt(1), rows))
        self.info["train_time"]["RF ftt"] = t_ftt
        self.info["params"]["RF ftt"] = ftt.num_params
        nn0 = ScaledTime(self.nn())
        nn, t_nn = timed(lambda: self.train_nn(nn0, self.x, lambda m, k, b: flow_matching_loss(m, k, b),
                                               s.nn_steps))
        self.info["train_time"]["RF nn"] = t_nn
        self.info["params"]["RF nn"] = int(sum(a.size for a in jax.tree.leaves(eqx.filter(nn, eqx.is_array))))
        self.eval_flow("RF", "ftt", ftt, t_ftt)
        self.eval_flow("RF", "nn", nn, t_nn)
        self.teachers = {"ftt": ftt, "nn": nn}

    def reflow(self):
        s = self.s
        for kind, flow in self.teachers.items():
            coupler = Heun(timesteps=flow_timesteps(self.schedule, 32))
            (eps, x0), t_pairs = timed(lambda: reflow_pairs(flow, self.schedule, coupler, self.k("pairs " + kind),
                                                            s.n_train, self.dim))
            if kind == "ftt":
                rows = flow_matching_triples(self.k("reflow rows"), x0, s.repeats, eps=eps)
                rank, m = s.reflow_ftt.get(self.name, (None, None))
                start = flow if rank is None else self.ftt(1, rank=rank, m=m, key="reflow")  # else warm from the 1-RF
                model, t_fit = timed(lambda: self.fit_ftt(start, rows))
                self.info["params"]["reflow ftt"] = model.num_params
            else:
                pairs = jnp.stack([x0, eps], axis=1)
                model, t_fit = timed(lambda: self.train_nn(
                    flow, pairs, lambda m, k, b: flow_matching_loss(m, k, b[:, 0], eps=b[:, 1]), s.nn_steps // 2))
            self.info["train_time"][f"reflow {kind}"] = t_pairs + t_fit
            self.eval_flow("reflow", kind, model, t_pairs + t_fit)

    def pd_rounds(self, kind, flow, student):
        """Progressive distillation of ``flow`` from 16 Euler steps down to 1: yields ``(grid, student, seconds)``
        per round (an FTT student is one closed-form fit per round, a network a short Adam run)."""
        s = self.s
        grid = tuple(int(t) for t in flow_timesteps(self.schedule, TEACHER_STEPS))
        teacher, prediction, first = FlowVelocity(flow, self.schedule), "eps", True
        while len(grid) > 1:
            g = student_grid(grid)

            def rows_of(key, batch, teacher=teacher, grid=grid, prediction=prediction):
                return progressive_distillation_rows(teacher, self.schedule, grid, key, batch,
                                                     prediction=prediction, target="x0")

            if kind == "ftt":
                rows = rows_of(self.k(f"pd {len(g)}"), self.distill_rows())
                sweeps = s.sweeps if first else s.distill_sweeps  # the first round starts from scratch
                student, sec = timed(lambda: self.fit_ftt(student, rows, sweeps))
            else:
                student, sec = timed(lambda: self.train_nn(
                    student, self.x, lambda m, k, b: regression_loss(m, *rows_of(k, b)), s.student_steps,
                    ema=0.99))
            yield g, student, sec
            teacher, prediction, grid, first = student, "x0", g, False

    def progressive(self):
        for kind, flow in self.teachers.items():
            student = self.ftt(T, key="pd") if kind == "ftt" else self.nn("pd")
            times = []
            for g, student, sec in self.pd_rounds(kind, flow, student):
                times.append(sec)
                self.record("PD", kind, len(g), self.draw(student, DDIM(timesteps=g), prediction="x0"), sum(times))
            self.info["train_time"][f"PD {kind} rounds"] = times

    def consistency(self):
        s = self.s
        grid = tuple(int(t) for t in flow_timesteps(self.schedule, s.cd_steps))
        for kind, flow in self.teachers.items():
            teacher = FlowVelocity(flow, self.schedule)
            frozen = x0_of(teacher, self.schedule, "eps")
            network = self.ftt(T, key="cd") if kind == "ftt" else self.nn("cd")
            total, times = 0.0, []
            for it in range(s.cd_iterations):
                def rows_of(key, batch, frozen=frozen):
                    return consistency_distillation_rows(frozen, teacher, self.schedule, grid, key, batch)

                if kind == "ftt":
                    x_t, t, y = rows_of(self.k(f"cd {it}"), self.distill_rows())
                    cm = ConsistencyModel(network, self.schedule, self.sigma_data)
                    sweeps = s.distill_sweeps if times else s.sweeps  # the first fit starts from scratch
                    network, sec = timed(lambda: self.fit_ftt(network, (x_t, t, cm.network_targets(x_t, t, y)),
                                                              sweeps))
                else:
                    def loss(m, k, b):
                        return regression_loss(ConsistencyModel(m, self.schedule, self.sigma_data), *rows_of(k, b))
                    network, sec = timed(lambda: self.train_nn(network, self.x, loss, s.student_steps, ema=0.99))
                total += sec
                times.append(sec)
                frozen = ConsistencyModel(network, self.schedule, self.sigma_data)
            self.info["train_time"][f"CD {kind} iterations"] = times
            for nfe in NFES[:-1]:
                g = tuple(int(t) for t in flow_timesteps(self.schedule, nfe))
                self.record("CD", kind, nfe, self.draw(frozen, DDIM(timesteps=g, eta=1.0), prediction="x0"), total)

    def compression(self):
        s = self.s
        teacher = FlowVelocity(self.teachers["nn"], self.schedule)
        rows = compression_rows(teacher, self.schedule, self.k("compress"), self.x, s.distill_repeats, target="v")
        nn_params = self.info["params"]["RF nn"]
        for rank in s.compress_ranks:
            student, sec = timed(lambda: self.fit_ftt(self.ftt(T, rank=rank, key=f"c{rank}"), rows))
            tag = f"compress r{rank}"
            self.info["params"][tag] = student.num_params
            self.info["train_time"][tag] = sec
            print(f"  compression rank {rank}: {student.num_params} parameters, the network {nn_params} "
                  f"({nn_params / student.num_params:.0f}x)", flush=True)
            for nfe in NFES:
                self.record(tag, "ftt", nfe,
                            self.draw(student, DDIM(timesteps=flow_timesteps(self.schedule, nfe)), prediction="v"),
                            sec)


def plot(run: Run, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({(m, k) for (m, k, _) in run.samples}, key=lambda mk: [r["method"] for r in run.rows].index(mk[0]))
    fig, axes = plt.subplots(len(keys), len(NFES), figsize=(2.0 * len(NFES), 2.0 * len(keys)), squeeze=False)
    ref = np.asarray(run.ref)[:1000]
    for i, (method, kind) in enumerate(keys):
        for j, nfe in enumerate(NFES):
            ax = axes[i, j]
            x = run.samples.get((method, kind, nfe))
            finite = x is not None and np.all(np.isfinite(x))
            if run.digits is not None:  # a 4x4 mosaic of decoded samples
                if finite:
                    tiles = np.asarray(run.digits.decode(x[:16])).reshape(4, 4, 8, 8)
                    ax.imshow(tiles.transpose(0, 2, 1, 3).reshape(32, 32), cmap="gray_r", vmin=-1, vmax=1)
            else:
                ax.scatter(ref[:, 0], ref[:, 1], s=1, c="0.85")
                if finite:
                    ax.scatter(x[:, 0], x[:, 1], s=1, c="C0" if kind == "ftt" else "C1")
                ax.set_xlim(-3, 3)
                ax.set_ylim(-3, 3)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"NFE {nfe}")
            if j == 0:
                ax.set_ylabel(f"{method} {kind}", fontsize=8)
    shown = "(decoded)" if run.digits is not None else "(grey: data; dims 0, 1)"
    fig.suptitle(f"{run.name}: samples per NFE {shown}")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def table(rows, info):
    lines = []
    for problem in dict.fromkeys(r["problem"] for r in rows):
        floor = info[problem]["floor"]
        with_fd = "fd_scale" in info[problem]
        width = 25 if with_fd else 17
        lines.append(f"\n{problem}: data floor MMD² {floor['mmd2']:.5f}, SW {floor['sw']:.4f}")
        if with_fd:
            lines.append("Fréchet distance for scale: " + ", ".join(f"{k} {v:.2f}"
                                                                   for k, v in info[problem]["fd_scale"].items()))
        lines.append(f"{'method':12s} {'model':5s} " + " ".join(f"{'NFE ' + str(n):>{width}s}" for n in NFES)
                     + f" {'time s':>8s}")
        for method, kind in dict.fromkeys((r["method"], r["model"]) for r in rows if r["problem"] == problem):
            cells = []
            time_s = None
            for nfe in NFES:
                r = next((r for r in rows if (r["problem"], r["method"], r["model"], r["nfe"])
                          == (problem, method, kind, nfe)), None)
                if r is None:
                    cells.append(f"{'-':>{width}s}")
                elif r["mmd2"] is None:
                    cells.append(f"{'non-finite':>{width}s}")
                else:
                    fd = f"/{r['fd']:7.2f}" if with_fd else ""
                    cells.append(f"{r['mmd2']:8.4f}/{r['sw']:7.3f}{fd} ".rjust(width))
                    time_s = max(time_s or 0.0, r["train_time"] or 0.0)  # rounds: the time of all of them
            lines.append(f"{method:12s} {kind:5s} " + " ".join(cells) + f" {time_s or 0:8.1f}")
    lines.append("(cells: MMD² / SW [/ Fréchet distance of the decoded digits]; time: wall seconds of the fits or "
                 "training, all rounds/iterations together)")
    return "\n".join(lines)


def far_share(samples, data, factor=1.5):
    """Share of samples farther from the origin than ``factor`` times the data's largest norm."""
    limit = factor * float(jnp.max(jnp.linalg.norm(data, axis=1)))
    return float(jnp.mean(jnp.linalg.norm(samples, axis=1) > limit)), limit


class Paired:
    """One problem's FTT flow teacher and its 100-step quality over shared sampler keys: every student measured
    through :meth:`summary` is a paired difference to it (same keys, same held-out sample)."""

    def __init__(self, run: Run, seeds: int):
        self.run, self.keys = run, [jax.random.key(100 + i) for i in range(seeds)]
        rows = flow_matching_triples(run.k("rf rows"), run.x, run.s.repeats)
        self.teacher, seconds = timed(lambda: run.fit_ftt(run.ftt(1), rows))
        self.teacher_q = self.flow_quality(self.teacher, 100)
        self.result = {"teacher": self.summary(self.teacher_q) | {"fit_s": seconds}}
        print(f"{run.name} teacher 100 NFE: MMD² {self.result['teacher']['mmd2']:.5f} SW "
              f"{self.result['teacher']['sw']:.4f} (per key {[round(q['mmd2'], 5) for q in self.teacher_q]})",
              flush=True)

    def per_key(self, model, sampler, prediction="eps"):
        run = self.run
        return [quality(sample(model, run.schedule, sampler, k, (run.s.n_eval, run.dim), prediction=prediction,
                               clip_x0=run.clip).samples, run.ref, jax.random.key(11)) for k in self.keys]

    def flow_quality(self, velocity, nfe):
        return self.per_key(FlowVelocity(velocity, self.run.schedule),
                            DDIM(timesteps=flow_timesteps(self.run.schedule, nfe)))

    def summary(self, qs):
        r = {"per_key": qs}
        for metric in ("mmd2", "sw"):
            values, ref = np.array([q[metric] for q in qs]), np.array([q[metric] for q in self.teacher_q])
            r[metric] = float(values.mean())
            r[f"{metric}_minus_teacher"] = (float((values - ref).mean()), float((values - ref).std()))
            r[f"{metric}_ratio"] = float(values.mean() / ref.mean())
        return r

    def report(self, group, name, r):
        self.result.setdefault(group, {})[name] = r
        print(f"{self.run.name} {name:30s} " + "  ".join(
            f"NFE {n}: MMD² {r[f'nfe{n}']['mmd2']:.5f} ({r[f'nfe{n}']['mmd2_ratio']:.2f}x, diff "
            f"{r[f'nfe{n}']['mmd2_minus_teacher'][0]:+.5f}±{r[f'nfe{n}']['mmd2_minus_teacher'][1]:.5f}) "
            f"SW {r[f'nfe{n}']['sw']:.4f} ({r[f'nfe{n}']['sw_ratio']:.2f}x)" for n in (1, 2)
            if f"nfe{n}" in r) + (f"  map error {r['map_error']:.4f}" if "map_error" in r else "")
            + f"  fit {r['fit_s']:.1f} s", flush=True)


# Reflow students (name -> options of ``reflow_study``'s ``variant``) per problem. The 8-D ladder separates the
# student's capacity (rank, basis size, basis) from its data (pairs), from the FTT itself (a network trained on the
# same pairs) and from the teacher (both students on a network teacher's pairs).
REFLOW_VARIANTS = {
    "swiss_roll": {
        "baseline (warm, 4000 pairs)": {},
        "8 sweeps": {"sweeps": 2},
        "16000 pairs": {"pairs": 4},
        "fresh r6 m10": {"warm": False},
        "fresh r6 m24": {"warm": False, "m": 24},
        "fresh r6 m24 bspline": {"warm": False, "m": 24, "basis": "bspline"},
        "fresh r8 m32": {"warm": False, "rank": 8, "m": 32},
        "fresh r8 m32, 16000 pairs": {"warm": False, "rank": 8, "m": 32, "pairs": 4},
    },
    "gmm8": {
        "baseline (warm r6 m8)": {},
        "fresh r6 m8": {"warm": False},
        "fresh r12 m8": {"warm": False, "rank": 12},
        "fresh r6 m16": {"warm": False, "m": 16},
        "fresh r12 m16": {"warm": False, "rank": 12, "m": 16},
        "fresh r12 m16 bspline": {"warm": False, "rank": 12, "m": 16, "basis": "bspline"},
        "fresh r12 m16, 4x pairs": {"warm": False, "rank": 12, "m": 16, "pairs": 4},
        "network on the same pairs": {"network": True},
        "fresh r12 m8, network teacher's pairs": {"warm": False, "rank": 12, "teacher": "network"},
        "network on the network teacher's pairs": {"network": True, "teacher": "network"},
    },
}


def reflow_study(paired: Paired, variants: dict) -> dict:
    """Reflow students of a teacher's coupling (Heun, 32 steps): 1- and 2-NFE quality paired with ``paired``'s FTT
    teacher, and the held-out map error ``E‖G_1(ε) − x0(ε)‖² / E‖x0 − E x0‖²`` of the student's one Euler step
    ``G_1`` against the coupling's ``x0(ε)`` on pairs no fit saw (0: the student reproduces the coupling). The
    coupling is the FTT teacher's, or with ``teacher="network"`` that of a network flow trained as in the table."""
    run, s = paired.run, paired.run.s
    coupler = Heun(timesteps=flow_timesteps(run.schedule, 32))
    teachers, couplings, held_out = {"ftt": paired.teacher}, {}, {}

    def teacher_of(kind):
        if kind not in teachers:  # the table's network rectified flow
            teachers[kind] = run.train_nn(ScaledTime(run.nn()), run.x, lambda m_, k, b: flow_matching_loss(m_, k, b),
                                          s.nn_steps)
        return teachers[kind]

    def coupling(n, kind="ftt"):
        if (n, kind) not in couplings:
            couplings[n, kind] = reflow_pairs(teacher_of(kind), run.schedule, coupler, run.k("pairs ftt"), n, run.dim)
        return couplings[n, kind]

    def held_out_pairs(kind):
        if kind not in held_out:
            eps, x0 = reflow_pairs(teacher_of(kind), run.schedule, coupler, run.k("held-out pairs"), s.n_eval, run.dim)
            held_out[kind] = eps, x0, float(jnp.mean(jnp.sum((x0 - x0.mean(0)) ** 2, axis=1)))
        return held_out[kind]

    one_step = DDIM(timesteps=flow_timesteps(run.schedule, 1))

    def variant(name, pairs=1, rank=None, m=None, basis="legendre", sweeps=1, warm=True, network=False,
                teacher="ftt"):
        eps, x0 = coupling(pairs * s.n_train, teacher)
        if network:  # the table's network reflow student (ResNet-MLP, Adam)
            data = jnp.stack([x0, eps], axis=1)
            model, seconds = timed(lambda: run.train_nn(ScaledTime(run.nn()), data, lambda m_, k, b: flow_matching_loss(
                m_, k, b[:, 0], eps=b[:, 1]), s.nn_steps // 2))
            params = int(sum(a.size for a in jax.tree.leaves(eqx.filter(model, eqx.is_array))))
        else:
            rows = flow_matching_triples(run.k("reflow rows"), x0, s.repeats, eps=eps)
            start = paired.teacher if warm else FTTDenoiser(
                run.dim, 1, rank=rank or run.rank, m=m or run.m, basis=basis, domain=(-5.0, 5.0), dtype=s.ftt_dtype,
                key=run.k("ftt"))
            model, seconds = timed(lambda: run.fit_ftt(start, rows, sweeps * s.sweeps))
            params = model.num_params
        eps_out, x0_out, spread = held_out_pairs(teacher)
        g = sample(FlowVelocity(model, run.schedule), run.schedule, one_step, jax.random.key(0), x0_out.shape,
                   x_init=eps_out).samples
        paired.report("reflow", name, {
            **{f"nfe{n}": paired.summary(paired.flow_quality(model, n)) for n in (1, 2)}, "fit_s": seconds,
            "params": params, "teacher": teacher,
            "map_error": float(jnp.mean(jnp.sum((g - x0_out) ** 2, axis=1))) / spread})

    # the coupling's own samples: no reflow student can beat them
    paired.result["coupling_samples"] = quality(coupling(s.n_train)[1][: s.n_eval], run.ref, jax.random.key(11))
    print(f"{run.name} coupling samples: {paired.result['coupling_samples']}", flush=True)
    for name, options in variants.items():
        variant(name, **options)
    if "network" in teachers:
        paired.result["network_coupling_samples"] = quality(coupling(s.n_train, "network")[1][: s.n_eval], run.ref,
                                                            jax.random.key(11))
    return paired.result


def study(quick: bool, parts=STUDY_PARTS, seeds: int = 5, out: dict | None = None) -> dict:
    """The checks behind the goal: on the swiss roll the 1-step goal's noise, reflow- and PD-student variants and
    why full-mode FTT flows' SW grows; on the 8-D mixture (``reflow8``) the reflow students' capacity.

    Every quality is measured for ``seeds`` sampler keys against the fixed held-out sample; the keys are shared
    by all models, so differences between models are paired. Per variant: the per-key values, their mean, and
    the mean and standard deviation over keys of the difference to the 100-step teacher.
    """
    s = QUICK if quick else FULL
    out = dict(out or {}) | {"settings": asdict(s)}
    if "reflow8" in parts:
        out["gmm8"] = reflow_study(Paired(Run("gmm8", s, quick), seeds), REFLOW_VARIANTS["gmm8"]) | {"seeds": seeds}
    if not {"reflow", "pd"} & set(parts):
        return out | ({"full_far": far_study()} if "far" in parts else {})
    out["seeds"] = seeds  # of the swiss-roll parts
    paired = Paired(Run("swiss_roll", s, quick), seeds)
    run, teacher = paired.run, paired.teacher
    if "reflow" in parts:
        out |= reflow_study(paired, REFLOW_VARIANTS["swiss_roll"])
    out["teacher"] = paired.result["teacher"]

    if "pd" in parts:  # progressive distillation 16 -> 1 with students of two sizes
        for name, (rank, m) in {"PD student r6 m10": (run.rank, run.m), "PD student r8 m32": (8, 32)}.items():
            rounds = list(run.pd_rounds("ftt", teacher, run.ftt(T, rank=rank, m=m, key="pd")))
            grid, student, _ = rounds[-1]
            paired.report("pd", name, {"nfe1": paired.summary(paired.per_key(student, DDIM(timesteps=grid),
                                                                             prediction="x0")),
                                       "fit_s": sum(r[2] for r in rounds), "params": student.num_params})
        out["pd"] = paired.result["pd"]
    return out | ({"full_far": far_study()} if "far" in parts else {})


def far_study() -> dict:
    """Full-mode swiss-roll FTT flows: the share of far-out samples per NFE, and the SW without them."""
    full = Run("swiss_roll", FULL, False)
    coupler = Heun(timesteps=flow_timesteps(full.schedule, 32))
    flows = {"RF": full.fit_ftt(full.ftt(1), flow_matching_triples(full.k("rf rows"), full.x, FULL.repeats))}
    eps, x0 = reflow_pairs(flows["RF"], full.schedule, coupler, full.k("pairs ftt"), FULL.n_train, full.dim)
    # the reflow FTT warm-started from the 1-RF, as in the full table's run
    flows["reflow"] = full.fit_ftt(flows["RF"], flow_matching_triples(full.k("reflow rows"), x0, FULL.repeats,
                                                                      eps=eps))
    out = {}
    for name, flow in flows.items():
        for nfe in NFES:
            x = full.draw(FlowVelocity(flow, full.schedule), DDIM(timesteps=flow_timesteps(full.schedule, nfe)))
            share, limit = far_share(x, full.x)
            inside = x[jnp.linalg.norm(x, axis=1) <= limit]
            r = {"far_share": share, "limit": limit, "max_norm": float(jnp.max(jnp.linalg.norm(x, axis=1))),
                 **quality(x, full.ref, jax.random.key(11)),
                 "sw_without_far": float(sliced_wasserstein(jax.random.key(11), inside, full.ref))}
            out[f"{name} NFE {nfe}"] = r
            print(f"full {name:14s} NFE {nfe:3d}: " + ", ".join(f"{k} {v:.4g}" for k, v in r.items()), flush=True)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (minutes on a laptop CPU)")
    parser.add_argument("--problems", nargs="+", choices=PROBLEMS, default=PROBLEMS,
                        help="problems to run (a subset writes its own result files)")
    parser.add_argument("--ftt-targets", choices=("sampled", "empirical_bayes"), default=None,
                        help="targets of the FTT rectified flow's rows (default: the preset's)")
    parser.add_argument("--study", nargs="*", choices=STUDY_PARTS, default=None,
                        help="instead of the table: swiss-roll reflow/PD-student variants, full-mode far-out "
                             "samples, 8-D reflow-student capacity (the parts named, all by default; added to an "
                             "earlier study's JSON)")
    parser.add_argument("--seeds", type=int, default=5, help="sampler keys per variant of --study")
    args = parser.parse_args()
    if args.study is not None:
        jax.config.update("jax_enable_x64", True)
        path = os.path.join(RESULTS, f"few_step_study{'_quick' if args.quick else ''}.json")
        earlier = {}
        if os.path.exists(path):  # the parts not rerun keep their earlier results
            with open(path) as fh:
                earlier = {k: v for k, v in json.load(fh).items() if k not in ("settings", "load")}
        load_start = os.getloadavg()
        out = study(args.quick, tuple(args.study) or STUDY_PARTS, args.seeds, earlier)
        out["load"] = [load_start, os.getloadavg()]
        with open(path, "w") as fh:
            json.dump(out, fh, indent=1)
        print(f"wrote {path}")
        return
    digits = prepare_digits(args.quick) if "digits" in args.problems else None  # float32, as latent_digits
    jax.config.update("jax_enable_x64", True)
    s = QUICK if args.quick else FULL
    if args.ftt_targets is not None:
        s = replace(s, ftt_targets=args.ftt_targets)
    tag = "few_step_quick" if args.quick else "few_step"
    if tuple(args.problems) != PROBLEMS:
        tag += "_" + "_".join(args.problems)
    if s.ftt_targets != "sampled":
        tag += "_" + s.ftt_targets
    os.makedirs(RESULTS, exist_ok=True)
    load_start = os.getloadavg()
    started = time.perf_counter()
    rows, info = [], {}
    for name in args.problems:
        print(f"== {name}", flush=True)
        run = Run(name, s, args.quick, digits)
        run.rectified_flow()
        run.reflow()
        run.progressive()
        run.consistency()
        run.compression()
        rows += run.rows
        info[name] = run.info
        plot(run, os.path.join(RESULTS, f"{tag}_{name}.png"))
    text = table(rows, info)
    print(text)
    for name in info:
        print(f"{name}: straightness {info[name]['straightness']}")
        print(f"{name}: parameters {info[name]['params']}")
        print(f"{name}: times {json.dumps(info[name]['train_time'])}")
    result = {
        "settings": asdict(s), "mode": "quick" if args.quick else "full", "rows": rows, "info": info,
        "table": text, "wall_s": time.perf_counter() - started,
        "machine": {"processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
                    "platform": platform.platform(), "python": platform.python_version(), "jax": jax.__version__,
                    "device": str(jax.devices()[0]), "load_start": load_start, "load_end": os.getloadavg()},
    }
    with open(os.path.join(RESULTS, f"{tag}.json"), "w") as fh:
        json.dump(result, fh, indent=1)
    print(f"wrote {RESULTS}/{tag}.json; load average {load_start} -> {os.getloadavg()}")


if __name__ == "__main__":
    main()
