"""The sampler core: every update formula against a NumPy transcription of the published equations, the pure
init/step API inside jit/scan/vmap, timestep grids, parameterizations, float32 numerics on long schedules and
the non-finite check."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxtt.diffusion import (
    DDIM,
    DDPM,
    AnnealedLangevin,
    DPMSolver,
    EulerMaruyama,
    FlowVelocity,
    Heun,
    Langevin,
    PredictorCorrector,
    ProbabilityFlowODE,
    convert_prediction,
    cosine_schedule,
    ddim_sample,
    ddpm_sample,
    linear_schedule,
    log_likelihood,
    sample,
    UniPC,
    timesteps,
    vlb,
)
from jaxtt.diffusion.parameterization import from_data_and_noise

T = 60
SCHED = cosine_schedule(T)
AB = np.asarray(SCHED.alpha_bars, dtype=np.float64)
ALPHAS = np.asarray(SCHED.alphas, dtype=np.float64)
W = np.array([[0.7, -0.3], [0.4, 0.9]])
B = np.array([0.5, -0.2])


def _np_eps(x, t):
    return np.tanh(x @ W + B * t / T)


class TanhEps(eqx.Module):
    """A non-linear noise model (the same as ``_np_eps``)."""

    def __call__(self, x, t):
        return jnp.tanh(x @ jnp.asarray(W) + jnp.asarray(B) * (t[:, None].astype(x.dtype) / T))


def _x_init(seed, n=16):
    return np.random.default_rng(seed).normal(size=(n, 2))


def _noises(key, nfe, shape):
    """The per-evaluation noise of ``sample``'s key layout (module docstring of jaxtt.diffusion.sampling)."""
    _, k_steps = jax.random.split(key)
    return [np.asarray(jax.random.normal(k, shape, dtype=jnp.float64)) for k in jax.random.split(k_steps, nfe)]


def _lam(t):
    return np.inf if t == 0 else 0.5 * np.log(AB[t] / (1 - AB[t]))


def _np_dpm(x, grid, order, variant):
    """Multistep DPM-Solver(++) as printed in Lu et al. 2022/2023 and diffusers (midpoint second order),
    with warm-up and lower_order_final."""
    grid = list(grid) + [0]
    n = len(grid) - 1
    hist = []
    for i in range(n):
        s0, t = grid[i], grid[i + 1]
        eps = _np_eps(x, s0)
        a_s, sig_s = np.sqrt(AB[s0]), np.sqrt(1 - AB[s0])
        a_t, sig_t = np.sqrt(AB[t]), np.sqrt(1 - AB[t])
        m0 = (x - sig_s * eps) / a_s if variant == "++" else eps
        hist.append(m0)
        k = min(order, i + 1)
        if i == n - 1:
            k = 1
        elif i == n - 2 and n < 15:
            k = min(k, 2)
        h = _lam(t) - _lam(s0)
        if t == 0:  # the limit h -> inf of both first-order updates: the data prediction
            x1 = (x - sig_s * eps) / a_s
        elif variant == "++":
            x1 = (sig_t / sig_s) * x - a_t * (np.exp(-h) - 1.0) * m0
        else:
            x1 = (a_t / a_s) * x - sig_t * (np.exp(h) - 1.0) * m0
        if k == 1:
            x = x1
            continue
        s1 = grid[i - 1]
        r0 = (_lam(s0) - _lam(s1)) / h
        m1 = hist[-2]
        if k == 2:
            d1 = (m0 - m1) / r0
            if variant == "++":
                x = x1 - 0.5 * a_t * (np.exp(-h) - 1.0) * d1
            else:
                x = x1 - 0.5 * sig_t * (np.exp(h) - 1.0) * d1
            continue
        s2 = grid[i - 2]
        r1 = (_lam(s1) - _lam(s2)) / h
        m2 = hist[-3]
        d1_0, d1_1 = (m0 - m1) / r0, (m1 - m2) / r1
        d1 = d1_0 + r0 / (r0 + r1) * (d1_0 - d1_1)
        d2 = (d1_0 - d1_1) / (r0 + r1)
        if variant == "++":
            x = x1 + a_t * ((np.exp(-h) - 1.0) / h + 1.0) * d1 - a_t * ((np.exp(-h) - 1.0 + h) / h**2 - 0.5) * d2
        else:
            x = x1 - sig_t * ((np.exp(h) - 1.0) / h - 1.0) * d1 - sig_t * ((np.exp(h) - 1.0 - h) / h**2 - 0.5) * d2
    return x


