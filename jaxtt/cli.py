"""The ``jaxtt`` console entry point.

* ``jaxtt demo`` trains an FTT denoiser by closed-form TT-ALS sweeps and the ResNet-MLP noise model
  (:class:`jaxtt.nn.ResNetMLP`) by AdamW on a 2-D toy data set, samples both with DDIM and DDPM (predicted x0
  clipped to the data range, ``--no-clip`` to turn it off), prints a comparison table and writes
  ``demo_samples.png`` (data | FTT | NN) and ``demo_results.json``. Both arms get the budget the FTT-vs-NN
  study (``benchmarks/study_ftt_vs_nn.py``) measured as enough on the swiss roll with 10,000 points: the
  ResNet-MLP 10,000 AdamW steps (3000 leave it visibly under-trained), the FTT its best measured
  configuration: rank 8 with 16 Legendre functions per variable, predicting the velocity ``v`` (Salimans & Ho
  2022) regressed on empirical-Bayes targets (the posterior mean of the noise under the training points,
  Xu et al. 2023), 4 noise draws per point and 3 ALS sweeps of 8 CGLS steps per core.
* ``jaxtt train DATA --out MODEL`` fits an FTT denoiser to the points in ``DATA`` (``.npy`` or ``.csv``, one
  point per row). The data are standardized per coordinate first; the mean and standard deviation are stored
  in the model file, so ``sample`` returns points in the data's own coordinates.
* ``jaxtt sample MODEL --n N --out FILE`` draws ``N`` points from a saved model with DDIM or DDPM and writes
  them as ``.npy`` or ``.csv``.
* ``jaxtt digits`` runs latent diffusion on scikit-learn's 8x8 digits (:mod:`jaxtt.latent_digits`, the quick
  configuration; ``--full`` the long one): a feature classifier, a VAE, latent ResNet-MLP and FTT denoisers
  (unconditional, classifier-guided, class-conditional with classifier-free guidance) and a pixel-space U-Net;
  prints the table
  of Fréchet distances and writes ``digits_results.json`` and the digit grids ``digits_samples.png``.
* ``jaxtt evaluate SAMPLES DATA`` prints MMD², sliced Wasserstein-2 and the energy distance between two point
  files (and writes them as JSON with ``--json``).

Every option is checked before anything is imported from JAX, any folder is created or any training starts; a
user error ends with an argparse-style message that names the flag (exit status 2), not a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from jaxtt import __version__
from jaxtt._sizes import als_sweep_bytes, host_memory_bytes, tt_ranks

__all__ = ["main", "demo", "train", "sample", "evaluate", "digits"]

#: Names of jaxtt.data.TOY_DATASETS and jaxtt.basis.BASES, repeated here so that checking the options does not
#: import JAX (a test keeps them equal).
TOY_DATASET_NAMES = ("checkerboard", "circles", "eight_gaussians", "moons", "pinwheel", "swiss_roll")
BASIS_NAMES = ("bspline", "chebyshev", "fourier", "legendre")
_BSPLINE_DEGREE = 2  # the default degree of jaxtt.basis.BSpline: it needs m > degree
_MODEL_FORMAT = "jaxtt-ftt-denoiser"
_POINT_SUFFIXES = (".npy", ".csv")


# --- option types: argparse reports their errors as "argument --flag: ..." -------------------------------------

def _int_at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def _real_in(low: float, high: float):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number in [{low}, {high}], got {text!r}") from None
        if not low <= value <= high:  # also refuses nan
            raise argparse.ArgumentTypeError(f"expected a number in [{low}, {high}], got {text}")
        return value

    parse.__name__ = f"number in [{low}, {high}]"
    return parse


_positive = _int_at_least(1)
_count = _int_at_least(0)


def _subparser(sub, name: str, help_text: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help_text, description=help_text,
                          formatter_class=argparse.ArgumentDefaultsHelpFormatter)


def _add_ftt_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--T", type=_positive, default=1000, help="diffusion steps")
    p.add_argument("--basis", default="legendre", choices=BASIS_NAMES, help="basis family of the FTT")
    p.add_argument("--rank", type=_positive, default=8, help="FTT rank")
    p.add_argument("--m", type=_positive, default=16, help="basis functions per variable")
    p.add_argument("--sweeps", type=_positive, default=3, help="ALS sweeps")
    p.add_argument("--repeats", type=_positive, default=4, help="noise draws per data point for ALS")
    p.add_argument("--targets", default="empirical_bayes", choices=("empirical_bayes", "sampled"),
                   help="regression targets: the posterior mean of the noise under the training points "
                        "(O(N² repeats D) work) or the drawn noise itself")
    p.add_argument("--prediction", default="v", choices=("v", "eps", "x0"),
                   help="what the FTT represents (it returns the noise prediction either way)")
    p.add_argument("--cg-steps", type=_count, default=8,
                   help="Kronecker-preconditioned CGLS steps per ALS core solve (0: exact Cholesky solves)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jaxtt", description="Tensor-train diffusion models in JAX.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--version", action="version", version=f"jaxtt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{demo,train,sample,evaluate,digits}")

    demo = _subparser(sub, "demo", "train an FTT (ALS) and a ResNet-MLP (AdamW) denoiser on a toy data set and "
                                   "compare their samples")
    demo.add_argument("--dataset", default="swiss_roll", choices=TOY_DATASET_NAMES, help="toy data set")
    demo.add_argument("--n", type=_int_at_least(2), default=10_000, help="training points")
    _add_ftt_options(demo)
    demo.add_argument("--nn-width", type=_positive, default=128, help="hidden width of the ResNet-MLP")
    demo.add_argument("--nn-depth", type=_positive, default=3, help="residual blocks of the ResNet-MLP")
    demo.add_argument("--nn-steps", type=_positive, default=10_000, help="AdamW steps")
    demo.add_argument("--batch-size", type=_positive, default=256, help="AdamW batch size (at most --n)")
    demo.add_argument("--samples", type=_int_at_least(2), default=2000, help="samples drawn from each model")
    demo.add_argument("--ddim-steps", type=_positive, default=100, help="DDIM steps (at most --T)")
    demo.add_argument("--seed", type=_count, default=0, help="random seed")
    demo.add_argument("--out", default="demo_out", help="output directory")
    demo.add_argument("--no-progress", action="store_true", help="hide progress bars")
    demo.add_argument("--no-clip", action="store_true",
                      help="do not clip the predicted x0 to the data range (+5 %%) while sampling")

    train = _subparser(sub, "train", "fit an FTT denoiser to the points of a .npy or .csv file and save it")
    train.add_argument("data", help="points, one per row: a 2-D .npy array or a .csv file (an optional header "
                                    "line is skipped)")
    train.add_argument("--out", required=True, help="model file to write (replaced atomically)")
    _add_ftt_options(train)
    train.add_argument("--schedule", default="linear", choices=("linear", "cosine"), help="noise schedule")
    train.add_argument("--no-standardize", action="store_true",
                       help="fit the raw coordinates (the FTT clamps its inputs to [-4, 4]: only for data "
                            "that already has zero mean and unit variance)")
    train.add_argument("--seed", type=_count, default=0, help="random seed")
    train.add_argument("--no-progress", action="store_true", help="hide progress bars")

    smp = _subparser(sub, "sample", "draw points from a model saved by `jaxtt train`")
    smp.add_argument("model", help="model file written by `jaxtt train`")
    smp.add_argument("--n", type=_positive, default=1000, help="number of points")
    smp.add_argument("--out", required=True, help="output file, .npy or .csv")
    smp.add_argument("--sampler", default="ddim", choices=("ddim", "ddpm"), help="sampler")
    smp.add_argument("--steps", type=_positive, default=None,
                     help="sampler steps, at most the model's T (default: 100 for DDIM, T for DDPM)")
    smp.add_argument("--eta", type=_real_in(0.0, 1.0), default=0.0, help="DDIM stochasticity")
    smp.add_argument("--no-clip", action="store_true",
                     help="do not clip the predicted x0 to the training data's range (+5 %%)")
    smp.add_argument("--seed", type=_count, default=0, help="random seed")

    ev = _subparser(sub, "evaluate", "MMD², sliced Wasserstein-2 and energy distance of samples against data")
    ev.add_argument("samples", help="points to evaluate, .npy or .csv")
    ev.add_argument("data", help="reference points, .npy or .csv")
    ev.add_argument("--max-points", type=_int_at_least(2), default=2000,
                    help="evaluate on at most this many random points of each file (MMD² needs O(N²) memory)")
    ev.add_argument("--projections", type=_positive, default=128, help="random projections of sliced Wasserstein")
    ev.add_argument("--json", default=None, help="also write the metrics to this JSON file")
    ev.add_argument("--seed", type=_count, default=0, help="random seed (subsampling and projections)")

    dig = _subparser(sub, "digits", "latent diffusion on the 8x8 digits: VAE, latent NN and FTT denoisers, guidance, "
                                    "Fréchet distances of a classifier's features")
    dig.add_argument("--full", action="store_true", help="the long configuration instead of the quick one")
    dig.add_argument("--out", default="digits_out", help="output directory")
    dig.add_argument("--seed", type=_count, default=None, help="random seed (None: the configuration's)")
    sizes = dig.add_argument_group("sizes", "override the configuration (default: the quick or --full one)")
    for flag, kind in (("--classifier-steps", _positive), ("--vae-steps", _positive), ("--latent", _positive),
                       ("--T", _positive), ("--ddim-steps", _positive), ("--nn-width", _positive),
                       ("--nn-depth", _positive), ("--nn-steps", _positive), ("--batch-size", _positive),
                       ("--unet-steps", _count), ("--rank", _positive), ("--m", _positive), ("--sweeps", _positive),
                       ("--repeats", _positive), ("--samples", _int_at_least(20)), ("--fd-keys", _positive),
                       ("--noisy-classifier-steps", _count)):
        sizes.add_argument(flag, type=kind, default=None)
    sizes.add_argument("--scales", type=float, nargs="+", default=None, help="classifier-free guidance weights")
    sizes.add_argument("--classifier-scales", type=float, nargs="+", default=None, help="classifier guidance weights")
    sizes.add_argument("--targets", choices=("sampled", "empirical_bayes"), default=None,
                       help="FTT regression targets")
    sizes.add_argument("--prediction", choices=("eps", "x0", "v"), default=None,
                       help="what the latent FTTs regress on (they return the noise either way)")
    sizes.add_argument("--no-whiten", action="store_true", help="latent FTTs in the latents' own axes, not whitened")
    sizes.add_argument("--no-conditional", action="store_true", help="leave out the class-conditional models")
    sizes.add_argument("--no-fast-ftt", action="store_true", help="leave out the second, cheaper latent FTT")
    dig.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.commands = {"demo": demo, "train": train, "sample": smp, "evaluate": ev, "digits": dig}
    return parser


# --- checks of whole options and files, before any work -------------------------------------------------------

class _UsageError(Exception):
    """A user error found while checking the options; reported by ``parser.error``."""


def _check_output_dir(flag: str, path: str) -> None:
    """``path`` is, or can be created as, a writable directory (nothing is created here)."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise _UsageError(f"argument {flag}: {path} exists and is not a directory")
    ancestor = p
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise _UsageError(f"argument {flag}: cannot create {path}: {ancestor} is not a directory")
    try:  # a real probe: permission bits do not say what the file system allows (/proc, read-only mounts, root)
        os.rmdir(tempfile.mkdtemp(prefix=".jaxtt-probe-", dir=ancestor))
    except OSError as err:
        raise _UsageError(f"argument {flag}: cannot write to {path}: {ancestor}: {err.strerror}") from None


