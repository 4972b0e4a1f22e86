"""Regression targets for closed-form FTT denoisers: sampled noise against its empirical-Bayes mean.

Run::

    .venv/bin/python benchmarks/bench_targets.py --quick      # swiss roll + 8-D mixture, ~10 min on 2 shared cores
    .venv/bin/python benchmarks/bench_targets.py              # adds the 16-D mixture

Same problems, training sets, evaluation keys and metrics as ``benchmarks/study_ftt_vs_nn.py`` (its
``make_problem`` and ``Evaluator``): 10,000 training points, linear schedule T = 1000, float32, quality of 2000
DDIM-100 samples (MMD², sliced W2, with and without ``clip_x0``). The FTT arm is the study's 8-D configuration
scaled up as the issue on denoisers beyond 2-D measured it: ``FTTDenoiser(rank 8, m 8)``, CGLS-8 ALS sweeps,
4 regression triples per point, ``draws × steps`` sweeps. Compared:

- ``sampled``: regression on the drawn noise ε (Monte Carlo L_simple, today's default);
- ``empirical_bayes``: regression on E[ε | x_t] under the training set (:func:`jaxtt.diffusion.empirical_bayes_eps`).

Also reported: the excess loss E‖ε_θ − ε*‖²/D against the exact ε* of the mixtures on held-out triples (the
measure the mean relative ε-error distorts at small t), and memorisation: the median distance of the clipped
samples to their nearest training point divided by the median distance to their nearest point of a held-out set
of the same size (1: no more copying than an independent draw; well below 1: samples sit on training points).
The NN reference values are read from ``benchmarks/results/study_full.json`` (same problems and evaluator) and
are labelled so. Writes ``benchmarks/results/bench_targets_{quick,full}.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import study_ftt_vs_nn as study  # noqa: E402

from jaxtt.data import toy_dataset  # noqa: E402
from jaxtt.diffusion import linear_schedule, training_triples  # noqa: E402
from jaxtt.ftt import FTTDenoiser  # noqa: E402
from jaxtt.solvers import ALS, fit_denoiser  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
ARMS = (("sampled", 1, 4), ("sampled", 4, 2), ("empirical_bayes", 1, 4), ("empirical_bayes", 4, 2))


def held_out_like(problem, n, key):
    """An independent draw of ``n`` points from the problem's distribution (the memorisation reference)."""
    if problem.mixture is not None:
        return problem.mixture.sample(key, n)
    if problem.name == "manifold8":
        return study.embedded_swiss_roll(key, n)
    return toy_dataset(problem.name, key, n)


def nearest_distance(points, pool, chunk=512):
    pool = jnp.asarray(pool)
    out = []
    for start in range(0, points.shape[0], chunk):
        block = jnp.asarray(points[start:start + chunk])
        d2 = jnp.sum(block**2, 1)[:, None] - 2 * block @ pool.T + jnp.sum(pool**2, 1)[None]
        out.append(np.sqrt(np.maximum(np.asarray(jnp.min(d2, axis=1)), 0)))
    return np.concatenate(out)


def excess_loss(model, problem, schedule, key, n=4000):
    """E‖ε_θ − ε*‖²/D on held-out triples with t uniform in 1..T."""
    x_t, t, _ = training_triples(key, problem.mixture.sample(jax.random.fold_in(key, 1), n), schedule, 1)
    return float(jnp.mean((model(x_t, t) - problem.mixture.optimal_eps(x_t, t, schedule)) ** 2))


def nn_reference(problem_name):
    path = RESULTS / "study_full.json"
    if not path.exists():
        return None
    for run in json.loads(path.read_text())["runs"]:
        if run["problem"] == problem_name and run["arm"] == "NN":
            return {k: run["quality"].get(k) for k in ("mmd", "sw", "mmd_clip", "sw_clip")} | {
                "train_s": run.get("train_s")}
    return None


