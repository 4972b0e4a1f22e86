"""Data-parallel fits, training and sampling on 1, 2 and 4 devices equal the single-device runs.

XLA's host-device count is fixed when jax is imported, so the multi-device checks run in one subprocess with
``--xla_force_host_platform_device_count=4``; the rest of the suite keeps its single device.
"""

import json
import os
import subprocess
import sys
import textwrap

import jax.numpy as jnp
import numpy as np
import pytest

from jaxtt.sharding import check_mesh, data_mesh, replicate, shard_rows
from jaxtt.solvers import ALS

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


@pytest.fixture(scope="module")
def four_devices():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    run = subprocess.run([sys.executable, "-c", BODY], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    line = next(line for line in run.stdout.splitlines() if line.startswith("RESULT"))
    return json.loads(line[len("RESULT"):])


def test_sharded_als_equals_the_single_device_fit_on_1_2_4_devices_with_uneven_rows(four_devices):
    """Cholesky and CGLS sweeps, scalar and vector targets, N = 203 rows padded to 204 with masked rows."""
    cases = [k for k in four_devices if k.startswith("als")]
    assert len(cases) == 5
    for case in cases:
        got = four_devices[case]
        assert got["split"] and got["on"], case
        assert got["core"] < 1e-10, (case, got)
        assert got["loss"] <= 1e-12 * got["scale"], (case, got)


def test_sharded_sweep_all_reduces_and_never_gathers_the_rows(four_devices):
    hlo = four_devices["hlo"]
    assert hlo["padded rows"] == 204
    assert hlo["all-reduce"] and not hlo["all-gather"] and hlo["local rows"], hlo


def test_data_parallel_training_follows_the_single_device_trajectory(four_devices):
    for n in (4,):
        got = four_devices[f"train {n}"]
        assert got["params"] < 1e-12 and got["loss"] < 1e-12, (n, got)
    assert "batch_size must be a multiple of the 4 devices" in four_devices["train bad batch"]


def test_sharded_sampling_draws_the_same_samples_split_over_the_devices(four_devices):
    for name in ("DDPM",):
        got = four_devices[f"sample {name}"]
        assert got["diff"] == 0.0 and "'data'" in got["spec"], (name, got)
    assert "must be a multiple of the 4 devices" in four_devices["sample bad shape"]
    assert "not finite at evaluation" in four_devices["sample nan"]


def test_shard_rows_pads_with_masked_zero_rows():
    mesh = data_mesh()
    x = jnp.arange(10.0).reshape(5, 2)
    (placed,), mask = shard_rows([x], mesh)
    np.testing.assert_array_equal(np.asarray(placed)[:5], np.asarray(x))
    assert float(jnp.sum(mask)) == 5 and placed.shape[0] % mesh.size == 0
    assert replicate({"a": x}, mesh)["a"].sharding.is_fully_replicated
    with pytest.raises(ValueError, match="share their leading length"):
        shard_rows([x, x[:3]], mesh)


def test_bad_meshes_are_named():
    with pytest.raises(TypeError, match="mesh must be a Mesh"):
        ALS(mesh="data")
    with pytest.raises(ValueError, match="no axis 'rows'"):
        ALS(mesh=data_mesh(), axis="rows")
    with pytest.raises(ValueError, match="no axis 'rows'"):
        check_mesh(data_mesh(), "rows")
