"""Benchmark of DDPM sampling (``jaxtt.diffusion.ddpm_sample``) against diffusers and a bare ``lax.scan`` loop.

Run with the benchmark environment (torch CPU, diffusers, jaxtt editable)::

    .venv-bench/bin/python benchmarks/bench_sampler.py [--n 10000] [--steps 1000] [--repeats 3]

Workload: ``--steps`` ancestral DDPM steps (linear schedule 1e-4..2e-2, variance beta-tilde, no clipping) of
``--n`` 2-D points with the same MLP in every competitor: input ``(x, t / T)`` (3 features), three hidden
layers of width 128 with SiLU, linear output of width 2 (float32).

* ``jaxtt``: ``jaxtt.diffusion.ddpm_sample`` with an Equinox MLP as ``eps_fn`` (all of its validation and its
  default rematerialisation option included).
* ``bare scan``: a hand-written ``jax.jit`` + ``lax.scan`` loop with the same update and MLP, the physical
  limit of this workload in JAX.
* ``diffusers``: ``diffusers.DDPMScheduler.step`` driven by a PyTorch loop (``torch.inference_mode``, the
  CPU build of torch, all cores).

Steady-state times are medians of ``--repeats`` calls after a warm-up call, competitors called round-robin so
that load changes on a shared machine hit all alike. FLOPs count the MLP's matrix products
(``2 N steps (3*128 + 2*128*128 + 128*2)``); the matmul peak is the median f32 GFLOP/s of a jitted
2048 x 2048 matrix product measured in the same run. Memory: XLA's buffer assignment
(``compiled.memory_analysis().temp_size_in_bytes``) of ``jax.grad`` of a loss of DDIM samples with respect to
the MLP parameters, for 10 and 1000 steps, with and without rematerialisation.

Writes ``benchmarks/results/bench_sampler.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import torch
from diffusers import DDPMScheduler
from jax import lax

from jaxtt.diffusion import ddim_sample, ddpm_sample, linear_schedule

from _timing import interleaved, matmul_peak  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
WIDTH = 128


class EpsMLP(eqx.Module):
    """Batched MLP eps(x, t) on (x, t / T): 3 -> 128 -> 128 -> 128 -> 2 with SiLU."""

    weights: list
    biases: list
    T: int = eqx.field(static=True)

    def __init__(self, key, T):
        sizes = [3, WIDTH, WIDTH, WIDTH, 2]
        keys = jax.random.split(key, len(sizes) - 1)
        self.weights = [
            jax.random.normal(k, (i, o), dtype=jnp.float32) / np.sqrt(i) for k, i, o in zip(keys, sizes, sizes[1:])
        ]
        self.biases = [jnp.zeros((o,), dtype=jnp.float32) for o in sizes[1:]]
        self.T = T

    def __call__(self, x, t):
        h = jnp.concatenate([x, (t.astype(x.dtype) / self.T)[:, None]], axis=1)
        for w, b in zip(self.weights[:-1], self.biases[:-1]):
            h = jax.nn.silu(h @ w + b)
        return h @ self.weights[-1] + self.biases[-1]


def torch_mlp(model: EpsMLP) -> torch.nn.Module:
    """The same MLP (same weights) in PyTorch."""
    layers = []
    for i, (w, b) in enumerate(zip(model.weights, model.biases)):
        lin = torch.nn.Linear(w.shape[0], w.shape[1])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(np.asarray(w).T.copy()))
            lin.bias.copy_(torch.from_numpy(np.asarray(b).copy()))
        layers.append(lin)
        if i < len(model.weights) - 1:
            layers.append(torch.nn.SiLU())
    return torch.nn.Sequential(*layers)


def bare_scan_sampler(schedule, shape):
    """A hand-written DDPM loop: jit + lax.scan, no validation, no checkpointing."""
    T = schedule.T
    ts = jnp.arange(T, 0, -1, dtype=jnp.int32)
    c_x = lax.rsqrt(schedule.alphas[ts]).astype(jnp.float32)
    c_eps = (schedule.betas[ts] * lax.rsqrt(schedule.alphas[ts]) / jnp.sqrt(1 - schedule.alpha_bars[ts])).astype(
        jnp.float32
    )
    sigma = jnp.where(ts > 1, jnp.sqrt(schedule.posterior_variance[ts]), 0.0).astype(jnp.float32)

    @jax.jit
    def run(model, key):
        k0, k1 = jax.random.split(key)
        x = jax.random.normal(k0, shape, dtype=jnp.float32)

        def step(x, inp):
            t, a, b, s, k = inp
            eps = model(x, jnp.full((shape[0],), t))
            return a * x - b * eps + s * jax.random.normal(k, shape, dtype=jnp.float32), None

        x, _ = lax.scan(step, x, (ts, c_x, c_eps, sigma, jax.random.split(k1, T)))
        return x

    return run


def diffusers_sampler(model: torch.nn.Module, n: int, steps: int):
    scheduler = DDPMScheduler(
        num_train_timesteps=steps, beta_schedule="linear", variance_type="fixed_small", clip_sample=False
    )
    scheduler.set_timesteps(steps)
    generator = torch.Generator().manual_seed(0)

    def run():
        with torch.inference_mode():
            x = torch.randn(n, 2, generator=generator)
            for t in scheduler.timesteps:
                tt = torch.full((n, 1), (int(t) + 1) / steps)
                eps = model(torch.cat([x, tt], dim=1))
                x = scheduler.step(eps, t, x, generator=generator).prev_sample
        return x

    return run


def grad_memory(model: EpsMLP, schedule, n: int, steps: int, checkpoint: bool) -> int:
    """Bytes of XLA temporaries for the gradient of a loss of DDIM samples w.r.t. the MLP parameters."""

    def loss(m):
        x = ddim_sample(m, schedule, jax.random.key(0), (n, 2), steps, checkpoint=checkpoint)
        return jnp.mean(x**2)

    compiled = jax.jit(jax.grad(loss)).lower(model).compile()
    return int(compiled.memory_analysis().temp_size_in_bytes)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory-n", type=int, default=1000)
    args = parser.parse_args()
    n, steps = args.n, args.steps
    torch.set_num_threads(os.cpu_count())

    schedule = linear_schedule(steps, dtype=jnp.float32)
    model = EpsMLP(jax.random.key(0), steps)
    tmodel = torch_mlp(model).eval()
    x_probe = np.random.default_rng(0).normal(size=(4, 2)).astype(np.float32)
    t_probe = np.array([1, 10, 100, steps], dtype=np.int32)
    probe_in = np.concatenate([x_probe, (t_probe / steps)[:, None]], 1).astype(np.float32)
    with torch.no_grad():
        torch_out = tmodel(torch.from_numpy(probe_in)).numpy()
    jax_out = np.asarray(model(jnp.asarray(x_probe), jnp.asarray(t_probe)))
    same_model = float(np.max(np.abs(jax_out - torch_out)))

    bare = bare_scan_sampler(schedule, (n, 2))
    key = jax.random.key(1)
    fns = {
        "jaxtt": lambda: ddpm_sample(model, schedule, key, (n, 2), variance="beta_tilde").block_until_ready(),
        "bare scan": lambda: bare(model, key).block_until_ready(),
        "diffusers": diffusers_sampler(tmodel, n, steps),
    }
    start = time.perf_counter()
    fns["jaxtt"]()
    first_call_s = time.perf_counter() - start
    timings = interleaved(fns, args.repeats)
    peak = matmul_peak(repeats=args.repeats)
    flops = 2 * n * steps * (3 * WIDTH + 2 * WIDTH * WIDTH + WIDTH * 2)

    memory = {
        f"{s}_steps_{'remat' if cp else 'no_remat'}": grad_memory(model, schedule, args.memory_n, s, cp)
        for s in (10, steps)
        for cp in (True, False)
    }

    machine = {
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "torch": torch.__version__,
        "backend": jax.default_backend(),
    }
    rows = {}
    for name, t in timings.items():
        rows[name] = {
            **t,
            "steps_per_s": steps / t["median_s"],
            "gflops": flops / t["median_s"] / 1e9,
            "fraction_of_matmul_peak": flops / t["median_s"] / 1e9 / peak,
            "speedup_vs_diffusers": timings["diffusers"]["median_s"] / t["median_s"],
            "time_vs_bare_scan": t["median_s"] / timings["bare scan"]["median_s"],
        }
    print(f"machine: {machine}")
    print(f"DDPM sampling, N = {n}, {steps} steps, MLP 3x{WIDTH}; matmul peak {peak:.1f} GFLOP/s (f32)")
    print(f"(jax and torch MLPs agree to {same_model:.1e}; jaxtt first call incl. compile {first_call_s:.2f} s)")
    header = (
        f"{'':10s} {'median s':>9s} {'min s':>8s} {'steps/s':>8s} {'GFLOP/s':>8s} {'% peak':>7s}"
        f" {'vs diffusers':>13s} {'vs bare':>8s}"
    )
    print(header)
    for name, r in rows.items():
        print(
            f"{name:10s} {r['median_s']:9.3f} {r['min_s']:8.3f} {r['steps_per_s']:8.1f} {r['gflops']:8.1f}"
            f" {100 * r['fraction_of_matmul_peak']:6.1f}% {r['speedup_vs_diffusers']:12.2f}x"
            f" {r['time_vs_bare_scan']:7.3f}x"
        )
    print(f"gradient through DDIM (N = {args.memory_n}), XLA temporaries in MB:")
    for name, b in memory.items():
        print(f"  {name:28s} {b / 1e6:10.2f}")
    ratio = memory[f"{steps}_steps_remat"] / memory["10_steps_remat"]
    print(f"  {steps} vs 10 steps with remat: {ratio:.2f}x")

    RESULTS.mkdir(exist_ok=True)
    out = {
        "machine": machine,
        "workload": {"n": n, "steps": steps, "mlp_width": WIDTH, "flops": flops, "repeats": args.repeats},
        "matmul_peak_gflops": peak,
        "jaxtt_first_call_s": first_call_s,
        "max_abs_diff_jax_torch_mlp": same_model,
        "timings": rows,
        "grad_memory_bytes": {"n": args.memory_n, **memory, "ratio_remat_steps_vs_10": ratio},
    }
    (RESULTS / "bench_sampler.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
