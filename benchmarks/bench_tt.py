"""Benchmark of the TT algebra (``jaxtt.tt``) against teneva.

Run with the benchmark environment (teneva installed, jaxtt editable)::

    .venv-bench/bin/python benchmarks/bench_tt.py

Cases (same data for both libraries, float64 unless stated):

* ``get``: ``N = 100,000`` multi-indices of a random TT with ``n = 10``,
  ``r = 8``, ``d ∈ {8, 16, 32}``; ``jax.jit(jaxtt.tt.get)`` in float64 and
  float32 versus ``teneva.get_many`` (float64). Goal: ``>= 10×`` teneva.
* ``round``: ``d = 16``, ``n = 10``, sum of two rank-8 TTs (ranks 16), rounded
  (a) to ``max_rank = 8`` and (b) with ``eps = 1e-4`` when the second term is a
  ``1e-6`` perturbation (ranks return to 8); ``jaxtt.tt.round`` (eager ``eps``
  path and, for (a), ``jax.jit`` with ``eps = 0``) versus ``teneva.truncate``.
  Goal: at least on par.
* ``from_dense``: TT-SVD with ``eps = 1e-6`` of ``f(x) = 1 / (1 + Σ_k x_k)``
  sampled on a uniform ``10^6`` grid of ``[0, 1]^6`` versus ``teneva.svd``
  (whose ``e`` is an absolute per-unfolding threshold; it is given the same
  ``δ = eps ‖x‖_F / sqrt(d - 1)`` that ``jaxtt.tt.from_dense`` uses).
* ``contract_rank1``: ``N = 100,000``, ``n = 10``, ``r = 8``,
  ``d ∈ {8, 32, 64}``; time and GFLOP/s with ``flops = 2 N Σ_k r_{k-1} n r_k``,
  against a plain NumPy implementation of the same contraction and against the
  machine's matmul peak measured here.
* Compile time (``jax.jit(...).lower(...).compile()`` after clearing JAX's
  caches) of ``contract_rank1`` and ``get`` for ``d ∈ {8, 16, 32, 64}``.
  Goal: ``d = 64`` under 10 s.

Steady-state times are medians of ``--repeats`` calls after a warm-up call,
with ``block_until_ready``; competitors are called round-robin so that load
changes on a shared machine affect all of them alike. Writes ``benchmarks/results/bench_tt.json`` and
``bench_tt.png``.
"""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import jax.numpy as jnp  # noqa: E402
import matplotlib  # noqa: E402
import numpy as np  # noqa: E402
import teneva  # noqa: E402

import jaxtt.tt as tt  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from _timing import interleaved  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
N_SAMPLES = 100_000
MODE = 10
RANK = 8


# ----------------------------------------------------------------------------- timing


def _block(x):
    return jax.block_until_ready(x)


def speedup(peer: dict, ours: dict) -> float:
    """Ratio of median times ``peer / ours`` (> 1: jaxtt is faster)."""
    return peer["median_s"] / ours["median_s"]


def compile_time(fn, args, repeats: int) -> float:
    """Median seconds of trace + lower + XLA compile of ``jax.jit(fn)`` on ``args``, caches cleared."""
    times = []
    for _ in range(repeats):
        jax.clear_caches()
        start = time.perf_counter()
        jax.jit(fn).lower(*args).compile()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


# ----------------------------------------------------------------------------- utilities


def np_cores(x: tt.TensorTrain) -> list[np.ndarray]:
    """teneva's native format: a list of float64 NumPy cores ``(r_{k-1}, n_k, r_k)``."""
    return [np.asarray(c, dtype=np.float64) for c in x.cores]


def np_tt_norm(cores: list[np.ndarray]) -> float:
    """Frobenius norm of a TT by a right-to-left QR sweep (stable, independent of both libraries)."""
    carry = np.ones((1, 1))
    for core in reversed(cores):
        core = np.einsum("aib,bc->aic", core, carry)
        r, n, s = core.shape
        _, rr = np.linalg.qr(core.reshape(r, n * s).T)
        carry = rr.T
    return float(abs(carry[0, 0]))


def rel_dist(a: list[np.ndarray], b: list[np.ndarray], ref: list[np.ndarray]) -> float:
    """``‖a - b‖_F / ‖ref‖_F`` computed in TT format."""
    return np_tt_norm(teneva.sub(a, b)) / np_tt_norm(ref)


