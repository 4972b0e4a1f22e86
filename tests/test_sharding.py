"""Data-parallel fits (ALS, DMRG, RGD/RCG, GradientDescent), training and sampling on 1, 2 and 4 devices equal
the single-device runs.

XLA's host-device count is fixed when jax is imported, so the multi-device checks run in one subprocess with
``--xla_force_host_platform_device_count=4``; the rest of the suite keeps its single device.
"""

import json
import os
import subprocess
import sys
import textwrap

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxtt import tt
from jaxtt.sharding import check_mesh, data_mesh, replicate, shard_rows
from jaxtt.solvers import ALS, DMRG, RCG, RGD, GradientDescent, LeastSquares
from jaxtt.tt import riemannian

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

BODY = textwrap.dedent(
    """
    import json
    import time
    start = time.perf_counter()
    import jax
    jax.config.update("jax_enable_x64", True)
    import equinox as eqx
    import jax.numpy as jnp
    import numpy as np
    from jaxtt.basis import Legendre
    from jaxtt.data import moons
    from jaxtt.diffusion import DDPM, linear_schedule, sample
    from jaxtt.ftt import FTT, FTTDenoiser, constant_init
    from jaxtt.sharding import data_mesh
    from jaxtt.solvers import ALS, fit
    from jaxtt.solvers.als import compiled_sweep
    from jaxtt.train import fit as train

    assert jax.device_count() == 4
    out = {}
    bases = [Legendre(4, orthonormal=True)] * 2  # two cores: the smallest sweep to compile, both interfaces used
    x = jax.random.uniform(jax.random.key(0), (203, 2), minval=-1, maxval=1)  # 203 = 4 * 50 + 3: uneven
    y = jnp.stack([x[:, 0] * x[:, 1] + jnp.sin(x[:, 1]), jnp.cos(x[:, 0] + x[:, 1])], axis=1)
    member = lambda k: constant_init(bases, 2, dtype=jnp.float64, key=k)
    models = {"scalar": (FTT(member(jax.random.key(1)), bases), y[:, 0]),
              "batched": (FTT(jax.vmap(member)(jax.random.split(jax.random.key(1), 2)), bases), y)}
    meshes = {n: data_mesh(jax.devices()[:n]) for n in (1, 2, 4)}
    # Cholesky on 1, 2 and 4 devices; CGLS and vector targets on 4; two sweeps each
    def sweeps(solver, model, target):
        state = solver.init(model, x, target)
        return solver.step(solver.step(state))

    for cg, name, counts in [(0, "scalar", (1, 2, 4)), (3, "scalar", (4,)), (0, "batched", (4,))]:
        model, target = models[name]
        kwargs = dict(reg=1e-6, chunk_size=16, cg_maxiter=cg)
        ref = sweeps(ALS(sparse=False, **kwargs), model, target)
        for n in counts:
            got = sweeps(ALS(mesh=meshes[n], **kwargs), model, target)
            out[f"als cg={cg} {name} {n}"] = {
                "core": max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(got.model.tt.cores, ref.model.tt.cores)),
                "loss": abs(float(got.loss - ref.loss)), "scale": float(ref.loss),
                "split": got.x.sharding.spec == jax.sharding.PartitionSpec("data"),
                "on": got.model.tt.cores[0].sharding.mesh.size == n}

    # the compiled sweep reduces with all-reduce and never gathers the rows
    solver = ALS(mesh=meshes[4], chunk_size=16)
    state = solver.init(*models["scalar"][:1], x, y[:, 0])
    sweep = compiled_sweep(0, 16, 0, meshes[4], "data")
    out["seconds als"] = time.perf_counter() - start
    hlo = sweep.lower(state.model, state.x, state.y, None, jnp.asarray(0.0), state.mask).compile().as_text()
    out["hlo"] = {"all-reduce": "all-reduce" in hlo, "all-gather": "all-gather" in hlo,
                  "local rows": "f64[51,2]" in hlo, "padded rows": int(state.x.shape[0])}

    class Affine(eqx.Module):  # the smallest trainable noise model: quick to compile
        w: jax.Array
        b: jax.Array

        def __call__(self, x, t):
            return x @ self.w + self.b * t[:, None] / 20

    net = Affine(jnp.eye(2) * 0.5, jnp.ones(2))
    x0 = moons(jax.random.key(3), 128).astype(jnp.float64)
    kw = dict(steps=4, batch_size=32, key=jax.random.key(4), log_every=2, progress=False)
    ref = train(net, x0, linear_schedule(10), **kw)
    leaves = lambda m: jax.tree.leaves(eqx.filter(m, eqx.is_inexact_array))
    for n in (4,):
        got = train(net, x0, linear_schedule(10), mesh=meshes[n], **kw)
        out[f"train {n}"] = {
            "params": max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(leaves(got.model), leaves(ref.model))),
            "loss": float(np.max(np.abs(np.subtract(got.history["train_loss"], ref.history["train_loss"]))))}
    try:
        train(net, x0, linear_schedule(10), mesh=meshes[4], **{**kw, "batch_size": 30})
    except ValueError as err:
        out["train bad batch"] = str(err)

    out["seconds train"] = time.perf_counter() - start
    denoiser = FTTDenoiser(2, 10, rank=2, m=4, key=jax.random.key(5))
    for sampler in (DDPM(),):
        ref = sample(denoiser, linear_schedule(10), sampler, jax.random.key(6), (12, 2)).samples
        got = sample(denoiser, linear_schedule(10), sampler, jax.random.key(6), (12, 2), mesh=meshes[4]).samples
        out[f"sample {type(sampler).__name__}"] = {"diff": float(jnp.max(jnp.abs(got - ref))),
                                                   "spec": str(got.sharding.spec)}
    for bad_shape in [(10, 2)]:
        try:
            sample(denoiser, linear_schedule(10), DDPM(), jax.random.key(6), bad_shape, mesh=meshes[4])
        except ValueError as err:
            out["sample bad shape"] = str(err)
    nan_model = lambda x, t: jnp.where(t[:, None] < 3, jnp.nan, 1.0) * x
    try:
        sample(nan_model, linear_schedule(10), DDPM(), jax.random.key(6), (12, 2), mesh=meshes[4])
    except FloatingPointError as err:
        out["sample nan"] = str(err)
    out["seconds"] = time.perf_counter() - start
    print("RESULT" + json.dumps(out))
    """
)


