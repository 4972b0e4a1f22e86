"""Bad and unusual input across the public API: each case ends in a clear error naming the argument (checked
by type and message) or in a correct result, so none of them can come back."""

import os
import stat

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxtt import tt
from jaxtt.basis import BSpline, Indicator, Legendre
from jaxtt.checkpoint import CheckpointError, checkpoint_metadata, load_checkpoint, save_checkpoint
from jaxtt.data import GaussianMixture, moons
from jaxtt.diffusion import (
    DDIM,
    cosine_schedule,
    ddim_sample,
    ddpm_loss,
    interpolant,
    linear_schedule,
    log_likelihood,
    q_sample,
    sample,
    vlb,
)
from jaxtt.ftt import FTT, FTTDenoiser, constant_init
from jaxtt.metrics import energy_distance, mmd, sliced_wasserstein
from jaxtt.nn import ResNetMLP, UNet
from jaxtt.sharding import data_mesh
from jaxtt.solvers import ALS, als_sweep, coarse_to_fine, fit, fit_regression, resize_bases, sweep_memory

KEY = jax.random.key(0)


# --- checkpoints -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_checkpoint_respects_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        save_checkpoint(tmp_path / "a.ckpt", {"w": jnp.ones(2)})
        save_checkpoint(tmp_path / "a.ckpt", {"w": jnp.zeros(2)})  # replacing keeps the rule
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "a.ckpt").st_mode) == 0o666 & ~mask


def test_checkpoint_refuses_to_replace_a_read_only_file(tmp_path):
    path = tmp_path / "a.ckpt"
    save_checkpoint(path, {"w": jnp.ones(2)}, {"step": 1})
    os.chmod(path, 0o444)
    before = path.read_bytes()
    with pytest.raises(PermissionError, match=f"{path}.*read-only"):
        save_checkpoint(path, {"w": jnp.zeros(2)}, {"step": 2})
    assert path.read_bytes() == before
    assert not [p for p in os.listdir(tmp_path) if p != "a.ckpt"]  # no temporary file left behind
    tree, meta = load_checkpoint(path, {"w": jnp.zeros(2)})
    assert meta == {"step": 1} and tree["w"].tolist() == [1.0, 1.0]


def test_checkpoint_matches_leaves_by_path_not_position(tmp_path):
    path = tmp_path / "a.ckpt"
    save_checkpoint(path, {"a": jnp.arange(2.0), "b": jnp.arange(3.0)})
    # same number, shapes and order of leaves, other keys: refused with the paths that differ
    with pytest.raises(CheckpointError, match=r"in `like` but not in the file: \['c'\]") as info:
        load_checkpoint(path, {"a": jnp.zeros(2), "c": jnp.zeros(3)})
    assert "['c']" in str(info.value) and "['b']" in str(info.value) and str(path) in str(info.value)
    # same key, another shape: names the path and both shapes
    with pytest.raises(CheckpointError, match=r"\['b'\] is float\w*\[3\] in the file but float\w*\[4\]"):
        load_checkpoint(path, {"a": jnp.zeros(2), "b": jnp.zeros(4)})
    tree, _ = load_checkpoint(path, {"a": jnp.zeros(2), "b": jnp.zeros(3)})
    assert tree["b"].tolist() == [0.0, 1.0, 2.0]


def test_checkpoint_of_format_1_still_loads_by_position(tmp_path):
    import hashlib
    import io
    import json
    import struct

    tree = {"w": jnp.arange(3.0)}
    leaves = io.BytesIO()
    eqx.tree_serialise_leaves(leaves, tree)
    meta, data = json.dumps({"step": 4}).encode(), leaves.getvalue()
    header = struct.pack("<8sIQQ32s", b"JAXTTCKP", 1, len(meta), len(data), hashlib.sha256(meta + data).digest())
    (tmp_path / "old.ckpt").write_bytes(header + meta + data)
    loaded, metadata = load_checkpoint(tmp_path / "old.ckpt", {"w": jnp.zeros(3)})
    assert metadata == {"step": 4} and loaded["w"].tolist() == [0.0, 1.0, 2.0]


# --- tensor trains ---------------------------------------------------------------------------------------------


def test_round_of_a_one_core_train_with_eps():
    a = tt.random(KEY, (5,), 1)
    for eps in (0.0, 0.3):
        out = tt.round(a, eps=eps)
        assert out.ranks == (1, 1)
        np.testing.assert_array_equal(tt.full(out), tt.full(a))


