"""UNet: the time-conditioned conv block against SciPy/NumPy, shapes for 8x8 and 28x28, and errors."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.signal import correlate2d

from jaxtt.nn import Batched, UNet
from jaxtt.nn.unet import _downsample, _upsample


@pytest.fixture(scope="module")
def unet():
    """A tiny U-Net (two downsamplings), shared by the tests to keep compilation cheap."""
    return UNet(1, channels=(2, 4, 4), groups=2, embed_dim=4, key=jax.random.key(0))


def np_groupnorm(norm, x, groups, eps=1e-5):
    c = x.shape[0]
    g = x.reshape(groups, -1)
    g = (g - g.mean(1, keepdims=True)) / np.sqrt(g.var(1, keepdims=True) + eps)
    return g.reshape(x.shape) * np.asarray(norm.weight).reshape(c, 1, 1) + np.asarray(norm.bias).reshape(c, 1, 1)


def test_time_conv_block_matches_reference(unet):
    """Time-embedding conv block: act(norm(conv(x)) + W act(t_emb)), with GroupNorm and zero-padded 3x3 convolution."""
    block = unet.down[0]  # 2 -> 4 channels, 2 groups, SiLU
    c_in, c_out, groups = 2, 4, 2
    silu = lambda a: a / (1.0 + np.exp(-a))  # noqa: E731
    x = np.asarray(jax.random.normal(jax.random.key(1), (c_in, 6, 5)))
    t_emb = np.asarray(jax.random.normal(jax.random.key(2), (4,)))
    w, b = np.asarray(block.conv.weight), np.asarray(block.conv.bias)
    conv = np.stack([sum(correlate2d(x[i], w[o, i], mode="same") for i in range(c_in)) for o in range(c_out)])
    conv += b.reshape(c_out, 1, 1)
    shift = np.asarray(block.time_proj.weight) @ silu(t_emb) + np.asarray(block.time_proj.bias)
    expected = silu(np_groupnorm(block.norm, conv, groups) + shift[:, None, None])
    got = eqx.filter_jit(block)(jnp.asarray(x), jnp.asarray(t_emb))
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)


def test_resampling_helpers():
    x = np.arange(2 * 4 * 6, dtype=float).reshape(2, 4, 6)
    np.testing.assert_allclose(_downsample(jnp.asarray(x)), x.reshape(2, 2, 2, 3, 2).mean((2, 4)))
    up = np.asarray(_upsample(jnp.asarray(x)))
    assert up.shape == (2, 8, 12)
    for i in (0, 1):
        for j in (0, 1):
            np.testing.assert_array_equal(up[:, i::2, j::2], x)


@pytest.mark.parametrize("size", [8, 28])
def test_shapes_and_time_dependence(unet, size):
    eps = eqx.filter_jit(Batched(unet))
    x = jax.random.normal(jax.random.key(1), (2, 1, size, size))
    t = jnp.array([5, 500])
    out = eps(jnp.concatenate([x, x]), jnp.concatenate([t, t[::-1]]))
    assert out.shape == (4, 1, size, size) and bool(jnp.all(jnp.isfinite(out)))
    # the time embedding is injected: the same image at another time gives another output
    assert float(jnp.max(jnp.abs(out[0] - out[2]))) > 1e-4
    assert float(jnp.max(jnp.abs(out[1] - out[3]))) > 1e-4


def test_padding_for_odd_sizes_and_float32(unet):
    unet32 = jax.tree.map(lambda a: a.astype(jnp.float32) if eqx.is_inexact_array(a) else a, unet)
    out = eqx.filter_jit(unet32)(jnp.ones((1, 7, 5), jnp.float32), jnp.asarray(3))
    assert out.shape == (1, 7, 5) and out.dtype == jnp.float32


def test_depends_on_every_pixel(unet):
    """The down/up path with skips gives the corner output pixel a receptive field over the whole 8x8 image."""
    x = jax.random.normal(jax.random.key(4), (1, 8, 8))
    grad = jax.jit(jax.grad(lambda z: unet(z, 10)[0, 0, 0]))(x)
    assert float(jnp.min(jnp.abs(grad))) > 0.0


def test_dtype_argument():
    # eval_shape traces the initialisation without compiling it
    unet = eqx.filter_eval_shape(UNet, 1, channels=(2, 2), groups=1, key=jax.random.key(0), dtype=jnp.float32)
    leaves = [leaf for leaf in jax.tree.leaves(unet) if isinstance(leaf, jax.ShapeDtypeStruct)]
    assert leaves and all(leaf.dtype == jnp.float32 for leaf in leaves)


def test_bad_arguments(unet):
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="divisible"):
        UNet(1, channels=(4, 6), groups=4, key=key)
    with pytest.raises(ValueError, match="at least 2"):
        UNet(1, channels=(4,), key=key)
    with pytest.raises(ValueError, match="channels"):
        UNet(1, channels=(4, 0), groups=1, key=key)
    with pytest.raises(ValueError, match=r"\(1, H, W\)"):
        unet(jnp.ones((2, 8, 8)), 1)
    with pytest.raises(ValueError, match=r"\(1, H, W\)"):
        unet(jnp.ones((8, 8)), 1)


def test_matches_a_lax_convolution_reference(unet):
    """The whole U-Net (im2col 3x3 convolutions, matrix-product head) against the same architecture written with
    ``lax.conv_general_dilated`` and NumPy pooling, GroupNorm and upsampling, from the same weights."""
    silu = lambda a: a / (1.0 + np.exp(-a))  # noqa: E731

    def conv(x, weight, bias, padding):
        out = jax.lax.conv_general_dilated(jnp.asarray(x)[None], weight, (1, 1), padding)[0]
        return np.asarray(out) + np.asarray(bias).reshape(-1, 1, 1)

    def block(b, x, t_emb):
        shift = np.asarray(b.time_proj.weight) @ silu(t_emb) + np.asarray(b.time_proj.bias)
        groups = b.norm.groups
        return silu(np_groupnorm(b.norm, conv(x, b.conv.weight, b.conv.bias, "SAME"), groups) + shift[:, None, None])

    x = np.asarray(jax.random.normal(jax.random.key(7), (1, 8, 8)))
    t = 37.0
    t_emb = np.asarray(unet.time_mlp(unet.embedding(jnp.asarray(t))))
    h = block(unet.stem, x, t_emb)
    skips = []
    for b in unet.down:
        skips.append(h)
        c, height, width = h.shape
        h = block(b, h.reshape(c, height // 2, 2, width // 2, 2).mean((2, 4)), t_emb)
    h = block(unet.middle, h, t_emb)
    for b, skip in zip(reversed(unet.up), reversed(skips)):
        h = block(b, np.concatenate([h.repeat(2, axis=1).repeat(2, axis=2), skip]), t_emb)
    expected = conv(h, unet.head.weight, unet.head.bias, "VALID")
    np.testing.assert_allclose(eqx.filter_jit(unet)(jnp.asarray(x), t), expected, rtol=1e-10, atol=1e-10)


def test_checkpoint_of_the_conv2d_layout_is_refused(unet, tmp_path):
    """Earlier U-Nets held eqx.nn.Conv2d 3x3 convolutions with (c, 1, 1) biases: loading one names those leaves."""
    from jaxtt.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

    blocks = lambda m: [m.stem, *m.down, m.middle, *m.up]  # noqa: E731
    old = eqx.tree_at(lambda m: [b.conv.bias for b in blocks(m)], unet,
                      [b.conv.bias.reshape(-1, 1, 1) for b in blocks(unet)])
    save_checkpoint(tmp_path / "old.ckpt", old)
    with pytest.raises(CheckpointError, match=r"\.stem\.conv\.bias is float64\[2, 1, 1\] in the file but float64\[2\]"):
        load_checkpoint(tmp_path / "old.ckpt", unet)
    assert eqx.tree_equal(load_checkpoint(tmp_path / "old.ckpt", old)[0], old)
