"""Predicted-x0 clipping in the DDPM and DDIM samplers (``clip_x0``) against numpy reference loops of the
clipped updates (Ho et al. 2020 eq. 7 with a clipped x0; DDIM with the re-derived noise), driven by an affine
noise model that throws the predicted data out of the box, with the step noise reproduced from the keys."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxtt.diffusion import ddim_sample, ddim_timesteps, ddpm_sample, linear_schedule

T = 12
BETAS = np.concatenate([[0.0], np.linspace(1e-3, 0.3, T)])
AB = np.cumprod(1.0 - BETAS)  # entry 0 is 1 (the data level)
SCHED = linear_schedule(T, 1e-3, 0.3)
N = 256
SHAPE = (N, 2)
BOX = (-1.0, 1.5)

# an affine noise model eps(x, t) = x W + b t / T whose predicted data leave BOX for many samples
W_BAD = 0.4 * np.array([[-0.9, 0.3], [-0.2, -0.7]])
B_BAD = 0.4 * np.array([1.5, -2.0])
# a milder one (smaller samples) for the comparisons with the unclipped samplers
W_MILD, B_MILD = 0.75 * W_BAD, 0.75 * B_BAD


def _eps_model(params, x, t):
    w, b = params
    return x @ w + b * (t[:, None].astype(x.dtype) / T)


def _eps_fn(w=W_BAD, b=B_BAD):
    return jax.tree_util.Partial(_eps_model, (jnp.asarray(w), jnp.asarray(b)))


def _np_eps(x, t, w=W_BAD, b=B_BAD):
    return x @ w + b * t / T


def _x_init(seed=0):
    return np.random.default_rng(seed).normal(size=SHAPE)


def _step_noise(key, n_steps, dtype=jnp.float64, shape=SHAPE):
    """The step noises z_i of the samplers: key -> (key_init, key_steps), key_steps -> one key per step."""
    _, key_steps = jax.random.split(key)
    return [np.asarray(jax.random.normal(k, shape, dtype=dtype)) for k in jax.random.split(key_steps, n_steps)]


def _np_ddpm(x, zs, box, variance, w=W_BAD, b=B_BAD):
    """Clipped DDPM: x0 = clip((x - sqrt(1-ab_t) eps) / sqrt(ab_t)), x <- mu~(x, x0) + sigma_t z (Ho et al. eq. 7).

    Returns the samples and, per step, the fraction of clipped coordinates."""
    active = []
    for z, t in zip(zs, range(T, 0, -1)):
        raw = (x - np.sqrt(1 - AB[t]) * _np_eps(x, t, w, b)) / np.sqrt(AB[t])
        x0 = raw if box is None else np.clip(raw, *box)
        active.append(np.mean(raw != x0))
        c0 = np.sqrt(AB[t - 1]) * BETAS[t] / (1 - AB[t])
        ct = np.sqrt(1 - BETAS[t]) * (1 - AB[t - 1]) / (1 - AB[t])
        var = BETAS[t] if variance == "beta" else (1 - AB[t - 1]) / (1 - AB[t]) * BETAS[t]
        x = c0 * x0 + ct * x + (np.sqrt(var) * z if t > 1 else 0.0)
    return x, np.array(active)


def _np_ddpm_eps_form(x, zs, variance, w, b):
    """Unclipped DDPM in its epsilon form (Ho et al. 2020, eq. 11)."""
    for z, t in zip(zs, range(T, 0, -1)):
        var = BETAS[t] if variance == "beta" else (1 - AB[t - 1]) / (1 - AB[t]) * BETAS[t]
        x = (x - BETAS[t] / np.sqrt(1 - AB[t]) * _np_eps(x, t, w, b)) / np.sqrt(1 - BETAS[t])
        x = x + (np.sqrt(var) * z if t > 1 else 0.0)
    return x


def _np_ddim(x, zs, box, steps, eta, w=W_BAD, b=B_BAD):
    """Clipped DDIM: x0 = clip(...), eps' = (x - sqrt(ab_t) x0) / sqrt(1 - ab_t),
    x_p = sqrt(ab_p) x0 + sqrt(1 - ab_p - s2) eps' + s z (Song et al. 2021 (DDIM), eq. 12, 16)."""
    taus = list(ddim_timesteps(T, steps)) + [0]
    active = []
    for z, t, p in zip(zs, taus[:-1], taus[1:]):
        eps = _np_eps(x, t, w, b)
        raw = (x - np.sqrt(1 - AB[t]) * eps) / np.sqrt(AB[t])
        x0 = raw if box is None else np.clip(raw, *box)
        active.append(np.mean(raw != x0))
        eps_c = (x - np.sqrt(AB[t]) * x0) / np.sqrt(1 - AB[t])
        s2 = eta**2 * (1 - AB[p]) / (1 - AB[t]) * (1 - AB[t] / AB[p])
        x = np.sqrt(AB[p]) * x0 + np.sqrt(max(1 - AB[p] - s2, 0.0)) * eps_c + np.sqrt(s2) * z
    return x, np.array(active)


