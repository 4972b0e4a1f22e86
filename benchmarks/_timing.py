"""Timing helpers shared by the benchmark scripts (run as ``python benchmarks/<script>.py``)."""

from __future__ import annotations

import time

import numpy as np


def interleaved(fns: dict, repeats: int, warmup: int = 1) -> dict:
    """Time several competitors round-robin, so that load changes on a shared machine hit all alike.

    Returns, per name, the median and minimum of ``repeats`` wall times measured after
    ``warmup`` untimed calls of every function.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {
        name: {"median_s": float(np.median(t)), "min_s": float(np.min(t)), "repeats": repeats}
        for name, t in times.items()
    }


def matmul_peak(dtype: str = "float32", n: int = 2048, repeats: int = 5) -> float:
    """Measured GEMM throughput (GFLOP/s, median) of a jitted ``n × n`` matrix product through XLA."""
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(0), (n, n), dtype=dtype)
    b = jax.random.normal(jax.random.key(1), (n, n), dtype=dtype)
    mm = jax.jit(jnp.matmul)
    t = interleaved({"mm": lambda: mm(a, b).block_until_ready()}, max(repeats, 5))["mm"]
    return 2 * n**3 / t["median_s"] / 1e9