SOLVERS = textwrap.dedent(
    """
    import json
    import time
    start = time.perf_counter()
    import jax
    jax.config.update("jax_enable_x64", True)
    import equinox as eqx
    import jax.numpy as jnp
    import optax
    from jaxtt.basis import Legendre
    from jaxtt.ftt import FTT, constant_init
    from jaxtt.sharding import data_mesh, replicate, shard_rows
    from jaxtt.solvers import DMRG, RCG, RGD, GradientDescent, LeastSquares, fit, fit_riemannian

    assert jax.device_count() == 4
    out = {}
    bases = [Legendre(4, orthonormal=True)] * 2
    x = jax.random.uniform(jax.random.key(0), (203, 2), minval=-1, maxval=1)  # 203 = 4 * 50 + 3: uneven
    y = jnp.stack([x[:, 0] * x[:, 1] + jnp.sin(x[:, 1]), jnp.cos(x[:, 0] + x[:, 1])], axis=1)
    member = lambda k: constant_init(bases, 2, dtype=jnp.float64, key=k)
    models = {"scalar": (FTT(member(jax.random.key(1)), bases), y[:, 0]),
              "batched": (FTT(jax.vmap(member)(jax.random.split(jax.random.key(1), 2)), bases), y)}
    meshes = {n: data_mesh(jax.devices()[:n]) for n in (1, 2, 4)}

    def steps(solver, model, target, count):
        state = solver.init(model, x, target)
        for _ in range(count):
            state = solver.step(state)
        return state

    def compare(got, ref, n):
        return {"core": max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(got.model.tt.cores, ref.model.tt.cores)),
                "loss": abs(float(got.loss - ref.loss)), "scale": float(ref.loss),
                "ranks": [got.model.tt.ranks, ref.model.tt.ranks],
                "on": got.model.tt.cores[0].sharding.mesh.size == n}

    # DMRG: normal equations on 1, 2 and 4 devices; matrix-free CG solves of vector targets on 4
    dmrg = [("dense", "scalar", dict(), (1, 2, 4)), ("cg", "batched", dict(dense_limit=8, cg_maxiter=5), (4,))]
    for label, name, kwargs, counts in dmrg:
        model, target = models[name]
        kwargs = dict(eps=1e-6, max_rank=3, reg=1e-6, **kwargs)
        ref = steps(DMRG(**kwargs), model, target, 1)  # d = 2: the sweep grows the rank from 1 between its solves
        for n in counts:
            got = steps(DMRG(mesh=meshes[n], **kwargs), model, target, 1)
            out[f"dmrg {label} {name} {n}"] = {**compare(got, ref, n), "split": got.x.shape[0] == 203 + (-203 % n)}
    out["seconds dmrg"] = time.perf_counter() - start

    # RCG on 1 device, RGD on 2, vector targets on 4: three line-search steps each
    refs = {}
    for cls, name, counts in [(RCG, "scalar", (1,)), (RGD, "scalar", (2,)), (RCG, "batched", (4,))]:
        model, target = models[name]
        refs[cls, name] = ref = steps(cls(reg=1e-6), model, target, 3)
        for n in counts:
            got = steps(cls(reg=1e-6, mesh=meshes[n]), model, target, 3)
            out[f"{cls.__name__} {name} {n}"] = {
                **compare(got, ref, n), "split": got.objective.features[0].shape[0] == 203 + (-203 % n)
                and (n == 1 or got.objective.features[0].sharding.spec == jax.sharding.PartitionSpec("data"))}
    # RCG on 4 devices through fit, and through fit_riemannian on a LeastSquares built from shard_rows
    model, target = models["scalar"]
    ref = refs[RCG, "scalar"]
    kw = dict(max_steps=3, stagnation=None, progress=False)
    got_model, got_result = fit(model, x, target, RCG(reg=1e-6, mesh=meshes[4]), **kw)
    (xs, ys), mask = shard_rows([x, target], meshes[4])
    got_tt, riemannian_result = fit_riemannian(LeastSquares(model.features(xs), ys, reg=1e-6, mask=mask),
                                               replicate(model.tt, meshes[4]), solver=RCG(reg=1e-6, mesh=meshes[4]),
                                               **kw)
    for label, cores, result in [("fit", got_model.tt.cores, got_result), ("fit_riemannian", got_tt.cores,
                                                                           riemannian_result)]:
        out[f"{label} RCG 4"] = {"on": cores[0].sharding.mesh.size == 4, "scale": float(ref.loss),
                                 "core": max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(cores, ref.model.tt.cores)),
                                 "loss": abs(result.loss[-1] - float(ref.loss))}
    out["seconds riemannian"] = time.perf_counter() - start

    # GradientDescent (Adam) on 4 devices (vector targets: the same vmapped loss as above)
    model, target = models["scalar"]
    ref = steps(GradientDescent(optax.adam(0.05), reg=1e-6), model, target, 3)
    got = steps(GradientDescent(optax.adam(0.05), reg=1e-6, mesh=meshes[4]), model, target, 3)
    out["gd scalar 4"] = {**compare(got, ref, 4), "split": got.features[0].shape[0] == 204}
    out["seconds gd"] = time.perf_counter() - start

    # the partitioned steps reduce with all-reduce and never gather the rows (51 rows per device)
    def compiled_text(solver, state):
        arrays, rest = eqx.partition(state, eqx.is_array)
        step = lambda a: eqx.filter(solver.step(eqx.combine(a, rest)), eqx.is_array)
        return jax.jit(step).lower(arrays).compile().as_text()

    for solver in (RCG(mesh=meshes[4]), GradientDescent(optax.adam(0.05), mesh=meshes[4])):
        hlo = compiled_text(solver, solver.init(models["scalar"][0], x, y[:, 0]))
        out[f"hlo {type(solver).__name__}"] = {"all-reduce": "all-reduce" in hlo, "all-gather": "all-gather" in hlo,
                                               "local rows": "f64[51,4]" in hlo}
    out["seconds"] = time.perf_counter() - start
    print("RESULT" + json.dumps(out))
    """
)


