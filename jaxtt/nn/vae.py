"""A small convolutional variational autoencoder for flat grey-scale images (Kingma & Welling 2014)."""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from jaxtt._validation import check_array, check_finite, check_int, check_key, check_real
from jaxtt.nn.conv import Conv3x3, check_image_shape
from jaxtt.train import default_optimizer, fit

__all__ = ["VAE", "negative_elbo", "train_vae"]


class VAE(eqx.Module):
    r"""Convolutional VAE with a vector latent :math:`z \in \mathbb{R}^L` (Kingma & Welling 2014).

    - Encoder :math:`q_\phi(z \mid x) = N(\mu_\phi(x), \operatorname{diag} e^{\lambda_\phi(x)})`: two 3x3
      convolutions (SiLU), 2x2 average pooling, a linear map to :math:`(\mu, \lambda)` (mean and log-variance).
    - Prior :math:`p(z) = N(0, I)`.
    - Decoder :math:`p_\theta(x \mid z) = N(\tanh(g_\theta(z)), \sigma^2 I)` on the pixels in [-1, 1]: a linear
      map to a half-resolution feature map, nearest 2x upsampling, two 3x3 convolutions; the mean
      :math:`\hat x(z) = \tanh g_\theta(z)` stays in the pixel range. :math:`\sigma` = ``noise_std`` is fixed (a
      Gaussian likelihood with known variance; :func:`negative_elbo` is then a squared error plus a KL term).

    The module maps one image given as a flat row of ``height * width`` pixels (row-major, the layout of
    :func:`jaxtt.data.digits`); ``vmap`` for batches.

    Args:
        latent: latent dimension ``L``.
        key: PRNG key for the initialisation.
        image_shape: ``(height, width)``, both even.
        channels: channels of the two convolutions of the encoder (the decoder mirrors them).
        noise_std: the decoder's pixel noise :math:`\sigma > 0`.
        dtype: floating dtype of the parameters (default: JAX's default floating dtype).

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> vae = VAE(8, key=jax.random.key(0))
        >>> mean, log_var = vae.encode(jnp.zeros(64))
        >>> mean.shape, log_var.shape, vae.decode(mean).shape
        ((8,), (8,), (64,))
        >>> bool(jnp.all(jnp.abs(vae.decode(10 * jnp.ones(8))) <= 1))  # decoded means lie in [-1, 1]
        True
    """

    enc1: Conv3x3
    enc2: Conv3x3
    enc_out: eqx.nn.Linear
    dec_in: eqx.nn.Linear
    dec1: Conv3x3
    dec2: Conv3x3
    latent: int = eqx.field(static=True)
    image_shape: tuple[int, int] = eqx.field(static=True)
    channels: tuple[int, int] = eqx.field(static=True)
    noise_std: float = eqx.field(static=True)

    def __init__(
        self,
        latent: int,
        *,
        key: PRNGKeyArray,
        image_shape: tuple[int, int] = (8, 8),
        channels: tuple[int, int] = (16, 32),
        noise_std: float = 0.2,
        dtype=None,
    ):
        self.latent = check_int(latent, "latent", minimum=1)
        self.image_shape = check_image_shape(image_shape)
        self.channels = tuple(check_int(c, "channels[i]", minimum=1) for c in channels)
        if len(self.channels) != 2:
            raise ValueError(f"channels must have 2 entries, got {channels!r}")
        self.noise_std = check_real(noise_std, "noise_std", minimum=0.0, strict_minimum=True)
        keys = jax.random.split(check_key(key), 6)
        c1, c2 = self.channels
        height, width = self.image_shape
        pooled = c2 * (height // 2) * (width // 2)
        self.enc1 = Conv3x3(1, c1, dtype=dtype, key=keys[0])
        self.enc2 = Conv3x3(c1, c2, dtype=dtype, key=keys[1])
        self.enc_out = eqx.nn.Linear(pooled, 2 * self.latent, dtype=dtype, key=keys[2])
        self.dec_in = eqx.nn.Linear(self.latent, pooled, dtype=dtype, key=keys[3])
        self.dec1 = Conv3x3(c2, c1, dtype=dtype, key=keys[4])
        self.dec2 = Conv3x3(c1, 1, dtype=dtype, key=keys[5])

    def encode(self, x: Float[Array, " P"]) -> tuple[Float[Array, " L"], Float[Array, " L"]]:
        r"""The posterior :math:`q_\phi(z \mid x)` of one flat image: ``(mean, log_variance)``."""
        height, width = self.image_shape
        if x.shape != (height * width,):
            raise ValueError(f"x must be one flat image of shape ({height * width},), got {x.shape}")
        h = jax.nn.silu(self.enc2(jax.nn.silu(self.enc1(x.reshape(1, height, width)))))
        h = h.reshape(h.shape[0], height // 2, 2, width // 2, 2).mean(axis=(2, 4))
        out = self.enc_out(h.reshape(-1))
        return out[: self.latent], out[self.latent :]

    def decode(self, z: Float[Array, " L"]) -> Float[Array, " P"]:
        r"""The decoder mean :math:`\hat x(z) = \tanh g_\theta(z)` of one latent, a flat image in [-1, 1]."""
        if z.shape != (self.latent,):
            raise ValueError(f"z must be one latent of shape ({self.latent},), got {z.shape}")
        height, width = self.image_shape
        h = jax.nn.silu(self.dec_in(z)).reshape(self.channels[1], height // 2, width // 2)
        h = jax.image.resize(h, (h.shape[0], height, width), "nearest")  # 2x nearest-neighbour upsampling
        h = self.dec2(jax.nn.silu(self.dec1(h)))
        return jnp.tanh(h.reshape(-1))

    def __call__(self, x: Float[Array, " P"]) -> Float[Array, " P"]:
        """Reconstruction of one flat image through the posterior mean: ``decode(encode(x)[0])``."""
        return self.decode(self.encode(x)[0])


def negative_elbo(
    model: VAE, key: PRNGKeyArray, batch: Float[Array, "N P"], beta: float = 1.0
) -> Float[Array, ""]:
    r"""The β-weighted negative ELBO per pixel, averaged over the batch, with one reparameterised draw per image.

    .. math::
        \mathcal{L}_\beta(x) = \frac{1}{P}\Bigl(\frac{\|x - \hat x(z)\|^2}{2\sigma^2}
        + \beta\,\mathrm{KL}\bigl(q_\phi(z\mid x)\,\|\,N(0, I)\bigr)\Bigr), \qquad
        z = \mu + e^{\lambda/2}\odot\epsilon,\ \epsilon \sim N(0, I),

    with :math:`\mathrm{KL} = \tfrac12\sum_l (\mu_l^2 + e^{\lambda_l} - 1 - \lambda_l)` (Kingma & Welling
    2014, appendix B). ``beta = 1`` is the ELBO up to the constant :math:`\tfrac12\log(2\pi\sigma^2)` per pixel;
    ``beta != 1`` is the β-VAE objective (Higgins et al. 2017). The signature of :func:`jaxtt.train.fit`'s
    ``loss`` (bind ``beta`` with ``functools.partial``).

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> vae = VAE(4, key=jax.random.key(0))
        >>> x = jnp.zeros((3, 64))
        >>> loss = negative_elbo(vae, jax.random.key(1), x)
        >>> mean, log_var = jax.vmap(vae.encode)(x)                    # independent check of the KL term:
        >>> kl = 0.5 * jnp.sum(mean**2 + jnp.exp(log_var) - 1 - log_var, axis=1)
        >>> rec = negative_elbo(vae, jax.random.key(1), x, beta=0.0)   # the reconstruction part alone
        >>> bool(jnp.allclose(loss - rec, jnp.mean(kl) / 64, rtol=1e-5))
        True
    """
    mean, log_var = jax.vmap(model.encode)(batch)
    eps = jax.random.normal(key, mean.shape, mean.dtype)
    z = mean + jnp.exp(0.5 * log_var) * eps
    recon = jax.vmap(model.decode)(z)
    rec = jnp.sum((batch - recon) ** 2, axis=1) / (2 * model.noise_std**2)
    kl = 0.5 * jnp.sum(mean**2 + jnp.exp(log_var) - 1.0 - log_var, axis=1)
    return jnp.mean(rec + beta * kl) / batch.shape[1]


def train_vae(
    x: Float[Array, "N P"],
    *,
    key: PRNGKeyArray,
    latent: int = 8,
    beta: float = 1.0,
    steps: int = 2000,
    batch_size: int = 128,
    learning_rate: float = 3e-3,
    progress: bool = False,
    **model_options,
):
    """Train a :class:`VAE` on flat images ``x`` by :func:`jaxtt.train.fit` on :func:`negative_elbo` (AdamW with
    warm-up and cosine decay); return ``(vae, history)``: the EMA weights (decay 0.99) and ``fit``'s history.

    Args:
        x: images ``(N, height * width)`` in [-1, 1].
        key: PRNG key (initialisation, batches, reparameterisation noise).
        latent: latent dimension.
        beta: the KL weight β.
        steps, batch_size, learning_rate: the optimisation (``batch_size`` is capped at ``N``).
        progress: show a progress bar.
        **model_options: passed to :class:`VAE` (``image_shape``, ``channels``, ``noise_std``).

    Examples:
        >>> import jax
        >>> from jaxtt.data import digits_split
        >>> x = digits_split()[0]
        >>> vae, history = train_vae(x, key=jax.random.key(0), steps=200)
        >>> history["train_loss"][-1] < history["train_loss"][0]
        True
    """
    x = check_array(x, "x", ndim=2, floating=True)
    check_finite(x, "x")
    steps = check_int(steps, "steps", minimum=1)
    beta = check_real(beta, "beta", minimum=0.0)
    k_init, k_fit = jax.random.split(check_key(key))
    model = VAE(latent, key=k_init, dtype=x.dtype, **model_options)
    result = fit(model, x, None, default_optimizer(steps, learning_rate), steps=steps,
                 batch_size=min(batch_size, x.shape[0]), key=k_fit, ema_decay=0.99, log_every=max(steps // 10, 1),
                 progress=progress, loss=functools.partial(negative_elbo, beta=beta))
    return result.ema_model, result.history
