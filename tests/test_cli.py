"""The `jaxtt` command line: `demo` end to end at toy size (the table, the JSON results and the plot), options
checked before any work, and `train`/`sample`/`evaluate` on a user's own points."""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jaxtt import __version__, cli
from jaxtt.checkpoint import checkpoint_metadata, save_checkpoint
from jaxtt.cli import main

TINY = ["demo", "--n", "300", "--T", "20", "--rank", "2", "--m", "4", "--sweeps", "1", "--repeats", "1",
        "--nn-width", "8", "--nn-depth", "1", "--nn-steps", "5", "--batch-size", "32", "--samples", "100",
        "--ddim-steps", "5", "--no-progress"]


def test_demo_writes_results_and_plot(tmp_path, capsys):
    assert main([*TINY, "--out", str(tmp_path)]) == 0
    assert "FTT (ALS)" in capsys.readouterr().out
    payload = json.loads((tmp_path / "demo_results.json").read_text())
    results = payload["results"]
    assert set(results) == {"FTT (ALS)", "ResNet-MLP (AdamW)", "N(0, I) noise"}
    for row in results.values():
        assert all(np.isfinite(v) for v in row.values())
    assert (tmp_path / "demo_samples.png").stat().st_size > 0
    assert not list(tmp_path.glob("*.tmp*"))


# --- options are checked before any work -----------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]


def _usage_error(argv, capsys):
    """Run the CLI on a user error: exit status 2, an argparse message, no traceback; return the message."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err
    return err


@pytest.mark.parametrize("options, flag", [
    (["--n", "100"], "--batch-size: must be at most --n = 100"),
    (["--samples", "1"], "--samples: expected an integer >= 2, got 1"),
    (["--ddim-steps", "500", "--T", "50"], "--ddim-steps: must be at most --T = 50, got 500"),
    (["--cg-steps", "-3"], "--cg-steps: expected an integer >= 0, got -3"),
    (["--rank", "0"], "--rank: expected an integer >= 1"),
    (["--m", "x"], "--m: expected an integer >= 1, got 'x'"),
    (["--basis", "bspline", "--m", "2"], "--m: a bspline basis of degree 2 needs --m > 2"),
    (["--nn-steps", "0"], "--nn-steps"),
    (["--T", "0"], "--T"),
])
def test_demo_refuses_bad_options_before_creating_the_folder(tmp_path, capsys, options, flag):
    out = tmp_path / "out"
    err = _usage_error(["demo", *options, "--out", str(out)], capsys)
    assert flag in err
    assert not out.exists()


def test_demo_refuses_an_output_path_that_is_a_file(tmp_path, capsys):
    (tmp_path / "f").write_text("")
    assert "--out" in _usage_error(["demo", "--out", str(tmp_path / "f")], capsys)


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs /proc")
def test_demo_refuses_a_folder_the_file_system_will_not_create(capsys):
    """/proc looks writable to root by its permission bits but refuses new folders: probed, not guessed."""
    assert "argument --out: cannot write to /proc/jaxtt-probe" in _usage_error(["demo", "--out", "/proc/jaxtt-probe"],
                                                                                capsys)


def test_user_errors_fail_fast_without_importing_jax(tmp_path):
    code = ("import sys\nfrom jaxtt.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n"
            "    print(e.code, 'jax' in sys.modules)\n")
    for argv in (["demo", "--n", "100"], ["train", str(tmp_path / "none.npy"), "--out", str(tmp_path / "m")],
                 ["demo", "--rank", "64", "--m", "64", "--cg-steps", "0", "--out", str(tmp_path / "o")]):
        run = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=ROOT,
                             env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=60)
        assert run.stdout.split() == ["2", "False"], run.stdout + run.stderr
        assert "Traceback" not in run.stderr


def test_version_and_defaults_in_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.strip() == f"jaxtt {__version__}"
    for command, default in [("demo", "(default: 10000)"), ("train", "(default: 1000)"), ("sample", "(default: 1000)"),
                             ("evaluate", "(default: 2000)")]:
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert default in capsys.readouterr().out


def test_option_choices_match_the_library():
    from jaxtt.basis import BASES
    from jaxtt.data import TOY_DATASETS

    assert cli.TOY_DATASET_NAMES == tuple(sorted(TOY_DATASETS))
    assert cli.BASIS_NAMES == tuple(sorted(BASES))


# --- train, sample, evaluate on the user's own points ---------------------------------------------------------

FAST = ["--T", "20", "--rank", "2", "--m", "4", "--sweeps", "1", "--repeats", "2", "--no-progress"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Off-centre, anisotropic 2-D points in a .csv with a header line, and a model trained on them."""
    folder = tmp_path_factory.mktemp("cli")
    x = np.random.default_rng(0).normal(size=(300, 2)) * [3.0, 0.5] + [10.0, -2.0]
    np.savetxt(folder / "data.csv", x, delimiter=",", header="a,b", comments="")
    np.save(folder / "data.npy", x)
    assert main(["train", str(folder / "data.csv"), "--out", str(folder / "model.ckpt"), *FAST]) == 0
    return folder, x


