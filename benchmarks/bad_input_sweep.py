"""A generated sweep of bad and unusual inputs over jaxtt's public API and its command line.

For every public function or constructor listed in :data:`TARGETS` and each of its arguments, a family of
values chosen by the argument's kind (wrong type, wrong shape or ndim, empty, NaN/inf, negative/zero, huge,
integer dtype, ``None``, mismatched sizes, traced under ``jax.jit`` where the function is documented
jit-able, numpy scalars and lists that mean the same as the valid value, ...) replaces the valid value of a tiny
working call. Each case is classified automatically:

* ``clear``: ``ValueError``/``TypeError``/:class:`~jaxtt.errors.NumericalError`/``OSError`` (or a warning)
  whose message names the argument (a CLI case: exit status 2 with a message naming the flag);
* ``correct``: the call returns and the result passes its check (equal to the valid call's result when the
  value means the same, finite when the value is legitimate);
* ``cryptic``: any other exception, or one whose message does not name the argument;
* ``silent``: the call returns where the input should have been refused, or returns a wrong/non-finite result
  for a legitimate input;
* ``hang``: the case ran past the per-case timeout.

The cases run in a worker process that reports each outcome as one JSON line; the parent kills a worker that
stays on one case past ``--timeout`` seconds, records ``hang`` and starts a new worker after that case.

Usage::

    python benchmarks/bad_input_sweep.py            # every case; writes benchmarks/results/bad_input_sweep.json
    python benchmarks/bad_input_sweep.py --quick    # every 4th case, for a smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import io
import json
import os
import platform
import re
import select
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
OUTCOMES = ("clear", "correct", "cryptic", "silent", "hang")
# exceptions that may be "clear" when their message names the argument
CLEAR_TYPES = ("ValueError", "TypeError", "NumericalError", "CheckpointError", "PermissionError",
               "FileNotFoundError", "IsADirectoryError", "NotADirectoryError", "OSError")


# --- value families: (label, value or factory, expectation) -------------------------------------------------
# expectation: "refuse" (a clear error or a warning naming the argument), "same" (equal to the valid call's
# result), "ok" (returns a finite result or a clear error), "finite" (a finite result or a clear error; NaN
# counts as silent)

class Case:
    """One call: ``target`` with ``arg`` replaced by ``value`` (or a CLI argv)."""

    def __init__(self, target, arg, label, value, expect, *, jit=False, argv=None):
        self.target, self.arg, self.label, self.value, self.expect = target, arg, label, value, expect
        self.jit, self.argv = jit, argv

    @property
    def name(self):
        if self.argv is not None:
            return "jaxtt " + " ".join(self.argv)
        return f"{self.target.name}({self.arg}={self.label})"


def families(kind, valid, np, jnp, jax):
    """The bad and unusual values for an argument of ``kind`` whose valid value is ``valid``."""
    out = []
    if kind == "int":
        out += [("0", 0, "refuse"), ("-1", -1, "refuse"), ("2.5", 2.5, "refuse"), ("'2'", "2", "refuse"),
                ("None", None, "refuse"), ("True", True, "refuse"), ("np.int64", np.int64(valid), "same")]
    elif kind == "count":  # an int where 0 is legitimate
        out += [("-1", -1, "refuse"), ("2.5", 2.5, "refuse"), ("'1'", "1", "refuse"), ("None", None, "refuse"),
                ("np.int64", np.int64(valid), "same")]
    elif kind == "real":
        out += [("nan", float("nan"), "refuse"), ("inf", float("inf"), "refuse"), ("-1.0", -1.0, "refuse"),
                ("'0.1'", "0.1", "refuse"), ("None", None, "refuse"), ("np.float64", np.float64(valid), "same")]
    elif kind == "index":  # a position; negative counts from the end
        out += [("-1", -1, "ok"), ("99", 99, "refuse"), ("2.5", 2.5, "refuse"), ("'1'", "1", "refuse"),
                ("None", None, "refuse"), ("np.int64", np.int64(valid), "same")]
    elif kind == "name":  # any string
        out += [("None", None, "refuse"), ("3", 3, "refuse"), ("'other'", "other", "ok")]
    elif kind == "real_signed":  # any finite real
        out += [("nan", float("nan"), "refuse"), ("inf", float("inf"), "refuse"), ("'0.1'", "0.1", "refuse"),
                ("None", None, "refuse"), ("np.float64", np.float64(valid), "same")]
    elif kind == "key":
        out += [("None", None, "refuse"), ("0", 0, "refuse"), ("'key'", "key", "refuse"),
                ("keys(2)", jax.random.split(jax.random.key(0), 2), "refuse"),
                ("PRNGKey(0)", jax.random.PRNGKey(0), "ok")]
    elif kind == "choice":
        out += [("'nope'", "nope", "refuse"), ("None", None, "refuse"), ("3", 3, "refuse")]
    elif kind == "bool":
        out += [("'yes'", "yes", "refuse"), ("None", None, "refuse")]
    elif kind == "instance":
        out += [("None", None, "refuse"), ("'str'", "str", "refuse"), ("3", 3, "refuse")]
    elif kind == "shape":
        out += [("()", (), "refuse"), ("(0,3)", (0, 3), "refuse"), ("(-1,3)", (-1, 3), "refuse"),
                ("(2.5,3)", (2.5, 3), "refuse"), ("'ab'", "ab", "refuse"), ("None", None, "refuse"),
                ("list", list(valid), "same")]
    elif kind == "callable":
        out += [("None", None, "refuse"), ("3", 3, "refuse"),
                ("wrong-shape output", lambda x, t, *a, **k: x[:, :1], "refuse")]
    elif kind in ("array", "array_nan_ok", "batch", "elementwise", "times"):  # a float array like the valid one
        # array_nan_ok: an evaluation (NaN in, NaN out); batch: any (N, *event) array; elementwise: any shape,
        # NaN propagates; times: a scalar broadcasts over the rows
        v = np.asarray(valid)
        nan_expect = "ok" if kind in ("array_nan_ok", "elementwise") else "refuse"
        shape_expect = "ok" if kind in ("batch", "elementwise") else "refuse"
        empty_expect = "ok" if kind in ("array_nan_ok", "elementwise") else "refuse"
        scalar_expect = "ok" if kind == "times" else shape_expect
        out += [("None", None, "refuse"), ("'str'", "str", "refuse"),
                ("ndim+1", v[None], shape_expect),
                ("ndim-1", v.reshape(-1) if v.ndim > 1 else v[0], shape_expect if v.ndim > 1 else scalar_expect),
                ("empty", v[:0], empty_expect),
                ("nan", v.copy().astype(float) * np.where(np.arange(v.size).reshape(v.shape) == 0, np.nan, 1),
                 nan_expect),
                ("inf", v.copy().astype(float) + np.where(np.arange(v.size).reshape(v.shape) == 0, np.inf, 0),
                 nan_expect),
                ("numpy", v, "same"), ("list", v.tolist(), "same"),
                ("int dtype", np.round(v).astype(np.int32), "ok"),
                ("complex", v.astype(np.complex64), "refuse")]
        if v.ndim >= 2 and v.shape[-1] > 1:
            out.append(("fewer columns", v[..., :-1], shape_expect))
            out.append(("more columns", np.concatenate([v, v[..., :1]], axis=-1), shape_expect))
    elif kind == "points":  # data for metrics: also huge values
        v = np.asarray(valid)
        out += families("array", valid, np, jnp, jax)
        out.append(("x1e20", v * 1e20, "finite"))
        out.append(("x1e-20", v * 1e-20, "finite"))
    elif kind == "path":
        out += [("missing folder", "/nonexistent-folder/a.ckpt", "refuse"), ("''", "", "refuse"),
                ("a folder", tempfile.gettempdir(), "refuse"), ("3", 3, "refuse")]
    elif kind == "tt":
        out += [("None", None, "refuse"), ("array", jnp.ones((2, 2)), "refuse"), ("'str'", "str", "refuse")]
    elif kind == "ranks":
        out += [("0", 0, "refuse"), ("-1", -1, "refuse"), ("2.5", 2.5, "refuse"), ("None", None, "refuse"),
                ("wrong length", (1, 2, 2, 2, 2, 1), "refuse"), ("huge", 10**6, "ok")]
    elif kind == "dtype":
        out += [("int32", jnp.int32, "refuse"), ("complex64", jnp.complex64, "refuse"), ("'nope'", "nope", "refuse")]
    elif kind == "domain":
        out += [("reversed", (1.0, -1.0), "refuse"), ("(0,0)", (0.0, 0.0), "refuse"), ("nan", (float("nan"), 1.0),
                "refuse"), ("scalar", 1.0, "refuse"), ("None", None, "ok"), ("list", list(valid), "same")]
    else:
        raise ValueError(f"unknown kind {kind}")
    return out


class Target:
    """A public callable, a factory of its valid keyword arguments, and the kinds of the arguments to vary."""

    def __init__(self, name, fn, valid, kinds, *, jit=(), aliases=None, none_ok=()):
        self.name, self.fn, self.valid, self.kinds, self.jit = name, fn, valid, kinds, tuple(jit)
        self.aliases, self.none_ok = aliases or {}, set(none_ok)  # none_ok: arguments documented to take None


def targets():
    """The swept targets: tiny valid calls of the public API."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    import jaxtt
    from jaxtt import checkpoint, data, diffusion, metrics, sharding, solvers, train, tt
    from jaxtt.basis import BSpline, Chebyshev, Fourier, Indicator, Legendre, make_basis
    from jaxtt.ftt import FTT, FTTDenoiser, constant_init
    from jaxtt.nn import Batched, ResNetMLP

    jax.config.update("jax_enable_x64", True)
    key = jax.random.key(0)
    x = jnp.asarray(np.random.default_rng(0).uniform(-0.9, 0.9, (12, 3)))
    x2 = jnp.asarray(np.random.default_rng(1).normal(size=(12, 2)))
    y2 = jnp.asarray(np.random.default_rng(2).normal(size=(10, 2)) + 0.5)
    bases = [Legendre(3)] * 3
    model = FTT(constant_init(bases, 2, noise=0.3, dtype=jnp.float64, key=key), bases)
    train_a = tt.random(key, (3, 3, 3), 2, dtype=jnp.float64)
    train_b = tt.random(jax.random.key(1), (3, 3, 3), 2, dtype=jnp.float64)
    schedule = diffusion.linear_schedule(10)
    denoiser = FTTDenoiser(2, 10, rank=2, m=3, dtype=jnp.float64, key=key)
    t10 = jnp.arange(1, 11) % 10 + 1
    t12 = jnp.arange(12) % 10 + 1
    eps_fn = lambda x, t: 0.1 * x  # noqa: E731
    mlp = Batched(ResNetMLP(2, 8, 1, key=key))
    folder = Path(tempfile.mkdtemp(prefix="jaxtt-sweep-"))
    ckpt = folder / "a.ckpt"
    checkpoint.save_checkpoint(ckpt, {"w": jnp.arange(3.0)}, {"step": 1})
    mesh = sharding.data_mesh()

    def call_basis(basis, x):
        return basis(x)

    def call_ftt(model, x):
        return model(x)

    def call_denoiser(model, x, t):
        return model(x, t)

    T = Target
    return [
        # tensor trains
        T("tt.random", tt.random, dict(key=key, shape=(3, 3, 3), ranks=2),
          dict(key="key", shape="shape", ranks="ranks")),
        T("tt.zeros", tt.zeros, dict(shape=(3, 3), ranks=2, dtype=jnp.float64),
          dict(shape="shape", ranks="ranks", dtype="dtype")),
        T("tt.rank_one", tt.rank_one, dict(vectors=[jnp.ones(3), jnp.arange(2.0)]),
          dict(vectors="instance")),
        T("tt.full", tt.full, dict(tt=train_a), dict(tt="tt"), jit=["tt"]),
        T("tt.from_dense", tt.from_dense, dict(x=tt.full(train_a), max_rank=2, eps=0.0),
          dict(x="batch", max_rank="int", eps="real")),
        T("tt.round", tt.round, dict(tt=train_a, max_rank=1, eps=0.0), dict(tt="tt", max_rank="int", eps="real")),
        T("tt.orthogonalize", tt.orthogonalize, dict(tt=train_a, center=0), dict(tt="tt", center="index")),
        T("tt.add", tt.add, dict(a=train_a, b=train_b), dict(a="tt", b="tt"), jit=["a"]),
        T("tt.inner", tt.inner, dict(a=train_a, b=train_b), dict(a="tt", b="tt"), jit=["a", "b"]),
        T("tt.norm", tt.norm, dict(tt=train_a), dict(tt="tt"), jit=["tt"]),
        T("tt.hadamard", tt.hadamard, dict(a=train_a, b=train_b), dict(a="tt", b="tt")),
        T("tt.scale", tt.scale, dict(tt=train_a, alpha=2.0), dict(tt="tt", alpha="real_signed"), jit=["alpha"]),
        T("tt.get", tt.get, dict(tt=train_a, indices=jnp.array([[0, 1, 2], [2, 2, 2]])),
          dict(tt="tt", indices="instance"), jit=["indices"]),
        T("tt.feasible_ranks", tt.feasible_ranks, dict(shape=(2, 8, 8, 2), rank=6), dict(shape="shape", rank="int")),
        # bases
        T("basis.Legendre", Legendre, dict(m=4, domain=(-1.0, 1.0)), dict(m="int", domain="domain")),
        T("basis.Chebyshev", Chebyshev, dict(m=4, domain=(-1.0, 1.0)), dict(m="int", domain="domain")),
        T("basis.Fourier", Fourier, dict(m=5, domain=(-1.0, 1.0)), dict(m="int", domain="domain")),
        T("basis.BSpline", BSpline, dict(m=5, degree=2), dict(m="int", degree="count")),
        T("basis.Indicator", Indicator, dict(m=3), dict(m="int")),
        T("basis.make_basis", make_basis, dict(name="legendre", m=4, domain=(-1.0, 1.0)),
          dict(name="choice", m="int", domain="domain"), aliases={"name": ("basis",)}),
        T("Legendre(4)(x)", call_basis, dict(basis=Legendre(4), x=x[:, 0]), dict(x="elementwise"), jit=["x"]),
        # functional TTs
        T("ftt.FTT", FTT, dict(tt=train_a, bases=bases), dict(tt="tt", bases="instance")),
        T("FTT(x)", call_ftt, dict(model=model, x=x), dict(x="array_nan_ok"), jit=["x"]),
        T("ftt.constant_init", constant_init, dict(bases=bases, ranks=2, noise=0.1, key=key),
          dict(bases="instance", ranks="ranks", noise="real", key="key")),
        T("ftt.FTTDenoiser", FTTDenoiser, dict(dim=2, T=10, rank=2, m=3, key=key),
          dict(dim="int", T="int", rank="int", m="int", key="key", basis="choice", time="choice",
               output="choice", prediction="choice", noise="real")),
        T("FTTDenoiser(x, t)", call_denoiser, dict(model=denoiser, x=x2, t=t12), dict(x="array", t="array"),
          jit=["x", "t"]),
        # solvers
        T("solvers.fit", solvers.fit, dict(model=model, x=x, y=x[:, 0] * x[:, 1], solver=solvers.ALS(),
                                           max_steps=2, progress=False),
          dict(model="instance", x="array", y="array", solver="instance", max_steps="count", tol="real",
               stagnation="real", progress="bool", restart="bool"), none_ok=["stagnation"]),
        T("solvers.ALS", solvers.ALS, dict(reg=0.1, chunk_size=8, cg_maxiter=2),
          dict(reg="real", chunk_size="int", cg_maxiter="count")),
        T("solvers.DMRG", solvers.DMRG, dict(eps=1e-8, max_rank=4), dict(eps="real", max_rank="int"),
          none_ok=["max_rank"]),
        T("solvers.RGD", solvers.RGD, dict(c1=1e-4, max_backtracks=5), dict(c1="real", max_backtracks="count")),
        T("solvers.GradientDescent", solvers.GradientDescent, dict(optimizer=optax.sgd(0.1)),
          dict(optimizer="instance")),
        T("solvers.als_sweep", solvers.als_sweep, dict(model=model, x=x, y=x[:, 0] * x[:, 1], reg=0.1),
          dict(model="instance", x="array", y="array", reg="real", chunk_size="int"), jit=["x", "y"]),
        T("solvers.sweep_memory", solvers.sweep_memory, dict(model=model, n=100), dict(model="instance", n="int")),
        T("solvers.dmrg_sweep", solvers.dmrg_sweep, dict(model=model, x=x, y=x[:, 0] * x[:, 1], max_rank=2),
          dict(model="instance", x="array", y="array", max_rank="int", eps="real")),
        T("solvers.coarse_to_fine", solvers.coarse_to_fine,
          dict(model=FTT(constant_init([Legendre(6)] * 3, 2, dtype=jnp.float64, key=key), [Legendre(6)] * 3),
               x=x, y=x[:, 0] * x[:, 1], steps=1, max_steps=1, progress=False),
          dict(x="array", y="array", steps="int", max_steps="count", levels="instance")),
        T("solvers.resize_bases", solvers.resize_bases, dict(model=model, sizes=4),
          dict(model="instance", sizes="int")),
        T("solvers.fit_denoiser", solvers.fit_denoiser,
          dict(denoiser=denoiser, x0=x2, schedule=schedule, key=key, steps=1, repeats=1, progress=False),
          dict(denoiser="instance", x0="array", schedule="instance", key="key", steps="int", repeats="int",
               draws="int", targets="choice", reg="real"), none_ok=["reg"]),
        T("solvers.fit_regression", solvers.fit_regression,
          dict(denoiser=denoiser, x_t=x2, t=t12, y=x2, steps=1),
          dict(x_t="array", t="times", y="array", steps="int", tol="real"),
          none_ok=["reg"]),
        # diffusion
        T("diffusion.linear_schedule", diffusion.linear_schedule, dict(T=10, beta_start=1e-4, beta_end=0.02),
          dict(T="int", beta_start="real", beta_end="real", dtype="dtype")),
        T("diffusion.cosine_schedule", diffusion.cosine_schedule, dict(T=10, s=0.008),
          dict(T="int", s="real", max_beta="real")),
        T("diffusion.schedule_from_betas", diffusion.schedule_from_betas, dict(betas=schedule.betas[1:]),
          dict(betas="array")),
        T("diffusion.q_sample", diffusion.q_sample, dict(schedule=schedule, x0=y2, t=t10, eps=y2),
          dict(schedule="instance", x0="array", t="times", eps="array"), jit=["x0", "t", "eps"]),
        T("diffusion.predict_x0", diffusion.predict_x0, dict(schedule=schedule, x_t=y2, t=t10, eps=y2),
          dict(x_t="array", t="times", eps="array"), jit=["x_t", "t"]),
        T("diffusion.ddpm_loss", diffusion.ddpm_loss, dict(model=eps_fn, schedule=schedule, key=key, x0=y2),
          dict(model="callable", schedule="instance", key="key", x0="batch", prediction="choice"), jit=["x0"]),
        T("diffusion.ddim_sample", diffusion.ddim_sample,
          dict(eps_fn=eps_fn, schedule=schedule, key=key, shape=(4, 2), steps=5),
          dict(eps_fn="callable", schedule="instance", key="key", shape="shape", steps="int", eta="real",
               clip_x0="real"), jit=["key"]),
        T("diffusion.ddpm_sample", diffusion.ddpm_sample, dict(eps_fn=eps_fn, schedule=schedule, key=key,
                                                                shape=(4, 2)),
          dict(eps_fn="callable", key="key", shape="shape", variance="choice"), jit=["key"]),
        T("diffusion.sample", diffusion.sample,
          dict(model=eps_fn, schedule=schedule, sampler=diffusion.DDIM(steps=5), key=key, shape=(4, 2)),
          dict(model="callable", sampler="instance", key="key", shape="shape", prediction="choice",
               save="choice")),
        T("diffusion.DDIM", diffusion.DDIM, dict(steps=5, eta=0.0), dict(steps="int", eta="real",
                                                                       spacing="choice")),
        T("diffusion.timesteps", diffusion.timesteps, dict(T=10, steps=5), dict(T="int", steps="int",
                                                                               spacing="choice")),
        T("diffusion.ddim_timesteps", diffusion.ddim_timesteps, dict(T=10, steps=5), dict(T="int", steps="int")),
        T("diffusion.training_triples", diffusion.training_triples,
          dict(key=key, x0=y2, schedule=schedule, repeats=2), dict(key="key", x0="batch", repeats="int")),
        T("diffusion.vlb", diffusion.vlb, dict(eps_fn=eps_fn, schedule=schedule, x0=y2, key=key),
          dict(eps_fn="callable", x0="batch", key="key", variance="choice")),
        T("diffusion.loss_weights", diffusion.loss_weights, dict(schedule=schedule, weighting="uniform"),
          dict(schedule="instance", weighting="choice", prediction="choice")),
        T("diffusion.interpolant", diffusion.interpolant, dict(x0=y2, eps=y2, s=jnp.full(10, 0.5)),
          dict(x0="array", eps="array", s="times"), jit=["x0", "s"]),
        T("diffusion.flow_matching_triples", diffusion.flow_matching_triples, dict(key=key, x0=y2, repeats=2),
          dict(key="key", x0="batch", repeats="int")),
        T("diffusion.eps_to_score", diffusion.eps_to_score, dict(schedule=schedule, eps=y2, t=t10),
          dict(eps="batch", t="times")),
        # metrics
        T("metrics.mmd", metrics.mmd, dict(x=x2, y=y2), dict(x="points", y="points", bandwidths="array"),
          jit=["x", "y"]),
        T("metrics.energy_distance", metrics.energy_distance, dict(x=x2, y=y2), dict(x="points", y="points"),
          jit=["x", "y"]),
        T("metrics.sliced_wasserstein", metrics.sliced_wasserstein, dict(key=key, x=x2, y=y2, n_projections=8),
          dict(key="key", x="points", y="points", n_projections="int", p="real"), jit=["x", "y"]),
        T("metrics.frechet_distance", metrics.frechet_distance, dict(features_a=x2, features_b=y2),
          dict(features_a="points", features_b="points")),
        # data
        T("data.moons", data.moons, dict(key=key, n=8, noise=0.1), dict(key="key", n="int", noise="real",
                                                                       dtype="dtype")),
        T("data.swiss_roll", data.swiss_roll, dict(key=key, n=8), dict(key="key", n="int", noise="real")),
        T("data.circles", data.circles, dict(key=key, n=8), dict(n="int", factor="real")),
        T("data.pinwheel", data.pinwheel, dict(key=key, n=10), dict(n="int", num_arms="int", rate="real_signed")),
        T("data.toy_dataset", data.toy_dataset, dict(name="moons", key=key, n=8),
          dict(name="choice", key="key", n="int")),
        T("data.GaussianMixture", data.GaussianMixture,
          dict(weights=jnp.array([0.5, 0.5]), means=jnp.zeros((2, 2)), covs=jnp.stack([jnp.eye(2)] * 2)),
          dict(weights="array", means="array", covs="array")),
        # training, checkpoints, sharding
        T("train.fit", train.fit, dict(model=mlp, x0=x2, schedule=schedule, steps=2, batch_size=4, key=key,
                                       progress=False, log_every=1),
          dict(x0="batch", schedule="instance", steps="int", batch_size="int", key="key", ema_decay="real",
               log_every="int")),
        T("train.default_optimizer", train.default_optimizer, dict(steps=10, learning_rate=1e-3),
          dict(steps="int", learning_rate="real", weight_decay="real")),
        T("train.num_params", train.num_params, dict(model=mlp), dict()),
        T("checkpoint.save_checkpoint", checkpoint.save_checkpoint,
          dict(path=folder / "b.ckpt", tree={"w": jnp.ones(2)}, metadata={"step": 1}),
          dict(path="path", metadata="instance")),
        T("checkpoint.load_checkpoint", checkpoint.load_checkpoint, dict(path=ckpt, like={"w": jnp.zeros(3)}),
          dict(path="path", like="instance")),
        T("checkpoint.checkpoint_metadata", checkpoint.checkpoint_metadata, dict(path=ckpt), dict(path="path")),
        T("sharding.shard_rows", sharding.shard_rows, dict(arrays=x2, mesh=mesh),
          dict(mesh="instance", axis="name")),
        T("sharding.data_mesh", sharding.data_mesh, dict(axis="data"), dict(axis="name", devices="instance")),
        T("jaxtt.__version__", lambda: jaxtt.__version__, dict(), dict()),
    ]


