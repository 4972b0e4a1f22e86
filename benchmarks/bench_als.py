"""W-ALS benchmark: jaxtt TT-ALS versus teneva's ``als_func``, plus scaling curves.

Workload W-ALS: d = 8, N = 20,000 points uniform on
[-1, 1]^8, f(x) = sin(Σ x_i) + 0.5 Π_{i<=3} cos(x_i), m = 10 basis functions per
variable (Legendre for jaxtt, teneva's Chebyshev), rank 6, 10 sweeps, held-out
relative error on 5,000 points. Both start from the constant function plus small
noise (teneva stalls from a random start). jaxtt uses the Legendre
basis orthonormal on [-1, 1] (the same function space as plain Legendre; it keeps
the interfaces of canonical-form trains at unit second moment on uniform data, so
float32 stays finite at d = 64 and CG local solves are well conditioned). jaxtt
runs with exact Cholesky local solves and with 8 warm-started Jacobi-CG
iterations per local solve (``cg_maxiter=8``); configurations are interleaved over
``--repeats`` rounds and the median time per sweep is reported.

Run:  .venv-bench/bin/python benchmarks/bench_als.py [--quick]
Writes benchmarks/results/bench_als.json and bench_als.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from _timing import matmul_peak

RESULTS = Path(__file__).resolve().parent / "results"


def target(x):
    return np.sin(x.sum(1)) + 0.5 * np.prod(np.cos(x[:, :3]), axis=1)


def w_als_data(n=20_000, n_val=5_000, d=8, seed=0):
    rng = np.random.default_rng(seed)
    x, x_val = rng.uniform(-1, 1, (n, d)), rng.uniform(-1, 1, (n_val, d))
    return x, target(x), x_val, target(x_val)


def run_jaxtt(x, y, x_val, y_val, *, m=10, rank=6, sweeps=10, dtype="float32", chunk_size=4096, reg=0.0,
              cg_maxiter=0):
    import jax
    import jax.numpy as jnp

    from jaxtt.basis import Legendre
    from jaxtt.ftt import FTT, constant_init
    from jaxtt.solvers import ALS, fit
    from jaxtt.solvers.als import compiled_sweep
    from jaxtt.tt import feasible_ranks

    jax.clear_caches()  # every run compiles afresh, so first_sweep_s always includes compilation
    compiled_sweep.cache_clear()
    dt = jnp.dtype(dtype)
    bases = [Legendre(m, orthonormal=True)] * x.shape[1]
    ranks = feasible_ranks([m] * x.shape[1], rank)  # r_1 <= m: only interior ranks can exceed m
    model = FTT(constant_init(bases, ranks, dtype=dt, key=jax.random.key(0)), bases)
    model, hist = fit(model, jnp.asarray(x, dt), jnp.asarray(y, dt),
                      ALS(reg=reg, chunk_size=chunk_size, cg_maxiter=cg_maxiter), max_steps=sweeps, stagnation=None,
                      validation=(jnp.asarray(x_val, dt), jnp.asarray(y_val, dt)), progress=False)
    sweep_times = hist.time[1:]  # entry 0 is the start (features and loss), not a sweep
    return {
        "first_sweep_s": sweep_times[0],
        "time_per_sweep_s": float(np.median(sweep_times[1:])) if len(sweep_times) > 1 else sweep_times[0],
        "val_error": hist.val_residual[-1],
        "val_error_per_sweep": hist.val_residual[1:],
    }


def run_teneva(x, y, x_val, y_val, *, m=10, rank=6, sweeps=10, lamb=1e-3):
    import teneva

    d = x.shape[1]
    rng = np.random.default_rng(0)
    cores = []
    for k in range(d):
        r0, r1 = (1 if k == 0 else rank), (1 if k == d - 1 else rank)
        core = 1e-2 * rng.standard_normal((r0, m, r1))
        core[0, 0, 0] += 1.0  # T_0 = 1: the constant function
        cores.append(core)
    info = {}
    start = time.perf_counter()
    result = teneva.als_func(x, y, cores, a=-1.0, b=1.0, nswp=sweeps, lamb=lamb, info=info, e=1e-16)
    total = time.perf_counter() - start
    pred = teneva.func_get(x_val, result, -1.0, 1.0)
    err = float(np.linalg.norm(pred - y_val) / np.linalg.norm(y_val))
    return {"time_per_sweep_s": total / max(info["nswp"], 1), "val_error": err, "sweeps": info["nswp"]}


def gram_throughput(n=20_000, m=10, rank=6, dtype="float32", repeats=5):
    """GFLOP/s of one interior Gram assembly (p = r m r unknowns): 2 N p² flops."""
    import jax
    import jax.numpy as jnp

    from jaxtt.solvers._local import normal_equations

    rng = np.random.default_rng(0)
    left, feat, right = (jnp.asarray(rng.standard_normal(s), dtype) for s in [(n, rank), (n, m), (n, rank)])
    y = jnp.asarray(rng.standard_normal(n), dtype)
    f = jax.jit(lambda a, b, c, y: normal_equations(a, [b], c, y, 4096))
    jax.block_until_ready(f(left, feat, right, y))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(f(left, feat, right, y))
        times.append(time.perf_counter() - t0)
    p = rank * m * rank
    return 2 * n * p * p / np.median(times) / 1e9


def scaling_point(n, d, rank, m, sweeps=2):
    """Steady-state time per sweep and compile + first sweep for one configuration, in this process.

    Both local solvers run: exact Cholesky and 8 CG iterations. In float32; where
    float32 fails the failure is recorded and the point rerun in float64.
    """
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (n, d))
    y = target(x)
    row = {"n": n, "d": d, "rank": rank, "m": m, "dtype": "float32"}
    for label, cg in [("cholesky", 0), ("cg8", 8)]:
        try:
            out = run_jaxtt(x, y, x[:1000], y[:1000], m=m, rank=rank, sweeps=sweeps, cg_maxiter=cg)
        except ValueError as err:
            row.update(dtype="float64", float32_failure=str(err))
            out = run_jaxtt(x, y, x[:1000], y[:1000], m=m, rank=rank, sweeps=sweeps, dtype="float64", cg_maxiter=cg)
        row[label] = {"time_per_sweep_s": out["time_per_sweep_s"], "first_sweep_s": out["first_sweep_s"],
                      "val_error": out["val_error"]}
    return row


def peak_memory_point(n):
    """Peak RSS (MB) of a fresh process fitting N samples (d=8, m=10, r=6, one sweep)."""
    code = (
        "import resource, sys; sys.path.insert(0, %r); import bench_als as b; "
        "b.scaling_point(%d, 8, 6, 10, sweeps=1); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
    ) % (str(Path(__file__).resolve().parent), n)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def xla_sweep_memory(n, d=8, rank=6, m=10):
    """XLA's memory analysis (MB) of one compiled float32 sweep on N samples, per local solver (nothing runs)."""
    import jax
    import jax.numpy as jnp

    from jaxtt.basis import Legendre
    from jaxtt.ftt import FTT, constant_init
    from jaxtt.solvers.als import compiled_sweep

    bases = [Legendre(m, orthonormal=True)] * d
    model = FTT(constant_init(bases, rank, dtype=jnp.float32, key=jax.random.key(0)), bases)
    x, y = jax.ShapeDtypeStruct((n, d), jnp.float32), jax.ShapeDtypeStruct((n,), jnp.float32)
    out = {}
    for label, cg in [("cholesky", 0), ("cg8", 8)]:
        stats = compiled_sweep(0, 4096, cg).lower(model, x, y, None, 0.0).compile().memory_analysis()
        out[label] = {"arguments_mb": stats.argument_size_in_bytes / 2**20,
                      "temporaries_mb": stats.temp_size_in_bytes / 2**20}
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer scaling points")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved rounds of the W-ALS comparison")
    args = parser.parse_args()
    import jax

    jax.config.update("jax_enable_x64", True)
    import teneva

    machine = {"processor": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
               "jax": jax.__version__, "teneva": teneva.__version__, "backend": jax.default_backend(),
               "load_average_start": os.getloadavg()}
    peak = matmul_peak()
    x, y, x_val, y_val = w_als_data()
    configs = {
        "jaxtt_f32": dict(dtype="float32"),
        "jaxtt_f64": dict(dtype="float64"),
        "jaxtt_f32_cg8": dict(dtype="float32", cg_maxiter=8),
        "jaxtt_f64_cg8": dict(dtype="float64", cg_maxiter=8),
    }
    runs = {name: [] for name in [*configs, "teneva"]}
    for _ in range(args.repeats):
        for name, kwargs in configs.items():
            runs[name].append(run_jaxtt(x, y, x_val, y_val, **kwargs))
        runs["teneva"].append(run_teneva(x, y, x_val, y_val))
    rows = {name: {**results[-1], "time_per_sweep_s": float(np.median([r["time_per_sweep_s"] for r in results])),
                   "time_per_sweep_all_s": [r["time_per_sweep_s"] for r in results]}
            for name, results in runs.items()}
    gram = gram_throughput()
    print(f"W-ALS (d=8, N=20000, m=10, r=6, 10 sweeps) on {machine}")
    print(f"{'solver':<16}{'s/sweep':>10}{'val error':>12}{'speed-up vs teneva':>22}")
    for name, row in rows.items():
        ratio = rows["teneva"]["time_per_sweep_s"] / row["time_per_sweep_s"]
        print(f"{name:<16}{row['time_per_sweep_s']:>10.3f}{row['val_error']:>12.2e}{ratio:>22.1f}")
    print(f"Gram assembly: {gram:.1f} GFLOP/s = {gram / peak:.0%} of the measured f32 matmul peak {peak:.1f} GFLOP/s")

    grid = {
        "n": [(n, 8, 6, 10) for n in ([1_000, 10_000, 100_000] if args.quick else [1_000, 10_000, 100_000, 1_000_000])],
        "d": [(20_000, d, 6, 10) for d in ([2, 8, 16] if args.quick else [2, 4, 8, 16, 32, 64])],
        "rank": [(20_000, 8, r, 10) for r in ([2, 8] if args.quick else [2, 4, 8, 16])],
        "m": [(20_000, 8, 6, m) for m in ([4, 16] if args.quick else [4, 8, 16, 32])],
    }
    scaling = {key: [scaling_point(*cfg) for cfg in cfgs] for key, cfgs in grid.items()}
    for key, points in scaling.items():
        print(f"scaling in {key}: " + ", ".join(
            f"{p[key]}: {p['cholesky']['time_per_sweep_s']:.3f}s / cg8 {p['cg8']['time_per_sweep_s']:.3f}s "
            f"(first {p['cholesky']['first_sweep_s']:.1f}s, {p['dtype']})" for p in points))
    memory_n = 100_000 if args.quick else 1_000_000
    memory = {"n": memory_n, "peak_rss_mb": peak_memory_point(memory_n), "xla": xla_sweep_memory(memory_n)}
    print(f"peak RSS fitting N={memory_n} (process, both solvers): {memory['peak_rss_mb']:.0f} MB; XLA temporaries "
          "of one sweep: " + ", ".join(f"{k} {v['temporaries_mb']:.0f} MB" for k, v in memory["xla"].items()))

    machine["load_average_end"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    result = {"machine": machine, "matmul_peak_gflops": peak, "w_als": rows, "gram_gflops": gram,
              "scaling": scaling, "memory": memory}
    tmp = RESULTS / "bench_als.json.tmp"
    tmp.write_text(json.dumps(result, indent=2))
    os.replace(tmp, RESULTS / "bench_als.json")
    plot(scaling)


def plot(scaling):
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    for ax, (key, points) in zip(axes, scaling.items()):
        xs = [p[key] for p in points]
        for solver, color in [("cholesky", "C0"), ("cg8", "C1")]:
            ax.loglog(xs, [p[solver]["time_per_sweep_s"] for p in points], "o-", color=color,
                      label=f"{solver}: time per sweep")
            ax.loglog(xs, [p[solver]["first_sweep_s"] for p in points], "s--", color=color, alpha=0.6,
                      label=f"{solver}: first sweep (with compile)")
        if key != "n":
            ax.set_xscale("log", base=2)
            ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel(key)
        ax.set_ylabel("seconds")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("jaxtt TT-ALS scaling (base: N=20000, d=8, r=6, m=10)")
    fig.tight_layout()
    tmp = RESULTS / "bench_als.tmp.png"
    fig.savefig(tmp, dpi=120)
    os.replace(tmp, RESULTS / "bench_als.png")


if __name__ == "__main__":
    main()
