"""Riemannian TT optimisation: jaxtt RCG versus ttml, and convergence curves of all TT solvers.

Run with ``/work/main/.venv-bench/bin/python benchmarks/bench_riemannian.py`` (ttml lives in the
benchmark environment). Writes ``benchmarks/results/bench_riemannian.json`` and
``benchmarks/results/bench_riemannian.png``.

Part 1 — peer comparison (float64, same data, same start, same run). ttml's Riemannian CG
(``TensorTrainLineSearch``: Fletcher–Reeves, Armijo, Barzilai–Borwein initial step; its defaults)
works on tensor entries, so the workload is the discrete-index analogue of the W-ALS regression of the
FTT issue: ``d = 8`` inputs on ``[-1, 1]`` binned into ``n = 10`` cells, ``N = 20,000`` training
samples, targets from a TT of rank 3, model rank 3 — i.e. least squares on observed entries
(tensor completion). jaxtt solves the same problem as an FTT regression with the one-hot (indicator)
basis: :class:`jaxtt.solvers.LeastSquares` with the multi-indices (unit features
``e_{i_k}``, evaluated by gathers) and, for reference, with explicit one-hot feature rows (the FTT code
path with an indicator basis, ``n`` times more arithmetic). Reported: median wall time per iteration
(ttml and jaxtt steps interleaved in rounds from the common start, after compilation, which is
reported separately) and the relative training and held-out errors after equal wall time.

Part 2 — convergence curves (relative training residual against wall time) on the continuous FTT
regression (Legendre basis, ``m = 10``, ``d = 8``, ``N = 20,000``, exactly representable smooth
rank-3 target, start from :func:`jaxtt.ftt.constant_init`) for ALS, DMRG, RGD, RCG and Adam (optax on the
cores).
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

jax.config.update("jax_enable_x64", True)

import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import scipy.optimize  # noqa: E402,F401
import scipy.optimize._linesearch as _linesearch  # noqa: E402

sys.modules["scipy.optimize.linesearch"] = _linesearch  # ttml imports names the deprecation shim lacks

import ttml  # noqa: E402
from ttml.tensor_train import TensorTrain as TtmlTT  # noqa: E402
from ttml.tt_rlinesearch import TensorTrainLineSearch  # noqa: E402

import jaxtt.tt as T  # noqa: E402
from jaxtt.basis import Legendre  # noqa: E402
from jaxtt.ftt import FTT, constant_init  # noqa: E402
from jaxtt import solvers as S  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
D, N_BINS, N_TRAIN, N_TEST = 8, 10, 20_000, 5_000


def machine() -> dict:
    return {
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "ttml": getattr(ttml, "__version__", "1.0"),
        "python": platform.python_version(),
    }


def _cores_np(tt) -> list[np.ndarray]:
    return [np.asarray(c, np.float64) for c in tt.cores]


def _gather(cores, idx) -> np.ndarray:
    v = cores[0][0, idx[:, 0], :]
    for k in range(1, len(cores)):
        v = np.einsum("sa,asb->sb", v, cores[k][:, idx[:, k], :])
    return v[:, 0]


def _constant_plus_noise(rng, shape, rank, noise) -> list[np.ndarray]:
    ranks = T.expand_ranks(shape, rank)
    cores = []
    for k, n in enumerate(shape):
        core = noise * rng.standard_normal((ranks[k], n, ranks[k + 1]))
        core[0, :, 0] += 1.0
        cores.append(core)
    return cores


# ----------------------------------------------------------------------------- part 1: ttml


def discrete_problem(rank: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (N_TRAIN + N_TEST, D))
    idx = np.minimum(((x + 1) / 2 * N_BINS).astype(np.int64), N_BINS - 1)
    target = _constant_plus_noise(rng, (N_BINS,) * D, rank, 0.5)
    y = _gather(target, idx)
    start = _constant_plus_noise(rng, (N_BINS,) * D, rank, 1e-2)
    return idx[:N_TRAIN], y[:N_TRAIN], idx[N_TRAIN:], y[N_TRAIN:], start


def _rel(pred, y) -> float:
    return float(np.linalg.norm(pred - y) / np.linalg.norm(y))


def run_ttml(idx, y, start, budget: float) -> dict:
    opt = TensorTrainLineSearch(TtmlTT([c.copy() for c in start]), y, idx)
    times, losses, steps = [], [], []
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < budget:
        s = time.perf_counter()
        try:
            loss, _, step = opt.step()
        except np.linalg.LinAlgError:  # ttml signals a converged line search this way
            break
        steps.append(time.perf_counter() - s)
        times.append(time.perf_counter() - t0)
        losses.append(float(loss))
        if step is None:
            break
    return {"tt": opt.tt, "times": times, "step_times": steps, "losses": losses}


def run_jaxtt(objective, start_tt, solver, budget: float) -> dict:
    init, step = eqx.filter_jit(solver.init_objective), eqx.filter_jit(solver.step_objective)
    s = time.perf_counter()
    state = jax.block_until_ready(step(objective, init(objective, start_tt)))
    compile_s = time.perf_counter() - s
    state = jax.block_until_ready(init(objective, start_tt))
    times, losses, steps = [], [], []
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < budget:
        s = time.perf_counter()
        state = jax.block_until_ready(step(objective, state))
        steps.append(time.perf_counter() - s)
        times.append(time.perf_counter() - t0)
        losses.append(2.0 * float(state.loss))  # ttml reports mean squared error; ours is ½ of it
        if not bool(state.accepted) and len(losses) > 1 and losses[-1] >= losses[-2]:
            break
    return {"tt": state.point, "times": times, "step_times": steps, "losses": losses, "compile_s": compile_s}


def _jaxtt_setups(idx, y, start) -> dict:
    """Name -> (objective, start TT, solver); indices are the discrete data, one-hot rows the FTT form."""
    eye = np.eye(N_BINS)
    setups = {}
    for dtype in (np.float64, np.float32):
        start_tt = T.TensorTrain([jnp.asarray(c, dtype) for c in start])
        by_index = S.LeastSquares(jnp.asarray(idx), jnp.asarray(y, dtype))
        suffix = "" if dtype == np.float64 else " float32"
        setups[f"jaxtt RCG (PR+){suffix}"] = (by_index, start_tt, S.RCG())
        if dtype == np.float64:
            setups["jaxtt RCG (FR)"] = (by_index, start_tt, S.RCG(beta="fr"))
            one_hot = S.LeastSquares([jnp.asarray(eye[idx[:, k]]) for k in range(D)], jnp.asarray(y))
            setups["jaxtt RCG (PR+) one-hot FTT"] = (one_hot, start_tt, S.RCG())
    return setups


def interleaved_step_times(idx, y, start, setups, rounds: int = 7, steps: int = 4) -> dict:
    """Per-iteration wall times, ttml and jaxtt alternating in rounds so that load drift hits all alike."""
    compiled = {}
    for name, (objective, start_tt, solver) in setups.items():
        init, step = eqx.filter_jit(solver.init_objective), eqx.filter_jit(solver.step_objective)
        s = time.perf_counter()
        jax.block_until_ready(step(objective, init(objective, start_tt)))
        compiled[name] = (init, step, time.perf_counter() - s)
    times = {"ttml RCG (FR)": []} | {name: [] for name in setups}
    for _ in range(rounds):
        opt = TensorTrainLineSearch(TtmlTT([c.copy() for c in start]), y, idx)
        for _ in range(steps):
            s = time.perf_counter()
            opt.step()
            times["ttml RCG (FR)"].append(time.perf_counter() - s)
        for name, (objective, start_tt, _) in setups.items():
            init, step, _ = compiled[name]
            state = jax.block_until_ready(init(objective, start_tt))
            for _ in range(steps):
                s = time.perf_counter()
                state = jax.block_until_ready(step(objective, state))
                times[name].append(time.perf_counter() - s)
    return {name: float(np.median(t)) for name, t in times.items()}, {n: c[2] for n, c in compiled.items()}


def part1(rank: int, budget: float) -> dict:
    idx, y, idx_test, y_test, start = discrete_problem(rank)
    setups = _jaxtt_setups(idx, y, start)
    per_iter, compile_s = interleaved_step_times(idx, y, start, setups)
    rows = {}
    ttml_run = run_ttml(idx, y, start, budget)
    cores = ttml_run["tt"].cores
    rows["ttml RCG (FR)"] = {
        "iterations": len(ttml_run["step_times"]),
        "train_rel": _rel(_gather(cores, idx), y),
        "test_rel": _rel(_gather(cores, idx_test), y_test),
        "curve": [ttml_run["times"], ttml_run["losses"]],
    }
    for name, (objective, start_tt, solver) in setups.items():
        run = run_jaxtt(objective, start_tt, solver, budget)
        cores = _cores_np(run["tt"])
        rows[name] = {
            "iterations": len(run["step_times"]),
            "compile_s": compile_s[name],
            "train_rel": _rel(_gather(cores, idx), y),
            "test_rel": _rel(_gather(cores, idx_test), y_test),
            "curve": [run["times"], run["losses"]],
        }
    peer = per_iter["ttml RCG (FR)"]
    for name, row in rows.items():
        row["ms_per_iter"] = 1e3 * per_iter[name]
        row["speedup_per_iter_vs_ttml"] = peer / per_iter[name]
    return {"rank": rank, "budget_s": budget, "rows": rows}


# ----------------------------------------------------------------------------- part 2: curves


def continuous_problem(rank: int, seed: int = 1):
    """Smooth exactly representable target: constant plus random rank-``rank`` terms whose Legendre
    coefficients decay like ``2^{-degree}``."""
    rng = np.random.default_rng(seed)
    bases = [Legendre(N_BINS, (-1.0, 1.0))] * D
    x = jnp.asarray(rng.uniform(-1, 1, (N_TRAIN, D)))
    decay = 0.5 ** np.arange(N_BINS)
    cores = [c * decay[None, :, None] for c in _constant_plus_noise(rng, (N_BINS,) * D, rank, 0.5)]
    for c in cores:
        c[0, 0, 0] = 1.0
    target = FTT(T.TensorTrain([jnp.asarray(c) for c in cores]), bases)
    y = target(x)
    start = FTT(constant_init(bases, rank, dtype=jnp.float64, key=jax.random.PRNGKey(seed)), bases)
    return x, y, start


def _curve_from_steps(step_times, residuals, drop_first: bool) -> list[list[float]]:
    """Cumulative wall time; with ``drop_first`` the first (compiling) entry is replaced by the median."""
    steps = list(step_times)
    if drop_first and len(steps) > 1:
        steps[0] = float(np.median(steps[1:]))
    return [list(np.cumsum(steps)), list(residuals)]


def part2(rank: int, budget: float) -> dict:
    x, y, start = continuous_problem(rank)
    ynorm = float(jnp.linalg.norm(y))
    curves = {}

    # Entry 0 of a FitResult is the starting model; the curves below start after the first step, as before.
    _, probe = S.fit(start, x, y, S.ALS(), max_steps=3, stagnation=None, progress=False)  # sweep cost, for the budget
    sweeps = max(3, int(budget / float(np.median(probe.time[2:]))))
    _, h = S.fit(start, x, y, S.ALS(), max_steps=sweeps, tol=1e-13, stagnation=None, progress=False)
    curves["ALS"] = _curve_from_steps(h.time[1:], h.train_residual[1:], drop_first=True)
    print(f"  ALS done ({sum(h.time):.1f} s)", flush=True)

    # two-site sweeps capped at the model rank (uncapped ranks grow to the data size)
    _, h = S.fit(start, x, y, S.DMRG(max_rank=rank), max_steps=3, stagnation=None, progress=False)
    curves["DMRG"] = _curve_from_steps(h.time[1:], h.train_residual[1:], drop_first=False)
    print(f"  DMRG done ({sum(h.time):.1f} s)", flush=True)

    objective = S.LeastSquares(start.features(x), y)
    for name, solver in (("RGD", S.RGD()), ("RCG", S.RCG())):
        run = run_jaxtt(objective, start.tt, solver, budget)
        residuals = [float(np.sqrt(N_TRAIN * loss) / ynorm) for loss in run["losses"]]  # losses are mean sq. err.
        curves[name] = [run["times"], residuals]
        print(f"  {name} done", flush=True)

    params = list(start.tt.cores)
    for lr in (1e-2, 3e-3):
        opt = optax.adam(lr)

        @eqx.filter_jit
        def adam_step(params, opt_state):
            loss, grads = jax.value_and_grad(lambda cs: objective(T.TensorTrain(cs)))(params)
            updates, opt_state = opt.update(grads, opt_state)
            return optax.apply_updates(params, updates), opt_state, loss

        p, st = params, opt.init(params)
        jax.block_until_ready(adam_step(p, st))
        times, residuals = [], []
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < budget:
            p, st, loss = jax.block_until_ready(adam_step(p, st))
            times.append(time.perf_counter() - t0)
            residuals.append(float(np.sqrt(2 * N_TRAIN * float(loss)) / ynorm))  # loss of the parameters before the update
        curves[f"Adam lr={lr:g}"] = [times, residuals]
        print(f"  Adam lr={lr:g} done", flush=True)
    return {"rank": rank, "budget_s": budget, "curves": curves}


def compile_times(dims=(8, 16, 32), n_samples: int = 1000) -> dict:
    """Seconds to trace and compile ``RCG.init`` and ``RCG.step`` (cores are unrolled, so this grows with d).

    ``n_samples`` differs from part 1 so that no compiled program is reused from the cache.
    """
    out = {}
    for d in dims:
        rng = np.random.default_rng(d)
        idx = jnp.asarray(rng.integers(0, N_BINS, (n_samples, d)))
        objective = S.LeastSquares(idx, jnp.asarray(rng.standard_normal(n_samples)))
        start = T.TensorTrain([jnp.asarray(c) for c in _constant_plus_noise(rng, (N_BINS,) * d, 3, 1e-2)])
        solver = S.RCG()
        s = time.perf_counter()
        state = eqx.filter_jit(solver.init_objective).lower(objective, start).compile()(objective, start)
        eqx.filter_jit(solver.step_objective).lower(objective, state).compile()
        out[d] = time.perf_counter() - s
    return out


# ----------------------------------------------------------------------------- output


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    p1 = result["part1"]
    for name, row in p1["rows"].items():
        times, losses = row["curve"]
        axes[0].semilogy(times, losses, label=f"{name} ({row['ms_per_iter']:.0f} ms/it)")
    axes[0].set(xlabel="wall time [s]", ylabel="training MSE", title=f"discrete TT regression, rank {p1['rank']}")
    axes[0].legend(fontsize=8)
    if "part2" in result:
        p2 = result["part2"]
        for name, (times, residuals) in p2["curves"].items():
            style = "o-" if name in ("ALS", "DMRG") else "-"  # one marker per sweep
            label = "DMRG (first sweep incl. compilation)" if name == "DMRG" else name
            axes[1].loglog(times, residuals, style, label=label, markersize=3)
        axes[1].set(
            xlabel="wall time [s] (compilation excluded unless noted)",
            ylabel="relative training residual",
            title=f"FTT regression (Legendre m=10, d=8), rank {p2['rank']}",
        )
        axes[1].legend(fontsize=8)
    fig.suptitle(f"{result['machine']['processor']}, {result['machine']['cpu_count']} CPUs, jax {result['machine']['jax']}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rank", type=int, default=3)
    parser.add_argument("--budget", type=float, default=20.0, help="wall seconds per method")
    parser.add_argument("--skip-curves", action="store_true")
    args = parser.parse_args()

    result = {"machine": machine(), "part1": part1(args.rank, args.budget)}
    print(f"machine: {result['machine']}")
    print(f"\nPart 1: d={D}, n={N_BINS}, N={N_TRAIN}, rank {args.rank}, {args.budget:g} s per method")
    print(f"{'method':28s} {'ms/iter':>9s} {'vs ttml':>8s} {'iters':>6s} {'train rel':>10s} {'test rel':>10s} {'compile':>8s}")
    for name, row in result["part1"]["rows"].items():
        compile_s = f"{row['compile_s']:7.1f}s" if "compile_s" in row else f"{'-':>8s}"
        print(
            f"{name:28s} {row['ms_per_iter']:9.1f} {row['speedup_per_iter_vs_ttml']:7.1f}x {row['iterations']:6d} "
            f"{row['train_rel']:10.2e} {row['test_rel']:10.2e} {compile_s}"
        )
    result["compile_vs_d"] = compile_times()
    print("\ncompile time of RCG init + step (entry least squares, n = 10, rank 3):")
    for d, seconds in result["compile_vs_d"].items():
        print(f"  d = {d:3d}: {seconds:6.1f} s")
    if not args.skip_curves:
        result["part2"] = part2(args.rank, args.budget)
        print("\nPart 2: final relative training residual after the budget (compilation excluded)")
        for name, (times, residuals) in result["part2"]["curves"].items():
            reach = [t for t, r in zip(times, residuals) if r <= 1e-3]
            result["part2"].setdefault("time_to_1e-3", {})[name] = reach[0] if reach else None
            to_target = f"{reach[0]:6.2f} s" if reach else "   never"
            print(
                f"{name:16s} {len(times):5d} steps {times[-1]:7.1f} s  residual {residuals[-1]:.2e}  "
                f"reaches 1e-3 at {to_target}"
            )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench_riemannian.json").write_text(json.dumps(result, indent=1))
    plot(result, RESULTS / "bench_riemannian.png")
    print(f"\nwrote {RESULTS / 'bench_riemannian.json'} and {RESULTS / 'bench_riemannian.png'}")


if __name__ == "__main__":
    main()
