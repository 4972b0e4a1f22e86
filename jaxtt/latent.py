"""The latent space of a VAE for latent diffusion (Rombach et al. 2022): posterior-mean codes, standardized."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from jaxtt._validation import check_array, check_finite, check_instance
from jaxtt.nn.vae import VAE

__all__ = ["LatentSpace"]


@eqx.filter_jit
def _posterior_means(vae, images):
    return jax.vmap(vae.encode)(images)[0]


@eqx.filter_jit
def _decode(vae, codes):
    return jax.vmap(vae.decode)(codes)


class LatentSpace(eqx.Module):
    r"""The standardized posterior-mean latents of a trained :class:`jaxtt.nn.VAE`.

    Latent diffusion (Rombach et al. 2022) fits the diffusion model to the codes :math:`z = \mu_\phi(x)` of the
    training images (the posterior mean: the deterministic code) and decodes its samples. The codes are
    standardized per coordinate with the mean :math:`m` and standard deviation :math:`s` of the training codes,

    .. math:: u = (\mu_\phi(x) - m) / s, \qquad \hat x(u) = \mathrm{decode}(m + s \odot u),

    so the denoiser sees zero-mean, unit-variance data (the scaling of Rombach et al. 2022, sec. 4.3.2, per
    coordinate; the FTT denoiser's bases live on ``[-4, 4]``).

    Args:
        vae: the trained VAE.
        images: the training images ``(N, P)`` (flat rows) that fix :math:`m` and :math:`s`; ``N >= 2``.

    Raises:
        ValueError: a latent coordinate is constant over ``images`` (it cannot be standardized).

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt.nn import VAE
        >>> vae = VAE(4, key=jax.random.key(0))
        >>> x = jax.random.uniform(jax.random.key(1), (50, 64), minval=-1, maxval=1)
        >>> space = LatentSpace(vae, x)
        >>> u = space.encode(x)
        >>> u.shape, bool(jnp.allclose(u.mean(0), 0, atol=1e-5)), bool(jnp.allclose(u.std(0), 1, atol=1e-4))
        ((50, 4), True, True)
        >>> bool(jnp.allclose(space.decode(u), jax.vmap(vae)(x), atol=1e-5))  # decode(encode(x)) = VAE(x)
        True
    """

    vae: VAE
    mean: Float[Array, " L"]
    std: Float[Array, " L"]

    def __init__(self, vae: VAE, images: Float[Array, "N P"]):
        self.vae = check_instance(vae, "vae", VAE)
        images = self._check(images, "images")
        if images.shape[0] < 2:
            raise ValueError(f"images must hold at least 2 images, got {images.shape[0]}")
        codes = _posterior_means(vae, images)
        self.mean, self.std = codes.mean(axis=0), codes.std(axis=0)
        if not bool(jnp.all(self.std > 0)):
            raise ValueError(f"latent coordinate {int(jnp.argmin(self.std))} is constant over images")

    def _check(self, images, name):
        images = check_array(images, name, ndim=2, floating=True)
        pixels = self.vae.image_shape[0] * self.vae.image_shape[1]
        if images.shape[1] != pixels:
            raise ValueError(f"{name} must have shape (N, {pixels}) (flat images), got {tuple(images.shape)}")
        check_finite(images, name)
        return images

    def encode(self, images: Float[Array, "N P"]) -> Float[Array, "N L"]:
        """Standardized posterior means :math:`(\\mu_\\phi(x) - m) / s` of flat images ``(N, P)``."""
        images = self._check(images, "images")
        return (_posterior_means(self.vae, images) - self.mean) / self.std

    def decode(self, latents: Float[Array, "N L"]) -> Float[Array, "N P"]:
        """Flat images ``decode(m + s * u)`` of standardized latents ``u`` ``(N, L)``."""
        latents = check_array(latents, "latents", ndim=2, floating=True)
        if latents.shape[1] != self.vae.latent:
            raise ValueError(f"latents must have shape (N, {self.vae.latent}), got {tuple(latents.shape)}")
        return _decode(self.vae, self.mean + self.std * latents)