def _check_output_file(flag: str, path: str, suffixes: tuple[str, ...] | None = None) -> None:
    """``path`` can be written: a known suffix, an existing writable folder, not a read-only file."""
    p = Path(path)
    if suffixes is not None and p.suffix.lower() not in suffixes:
        raise _UsageError(f"argument {flag}: {path} must end in {' or '.join(suffixes)}")
    if p.is_dir():
        raise _UsageError(f"argument {flag}: {path} is a directory, not a file")
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        raise _UsageError(f"argument {flag}: the folder {folder} of {path} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise _UsageError(f"argument {flag}: the folder {folder} of {path} is not writable")
    if p.exists() and (not os.access(p, os.W_OK) or not p.stat().st_mode & 0o222):
        raise _UsageError(f"argument {flag}: {path} exists and is read-only")


def _load_points(flag: str, path: str):
    """The points of a ``.npy``/``.csv`` file as a finite float64 array ``(N, D)`` with ``N >= 2``."""
    import numpy as np

    p = Path(path)
    if p.suffix.lower() not in _POINT_SUFFIXES:
        raise _UsageError(f"argument {flag}: {path} must be a .npy or .csv file of points, one per row")
    if not p.is_file():
        raise _UsageError(f"argument {flag}: {path} does not exist" if not p.exists() else
                          f"argument {flag}: {path} is not a file")
    try:
        if p.suffix.lower() == ".npy":
            x = np.load(p, allow_pickle=False)
        else:
            x = _read_csv(p)
    except (OSError, ValueError) as err:
        raise _UsageError(f"argument {flag}: cannot read {path}: {err}") from None
    if not (np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.bool_)) or np.iscomplexobj(x):
        raise _UsageError(f"argument {flag}: {path} must hold real numbers, got dtype {x.dtype}")
    if x.ndim != 2:
        raise _UsageError(f"argument {flag}: {path} must hold a 2-D array (points, dimensions), got shape {x.shape}")
    if x.shape[0] < 2 or x.shape[1] < 1:
        raise _UsageError(f"argument {flag}: {path} must hold at least 2 points of at least 1 coordinate, "
                          f"got shape {x.shape}")
    x = x.astype(np.float64)
    bad = ~np.isfinite(x)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise _UsageError(f"argument {flag}: {path} holds NaN or infinity ({bad.sum()} entries; the first at "
                          f"row {row}, column {col})")
    return x


