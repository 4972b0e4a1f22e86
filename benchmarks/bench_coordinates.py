"""Coordinates of closed-form FTT denoisers: time as t/T or log-SNR, raw inputs or the data's whitened axes.

Run::

    .venv/bin/python benchmarks/bench_coordinates.py --quick   # swiss roll, 8-D mixture, 8-D manifold, digits-PCA-8
    .venv/bin/python benchmarks/bench_coordinates.py           # adds the 16-D mixture and digits-PCA-16

Same problems, training sets, evaluation keys and metrics as ``benchmarks/bench_targets.py`` (the FTT-vs-NN
study's ``make_problem`` and ``Evaluator``: 10,000 training points, linear schedule T = 1000, float32, 2000
DDIM-100 samples, MMD² and sliced W2 with ``clip_x0`` to the data box + 5 %, the excess loss
E‖ε_θ − ε*‖²/D against the exact ε* of the mixtures on held-out triples), plus two problems the study lacked:
``manifold8``, the swiss roll with ``N(0, 0.05²)`` in six more coordinates under a fixed random rotation of
R^8, and ``digits_pca8`` / ``digits_pca16``, scikit-learn's digits on their first 8 / 16 principal axes
(1197 training, 300 held-out digits; anisotropy kept). Every arm is the best configuration of
``bench_targets.py``: ``FTTDenoiser(rank 8, m 8)``, empirical-Bayes targets, 4 triples per point, 4 CGLS-8 ALS
sweeps. The arms differ only in what the FTT sees:

- ``t/T``: the step as time, the data as given (today's default);
- ``log-SNR``: the normalised log-SNR as time (``time_variable="log_snr"``);
- ``whitened``: inputs in the data's principal axes, each noised marginal at unit variance, noise predicted in
  those axes (:class:`jaxtt.ftt.Whitening`);
- ``whitened + log-SNR``: both;
- ``v-prediction`` / ``x0-prediction``: the FTT represents ``v`` or ``x0`` (``prediction=``), the model still
  returns ``ε``.

Writes ``benchmarks/results/bench_coordinates_{quick,full}.json`` (with ``--problems``/``--arms``, their names are
appended to the file name).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_targets  # noqa: E402
import study_ftt_vs_nn as study  # noqa: E402

from jaxtt.diffusion import linear_schedule  # noqa: E402
from jaxtt.ftt import FTTDenoiser, Whitening  # noqa: E402
from jaxtt.solvers import ALS, fit_denoiser  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
ARMS = (("t/T", "step", False, "eps"), ("log-SNR", "log_snr", False, "eps"), ("whitened", "step", True, "eps"),
        ("whitened + log-SNR", "log_snr", True, "eps"), ("v-prediction", "step", False, "v"),
        ("x0-prediction", "step", False, "x0"))


QUICK = ("swiss_roll", "gmm8", "manifold8", "digits_pca8")
FULL = ("swiss_roll", "gmm8", "gmm16", "manifold8", "digits_pca8", "digits_pca16")


def run(problems, arms=None):
    settings = study.settings_for(True)
    schedule = linear_schedule(settings.T)
    rows = []
    for name in problems:
        problem = study.make_problem(name, settings)
        evaluator = study.Evaluator(problem, schedule, settings)
        if name.startswith("digits"):     # a finite set: compare with the held-out digits and as many training digits
            train_pool, other = problem.x[: problem.x_test.shape[0]], problem.x_test
        else:
            train_pool, other = problem.x, bench_targets.held_out_like(problem, problem.x.shape[0], jax.random.key(99))
        for arm, time_variable, whiten, prediction in ARMS:
            if arms and arm not in arms:
                continue
            start = time.perf_counter()
            model = FTTDenoiser(problem.dim, settings.T, rank=8, m=8, schedule=schedule, time_variable=time_variable,
                                whitening=Whitening.fit(problem.x) if whiten else None, prediction=prediction,
                                key=jax.random.key(1))
            model, results = fit_denoiser(model, problem.x, schedule, jax.random.key(2), solver=ALS(cg_maxiter=8),
                                          steps=4, repeats=4, targets="empirical_bayes", progress=False)
            jax.block_until_ready(model)
            fit_s = time.perf_counter() - start
            quality = evaluator(model)
            clipped = np.asarray(evaluator.samples(model, evaluator.box))
            ratio = float(np.median(bench_targets.nearest_distance(clipped, train_pool))
                          / np.median(bench_targets.nearest_distance(clipped, other)))
            row = {"problem": name, "arm": arm, "fit_s": fit_s, "train_residual": results[-1].train_residual[-1],
                   "memorisation_ratio": ratio,
                   **{k: quality.get(k) for k in ("mmd", "sw", "mmd_clip", "sw_clip", "outlier_frac")}}
            if problem.mixture is not None:
                row["excess_loss"] = bench_targets.excess_loss(model, problem, schedule, jax.random.key(7))
            rows.append(row)
            print(" | ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
                  flush=True)
        rows.append({"problem": name, "arm": "data floor", "mmd": evaluator.floor.get("mmd"),
                     "sw": evaluator.floor.get("sw")})
        reference = bench_targets.nn_reference(name)
        if reference:
            rows.append({"problem": name, "arm": "NN (study_full.json)", **reference})
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--problems", nargs="+", choices=FULL, help="run only these problems (default: all of the mode)")
    parser.add_argument("--arms", nargs="+", choices=[a[0] for a in ARMS], help="run only these arms (default: all)")
    args = parser.parse_args(argv)
    load_start = os.getloadavg()[0]
    start = time.perf_counter()
    rows = run(args.problems or (QUICK if args.quick else FULL), args.arms)
    mode = "quick" if args.quick else "full"
    if args.problems:
        mode += "_" + "_".join(args.problems)
    if args.arms:
        mode += "_" + "_".join(arm.replace("/", "").replace(" + ", "+").replace(" ", "") for arm in args.arms)
    command = " ".join(["benchmarks/bench_coordinates.py", *(["--quick"] if args.quick else []),
                        *(["--problems", *args.problems] if args.problems else []),
                        *(["--arms", *(f"'{a}'" for a in args.arms)] if args.arms else [])])
    path = RESULTS / f"bench_coordinates_{mode}.json"
    bench_targets.write_results(path, command, rows, load_start, start)
    bench_targets.print_rows(rows, [("problem", "problem", 10), ("arm", "arm", 22)])
    print(f"\nwrote {path}; load {load_start:.1f} → {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