def test_four_devices_give_the_single_device_results():
    """Both scripts, run one after the other in one subprocess (one import of jax) with four host devices.

    One test rather than one per check: a test is the unit pytest-xdist hands to a worker, so a single test runs
    the ~80 s subprocess once while the other worker goes on with the suite (a shared fixture made the second
    worker wait for the first)."""
    results = _run_four_devices()
    for check in (_check_als, _check_sweep_hlo, _check_training, _check_sampling, _check_dmrg, _check_riemannian,
                  _check_gradient_descent, _check_partitioned_steps):
        check(results)


def _run_four_devices():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    run = subprocess.run([sys.executable, "-c", BODY + SOLVERS], env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    results = [json.loads(line[len("RESULT"):]) for line in run.stdout.splitlines() if line.startswith("RESULT")]
    assert len(results) == 2, run.stdout[-3000:]
    return {**results[0], **{f"solvers {k}" if k.startswith("seconds") else k: v for k, v in results[1].items()}}


def _check_als(results):
    """Sharded ALS equals the single-device fit on 1, 2 and 4 devices: Cholesky and CGLS sweeps, scalar and vector
    targets, N = 203 rows padded to 204 with masked rows."""
    cases = [k for k in results if k.startswith("als")]
    assert len(cases) == 5
    for case in cases:
        got = results[case]
        assert got["split"] and got["on"], case
        assert got["core"] < 1e-10, (case, got)
        assert got["loss"] <= 1e-12 * got["scale"], (case, got)


def _check_sweep_hlo(results):
    """The compiled ALS sweep all-reduces and never gathers the rows."""
    hlo = results["hlo"]
    assert hlo["padded rows"] == 204
    assert hlo["all-reduce"] and not hlo["all-gather"] and hlo["local rows"], hlo


def _check_training(results):
    """Data-parallel training follows the single-device trajectory."""
    for n in (4,):
        got = results[f"train {n}"]
        assert got["params"] < 1e-12 and got["loss"] < 1e-12, (n, got)
    assert "batch_size must be a multiple of the 4 devices" in results["train bad batch"]


def _check_sampling(results):
    """Sharded sampling draws the same samples, split over the devices."""
    for name in ("DDPM",):
        got = results[f"sample {name}"]
        assert got["diff"] == 0.0 and "'data'" in got["spec"], (name, got)
    assert "must be a multiple of the 4 devices" in results["sample bad shape"]
    assert "not finite at evaluation" in results["sample nan"]


def _assert_equal_to_round_off(cases, results):
    for case in cases:
        got = results[case]
        assert got.get("split", True) and got.get("on", True), (case, got)
        assert got["core"] < 1e-10, (case, got)
        assert got["loss"] <= 1e-12 * got["scale"], (case, got)
        assert got.get("ranks", [0, 0])[0] == got.get("ranks", [0, 0])[1], (case, got)


def _check_dmrg(results):
    """Sharded DMRG equals the single-device fit with the same ranks: normal-equation and CG two-site solves, scalar
    and vector targets, N = 203 padded to 204."""
    cases = [k for k in results if k.startswith("dmrg")]
    assert len(cases) == 4
    _assert_equal_to_round_off(cases, results)
    assert results["dmrg dense scalar 4"]["ranks"][0] != [1, 1, 1]  # ranks were chosen from the data


def _check_riemannian(results):
    """Sharded RCG and RGD follow the single-device iterates."""
    cases = [k for k in results if k.startswith(("RCG", "RGD", "fit"))]
    assert len(cases) == 5
    _assert_equal_to_round_off(cases, results)


def _check_gradient_descent(results):
    """Sharded GradientDescent follows the single-device iterates."""
    cases = [k for k in results if k.startswith("gd")]
    assert len(cases) == 1
    _assert_equal_to_round_off(cases, results)


def _check_partitioned_steps(results):
    """The partitioned gradient steps all-reduce and never gather the rows."""
    for name in ("RCG", "GradientDescent"):
        hlo = results[f"hlo {name}"]
        assert hlo["all-reduce"] and not hlo["all-gather"] and hlo["local rows"], (name, hlo)


def test_shard_rows_pads_with_masked_zero_rows():
    mesh = data_mesh()
    x = jnp.arange(10.0).reshape(5, 2)
    (placed,), mask = shard_rows([x], mesh)
    np.testing.assert_array_equal(np.asarray(placed)[:5], np.asarray(x))
    assert float(jnp.sum(mask)) == 5 and placed.shape[0] % mesh.size == 0
    assert replicate({"a": x}, mesh)["a"].sharding.is_fully_replicated
    with pytest.raises(ValueError, match="share their leading length"):
        shard_rows([x, x[:3]], mesh)


def test_masked_least_squares_drops_the_padding_rows():
    """The objective, gradient and curvature on padded rows with a mask equal those of the data rows alone."""
    keys = jax.random.split(jax.random.key(0), 3)
    X = tt.random(keys[0], (3, 4), 2)
    feats = [jax.random.normal(k, (7, n)) for k, n in zip(keys[1:], X.shape)]
    y = jnp.linspace(-1.0, 1.0, 7)
    padded = [jnp.concatenate([f, jnp.full((3, f.shape[1]), 5.0)]) for f in feats]
    mask = jnp.concatenate([jnp.ones(7), jnp.zeros(3)])
    plain = LeastSquares(feats, y, reg=0.3)
    masked = LeastSquares(padded, jnp.concatenate([y, jnp.full(3, 9.0)]), reg=0.3, mask=mask)

    @jax.jit  # one compiled program instead of many small eager ones
    def quantities(objective):
        value, grad = objective.riemannian_value_and_grad(riemannian.zeros(X))
        return objective(X), value, grad.deltas, objective.line_curvature(grad)

    got, want = quantities(masked), quantities(plain)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-14)
    dense = np.asarray(tt.full(X)).reshape(-1)
    rows = np.stack([np.kron(f0, f1) for f0, f1 in zip(*map(np.asarray, feats))])  # independent: dense design
    value = (np.sum((rows @ dense - np.asarray(y)) ** 2) + 0.3 * dense @ dense) / 14
    np.testing.assert_allclose(float(got[0]), value, rtol=1e-10)
    with pytest.raises(ValueError, match="mask must have shape"):
        LeastSquares(feats, y, mask=jnp.ones(3))


def test_bad_meshes_are_named():
    for solver in (DMRG, RGD, RCG, partial(GradientDescent, optax.sgd(0.1))):
        with pytest.raises(TypeError, match="mesh must be a Mesh"):
            solver(mesh="data")
        with pytest.raises(ValueError, match="no axis 'rows'"):
            solver(mesh=data_mesh(), axis="rows")
    with pytest.raises(TypeError, match="mesh must be a Mesh"):
        ALS(mesh="data")
    with pytest.raises(ValueError, match="no axis 'rows'"):
        ALS(mesh=data_mesh(), axis="rows")
    with pytest.raises(ValueError, match="no axis 'rows'"):
        check_mesh(data_mesh(), "rows")