def _np_unipc(x, grid, order):
    """UniPC-p with B(h) = e^h - 1 and data prediction (Zhao et al. 2023, Alg. 2), transcribed from the
    structure of diffusers' UniPCMultistepScheduler.step (UniC of the previous step, then UniP)."""
    def lam(t):
        return np.inf if t == 0 else 0.5 * np.log(AB[t] / (1 - AB[t]))
    def a(t): return np.sqrt(AB[t])
    def sg(t): return np.sqrt(1 - AB[t])
    full = list(grid) + [0]
    S = len(grid)
    ms = []
    last_x = None; this_order = None; lower = 0
    def coeffs(k, order, m_list):
        s0, t = full[k], full[k + 1]
        h = lam(t) - lam(s0)
        rks, D1s = [], []
        for i in range(1, order):
            si = full[k - i]
            rk = (lam(si) - lam(s0)) / h
            rks.append(rk); D1s.append((m_list[-(i + 1)] - m_list[-1]) / rk)
        rks.append(1.0)
        rks = np.array(rks)
        hh = -h
        hphi1 = np.expm1(hh)
        hphik = hphi1 / hh - 1
        fac = 1
        Bh = np.expm1(hh)
        R, bb = [], []
        for i in range(1, order + 1):
            R.append(rks ** (i - 1)); bb.append(hphik * fac / Bh)
            fac *= i + 1
            hphik = hphik / hh - 1 / fac
        return s0, t, hphi1, Bh, np.array(R), np.array(bb), D1s
    for k in range(S):
        tk = full[k]
        eps = _np_eps(x, tk)
        m_t = (x - sg(tk) * eps) / a(tk)
        if k > 0:
            s0, t, hphi1, Bh, R, bb, D1s = coeffs(k - 1, this_order, ms)
            rhos_c = np.array([0.5]) if this_order == 1 else np.linalg.solve(R, bb)
            corr = sum(r * d for r, d in zip(rhos_c[:-1], D1s)) if D1s else 0
            x = sg(t) / sg(s0) * last_x - a(t) * hphi1 * ms[-1] - a(t) * Bh * (corr + rhos_c[-1] * (m_t - ms[-1]))
        ms.append(m_t)
        this_order = min(min(order, S - k), lower + 1)
        last_x = x
        s0, t, hphi1, Bh, R, bb, D1s = coeffs(k, this_order, ms)
        if this_order == 1 or not D1s:
            pred = 0
        elif this_order == 2:
            pred = 0.5 * D1s[0]
        else:
            rhos_p = np.linalg.solve(R[:-1, :-1], bb[:-1])
            pred = sum(r * d for r, d in zip(rhos_p, D1s))
        if t == 0:
            x = ms[-1] if this_order == 1 else x  # sigma_t = 0, a_t = 1
        else:
            x = sg(t) / sg(s0) * x - a(t) * hphi1 * ms[-1] - a(t) * Bh * pred
        lower = min(lower + 1, order)
    return x


@pytest.mark.parametrize(("order", "steps"), [(1, 6), (2, 8), (3, 8), (3, 20)])
def test_unipc_matches_the_published_algorithm(order, steps):
    x_init = _x_init(17)
    got = sample(TanhEps(), SCHED, UniPC(steps=steps, order=order), jax.random.key(0), x_init.shape,
                 x_init=jnp.asarray(x_init)).samples
    np.testing.assert_allclose(np.asarray(got), _np_unipc(x_init, timesteps(T, steps), order), rtol=1e-10,
                               atol=1e-10)


@pytest.mark.parametrize(("order", "variant", "steps"), [(2, "++", 8), (3, "++", 8), (3, "++", 20), (2, "", 8),
                                                         (3, "", 20)])