# --- the CLI cases: argv that must be refused with a message naming the flag -----------------------------------

def cli_cases(folder: Path):
    import numpy as np

    good = folder / "points.npy"
    np.save(good, np.random.default_rng(0).normal(size=(50, 2)))
    bad = {"nan.npy": np.array([[np.nan, 1.0]] * 20), "flat.npy": np.ones(20), "empty.npy": np.zeros((0, 2)),
           "three.npy": np.ones((20, 3))}
    for name, array in bad.items():
        np.save(folder / name, array)
    (folder / "text.txt").write_text("1,2\n")
    (folder / "notamodel.ckpt").write_bytes(b"garbage" * 10)
    demo = [["--n", "0"], ["--n", "abc"], ["--n", "100"], ["--rank", "0"], ["--m", "-1"], ["--T", "0"],
            ["--ddim-steps", "500", "--T", "50"], ["--cg-steps", "-3"], ["--samples", "1"], ["--seed", "-1"],
            ["--dataset", "nope"], ["--basis", "nope"], ["--nn-width", "0"], ["--nn-steps", "0"],
            ["--batch-size", "0"], ["--repeats", "0"], ["--sweeps", "0"], ["--out", "/proc/jaxtt-sweep"],
            ["--rank", "64", "--m", "64", "--basis", "bspline"], ["--rank", "64", "--m", "64", "--cg-steps", "0"],
            ["--m", "2", "--basis", "bspline"], ["--unknown"]]
    data_file = str(good)
    train = [[str(folder / "missing.npy"), "--out", str(folder / "m.ckpt")],
             [str(folder / "text.txt"), "--out", str(folder / "m.ckpt")],
             [str(folder / "nan.npy"), "--out", str(folder / "m.ckpt")],
             [str(folder / "flat.npy"), "--out", str(folder / "m.ckpt")],
             [str(folder / "empty.npy"), "--out", str(folder / "m.ckpt")],
             [data_file], [data_file, "--out", "/proc/jaxtt-sweep/m.ckpt"],
             [data_file, "--out", str(folder / "m.ckpt"), "--rank", "0"],
             [data_file, "--out", str(folder / "m.ckpt"), "--schedule", "nope"],
             [data_file, "--out", str(folder / "m.ckpt"), "--sweeps", "-2"],
             [data_file, "--out", str(folder / "m.ckpt"), "--rank", "64", "--m", "64", "--cg-steps", "0"]]
    sample = [[str(folder / "missing.ckpt"), "--out", str(folder / "s.npy")],
              [str(folder / "notamodel.ckpt"), "--out", str(folder / "s.npy")],
              [str(folder / "notamodel.ckpt"), "--out", str(folder / "s.txt")],
              [str(folder / "notamodel.ckpt"), "--n", "0", "--out", str(folder / "s.npy")],
              [str(folder / "notamodel.ckpt"), "--eta", "2", "--out", str(folder / "s.npy")],
              [str(folder / "notamodel.ckpt"), "--steps", "0", "--out", str(folder / "s.npy")],
              [str(folder / "notamodel.ckpt"), "--sampler", "nope", "--out", str(folder / "s.npy")]]
    evaluate = [[str(folder / "missing.npy"), data_file], [data_file, str(folder / "three.npy")],
                [data_file, str(folder / "nan.npy")], [data_file, data_file, "--max-points", "1"],
                [data_file, data_file, "--projections", "0"], [data_file, str(folder / "text.txt")],
                [data_file, data_file, "--json", "/proc/jaxtt-sweep/m.json"]]
    digits = [["--seed", "-1"], ["--out", "/proc/jaxtt-sweep"], ["--targets", "nope"]]
    cases = [Case(None, None, None, None, "refuse", argv=["demo", *a, "--out", str(folder / "demo")]
                  if "--out" not in a else ["demo", *a]) for a in demo]
    cases += [Case(None, None, None, None, "refuse", argv=["train", *a]) for a in train]
    cases += [Case(None, None, None, None, "refuse", argv=["sample", *a]) for a in sample]
    cases += [Case(None, None, None, None, "refuse", argv=["evaluate", *a]) for a in evaluate]
    cases += [Case(None, None, None, None, "refuse", argv=["digits", *a]) for a in digits]
    cases += [Case(None, None, None, None, "ok", argv=argv) for argv in (["--help"], ["--version"])]
    return cases