def numpy_contract_rank1(cores: list[np.ndarray], vectors: np.ndarray) -> np.ndarray:
    """Plain NumPy ``y_s = ⟨A, v_1^s ⊗ ⋯ ⊗ v_d^s⟩`` (one GEMM and one reduction per core)."""
    v = np.ones((vectors.shape[1], 1), vectors.dtype)
    for core, vec in zip(cores, vectors):
        r, n, s = core.shape
        w = (v @ core.reshape(r, n * s)).reshape(-1, n, s)
        v = np.einsum("nis,ni->ns", w, vec)
    return v[:, 0]


def rank1_flops(x: tt.TensorTrain, n_samples: int) -> float:
    """``2 N Σ_k r_{k-1} n_k r_k``."""
    return 2.0 * n_samples * x.size


def matmul_peak(repeats: int, size: int = 2048) -> dict:
    """GFLOP/s of a jitted ``size × size`` matmul in float32 and float64."""
    a = {dt: jax.random.normal(jax.random.PRNGKey(1), (size, size), dt) for dt in ("float32", "float64")}
    f = jax.jit(jnp.matmul)
    t = interleaved({dt: lambda dt=dt: _block(f(a[dt], a[dt])) for dt in a}, repeats)
    return {"size": size, **{dt: {**t[dt], "gflops": 2 * size**3 / t[dt]["median_s"] / 1e9} for dt in a}}


def random_tt(d: int, dtype, seed: int = 0) -> tt.TensorTrain:
    """TT with ``N(0, 1 / r_{k-1})`` core entries, as ``jaxtt.tt.random`` draws them.

    Drawn with NumPy so that building the inputs compiles nothing.
    """
    rng = np.random.default_rng(seed)
    ranks = [1] + [RANK] * (d - 1) + [1]
    cores = [rng.standard_normal((ranks[k], MODE, ranks[k + 1])) / np.sqrt(ranks[k]) for k in range(d)]
    return tt.TensorTrain([jnp.asarray(c, dtype) for c in cores])


def random_indices(d: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, MODE, (N_SAMPLES, d))


def random_vectors(d: int, seed: int = 0) -> np.ndarray:
    """``(d, N, n)`` nonnegative rows of unit norm, so the contraction neither over- nor underflows."""
    v = np.random.default_rng(seed).random((d, N_SAMPLES, MODE))
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


# ----------------------------------------------------------------------------- cases


def bench_get(repeats: int) -> list[dict]:
    rows = []
    get_jit = jax.jit(tt.get)
    for d in (8, 16, 32):
        idx = random_indices(d)
        idx_j = jnp.asarray(idx)
        x64 = random_tt(d, jnp.float64)
        x32 = random_tt(d, jnp.float32)
        cores = np_cores(x64)
        ref = teneva.get_many(cores, idx)
        t = interleaved(
            {
                "teneva_f64": lambda: teneva.get_many(cores, idx),
                "jaxtt_jit_f64": lambda: _block(get_jit(x64, idx_j)),
                "jaxtt_jit_f32": lambda: _block(get_jit(x32, idx_j)),
                "jaxtt_eager_f64": lambda: _block(tt.get(x64, idx_j)),
            },
            repeats,
        )
        scale = np.max(np.abs(ref))
        rows.append(
            {
                "d": d,
                "n": MODE,
                "r": RANK,
                "N": N_SAMPLES,
                **t,
                "speedup_f64": speedup(t["teneva_f64"], t["jaxtt_jit_f64"]),
                "speedup_f32": speedup(t["teneva_f64"], t["jaxtt_jit_f32"]),
                "speedup_f64_of_min_times": t["teneva_f64"]["min_s"] / t["jaxtt_jit_f64"]["min_s"],
                "max_rel_diff_f64": float(np.max(np.abs(np.asarray(get_jit(x64, idx_j)) - ref)) / scale),
                "max_rel_diff_f32": float(np.max(np.abs(np.asarray(get_jit(x32, idx_j), np.float64) - ref)) / scale),
            }
        )
    return rows