def _read_csv(path: Path):
    """A comma-separated table of numbers; a first line that is not numeric is taken as a header."""
    import numpy as np

    with open(path) as file:
        first = file.readline()
    try:
        [float(v) for v in first.split(",")]
        skip = 0
    except ValueError:
        skip = 1
    return np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2)


def _check_demo(args) -> None:
    if args.batch_size > args.n:
        raise _UsageError(f"argument --batch-size: must be at most --n = {args.n} (the training points), "
                          f"got {args.batch_size}")
    _check_ftt_options(args)
    if args.ddim_steps > args.T:
        raise _UsageError(f"argument --ddim-steps: must be at most --T = {args.T}, got {args.ddim_steps}")
    _check_fit_memory_early(args, 2, args.n * args.repeats)
    _check_output_dir("--out", args.out)


def _check_ftt_options(args) -> None:
    if args.basis == "bspline" and args.m <= _BSPLINE_DEGREE:
        raise _UsageError(f"argument --m: a bspline basis of degree {_BSPLINE_DEGREE} needs --m > "
                          f"{_BSPLINE_DEGREE}, got {args.m}")


def _check_train(args) -> None:
    import numpy as np

    _check_ftt_options(args)
    _check_output_file("--out", args.out)
    x = _load_points("data", args.data)
    std = x.std(axis=0)
    if not args.no_standardize and np.any(std == 0):
        raise _UsageError(f"argument data: column {int(np.argmin(std))} of {args.data} is constant; "
                          "it cannot be standardized (drop it, or pass --no-standardize)")
    _check_fit_memory_early(args, x.shape[1], x.shape[0] * args.repeats)
    args.points = x