def test_full_and_get_of_a_batch_of_trains_give_each_member():
    keys = jax.random.split(KEY, 3)
    batch = jax.vmap(lambda k: tt.random(k, (2, 3, 4), 2))(keys)
    members = [tt.TensorTrain([c[b] for c in batch.cores]) for b in range(3)]
    np.testing.assert_allclose(tt.full(batch), np.stack([tt.full(m) for m in members]), rtol=1e-12)
    idx = jnp.array([[0, 1, 2], [1, 2, 3], [1, 0, 0]])
    np.testing.assert_allclose(tt.get(batch, idx), np.stack([tt.get(m, idx) for m in members], axis=-1),
                               rtol=1e-12)
    dense = np.stack([tt.full(m) for m in members])
    np.testing.assert_allclose(tt.get(batch, idx)[:, 1], dense[1][tuple(np.asarray(idx).T)], rtol=1e-12)


@pytest.mark.parametrize("op, name", [
    (lambda b: tt.norm(b), "tt"), (lambda b: tt.inner(b, b), "a"), (lambda b: tt.add(b, b), "a"),
    (lambda b: tt.hadamard(b, b), "a"), (lambda b: tt.scale(b, 2.0), "tt"), (lambda b: tt.round(b, 1), "tt"),
    (lambda b: tt.round(b, eps=0.1), "tt"), (lambda b: tt.orthogonalize(b), "tt"),
    (lambda b: tt.contract_rank1(b, [jnp.ones((5, n)) for n in (2, 3, 4)]), "tt"),
])
def test_other_ops_on_a_batch_of_trains_say_to_vmap(op, name):
    batch = jax.vmap(lambda k: tt.random(k, (2, 3, 4), 2))(jax.random.split(KEY, 3))
    with pytest.raises(ValueError, match=rf"{name} is a batch of tensor trains .* map it over the batch with jax.vmap"):
        op(batch)


@pytest.mark.parametrize("make", [
    lambda dtype: ResNetMLP(2, 4, 1, dtype=dtype, key=KEY),
    lambda dtype: tt.random(KEY, (2, 3), 2, dtype=dtype),
    lambda dtype: tt.zeros((2, 3), 2, dtype=dtype),
    lambda dtype: constant_init([Legendre(3)] * 2, 2, dtype=dtype, key=KEY),
    lambda dtype: FTTDenoiser(2, 10, rank=2, m=3, dtype=dtype, key=KEY),
])
@pytest.mark.parametrize("dtype", [jnp.int32, "int64", bool])
def test_integer_dtypes_are_refused_naming_dtype(make, dtype):
    with pytest.raises(TypeError, match="dtype must be a floating dtype"):
        make(dtype)


@pytest.mark.parametrize("key", [0, None, 1.5, np.zeros(3, np.uint32)])
@pytest.mark.parametrize("make", [
    lambda key: ResNetMLP(2, 4, 1, key=key),
    lambda key: UNet(1, key=key),
    lambda key: tt.random(key, (2, 3), 2),
    lambda key: constant_init([Legendre(3)] * 2, 2, key=key),
    lambda key: FTTDenoiser(2, 10, rank=2, m=3, key=key),
    lambda key: sliced_wasserstein(key, jnp.ones((3, 2)), jnp.zeros((3, 2))),
])
def test_bad_keys_are_refused_naming_key(make, key):
    with pytest.raises(TypeError, match="key must be a single JAX PRNG key"):
        make(key)


@pytest.mark.parametrize("shape", [(0, 3), (3, 0), (2, 0, 2)])
def test_from_dense_of_an_empty_array(shape):
    with pytest.raises(ValueError, match=r"x must not have an empty axis"):
        tt.from_dense(jnp.zeros(shape))


