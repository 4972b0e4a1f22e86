"""The solver interface: pure init/step under jit and scan, one FitResult layout, one loop, one error."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxtt import tt
from jaxtt.basis import Legendre
from jaxtt.errors import NumericalError
from jaxtt.ftt import FTT, constant_init
from jaxtt.solvers import ALS, DMRG, RCG, RGD, FitResult, GradientDescent, StalledFitWarning, fit, sweep_memory

D, M, N = 3, 3, 300
BASES = [Legendre(M, orthonormal=True)] * D
FIXED_RANK = {"ALS": ALS(reg=1e-8), "RGD": RGD(), "RCG": RCG(), "Adam": GradientDescent(optax.adam(0.02))}


def data(seed=0):
    target = FTT(tt.random(jax.random.key(seed), (M,) * D, 2, dtype=jnp.float64), BASES)
    x = jnp.asarray(np.random.default_rng(seed).uniform(-1, 1, (N, D)))
    return x, target(x)


def start(rank=2, batch=None):
    if batch is None:
        return FTT(constant_init(BASES, rank, dtype=jnp.float64, key=jax.random.key(1)), BASES)
    keys = jax.random.split(jax.random.key(1), batch)
    return FTT(jax.vmap(lambda k: constant_init(BASES, rank, dtype=jnp.float64, key=k))(keys), BASES)


def dense_loss(model, x, y, reg):
    """J = (‖y − f(x)‖² + λ‖A‖²)/(2N), with A reconstructed densely for every output."""
    pred = np.asarray(model(x)).reshape(N, -1)
    cores = model.tt.cores
    norms = 0.0
    for j in range(pred.shape[1]):
        member = tt.TensorTrain([c.reshape(-1, *c.shape[-3:])[j] for c in cores])
        norms += float(np.sum(np.asarray(tt.full(member)) ** 2))
    return (np.sum((pred - np.asarray(y).reshape(N, -1)) ** 2) + reg * norms) / (2 * N)


@pytest.mark.parametrize("name", sorted(FIXED_RANK))
def test_init_and_step_are_pure_under_jit_and_scan(name):
    """Three steps by an eager loop, by jit-compiled calls and by one lax.scan give the same model and loss,
    and the state's loss is the dense J of its model."""
    solver = FIXED_RANK[name]
    x, y = data()
    eager = solver.init(start(), x, y)
    for _ in range(3):
        eager = solver.step(eager)
    jitted = jax.jit(solver.init)(start(), x, y)
    step = jax.jit(solver.step)
    for _ in range(3):
        jitted = step(jitted)
    scanned, losses = jax.lax.scan(lambda s, _: (solver.step(s), s.loss), solver.init(start(), x, y), length=3)
    for state in (jitted, scanned):
        np.testing.assert_allclose(state.loss, eager.loss, rtol=1e-8, atol=1e-14)
        np.testing.assert_allclose(state.model(x), eager.model(x), rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(eager.loss, dense_loss(eager.model, x, y, getattr(solver, "reg")), rtol=1e-7,
                               atol=1e-14)
    assert losses.shape == (3,) and float(eager.loss) < float(losses[0])


def test_fit_result_has_one_layout_for_every_solver():
    x, y = data()
    solvers = dict(FIXED_RANK, DMRG=DMRG(max_rank=3))
    results = {}
    for name, solver in solvers.items():
        model, result = fit(start(), x, y, solver, max_steps=3, progress=False)
        assert isinstance(result, FitResult) and result._fields == FitResult._fields
        assert result.val_residual is None
        k = len(result.step)
        assert result.step == list(range(k)) and 2 <= k <= 4
        assert len(result.loss) == len(result.train_residual) == len(result.ranks) == len(result.time) == k
        assert result.ranks[-1] == model.tt.ranks
        assert result.status in {"max_steps", "tol", "stalled"}
        # loss and residual are the objective and relative residual of the returned model
        np.testing.assert_allclose(result.loss[-1], dense_loss(model, x, y, solver.reg), rtol=1e-7, atol=1e-14)
        np.testing.assert_allclose(result.train_residual[-1],
                                   np.linalg.norm(np.asarray(model(x)) - np.asarray(y)) / np.linalg.norm(y), rtol=1e-7)
        results[name] = result
    for name, result in results.items():  # every solver lowers the loss (3 Adam steps only a little)
        assert result.loss[-1] < result.loss[0], name
    assert results["ALS"].loss[-1] < 1e-4 * results["ALS"].loss[0]


def test_vector_valued_targets_with_validation():
    """A batch of two FTTs fits (N, 2) targets; validation residuals are recorded for every entry."""
    x, y = data(0)
    ys = jnp.stack([y, data(1)[1]], axis=1)
    x_val, y_val = data(2)[0], jnp.stack([data(2)[1], data(3)[1]], axis=1)
    for solver in (ALS(), RCG(), DMRG(max_rank=2)):
        model, result = fit(start(batch=2), x, ys, solver, max_steps=2, validation=(x_val, y_val), progress=False)
        assert model(x).shape == (N, 2) and len(result.val_residual) == len(result.step)
        np.testing.assert_allclose(result.train_residual[-1],
                                   np.linalg.norm(np.asarray(model(x) - ys)) / np.linalg.norm(ys), rtol=1e-7)


def test_stopping_rules():
    x, y = data()
    _, result = fit(start(), x, y, ALS(), max_steps=20, tol=1e-6, progress=False)
    assert result.status == "tol" and result.train_residual[-1] <= 1e-6 < result.train_residual[-2]
    _, result = fit(start(), x, y, ALS(), max_steps=20, stagnation=0.5, progress=False)
    assert result.status == "stalled"
    loss = np.asarray(result.loss)
    assert np.all(loss[-3:-1] - loss[-2:] <= 0.5 * loss[-3:-1])  # the last two steps each gained < 50 %
    _, result = fit(start(), x, y, RGD(), max_steps=2, progress=False)
    assert result.status == "max_steps" and result.step == [0, 1, 2]
    _, result = fit(start(), x, y, ALS(), max_steps=0, progress=False)
    assert result.step == [0]


def test_divergent_gradient_descent_raises_numerical_error_with_the_step():
    """A learning rate of 1e200 puts cores of size ~1e200 into a cubic model: the first update overflows."""
    x, y = data()
    with pytest.raises(NumericalError, match="non-finite loss at step 1; lower the learning rate") as err:
        fit(start(), x, y, GradientDescent(optax.sgd(1e200)), max_steps=5, progress=False)
    assert err.value.step == 1 and err.value.core is None


def test_bad_solver_arguments():
    with pytest.raises(TypeError, match="optimizer must be a GradientTransformation"):
        GradientDescent("adam")
    with pytest.raises(ValueError, match="cg_maxiter must be >= 0"):
        ALS(cg_maxiter=-1)
    x, y = data()
    with pytest.raises(ValueError, match="DMRG needs at least two variables"):
        DMRG().init(FTT(constant_init(BASES[:1], 1, key=jax.random.key(0)), BASES[:1]), x[:, :1], y)


def test_a_sweep_that_cannot_fit_in_memory_is_refused_before_any_work():
    """rank 64, 64 basis functions: three (64·64·64)² Gram-sized float64 arrays are 1.65 TB."""
    bases = [Legendre(64)] * 3
    model = FTT(constant_init(bases, 64, dtype=jnp.float64, key=jax.random.key(0)), bases)
    x = jnp.zeros((200, 3))
    p = 64 * 64 * 64
    assert sweep_memory(model, 200) >= 3 * p * p * 8
    message = r"model: the arrays of one ALS step at ranks \(1, 64, 64, 1\).* need 1\.65e\+03 GB.*cg_maxiter=8"
    with pytest.raises(ValueError, match=message):
        fit(model, x, x[:, 0], ALS(), max_steps=1, progress=False)
    # matrix-free CGLS needs no Gram matrix: design rows of all 200 samples (a chunk) + interfaces, 0.4 GB
    assert sweep_memory(model, 200, cg_maxiter=8) == (200 * p + 2 * 200 * 64 * 3 + 200 * 64 * 64) * 8
    # DMRG up to rank 256: two-site supercores of 256·64·64·256 unknowns, matrix-free over 200 rows: 430 GB
    message = r"model: the arrays of one DMRG step at ranks .* need 4\d\d GB.*lower max_rank"
    with pytest.raises(ValueError, match=message):
        fit(FTT(constant_init(bases, 2, key=jax.random.key(0)), bases), x, x[:, 0], DMRG(max_rank=256),
            max_steps=1, progress=False)


def test_fit_under_jit_names_the_jittable_alternative():
    x, y = data()
    model = start()
    with pytest.raises(TypeError, match=r"solver.init\(model, x, y\).*solver.step"):
        jax.jit(lambda x, y: fit(model, x, y, ALS(), max_steps=1, progress=False)[1].loss)(x, y)


def test_a_fit_that_explains_nothing_warns():
    """Targets independent of the inputs: the model explains almost none of their variance, and the loop says so."""
    x, _ = data()
    noise = jax.random.normal(jax.random.key(5), (N,), jnp.float64)
    with pytest.warns(StalledFitWarning, match=r"ALS stopped \(max_steps\) at training residual .* of the variance of y"):
        _, result = fit(start(rank=1), x, noise, ALS(), max_steps=10, progress=False)
    assert result.train_residual[-1] > 0.9


def test_inputs_outside_the_domain_are_named_in_the_warning_and_in_a_numerical_error():
    """sin(x1 + … + x6) on [−π, π]⁶ with Legendre(16) on the default (−1, 1): the features reach ~3¹⁵."""
    x = jax.random.uniform(jax.random.key(0), (2000, 6), jnp.float32, minval=-np.pi, maxval=np.pi)
    bases = [Legendre(16)] * 6
    model = FTT(constant_init(bases, 2, dtype=jnp.float32, key=jax.random.key(1)), bases)
    domain = r"x\[:, 0\] leaves the domain \(-1, 1\) of basis 0 in 6\d\.\d% of the rows; .* and 4 more variables"
    with pytest.warns(UserWarning, match=domain), pytest.raises(NumericalError, match="bring the inputs into the bases"):
        fit(model, x, jnp.sin(x.sum(1)), ALS(), max_steps=3, progress=False)