def test_train_standardizes_and_stores_the_model_and_its_scaling(trained):
    folder, x = trained
    meta = checkpoint_metadata(folder / "model.ckpt")
    np.testing.assert_allclose(meta["standardize"]["mean"], x.mean(0), rtol=1e-8)  # read back from the csv
    np.testing.assert_allclose(meta["standardize"]["std"], x.std(0), rtol=1e-8)
    assert meta["hyperparameters"]["dim"] == 2 and meta["hyperparameters"]["T"] == 20
    assert not list(folder.glob(".*.tmp"))


def test_train_stores_the_parameterization_and_old_model_files_load_as_noise_predictors(trained):
    import jax

    from jaxtt.checkpoint import load_checkpoint
    from jaxtt.diffusion import linear_schedule

    folder, _ = trained
    meta = checkpoint_metadata(folder / "model.ckpt")
    hyper, schedule = meta["hyperparameters"], linear_schedule(20)
    assert hyper["prediction"] == "v" and meta["fit"]["targets"] == "empirical_bayes"  # the defaults
    model, _ = load_checkpoint(folder / "model.ckpt", cli._denoiser(hyper, schedule, jax.random.key(0)))
    assert model.prediction == "v"
    old = {k: v for k, v in hyper.items() if k != "prediction"}  # files written before it was stored
    assert cli._denoiser(old, schedule, jax.random.key(0)).prediction == "eps"


@pytest.mark.parametrize("sampler, suffix", [("ddim", ".npy"), ("ddpm", ".csv")])
def test_sample_returns_points_in_data_coordinates(trained, capsys, sampler, suffix):
    folder, x = trained
    out = folder / f"s_{sampler}{suffix}"
    assert main(["sample", str(folder / "model.ckpt"), "--n", "200", "--out", str(out), "--sampler", sampler,
                 "--steps", "10", "--seed", "1"]) == 0
    s = np.load(out) if suffix == ".npy" else np.loadtxt(out, delimiter=",")
    assert s.shape == (200, 2) and np.all(np.isfinite(s))
    # back in the data's coordinates: centred near (10, -2) with the data's spread, not near 0 with unit spread
    assert np.all(np.abs(s.mean(0) - x.mean(0)) < 0.5 * x.std(0))
    assert np.all((s.std(0) > 0.5 * x.std(0)) & (s.std(0) < 2.0 * x.std(0)))


def test_evaluate_prints_and_writes_the_metrics(trained, capsys):
    import jax

    from jaxtt.metrics import energy_distance, mmd, sliced_wasserstein

    folder, x = trained
    y = x[::-1] * 1.1
    np.save(folder / "y.npy", y)
    assert main(["evaluate", str(folder / "y.npy"), str(folder / "data.npy"), "--json", str(folder / "r.json"),
                 "--max-points", "1000", "--projections", "16", "--seed", "3"]) == 0
    assert "sliced_wasserstein" in capsys.readouterr().out
    metrics = json.loads((folder / "r.json").read_text())["metrics"]
    assert metrics["mmd2"] == pytest.approx(float(mmd(y, x)), rel=1e-6)
    assert metrics["energy_distance"] == pytest.approx(float(energy_distance(y, x)), rel=1e-6)
    assert metrics["sliced_wasserstein"] == pytest.approx(
        float(sliced_wasserstein(jax.random.key(3), y, x, 16)), rel=1e-6)


