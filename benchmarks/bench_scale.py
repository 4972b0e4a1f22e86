"""Scaling benchmark: ALS sweeps against the number of rows (streamed from the host) and the number of devices.

Part 1 (rows): time and peak resident memory of one sweep of out-of-core ALS
(``jaxtt.solvers.streaming.StreamedALS``, rows in host NumPy arrays, moved to
the device in chunks of 65,536) for N up to 10^7 rows, next to the in-memory
``ALS`` for N up to 10^6, and at N = 10^7 once more with the chunks regenerated
from a key (no host arrays). Each point runs in a fresh process so that its
peak RSS (``resource.getrusage``) is its own. Target f(x) = sin(Σ x_i) on
[-1, 1]^4, Legendre(4, orthonormal) bases, rank 3, float64.

Part 2 (devices): ``ALS(mesh=...)`` on 1, 2 and 4 forced host devices
(``--xla_force_host_platform_device_count=4``; they share this machine's cores,
so this shows correctness and overhead, not speed-up) against the plain ``ALS``:
median time per sweep over interleaved repeats and the largest core difference.
The overhead of the sharded path on one device is ``t(mesh of 1) / t(plain) - 1``.

Run:  .venv/bin/python benchmarks/bench_scale.py [--quick]
Writes benchmarks/results/bench_scale.json (bench_scale_quick.json with --quick).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import textwrap
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent

ROWS = textwrap.dedent(
    """
    import json, resource, sys, time
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import numpy as np
    from jaxtt.basis import Legendre
    from jaxtt.ftt import FTT, constant_init
    from jaxtt.solvers import ALS
    from jaxtt.solvers.streaming import StreamedALS

    n, mode, chunk = int(sys.argv[1]), sys.argv[2], 65536
    bases = [Legendre(4, orthonormal=True)] * 4
    model = FTT(constant_init(bases, 3, dtype=jnp.float64, key=jax.random.key(1)), bases)
    f = lambda x: np.sin(x.sum(axis=1))
    if mode == "key":
        def rows(i):
            size = min(chunk, n - i * chunk)
            x = np.asarray(jax.random.uniform(jax.random.fold_in(jax.random.key(0), i), (size, 4), jnp.float64, -1, 1))
            return x, f(x)
        data, solver = rows, StreamedALS(chunk_size=chunk, n_chunks=-(-n // chunk))
    else:
        x = np.random.default_rng(0).uniform(-1, 1, (n, 4))
        data, y = (x, f(x)), f(x)
        solver = StreamedALS(chunk_size=chunk)
    rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
    start = time.perf_counter()
    if mode == "memory":
        solver = ALS(sparse=False)
        state = solver.init(model, x, y)
        first = time.perf_counter()
        state = jax.block_until_ready(solver.step(state))
        second = time.perf_counter()
        state = jax.block_until_ready(solver.step(state))
        residual = float(jnp.linalg.norm(state.model(jnp.asarray(x)) - y) / np.linalg.norm(y))
    else:
        state = solver.init(model, data)
        first = time.perf_counter()
        state = jax.block_until_ready(solver.step(state, data))
        second = time.perf_counter()
        state = jax.block_until_ready(solver.step(state, data))
        residual = float(state.residual)
    end = time.perf_counter()
    print("RESULT" + json.dumps({
        "n": n, "mode": mode, "init_s": first - start, "first_sweep_s": second - first, "sweep_s": end - second,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10, "data_rss_mb": rss_data,
        "loss": float(state.loss), "residual": residual, "backend": jax.default_backend()}))
    """
)

DEVICES = textwrap.dedent(
    """
    import json, sys, time
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import numpy as np
    from jaxtt.basis import Legendre
    from jaxtt.ftt import FTT, constant_init
    from jaxtt.sharding import data_mesh
    from jaxtt.solvers import ALS

    n, repeats = int(sys.argv[1]), int(sys.argv[2])
    bases = [Legendre(6, orthonormal=True)] * 6
    model = FTT(constant_init(bases, 4, dtype=jnp.float64, key=jax.random.key(1)), bases)
    x = jax.random.uniform(jax.random.key(0), (n + 3, 6), jnp.float64, -1, 1)  # uneven: padded on 2 and 4
    y = jnp.sin(x.sum(axis=1))
    out = {"n": n + 3, "devices": jax.device_count()}
    for cg in (0, 8):
        solvers = {"plain": ALS(sparse=False, cg_maxiter=cg)}
        solvers.update({f"mesh{k}": ALS(mesh=data_mesh(jax.devices()[:k]), cg_maxiter=cg) for k in (1, 2, 4)})
        states = {name: s.init(model, x, y) for name, s in solvers.items()}
        final = {name: jax.block_until_ready(s.step(states[name])) for name, s in solvers.items()}  # compile
        times = {name: [] for name in solvers}
        for _ in range(repeats):
            for name, s in solvers.items():
                start = time.perf_counter()
                jax.block_until_ready(s.step(states[name]))
                times[name].append(time.perf_counter() - start)
        ref = final["plain"].model.tt.cores
        out["cholesky" if cg == 0 else f"cg{cg}"] = {
            name: {"median_sweep_s": float(np.median(t)), "min_sweep_s": float(np.min(t)),
                   "max_core_diff": max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(final[name].model.tt.cores, ref)),
                   "loss": float(final[name].loss)}
            for name, t in times.items()}
    print("RESULT" + json.dumps(out))
    """
)


def run(code: str, *args, devices: int | None = None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "")}
    if devices:  # forced host devices are CPU devices, also where an accelerator is the default
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
        env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run([sys.executable, "-c", code, *map(str, args)], env=env, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("RESULT"))[6:])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N up to 10^5 and fewer repeats")
    parser.add_argument("--device-n", type=int, default=None, help="rows of the device-count part "
                        "(default 10^5, 2 x 10^4 with --quick)")
    args = parser.parse_args()
    streamed = [10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000, 10_000_000]
    in_memory = [10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000]
    rows = []
    print(f"{'N':>10} {'mode':>8} {'sweep s':>9} {'1st sweep s':>11} {'peak RSS MB':>11} {'data MB':>8} {'residual':>9}")
    plan = [(n, "memory") for n in in_memory] + [(n, "streamed") for n in streamed]
    plan += [(streamed[-1], "key")]
    for n, mode in plan:
        r = run(ROWS, n, mode)
        rows.append(r)
        print(f"{n:>10} {mode:>8} {r['sweep_s']:>9.2f} {r['first_sweep_s']:>11.2f} {r['peak_rss_mb']:>11.0f} "
              f"{r['data_rss_mb']:>8.0f} {r['residual']:>9.2e}")
    n_dev, repeats = (20_000, 3) if args.quick else (100_000, 5)
    n_dev = args.device_n or n_dev
    devices = run(DEVICES, n_dev, repeats, devices=4)
    print(f"\nALS(mesh) on forced host devices, N = {devices['n']} (d = 6, m = 6, rank 4), median s per sweep:")
    for solver in ("cholesky", "cg8"):
        plain = devices[solver]["plain"]["median_sweep_s"]
        for name, r in devices[solver].items():
            print(f"  {solver:>8} {name:>6} {r['median_sweep_s']:8.3f} s  (x{r['median_sweep_s'] / plain:.2f} plain)  "
                  f"max |core diff| {r['max_core_diff']:.1e}")
        devices[solver]["overhead_1_device"] = devices[solver]["mesh1"]["median_sweep_s"] / plain - 1
    out = {  # jax is imported only in the children (an accelerator's memory stays theirs)
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "loadavg": os.getloadavg()},
        "rows": rows,
        "devices": devices,
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / ("bench_scale_quick.json" if args.quick else "bench_scale.json")
    path.write_text(json.dumps(out, indent=2))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