def all_cases(folder: Path):
    import jax
    import jax.numpy as jnp
    import numpy as np

    cases = []
    for target in targets():
        if not target.kinds:
            cases.append(Case(target, None, "valid", None, "ok"))
        try:
            defaults = {n: p.default for n, p in inspect.signature(target.fn).parameters.items()}
        except (TypeError, ValueError):
            defaults = {}
        for arg, kind in target.kinds.items():
            valid = target.valid.get(arg, defaults.get(arg))
            if valid is inspect.Parameter.empty or valid is None:
                valid = None
                if kind in ARRAY_KINDS + ("shape", "domain"):
                    continue  # the value families are built from a valid value
            for label, value, expect in families(kind, valid if valid is not None else 1, np, jnp, jax):
                if valid is None and expect == "same":
                    continue  # no valid value to compare with
                if value is None and (defaults.get(arg, ...) is None or arg in target.none_ok):
                    expect = "ok"  # None is documented
                cases.append(Case(target, arg, label, value, expect))
        for arg in target.jit:
            cases.append(Case(target, arg, "traced by jit", target.valid[arg], "same", jit=True))
    return cases + cli_cases(folder)


# --- running and classifying one case ---------------------------------------------------------------------

def _leaves(result):
    import jax
    import numpy as np

    from jaxtt.solvers import FitResult
    from jaxtt.train import TrainResult

    # histories hold wall times: compare their losses; a training run: its model
    result = jax.tree_util.tree_map(
        lambda r: r.loss if isinstance(r, FitResult) else r.model if isinstance(r, TrainResult) else r, result,
        is_leaf=lambda r: isinstance(r, FitResult | TrainResult))
    leaves = [leaf for leaf in jax.tree_util.tree_leaves(result) if isinstance(leaf, int | float | complex)
              or (hasattr(leaf, "dtype") and not jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key))]
    return [np.asarray(leaf) for leaf in leaves]


