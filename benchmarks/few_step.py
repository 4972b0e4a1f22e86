"""Few-step generation solved in closed form: rectified flow, reflow, progressive and consistency distillation
and compression, each with an FTT (closed-form TT-ALS fits) and a network (Adam) model, quality against NFE.

    python benchmarks/few_step.py [--quick] [--problems swiss_roll gmm8] [--ftt-targets empirical_bayes]

Problems: the swiss roll (2-D) and an 8-D Gaussian mixture (4 components, as in ``study_ftt_vs_nn.py``).
Schedule: cosine, T = 1000 (so the flow's start ``s_T`` is 1 up to 1e-5). Methods, each for an FTT and a network:

* ``RF``: 1-rectified flow fitted by flow matching (Liu et al. 2022; Lipman et al. 2022); Euler on evenly
  spaced times (``DDIM`` on ``FlowVelocity`` at ``flow_timesteps``); its 100-step samples are the teacher
  reference of every other method.
* ``reflow``: one reflow round on pairs coupled by the RF (Heun, 32 steps); straightness reported.
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

Writes ``benchmarks/results/few_step[_quick].json`` and one PNG of samples per problem (columns: NFE).
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
PROBLEMS = ("swiss_roll", "gmm8")
TEACHER_STEPS = 16


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
    ftt_dtype: str = "float32"
    ftt_targets: str = "sampled"  # RF rows: "sampled" eps - x0 or "empirical_bayes" E[eps - x0 | x_s]
    seed: int = 0


QUICK = Settings(n_train=4000, n_eval=1000, repeats=8, sweeps=4, ftt={"swiss_roll": (6, 10), "gmm8": (6, 8)},
                 nn_width=64, nn_depth=2, nn_steps=3000, student_steps=400, cd_steps=8, cd_iterations=8,
                 compress_ranks=(2, 6), distill_repeats=4, distill_sweeps=2)
# FULL: 2x the data and evaluation samples, larger FTTs and networks, 2x the Adam steps and a 16-step CD grid
FULL = Settings(n_train=8000, n_eval=2000, repeats=8, sweeps=4, ftt={"swiss_roll": (8, 12), "gmm8": (8, 8)},
                nn_width=128, nn_depth=2, nn_steps=6000, student_steps=800, cd_steps=16, cd_iterations=8,
                compress_ranks=(2, 4, 8), distill_repeats=2, distill_sweeps=2)


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


def make_data(name, s: Settings):
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
    def __init__(self, name, s: Settings, quick: bool):
        self.name, self.s, self.quick = name, s, quick
        self.x, self.ref, floor = make_data(name, s)
        self.dim = self.x.shape[1]
        self.schedule = cosine_schedule(T, dtype=jnp.float64)
        self.key = jax.random.key(s.seed + 1)
        self.rank, self.m = s.ftt[name]
        self.sigma_data = float(jnp.sqrt(jnp.mean(self.x**2)))
        self.rows = []  # one dict per (method, model, nfe)
        self.info = {"floor": quality(floor, self.ref, jax.random.key(7)), "train_time": {}, "params": {},
                     "straightness": {}}
        self.samples = {}

    def k(self, tag):
        return jax.random.fold_in(self.key, sum(map(ord, tag)))

    # ------------------------------------------------------------------ models
    def ftt(self, T_model, rank=None, time_m=None, key="ftt"):
        return FTTDenoiser(self.dim, T_model, rank=rank or self.rank, m=self.m, time_m=time_m or self.m,
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
        self.rows.append({"problem": self.name, "method": method, "model": kind, "nfe": nfe, **q,
                          "train_time": seconds})
        self.samples[(method, kind, nfe)] = samples[:1000]
        print(f"  {self.name:10s} {method:9s} {kind:4s} NFE {nfe:4d}  MMD² {q['mmd2'] if ok else float('nan'):9.5f}"
              f"  SW {q['sw'] if ok else float('nan'):7.4f}", flush=True)

    def draw(self, model, sampler, prediction="eps"):
        return sample(model, self.schedule, sampler, jax.random.key(99), (self.s.n_eval, self.dim),
                      prediction=prediction).samples

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
                model, t_fit = timed(lambda: self.fit_ftt(flow, rows))  # warm start from the 1-RF
            else:
                pairs = jnp.stack([x0, eps], axis=1)
                model, t_fit = timed(lambda: self.train_nn(
                    flow, pairs, lambda m, k, b: flow_matching_loss(m, k, b[:, 0], eps=b[:, 1]), s.nn_steps // 2))
            self.info["train_time"][f"reflow {kind}"] = t_pairs + t_fit
            self.eval_flow("reflow", kind, model, t_pairs + t_fit)

    def progressive(self):
        s = self.s
        for kind, flow in self.teachers.items():
            grid = tuple(int(t) for t in flow_timesteps(self.schedule, TEACHER_STEPS))
            teacher, prediction = FlowVelocity(flow, self.schedule), "eps"
            student = self.ftt(T, key="pd") if kind == "ftt" else self.nn("pd")
            total = 0.0
            times = []
            while True:
                g = student_grid(grid)

                def rows_of(key, batch, teacher=teacher, grid=grid, prediction=prediction):
                    return progressive_distillation_rows(teacher, self.schedule, grid, key, batch,
                                                         prediction=prediction, target="x0")

                if kind == "ftt":
                    rows = rows_of(self.k(f"pd {len(g)}"), self.distill_rows())
                    sweeps = s.distill_sweeps if times else s.sweeps  # the first round starts from scratch
                    student, sec = timed(lambda: self.fit_ftt(student, rows, sweeps))
                else:
                    student, sec = timed(lambda: self.train_nn(
                        student, self.x, lambda m, k, b: regression_loss(m, *rows_of(k, b)), s.student_steps,
                        ema=0.99))
                total += sec
                times.append(sec)
                self.record("PD", kind, len(g), self.draw(student, DDIM(timesteps=g), prediction="x0"), total)
                teacher, prediction, grid = student, "x0", g
                if len(g) == 1:
                    break
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
            ax.scatter(ref[:, 0], ref[:, 1], s=1, c="0.85")
            x = run.samples.get((method, kind, nfe))
            if x is not None and np.all(np.isfinite(x)):
                ax.scatter(x[:, 0], x[:, 1], s=1, c="C0" if kind == "ftt" else "C1")
            ax.set_xlim(-3, 3)
            ax.set_ylim(-3, 3)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"NFE {nfe}")
            if j == 0:
                ax.set_ylabel(f"{method} {kind}", fontsize=8)
    fig.suptitle(f"{run.name}: samples per NFE (grey: data; dims 0, 1)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def table(rows, info):
    lines = []
    for problem in dict.fromkeys(r["problem"] for r in rows):
        floor = info[problem]["floor"]
        lines.append(f"\n{problem}: data floor MMD² {floor['mmd2']:.5f}, SW {floor['sw']:.4f}")
        lines.append(f"{'method':12s} {'model':5s} " + " ".join(f"{'NFE ' + str(n):>17s}" for n in NFES)
                     + f" {'time s':>8s}")
        for method, kind in dict.fromkeys((r["method"], r["model"]) for r in rows if r["problem"] == problem):
            cells = []
            time_s = None
            for nfe in NFES:
                r = next((r for r in rows if (r["problem"], r["method"], r["model"], r["nfe"])
                          == (problem, method, kind, nfe)), None)
                if r is None:
                    cells.append(f"{'-':>17s}")
                elif r["mmd2"] is None:
                    cells.append(f"{'non-finite':>17s}")
                else:
                    cells.append(f"{r['mmd2']:8.4f}/{r['sw']:7.3f} ".rjust(17))
                    time_s = max(time_s or 0.0, r["train_time"] or 0.0)  # rounds: the time of all of them
            lines.append(f"{method:12s} {kind:5s} " + " ".join(cells) + f" {time_s or 0:8.1f}")
    lines.append("(cells: MMD² / SW; time: wall seconds of the fits or training, all rounds/iterations together)")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (minutes on a laptop CPU)")
    parser.add_argument("--problems", nargs="+", choices=PROBLEMS, default=PROBLEMS,
                        help="problems to run (a subset writes its own result files)")
    parser.add_argument("--ftt-targets", choices=("sampled", "empirical_bayes"), default=None,
                        help="targets of the FTT rectified flow's rows (default: the preset's)")
    args = parser.parse_args()
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
        run = Run(name, s, args.quick)
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