def test_train_sample_evaluate_refuse_bad_files(trained, tmp_path, capsys):
    folder, x = trained
    model = str(folder / "model.ckpt")
    np.save(tmp_path / "flat.npy", x[:, 0])
    np.save(tmp_path / "const.npy", np.c_[x[:, 0], np.ones(len(x))])
    bad = x.copy()
    bad[5, 1] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    (tmp_path / "words.csv").write_text("a,b\n1,x\n")
    save_checkpoint(tmp_path / "other.ckpt", {"w": np.ones(2)})
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint at all, just bytes")
    out = str(tmp_path / "m.ckpt")
    cases = [
        (["train", str(tmp_path / "flat.npy"), "--out", out], "data: ", "2-D array"),
        (["train", str(tmp_path / "const.npy"), "--out", out], "data: ", "column 1"),
        (["train", str(tmp_path / "nan.npy"), "--out", out], "data: ", "row 5, column 1"),
        (["train", str(tmp_path / "words.csv"), "--out", out], "data: ", "cannot read"),
        (["train", str(folder / "data.npy"), "--out", str(tmp_path / "no" / "m.ckpt")], "--out", "does not exist"),
        (["sample", model, "--out", str(tmp_path / "s.txt")], "--out", ".npy or .csv"),
        (["sample", model, "--out", str(tmp_path / "s.npy"), "--steps", "21"], "--steps", "T = 20"),
        (["sample", model, "--out", str(tmp_path / "s.npy"), "--eta", "2"], "--eta", "[0.0, 1.0]"),
        (["sample", model, "--out", str(tmp_path / "s.npy"), "--sampler", "ddpm", "--eta", "0.5"], "--eta", "ddim"),
        (["sample", str(tmp_path / "other.ckpt"), "--out", str(tmp_path / "s.npy")], "model: ", "jaxtt train"),
        (["sample", str(tmp_path / "junk.ckpt"), "--out", str(tmp_path / "s.npy")], "model: ", "not a jaxtt"),
        (["evaluate", str(folder / "data.npy"), str(tmp_path / "const.npy"), "--json", str(tmp_path / "r.txt")],
         "--json", ".json"),
        (["evaluate", str(folder / "data.npy"), str(tmp_path / "missing.npy")], "data: ", "does not exist"),
    ]
    for argv, flag, what in cases:
        err = _usage_error(argv, capsys)
        assert f"argument {flag}" in err and what in err, (argv, err)
    assert not (tmp_path / "m.ckpt").exists() and not (tmp_path / "s.npy").exists()


def test_evaluate_refuses_files_of_different_dimension(trained, tmp_path, capsys):
    folder, x = trained
    np.save(tmp_path / "three.npy", np.c_[x, x[:, :1]])
    err = _usage_error(["evaluate", str(tmp_path / "three.npy"), str(folder / "data.npy")], capsys)
    assert "argument samples" in err and "3 coordinates" in err


def test_a_fit_that_breaks_down_is_reported_without_a_traceback(trained, tmp_path, capsys, monkeypatch):
    import jaxtt.solvers
    from jaxtt.errors import NumericalError

    def broken(*args, **kwargs):
        raise NumericalError("non-finite local solution", step=1, core=0, remedy="increase reg")

    monkeypatch.setattr(jaxtt.solvers, "fit_denoiser", broken)
    folder, _ = trained
    assert main(["train", str(folder / "data.npy"), "--out", str(tmp_path / "m.ckpt"), *FAST]) == 1
    err = capsys.readouterr().err
    assert "jaxtt train: error: non-finite local solution at step 1, core 0; increase reg" in err
    assert "Traceback" not in err and not (tmp_path / "m.ckpt").exists()


def test_a_fit_larger_than_memory_is_refused_before_the_folder(tmp_path, capsys):
    """rank 64, m 64 with exact local solves: the Gram matrices alone are terabytes."""
    out = tmp_path / "out"
    err = _usage_error(["demo", "--rank", "64", "--m", "64", "--cg-steps", "0", "--out", str(out)], capsys)
    assert "--rank/--m" in err and "GB" in err and "--cg-steps 8" in err
    assert not out.exists()


