"""The cost of handing LAPACK one matrix at a time in the ALS sweeps of vector-valued FTTs.

Run::

    .venv/bin/python benchmarks/bench_lapack_loop.py      # ~5 min on 2 shared cores

jaxlib's batched CPU LAPACK kernels split a batch over XLA's thread pool and block a pool thread until it is
done; two in flight deadlocked the 2-thread pool of a 2-core machine in the FTT-vs-NN study's 8-output sweeps.
The sweeps therefore loop over the batch (:mod:`jaxtt._linalg`). This script compiles one ALS sweep of an FTT with
8 outputs on the study's 8-D shapes (40,000 rows) twice, with the looped factorizations and with
:mod:`jax.numpy.linalg`'s batched ones, and times the compiled sweeps interleaved (median of 5 after one warm-up);
it also counts the LAPACK calls of each program that take a batch of matrices (none in the looped one).
Writes ``benchmarks/results/bench_lapack_loop.json``.
"""

from __future__ import annotations

import json
import os
import platform
import re
from pathlib import Path

import jax
import jax.numpy as jnp

import jaxtt._linalg as looped_linalg
import jaxtt.solvers._local as local
import jaxtt.solvers.als as als
import jaxtt.tt.decompositions as decompositions
from _timing import interleaved
from jaxtt.basis import Legendre
from jaxtt.ftt import FTT, constant_init
from jaxtt.solvers import ALS

RESULTS = Path(__file__).resolve().parent / "results"
LOOPED = {"qr": looped_linalg.qr, "eigh": looped_linalg.eigh, "cholesky_solve": looped_linalg.cholesky_solve}
BATCHED = {"qr": jnp.linalg.qr, "eigh": jnp.linalg.eigh,
           "cholesky_solve": lambda a, b: jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(a), b)}


def compiled(factorizations, cg_maxiter, state, chunk_size):
    """A fresh sweep program traced with ``factorizations`` in place of the sweep's own."""
    als.qr = decompositions.qr = factorizations["qr"]
    local.eigh, local.cholesky_solve = factorizations["eigh"], factorizations["cholesky_solve"]
    sweep = als.compiled_sweep.__wrapped__(1, chunk_size, cg_maxiter)
    args = (state.model, state.x, state.y, None, jnp.asarray(1e-6, state.x.dtype), state.mask)
    jax.block_until_ready(sweep(*args))  # trace and compile now, with these factorizations
    program = sweep.lower(*args).compile().as_text()
    operands = re.findall(r'custom_call_target="lapack_\w+".*?operand_layout_constraints=\{\w+\[([\d,]*)\]', program)
    batched_calls = sum(len(shape.split(",")) > 2 for shape in operands)
    return (lambda: jax.block_until_ready(sweep(*args))), batched_calls


def main():
    d, n, outputs = 8, 40_000, 8
    x = jax.random.uniform(jax.random.key(0), (n, d), minval=-1, maxval=1)
    y = jnp.stack([jnp.sin(x[:, j] + x[:, (j + 1) % d]) for j in range(outputs)], 1)
    rows = []
    for rank, m, cg_maxiter in [(8, 8, 8), (12, 12, 8), (8, 8, 0)]:
        bases = [Legendre(m, orthonormal=True)] * d
        cores = jax.vmap(lambda k: constant_init(bases, rank, key=k))(jax.random.split(jax.random.key(1), outputs))
        solver = ALS(cg_maxiter=cg_maxiter, sparse=False)
        state = solver.init(FTT(cores, bases), x, y)
        programs = {name: compiled(f, cg_maxiter, state, solver.chunk_size) for name, f in
                    (("looped", LOOPED), ("batched", BATCHED))}
        times = interleaved({name: fn for name, (fn, _) in programs.items()}, repeats=5)
        row = {"rank": rank, "m": m, "cg_maxiter": cg_maxiter, "outputs": outputs, "rows": n,
               **{f"{k}_median_s": v["median_s"] for k, v in times.items()},
               "ratio_looped_over_batched": times["looped"]["median_s"] / times["batched"]["median_s"],
               "batched_lapack_calls": {name: calls for name, (_, calls) in programs.items()},
               "load": os.getloadavg()}
        print(f"rank {rank:>2} m {m:>2} {'CGLS-8' if cg_maxiter else 'Cholesky':<8} looped "
              f"{row['looped_median_s']:6.2f} s  batched {row['batched_median_s']:6.2f} s  ratio "
              f"{row['ratio_looped_over_batched']:.3f}  batched LAPACK calls {row['batched_lapack_calls']}  "
              f"load {row['load'][0]:.1f}", flush=True)
        rows.append(row)
    RESULTS.mkdir(exist_ok=True)
    out = {"rows": rows, "machine": {"processor": platform.processor() or platform.machine(),
                                     "cpu_count": os.cpu_count(), "jax": jax.__version__}}
    tmp = RESULTS / "bench_lapack_loop.json.tmp"
    tmp.write_text(json.dumps(out, indent=1))
    os.replace(tmp, RESULTS / "bench_lapack_loop.json")


if __name__ == "__main__":
    main()
