"""Escaping samples of FTT denoisers and the predicted-x0 clip (``clip_x0``) of the DDPM and DDIM samplers.

Run (about 1-3 minutes on a shared 2-core CPU)::

    .venv/bin/python benchmarks/clip_escapes.py

Workload: the standardised 2-D swiss roll (``N_train = 10,000``), the linear schedule with ``T = 1000``, float32,
as in ``benchmarks/study_ftt_vs_nn.py``. Each configuration is an :class:`jaxtt.ftt.FTTDenoiser`
(Legendre basis; the time as a core, and once as an additive term, a weaker design of the study that escapes
more often) fitted in closed form by :func:`jaxtt.solvers.fit_denoiser` (ALS). From the
same key, 5,000 samples are drawn by DDIM (50 steps, ``eta = 0``) and by ancestral DDPM (1000 steps,
``variance="beta"``), each without and with ``clip_x0`` set to the data box: ``[lo, hi]`` = the smallest and
largest coordinate of the training data, widened by 5 % of its range on both sides.

Reported per run: the share of "escapes" (samples with ``|x| > 3 R``, ``R`` the largest training-point norm),
the share beyond ``1.5 R`` (the study's outlier threshold), the share of samples with a coordinate on or beyond a
face of the box (on it: pinned by the clip; beyond it: only without the clip), the largest ``|x|``, MMD²
(:func:`jaxtt.metrics.mmd`) of the first 2,000 samples against 2,000 held-out data points, and the sliced W2
(:func:`jaxtt.metrics.sliced_wasserstein`, 128 directions) of all samples against them, next to the data-vs-data
floors (two held-out samples of 2,000). MMD² with Gaussian kernels barely sees a few far-away samples (their
kernel values are ~0); the sliced W2 grows with their distance.
Writes ``benchmarks/results/clip_escapes.json`` (atomically) and prints a table.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxtt.data import toy_dataset
from jaxtt.diffusion import ddim_sample, ddpm_sample, linear_schedule
from jaxtt.ftt import FTTDenoiser
from jaxtt.metrics import mmd, sliced_wasserstein
from jaxtt.solvers import ALS, fit_denoiser

RESULTS = Path(__file__).resolve().parent / "results"
T = 1000
N_TRAIN, N_SAMPLES, N_MMD = 10_000, 5_000, 2_000
DDIM_STEPS = 50
BOX_MARGIN = 0.05
ESCAPE_FACTOR, OUTLIER_FACTOR = 3.0, 1.5
#: FTT configurations (rank, m, repeats, sweeps): the study's quick-mode swiss-roll rung and a larger one
CONFIGS = (
    {"rank": 8, "m": 12, "repeats": 2, "sweeps": 2, "time": "core"},
    {"rank": 8, "m": 16, "repeats": 4, "sweeps": 2, "time": "core"},
    {"rank": 8, "m": 12, "repeats": 2, "sweeps": 2, "time": "additive"},
)


def data_box(x: np.ndarray, margin: float) -> tuple[float, float]:
    """``(lo, hi)``: the smallest and largest coordinate of ``x``, widened by ``margin`` times their distance."""
    lo, hi = float(x.min()), float(x.max())
    pad = margin * (hi - lo)
    return lo - pad, hi + pad


def sample_stats(samples: np.ndarray, radius: float, box, held_out: jnp.ndarray, key) -> dict:
    """Escape and outlier shares, the share on or beyond the box, the largest |x|, and MMD² and sliced W2
    against ``held_out``."""
    samples = np.asarray(samples, dtype=np.float64)
    finite = np.isfinite(samples).all(axis=1)
    norms = np.where(finite, np.linalg.norm(np.where(finite[:, None], samples, 0.0), axis=1), np.inf)
    lo, hi = box
    on_face = np.any((samples <= np.float32(lo)) | (samples >= np.float32(hi)), axis=1)
    head = jnp.asarray(samples[:N_MMD][finite[:N_MMD]], dtype=held_out.dtype)
    return {
        "escape_frac": float(np.mean(norms > ESCAPE_FACTOR * radius)),
        "outlier_frac": float(np.mean(norms > OUTLIER_FACTOR * radius)),
        "at_or_beyond_box_frac": float(np.mean(on_face)),
        "nonfinite_frac": float(np.mean(~finite)),
        "max_abs": float(np.max(np.abs(samples[finite]), initial=0.0)),
        "mmd": float(mmd(head, held_out)),
        "sw": float(sliced_wasserstein(key, jnp.asarray(samples[finite], dtype=held_out.dtype), held_out)),
    }


def timed(fn):
    start = time.perf_counter()
    out = jax.block_until_ready(fn())
    return out, time.perf_counter() - start


def run_config(cfg: dict, x_train, held_out, schedule, key, radius: float, box) -> dict:
    k_init, k_fit, k_sample = jax.random.split(key, 3)
    model = FTTDenoiser(2, T, rank=cfg["rank"], m=cfg["m"], basis="legendre", time=cfg["time"], dtype=jnp.float32,
                        key=k_init)
    (model, _), fit_s = timed(lambda: fit_denoiser(model, x_train, schedule, k_fit, solver=ALS(),
                                                   steps=cfg["sweeps"], repeats=cfg["repeats"], targets="sampled",
                                                   progress=False))
    shape = (N_SAMPLES, 2)
    samplers = {
        "DDIM-50": lambda clip: ddim_sample(model, schedule, k_sample, shape, DDIM_STEPS, clip_x0=clip),
        "DDPM-1000": lambda clip: ddpm_sample(model, schedule, k_sample, shape, clip_x0=clip),
    }
    runs = []
    for name, sample in samplers.items():
        for clip in (None, box):
            x, wall = timed(lambda: sample(clip))
            stats = sample_stats(np.asarray(x), radius, box, held_out, jax.random.key(1))
            runs.append({"sampler": name, "clip_x0": None if clip is None else list(clip), "wall_s": wall, **stats})
            print(f"  {label(cfg)} {name:9s} clip={'box' if clip else 'off':3s}  escapes {stats['escape_frac']:.4f}"
                  f"  MMD² {stats['mmd']:.5f}  SW {stats['sw']:.4f}  ({wall:.1f} s incl. compile)", flush=True)
    return {"config": cfg, "label": label(cfg), "fit_s": fit_s, "runs": runs}


def label(cfg: dict) -> str:
    return f"{cfg['time']} r{cfg['rank']} m{cfg['m']} x{cfg['repeats']}/{cfg['sweeps']}"


def table(result: dict) -> str:
    lines = ["| FTT (time rank m repeats/sweeps) | sampler | clip_x0 | escapes (>3R) | outliers (>1.5R) | "
             "on/beyond box | max abs | MMD² | SW |", "|---|---|---|---|---|---|---|---|---|"]
    for block in result["configs"]:
        for r in block["runs"]:
            clip = "off" if r["clip_x0"] is None else f"[{r['clip_x0'][0]:.2f}, {r['clip_x0'][1]:.2f}]"
            lines.append(f"| {block['label']} | {r['sampler']} | {clip} | {100 * r['escape_frac']:.2f} % | "
                         f"{100 * r['outlier_frac']:.2f} % | {100 * r['at_or_beyond_box_frac']:.2f} % | "
                         f"{r['max_abs']:.3g} | {r['mmd']:.5f} | {r['sw']:.4f} |")
    lines.append(f"| data vs data (floor) | | | | | | | {result['mmd_floor']:.5f} | {result['sw_floor']:.4f} |")
    return "\n".join(lines)


def write_json(result: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as f:
        json.dump(result, f, indent=2)
        tmp = f.name
    os.replace(tmp, path)


def main() -> None:
    start, load_start = time.perf_counter(), os.getloadavg()
    key = jax.random.key(0)
    k_train, k_test, k_ref, k_models = jax.random.split(key, 4)
    x_train = toy_dataset("swiss_roll", k_train, N_TRAIN)
    held_out = toy_dataset("swiss_roll", k_test, N_MMD)
    reference = toy_dataset("swiss_roll", k_ref, N_MMD)
    schedule = linear_schedule(T, dtype=jnp.float32)
    radius = float(jnp.max(jnp.linalg.norm(x_train, axis=1)))
    box = data_box(np.asarray(x_train), BOX_MARGIN)
    print(f"swiss roll: R = {radius:.3f}, escape threshold {ESCAPE_FACTOR * radius:.2f}, box [{box[0]:.3f}, "
          f"{box[1]:.3f}]", flush=True)
    configs = [run_config(cfg, x_train, held_out, schedule, k, radius, box)
               for cfg, k in zip(CONFIGS, jax.random.split(k_models, len(CONFIGS)))]
    result = {
        "benchmark": "clip_escapes",
        "workload": {"data": "swiss_roll (standardised)", "n_train": N_TRAIN, "n_samples": N_SAMPLES,
                     "n_mmd": N_MMD, "T": T, "schedule": "linear", "dtype": "float32", "ddim_steps": DDIM_STEPS,
                     "ddim_eta": 0.0, "ddpm_variance": "beta", "box_margin": BOX_MARGIN,
                     "escape": f"|x| > {ESCAPE_FACTOR} R", "outlier": f"|x| > {OUTLIER_FACTOR} R",
                     "fit": "fit_denoiser(solver=ALS()), FTTDenoiser(basis='legendre')"},
        "radius": radius,
        "box": list(box),
        "mmd_floor": float(mmd(reference, held_out)),
        "sw_floor": float(sliced_wasserstein(jax.random.key(1), reference, held_out)),
        "configs": configs,
        "machine": {"processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
                    "platform": platform.platform(), "jax": jax.__version__, "backend": jax.default_backend()},
        "load_start": load_start,
        "load_end": os.getloadavg(),
        "total_s": time.perf_counter() - start,
    }
    write_json(result, RESULTS / "clip_escapes.json")
    print(table(result))
    print(f"total {result['total_s']:.0f} s; wrote {RESULTS / 'clip_escapes.json'}")


if __name__ == "__main__":
    main()
