"""jaxtt.train.fit and jaxtt.checkpoint: training quality on a 2-D toy, EMA arithmetic, determinism and resume
identity, checkpoint integrity, TT training through fit, Flax interop, and clear errors on bad input."""

import os

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxtt.train as train_module
from jaxtt.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from jaxtt.diffusion import ddim_sample, ddpm_loss, linear_schedule
from jaxtt.errors import NumericalError
from jaxtt.metrics import mmd
from jaxtt.nn import Batched, ResNetMLP, SinusoidalEmbedding
from jaxtt.train import default_optimizer, fit

T = 100
MEANS = np.array([[1.5, 0.5], [-1.5, -0.5]])


def mixture(seed, n, dtype=np.float32):
    """Two-component Gaussian mixture in 2-D (means ±(1.5, 0.5), std 0.25)."""
    rng = np.random.default_rng(seed)
    return (MEANS[rng.integers(0, 2, n)] + 0.25 * rng.standard_normal((n, 2))).astype(dtype)


class Affine(eqx.Module):
    """A tiny batched noise model ``w * x + b * t / T`` (cheap to compile)."""

    w: jax.Array
    b: jax.Array

    def __call__(self, x, t):
        return x * self.w + self.b * (t[:, None] / T)


@pytest.fixture(scope="module")
def schedule():
    return linear_schedule(T, 1e-4, 0.2)


@pytest.fixture(scope="module")
def tiny():
    return Affine(jnp.full((2,), 0.5), jnp.zeros((2,)))


@pytest.fixture(scope="module")
def adam():
    return optax.adam(1e-2)


@pytest.fixture(scope="module")
def x_small():
    """Training data shared by the tests of the tiny model (same shape: one compilation of the training loop)."""
    return mixture(4, 128, np.float64)


def test_training_reduces_loss_and_ddim_samples_approach_data():
    """float32 end to end: ResNet-MLP on the 2-D mixture; the EMA model's DDIM samples are close in MMD."""
    sched = linear_schedule(T, 1e-4, 0.2, dtype=jnp.float32)
    x0, x_val, ref = mixture(0, 2048), mixture(1, 512), mixture(2, 512)
    model = Batched(ResNetMLP(2, 32, 2, key=jax.random.key(0), dtype=jnp.float32))
    steps = 1200
    result = fit(
        model, x0, sched, default_optimizer(steps, 3e-3), steps, 256, jax.random.key(1),
        ema_decay=0.99, x_val=x_val, log_every=300, progress=False,
    )  # fmt: skip
    history = result.history
    assert history["step"] == [300, 600, 900, 1200]
    assert set(history) == {"step", "train_loss", "val_loss", "time"}
    assert all(len(v) == 4 for v in history.values())
    assert np.all(np.diff(history["time"]) >= 0)
    # the exact optimum of L_simple for this mixture is about 0.158; an untrained model scores about 1
    assert history["train_loss"][-1] < 0.2 and history["val_loss"][-1] < 0.2
    assert history["val_loss"][-1] < 0.5 * history["val_loss"][0] or history["val_loss"][0] < 0.25
    leaves = jax.tree.leaves(eqx.filter(result.ema_model, eqx.is_inexact_array))
    assert all(leaf.dtype == jnp.float32 for leaf in leaves)
    samples = ddim_sample(result.ema_model, sched, jax.random.key(2), (512, 2), 25)
    assert samples.dtype == jnp.float32
    noise = jax.random.normal(jax.random.key(3), (512, 2), jnp.float32)
    mmd_model, mmd_noise = float(mmd(samples, ref)), float(mmd(noise, ref))
    assert mmd_noise > 0.3
    assert mmd_model < 0.05 * mmd_noise, (mmd_model, mmd_noise)


def test_ema_arithmetic(schedule, tiny, x_small, capsys):
    """An optimizer that adds 1 to every weight per step makes θ_k = θ_0 + k; compare with the closed form."""
    plus_one = optax.stateless(lambda grads, params: jax.tree.map(jnp.ones_like, grads))
    n, beta = 7, 0.8
    result = fit(tiny, x_small, schedule, plus_one, n, 16, jax.random.key(0), ema_decay=beta, progress=False)
    np.testing.assert_array_equal(result.model.w, np.asarray(tiny.w) + n)
    k = np.arange(1, n + 1)
    weights = (1 - beta) * beta ** (n - k) / (1 - beta**n)
    for ema_leaf, leaf in [(result.ema_model.w, tiny.w), (result.ema_model.b, tiny.b)]:
        expected = np.sum(weights[:, None] * (np.asarray(leaf)[None] + k[:, None]), axis=0)
        np.testing.assert_allclose(ema_leaf, expected, rtol=1e-13)
    # ema_decay = 0: the EMA model is the final model; the decay is traced, so this reuses the compilation
    result = fit(tiny, x_small, schedule, plus_one, n, 16, jax.random.key(0), ema_decay=0.0, log_every=2)
    np.testing.assert_array_equal(result.ema_model.w, result.model.w)
    assert "fit: 100%" in capsys.readouterr().err  # the tqdm progress bar
    assert result.history["step"] == [2, 4, 6, 7]