def test_norm_of_a_long_train_is_finite_and_right():
    base = tt.random(KEY, (2,) * 200, 2, dtype=jnp.float64)
    # independent value of the base norm: plain transfer matrices in NumPy (no overflow at this scale)
    w = np.ones((1, 1))
    for c in base.cores:
        c = np.asarray(c)
        w = np.einsum("ab,aic,bid->cd", w, c, c)
    norm0 = np.sqrt(w[0, 0])
    big = tt.TensorTrain([10.0 * c for c in base.cores])  # ‖big‖ = 1e200 ‖base‖; ‖big‖² = 1e400 overflows
    assert float(tt.norm(big)) == pytest.approx(1e200 * norm0, rel=1e-10)
    # float32: the norm 2**100 is representable although its square is not
    x = tt.rank_one([jnp.array([1.2, 1.6], jnp.float32)] * 100)
    assert float(tt.norm(x)) == pytest.approx(2.0**100, rel=1e-4)
    assert np.isinf(float(tt.inner(x, x)))  # the inner product itself is out of float32's range: inf, not NaN


def test_random_refuses_cores_that_cannot_fit_in_memory():
    with pytest.raises(ValueError, match=r"ranks: .* need .* GB, more than .*feasible_ranks"):
        tt.random(KEY, (10,) * 5, 10**5)
    assert tt.random(KEY, (2, 2, 2), 3).ranks == (1, 3, 3, 1)  # redundant but small ranks stay allowed


# --- metrics ---------------------------------------------------------------------------------------------------

def _samples(dtype=jnp.float32):
    x = jax.random.normal(jax.random.key(1), (40, 2), dtype)
    return x, jax.random.normal(jax.random.key(2), (30, 2), dtype) + 0.5


@pytest.mark.parametrize("c", [1e20, 1e-20])
def test_metrics_of_huge_or_tiny_samples_are_finite_and_scale_exactly(c):
    x, y = _samples()
    assert float(mmd(c * x, c * y)) == pytest.approx(float(mmd(x, y)), rel=1e-4)
    assert float(mmd(c * x, c * y, jnp.array([c]))) == pytest.approx(float(mmd(x, y, jnp.array([1.0]))), rel=1e-4)
    assert float(sliced_wasserstein(KEY, c * x, c * y)) == pytest.approx(c * float(sliced_wasserstein(KEY, x, y)),
                                                                         rel=1e-4)
    assert float(energy_distance(c * x, c * y)) == pytest.approx(c**0.5 * float(energy_distance(x, y)), rel=1e-4)


def test_mmd_gradients_exact_with_bandwidths_and_at_fixed_median_by_default():
    x, y = _samples(jnp.float64)
    direction = jax.random.normal(jax.random.key(3), x.shape, jnp.float64)

    def fd(f, h=1e-5):
        return (f(x + h * direction) - f(x - h * direction)) / (2 * h)

    # the default bandwidths: multiples of the median distance of the pooled sample (recomputed here)
    pooled = np.concatenate([np.asarray(x), np.asarray(y)])
    d = np.sqrt(((pooled[:, None] - pooled[None]) ** 2).sum(-1))
    bw = jnp.asarray(np.median(d[~np.eye(len(pooled), dtype=bool)]) * np.array([0.25, 0.5, 1.0, 2.0, 4.0]))
    assert float(mmd(x, y)) == pytest.approx(float(mmd(x, y, bw)), rel=1e-12)
    # given bandwidths: the gradient is exact (matches central differences)
    fixed = jnp.vdot(jax.grad(lambda a: mmd(a, y, bw))(x), direction)
    assert float(fixed) == pytest.approx(float(fd(lambda a: mmd(a, y, bw))), rel=1e-6)
    # default: the median is held constant under grad, so the gradient is the one at fixed bandwidths
    default = jnp.vdot(jax.grad(lambda a: mmd(a, y))(x), direction)
    assert float(default) == pytest.approx(float(fixed), rel=1e-10)
    assert abs(float(default) - float(fd(lambda a: mmd(a, y)))) > 1e-3 * abs(float(default))


# --- FTT denoiser ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def model():
    return FTTDenoiser(2, 100, rank=2, m=4, key=KEY)  # every model below has these mode sizes: built once


@pytest.mark.parametrize("t, match", [
    (jnp.full(3, 500), r"t must lie in 1..T = 1..100, got values in \[500, 500\]"),
    (jnp.full(3, -3), r"t must lie in 1..T = 1..100"),
    (jnp.array([0, 1, 2]), r"t must lie in 1..T"),
    (jnp.array([1.0, jnp.nan, 3.0]), r"t must be finite"),
    (jnp.array([0.1, 0.5, 1.0]), r"t holds real values in \(0, 1\] .* pass t \* 100"),
    (jnp.array([50.0, 100.5, 3.0]), r"real t must lie in \(0, T\] = \(0, 100\]"),
    (jnp.array([True, False, True]), r"t must be an integer"),
])
def test_denoiser_checks_t(model, t, match):
    with pytest.raises((ValueError, TypeError), match=match):
        model(jnp.zeros((3, 2)), t)


