"""Latent diffusion (Rombach et al. 2022) on scikit-learn's 8x8 digits, scored by a classifier's Fréchet distance.

    python benchmarks/latent_digits.py [--quick]

Runs :func:`jaxtt.latent_digits.run` (the quick or the full configuration; ``jaxtt digits`` runs the same quick
one): a CNN feature classifier and a VAE (latent 8) on the fixed 1,497 / 300 split, latent ResNet-MLP (AdamW)
and FTT (ALS) denoisers, unconditional and class-conditional with classifier-free guidance, and a pixel-space
U-Net, and the unconditional latent models guided by a classifier of noised latents (Dhariwal & Nichol 2021),
all sampled by DDIM with the same clipping. Rows: Fréchet distance of the classifier's penultimate
features to the training images', training seconds (compilation included), parameters, and for the
conditional rows the classifier's accuracy on the generated digits (the requested class). Also reported: the
two goals (latent FTT within 10 % of the latent NN's Fréchet distance in at most 1/10 of its training time;
>= 95 % accuracy with guidance at a Fréchet distance no worse than unguided sampling, read both as the
unconditional model's and as the conditional model's at w = 0).

Writes ``benchmarks/results/latent_digits[_quick].json`` (with the machine load) and ``latent_digits[_quick].png``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from pathlib import Path

import jax

from jaxtt.latent_digits import FULL, QUICK, plot_grids, print_table, run

RESULTS = Path(__file__).resolve().parent / "results"


def goals(results: dict) -> dict:
    """The issue's goals, evaluated on the table."""
    nn = results["latent NN-DDPM"]
    out = {}
    for name, row in results.items():
        if name.startswith("latent FTT-DDPM"):
            ratios = {"fd_over_nn": row["fd"] / nn["fd"], "time_over_nn": row["train_seconds"] / nn["train_seconds"],
                      "warm_time_over_nn": row["warm_seconds"] / nn["warm_seconds"]}
            ratios["goal_met"] = ratios["fd_over_nn"] <= 1.1 and ratios["time_over_nn"] <= 0.1
            ratios["goal_met_warm"] = ratios["fd_over_nn"] <= 1.1 and ratios["warm_time_over_nn"] <= 0.1
            out[name] = ratios
    for arm in ("FTT", "NN"):
        rows = {name: row for name, row in results.items()  # guided rows: w = 0 is the unguided reference
                if name.startswith((f"conditional latent {arm},", f"classifier-guided latent {arm},"))
                and not name.endswith(", w=0")}
        if not rows:
            continue
        # two readings of "no worse than unconditional sampling at w = 0": the unconditional model's FD, and the
        # conditional model's at w = 0 (unguided conditional sampling)
        references = {"unconditional": results[f"latent {arm}-DDPM"]}
        if f"conditional latent {arm}, w=0" in results:
            references["conditional_w0"] = results[f"conditional latent {arm}, w=0"]
        summary = out[f"guidance_{arm.lower()}"] = {}
        for ref, base in references.items():
            summary[f"fd_{ref}"] = base["fd"]
            summary[f"met_vs_{ref}"] = [name for name, row in rows.items()
                                        if row["accuracy"] >= 0.95 and row["fd"] <= base["fd"]]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the quick configuration (a few minutes on 2 cores)")
    args = parser.parse_args()
    config = QUICK if args.quick else FULL
    suffix = "_quick" if args.quick else ""
    load_before = os.getloadavg()
    start = time.perf_counter()
    results, images = run(config)
    seconds = time.perf_counter() - start
    print_table(results)
    summary = goals(results)
    print(json.dumps(summary, indent=2))
    RESULTS.mkdir(exist_ok=True)
    plot_grids(images, RESULTS / f"latent_digits{suffix}.png")
    payload = {"config": dataclasses.asdict(config), "results": results, "goals": summary, "seconds": seconds,
               "machine": {"jax": jax.__version__, "backend": jax.default_backend(), "cpus": os.cpu_count(),
                           "processor": platform.processor() or platform.machine(),
                           "loadavg_before": load_before, "loadavg_after": os.getloadavg()}}
    (RESULTS / f"latent_digits{suffix}.json").write_text(json.dumps(payload, indent=2))
    print(f"wrote {RESULTS / f'latent_digits{suffix}.json'} and latent_digits{suffix}.png ({seconds:.0f} s)")


if __name__ == "__main__":
    main()