def bench_round(repeats: int) -> list[dict]:
    d = 16
    a = random_tt(d, jnp.float64, seed=1)
    b = random_tt(d, jnp.float64, seed=2)
    rows = []
    # (a) generic sum, ranks 16 -> capped at 8; (b) rank-8 tensor plus a 1e-6 perturbation, eps = 1e-4.
    cases = [
        ("sum -> max_rank 8", tt.add(a, b), {"max_rank": RANK, "eps": 1e-12}),
        ("sum(1e-6 pert.) -> eps 1e-4", tt.add(a, tt.scale(b, 1e-6)), {"max_rank": None, "eps": 1e-4}),
    ]
    round_jit = jax.jit(tt.round, static_argnames=("max_rank", "eps"))
    for name, x, opts in cases:
        cores = np_cores(x)
        r_cap = 1e12 if opts["max_rank"] is None else opts["max_rank"]
        fns = {
            "teneva": lambda: teneva.truncate(cores, e=opts["eps"], r=r_cap),
            "jaxtt_eager": lambda: _block(tt.round(x, **opts).cores),
        }
        if opts["max_rank"] is not None:
            start = time.perf_counter()
            y_jit = _block(round_jit(x, max_rank=opts["max_rank"], eps=0.0))
            first_call = time.perf_counter() - start
            fns["jaxtt_jit"] = lambda: _block(round_jit(x, max_rank=opts["max_rank"], eps=0.0).cores)
        y_ten = teneva.truncate(cores, e=opts["eps"], r=r_cap)
        y_jax = tt.round(x, **opts)
        t = interleaved(fns, repeats)
        row = {
            "case": name,
            "d": d,
            "n": MODE,
            "input_ranks": list(x.ranks),
            **opts,
            **t,
            "speedup_eager": speedup(t["teneva"], t["jaxtt_eager"]),
            "ranks_teneva": [int(r) for r in teneva.ranks(y_ten)],
            "ranks_jaxtt": list(y_jax.ranks),
            "rel_err_teneva": rel_dist(cores, y_ten, cores),
            "rel_err_jaxtt": rel_dist(cores, np_cores(y_jax), cores),
            "rel_diff_jaxtt_teneva": rel_dist(np_cores(y_jax), y_ten, cores),
        }
        if "jaxtt_jit" in t:
            row["jaxtt_jit"]["first_call_s"] = first_call
            row["speedup_jit"] = speedup(t["teneva"], t["jaxtt_jit"])
            row["rel_err_jaxtt_jit"] = rel_dist(cores, np_cores(y_jit), cores)
        rows.append(row)
    return rows


def bench_from_dense(repeats: int) -> dict:
    d, eps = 6, 1e-6
    grid = np.linspace(0.0, 1.0, MODE)
    mesh = np.meshgrid(*([grid] * d), indexing="ij")
    x = 1.0 / (1.0 + sum(mesh))
    delta = eps * np.linalg.norm(x) / np.sqrt(d - 1)
    x_j = jnp.asarray(x)
    y_ten = teneva.svd(x, e=delta)
    y_jax = tt.from_dense(x_j, eps=eps)
    max_rank = max(y_jax.ranks)
    dense_jit = jax.jit(tt.from_dense, static_argnames=("max_rank", "eps"))
    start = time.perf_counter()
    y_jit = _block(dense_jit(x_j, max_rank=max_rank, eps=0.0))
    first = time.perf_counter() - start
    norm = np.linalg.norm(x)
    t = interleaved(
        {
            "teneva": lambda: teneva.svd(x, e=delta),
            "jaxtt_eager": lambda: _block(tt.from_dense(x_j, eps=eps).cores),
            "jaxtt_jit_max_rank": lambda: _block(dense_jit(x_j, max_rank=max_rank, eps=0.0).cores),
        },
        repeats,
    )
    t["jaxtt_jit_max_rank"].update(first_call_s=first, max_rank=max_rank)
    out = {
        "function": "1 / (1 + sum_k x_k) on a uniform 10^6 grid of [0, 1]^6",
        "shape": list(x.shape),
        "eps": eps,
        "teneva_threshold": "e = eps * ||x||_F / sqrt(d - 1) (absolute, per unfolding)",
        "note": "teneva.svd splits each unfolding as (U S^1/2)(S^1/2 V^T), so its later thresholds act on a "
        "rescaled remainder and its ranks can differ from Oseledets' TT-SVD at the same threshold",
        **t,
        "ranks_teneva": [int(r) for r in teneva.ranks(y_ten)],
        "ranks_jaxtt": list(y_jax.ranks),
        "ranks_jaxtt_jit": list(y_jit.ranks),
        "rel_err_teneva": float(np.linalg.norm(teneva.full(y_ten) - x) / norm),
        "rel_err_jaxtt": float(np.linalg.norm(np.asarray(tt.full(y_jax)) - x) / norm),
        "rel_err_jaxtt_jit": float(np.linalg.norm(np.asarray(tt.full(y_jit)) - x) / norm),
    }
    out["speedup_eager"] = speedup(t["teneva"], t["jaxtt_eager"])
    out["speedup_jit"] = speedup(t["teneva"], t["jaxtt_jit_max_rank"])
    return out