def test_denoiser_accepts_real_steps_in_range_and_traced_t(model):
    x = jnp.zeros((3, 2))
    out = model(x, jnp.array([50.5, 1.0, 100.0]))
    np.testing.assert_allclose(out[1], model(x, jnp.array([1, 1, 1]))[1], rtol=1e-12)
    # under jit nothing is value-checked and nothing breaks
    call = eqx.filter_jit(lambda m, x, t: m(x, t))
    np.testing.assert_allclose(call(model, x, jnp.array([5, 6, 7])), model(x, jnp.array([5, 6, 7])), rtol=1e-12)


def test_denoiser_warns_once_with_the_fraction_clamped(model):
    x = jnp.zeros((10, 2)).at[:3, 0].set(9.0)  # 3 of 20 entries outside (-4, 4)
    t = jnp.full(10, 5)
    with pytest.warns(UserWarning, match=r"15 % of the entries of x lie outside the domain") as record:
        clamped = model(x, t)
    assert len(record) == 1 and "standardize" in str(record[0].message)
    np.testing.assert_allclose(clamped, model(x.at[:3, 0].set(4.0), t), rtol=1e-12)  # it is clamping
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model(jnp.zeros((10, 2)), t)  # inside the domain: no warning
        eqx.filter_jit(lambda m, x, t: m(x, t))(model, x, t)  # traced: no check, no warning


def test_fitting_unstandardized_data_warns(model):
    # fit_denoiser builds its regression rows with regression_data, which evaluates the model's variables
    from jaxtt.diffusion import training_triples
    from jaxtt.solvers.denoiser import regression_data

    x0 = 10.0 + jax.random.normal(jax.random.key(4), (64, 2))
    with pytest.warns(UserWarning, match=r"of the entries of x lie outside the domain"):
        regression_data(model, *training_triples(KEY, x0, linear_schedule(100), 1))


def test_denoiser_takes_a_basis_object(model):
    basis = Legendre(4, domain=(-3.0, 3.0), orthonormal=True)
    own = FTTDenoiser(2, 100, rank=2, basis=basis, key=KEY)
    assert own.ftt.bases[:2] == (basis, basis)
    assert own.ftt.bases[2] == Legendre(4, domain=(0.0, 1.0), orthonormal=True)
    x, t = jnp.array([[0.3, -1.2]]), jnp.array([40])
    np.testing.assert_allclose(own(x, t)[0, 0], own.ftt(jnp.array([[0.3, -1.2, 0.4]]))[0, 0], rtol=1e-12)
    spline = FTTDenoiser(2, 100, rank=2, basis=BSpline(4, degree=3, domain=(-4.0, 4.0)), key=KEY)
    assert spline.ftt.bases[2] == BSpline(4, degree=3, domain=(0.0, 1.0))
    with pytest.raises(ValueError, match="m = 8 differs from the m = 4 of the basis object"):
        FTTDenoiser(2, 50, m=8, basis=basis, key=KEY)
    with pytest.raises(ValueError, match="domain = .* differs from the domain"):
        FTTDenoiser(2, 50, domain=(-4.0, 4.0), basis=basis, key=KEY)
    with pytest.raises(TypeError, match="basis must be a basis of real inputs"):
        FTTDenoiser(2, 50, basis=Indicator(3), key=KEY)
    with pytest.raises(TypeError, match="basis must be a family name"):
        FTTDenoiser(2, 50, basis=3, key=KEY)


# --- the package and the diffusion entry points ---------------------------------------------------------------