def test_dpm_solver_matches_the_published_formulas(order, variant, steps):
    x_init = _x_init(1)
    sampler = DPMSolver(steps=steps, order=order, variant=variant)
    got = sample(TanhEps(), SCHED, sampler, jax.random.key(0), x_init.shape, x_init=jnp.asarray(x_init)).samples
    want = _np_dpm(x_init, timesteps(T, steps), order, variant)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-10, atol=1e-10)


def test_dpm_solver_order_one_is_ddim_step_for_step():
    x_init = jnp.asarray(_x_init(2))
    for variant in ("++", ""):
        a = sample(TanhEps(), SCHED, DPMSolver(steps=12, order=1, variant=variant), jax.random.key(0), x_init.shape,
                   x_init=x_init, save="all").trajectory
        b = sample(TanhEps(), SCHED, DDIM(steps=12), jax.random.key(0), x_init.shape, x_init=x_init,
                   save="all").trajectory
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_ddpm_on_a_subgrid_is_the_posterior_step():
    """q(x_p | x_t, x0) of Ho et al. 2020 eq. 6-7 with alpha_bar ratios (diffusers' DDPM with fewer steps)."""
    grid = [57, 41, 20, 9, 3]
    x_init = _x_init(3)
    key = jax.random.key(4)
    for variance in ("beta", "beta_tilde"):
        got = sample(TanhEps(), SCHED, DDPM(variance, timesteps=grid), key, x_init.shape,
                     x_init=jnp.asarray(x_init)).samples
        x = x_init
        zs = _noises(key, len(grid), x_init.shape)
        for z, t, p in zip(zs, grid, grid[1:] + [0]):
            x0 = (x - np.sqrt(1 - AB[t]) * _np_eps(x, t)) / np.sqrt(AB[t])
            beta = 1 - AB[t] / AB[p]
            mean = np.sqrt(AB[p]) * beta / (1 - AB[t]) * x0 + np.sqrt(AB[t] / AB[p]) * (1 - AB[p]) / (1 - AB[t]) * x
            var = beta if variance == "beta" else (1 - AB[p]) / (1 - AB[t]) * beta
            x = mean + (np.sqrt(var) * z if p > 0 else 0.0)
        np.testing.assert_allclose(np.asarray(got), x, rtol=1e-10, atol=1e-10)


def test_euler_maruyama_is_the_reverse_sde_step():
    grid = timesteps(T, 15, "trailing")
    x_init = _x_init(5)
    key = jax.random.key(6)
    got = sample(TanhEps(), SCHED, EulerMaruyama(timesteps=grid), key, x_init.shape,
                 x_init=jnp.asarray(x_init)).samples
    beta = np.asarray(SCHED.beta_continuous(jnp.asarray(grid / T)))
    x = x_init
    for z, t, p, b in zip(_noises(key, len(grid), x_init.shape), grid, list(grid[1:]) + [0], beta):
        ds = (t - p) / T
        score = -_np_eps(x, t) / np.sqrt(1 - AB[t])  # Song et al. 2021 eq. 6 with f = -beta x / 2, g = sqrt(beta)
        x = x + (0.5 * b * x + b * score) * ds + (np.sqrt(b * ds) * z if p > 0 else 0.0)
    np.testing.assert_allclose(np.asarray(got), x, rtol=1e-10, atol=1e-10)


def test_predictor_corrector_is_score_sde_pc_sampling():
    """score_sde's pc_sampler: Langevin corrector (VP, batch-mean norms), then the predictor, at each step."""
    grid = timesteps(T, 6)
    snr, n_corr = 0.2, 2
    x_init = _x_init(7)
    key = jax.random.key(8)
    sampler = PredictorCorrector(DDIM(timesteps=grid), Langevin(snr=snr, n_steps=n_corr))
    got = sample(TanhEps(), SCHED, sampler, key, x_init.shape, x_init=jnp.asarray(x_init)).samples
    zs = iter(_noises(key, len(grid) * (n_corr + 1), x_init.shape))
    x = x_init
    for t, p in zip(grid, list(grid[1:]) + [0]):
        for _ in range(n_corr):
            g = -_np_eps(x, t) / np.sqrt(1 - AB[t])
            z = next(zs)
            eps_step = 2 * ALPHAS[t] * (snr * np.linalg.norm(z, axis=1).mean() / np.linalg.norm(g, axis=1).mean()) ** 2
            x = x + eps_step * g + np.sqrt(2 * eps_step) * z
        next(zs)
        eps = _np_eps(x, t)
        x0 = (x - np.sqrt(1 - AB[t]) * eps) / np.sqrt(AB[t])
        x = np.sqrt(AB[p]) * x0 + np.sqrt(1 - AB[p]) * eps
    np.testing.assert_allclose(np.asarray(got), x, rtol=1e-9, atol=1e-9)