def _assert_partly_clipped(active):
    """The clip acts at every step, the last one included, but leaves some coordinates alone."""
    assert active.min() > 0.1 and active.max() < 0.95


@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_ddpm_clipped_matches_numpy_reference(variance):
    key, x_init = jax.random.key(1), _x_init(1)
    got = ddpm_sample(_eps_fn(), SCHED, key, SHAPE, variance, x_init=jnp.asarray(x_init), clip_x0=BOX)
    want, active = _np_ddpm(x_init, _step_noise(key, T), BOX, variance)
    _assert_partly_clipped(active)
    np.testing.assert_allclose(np.asarray(got), want, rtol=0, atol=1e-10)


@pytest.mark.parametrize(("steps", "eta"), [(5, 0.0), (5, 0.6), (12, 1.0)])
def test_ddim_clipped_matches_numpy_reference(steps, eta):
    key, x_init = jax.random.key(2), _x_init(2)
    got = ddim_sample(_eps_fn(), SCHED, key, SHAPE, steps, eta, x_init=jnp.asarray(x_init), clip_x0=BOX)
    want, active = _np_ddim(x_init, _step_noise(key, steps), BOX, steps, eta)
    _assert_partly_clipped(active)
    np.testing.assert_allclose(np.asarray(got), want, rtol=0, atol=1e-10)


@pytest.mark.parametrize(("sampler", "clip_x0"), [("ddpm", 1.2), ("ddim_eta0", (0.25, 0.5)), ("ddim_eta1", 1.2)])
def test_samples_lie_in_the_box(sampler, clip_x0):
    lo, hi = (-clip_x0, clip_x0) if isinstance(clip_x0, float) else clip_x0
    key, x_init = jax.random.key(5), _x_init(5)
    if sampler == "ddpm":
        x = ddpm_sample(_eps_fn(), SCHED, key, SHAPE, x_init=jnp.asarray(x_init), clip_x0=clip_x0)
        free, _ = _np_ddpm(x_init, _step_noise(key, T), None, "beta")
    else:
        steps, eta = (5, 0.0) if sampler == "ddim_eta0" else (12, 1.0)
        x = ddim_sample(_eps_fn(), SCHED, key, SHAPE, steps, eta, x_init=jnp.asarray(x_init), clip_x0=clip_x0)
        free, _ = _np_ddim(x_init, _step_noise(key, steps), None, steps, eta)
    assert np.mean((free < lo) | (free > hi)) > 0.2  # without the clip many samples leave the box
    x = np.asarray(x)
    assert x.min() >= lo and x.max() <= hi
    assert np.mean((x == lo) | (x == hi)) < 0.9  # not every coordinate is pinned to a face