def test_import_jaxtt_then_use_a_subpackage_and_read_its_help():
    import subprocess
    import sys

    code = ("import jaxtt, sys\nassert 'jaxtt.diffusion' not in sys.modules\n"
            "print(jaxtt.diffusion.linear_schedule(10).T, jaxtt.tt.TensorTrain.__name__)\n"
            "print('jaxtt.diffusion' in jaxtt.__doc__ and 'jaxtt train' in jaxtt.__doc__, 'diffusion' in dir(jaxtt))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.stdout.split() == ["10", "TensorTrain", "True", "True"], run.stderr
    import jaxtt
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        jaxtt.nope


def test_samplers_losses_and_fit_refuse_a_model_built_for_another_T():
    from jaxtt.train import fit

    model = FTTDenoiser(2, 1000, rank=2, m=4, key=KEY)
    schedule = linear_schedule(500)
    x0 = jax.random.normal(KEY, (16, 2))
    match = r"model was built for T = 1000 steps, but the schedule has T = 500"
    with pytest.raises(ValueError, match=match):
        ddim_sample(model, schedule, KEY, (4, 2), steps=10)
    with pytest.raises(ValueError, match=match):
        sample(model, schedule, DDIM(steps=10), KEY, (4, 2))
    with pytest.raises(ValueError, match=match):
        ddpm_loss(model, schedule, KEY, x0)
    with pytest.raises(ValueError, match=match):
        fit(model, x0, schedule, steps=1, batch_size=4, key=KEY, progress=False)


def test_traced_clip_x0_under_jit_is_a_clear_type_error(model):
    with pytest.raises(TypeError, match="clip_x0 must be concrete numbers, not traced values"):
        jax.jit(lambda c: ddim_sample(model, linear_schedule(100), KEY, (4, 2), steps=5, clip_x0=c))(2.0)


def test_empty_batches_are_refused(model):
    schedule, empty = linear_schedule(100), jnp.zeros((0, 2))
    with pytest.raises(ValueError, match=r"x0 must hold at least one row"):
        ddpm_loss(model, schedule, KEY, empty)
    with pytest.raises(ValueError, match=r"x0 must hold at least one row"):
        vlb(model, schedule, empty, KEY)
    with pytest.raises(ValueError, match=r"x must hold at least one row"):
        log_likelihood(model, schedule, empty, KEY)


def test_training_refuses_a_read_only_checkpoint_before_it_trains(tmp_path):
    """The refusal used to come at the first save, after a chunk of training."""
    from jaxtt.nn import Batched
    from jaxtt.train import fit

    path = tmp_path / "run.ckpt"
    save_checkpoint(path, {"w": jnp.ones(2)})
    os.chmod(path, 0o444)
    net = Batched(ResNetMLP(2, 8, 1, key=jax.random.key(0), time_scale=50.0))
    x0 = jax.random.normal(jax.random.key(1), (64, 2))
    with pytest.raises(PermissionError, match="read-only"):
        fit(net, x0, linear_schedule(50), steps=5, batch_size=16, key=jax.random.key(2), checkpoint_path=path,
            progress=False)


# --- cases found by benchmarks/bad_input_sweep.py --------------------------------------------------------------

@pytest.mark.parametrize("call, error, match", [
    (lambda: save_checkpoint(3, {"w": jnp.ones(2)}), TypeError, "path must be a str or os.PathLike"),
    (lambda: save_checkpoint("", {"w": jnp.ones(2)}), ValueError, "path must be a non-empty file name"),
    (lambda: load_checkpoint(3, {"w": jnp.ones(2)}), TypeError, "path must be a str or os.PathLike"),
    (lambda: checkpoint_metadata(None), TypeError, "path must be a str or os.PathLike"),
])
def test_checkpoint_paths_of_the_wrong_type_are_named(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("metadata", ["str", 3, [1, 2]])
def test_checkpoint_metadata_must_be_a_dict(tmp_path, metadata):
    with pytest.raises(TypeError, match="metadata must be a dict"):
        save_checkpoint(tmp_path / "a.ckpt", {"w": jnp.ones(2)}, metadata)
    assert not list(tmp_path.iterdir())  # refused before anything was written


@pytest.mark.parametrize("bases, error, match", [
    (None, TypeError, r"bases must be a sequence of jaxtt.basis.Basis"),
    (3, TypeError, r"bases must be a sequence of jaxtt.basis.Basis"),
    ("str", TypeError, r"bases must be a sequence of jaxtt.basis.Basis"),
    ([Legendre(3), "x"], TypeError, r"bases\[1\] must be a jaxtt.basis.Basis"),
])
def test_ftt_and_constant_init_name_bad_bases(bases, error, match):
    with pytest.raises(error, match=match):
        constant_init(bases, 2, key=KEY)
    with pytest.raises(error, match=match):
        FTT(tt.random(KEY, (3, 3), 2), bases)


def test_constant_init_refuses_ranks_that_cannot_fit_in_memory():
    """Rank 10⁶ on three modes of 3 functions: 2.4·10¹³ bytes of cores, refused before any allocation."""
    with pytest.raises(ValueError, match=r"ranks: the cores of ranks .* need .* GB.*lower the ranks"):
        constant_init([Legendre(3)] * 3, 10**6, key=KEY)


def test_rank_one_scale_and_data_mesh_name_their_arguments():
    with pytest.raises(TypeError, match="vectors must be a sequence of 1-D arrays"):
        tt.rank_one("str")
    with pytest.raises(ValueError, match=r"vectors\[1\] must have 1 dimensions"):
        tt.rank_one([jnp.ones(2), jnp.ones((2, 2))])
    a = tt.random(KEY, (2, 3), 2)
    for alpha in ("0.1", None):
        with pytest.raises(TypeError, match="alpha must be a real scalar"):
            tt.scale(a, alpha)
    for alpha in (np.nan, np.inf):
        with pytest.raises(ValueError, match="alpha must be finite"):
            tt.scale(a, alpha)
    traced = jax.jit(lambda s: tt.full(tt.scale(a, s)))(3.0)  # a traced alpha is not checked, and works
    np.testing.assert_allclose(traced, 3.0 * tt.full(a), rtol=1e-6)
    np.testing.assert_allclose(tt.full(tt.scale(a, np.float64(-2.0))), -2.0 * tt.full(a), rtol=1e-6)
    with pytest.raises(TypeError, match="devices must be a sequence of jax devices"):
        data_mesh(3)
    with pytest.raises(TypeError, match="devices must be a sequence of jax devices"):
        data_mesh("str")
    with pytest.raises(TypeError, match=r"devices\[0\] must be a jax device"):
        data_mesh(["cpu"])
    assert data_mesh(jax.devices()[:1]).shape == {"data": 1}


@pytest.mark.parametrize("make", [
    lambda: FTTDenoiser(2, 10, rank=2, m=3, key=KEY)(jnp.zeros((3, 2)), jnp.ones(3, jnp.complex64)),
    lambda: q_sample(linear_schedule(10), jnp.zeros((3, 2)), jnp.ones(3, jnp.complex64), jnp.zeros((3, 2))),
    lambda: GaussianMixture(jnp.ones(2, jnp.complex64), jnp.zeros((2, 2)), jnp.stack([jnp.eye(2)] * 2)),
])
def test_complex_arrays_are_refused_not_cast(make):
    """JAX would drop the imaginary part (or fail in floor); the real-valued API refuses complex input."""
    with pytest.raises(TypeError, match=r"(t|weights) must be a real array, got dtype complex64"):
        make()


@pytest.mark.parametrize("make", [
    lambda dtype: linear_schedule(10, dtype=dtype),
    lambda dtype: cosine_schedule(10, dtype=dtype),
    lambda dtype: moons(KEY, 8, dtype=dtype),
])
@pytest.mark.parametrize("dtype", ["nope", jnp.int32])
def test_schedules_and_toy_data_name_a_bad_dtype(make, dtype):
    with pytest.raises(TypeError, match="dtype must be a floating dtype"):
        make(dtype)


def test_ddim_takes_numpy_integer_steps_and_names_a_bad_eta():
    """np.int64 steps used to be traced and fail in a boolean conversion; now they equal the int."""
    schedule, eps = linear_schedule(10), (lambda x, t: 0.1 * x)
    np.testing.assert_array_equal(ddim_sample(eps, schedule, KEY, (4, 2), np.int64(5)),
                                  ddim_sample(eps, schedule, KEY, (4, 2), 5))
    assert DDIM(steps=np.int64(5)).steps == 5 and type(DDIM(steps=np.int64(5)).steps) is int
    for eta in ("0.1", None, [0.5]):
        with pytest.raises(TypeError, match="eta must be a real scalar"):
            DDIM(steps=5, eta=eta)


def test_interpolant_refuses_non_finite_s():
    x0 = jnp.zeros((3, 2))
    with pytest.raises(ValueError, match="s must be finite"):
        interpolant(x0, x0 + 1, jnp.array([0.5, jnp.nan, 0.5]))
    np.testing.assert_allclose(interpolant(x0, x0 + 1, jnp.array([0.0, 0.25, 1.0])),
                               np.array([[0.0, 0.0], [0.25, 0.25], [1.0, 1.0]]))


@pytest.mark.parametrize("call, error, match", [
    (lambda m: resize_bases(None, 3), TypeError, "model must be a FTT"),
    (lambda m: resize_bases(m, 2.5), TypeError, "sizes must be a sequence of basis sizes"),
    (lambda m: resize_bases(m, None), TypeError, "sizes must be a sequence of basis sizes"),
    (lambda m: coarse_to_fine(m, jnp.zeros((4, 2)), jnp.zeros(4), levels=3), TypeError,
     "levels must be a sequence of basis sizes"),
    (lambda m: fit(m, jnp.zeros((4, 2)), jnp.zeros(4), ALS(), max_steps=1, progress="yes"), TypeError,
     "progress must be"),
    (lambda m: fit(m, jnp.zeros((4, 2)), jnp.zeros(4), ALS(), max_steps=1, restart=None), TypeError,
     "restart must be"),
])
def test_fit_and_coarse_to_fine_name_their_arguments(call, error, match):
    bases = [Legendre(4)] * 2
    with pytest.raises(error, match=match):
        call(FTT(constant_init(bases, 2, key=KEY), bases))


def test_resize_bases_takes_a_numpy_integer():
    bases = [Legendre(4)] * 2
    model = FTT(constant_init(bases, 2, noise=0.5, key=KEY), bases)
    assert [b.m for b in resize_bases(model, np.int64(6)).bases] == [6, 6]


@pytest.mark.parametrize("call, error, match", [
    (lambda m, x, y: als_sweep(None, x, y), TypeError, "model must be a FTT"),
    (lambda m, x, y: als_sweep(m, x, y, reg=-1.0), ValueError, "reg must be >= 0"),
    (lambda m, x, y: als_sweep(m, x, y, reg=float("nan")), ValueError, "reg must be finite"),
    (lambda m, x, y: als_sweep(m, x, y, reg="0.1"), TypeError, "reg must be a real number"),
    (lambda m, x, y: als_sweep(m, x, y, reg=jnp.asarray(-1.0)), ValueError, "reg must be >= 0"),
    (lambda m, x, y: als_sweep(m, x, y, chunk_size=0), ValueError, "chunk_size must be >= 1"),
    (lambda m, x, y: als_sweep(m, x, y, chunk_size=True), TypeError, "chunk_size must be an integer"),
    (lambda m, x, y: sweep_memory("model", 10), TypeError, "model must be a FTT"),
    (lambda m, x, y: sweep_memory(m, 0), ValueError, "n must be >= 1"),
    (lambda m, x, y: sweep_memory(m, 2.5), TypeError, "n must be an integer"),
])
def test_als_sweep_and_sweep_memory_name_their_arguments(call, error, match):
    bases = [Legendre(3)] * 2
    model = FTT(constant_init(bases, 2, key=KEY), bases)
    x = jax.random.uniform(KEY, (20, 2), minval=-1, maxval=1)
    with pytest.raises(error, match=match):
        call(model, x, x[:, 0] * x[:, 1])


def test_als_sweep_under_jit_takes_a_traced_reg():
    bases = [Legendre(3)] * 2
    model = FTT(constant_init(bases, 2, key=KEY), bases)
    x = jax.random.uniform(KEY, (50, 2), minval=-1, maxval=1)
    y = x[:, 0] * x[:, 1]
    traced, _ = jax.jit(lambda reg: als_sweep(model, x, y, reg=reg))(jnp.asarray(1e-3))
    concrete, _ = als_sweep(model, x, y, reg=1e-3)
    np.testing.assert_allclose(traced(x), concrete(x), atol=1e-10)


def test_fit_regression_names_x_t():
    model = FTTDenoiser(2, 10, rank=2, m=3, key=KEY)
    with pytest.raises(ValueError, match="x_t must have shape"):
        fit_regression(model, jnp.zeros((4, 3)), jnp.ones(4, int), jnp.zeros((4, 3)))
    with pytest.raises(ValueError, match="x_t must be finite"):
        fit_regression(model, jnp.full((4, 2), jnp.nan), jnp.ones(4, int), jnp.zeros((4, 2)))