def bench_contract(repeats: int, peak: dict) -> list[dict]:
    rows = []
    contract_jit = jax.jit(tt.contract_rank1)
    for d in (8, 32, 64):
        row = {"d": d, "n": MODE, "r": RANK, "N": N_SAMPLES}
        vec_np = random_vectors(d)
        x = {name: random_tt(d, dtype) for name, dtype in (("float64", jnp.float64), ("float32", jnp.float32))}
        vec = {name: jnp.asarray(vec_np, x[name].dtype) for name in x}
        t = interleaved({name: lambda name=name: _block(contract_jit(x[name], vec[name])) for name in x}, repeats)
        flops = rank1_flops(x["float64"], N_SAMPLES)
        row["gflop"] = flops / 1e9
        for name in x:
            gflops = flops / t[name]["median_s"] / 1e9
            row[f"jaxtt_{name}"] = {**t[name], "gflops": gflops, "fraction_of_matmul_peak": gflops / peak[name]["gflops"]}
        # The NumPy peer takes seconds per call for large d: 3 timed calls for d = 8, one beyond.
        cores = np_cores(x["float64"])
        times = []
        for _ in range(3 if d == 8 else 1):
            start = time.perf_counter()
            ref = numpy_contract_rank1(cores, vec_np)
            times.append(time.perf_counter() - start)
        t_np = float(np.median(times))
        row["numpy_float64"] = {"median_s": t_np, "min_s": float(np.min(times)), "repeats": len(times),
                                "gflops": flops / t_np / 1e9}
        row["speedup_vs_numpy_f64"] = t_np / t["float64"]["median_s"]
        scale = np.max(np.abs(ref))
        for name in x:
            got = np.asarray(contract_jit(x[name], vec[name]), np.float64)
            row[f"max_rel_diff_vs_numpy_{name}"] = float(np.max(np.abs(got - ref)) / scale)
        del vec, vec_np
        rows.append(row)
    return rows


def bench_compile(repeats: int) -> list[dict]:
    rows = []
    for d in (8, 16, 32, 64):
        row = {"d": d}
        for dtype in (jnp.float64, jnp.float32):
            name = jnp.dtype(dtype).name
            x = random_tt(d, dtype)
            vec = jax.ShapeDtypeStruct((d, N_SAMPLES, MODE), dtype)
            row[f"contract_rank1_{name}_s"] = compile_time(tt.contract_rank1, (x, vec), repeats)
        idx = jax.ShapeDtypeStruct((N_SAMPLES, d), jnp.int64)
        row["get_float64_s"] = compile_time(tt.get, (random_tt(d, jnp.float64), idx), repeats)
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------- report


def machine() -> dict:
    return {
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "jax": jax.__version__,
        "jax_backend": jax.default_backend(),
        "devices": [str(dev) for dev in jax.devices()],
        "teneva": teneva.__version__,
        "numpy": np.__version__,
        "load_average_at_start": list(os.getloadavg()),
    }


def _ms(t: dict) -> str:
    return f"{t['median_s'] * 1e3:9.1f}"