def _check_sample(args) -> None:
    from jaxtt.checkpoint import CheckpointError, checkpoint_metadata

    if not Path(args.model).is_file():
        raise _UsageError(f"argument model: {args.model} does not exist")
    try:
        meta = checkpoint_metadata(args.model)
    except CheckpointError as err:
        raise _UsageError(f"argument model: {err}") from None
    if not isinstance(meta, dict) or meta.get("format") != _MODEL_FORMAT:
        raise _UsageError(f"argument model: {args.model} is a checkpoint but not a model written by `jaxtt train`")
    missing = [k for k in ("hyperparameters", "schedule", "standardize", "x0_range") if k not in meta]
    missing += [f"hyperparameters.{k}" for k in ("dim", "T", "rank", "m", "basis", "domain", "time", "output", "dtype")
                if k not in meta.get("hyperparameters", {})]
    if missing:
        raise _UsageError(f"argument model: {args.model} lacks the entries {', '.join(missing)} of a model "
                          "written by `jaxtt train`")
    T = meta["hyperparameters"]["T"]
    if args.steps is None:
        args.steps = min(100, T) if args.sampler == "ddim" else T
    if args.steps > T:
        raise _UsageError(f"argument --steps: must be at most the model's T = {T}, got {args.steps}")
    if args.sampler == "ddpm" and args.eta != 0.0:
        raise _UsageError("argument --eta: only the ddim sampler takes --eta")
    _check_output_file("--out", args.out, _POINT_SUFFIXES)
    args.meta = meta