def _finite(result) -> bool:
    import numpy as np

    return all(np.all(np.isfinite(leaf)) for leaf in _leaves(result) if np.issubdtype(leaf.dtype, np.inexact))


def _same(result, reference) -> bool:
    import numpy as np

    a, b = _leaves(result), _leaves(reference)
    return len(a) == len(b) and all(x.shape == y.shape and np.allclose(x, y, rtol=1e-6, atol=1e-9, equal_nan=True)
                                    for x, y in zip(a, b))


ARRAY_KINDS = ("array", "array_nan_ok", "batch", "elementwise", "times", "points")
#: families whose value conflicts with another argument: a message naming either argument is clear
MISMATCHES = ("fewer columns", "more columns", "empty", "ndim+1", "ndim-1", "wrong length")
#: how messages may name an argument besides its own name (a callable model is "model(x, t)" everywhere)
ALIASES = {"eps_fn": ("model",), "velocity": ("model",), "tt": ("TensorTrain",)}


def _names(message: str, case) -> bool:
    names = {case.arg, *ALIASES.get(case.arg, ()), *case.target.aliases.get(case.arg, ())}
    if isinstance(case.value, str) and case.arg == "path" and repr(case.value) in message:
        return True  # OSError naming the path itself
    if isinstance(case.value, str) and case.arg == "path" and case.value and case.value in message:
        return True
    if case.label in MISMATCHES:
        names |= set(case.target.valid)
    return any(re.search(rf"(?<![\w]){re.escape(n)}(?![\w])", message) for n in names if n)


