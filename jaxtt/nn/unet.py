"""Small time-conditioned U-Net noise model for images (Ronneberger et al. 2015; Ho et al. 2020)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray, Real

from jaxtt._validation import check_float_dtype, check_int, check_key
from jaxtt.nn.conv import Conv3x3
from jaxtt.nn.embedding import SinusoidalEmbedding

__all__ = ["UNet"]


class _TimeConvBlock(eqx.Module):
    """``act(GroupNorm(conv3x3(x)) + W act(t_emb))`` — a time-embedding conv block with GroupNorm (Ho et al. 2020, appendix B)."""

    conv: Conv3x3
    norm: eqx.nn.GroupNorm
    time_proj: eqx.nn.Linear
    activation: Callable = eqx.field(static=True)

    def __init__(self, c_in, c_out, time_dim, groups, activation, dtype, key):
        k_conv, k_time = jax.random.split(key)
        self.conv = Conv3x3(c_in, c_out, dtype=dtype, key=k_conv)
        self.norm = eqx.nn.GroupNorm(groups, c_out, dtype=dtype)
        self.time_proj = eqx.nn.Linear(time_dim, c_out, dtype=dtype, key=k_time)
        self.activation = activation

    def __call__(self, x, t_emb):
        shift = self.time_proj(self.activation(t_emb))
        return self.activation(self.norm(self.conv(x)) + shift[:, None, None])


def _downsample(x):
    """2x2 average pooling of ``(C, H, W)`` with even ``H, W``."""
    c, h, w = x.shape
    return x.reshape(c, h // 2, 2, w // 2, 2).mean(axis=(2, 4))


def _upsample(x):
    """Nearest-neighbour 2x upsampling of ``(C, H, W)``."""
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


class UNet(eqx.Module):
    r"""Time-conditioned U-Net noise model :math:`\epsilon_\theta(x_t, t)` for images (Ronneberger et al. 2015; Ho et al. 2020).

    Every block is a time-embedding conv block,
    :math:`h \mapsto \sigma(\mathrm{GN}(\mathrm{conv}_{3\times3}(h)) + W\,\sigma(\tau(t)))`, with GroupNorm in
    place of InstanceNorm (GroupNorm with one channel per group is InstanceNorm). The time feature
    :math:`\tau(t)` is a two-layer MLP of the sinusoidal embedding (:class:`SinusoidalEmbedding`) and is added
    in every block. With ``channels = (c_0, ..., c_L)``:

    - stem: block ``C -> c_0``;
    - down path, level ``l = 0..L-1``: keep the skip, 2x2 average pooling, block ``c_l -> c_{l+1}``;
    - middle: block ``c_L -> c_L``;
    - up path, level ``l = L-1..0``: nearest 2x upsampling, concatenate the skip, block ``c_{l+1} + c_l -> c_l``;
    - head: 1x1 convolution ``c_0 -> C``.

    The 3x3 convolutions are :class:`jaxtt.nn.Conv3x3` (one matrix product over shifted copies of the image) and
    the 1x1 head is a matrix product over channels: the same functions as ``lax`` convolutions, but XLA on CPU
    runs ``lax`` convolutions inside the training loop of :func:`jaxtt.train.fit` many times slower (measured
    on 8x8 digits, channels ``(16, 32)``, 2 loaded CPU cores: about 0.2 s against 0.01 s per AdamW step at
    batch 64, 0.6 s against 0.05 s at batch 128).
    Checkpoints of the earlier layout, whose 3x3 convolutions were ``eqx.nn.Conv2d`` with biases of shape
    ``(c, 1, 1)``, no longer load: :func:`jaxtt.checkpoint.load_checkpoint` refuses them naming every
    ``conv.bias`` path whose shape differs.

    Inputs whose height or width is not a multiple of ``2^L`` are zero-padded at the bottom/right and the
    output is cropped back, so any size works; 8x8 (sklearn digits) and 28x28 (MNIST, ``28 = 4 * 7``) need no
    padding for ``L = 2``.

    The module maps one example, ``x`` of shape ``(C, H, W)`` and a scalar time ``t``; wrap it in
    :class:`jaxtt.nn.Batched` (or ``vmap`` it) for batches.

    Args:
        in_channels: number of image channels ``C``.
        key: PRNG key for the initialisation.
        channels: block widths ``(c_0, ..., c_L)``, ``L >= 1`` downsamplings; each divisible by ``groups``.
        groups: number of GroupNorm groups.
        embed_dim: size of the sinusoidal embedding and of the time MLP (even, ``>= 4``).
        time_scale: the scale ``s`` of the sinusoidal embedding.
        activation: the non-linearity :math:`\sigma`.
        dtype: floating dtype of the parameters (default: JAX's default floating dtype).

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> model = UNet(1, channels=(8, 16), groups=4, key=jax.random.key(0))
        >>> model(jnp.zeros((1, 7, 9)), 10).shape  # one image; padded to a multiple of 2 and cropped back
        (1, 7, 9)
    """

    embedding: SinusoidalEmbedding
    time_mlp: eqx.nn.MLP
    stem: _TimeConvBlock
    down: tuple[_TimeConvBlock, ...]
    middle: _TimeConvBlock
    up: tuple[_TimeConvBlock, ...]
    head: eqx.nn.Conv2d
    in_channels: int = eqx.field(static=True)

    def __init__(
        self,
        in_channels: int,
        *,
        key: PRNGKeyArray,
        channels: Sequence[int] = (16, 32, 64),
        groups: int = 4,
        embed_dim: int = 32,
        time_scale: float = 1000.0,
        activation: Callable[[Array], Array] = jax.nn.silu,
        dtype=None,
    ):
        key = check_key(key)
        if dtype is not None:
            check_float_dtype(dtype)
        self.in_channels = check_int(in_channels, "in_channels", minimum=1)
        channels = tuple(check_int(c, "channels[i]", minimum=1) for c in channels)
        if len(channels) < 2:
            raise ValueError(f"channels must have at least 2 entries (one downsampling), got {channels}")
        groups = check_int(groups, "groups", minimum=1)
        if any(c % groups for c in channels):
            raise ValueError(f"every entry of channels must be divisible by groups={groups}, got {channels}")
        if not callable(activation):
            raise TypeError(f"activation must be callable, got {type(activation).__name__}")
        levels = len(channels) - 1
        keys = iter(jax.random.split(key, 4 + 2 * levels))

        def block(c_in, c_out):
            return _TimeConvBlock(c_in, c_out, embed_dim, groups, activation, dtype, next(keys))

        self.embedding = SinusoidalEmbedding(embed_dim, time_scale)
        self.time_mlp = eqx.nn.MLP(
            embed_dim, embed_dim, embed_dim, depth=1, activation=activation, dtype=dtype, key=next(keys)
        )
        self.stem = block(in_channels, channels[0])
        self.down = tuple(block(channels[i], channels[i + 1]) for i in range(levels))
        self.middle = block(channels[-1], channels[-1])
        self.up = tuple(block(channels[i + 1] + channels[i], channels[i]) for i in range(levels))
        self.head = eqx.nn.Conv2d(channels[0], in_channels, 1, dtype=dtype, key=next(keys))

    def __call__(self, x: Float[Array, "C H W"], t: Real[Array, ""]) -> Float[Array, "C H W"]:
        """Predicted noise for one image ``x`` of shape ``(C, H, W)`` at the scalar time ``t``."""
        if x.ndim != 3 or x.shape[0] != self.in_channels:
            raise ValueError(f"x must have shape ({self.in_channels}, H, W) (one example), got {x.shape}")
        t = jnp.asarray(t)
        t = t if jnp.issubdtype(t.dtype, jnp.floating) else t.astype(x.dtype)
        t_emb = self.time_mlp(self.embedding(t))
        height, width = x.shape[1:]
        multiple = 2 ** len(self.down)
        h = jnp.pad(x, ((0, 0), (0, -height % multiple), (0, -width % multiple)))
        h = self.stem(h, t_emb)
        skips = []
        for block in self.down:
            skips.append(h)
            h = block(_downsample(h), t_emb)
        h = self.middle(h, t_emb)
        for block, skip in zip(reversed(self.up), reversed(skips)):
            h = block(jnp.concatenate([_upsample(h), skip]), t_emb)
        out = jnp.einsum("oc,chw->ohw", self.head.weight[:, :, 0, 0], h) + self.head.bias
        return out[:, :height, :width]