def test_step_api_inside_jit_and_scan_equals_sample():
    x_init = jnp.asarray(_x_init(9))
    key = jax.random.key(10)
    sampler = DPMSolver(steps=10, order=3)
    want = sample(TanhEps(), SCHED, DDIM(steps=10, eta=0.7), key, x_init.shape, x_init=x_init).samples
    noises = jnp.stack(_noises(key, 10, x_init.shape))

    @jax.jit
    def run(x, noises):
        ddim = DDIM(steps=10, eta=0.7)
        state = ddim.init(SCHED, x)

        def body(state, z):
            out = TanhEps()(state.x, jnp.full((x.shape[0],), state.t))
            return ddim.step(state, out, z), None

        return jax.lax.scan(body, state, noises)[0].x

    np.testing.assert_allclose(run(x_init, noises), want, rtol=1e-12, atol=1e-12)
    # a hand-written Python loop over the deterministic solver gives sample()'s result
    state = sampler.init(SCHED, x_init)
    for _ in range(sampler.nfe(SCHED)):
        state = jax.jit(sampler.step)(state, TanhEps()(state.x, jnp.full((16,), state.t)))
    assert bool(state.done)
    ref = sample(TanhEps(), SCHED, sampler, key, x_init.shape, x_init=x_init).samples
    np.testing.assert_allclose(state.x, ref, rtol=1e-12, atol=1e-12)
    # stepping past the end changes nothing
    np.testing.assert_array_equal(sampler.step(state, jnp.zeros_like(state.x)).x, state.x)


def test_per_sample_timesteps_advance_rows_independently():
    """Rows started at different grid positions equal separate runs started there."""
    sampler = DDIM(steps=12)
    x = jnp.asarray(_x_init(11, n=3))
    index = jnp.array([0, 4, 9])
    state = sampler.init(SCHED, x, index=index)
    np.testing.assert_array_equal(state.t, timesteps(T, 12)[[0, 4, 9]])
    for _ in range(12):
        state = sampler.step(state, TanhEps()(state.x, state.t))
    for row, start in enumerate([0, 4, 9]):
        single = sampler.init(SCHED, x[row:row + 1], index=start)
        for _ in range(12 - start):
            single = sampler.step(single, TanhEps()(single.x, jnp.full((1,), single.t)))
        np.testing.assert_allclose(state.x[row], single.x[0], rtol=1e-12)


@pytest.mark.parametrize("prediction", ["x0", "v", "score"])
def test_every_parameterization_gives_the_same_samples(prediction):
    """A model predicting x0, v or the score that is the exact conversion of an eps model samples identically."""

    def converted(x, t):
        return convert_prediction(SCHED, x, t, TanhEps()(x, t), source="eps", target=prediction)

    x_init = jnp.asarray(_x_init(12))
    for sampler in (DDIM(steps=10, eta=0.5), DPMSolver(steps=10, order=3), DDPM(), EulerMaruyama(steps=20),
                    Heun(steps=6), UniPC(steps=8, order=3)):
        a = sample(TanhEps(), SCHED, sampler, jax.random.key(1), x_init.shape, x_init=x_init).samples
        b = sample(converted, SCHED, sampler, jax.random.key(1), x_init.shape, x_init=x_init,
                   prediction=prediction).samples
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)
    ode_a = sample(TanhEps(), SCHED, ProbabilityFlowODE(), jax.random.key(1), x_init.shape, x_init=x_init).samples
    ode_b = sample(converted, SCHED, ProbabilityFlowODE(), jax.random.key(1), x_init.shape, x_init=x_init,
                   prediction=prediction).samples
    np.testing.assert_allclose(ode_a, ode_b, rtol=1e-6, atol=1e-6)


