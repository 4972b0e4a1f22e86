"""The VAE: the ELBO decreases and reconstructions beat the mean image, the KL term against a Monte Carlo
estimate, the im2col convolution against lax's, checkpoints and bad input."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxtt.checkpoint import load_checkpoint, save_checkpoint
from jaxtt.data import digits_split
from jaxtt.nn import VAE, Conv3x3, negative_elbo, train_vae


@pytest.fixture(scope="module")
def trained():
    x, _, x_val, _ = digits_split()
    vae, history = train_vae(x, key=jax.random.key(0), latent=8, steps=300)
    return vae, history, x, x_val


def test_elbo_decreases_and_reconstructions_beat_the_mean_image(trained):
    vae, history, x, x_val = trained
    assert history["train_loss"][-1] < 0.5 * history["train_loss"][0]
    reconstruction_error = float(jnp.mean((jax.jit(jax.vmap(vae))(x_val) - x_val) ** 2))
    mean_image_error = float(jnp.mean((x.mean(0) - x_val) ** 2))  # the best constant reconstruction
    assert reconstruction_error < 0.5 * mean_image_error


def test_kl_term_matches_a_monte_carlo_estimate():
    vae = VAE(3, key=jax.random.key(0))
    x = jax.random.uniform(jax.random.key(1), (4, 64), minval=-1, maxval=1)
    loss = jax.jit(negative_elbo)
    kl = 64 * (loss(vae, jax.random.key(2), x) - loss(vae, jax.random.key(2), x, beta=0.0))
    mean, log_var = (np.asarray(a, np.float64) for a in jax.jit(jax.vmap(vae.encode))(x))
    std = np.exp(0.5 * log_var)
    z = mean + std * np.random.default_rng(0).standard_normal((200_000, *mean.shape))
    log_ratio = stats.norm.logpdf(z, mean, std).sum(-1) - stats.norm.logpdf(z).sum(-1)  # log q(z|x) - log p(z)
    np.testing.assert_allclose(float(kl), log_ratio.mean(), rtol=2e-2)


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 5, 7)])
def test_conv3x3_equals_lax_convolution(shape):
    conv = Conv3x3(shape[0], 4, key=jax.random.key(0))
    reference = eqx.nn.Conv2d(shape[0], 4, 3, padding=1, key=jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), shape)
    apply = eqx.filter_jit(lambda module, x: module(x))
    np.testing.assert_allclose(apply(conv, x), apply(reference, x), rtol=1e-10, atol=1e-12)


def test_save_and_load_round_trip(trained, tmp_path):
    vae, _, _, x_val = trained
    path = tmp_path / "vae.ckpt"
    save_checkpoint(path, vae)
    loaded, _ = load_checkpoint(path, VAE(8, key=jax.random.key(5), dtype=jnp.float32))
    reconstruct = eqx.filter_jit(lambda model, x: jax.vmap(model)(x))
    np.testing.assert_array_equal(reconstruct(loaded, x_val), reconstruct(vae, x_val))
    with pytest.raises(ValueError):  # another latent size does not load
        load_checkpoint(path, VAE(4, key=jax.random.key(5), dtype=jnp.float32))


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="latent"):
        VAE(0, key=jax.random.key(0))
    with pytest.raises(ValueError, match="noise_std"):
        VAE(4, key=jax.random.key(0), noise_std=0.0)
    vae = VAE(4, key=jax.random.key(0))
    with pytest.raises(ValueError, match="x must be one flat image"):
        vae.encode(jnp.zeros(63))
    with pytest.raises(ValueError, match="z must be one latent"):
        vae.decode(jnp.zeros(5))
    with pytest.raises(ValueError, match="x must be finite|x contains"):
        train_vae(jnp.full((4, 64), jnp.nan), key=jax.random.key(0), steps=1)
