"""How much TT rank does the exact ε* of a Gaussian mixture need, as a function of the dimension D?

Run::

    .venv/bin/python benchmarks/bench_eps_rank.py [--quick]

Separates approximation from estimation: the FTT is fitted to the *exact* ``ε*(x_t, t)`` of the FTT-vs-NN
study's mixtures (``study_ftt_vs_nn.make_problem("gmm{D}")``: 6 full-covariance components in D dimensions,
the study's ``gmm8`` and ``gmm16`` among them; linear schedule T = 1000), so no sampling noise is left in the targets and the held-out error is pure
approximation (plus the optimiser's) error. For D in {2, 4, 8, 16} and a ladder of ranks, one scalar FTT over
the variables ``(x_t, t/T)`` (the default ``FTTDenoiser``'s inputs, 8 Legendre functions per variable on
(−4, 4)) is fitted to the first component ``ε*_1`` on ``n`` fresh triples (one per data point, ``t`` uniform),
by 8 CGLS-8 ALS sweeps from the constant start, and scored on as many held-out triples:

- ``excess``: ``E (ε_θ,1 − ε*_1)²``, the per-component excess loss the study reports (its NN reached 0.0016 on
  the 8-D mixture, sampled and regressed together);
- ``relative``: ``excess / E (ε*_1)²``.

Writes ``benchmarks/results/bench_eps_rank[_quick].json`` and ``.png`` (error against rank, one line per D).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parent))
jax.config.update("jax_enable_x64", True)
import bench_targets  # noqa: E402
import study_ftt_vs_nn as study  # noqa: E402

from jaxtt.diffusion import linear_schedule, training_triples  # noqa: E402
from jaxtt.ftt import FTT, FTTDenoiser, constant_init  # noqa: E402
from jaxtt.solvers import ALS, fit  # noqa: E402
from jaxtt.tt import feasible_ranks  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
FULL = {2: (1, 2, 4, 8), 4: (1, 2, 4, 8, 16), 8: (1, 2, 4, 8, 16), 16: (1, 2, 4, 8)}  # D = 2: rank <= m
QUICK = {2: (1, 2, 4, 8), 4: (1, 2, 4, 8), 8: (1, 2, 4, 8), 16: (1, 2, 4)}


def triples(mixture, schedule, key, n):
    k_x, k_t = jax.random.split(key)
    x_t, t, _ = training_triples(k_t, mixture.sample(k_x, n), schedule, repeats=1)
    return x_t, t, mixture.optimal_eps(x_t, t, schedule)[:, 0]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="ranks up to 8 and 20,000 rows")
    args = parser.parse_args(argv)
    load_start, start = os.getloadavg()[0], time.perf_counter()
    ladder, n = (QUICK, 20_000) if args.quick else (FULL, 40_000)
    schedule = linear_schedule(1000, dtype=jnp.float64)
    settings = study.settings_for(True)
    rows = []
    for dim, ranks in ladder.items():
        mixture = study.make_problem(f"gmm{dim}", settings).mixture
        x_t, t, y = triples(mixture, schedule, jax.random.key(1), n)
        xv, tv, yv = triples(mixture, schedule, jax.random.key(2), n)
        denoiser = FTTDenoiser(dim, 1000, rank=1, m=8, key=jax.random.key(0))
        bases = denoiser.ftt.bases
        v, vv = denoiser.variables(x_t, t), denoiser.variables(xv, tv)   # x_1..x_D (clamped), t/T
        for rank in ranks:
            begin = time.perf_counter()
            ranks = feasible_ranks([b.m for b in bases], rank)  # capped by the unfolding sizes at the ends
            model = FTT(constant_init(bases, ranks, dtype=jnp.float64, key=jax.random.key(3)), bases)
            model, result = fit(model, v, y, ALS(cg_maxiter=8, reg=1e-8), max_steps=8, stagnation=None,
                                progress=False, restart=False)
            jax.block_until_ready(model)
            excess = float(jnp.mean((model(vv) - yv) ** 2))
            rows.append({"dim": dim, "rank": rank, "params": sum(c.size for c in model.tt.cores), "rows": n,
                         "excess": excess, "relative": excess / float(jnp.mean(yv**2)),
                         "train_residual": result.train_residual[-1], "fit_s": time.perf_counter() - begin})
            print(" | ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in rows[-1].items()),
                  flush=True)
    tag = "bench_eps_rank_quick" if args.quick else "bench_eps_rank"
    bench_targets.write_results(RESULTS / f"{tag}.json", "benchmarks/bench_eps_rank.py"
                                + (" --quick" if args.quick else ""), rows, load_start, start)
    print(f"\n{'D':>3s} {'rank':>5s} {'params':>7s} {'excess':>9s} {'relative':>9s} {'fit s':>7s}")
    for r in rows:
        print(f"{r['dim']:3d} {r['rank']:5d} {r['params']:7d} {r['excess']:9.5f} {r['relative']:9.4f} "
              f"{r['fit_s']:7.1f}")
    plot(rows, RESULTS / f"{tag}.png")
    print(f"\nwrote {RESULTS / tag}.json/.png; load {load_start:.1f} → {os.getloadavg()[0]:.1f}")


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for dim in dict.fromkeys(r["dim"] for r in rows):
        mine = [r for r in rows if r["dim"] == dim]
        ax.plot([r["rank"] for r in mine], [r["excess"] for r in mine], "o-", label=f"D = {dim}")
    ax.axhline(0.0016, color="0.5", ls="--", lw=1, label="study NN, D = 8 (all error)")
    ax.set(xscale="log", yscale="log", xlabel="TT rank", ylabel="held-out excess E(ε_θ,1 − ε*_1)²",
           title="FTT fitted to the exact ε* (no target noise)")
    ax.set_xticks(sorted({r["rank"] for r in rows}), [str(k) for k in sorted({r["rank"] for r in rows})])
    ax.minorticks_off()
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    os.replace(tmp, path)
    plt.close(fig)


if __name__ == "__main__":
    main()