def run(quick: bool):
    settings = study.settings_for(True)
    schedule = linear_schedule(settings.T)
    problems = ("swiss_roll", "gmm8") if quick else ("swiss_roll", "gmm8", "gmm16")
    rows = []
    for name in problems:
        problem = study.make_problem(name, settings)
        evaluator = study.Evaluator(problem, schedule, settings)
        other = held_out_like(problem, problem.x.shape[0], jax.random.key(99))
        for targets, draws, steps in ARMS:
            model = FTTDenoiser(problem.dim, settings.T, rank=8, m=8, key=jax.random.key(1))
            start = time.perf_counter()
            model, results = fit_denoiser(model, problem.x, schedule, jax.random.key(2), solver=ALS(cg_maxiter=8),
                                          steps=steps, repeats=4, draws=draws, targets=targets, progress=False)
            jax.block_until_ready(model)
            fit_s = time.perf_counter() - start
            quality, samples = evaluator(model, keep_samples=True)
            clipped = np.asarray(evaluator.samples(model, evaluator.box))
            ratio = float(np.median(nearest_distance(clipped, problem.x)) / np.median(nearest_distance(clipped, other)))
            row = {"problem": name, "targets": targets, "draws": draws, "steps": steps, "fit_s": fit_s,
                   "train_residual": results[-1].train_residual[-1], "memorisation_ratio": ratio,
                   **{k: quality.get(k) for k in ("mmd", "sw", "mmd_clip", "sw_clip", "outlier_frac")}}
            if problem.mixture is not None:
                row["excess_loss"] = excess_loss(model, problem, schedule, jax.random.key(7))
            rows.append(row)
            print(" | ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
                  flush=True)
        floor = evaluator.floor
        rows.append({"problem": name, "targets": "data floor", "mmd": floor.get("mmd"), "sw": floor.get("sw")})
        reference = nn_reference(name)
        if reference:
            rows.append({"problem": name, "targets": "NN (study_full.json)", **reference})
    return rows


def write_results(path: Path, command: str, rows: list, load_start: float, start: float) -> None:
    """Atomically write the rows with the command, the machine and its load."""
    out = {"command": command,
           "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "jax": jax.__version__,
                       "load_start": load_start, "load_end": os.getloadavg()[0]},
           "total_s": time.perf_counter() - start, "rows": rows}
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=1))
    os.replace(tmp, path)


def print_rows(rows: list, labels: list[tuple[str, str, int]]) -> None:
    """The table of fit seconds, clipped MMD² / SW (plain where no clipped value), excess loss, memorisation,
    after the label columns ``(title, key or callable, width)``."""
    print("\n" + " ".join(f"{title:{width}s}" for title, _, width in labels)
          + f" {'fit s':>7s} {'MMD² clip':>10s} {'SW clip':>8s} {'excess':>8s} {'memo':>6s}")
    for r in rows:
        cells = [f"{(key(r) if callable(key) else r.get(key, '')):{width}s}" for _, key, width in labels]
        for key, width in (("fit_s", 7), ("mmd_clip", 10), ("sw_clip", 8), ("excess_loss", 8),
                           ("memorisation_ratio", 6)):
            value = r.get(key, r.get(key.replace("_clip", "")) if key.endswith("_clip") else None)
            cells.append(f"{value:>{width}.4g}" if isinstance(value, float) else " " * width)
        print(" ".join(cells))


def _budget(row) -> str:
    return f"{row['draws']}×{row['steps']}".rjust(11) if "steps" in row else ""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    load_start = os.getloadavg()[0]
    start = time.perf_counter()
    rows = run(args.quick)
    mode = "quick" if args.quick else "full"
    path = RESULTS / f"bench_targets_{mode}.json"
    write_results(path, " ".join(["benchmarks/bench_targets.py", *(["--quick"] if args.quick else [])]), rows,
                  load_start, start)
    print_rows(rows, [("problem", "problem", 10), ("targets", "targets", 22), ("draws×steps", _budget, 11)])
    print(f"\nwrote {path}; load {load_start:.1f} → {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
