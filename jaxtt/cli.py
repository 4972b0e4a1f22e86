"""The ``jaxtt`` console entry point.

``jaxtt demo`` trains an FTT denoiser by closed-form TT-ALS sweeps and the
ResNet-MLP noise model (:class:`jaxtt.nn.ResNetMLP`) by AdamW on a 2-D toy data set, samples both
with DDIM and DDPM (predicted x0 clipped to the data range, ``--no-clip`` to
turn it off), prints a comparison table and writes
``demo_samples.png`` (data | FTT | NN) and ``demo_results.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

__all__ = ["main", "demo"]


def _parser() -> argparse.ArgumentParser:
    from jaxtt.data import TOY_DATASETS

    parser = argparse.ArgumentParser(prog="jaxtt", description="Tensor-train diffusion models in JAX.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="train an FTT (ALS) and a ResNet-MLP (Adam) denoiser and compare samples")
    demo.add_argument("--dataset", default="swiss_roll", choices=sorted(TOY_DATASETS))
    demo.add_argument("--n", type=int, default=5000, help="training points")
    demo.add_argument("--T", type=int, default=1000, help="diffusion steps")
    demo.add_argument("--basis", default="legendre", choices=["legendre", "bspline", "chebyshev", "fourier"])
    demo.add_argument("--rank", type=int, default=8, help="FTT rank")
    demo.add_argument("--m", type=int, default=16, help="basis functions per variable")
    demo.add_argument("--sweeps", type=int, default=6, help="ALS sweeps")
    demo.add_argument("--repeats", type=int, default=10, help="noise draws per data point for ALS")
    demo.add_argument("--cg-steps", type=int, default=8,
                      help="Kronecker-preconditioned CGLS steps per ALS core solve (0: exact Cholesky solves)")
    demo.add_argument("--nn-width", type=int, default=128)
    demo.add_argument("--nn-depth", type=int, default=3)
    demo.add_argument("--nn-steps", type=int, default=4000, help="AdamW steps")
    demo.add_argument("--batch-size", type=int, default=256)
    demo.add_argument("--samples", type=int, default=2000, help="samples drawn from each model")
    demo.add_argument("--ddim-steps", type=int, default=100)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--out", default="demo_out", help="output directory")
    demo.add_argument("--no-progress", action="store_true", help="hide progress bars")
    demo.add_argument("--no-clip", action="store_true",
                      help="do not clip the predicted x0 to the data range (+5 %%) while sampling")
    return parser


def demo(args: argparse.Namespace) -> dict:
    """Run the demo described in the module docstring; return the results table."""
    import jax
    import jax.numpy as jnp

    from jaxtt.data import toy_dataset
    from jaxtt.diffusion import ddim_sample, ddpm_sample, linear_schedule
    from jaxtt.ftt import FTTDenoiser
    from jaxtt.metrics import mmd, sliced_wasserstein
    from jaxtt.nn import Batched, ResNetMLP
    from jaxtt.solvers import ALS, fit_denoiser
    from jaxtt.train import fit

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    progress = not args.no_progress
    keys = jax.random.split(jax.random.key(args.seed), 8)
    data = toy_dataset(args.dataset, keys[0], args.n)
    reference = toy_dataset(args.dataset, keys[1], args.samples)
    schedule = linear_schedule(args.T)

    print(f"jaxtt demo: {args.dataset}, N={args.n}, T={args.T}, jax {jax.__version__} on "
          f"{jax.default_backend()} ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)")
    start = time.perf_counter()
    ftt = FTTDenoiser(2, args.T, rank=args.rank, m=args.m, basis=args.basis, key=keys[2])
    ftt, _ = fit_denoiser(ftt, data, schedule, keys[3], solver=ALS(cg_maxiter=args.cg_steps), steps=args.sweeps,
                          repeats=args.repeats, progress=progress)
    jax.block_until_ready(ftt)
    ftt_time = time.perf_counter() - start

    start = time.perf_counter()
    net = Batched(ResNetMLP(2, args.nn_width, args.nn_depth, key=keys[4], time_scale=float(args.T)))
    trained = fit(net, data, schedule, steps=args.nn_steps, batch_size=args.batch_size, key=keys[5],
                  progress=progress)
    jax.block_until_ready(trained.ema_model)
    nn_time = time.perf_counter() - start

    models = {"FTT (ALS)": (ftt, ftt_time, ftt.num_params),
              "ResNet-MLP (AdamW)": (trained.ema_model, nn_time, _count_params(trained.ema_model))}
    shape = (args.samples, 2)
    low, high = float(data.min()), float(data.max())
    clip = None if args.no_clip else (low - 0.05 * (high - low), high + 0.05 * (high - low))
    results, samples = {}, {}
    for name, (model, seconds, params) in models.items():
        ddim = ddim_sample(model, schedule, keys[6], shape, steps=args.ddim_steps, clip_x0=clip)
        ddpm = ddpm_sample(model, schedule, keys[7], shape, clip_x0=clip)
        samples[name] = {"DDIM": ddim, "DDPM": ddpm}
        results[name] = {"train_seconds": seconds, "params": int(params)}
        for kind, x in samples[name].items():
            results[name][f"mmd_{kind.lower()}"] = float(mmd(x, reference))
            results[name][f"sliced_w_{kind.lower()}"] = float(sliced_wasserstein(keys[0], x, reference))
    noise = jax.random.normal(keys[1], shape, jnp.float32)
    results["N(0, I) noise"] = {"mmd_ddim": float(mmd(noise, reference)),
                                "sliced_w_ddim": float(sliced_wasserstein(keys[0], noise, reference))}
    _print_table(results, args)
    _plot(reference, samples, out / "demo_samples.png", args.dataset)
    _write_json(out / "demo_results.json", {"args": vars(args), "results": results})
    print(f"wrote {out / 'demo_samples.png'} and {out / 'demo_results.json'}")
    return results


def _count_params(model) -> int:
    import equinox as eqx
    import jax

    return int(sum(x.size for x in jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_inexact_array))))


def _print_table(results: dict, args) -> None:
    header = f"{'model':<20}{'train s':>9}{'params':>9}{'MMD DDIM':>11}{'MMD DDPM':>11}{'SW DDIM':>9}{'SW DDPM':>9}"
    print(header)
    print("-" * len(header))

    def cell(row, key, fmt):
        return format(row[key], fmt) if key in row else "-"

    for name, row in results.items():
        print(f"{name:<20}{cell(row, 'train_seconds', '.1f'):>9}{cell(row, 'params', 'd'):>9}"
              f"{cell(row, 'mmd_ddim', '.4f'):>11}{cell(row, 'mmd_ddpm', '.4f'):>11}"
              f"{cell(row, 'sliced_w_ddim', '.3f'):>9}{cell(row, 'sliced_w_ddpm', '.3f'):>9}")
    print(f"(MMD: unbiased MMD² to {args.samples} fresh data points; SW: sliced Wasserstein-2)")


def _plot(reference, samples: dict, path: Path, dataset: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(samples)
    fig, axes = plt.subplots(2, 1 + len(names), figsize=(4 * (1 + len(names)), 8), sharex=True, sharey=True)
    for row, kind in enumerate(["DDIM", "DDPM"]):
        axes[row, 0].scatter(reference[:, 0], reference[:, 1], s=2, alpha=0.5, color="k")
        axes[row, 0].set_title(f"data ({dataset})")
        for col, name in enumerate(names, start=1):
            x = samples[name][kind]
            axes[row, col].scatter(x[:, 0], x[:, 1], s=2, alpha=0.5)
            axes[row, col].set_title(f"{name}, {kind}")
    for ax in axes.flat:
        ax.set_xlim(-3, 3)
        ax.set_ylim(-3, 3)
        ax.set_aspect("equal")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def _write_json(path: Path, payload: dict) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    """Console entry point."""
    args = _parser().parse_args(argv)
    if args.command == "demo":
        demo(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
