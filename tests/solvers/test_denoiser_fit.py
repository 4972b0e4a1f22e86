"""Denoiser fits (ALS, DMRG, RCG) against the exact optimal denoiser and on the swiss roll."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxtt.data import GaussianMixture, swiss_roll
from jaxtt.diffusion import ddim_sample, linear_schedule, q_sample
from jaxtt.ftt import FTTDenoiser
from jaxtt.metrics import mmd
from jaxtt.solvers import ALS, DMRG, RCG, fit_denoiser

T = 100
SCHEDULE = linear_schedule(T, beta_start=1e-3, beta_end=0.2)


def held_out_eps_error(model, mixture, n=4000, seed=7):
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    x0 = mixture.sample(k1, n)
    t = jax.random.randint(k2, (n,), 1, T + 1)
    x_t = q_sample(SCHEDULE, x0, t, jax.random.normal(k3, x0.shape, x0.dtype))
    exact = mixture.optimal_eps(x_t, t, SCHEDULE)
    return float(jnp.linalg.norm(model(x_t, t) - exact) / jnp.linalg.norm(exact))


@pytest.mark.parametrize("dim,output", [(1, "independent"), (2, "independent"), (2, "core")])
def test_fit_approaches_optimal_eps_for_gaussian_data(dim, output):
    cov = np.array([[0.5]]) if dim == 1 else np.array([[0.6, 0.25], [0.25, 0.4]])
    mixture = GaussianMixture(jnp.ones(1), jnp.full((1, dim), 0.3), jnp.asarray(cov)[None])
    x0 = mixture.sample(jax.random.key(0), 4000)
    model = FTTDenoiser(dim, T, rank=3, m=5, output=output, dtype=jnp.float64, key=jax.random.key(1))
    model, results = fit_denoiser(model, x0, SCHEDULE, jax.random.key(2), repeats=10, steps=4, reg=1e-7,
                                  progress=False)
    assert len(results) == 1 and results[0].step[-1] <= 4
    assert held_out_eps_error(model, mixture) < 0.1


def test_resampling_and_dmrg_paths():
    mixture = GaussianMixture(jnp.ones(1), jnp.zeros((1, 2)), 0.5 * jnp.eye(2)[None])
    x0 = mixture.sample(jax.random.key(0), 1000)
    model = FTTDenoiser(2, T, rank=1, m=4, dtype=jnp.float64, key=jax.random.key(1))
    dmrg, results = fit_denoiser(model, x0, SCHEDULE, jax.random.key(2), solver=DMRG(max_rank=4, eps=1e-4),
                                 repeats=4, steps=2, progress=False)
    assert max(dmrg.ftt.tt.ranks) > 1 and results[0].ranks[-1] == dmrg.ftt.tt.ranks
    assert held_out_eps_error(dmrg, mixture) < 0.15
    resampled, results = fit_denoiser(FTTDenoiser(2, T, rank=3, m=4, dtype=jnp.float64, key=jax.random.key(1)), x0,
                                      SCHEDULE, jax.random.key(2), repeats=4, steps=1, draws=3, progress=False)
    assert len(results) == 3 and all(r.step == [0, 1] for r in results)
    assert held_out_eps_error(resampled, mixture) < 0.15


def test_riemannian_cg_fits_the_denoiser():
    mixture = GaussianMixture(jnp.ones(1), jnp.zeros((1, 2)), 0.5 * jnp.eye(2)[None])
    x0 = mixture.sample(jax.random.key(0), 1000)
    model = FTTDenoiser(2, T, rank=2, m=4, dtype=jnp.float64, key=jax.random.key(1))
    before = held_out_eps_error(model, mixture)
    fitted, _ = fit_denoiser(model, x0, SCHEDULE, jax.random.key(2), solver=RCG(), steps=60, repeats=5,
                             progress=False)
    assert held_out_eps_error(fitted, mixture) < min(0.2, 0.5 * before)


def test_swiss_roll_fit_then_ddim_samples_approach_data():
    x0 = swiss_roll(jax.random.key(0), 2000)
    model = FTTDenoiser(2, T, rank=5, m=10, dtype=jnp.float32, key=jax.random.key(1))
    model, _ = fit_denoiser(model, x0, SCHEDULE, jax.random.key(2), solver=ALS(), repeats=6, steps=3, progress=False)
    samples = ddim_sample(model, SCHEDULE, jax.random.key(3), (1000, 2), steps=25)
    reference = swiss_roll(jax.random.key(4), 1000)
    noise = jax.random.normal(jax.random.key(5), (1000, 2))
    # over the fitting keys 2..5 this ratio is 0.30-0.43 (a rank-5 fit on 2000 points); pure noise gives 1
    assert float(mmd(samples, reference)) < 0.5 * float(mmd(noise, reference))


def test_fit_denoiser_errors():
    model = FTTDenoiser(2, T, key=jax.random.key(1))
    x0 = jnp.zeros((10, 2))
    with pytest.raises(TypeError, match="solver must be a Solver"):
        fit_denoiser(model, x0, SCHEDULE, jax.random.key(0), solver="sgd")
    with pytest.raises(ValueError, match="T = 100"):
        fit_denoiser(model, x0, linear_schedule(50), jax.random.key(0))
    with pytest.raises(ValueError, match=r"x0 must have shape \(N, 2\)"):
        fit_denoiser(model, jnp.zeros((10, 3)), SCHEDULE, jax.random.key(0))
    with pytest.raises(ValueError, match="x0 must be finite"):
        fit_denoiser(model, x0.at[0, 0].set(jnp.nan), SCHEDULE, jax.random.key(0))
    with pytest.raises(ValueError, match="steps must be >= 1"):
        fit_denoiser(model, x0, SCHEDULE, jax.random.key(0), steps=0)