def run_case(case, references, folder):
    """Run one case; return (outcome, message)."""
    if case.argv is not None:
        return run_cli_case(case)
    import jax

    target = case.target
    kwargs = dict(target.valid)
    if case.arg is not None:
        kwargs[case.arg] = case.value
    if target.name not in references:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                references[target.name] = target.fn(**target.valid)
        except Exception as err:  # the valid call itself fails: every case of it is cryptic
            references[target.name] = err
    reference = references[target.name]
    if isinstance(reference, Exception):
        return "cryptic", f"the valid call fails: {type(reference).__name__}: {reference}"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                if case.jit:
                    rest = {k: v for k, v in kwargs.items() if k != case.arg}
                    result = jax.jit(lambda value: target.fn(**rest, **{case.arg: value}))(case.value)
                else:
                    result = target.fn(**kwargs)
                result = jax.block_until_ready(result)
        except Exception as err:  # noqa: BLE001 - classifying every failure is the point
            kind = type(err).__name__
            message = f"{kind}: {err}".strip()[:400]
            if kind in CLEAR_TYPES and _names(str(err), case):
                return "clear", message
            return "cryptic", message
    warned = [str(w.message) for w in caught if _names(str(w.message), case)]
    if case.expect == "refuse":
        if warned:
            return "clear", "warning: " + warned[0][:400]
        return "silent", f"returned (finite: {_finite(result)}) where it should have refused"
    if case.expect == "same":
        ok = _same(result, reference)
        return ("correct" if ok else "silent"), ("equals the valid call's result" if ok
                                                  else "differs from the valid call's result")
    if case.expect == "finite" and not _finite(result):
        return "silent", "returned a non-finite result"
    if case.arg and case.label in ("nan", "inf"):  # NaN-propagating elementwise maps
        return "correct", "propagated the non-finite input"
    return ("correct", "returned a finite result") if _finite(result) else ("silent", "returned a non-finite result")