def test_likelihoods_accept_every_parameterization():
    x = jnp.asarray(_x_init(15, n=6))

    def as_v(x, t):
        return convert_prediction(SCHED, x, t, TanhEps()(x, t), source="eps", target="v")

    np.testing.assert_allclose(vlb(as_v, SCHED, x, jax.random.key(0), prediction="v"),
                               vlb(TanhEps(), SCHED, x, jax.random.key(0)), rtol=1e-9)
    np.testing.assert_allclose(log_likelihood(as_v, SCHED, x, jax.random.key(0), prediction="v").log_prob,
                               log_likelihood(TanhEps(), SCHED, x, jax.random.key(0)).log_prob, rtol=1e-6)


def test_flow_velocity_with_ddim_is_euler_on_the_interpolant():
    """Rectified flow x_u = (1 - u) x0 + u eps, v = eps - x0: DDIM(eta = 0) = Euler in u (written out)."""

    def velocity(x, u):
        return jnp.tanh(x @ jnp.asarray(W)) + u[:, None]

    grid = timesteps(T, 9, "trailing")
    a, s = np.sqrt(AB), np.sqrt(1 - AB)
    u = np.append(s[grid] / (a[grid] + s[grid]), 0.0)
    x_u = _x_init(16)
    x_T = x_u * (a[grid[0]] + s[grid[0]])
    got = sample(FlowVelocity(velocity, SCHED), SCHED, DDIM(timesteps=grid), jax.random.key(0), x_T.shape,
                 x_init=jnp.asarray(x_T)).samples
    euler = x_u
    for u0, u1 in zip(u[:-1], u[1:]):
        euler = euler + (u1 - u0) * (np.tanh(euler @ W) + u0)
    np.testing.assert_allclose(np.asarray(got), euler, rtol=1e-10, atol=1e-10)
    # Heun's method on the same grid (Karras et al. 2022, Alg. 1: Euler for the last step to u = 0)
    got = sample(FlowVelocity(velocity, SCHED), SCHED, Heun(timesteps=grid), jax.random.key(0), x_T.shape,
                 x_init=jnp.asarray(x_T))
    assert int(got.steps) == 2 * len(grid) - 1
    heun = x_u
    for u0, u1 in zip(u[:-1], u[1:]):
        d1 = np.tanh(heun @ W) + u0
        pred = heun + (u1 - u0) * d1
        heun = pred if u1 == 0 else heun + 0.5 * (u1 - u0) * (d1 + np.tanh(pred @ W) + u1)
    np.testing.assert_allclose(np.asarray(got.samples), heun, rtol=1e-10, atol=1e-10)


