"""Output layout and float width of an 8-D FTT regression: one FTT per output or one shared output core?

Run::

    .venv/bin/python benchmarks/bench_output_layout.py

The regression every 8-D distillation round of ``benchmarks/few_step.py`` solves, with the quick mode's sizes:
4,000 points of its 8-D Gaussian mixture, 8 triples ``(x_t, t, ·)`` per point (cosine schedule, T = 1000), the
exact ``ε*(x_t, t)`` of the mixture as targets (so the held-out error is the excess loss
``E‖ε_θ − ε*‖²/D`` on 2,000 fresh triples), ``m = 6`` Legendre functions per variable on (−5, 5), 4 CGLS-8
ALS sweeps. Arms:

- ``independent r4``: ``output="independent"``, 8 FTTs of rank 4 (one vmapped sweep), the benchmark's choice;
- ``core r4/r8/r12``: ``output="core"``, one FTT with the output index as a 9th variable
  (``N·D`` rows), at three ranks;

each in float64 (what ``few_step.py`` uses) and float32. Times are wall seconds of ``fit_regression``, the
first call (with compilation) and a second, warm one. Writes ``benchmarks/results/bench_output_layout.json``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parent))
jax.config.update("jax_enable_x64", True)
import bench_targets  # noqa: E402
import few_step  # noqa: E402

from jaxtt.diffusion import cosine_schedule, training_triples  # noqa: E402
from jaxtt.ftt import FTTDenoiser  # noqa: E402
from jaxtt.solvers import ALS, fit_regression  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
ARMS = (("independent", 4), ("core", 4), ("core", 8), ("core", 12))


def main():
    load_start, start = os.getloadavg()[0], time.perf_counter()
    dim, schedule = 8, cosine_schedule(1000, dtype=jnp.float64)
    mixture = few_step.random_mixture(jax.random.key(0), dim, 4)
    x_t, t, _ = training_triples(jax.random.key(2), mixture.sample(jax.random.key(1), 4000), schedule, repeats=8)
    y = mixture.optimal_eps(x_t, t, schedule)
    xv, tv, _ = training_triples(jax.random.key(4), mixture.sample(jax.random.key(3), 2000), schedule, repeats=1)
    yv = mixture.optimal_eps(xv, tv, schedule)
    rows = []
    for dtype in (jnp.float64, jnp.float32):
        for output, rank in ARMS:
            model = FTTDenoiser(dim, 1000, rank=rank, m=6, domain=(-5.0, 5.0), output=output, dtype=dtype,
                                key=jax.random.key(5))
            seconds = []
            for _ in range(2):
                begin = time.perf_counter()
                fitted, _ = fit_regression(model, x_t.astype(dtype), t, y.astype(dtype), solver=ALS(cg_maxiter=8),
                                           steps=4)
                jax.block_until_ready(fitted)
                seconds.append(time.perf_counter() - begin)
            excess = float(jnp.mean((fitted(xv.astype(dtype), tv) - yv) ** 2))
            rows.append({"dtype": jnp.dtype(dtype).name, "arm": f"{output} r{rank}", "params": fitted.num_params,
                         "first_s": seconds[0], "fit_s": seconds[1], "excess_loss": excess})
            print(" | ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in rows[-1].items()),
                  flush=True)
    path = RESULTS / "bench_output_layout.json"
    bench_targets.write_results(path, "benchmarks/bench_output_layout.py", rows, load_start, start)
    print(f"\n{'dtype':8s} {'arm':15s} {'params':>7s} {'first s':>8s} {'warm s':>7s} {'excess':>8s}")
    for r in rows:
        print(f"{r['dtype']:8s} {r['arm']:15s} {r['params']:7d} {r['first_s']:8.2f} {r['fit_s']:7.2f} "
              f"{r['excess_loss']:8.4f}")
    print(f"\nwrote {path}; load {load_start:.1f} → {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