def print_report(res: dict) -> None:
    m = res["machine"]
    print(f"\nmachine: {m['processor']}, {m['cpu_count']} CPUs, {m['platform']}")
    print(f"jax {m['jax']} ({m['jax_backend']}), teneva {m['teneva']}, numpy {m['numpy']}")
    print(f"load average (1, 5, 15 min) at start {m['load_average_at_start']}, at end {m['load_average_at_end']}")
    pk = res["matmul_peak"]
    print(
        f"matmul peak ({pk['size']}^3): float32 {pk['float32']['gflops']:.1f} GFLOP/s, "
        f"float64 {pk['float64']['gflops']:.1f} GFLOP/s"
    )
    print(
        f"times: medians of {res['repeats']} interleaved repeats after a warm-up call (ms);"
        " speed-up = teneva time / jaxtt time\n"
    )

    print(f"get, N = {N_SAMPLES}, n = {MODE}, r = {RANK}")
    print("   d | teneva f64 | jaxtt jit f64 | jaxtt jit f32 | jaxtt eager f64 | speed-up f64 | speed-up f32 | max rel diff")
    for r in res["get"]:
        print(
            f"{r['d']:4d} | {_ms(r['teneva_f64'])}  | {_ms(r['jaxtt_jit_f64'])}     | {_ms(r['jaxtt_jit_f32'])}     |"
            f" {_ms(r['jaxtt_eager_f64'])}       | {r['speedup_f64']:10.2f}x | {r['speedup_f32']:10.2f}x |"
            f" {r['max_rel_diff_f64']:.1e}"
        )

    print("\nround, d = 16, n = 10, float64")
    print("  case                        | teneva | jaxtt eager | jaxtt jit | speed-up eager/jit | ranks (teneva / jaxtt) | rel err teneva / jaxtt / diff")
    for r in res["round"]:
        jit = _ms(r["jaxtt_jit"]) if "jaxtt_jit" in r else "      n/a"
        sp_jit = f"{r['speedup_jit']:.2f}x" if "speedup_jit" in r else "n/a"
        print(
            f"  {r['case']:27s} | {_ms(r['teneva'])} | {_ms(r['jaxtt_eager'])} | {jit} | "
            f"{r['speedup_eager']:.2f}x / {sp_jit} | max {max(r['ranks_teneva'])} / {max(r['ranks_jaxtt'])} |"
            f" {r['rel_err_teneva']:.2e} / {r['rel_err_jaxtt']:.2e} / {r['rel_diff_jaxtt_teneva']:.1e}"
        )

    fd = res["from_dense"]
    print(f"\nfrom_dense, {fd['function']}, eps = {fd['eps']}, float64")
    print(
        f"  teneva.svd {_ms(fd['teneva'])} ms, ranks {fd['ranks_teneva']}, rel err {fd['rel_err_teneva']:.2e}\n"
        f"  jaxtt eager {_ms(fd['jaxtt_eager'])} ms, ranks {fd['ranks_jaxtt']}, rel err {fd['rel_err_jaxtt']:.2e},"
        f" speed-up {fd['speedup_eager']:.2f}x\n"
        f"  jaxtt jit (max_rank={fd['jaxtt_jit_max_rank']['max_rank']}) {_ms(fd['jaxtt_jit_max_rank'])} ms,"
        f" ranks {fd['ranks_jaxtt_jit']}, rel err {fd['rel_err_jaxtt_jit']:.2e}, speed-up {fd['speedup_jit']:.2f}x"
    )

    print(f"\ncontract_rank1, N = {N_SAMPLES}, n = {MODE}, r = {RANK} (GFLOP/s; % of matmul peak of that dtype)")
    print("   d |  GFLOP | numpy f64 ms | jaxtt f64 ms | GFLOP/s f64 (%peak) | jaxtt f32 ms | GFLOP/s f32 (%peak) |"
          " vs numpy | max rel diff f64 / f32")
    for r in res["contract_rank1"]:
        a, b = r["jaxtt_float64"], r["jaxtt_float32"]
        print(
            f"{r['d']:4d} | {r['gflop']:6.2f} | {_ms(r['numpy_float64'])}    | {_ms(a)}    |"
            f" {a['gflops']:7.1f} ({100 * a['fraction_of_matmul_peak']:4.1f}%)     | {_ms(b)}    |"
            f" {b['gflops']:7.1f} ({100 * b['fraction_of_matmul_peak']:4.1f}%)     | {r['speedup_vs_numpy_f64']:7.2f}x |"
            f" {r['max_rel_diff_vs_numpy_float64']:.1e} / {r['max_rel_diff_vs_numpy_float32']:.1e}"
        )

    print("\ncompile time (trace + lower + compile, s)")
    print("   d | contract_rank1 f64 | contract_rank1 f32 | get f64")
    for r in res["compile"]:
        print(
            f"{r['d']:4d} | {r['contract_rank1_float64_s']:18.2f} | {r['contract_rank1_float32_s']:18.2f} |"
            f" {r['get_float64_s']:7.2f}"
        )

    print("\ngoals")
    for name, g in res["goals"].items():
        print(f"  {name}: {g['value']} -> {'met' if g['met'] else 'NOT met'}")
    print(f"\ntotal benchmark time {res['total_s']:.0f} s")