def test_conversions_against_the_closed_forms():
    rng = np.random.default_rng(13)
    x0, eps = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    t = np.array([1, 7, 20, 44, 60])
    a, s = np.sqrt(AB[t])[:, None], np.sqrt(1 - AB[t])[:, None]
    x_t = a * x0 + s * eps
    truth = {"eps": eps, "x0": x0, "v": a * eps - s * x0, "score": -eps / s}
    for source in truth:
        for target in truth:
            got = convert_prediction(SCHED, jnp.asarray(x_t), jnp.asarray(t), jnp.asarray(truth[source]),
                                     source=source, target=target)
            np.testing.assert_allclose(got, truth[target], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(from_data_and_noise(x0, eps, x_t, jnp.log(AB[t]), "v"), truth["v"], rtol=1e-12)


@pytest.mark.parametrize("T_long", [20000, 100000])
def test_float32_matches_float64_on_long_schedules(T_long):
    """The exact eps* of N(0, I) data, s_t x: float32 within round-off of float64 (the old coefficient form gave
    std 34 at T = 20000 and NaN at T = 100000)."""
    x64 = jax.random.normal(jax.random.key(0), (512, 2), dtype=jnp.float64)
    samplers = (DDIM(steps=10), DPMSolver(steps=10), DPMSolver(steps=20, order=3), DDPM(timesteps=timesteps(T_long, 25)))
    for sampler in samplers:
        outs = []
        for dtype in (jnp.float32, jnp.float64):
            sched = linear_schedule(T_long, dtype=dtype)
            x = x64.astype(dtype)
            state = sampler.init(sched, x)
            noises = _noises(jax.random.key(1), sampler.nfe(sched), x.shape)
            for z in noises:
                out = sched.noise_std_at(jnp.full((512,), state.t))[:, None] * state.x
                state = sampler.step(state, out, jnp.asarray(z, dtype=dtype))
            outs.append(np.asarray(state.x, dtype=np.float64))
        assert np.all(np.isfinite(outs[0]))
        np.testing.assert_allclose(outs[0], outs[1], rtol=0, atol=2e-3 * max(1.0, np.abs(outs[1]).max()))


def test_the_same_key_gives_the_same_x_T_for_every_sampler():
    key = jax.random.key(3)
    starts = []
    for sampler in (DDPM(), DDIM(steps=5), DPMSolver(steps=5), EulerMaruyama(steps=5), Heun(steps=3),
                    AnnealedLangevin(3, 2, 0.1),
                    PredictorCorrector(DDIM(steps=5)), ProbabilityFlowODE(save_points=3)):
        starts.append(sample(TanhEps(), SCHED, sampler, key, (4, 2), save="all").trajectory[0])
    for x in starts[1:]:
        np.testing.assert_array_equal(x, starts[0])


def test_non_finite_model_output_names_the_step():
    def bad(x, t):
        return jnp.where(t[:, None] < 30, jnp.nan, 0.5 * x)

    with pytest.raises(Exception, match=r"not finite at evaluation 6 \(t = 28\)"):
        sample(bad, SCHED, DDIM(timesteps=[58, 50, 44, 40, 35, 31, 28, 10]), jax.random.key(0), (4, 2))


def test_timestep_grids_follow_the_named_spacings():
    """jaxtt step = diffusers step + 1; the diffusers DDIM formulas (Lin et al. 2024, Table 2) written out."""
    for T_, S in [(1000, 50), (1000, 7), (37, 5), (10, 10)]:
        np.testing.assert_array_equal(timesteps(T_, S, "linspace"), np.linspace(0, T_ - 1, S).round()[::-1] + 1)
        np.testing.assert_array_equal(timesteps(T_, S, "leading"), (np.arange(S) * (T_ // S)).round()[::-1] + 1)
        np.testing.assert_array_equal(timesteps(T_, S, "trailing"), np.round(np.arange(T_, 0, -T_ / S)))
    assert timesteps(1000, 50, "leading")[[0, -1]].tolist() == [981, 1]
    sched = linear_schedule(1000)
    grid = timesteps(1000, 20, "log_snr", schedule=sched)
    assert grid[0] == 1000 and grid[-1] == 1 and np.all(np.diff(grid) < 0)
    lam = 0.5 * np.log(np.asarray(sched.alpha_bars)[grid] / (1 - np.asarray(sched.alpha_bars)[grid]))
    d = np.diff(lam)  # uniform in log-SNR up to integer rounding (coarse only at the last few steps)
    assert np.std(d[:-4]) < 0.05 * np.mean(d) and np.all(d > 0)
    # the log-SNR grid is fixed from the schedule before compiling (sample and init resolve it)
    by_name = sample(TanhEps(), sched, DPMSolver(steps=20, spacing="log_snr"), jax.random.key(0), (2, 2)).samples
    by_grid = sample(TanhEps(), sched, DPMSolver(timesteps=grid), jax.random.key(0), (2, 2)).samples
    np.testing.assert_array_equal(by_name, by_grid)
    np.testing.assert_array_equal(DPMSolver(steps=20, spacing="log_snr").init(sched, jnp.ones((2, 2))).t, grid[0])
    x = sample(TanhEps(), SCHED, DDIM(timesteps=np.array([50, 20, 3])), jax.random.key(0), (2, 2), save="all")
    assert x.trajectory.shape == (4, 2, 2)


class _WithT(TanhEps):
    T: int = 1000


@pytest.mark.parametrize(
    ("make", "err", "match"),
    [
        (lambda: DDIM(), ValueError, "exactly one of steps"),
        (lambda: DDIM(steps=4, timesteps=[3, 1]), ValueError, "exactly one of steps"),
        (lambda: DDIM(steps=0), ValueError, "steps"),
        (lambda: DDIM(steps=4, eta=2.0), ValueError, "eta"),
        (lambda: DDIM(timesteps=[3, 5]), ValueError, "strictly decreasing"),
        (lambda: DDIM(timesteps=[3.5, 1]), TypeError, "integer"),
        (lambda: DDIM(steps=3, spacing="uniform"), ValueError, "spacing"),
        (lambda: DPMSolver(steps=5, order=4), ValueError, "order"),
        (lambda: DPMSolver(steps=5, variant="+"), ValueError, "variant"),
        (lambda: DDPM("small"), ValueError, "variance"),
        (lambda: Langevin(snr=-1.0), ValueError, "snr"),
        (lambda: PredictorCorrector(AnnealedLangevin(2, 2, 0.1)), TypeError, "predictor"),
        (lambda: ProbabilityFlowODE(s_min=1.5), ValueError, "s_min"),
        (lambda: sample(TanhEps(), SCHED, DDIM(steps=T + 1), jax.random.key(0), (2, 2)), ValueError, "steps"),
        (lambda: sample(TanhEps(), SCHED, DDIM(timesteps=[T + 5, 1]), jax.random.key(0), (2, 2)), ValueError,
         "timesteps"),
        (lambda: sample(TanhEps(), SCHED, "ddim", jax.random.key(0), (2, 2)), TypeError, "sampler"),
        (lambda: sample(TanhEps(), SCHED, DDIM(steps=3), jax.random.key(0), (2, 2), prediction="noise"),
         ValueError, "prediction"),
        (lambda: sample(TanhEps(), SCHED, DDIM(steps=3), jax.random.key(0), (2, 2), save="some"), ValueError,
         "save"),
        (lambda: sample(TanhEps(), SCHED, ProbabilityFlowODE(), jax.random.key(0), (2, 2), clip_x0=1.0),
         ValueError, "clip_x0"),
        (lambda: DDIM(steps=3, eta=0.5).step(DDIM(steps=3).init(SCHED, jnp.ones((2, 2))), jnp.ones((2, 2))),
         ValueError, "noise"),
        (lambda: DDIM(steps=3).step(DDIM(steps=3).init(SCHED, jnp.ones((2, 2))), jnp.ones((2, 3))), ValueError,
         "model_output"),
        (lambda: DDIM(steps=3).init(SCHED, jnp.ones((2, 2)), index=5), ValueError, "index"),
        (lambda: timesteps(100, 5, "log_snr"), ValueError, "schedule"),
        (lambda: sample(_WithT(), SCHED, DDIM(steps=3), jax.random.key(0), (2, 2)), ValueError, "built for T = 1000"),
        (lambda: sample(TanhEps(), SCHED, DDIM(steps=3), jax.random.key(0), (0, 2)), ValueError, "shape"),
        (lambda: jax.jit(lambda c: sample(TanhEps(), SCHED, DDIM(steps=3), jax.random.key(0), (2, 2), clip_x0=c))(
            1.0), TypeError, "clip_x0 must be concrete"),
    ],
)
def test_bad_input(make, err, match):
    with pytest.raises(err, match=match):
        make()


def test_wrappers_are_the_entry_point():
    x_init = jnp.asarray(_x_init(14))
    np.testing.assert_array_equal(
        ddim_sample(TanhEps(), SCHED, jax.random.key(0), x_init.shape, 7, 0.3, x_init=x_init),
        sample(TanhEps(), SCHED, DDIM(steps=7, eta=0.3), jax.random.key(0), x_init.shape, x_init=x_init).samples,
    )
    np.testing.assert_array_equal(
        ddpm_sample(TanhEps(), SCHED, jax.random.key(0), x_init.shape, "beta_tilde", x_init=x_init),
        sample(TanhEps(), SCHED, DDPM("beta_tilde"), jax.random.key(0), x_init.shape, x_init=x_init).samples,
    )


def test_a_trajectory_larger_than_memory_is_refused_before_sampling():
    """1001 × 10⁶ × 64 float64 values are 513 GB: refused with the estimate and the remedy, no tracing."""
    schedule = linear_schedule(1000)
    message = r"save: the saved trajectories of 1000 steps of shape \(1000000, 64\) need 513 GB"
    with pytest.raises(ValueError, match=message):
        sample(lambda x, t: x, schedule, DDPM(), jax.random.key(0), (10**6, 64), save="all")
