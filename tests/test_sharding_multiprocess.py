"""Two processes on localhost (``jax.distributed``, Gloo CPU collectives) fit and train as one process does."""

import os
import socket
import subprocess
import sys
import textwrap

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Shared by the workers and the single-process reference: data, model and the runs.
SETUP = textwrap.dedent(
    """
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    from jaxtt.basis import Legendre
    from jaxtt.data import moons
    from jaxtt.diffusion import linear_schedule
    from jaxtt.ftt import FTT, constant_init
    from jaxtt.solvers import ALS
    from jaxtt.train import fit as train

    BASES = [Legendre(4, orthonormal=True)] * 2
    X = jax.random.uniform(jax.random.key(0), (101, 2), jnp.float64, -1, 1)  # odd: one masked padding row
    Y = X[:, 0] * X[:, 1] + jnp.sin(X[:, 1])
    MODEL = FTT(constant_init(BASES, 2, dtype=jnp.float64, key=jax.random.key(1)), BASES)


    class Affine(eqx.Module):
        w: jax.Array
        b: jax.Array

        def __call__(self, x, t):
            return x @ self.w + self.b * t[:, None] / 10


    def als(mesh):
        solver = ALS(mesh=mesh, chunk_size=16, cg_maxiter=0, sparse=False)
        state = solver.init(MODEL, X, Y)
        return solver.step(solver.step(state))


    def training(mesh):
        x0 = moons(jax.random.key(3), 64).astype(jnp.float64)
        return train(Affine(jnp.eye(2) * 0.5, jnp.ones(2)), x0, linear_schedule(10), steps=4, batch_size=16,
                     key=jax.random.key(4), log_every=2, progress=False, mesh=mesh)
    """
)

WORKER = textwrap.dedent(
    """
    import sys
    import jax
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    process, port, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    jax.distributed.initialize(coordinator_address=f"localhost:{port}", num_processes=2, process_id=process)
    import numpy as np
    from jaxtt.sharding import data_mesh
    exec(open(sys.argv[4]).read())
    mesh = data_mesh()
    assert mesh.size == 2 and jax.process_count() == 2 and len(jax.local_devices()) == 1
    state = als(mesh)
    result = training(mesh)
    local = lambda a: np.asarray(a.addressable_data(0))
    np.savez(out, *[local(c) for c in state.model.tt.cores], loss=local(state.loss), w=local(result.model.w),
             b=local(result.model.b), train_loss=np.asarray(result.history["train_loss"]))
    jax.distributed.shutdown()
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_processes_fit_and_train_like_one(tmp_path):
    setup = tmp_path / "setup.py"
    setup.write_text(SETUP)
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("XLA_FLAGS", None)
    port = str(free_port())
    outs = [tmp_path / f"process{i}.npz" for i in range(2)]
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(i), port, str(outs[i]), str(setup)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    for worker in workers:
        try:
            _, err = worker.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            for w in workers:
                w.kill()
            raise
        assert worker.returncode == 0, err[-3000:]

    namespace = {}
    exec(SETUP, namespace)
    state, result = namespace["als"](None), namespace["training"](None)
    params = eqx.filter(result.model, eqx.is_inexact_array)
    for out in outs:
        got = np.load(out)
        for k, core in enumerate(state.model.tt.cores):
            np.testing.assert_allclose(got[f"arr_{k}"], core, atol=1e-12)
        np.testing.assert_allclose(got["loss"], state.loss, rtol=1e-12)
        np.testing.assert_allclose(got["w"], params.w, atol=1e-12)
        np.testing.assert_allclose(got["b"], params.b, atol=1e-12)
        np.testing.assert_allclose(got["train_loss"], result.history["train_loss"], rtol=1e-12)
    assert jnp.asarray(state.loss).dtype == jnp.float64 and jax.device_count() == 1