@pytest.mark.parametrize("basis, dim, cg_steps", [("legendre", 2, 0), ("bspline", 3, 8)])
def test_the_early_memory_estimate_is_the_one_of_the_model_the_command_builds(basis, dim, cg_steps, monkeypatch):
    """Before importing JAX the command estimates the sweep from its options; the estimate must be
    :func:`sweep_memory` of the float32 denoiser it then builds, so the early refusal is exactly at the limit."""
    import jax
    import jax.numpy as jnp

    from jaxtt.ftt import FTTDenoiser
    from jaxtt.solvers import sweep_memory

    args = argparse.Namespace(rank=6, m=5, basis=basis, cg_steps=cg_steps)
    model = FTTDenoiser(dim, 50, rank=args.rank, m=args.m, basis=basis, dtype=jnp.float32, key=jax.random.key(0))
    needed = sweep_memory(model.ftt, 1000, cg_maxiter=cg_steps)
    monkeypatch.setattr(cli, "host_memory_bytes", lambda: needed)
    cli._check_fit_memory_early(args, dim, 1000)
    monkeypatch.setattr(cli, "host_memory_bytes", lambda: needed - 1)
    with pytest.raises(cli._UsageError, match="--rank/--m"):
        cli._check_fit_memory_early(args, dim, 1000)


# --- digits -----------------------------------------------------------------------------------------------------

DIGITS_TINY = ["digits", "--classifier-steps", "5", "--vae-steps", "5", "--T", "20", "--ddim-steps", "4",
               "--nn-width", "8", "--nn-depth", "1", "--nn-steps", "5", "--unet-steps", "0", "--rank", "2", "--m", "3",
               "--sweeps", "1", "--repeats", "1", "--targets", "sampled", "--samples", "40", "--no-conditional",
               "--noisy-classifier-steps", "0", "--no-fast-ftt", "--fd-keys", "2", "--no-progress"]


def test_digits_writes_the_table_the_json_and_the_grid(tmp_path, capsys):
    assert main([*DIGITS_TINY, "--out", str(tmp_path)]) == 0
    assert "latent FTT-DDPM" in capsys.readouterr().out
    payload = json.loads((tmp_path / "digits_results.json").read_text())
    assert payload["config"]["nn_steps"] == 5 and payload["config"]["conditional"] is False
    results = payload["results"]
    assert {"random noise (train mean/std)", "VAE prior samples", "latent NN-DDPM", "latent FTT-DDPM",
            "validation set"} <= set(results)
    for row in results.values():
        assert np.isfinite(row["fd"]) and row["fd"] >= -1e-6
    for name in ("latent NN-DDPM", "latent FTT-DDPM"):  # two sampler keys: the FD is their mean
        per_key = results[name]["fd_per_key"]
        assert len(per_key) == 2 and per_key[0] != per_key[1]
        assert results[name]["fd"] == pytest.approx(np.mean(per_key))
        assert results[name]["fd_sd"] == pytest.approx(np.std(per_key))
    assert results["latent FTT-DDPM"]["params"] > 0 and results["latent NN-DDPM"]["train_seconds"] > 0
    png = tmp_path / "digits_samples.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob("*.tmp*")) and not list(tmp_path.glob(".*tmp*"))


@pytest.mark.parametrize("options, flag", [(["--T", "10"], "--ddim-steps"), (["--samples", "5"], "--samples"),
                                           (["--unet-steps", "-1"], "--unet-steps"), (["--scales", "nan"], "--scales")])
def test_digits_refuses_bad_options_before_creating_the_folder(tmp_path, capsys, options, flag):
    out = tmp_path / "new"
    message = _usage_error(["digits", *options, "--out", str(out)], capsys)
    assert flag in message and not out.exists()


def test_digits_user_errors_fail_fast_without_importing_jax(tmp_path):
    code = ("import sys\nfrom jaxtt.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n"
            "    print(e.code, 'jax' in sys.modules)\n")
    argv = ["digits", "--T", "10", "--out", str(tmp_path / "o")]
    run = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=ROOT,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=60)
    assert run.stdout.split() == ["2", "False"], run.stdout + run.stderr
    assert "--ddim-steps" in run.stderr and "Traceback" not in run.stderr