def test_deterministic_and_resume_is_bit_identical(schedule, tiny, adam, x_small, tmp_path, monkeypatch):
    x0 = x_small
    x_val = mixture(5, 32, np.float64)
    kwargs = dict(ema_decay=0.9, x_val=x_val, log_every=4, checkpoint_every=3, progress=False)
    full = fit(tiny, x0, schedule, adam, 12, 16, jax.random.key(7), checkpoint_path=tmp_path / "a.ckpt", **kwargs)

    # interrupt a second run right after its checkpoint at step 6 (between two logging points)
    real_save, saves = train_module.save_checkpoint, []

    def save_then_crash(*args):
        real_save(*args)
        saves.append(args[2]["step"])
        if len(saves) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "save_checkpoint", save_then_crash)
    path = tmp_path / "b.ckpt"
    with pytest.raises(KeyboardInterrupt):
        fit(tiny, x0, schedule, adam, 12, 16, jax.random.key(7), checkpoint_path=path, **kwargs)
    assert saves == [3, 6]
    monkeypatch.setattr(train_module, "save_checkpoint", real_save)
    resumed = fit(tiny, x0, schedule, adam, 12, 16, jax.random.key(7), checkpoint_path=path, resume=True, **kwargs)

    for a, b in zip(jax.tree.leaves(full[:3]), jax.tree.leaves(resumed[:3])):
        np.testing.assert_array_equal(a, b)
    for name in ("step", "train_loss", "val_loss"):
        assert full.history[name] == resumed.history[name]
    assert full.history["step"] == [4, 8, 12]
    assert not np.array_equal(full.model.w, tiny.w)
    # the final checkpoint holds the final state and history
    params = eqx.filter(tiny, eqx.is_inexact_array)
    state, meta = load_checkpoint(path, (params, adam.init(params), optax.ema(0.9).init(params)))
    np.testing.assert_array_equal(state[0].w, full.model.w)
    assert meta["step"] == 12 and meta["history"]["train_loss"] == full.history["train_loss"]
    # resuming a finished run returns it unchanged; resuming with another key is refused
    again = fit(tiny, x0, schedule, adam, 12, 16, jax.random.key(7), checkpoint_path=path, resume=True, **kwargs)
    np.testing.assert_array_equal(again.ema_model.b, full.ema_model.b)
    with pytest.raises(ValueError, match="different key"):
        fit(tiny, x0, schedule, adam, 12, 16, jax.random.key(8), checkpoint_path=path, resume=True, **kwargs)


def test_checkpoint_round_trip(tmp_path, adam):
    model = ResNetMLP(2, 8, 1, embed_dim=4, key=jax.random.key(0))
    params = eqx.filter(model, eqx.is_inexact_array)
    tree = (model, adam.init(params), jnp.arange(3))
    path = tmp_path / "ckpt"
    save_checkpoint(path, tree, {"step": 5, "history": {"loss": [1.5, 0.25]}})
    like = (ResNetMLP(2, 8, 1, embed_dim=4, key=jax.random.key(1)), adam.init(params), jnp.zeros(3, int))
    loaded, meta = load_checkpoint(path, like)
    assert meta == {"step": 5, "history": {"loss": [1.5, 0.25]}}
    assert jax.tree.structure(loaded) == jax.tree.structure(tree)
    for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(tree)):
        np.testing.assert_array_equal(a, b)
    assert os.listdir(tmp_path) == ["ckpt"]  # no temporary files left behind


