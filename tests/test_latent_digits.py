"""Latent diffusion on digits: the latent space, the conditional ResNet-MLP and its loss, and the conditional FTT
under guidance (w = 0 samples as the conditional sampler; the null label alone reproduces the unconditional fit)."""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxtt.diffusion import DDIM, ClassifierFreeGuidance, ddpm_loss, linear_schedule, sample
from jaxtt.ftt import FTTDenoiser
from jaxtt.latent import LatentSpace
from jaxtt.latent_digits import QUICK, DigitsConfig, conditional_ddpm_loss
from jaxtt.nn import VAE, Batched, ResNetMLP
from jaxtt.solvers import ALS, fit_denoiser

SCHEDULE = linear_schedule(50)


def test_latent_space_standardizes_and_decodes_the_vae_reconstruction():
    vae = VAE(4, key=jax.random.key(0))
    x = jax.random.uniform(jax.random.key(1), (40, 64), minval=-1, maxval=1)
    space = LatentSpace(vae, x)
    codes = np.asarray(jax.vmap(vae.encode)(x)[0])
    u = np.asarray(space.encode(x))
    np.testing.assert_allclose(u, (codes - codes.mean(0)) / codes.std(0), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(space.decode(space.encode(x)), jax.vmap(vae)(x), atol=1e-12)
    with pytest.raises(ValueError, match=r"images must have shape \(N, 64\)"):
        space.encode(jnp.zeros((3, 65)))
    with pytest.raises(ValueError, match=r"latents must have shape \(N, 4\)"):
        space.decode(jnp.zeros((3, 5)))
    with pytest.raises(TypeError, match="vae"):
        LatentSpace(object(), x)


def test_conditional_resnet_keeps_the_unconditional_weights_and_uses_the_label():
    plain = ResNetMLP(3, width=16, depth=2, key=jax.random.key(0))
    cond = ResNetMLP(3, width=16, depth=2, key=jax.random.key(0), classes=4)
    for name in ("time_proj", "expand", "blocks", "contract"):  # the label embedding has its own key
        for a, b in zip(jax.tree.leaves(getattr(plain, name)), jax.tree.leaves(getattr(cond, name))):
            np.testing.assert_array_equal(a, b)
    x, t = jax.random.normal(jax.random.key(1), (5, 3)), jnp.arange(1, 6) * 10
    zero = eqx.tree_at(lambda m: m.label_embedding.weight, cond, jnp.zeros_like(cond.label_embedding.weight))
    np.testing.assert_allclose(Batched(zero)(x, t, jnp.arange(5) % 5), Batched(plain)(x, t), atol=1e-12)
    out = Batched(cond)(x, t, jnp.zeros(5, int))
    assert not np.allclose(out, Batched(cond)(x, t, jnp.full(5, cond.null_label)))
    with pytest.raises(TypeError, match="model\\(x, t, y\\)"):
        cond(x[0], t[0])
    with pytest.raises(TypeError, match="unconditional"):
        plain(x[0], t[0], 1)


@pytest.mark.parametrize("dropout, expected_label", [(0.0, None), (1.0, 3)])
def test_conditional_loss_is_the_ddpm_loss_of_the_labelled_model(dropout, expected_label):
    model = Batched(ResNetMLP(2, width=8, depth=1, key=jax.random.key(0), classes=3, time_scale=50.0))
    x = jax.random.normal(jax.random.key(1), (64, 2))
    y = jnp.arange(64) % 3
    rows = jnp.concatenate([x, y[:, None].astype(x.dtype)], axis=1)
    key = jax.random.key(2)
    loss = conditional_ddpm_loss(model, key, rows, schedule=SCHEDULE, null_label=3, label_dropout=dropout)
    labels = y if expected_label is None else jnp.full(64, expected_label)
    reference = ddpm_loss(lambda x_t, t: model(x_t, t, labels), SCHEDULE, jax.random.split(key)[1], x)
    np.testing.assert_allclose(loss, reference, rtol=1e-12)


def test_guided_ftt_sampler_at_zero_scale_is_the_conditional_sampler():
    model = FTTDenoiser(2, 50, rank=3, m=5, classes=4, key=jax.random.key(1))
    key, sampler = jax.random.key(3), DDIM(steps=10)
    guided = ClassifierFreeGuidance(model, label=2, null_label=model.null_label, scale=0.0)
    conditional = lambda x, t: model(x, t, jnp.full(x.shape[0], 2))  # noqa: E731
    a = sample(guided, SCHEDULE, sampler, key, (20, 2), clip_x0=3.0).samples
    b = sample(conditional, SCHEDULE, sampler, key, (20, 2), clip_x0=3.0).samples
    np.testing.assert_allclose(a, b, atol=1e-12)


def test_label_core_trained_on_null_labels_only_is_the_unconditional_fit():
    """At full TT rank an exact ALS core solve is the least-squares fit over the whole tensor-product space, so
    the null slice of a conditional model fitted to all-null rows equals the unconditional fit of the same rows."""
    x0 = jax.random.normal(jax.random.key(0), (100, 2))
    labels = jnp.arange(100) % 3
    options = dict(rank=9, m=3, time_m=3)
    # a ridge far below round-off of the fitted values: the slices of the labels that no row carries are 0
    solver, key = ALS(reg=1e-12), jax.random.key(4)
    plain, _ = fit_denoiser(FTTDenoiser(2, 50, key=jax.random.key(1), **options), x0, SCHEDULE, key, solver=solver,
                            steps=1, repeats=2, reg=None, progress=False)
    cond, _ = fit_denoiser(FTTDenoiser(2, 50, classes=3, key=jax.random.key(2), **options), x0, SCHEDULE, key,
                           solver=solver, steps=1, repeats=2, reg=None, labels=labels, label_dropout=1.0,
                           progress=False)
    x, t = jax.random.normal(jax.random.key(5), (30, 2)), jnp.arange(30) + 10
    np.testing.assert_allclose(cond(x, t, jnp.full(30, cond.null_label)), plain(x, t), atol=1e-8)


def test_config_checks():
    assert dataclasses.replace(QUICK, seed=3).seed == 3
    with pytest.raises(ValueError, match="ddim_steps must be at most T"):
        DigitsConfig(T=10)
    with pytest.raises(TypeError, match="nn_steps must be an integer"):
        DigitsConfig(nn_steps=1.5)
    with pytest.raises(ValueError, match="label_dropout"):
        DigitsConfig(label_dropout=2.0)
    with pytest.raises(ValueError, match="null_rows must be 'duplicate' or 'dropout'"):
        DigitsConfig(null_rows="twice")
    with pytest.raises(ValueError, match="guidance_interval must satisfy low < high"):
        DigitsConfig(guidance_interval=(0.7, 0.1))
    with pytest.raises(ValueError, match=r"guidance_interval\[1\] must be a number in \[0.0, 1.0\]"):
        DigitsConfig(guidance_interval=(0.1, 7.5))
