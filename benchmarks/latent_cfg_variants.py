"""Why classifier-free guidance of the conditional latent FTT loses accuracy and blows up: variants on the same latents.

Run::

    .venv/bin/python benchmarks/latent_cfg_variants.py [--quick] [--only NAME ...]

Rebuilds the feature classifier, the VAE and the training latents of ``benchmarks/latent_digits.py`` (same
configuration, seed and key order as :func:`jaxtt.latent_digits.run`), so every Fréchet distance here is on the
scale of that benchmark's table. Then fits class-conditional FTT denoisers (the label as one more FTT variable
on an indicator basis with a null value, Ho & Salimans 2022) that differ from the benchmark's in one respect
each — the null label fitted on duplicated rows instead of 10 % label dropout, the rank, sweeps, noise draws —
next to the empirical-Bayes targets themselves as a model (the optimal denoiser of the empirical class
distributions, the ceiling of any fit), and samples each
(``samples // 10`` per class) with classifier-free guidance at several weights ``w``, constant or only on a
limited interval of steps (Kynkäänniemi et al. 2024). Per variant: fit seconds (compilation included), and on
fresh held-out triples the relative error of the conditional slices and of the null slice against the
empirical-Bayes targets, and of the guidance direction ``ε(y) − ε(∅)`` that guidance amplifies, split into
small and large ``t``. Per weight: the Fréchet distance of the decoded samples to the training images and the
classifier's agreement with the requested class.

Writes ``benchmarks/results/latent_cfg_variants{_quick}.json``.
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

from jaxtt.diffusion import DDIM, ClassifierFreeGuidance, empirical_bayes_eps, linear_schedule, sample, \
    training_triples
from jaxtt.ftt import FTTDenoiser, Whitening
from jaxtt.latent_digits import CLASSES, FULL, QUICK, prepare
from jaxtt.solvers import ALS, fit_denoiser

RESULTS = Path(__file__).resolve().parent / "results"
SCALES = (0.0, 0.5, 1.0, 2.0)
INTERVAL_SCALES = (1.0, 2.0, 3.0)


def variants(config) -> dict:
    base = dict(rank=config.rank, null_rows="dropout", label_dropout=0.1, repeats=config.repeats,
                sweeps=config.sweeps)
    return {
        "dropout 0.1": base,
        "duplicate": base | {"null_rows": "duplicate", "label_dropout": 0.0},
        "dropout 0.1, rank 16": base | {"rank": 16},
        "duplicate, rank 16": base | {"null_rows": "duplicate", "label_dropout": 0.0, "rank": 16},
        "duplicate, 4x draws": base | {"null_rows": "duplicate", "label_dropout": 0.0, "repeats": 4 * config.repeats},
        "duplicate, rank 16, 8 sweeps": base | {"null_rows": "duplicate", "label_dropout": 0.0, "rank": 16,
                                                "sweeps": 8, "seed": 5},
        "empirical-Bayes targets themselves (no fit)": {"exact": True, "seed": 5},
    }


def intervals(config) -> dict:
    """Guidance intervals in steps: guidance off at low noise, and off at both ends."""
    T = config.T
    return {f"t>{T // 10}": (T // 10, T), f"{T // 10}<t<={7 * T // 10}": (T // 10, 7 * T // 10),
            f"t>{T // 4}": (T // 4, T)}


def relative(a, b):
    return float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))


def fit_errors(model, z_train, y_train, schedule, key):
    """Relative errors of the slices and of the guidance direction against empirical-Bayes targets."""
    x_t, t, _ = training_triples(key, z_train, schedule, 2)
    labels = jnp.tile(y_train, 2)
    null = jnp.full_like(labels, CLASSES)
    target_y = empirical_bayes_eps(schedule, x_t, t, z_train, labels=labels, reference_labels=y_train)
    target_0 = empirical_bayes_eps(schedule, x_t, t, z_train, labels=null, reference_labels=y_train)
    out_y, out_0 = model(x_t, t, labels), model(x_t, t, null)
    out = {"conditional": relative(out_y, target_y), "null": relative(out_0, target_0)}
    for part, mask in (("all", t > 0), ("t<=100", t <= 100), ("t>100", t > 100)):
        out[f"direction {part}"] = relative((out_y - out_0)[mask], (target_y - target_0)[mask])
    out["per_class"] = [relative(out_y[labels == k], target_y[labels == k]) for k in range(CLASSES)]
    return out


def fit_variant(config, v, z_train, y_train, schedule, k_init, k_fit):
    """The conditional latent FTT of the benchmark with the variant's options; returns it and the fit seconds."""
    model = FTTDenoiser(config.latent, config.T, rank=v["rank"], m=config.m, classes=CLASSES, key=k_init,
                        schedule=schedule, prediction=config.prediction,
                        whitening=Whitening.fit(z_train) if config.whiten else None)
    start = time.perf_counter()
    model, _ = fit_denoiser(model, z_train, schedule, k_fit, solver=ALS(cg_maxiter=config.cg_steps),
                            steps=v["sweeps"], repeats=v["repeats"], targets=config.targets, labels=y_train,
                            label_dropout=v["label_dropout"], null_rows=v["null_rows"], progress=False)
    jax.block_until_ready(model)
    return model, time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the quick configuration (jaxtt digits)")
    parser.add_argument("--only", nargs="*", default=None, help="run only these variants, adding them to the JSON")
    args = parser.parse_args(argv)
    config = QUICK if args.quick else FULL
    tag = "_quick" if args.quick else ""
    out = RESULTS / f"latent_cfg_variants{tag}.json"
    load_start, wall = os.getloadavg(), time.perf_counter()

    setup = prepare(config)  # the classifier, VAE and latents of jaxtt.latent_digits.run
    z_train, y_train, clip = setup.z_train, setup.y_train, setup.clip
    schedule, sampler = linear_schedule(config.T), DDIM(steps=config.ddim_steps)
    labels = jnp.repeat(jnp.arange(CLASSES), config.samples // CLASSES)
    print(f"latents: {z_train.shape}, setup {time.perf_counter() - wall:.0f} s", flush=True)

    def score(guided, key):
        z = sample(guided, schedule, sampler, key, (labels.shape[0], config.latent), clip_x0=clip).samples
        x = setup.space.decode(z)
        return {"fd": setup.frechet(x), "accuracy": float(jnp.mean(setup.predict(x) == labels))}

    rows = {}
    for i, (name, v) in enumerate(variants(config).items()):
        if args.only and name not in args.only:
            continue
        k_init, k_fit, k_eval, k_sample = jax.random.split(jax.random.key(100 + v.get("seed", i)), 4)
        if v.get("exact"):  # the optimal denoiser of the empirical class distributions: the ceiling of the fits
            def model(x, t, y):
                return empirical_bayes_eps(schedule, x, t, z_train, labels=y, reference_labels=y_train)
            seconds = 0.0
        else:
            model, seconds = fit_variant(config, v, z_train, y_train, schedule, k_init, k_fit)
        row = {"config": v, "fit_s": seconds, "errors": fit_errors(model, z_train, y_train, schedule, k_eval),
               "constant": {}, "interval": {}}
        for w in SCALES:
            row["constant"][f"{w:g}"] = score(ClassifierFreeGuidance(model, labels, CLASSES, scale=w), k_sample)
        for interval, (lo, hi) in intervals(config).items():
            for w in INTERVAL_SCALES:
                scale = lambda t, w=w, lo=lo, hi=hi: jnp.where((t > lo) & (t <= hi), w, 0.0)  # noqa: E731
                row["interval"][f"{interval}, w={w:g}"] = score(
                    ClassifierFreeGuidance(model, labels, CLASSES, scale=scale), k_sample)
        rows[name] = row
        e = row["errors"]
        print(f"{name}: fit {seconds:.1f} s, rel. error cond {e['conditional']:.3f} null {e['null']:.3f} "
              f"direction {e['direction all']:.3f} (t<=100 {e['direction t<=100']:.3f}, "
              f"t>100 {e['direction t>100']:.3f})", flush=True)
        for kind in ("constant", "interval"):
            for w, r in row[kind].items():
                print(f"    {kind} w={w}: FD {r['fd']:.2f} acc {r['accuracy']:.3f}", flush=True)

    if args.only and out.exists():
        rows = json.loads(out.read_text())["rows"] | rows
    payload = {"command": " ".join([".venv/bin/python", "benchmarks/latent_cfg_variants.py", *sys.argv[1:]]),
               "mode": "quick" if args.quick else "full", "rows": rows, "wall_s": time.perf_counter() - wall,
               "load": [load_start, os.getloadavg()], "cpus": os.cpu_count(), "jax": jax.__version__}
    RESULTS.mkdir(exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    os.replace(tmp, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