def test_corrupted_or_truncated_checkpoint_is_detected(tmp_path, schedule, tiny, adam, x_small):
    path = tmp_path / "model.ckpt"
    tree = (jnp.arange(4.0), jnp.ones((2, 3)))
    save_checkpoint(path, tree, {"step": 1})
    good = path.read_bytes()

    def check(blob, match):
        path.write_bytes(blob)
        with pytest.raises(CheckpointError, match=match) as info:
            load_checkpoint(path, tree)
        assert str(path) in str(info.value)

    check(good[:-5], "truncated")
    check(good[:20], "truncated")
    flipped = bytearray(good)
    flipped[-3] ^= 0xFF
    check(bytes(flipped), "checksum")
    check(b"NOTACKPT" + good[8:], "not a jaxtt checkpoint")
    path.write_bytes(good)
    with pytest.raises(CheckpointError, match="does not match"):
        load_checkpoint(path, (jnp.arange(5.0), jnp.ones((2, 3))))
    with pytest.raises(CheckpointError, match="more leaves"):
        load_checkpoint(path, (jnp.arange(4.0),))

    # fit refuses to resume from a corrupted checkpoint, names it, and leaves it as it was
    path.write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match=str(path)):
        fit(tiny, x_small, schedule, adam, 4, 16, jax.random.key(0), checkpoint_path=path, resume=True)
    assert path.read_bytes() == bytes(flipped)


def test_failed_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "model.ckpt"
    save_checkpoint(path, (jnp.arange(3.0),), {"step": 1})
    good = path.read_bytes()

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="model.ckpt") as info:
        save_checkpoint(path, (jnp.arange(3.0) + 1,), {"step": 2})
    assert info.value.errno == 28
    monkeypatch.undo()
    assert path.read_bytes() == good
    assert os.listdir(tmp_path) == ["model.ckpt"]
    with pytest.raises(OSError, match="missing"):
        save_checkpoint(tmp_path / "missing" / "x.ckpt", (jnp.arange(3.0),))
    with pytest.raises(TypeError):
        save_checkpoint(path, (jnp.arange(3.0),), {"step": object()})
    assert path.read_bytes() == good


def test_fit_trains_ftt_denoiser_by_gradient_descent(schedule):
    """The FTT denoiser's cores are ordinary leaves, trained by Adam through fit."""
    from jaxtt.ftt import FTTDenoiser

    x0 = mixture(6, 1024)
    model = FTTDenoiser(2, T, rank=3, m=6, dtype=jnp.float32, key=jax.random.key(0))
    sched = linear_schedule(T, 1e-4, 0.2, dtype=jnp.float32)
    result = fit(model, x0, sched, optax.adam(1e-2), 300, 256, jax.random.key(1), log_every=100, progress=False)
    assert isinstance(result.model, FTTDenoiser)
    before = ddpm_loss(model, sched, jax.random.key(2), x0)
    after = ddpm_loss(result.ema_model, sched, jax.random.key(2), x0)
    assert float(after) < 0.5 * float(before), (float(before), float(after))
    assert result.history["train_loss"][-1] < 0.5 * result.history["train_loss"][0]