def _check_evaluate(args) -> None:
    args.x = _load_points("samples", args.samples)
    args.y = _load_points("data", args.data)
    if args.x.shape[1] != args.y.shape[1]:
        raise _UsageError(f"argument samples: {args.samples} has {args.x.shape[1]} coordinates per point but "
                          f"{args.data} has {args.y.shape[1]}")
    if args.json is not None:
        _check_output_file("--json", args.json, (".json",))


def _check_digits(args) -> None:
    import dataclasses

    from jaxtt.latent_digits import FULL, QUICK

    base = FULL if args.full else QUICK
    overrides = {field.name: getattr(args, field.name) for field in dataclasses.fields(base)
                 if getattr(args, field.name, None) is not None}
    if args.scales is not None:
        overrides["scales"] = tuple(args.scales)
    if args.classifier_scales is not None:
        overrides["classifier_scales"] = tuple(args.classifier_scales)
    if args.no_conditional:
        overrides["conditional"] = False
    if args.no_fast_ftt:
        overrides["fast_ftt"] = None
    if args.no_whiten:
        overrides["whiten"] = False
    try:
        args.config = dataclasses.replace(base, **overrides)
    except (TypeError, ValueError) as err:  # DigitsConfig names its field first: "ddim_steps must be ..."
        field = str(err).split()[0].split("[")[0]
        raise _UsageError(f"argument --{field.replace('_', '-')}: {err}") from None
    _check_output_dir("--out", args.out)