def test_no_clip_is_the_unclipped_sampler_exactly():
    key, x_init = jax.random.key(3), jnp.asarray(_x_init(3))
    eps_fn = _eps_fn(W_MILD, B_MILD)
    for variance in ("beta", "beta_tilde"):
        off = ddpm_sample(eps_fn, SCHED, key, SHAPE, variance, x_init=x_init, clip_x0=None)
        np.testing.assert_array_equal(off, ddpm_sample(eps_fn, SCHED, key, SHAPE, variance, x_init=x_init))
        want = _np_ddpm_eps_form(np.asarray(x_init), _step_noise(key, T), variance, W_MILD, B_MILD)
        np.testing.assert_allclose(np.asarray(off), want, rtol=0, atol=1e-11)
    for eta in (0.0, 0.6):
        off = ddim_sample(eps_fn, SCHED, key, SHAPE, 5, eta, x_init=x_init, clip_x0=None)
        np.testing.assert_array_equal(off, ddim_sample(eps_fn, SCHED, key, SHAPE, 5, eta, x_init=x_init))
        want, _ = _np_ddim(np.asarray(x_init), _step_noise(key, 5), None, 5, eta, W_MILD, B_MILD)
        np.testing.assert_allclose(np.asarray(off), want, rtol=0, atol=1e-11)


def test_inactive_clip_equals_unclipped_sampler():
    """A box that is never reached: the x0 form of DDPM and the re-derived noise of DDIM reduce to the
    epsilon-form updates up to rounding."""
    key, x_init = jax.random.key(4), jnp.asarray(_x_init(4))
    eps_fn = _eps_fn(W_MILD, B_MILD)
    for variance in ("beta", "beta_tilde"):
        a = ddpm_sample(eps_fn, SCHED, key, SHAPE, variance, x_init=x_init, clip_x0=1e8)
        b = ddpm_sample(eps_fn, SCHED, key, SHAPE, variance, x_init=x_init)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12 * float(jnp.max(jnp.abs(b))))
    for eta in (0.0, 0.6):
        a = ddim_sample(eps_fn, SCHED, key, SHAPE, 5, eta, x_init=x_init, clip_x0=(-1e8, 1e8))
        b = ddim_sample(eps_fn, SCHED, key, SHAPE, 5, eta, x_init=x_init)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12 * float(jnp.max(jnp.abs(b))))


def _objective(sampler, clip_x0, **kwargs):
    def f(params, x_init):
        eps_fn = jax.tree_util.Partial(_eps_model, params)
        x0 = sampler(eps_fn, SCHED, jax.random.key(0), x_init.shape, x_init=x_init, clip_x0=clip_x0, **kwargs)
        return jnp.sum(jnp.sin(x0) + 0.5 * x0**2)

    return f


GRAD_CASES = {
    "ddim_eta0": (ddim_sample, dict(steps=5)),
    "ddim_eta05": (ddim_sample, dict(steps=12, eta=0.5)),
    "ddpm": (ddpm_sample, {}),
}


@pytest.mark.parametrize("name", sorted(GRAD_CASES))
def test_gradient_through_clipped_sampler_matches_finite_differences(name):
    sampler, kwargs = GRAD_CASES[name]
    f = _objective(sampler, BOX, **kwargs)
    rng = np.random.default_rng(7)
    params = (jnp.asarray(W_BAD), jnp.asarray(B_BAD))
    x_init = jnp.asarray(rng.normal(size=(16, 2)))
    g_params, g_x = jax.jit(jax.grad(f, argnums=(0, 1)))(params, x_init)
    # the clip is active at every step (numpy reference on these inputs), so this is not the unclipped gradient
    if sampler is ddpm_sample:
        _, active = _np_ddpm(np.asarray(x_init), _step_noise(jax.random.key(0), T, shape=(16, 2)), BOX, "beta")
    else:
        steps, eta = kwargs["steps"], kwargs.get("eta", 0.0)
        noise = _step_noise(jax.random.key(0), steps, shape=(16, 2))
        _, active = _np_ddim(np.asarray(x_init), noise, BOX, steps, eta)
    assert active.min() > 0.1
    f_jit, h = jax.jit(f), 1e-6
    for _ in range(2):
        dp = (jnp.asarray(rng.normal(size=(2, 2))), jnp.asarray(rng.normal(size=(2,))))
        dx = jnp.asarray(rng.normal(size=(16, 2)))
        plus = f_jit(jax.tree.map(lambda p, d: p + h * d, params, dp), x_init + h * dx)
        minus = f_jit(jax.tree.map(lambda p, d: p - h * d, params, dp), x_init - h * dx)
        fd = (plus - minus) / (2 * h)
        analytic = sum(jnp.vdot(g, d) for g, d in zip(g_params, dp)) + jnp.vdot(g_x, dx)
        assert float(analytic) == pytest.approx(float(fd), rel=1e-6, abs=1e-8)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_float32_stays_float32(sampler):
    sched32 = linear_schedule(T, 1e-3, 0.3, dtype=jnp.float32)
    x_init, key = _x_init(6), jax.random.key(6)
    x32 = jnp.asarray(x_init, jnp.float32)
    if sampler == "ddpm":
        x = ddpm_sample(_eps_fn(), sched32, key, SHAPE, x_init=x32, clip_x0=BOX)
        want, _ = _np_ddpm(x_init, _step_noise(key, T, jnp.float32), BOX, "beta")
    else:
        x = ddim_sample(_eps_fn(), sched32, key, SHAPE, 5, x_init=x32, clip_x0=BOX)
        want, _ = _np_ddim(x_init, _step_noise(key, 5), BOX, 5, 0.0)
    assert x.dtype == jnp.float32
    assert float(x.min()) >= BOX[0] and float(x.max()) <= BOX[1]
    # float32 rounding can move a coordinate across a clip kink; nearly all agree with the float64 reference
    assert np.mean(np.abs(np.asarray(x, np.float64) - want) < 1e-4) > 0.98


