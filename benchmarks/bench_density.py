"""The density route to the score: one TT density fit against FTT regression of the noise, in 8-D.

Run::

    .venv/bin/python benchmarks/bench_density.py          # ~5-10 min on 2 shared cores

Two 8-D Gaussian mixtures of 6 components, 10,000 training points, the linear schedule with T = 1000:

- ``diag8-<seed>``: axis-aligned components (means uniform in [-2, 2]^8, standard deviations uniform in
  [0.2, 0.5]), three parameter draws: its density is a TT of rank 6 on Gaussian bumps;
- ``gmm8``: the FTT-vs-NN study's 8-D mixture (rotated anisotropic covariances ``A Aᵀ + 0.05 I``), the same
  problem, keys and evaluator as ``benchmarks/study_ftt_vs_nn.py``.

Arms: ``fit_density`` (rank r, m bumps per variable, 4 sweeps, the default ridge ``1e-3``) used through
``DensityDenoiser``; FTT regression
``fit_denoiser`` (rank 8, m 8, CGLS-8, 4 triples per point, 4 sweeps) on sampled and on empirical-Bayes targets.
Reported: fit seconds (including compilation), the excess loss E‖ε_θ − ε*‖²/D on held-out triples, and the
study's quality metrics of 2000 DDIM-100 samples with ``clip_x0`` (MMD², sliced W2). The NN row of ``gmm8`` is
read from ``benchmarks/results/study_full.json``. Writes ``benchmarks/results/bench_density.json``.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import study_ftt_vs_nn as study  # noqa: E402
from bench_targets import excess_loss, nn_reference  # noqa: E402

from jaxtt.data import GaussianMixture  # noqa: E402
from jaxtt.diffusion import linear_schedule  # noqa: E402
from jaxtt.ftt import DensityDenoiser, FTTDenoiser, fit_density  # noqa: E402
from jaxtt.solvers import ALS, fit_denoiser  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def diagonal_problem(settings, seed: int = 2024) -> study.Problem:
    key = jax.random.key(seed)
    k_w, k_mu, k_sd, k_train, k_test, k_ref = jax.random.split(key, 6)
    sd = jax.random.uniform(k_sd, (6, 8), minval=0.2, maxval=0.5)
    mixture = GaussianMixture(jax.random.uniform(k_w, (6,), minval=0.5, maxval=1.5),
                              jax.random.uniform(k_mu, (6, 8), minval=-2.0, maxval=2.0),
                              jax.vmap(jnp.diag)(sd**2))
    n = settings.n_train
    return study.Problem(f"diag8-{seed}", mixture.sample(k_train, n), mixture.sample(k_test, settings.n_eval),
                         mixture.sample(k_ref, settings.n_eval), mixture)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    jax.block_until_ready(out)
    return out, time.perf_counter() - start


def main():
    settings = study.settings_for(True)
    schedule = linear_schedule(settings.T)
    load_start = os.getloadavg()[0]
    rows = []
    problems = [diagonal_problem(settings, seed) for seed in (2024, 7, 11)] + [study.make_problem("gmm8", settings)]
    for problem in problems:
        evaluator = study.Evaluator(problem, schedule, settings)
        arms = {f"density r{r} m{m}": (lambda r=r, m=m: DensityDenoiser(
                    fit_density(problem.x, rank=r, m=m, key=jax.random.key(1))[0], schedule))
                for r, m in ((6, 24), (6, 32), (12, 24))}
        for targets in ("sampled", "empirical_bayes"):
            arms[f"regression {targets}"] = lambda targets=targets: fit_denoiser(
                FTTDenoiser(8, settings.T, rank=8, m=8, key=jax.random.key(1)), problem.x, schedule,
                jax.random.key(2), solver=ALS(cg_maxiter=8), steps=4, repeats=4, targets=targets, progress=False)[0]
        for name, build in arms.items():
            model, seconds = timed(build)
            quality = evaluator(model)
            row = {"problem": problem.name, "arm": name, "fit_s": seconds,
                   "excess_loss": excess_loss(model, problem, schedule, jax.random.key(7)),
                   **{k: quality.get(k) for k in ("mmd", "sw", "mmd_clip", "sw_clip", "outlier_frac")}}
            rows.append(row)
            print(" | ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
                  flush=True)
        rows.append({"problem": problem.name, "arm": "data floor", "mmd_clip": evaluator.floor.get("mmd"),
                     "sw_clip": evaluator.floor.get("sw")})
        reference = nn_reference(problem.name)
        if reference:
            rows.append({"problem": problem.name, "arm": "NN (study_full.json)", "fit_s": reference["train_s"],
                         "mmd_clip": reference["mmd_clip"], "sw_clip": reference["sw_clip"]})
    out = {"command": "benchmarks/bench_density.py",
           "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "jax": jax.__version__,
                       "load_start": load_start, "load_end": os.getloadavg()[0]}, "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "bench_density.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=1))
    os.replace(tmp, path)
    print(f"\n{'problem':12s} {'arm':26s} {'fit s':>7s} {'excess':>9s} {'MMD² clip':>10s} {'SW clip':>8s}")
    for r in rows:
        cells = [f"{r['problem']:12s}", f"{r['arm']:26s}"]
        for key, width in (("fit_s", 7), ("excess_loss", 9), ("mmd_clip", 10), ("sw_clip", 8)):
            value = r.get(key)
            cells.append(f"{value:>{width}.4g}" if isinstance(value, float) else " " * width)
        print(" ".join(cells))
    print(f"\nwrote {path}; load {load_start:.1f} -> {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