_CHECKS = {"demo": _check_demo, "train": _check_train, "sample": _check_sample, "evaluate": _check_evaluate,
           "digits": _check_digits}


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
    from jaxtt.train import fit, num_params

    keys = jax.random.split(jax.random.key(args.seed), 8)
    schedule = linear_schedule(args.T)
    ftt = FTTDenoiser(2, args.T, rank=args.rank, m=args.m, basis=args.basis, key=keys[2],
                      **_parameterization(args.prediction, schedule))
    _check_fit_memory(ftt, args.n * args.repeats, args.cg_steps)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    progress = not args.no_progress
    data = toy_dataset(args.dataset, keys[0], args.n)
    reference = toy_dataset(args.dataset, keys[1], args.samples)

    print(f"jaxtt demo: {args.dataset}, N={args.n}, T={args.T}, jax {jax.__version__} on "
          f"{jax.default_backend()} ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)")
    start = time.perf_counter()
    ftt, _ = fit_denoiser(ftt, data, schedule, keys[3], solver=ALS(cg_maxiter=args.cg_steps), steps=args.sweeps,
                          repeats=args.repeats, targets=args.targets, progress=progress)
    jax.block_until_ready(ftt)
    ftt_time = time.perf_counter() - start

    start = time.perf_counter()
    net = Batched(ResNetMLP(2, args.nn_width, args.nn_depth, key=keys[4], time_scale=float(args.T)))
    trained = fit(net, data, schedule, steps=args.nn_steps, batch_size=args.batch_size, key=keys[5],
                  progress=progress)
    jax.block_until_ready(trained.ema_model)
    nn_time = time.perf_counter() - start

    models = {"FTT (ALS)": (ftt, ftt_time, ftt.num_params),
              "ResNet-MLP (AdamW)": (trained.ema_model, nn_time, num_params(trained.ema_model))}
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


def digits(args: argparse.Namespace) -> dict:
    """``jaxtt digits``: run :func:`jaxtt.latent_digits.run`, print its table, write the JSON and the digit grids."""
    import dataclasses

    import jax

    from jaxtt.latent_digits import plot_grids, print_table, run

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"jaxtt digits ({'full' if args.full else 'quick'}): jax {jax.__version__} on {jax.default_backend()} "
          f"({platform.processor() or platform.machine()}, {os.cpu_count()} cores)")
    start = time.perf_counter()
    results, images = run(args.config, progress=not args.no_progress)
    print_table(results)
    plot_grids(images, out / "digits_samples.png")
    _write_json(out / "digits_results.json", {"config": dataclasses.asdict(args.config), "results": results,
                                              "seconds": time.perf_counter() - start})
    print(f"wrote {out / 'digits_samples.png'} and {out / 'digits_results.json'}")
    return results


# --- train, sample, evaluate --------------------------------------------------------------------------------------

def _schedule(kind: str, T: int):
    from jaxtt.diffusion import cosine_schedule, linear_schedule

    return (linear_schedule if kind == "linear" else cosine_schedule)(T)


def _parameterization(prediction: str, schedule) -> dict:
    """The denoiser options of a parameterization: all but ``eps`` need the schedule to return the noise."""
    return {"prediction": prediction, "schedule": None if prediction == "eps" else schedule}


def _denoiser(hyper: dict, schedule, key):
    """The FTT denoiser described by the stored hyperparameters (its cores from ``key``); model files written
    before the parameterization was stored hold noise-predicting models."""
    from jaxtt.ftt import FTTDenoiser

    return FTTDenoiser(hyper["dim"], hyper["T"], rank=hyper["rank"], m=hyper["m"], basis=hyper["basis"],
                       domain=tuple(hyper["domain"]), time=hyper["time"], output=hyper["output"],
                       dtype=hyper["dtype"], key=key, **_parameterization(hyper.get("prediction", "eps"), schedule))


def _check_fit_memory(denoiser, rows: int, cg_steps: int) -> None:
    """Refuse an ALS fit of ``denoiser`` whose sweep cannot fit in the device's memory (after JAX is imported)."""
    from jaxtt._validation import device_memory_bytes
    from jaxtt.solvers import sweep_memory

    _refuse_fit_memory(sweep_memory(denoiser.ftt, rows, cg_maxiter=cg_steps), device_memory_bytes(),
                       max(denoiser.ftt.tt.ranks), max(b.m for b in denoiser.ftt.bases), cg_steps)