def test_trajectory_checkpoint_jit_and_scalar_arrays():
    key, x_init = jax.random.key(8), jnp.asarray(_x_init(8))
    x0, traj = ddim_sample(_eps_fn(), SCHED, key, SHAPE, 5, 0.5, True, x_init=x_init, clip_x0=BOX)
    assert traj.shape == (6, *SHAPE)
    np.testing.assert_array_equal(traj[0], x_init)
    np.testing.assert_array_equal(traj[-1], x0)
    x0d, trajd = ddpm_sample(_eps_fn(), SCHED, key, SHAPE, "beta", True, x_init=x_init, clip_x0=BOX)
    assert trajd.shape == (T + 1, *SHAPE)
    np.testing.assert_array_equal(trajd[-1], x0d)
    unchecked = ddpm_sample(_eps_fn(), SCHED, key, SHAPE, x_init=x_init, clip_x0=BOX, checkpoint=False)
    np.testing.assert_allclose(unchecked, x0d, rtol=0, atol=1e-13)
    # inside a user's jit with traced noise-model parameters; 0-d arrays are accepted as bounds
    bounds = (np.float64(BOX[0]), jnp.asarray(BOX[1]))
    run = jax.jit(lambda w: ddim_sample(_eps_fn(w, B_BAD), SCHED, key, SHAPE, 5, 0.5, x_init=x_init, clip_x0=bounds))
    np.testing.assert_allclose(run(jnp.asarray(W_BAD)), x0, rtol=0, atol=1e-13)


BAD_VALUES = [0.0, -1.0, float("inf"), float("nan"), (1.0, 1.0), (2.0, 1.0), (0.0, float("inf")), (float("nan"), 1.0)]


@pytest.mark.parametrize("value", BAD_VALUES, ids=repr)
def test_bad_clip_x0_raises_value_error(value):
    with pytest.raises(ValueError, match="clip_x0"):
        ddpm_sample(_eps_fn(), SCHED, jax.random.key(0), SHAPE, clip_x0=value)
    with pytest.raises(ValueError, match="clip_x0"):
        ddim_sample(_eps_fn(), SCHED, jax.random.key(0), SHAPE, 5, clip_x0=value)


@pytest.mark.parametrize("value", ["1", (1.0, 2.0, 3.0), True, (0.0, "1")], ids=repr)
def test_malformed_clip_x0_raises_type_error(value):
    with pytest.raises(TypeError, match="clip_x0"):
        ddim_sample(_eps_fn(), SCHED, jax.random.key(0), SHAPE, 5, clip_x0=value)
    with pytest.raises(TypeError, match="clip_x0"):
        ddpm_sample(_eps_fn(), SCHED, jax.random.key(0), SHAPE, clip_x0=value)
