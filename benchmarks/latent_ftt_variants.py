"""Why the latent FTT falls behind the network on the longer-trained VAE's latents: FTT variants on the same latents.

Run::

    .venv/bin/python benchmarks/latent_ftt_variants.py [--quick]

Rebuilds exactly the feature classifier, the VAE and the training latents of ``benchmarks/latent_digits.py``
(same configuration, seed and key order as :func:`jaxtt.latent_digits.run`: two runs agree exactly), so every
Fréchet distance here is on the scale of that benchmark's table and comparable with its latent NN row (read from
``benchmarks/results/latent_digits{_quick}.json`` when present). Then fits FTT denoisers that differ from an
ε-predicting FTT in the latents' own axes (rank 8, m 12 quick / 16 full: the benchmark's FTT when these variants
were first measured) in one or two respects each — PCA whitening carried by the model, v-prediction, rank,
basis size, noise draws per latent, sampled instead of empirical-Bayes targets — and samples each with the
benchmark's DDIM sampler and clipping box, ``--seeds`` times (start, noise draws and sampler keys; the classifier
and the VAE fixed). Per variant and seed: ALS fit time (first call, compilation included), the Fréchet distance
of the decoded samples (1,000 quick / 2,000 full), and in latent space the MMD² (:func:`jaxtt.metrics.mmd`) of
the samples against the validation images' latents, the share of samples outside the training latents' box, and the
distance of each sample to its nearest training latent relative to that of the validation latents
(memorisation ratio: < 1 means samples sit closer to training points than new data do). Also the latents' own
statistics (largest |correlation| between coordinates, excess kurtosis), which decide how separable the
problem is.

Writes ``benchmarks/results/latent_ftt_variants{_quick}.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxtt.diffusion import DDIM, linear_schedule, sample
from jaxtt.ftt import FTTDenoiser, Whitening
from jaxtt.latent_digits import FULL, QUICK, prepare
from jaxtt.metrics import mmd
from jaxtt.solvers import ALS, fit_denoiser

RESULTS = Path(__file__).resolve().parent / "results"


# The latent FTT's rank and basis size when these variants were first measured (quick, full); each variant differs
# from this base in the respects it names.
BASE_RANK_M = {"quick": (8, 12), "full": (8, 16)}


def variants(config, mode: str) -> dict:
    rank, m = BASE_RANK_M[mode]
    base = dict(rank=rank, m=m, repeats=config.repeats, sweeps=config.sweeps,
                targets=config.targets, prediction="eps", whiten=False)
    return {
        "benchmark's FTT": base,
        "sampled targets": base | {"targets": "sampled"},
        "whitened": base | {"whiten": True},
        "v-prediction": base | {"prediction": "v"},
        "whitened + v": base | {"whiten": True, "prediction": "v"},
        "rank 16": base | {"rank": 16},
        "4x draws": base | {"repeats": 4 * config.repeats},
        "rank 4": base | {"rank": 4},
        "whitened + v, sampled": base | {"whiten": True, "prediction": "v", "targets": "sampled"},
        "whitened + v, 4x draws": base | {"whiten": True, "prediction": "v", "repeats": 4 * config.repeats},
        "whitened + v, rank 12": base | {"whiten": True, "prediction": "v", "rank": 12},
        "whitened + v, m 24": base | {"whiten": True, "prediction": "v", "m": 24},
        "whitened + v, rank 12, m 12": base | {"whiten": True, "prediction": "v", "rank": 12, "m": 12},
    }


def nearest_distance(points, reference):
    d2 = jnp.sum(points**2, 1)[:, None] - 2 * points @ reference.T + jnp.sum(reference**2, 1)[None, :]
    return jnp.sqrt(jnp.maximum(jnp.min(d2, axis=1), 0.0))


def latent_statistics(z) -> dict:
    z = np.asarray(z, np.float64)
    corr = np.corrcoef(z, rowvar=False)
    centred = (z - z.mean(0)) / z.std(0)
    return {"max_abs_correlation": float(np.max(np.abs(corr - np.eye(z.shape[1])))),
            "excess_kurtosis": [round(float(k), 3) for k in (centred**4).mean(0) - 3.0]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the quick configuration (jaxtt digits)")
    parser.add_argument("--seeds", type=int, default=3, help="FTT fits per variant (start, draws, sampler)")
    parser.add_argument("--only", nargs="*", default=None, help="run only the variants whose names start so, adding them to the JSON of an earlier run")
    parser.add_argument("--out", type=Path, default=None, help="JSON file")
    args = parser.parse_args(argv)
    config = QUICK if args.quick else FULL
    tag, mode = ("_quick", "quick") if args.quick else ("", "full")
    out = args.out or RESULTS / f"latent_ftt_variants{tag}.json"
    load_start, wall = os.getloadavg(), time.perf_counter()

    setup = prepare(config)  # the classifier, VAE and latents of jaxtt.latent_digits.run
    z_train, z_val, clip = setup.z_train, setup.z_val, setup.clip
    low, high = float(z_train.min()), float(z_train.max())
    schedule, sampler = linear_schedule(config.T), DDIM(steps=config.ddim_steps)
    val_nearest = float(jnp.median(nearest_distance(z_val, z_train)))
    print(f"latents: {z_train.shape}, setup {time.perf_counter() - wall:.0f} s")

    rows = {}
    for i, (name, v) in enumerate(variants(config, mode).items()):
        if args.only and not any(name.startswith(prefix) for prefix in args.only):
            continue
        kw = {"prediction": v["prediction"]}
        if v["whiten"] or v["prediction"] != "eps":
            kw["schedule"] = schedule
        if v["whiten"]:
            kw["whitening"] = Whitening.fit(z_train)
        runs = []
        for seed in range(args.seeds):  # FTT start, noise draws and sampler keys; classifier and VAE fixed
            k_init, k_fit, k_sample = jax.random.split(jax.random.key(1000 * seed + i), 3)
            model = FTTDenoiser(config.latent, config.T, rank=v["rank"], m=v["m"], key=k_init, **kw)
            start = time.perf_counter()
            fitted, _ = fit_denoiser(model, z_train, schedule, k_fit, solver=ALS(cg_maxiter=config.cg_steps),
                                     steps=v["sweeps"], repeats=v["repeats"], targets=v["targets"], progress=False)
            jax.block_until_ready(fitted)
            seconds = time.perf_counter() - start
            z = sample(fitted, schedule, sampler, k_sample, (config.samples, config.latent), clip_x0=clip).samples
            inside = jnp.all((z >= low) & (z <= high), axis=1)
            runs.append({"fit_s": seconds, "fd": setup.frechet(setup.space.decode(z)),
                         "latent_mmd2_vs_validation": float(mmd(z, z_val)),
                         "outside_training_box": float(1.0 - jnp.mean(inside)),
                         "memorisation_ratio": float(jnp.median(nearest_distance(z, z_train))) / val_nearest})
        rows[name] = {"config": v, "params": fitted.num_params, "seeds": runs}
        rows[name] |= {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}
        rows[name]["fd_range"] = [min(r["fd"] for r in runs), max(r["fd"] for r in runs)]
        print(f"{name:>18}: FD " + " / ".join(f"{r['fd']:.2f}" for r in runs) + ", " +
              ", ".join(f"{k} {rows[name][k]:.4g}" for k in runs[0] if k != "fd"), flush=True)

    if args.only and out.exists():  # add to the variants an earlier run of this mode measured
        earlier = json.loads(out.read_text())["rows"]
        order = list(variants(config, mode))
        rows = dict(sorted((earlier | rows).items(), key=lambda item: order.index(item[0])))
    reference = {}
    bench = RESULTS / f"latent_digits{tag}.json"
    if bench.exists():
        table = json.loads(bench.read_text())
        table = table.get("results", table)
        reference = {k: table[k] for k in ("latent NN-DDPM", "latent FTT-DDPM", "validation set") if k in table}
    payload = {"command": " ".join([".venv/bin/python", "benchmarks/latent_ftt_variants.py", *sys.argv[1:]]),
               "mode": mode, "latents": latent_statistics(z_train),
               "validation_latent_mmd2_floor": float(mmd(z_val, z_train[: z_val.shape[0]])),
               "rows": rows, "latent_digits_reference": reference, "wall_s": time.perf_counter() - wall,
               "load": [load_start, os.getloadavg()], "cpus": os.cpu_count(), "jax": jax.__version__}
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    os.replace(tmp, out)
    print(f"{'variant':>18} | FD mean (range)      | latent MMD² | outside | memo | fit s   (means over {args.seeds} seeds)")
    for name, r in rows.items():
        print(f"{name:>18} | {r['fd']:6.2f} ({r['fd_range'][0]:5.2f}-{r['fd_range'][1]:5.2f}) | "
              f"{r['latent_mmd2_vs_validation']:11.4f} | {r['outside_training_box']:7.3f} | {r['memorisation_ratio']:4.2f} "
              f"| {r['fit_s']:5.1f}")
    for k, r in reference.items():
        print(f"{k:>18} | {r['fd']:6.2f} (benchmark table)")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