def run_cli_case(case):
    from jaxtt import cli

    stderr, stdout = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
            code = cli.main(case.argv)
    except SystemExit as exit_:
        code = exit_.code
    except Exception as err:  # noqa: BLE001
        return "cryptic", f"traceback: {type(err).__name__}: {err}"[:400]
    text = (stderr.getvalue() + stdout.getvalue()).strip()
    flags = [a for a in case.argv if a.startswith("--")] or ["argument", "usage"]
    last = text.splitlines()[-1] if text else ""
    if case.expect == "ok":
        return ("correct", last[:200]) if code == 0 else ("cryptic", last[:400])
    if code in (1, 2) and "Traceback" not in text:
        named = any(f in last for f in flags) or any(Path(a).name in last for a in case.argv if "/" in a)
        return ("clear" if named else "cryptic"), last[:400]
    if code == 0:
        return "silent", "ran to the end (exit status 0)"
    return "cryptic", last[:400]


# --- worker and parent ------------------------------------------------------------------------------------

def worker(start: int, step: int, folder: Path) -> None:
    cases = all_cases(folder)
    references = {}
    print(json.dumps({"total": len(cases)}), flush=True)
    for i in range(start, len(cases), step):
        case = cases[i]
        print(json.dumps({"start": i}), flush=True)
        t0 = time.perf_counter()
        try:
            outcome, message = run_case(case, references, folder)
        except Exception as err:  # noqa: BLE001 - a defect of the sweep itself: report it, go on
            outcome, message = "sweep error", f"{type(err).__name__}: {err}"[:400]
        print(json.dumps({"i": i, "case": case.name, "target": case.target.name if case.target else "cli",
                          "expect": case.expect, "outcome": outcome, "message": message,
                          "seconds": round(time.perf_counter() - t0, 3)}), flush=True)