def _check_fit_memory_early(args, dim: int, rows: int) -> None:
    """Refuse from the options alone, before JAX is imported, an ALS fit of a ``dim``-D denoiser whose sweep
    cannot fit in this machine's memory: the same estimate with 4-byte entries (a lower bound)."""
    modes = [args.m] * (dim + 1)  # the data cores and the time core
    ranks = tt_ranks(modes, args.rank)
    needed = als_sweep_bytes(ranks, modes, rows, batch=dim, itemsize=4, cg_maxiter=args.cg_steps)
    _refuse_fit_memory(needed, host_memory_bytes(), max(ranks), args.m, args.cg_steps)


def _refuse_fit_memory(needed: int, limit: int | None, rank: int, m: int, cg_steps: int) -> None:
    if limit is not None and needed > limit:
        remedy = "lower them" + ("" if cg_steps else ", or pass --cg-steps 8 (matrix-free local solves)")
        raise _UsageError(f"argument --rank/--m: an ALS sweep at rank {rank} with {m} basis functions needs "
                          f"{needed / 1e9:.3g} GB, more than the {limit / 1e9:.3g} GB of memory here; {remedy}")


def train(args: argparse.Namespace) -> dict:
    """``jaxtt train``: standardize the points, fit an FTT denoiser by ALS sweeps and save it; return the model
    file's metadata."""
    import jax
    import numpy as np

    from jaxtt.checkpoint import save_checkpoint
    from jaxtt.solvers import ALS, fit_denoiser

    x = args.points
    mean, std = (np.zeros(x.shape[1]), np.ones(x.shape[1])) if args.no_standardize else (x.mean(0), x.std(0))
    z = (x - mean) / std
    keys = jax.random.split(jax.random.key(args.seed), 2)
    hyper = {"dim": int(x.shape[1]), "T": args.T, "rank": args.rank, "m": args.m, "basis": args.basis,
             "domain": [-4.0, 4.0], "time": "core", "output": "independent",
             "dtype": str(jax.dtypes.canonicalize_dtype(np.float64)), "prediction": args.prediction}
    schedule = _schedule(args.schedule, args.T)
    model = _denoiser(hyper, schedule, keys[0])
    _check_fit_memory(model, x.shape[0] * args.repeats, args.cg_steps)
    start = time.perf_counter()
    model, results = fit_denoiser(model, z.astype(hyper["dtype"]), schedule, keys[1],
                                  solver=ALS(cg_maxiter=args.cg_steps), steps=args.sweeps, repeats=args.repeats,
                                  targets=args.targets, progress=not args.no_progress)
    seconds = time.perf_counter() - start
    loss = float(results[-1].loss[-1])
    meta = {"format": _MODEL_FORMAT, "jaxtt_version": __version__, "hyperparameters": hyper,
            "schedule": {"kind": args.schedule, "T": args.T},
            "standardize": {"mean": mean.tolist(), "std": std.tolist()},
            "x0_range": [float(z.min()), float(z.max())],
            "fit": {"data": os.path.abspath(args.data), "points": int(x.shape[0]), "sweeps": args.sweeps,
                    "repeats": args.repeats, "targets": args.targets, "cg_steps": args.cg_steps, "seed": args.seed,
                    "seconds": seconds, "final_loss": loss}}
    save_checkpoint(args.out, model, meta)
    print(f"jaxtt train: {x.shape[0]} points in {x.shape[1]}-D, FTT rank {args.rank}, m {args.m} "
          f"({model.num_params} parameters); {args.sweeps} ALS sweeps in {seconds:.1f} s, "
          f"training loss {loss:.4g}; wrote {args.out}")
    return meta