def test_flax_nnx_model_with_jaxtt_loss_and_sampler():
    """Users bring their own models: a Flax NNX MLP trained with jaxtt's loss and sampled with jaxtt's DDIM."""
    from flax import nnx

    class FlaxEps(nnx.Module):
        def __init__(self, rngs):
            self.embedding = SinusoidalEmbedding(8, T)
            self.hidden = nnx.Linear(2 + 8, 64, rngs=rngs)
            self.inner = nnx.Linear(64, 64, rngs=rngs)
            self.out = nnx.Linear(64, 2, rngs=rngs)

        def __call__(self, x, t):
            features = jnp.concatenate([x, jax.vmap(self.embedding)(t.astype(x.dtype))], axis=1)
            return self.out(nnx.silu(self.inner(nnx.silu(self.hidden(features)))))

    sched = linear_schedule(T, 1e-4, 0.2, dtype=jnp.float32)
    x0 = jnp.asarray(mixture(7, 2048))
    graphdef, params = nnx.split(FlaxEps(nnx.Rngs(0)))
    opt = optax.adam(optax.cosine_decay_schedule(3e-3, 800, alpha=0.05))

    def step(carry, key):
        params, opt_state = carry
        k_batch, k_loss = jax.random.split(key)
        batch = x0[jax.random.randint(k_batch, (256,), 0, x0.shape[0])]
        loss, grads = jax.value_and_grad(lambda p: ddpm_loss(nnx.merge(graphdef, p), sched, k_loss, batch))(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    keys = jax.random.split(jax.random.key(1), 800)
    (params, _), losses = jax.jit(lambda c, k: jax.lax.scan(step, c, k))((params, opt.init(params)), keys)
    assert float(losses[-100:].mean()) < 0.5 * float(losses[:20].mean())
    samples = ddim_sample(lambda x, t: nnx.merge(graphdef, params)(x, t), sched, jax.random.key(2), (512, 2), 25)
    ref = mixture(8, 512)
    noise = jax.random.normal(jax.random.key(3), (512, 2), jnp.float32)
    assert float(mmd(samples, ref)) < 0.1 * float(mmd(noise, ref))


def test_nonfinite_training_loss_raises(schedule, tiny, adam, x_small, tmp_path):
    diverged = Affine(jnp.full((2,), jnp.inf), tiny.b)
    path = tmp_path / "ckpt"
    with pytest.raises(NumericalError, match="non-finite in steps 0..3 at step 3; lower the learning rate") as err:
        fit(diverged, x_small, schedule, adam, 4, 16, jax.random.key(0), checkpoint_path=path, progress=False)
    assert isinstance(err.value, FloatingPointError) and err.value.step == 3
    assert not path.exists()  # nothing non-finite was checkpointed


def test_default_optimizer_schedule():
    """Warm-up from 0 over the first 5 % of the steps, then cosine decay: Adam's first steps move by ~lr."""
    opt = default_optimizer(40, learning_rate=1e-3, weight_decay=0.0)
    params = jnp.zeros(())
    state = opt.init(params)
    moves = []
    for _ in range(3):
        updates, state = opt.update(jnp.ones(()), state, params)
        moves.append(float(updates))
    np.testing.assert_allclose(moves, [0.0, -0.5e-3, -1e-3 * 0.5 * (1 + np.cos(np.pi * 0 / 38))], rtol=1e-4)
    with pytest.raises(ValueError, match="learning_rate"):
        default_optimizer(10, learning_rate=0.0)


def test_bad_input_is_rejected_with_clear_errors(schedule, tiny, adam, tmp_path):
    x0 = mixture(0, 16, np.float64)  # every call fails before training starts
    key = jax.random.key(0)

    def call(**overrides):
        args = dict(model=tiny, x0=x0, schedule=schedule, optimizer=adam, steps=2, batch_size=4, key=key)
        args.update(overrides)
        return fit(**args, progress=False)

    with pytest.raises(ValueError, match="batch_size"):
        call(batch_size=17)
    with pytest.raises(ValueError, match="steps"):
        call(steps=0)
    with pytest.raises(TypeError, match="steps"):
        call(steps=2.5)
    bad = x0.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="x0 must be finite"):
        call(x0=bad)
    with pytest.raises(ValueError, match="x_val must be finite"):
        call(x_val=bad)
    with pytest.raises(ValueError, match="x0"):
        call(x0=x0[:, 0])
    with pytest.raises(TypeError, match="x0"):
        call(x0=np.ones((4, 2), int))
    with pytest.raises(ValueError, match="event shape"):
        call(x_val=np.ones((4, 3)))
    with pytest.raises(ValueError, match="ema_decay"):
        call(ema_decay=1.0)
    with pytest.raises(TypeError, match="key"):
        call(key=None)
    with pytest.raises(TypeError, match="key"):
        call(key=0)
    with pytest.raises(TypeError, match="schedule"):
        call(schedule=np.linspace(0.1, 0.2, 5))
    with pytest.raises(TypeError, match="optimizer"):
        call(optimizer="adam")
    with pytest.raises(ValueError, match="Batched"):
        call(model=ResNetMLP(2, 8, 1, embed_dim=4, key=key))
    with pytest.raises(ValueError, match="does not exist"):
        call(checkpoint_path=tmp_path / "missing" / "ckpt")
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="does not exist"):
        call(checkpoint_path=tmp_path / "file" / "ckpt")
    with pytest.raises(ValueError, match="is a directory"):
        call(checkpoint_path=tmp_path)
    with pytest.raises(ValueError, match="checkpoint_every"):
        call(checkpoint_every=0, checkpoint_path=tmp_path / "ckpt")


def test_models_holding_functions_train_with_a_custom_loss():
    """An eqx.nn.MLP holds its activation function as a leaf: the loss check must not refuse it."""
    mlp = eqx.nn.MLP(2, 1, 8, 1, key=jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (256, 2))
    rows = jnp.concatenate([x, (x[:, :1] - 0.5 * x[:, 1:])], axis=1)     # a linear target, which the MLP can fit

    def loss(model, key, batch):
        return jnp.mean((jax.vmap(model)(batch[:, :2])[:, 0] - batch[:, 2]) ** 2)

    result = fit(mlp, rows, None, optax.adam(1e-2), steps=200, batch_size=64, key=jax.random.key(2), loss=loss,
                 ema_decay=0.0, progress=False)
    assert float(loss(result.model, None, rows)) < 0.2 * float(loss(mlp, None, rows))