def sweep(step: int, timeout: float) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="jaxtt-sweep-"))
    results, start, total = {}, 0, None
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]), JAX_PLATFORMS="cpu")
    while total is None or start < total:
        proc = subprocess.Popen([sys.executable, __file__, "--worker", str(start), "--step", str(step),
                                 "--folder", str(folder)], stdout=subprocess.PIPE, text=True, env=env,
                                stderr=subprocess.DEVNULL)
        current, last = None, time.monotonic()
        while True:
            ready, _, _ = select.select([proc.stdout], [], [], 1.0)
            if ready:
                line = proc.stdout.readline()
                if not line:
                    break
                record = json.loads(line)
                last = time.monotonic()
                if "total" in record:
                    total = record["total"]
                    if start >= total:
                        break
                elif "start" in record:
                    current = record["start"]
                else:
                    results[record["i"]] = record
                    current = None
            elif current is not None and time.monotonic() - last > timeout:
                proc.kill()
                results[current] = {"i": current, "case": f"case {current}", "target": "?", "expect": "?",
                                    "outcome": "hang", "message": f"over {timeout:g} s", "seconds": timeout}
                break
        proc.wait()
        if total is None:
            raise RuntimeError(f"the worker failed before listing the cases (status {proc.returncode}); run it with "
                               f"--worker 0 --folder {folder} to see why")
        if current is None and proc.returncode == 0:
            break
        if current is not None and current not in results:  # the worker died on this case
            results[current] = {"i": current, "case": f"case {current}", "target": "?", "expect": "?",
                                "outcome": "cryptic", "message": f"the process died (status {proc.returncode})",
                                "seconds": None}
        start = (current if current is not None else start) + step
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="every 4th case only")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per case before it counts as a hang")
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--step", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--folder", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help="JSON file (default benchmarks/results/bad_input_sweep.json)")
    args = parser.parse_args()
    if args.worker is not None:
        warnings.simplefilter("ignore")
        return worker(args.worker, args.step, Path(args.folder))
    t0 = time.perf_counter()
    results = sweep(4 if args.quick else 1, args.timeout)
    cases = [results[i] for i in sorted(results)]
    counts = Counter(c["outcome"] for c in cases)
    by_target = {}
    for c in cases:
        by_target.setdefault(c["target"], Counter())[c["outcome"]] += 1
    print(f"{'target':34s} " + " ".join(f"{o:>8s}" for o in OUTCOMES))
    for name, row in by_target.items():
        print(f"{name:34s} " + " ".join(f"{row[o]:8d}" for o in OUTCOMES))
    print(f"{'total (' + str(len(cases)) + ' cases)':34s} " + " ".join(f"{counts[o]:8d}" for o in OUTCOMES))
    for c in cases:
        if c["outcome"] in ("cryptic", "silent", "hang"):
            print(f"  {c['outcome']:8s} {c['case']}: {c['message'][:160]}")
    report = {"counts": {o: counts[o] for o in OUTCOMES}, "n_cases": len(cases), "quick": args.quick,
              "seconds": round(time.perf_counter() - t0, 1), "loadavg": os.getloadavg(),
              "machine": platform.platform(), "python": platform.python_version(), "cases": cases}
    RESULTS.mkdir(exist_ok=True)
    out = Path(args.out) if args.out else RESULTS / ("bad_input_sweep_quick.json" if args.quick
                                                     else "bad_input_sweep.json")
    out.write_text(json.dumps(report, indent=1))
    print(f"wrote {out} ({report['seconds']} s)")


if __name__ == "__main__":
    main()