def goals(res: dict) -> dict:
    get_min = min(r["speedup_f64"] for r in res["get"])
    get_min_of_min = min(r["speedup_f64_of_min_times"] for r in res["get"])
    round_eager = min(r["speedup_eager"] for r in res["round"])
    round_jit = min(r["speedup_jit"] for r in res["round"] if "speedup_jit" in r)
    comp64 = next(r for r in res["compile"] if r["d"] == 64)
    worst_comp = max(comp64["contract_rank1_float64_s"], comp64["contract_rank1_float32_s"], comp64["get_float64_s"])
    return {
        "get >= 10x teneva (f64, worst d)": {
            "value": f"{get_min:.2f}x (ratio of minimum times {get_min_of_min:.2f}x)",
            "met": get_min >= 10,
        },
        "round >= 1x teneva (eager eps path, worst case)": {"value": f"{round_eager:.2f}x", "met": round_eager >= 1},
        "round >= 1x teneva (jit, max_rank)": {"value": f"{round_jit:.2f}x", "met": round_jit >= 1},
        "compile d = 64 < 10 s (worst function)": {"value": f"{worst_comp:.2f} s", "met": worst_comp < 10},
    }


def plot(res: dict, path: Path) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    comp = res["compile"]
    ds = [r["d"] for r in comp]
    ax = axes[0]
    ax.plot(ds, [r["contract_rank1_float64_s"] for r in comp], "o-", label="contract_rank1 f64")
    ax.plot(ds, [r["contract_rank1_float32_s"] for r in comp], "s-", label="contract_rank1 f32")
    ax.plot(ds, [r["get_float64_s"] for r in comp], "^-", label="get f64")
    ax.axhline(10.0, color="k", ls=":", label="goal (10 s)")
    ax.set(xlabel="d", ylabel="compile time [s]", title="compile time vs d", yscale="log")
    ax.legend()

    con = res["contract_rank1"]
    ds = [r["d"] for r in con]
    ax = axes[1]
    for name, marker in (("float64", "o"), ("float32", "s")):
        ax.plot(ds, [r[f"jaxtt_{name}"]["gflops"] for r in con], marker + "-", label=f"jaxtt {name}")
        ax.axhline(res["matmul_peak"][name]["gflops"], ls=":", color="C0" if name == "float64" else "C1",
                   label=f"matmul peak {name}")
    ax.plot(ds, [r["numpy_float64"]["gflops"] for r in con], "x--", label="numpy float64")
    ax.set(xlabel="d", ylabel="GFLOP/s", title=f"contract_rank1 (N={N_SAMPLES}, n={MODE}, r={RANK})", yscale="log")
    ax.legend(fontsize=7, loc="center right")

    ax = axes[2]
    get = res["get"]
    ds = [r["d"] for r in get]
    ax.plot(ds, [r["teneva_f64"]["median_s"] * 1e3 for r in get], "x--", label="teneva.get_many f64")
    ax.plot(ds, [r["jaxtt_jit_f64"]["median_s"] * 1e3 for r in get], "o-", label="jaxtt get (jit) f64")
    ax.plot(ds, [r["jaxtt_jit_f32"]["median_s"] * 1e3 for r in get], "s-", label="jaxtt get (jit) f32")
    ax.set(xlabel="d", ylabel="time [ms]", title=f"get, N={N_SAMPLES} indices", yscale="log")
    ax.legend(fontsize=8)
    m = res["machine"]
    fig.suptitle(f"jaxtt.tt vs teneva — {m['processor']}, {m['cpu_count']} CPUs, jax {m['jax']}, teneva {m['teneva']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed calls per case (median reported)")
    parser.add_argument("--compile-repeats", type=int, default=3, help="compilations per case (median reported)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for bench_tt.json / bench_tt.png")
    args = parser.parse_args()
    start = time.perf_counter()
    res: dict = {"machine": machine(), "repeats": args.repeats}
    steps = [
        ("matmul_peak", lambda: matmul_peak(args.repeats)),
        ("get", lambda: bench_get(args.repeats)),
        ("round", lambda: bench_round(args.repeats)),
        ("from_dense", lambda: bench_from_dense(args.repeats)),
        ("contract_rank1", lambda: bench_contract(args.repeats, res["matmul_peak"])),
        ("compile", lambda: bench_compile(args.compile_repeats)),
    ]
    for name, step in steps:
        t0 = time.perf_counter()
        res[name] = step()
        print(f"[{name}: {time.perf_counter() - t0:.0f} s]", flush=True)
    res["goals"] = goals(res)
    res["total_s"] = time.perf_counter() - start
    res["machine"]["load_average_at_end"] = list(os.getloadavg())
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_tt.json").write_text(json.dumps(res, indent=2))
    plot(res, args.out / "bench_tt.png")
    print_report(res)
    print(f"wrote {args.out / 'bench_tt.json'} and {args.out / 'bench_tt.png'}")


if __name__ == "__main__":
    main()