def sample(args: argparse.Namespace):
    """``jaxtt sample``: load a model written by ``jaxtt train``, draw ``--n`` points, write them in the data's
    coordinates; return them."""
    import jax
    import numpy as np

    meta = args.meta
    hyper = meta["hyperparameters"]
    if hyper["dtype"] == "float64" and not jax.config.jax_enable_x64:
        jax.config.update("jax_enable_x64", True)  # the model was saved in float64: load it as such

    from jaxtt.checkpoint import load_checkpoint
    from jaxtt.diffusion import DDIM, DDPM, timesteps
    from jaxtt.diffusion import sample as run_sampler

    T = hyper["T"]
    schedule = _schedule(meta["schedule"]["kind"], T)
    model, _ = load_checkpoint(args.model, _denoiser(hyper, schedule, jax.random.key(0)))
    sampler = DDIM(steps=args.steps, eta=args.eta) if args.sampler == "ddim" else (
        DDPM() if args.steps == T else DDPM(timesteps=timesteps(T, args.steps)))
    low, high = meta["x0_range"]
    clip = None if args.no_clip else (low - 0.05 * (high - low), high + 0.05 * (high - low))
    result = run_sampler(model, schedule, sampler, jax.random.key(args.seed),
                         (args.n, hyper["dim"]), clip_x0=clip)
    x = np.asarray(result.samples, np.float64) * np.asarray(meta["standardize"]["std"]) \
        + np.asarray(meta["standardize"]["mean"])
    _write_points(Path(args.out), x)
    print(f"jaxtt sample: {args.n} points by {args.sampler.upper()} ({args.steps} steps); wrote {args.out}")
    return x


def evaluate(args: argparse.Namespace) -> dict:
    """``jaxtt evaluate``: MMD², sliced Wasserstein-2 and energy distance of ``samples`` against ``data``."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxtt.metrics import energy_distance, mmd, sliced_wasserstein

    rng = np.random.default_rng(args.seed)

    def subsample(x):
        return x if x.shape[0] <= args.max_points else x[rng.choice(x.shape[0], args.max_points, replace=False)]

    x, y = (jnp.asarray(subsample(a)) for a in (args.x, args.y))
    metrics = {
        "mmd2": float(mmd(x, y)),
        "sliced_wasserstein": float(sliced_wasserstein(jax.random.key(args.seed), x, y, args.projections)),
        "energy_distance": float(energy_distance(x, y)),
    }
    payload = {"samples": args.samples, "data": args.data, "points": [int(x.shape[0]), int(y.shape[0])],
               "metrics": metrics}
    print(f"{'metric':<22}{'value':>12}")
    print("-" * 34)
    for name, value in metrics.items():
        print(f"{name:<22}{value:>12.5g}")
    print(f"({x.shape[0]} sample points vs {y.shape[0]} data points in {x.shape[1]}-D; MMD²: unbiased, "
          f"RBF kernels at 0.25..4 x the median distance; sliced Wasserstein-2 over {args.projections} projections)")
    if args.json is not None:
        _write_json(Path(args.json), payload)
        print(f"wrote {args.json}")
    return payload


def _write_points(path: Path, x) -> None:
    """Write an ``(N, D)`` array as ``.npy`` or ``.csv`` atomically (temporary file, then rename)."""
    import numpy as np

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent if str(path.parent) else ".")
    try:
        with os.fdopen(fd, "wb") as file:
            if path.suffix.lower() == ".npy":
                np.save(file, x)
            else:
                np.savetxt(file, x, delimiter=",", fmt="%.10g")
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def main(argv: list[str] | None = None) -> int:
    """Console entry point: check every option, then run the command. User errors exit with status 2 and an
    argparse message naming the flag; a failure while running (e.g. a fit that breaks down) exits with
    status 1 and its message."""
    parser = _parser()
    args = parser.parse_args(argv)
    command = parser.commands[args.command]
    try:
        _CHECKS[args.command](args)
    except _UsageError as err:
        command.error(str(err))
    from jaxtt.checkpoint import CheckpointError
    from jaxtt.errors import NumericalError

    try:
        {"demo": demo, "train": train, "sample": sample, "evaluate": evaluate, "digits": digits}[args.command](args)
    except _UsageError as err:  # checks that need JAX (memory), made before anything is written or trained
        command.error(str(err))
    except (NumericalError, CheckpointError, OSError) as err:
        print(f"jaxtt {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"jaxtt {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
