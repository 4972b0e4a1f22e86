"""ResNetMLP against an independent NumPy forward pass, plus shapes, dtypes and errors."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxtt.nn import Batched, ResNetMLP


def reference_embedding(t, dim, scale):
    """The sinusoidal embedding in NumPy: sines then cosines of t * scale^(-i / (dim/2 - 1))."""
    angles = np.asarray(t, dtype=float)[:, None] * scale ** (-np.arange(dim // 2) / (dim // 2 - 1))
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=-1)


def np_linear(layer, x):
    return x @ np.asarray(layer.weight).T + np.asarray(layer.bias)


def np_layernorm(norm, u, eps=1e-5):
    z = (u - u.mean(-1, keepdims=True)) / np.sqrt(u.var(-1, keepdims=True) + eps)
    return z * np.asarray(norm.weight) + np.asarray(norm.bias)


def np_resnet(model, x, t, residual, add_time_to):
    """Eq. (6): z0 = A1 (x + f(t)) [printed] or A1 x + f(t); u = B2 silu(B1 z); z = [z +] LN(u); out = A2 z_L."""
    silu = lambda a: a / (1.0 + np.exp(-a))  # noqa: E731
    f_t = np_linear(model.time_proj, reference_embedding(t, model.embedding.dim, model.embedding.scale))
    z = np_linear(model.expand, x + f_t) if add_time_to == "input" else np_linear(model.expand, x) + f_t
    for block in model.blocks:
        u = np_layernorm(block.norm, np_linear(block.outer, silu(np_linear(block.inner, z))))
        z = z + u if residual else u
    return np_linear(model.contract, z)


@pytest.mark.parametrize("residual, add_time_to", [(True, "width"), (False, "input")])
def test_matches_numpy_eq6(residual, add_time_to):
    d, n = 2, 5
    model = ResNetMLP(
        d, width=8, depth=2, hidden=4, embed_dim=4, residual=residual, add_time_to=add_time_to, key=jax.random.key(0)
    )
    x = np.asarray(jax.random.normal(jax.random.key(1), (n, d)))
    t = np.array([1, 10, 100, 500, 1000])
    got = eqx.filter_jit(Batched(model))(jnp.asarray(x), jnp.asarray(t))
    assert got.shape == (n, d)
    np.testing.assert_allclose(got, np_resnet(model, x, t, residual, add_time_to), rtol=1e-10, atol=1e-10)


def test_structure_and_parameter_count():
    d, width, hidden, depth, e = 2, 8, 4, 3, 4
    model = ResNetMLP(d, width, depth, hidden=hidden, embed_dim=e, key=jax.random.key(0))
    assert len(model.blocks) == depth
    n_params = sum(leaf.size for leaf in jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array)))
    expected = (e * width + width) + (d * width + width) + depth * (2 * width * hidden + hidden + width + 2 * width)
    expected += width * d + d
    assert n_params == expected


def test_float32_and_time_dependence():
    model = ResNetMLP(2, 8, 2, hidden=4, embed_dim=4, key=jax.random.key(0), dtype=jnp.float32)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array)))
    eps = eqx.filter_jit(Batched(model))
    x = jnp.ones((4, 2), jnp.float32)
    out = eps(x, jnp.array([1, 2, 3, 4]))
    assert out.dtype == jnp.float32
    # the time embedding reaches the output: equal inputs at different times give different outputs
    assert float(jnp.min(jnp.abs(out[1:] - out[:-1]))) > 1e-6
    np.testing.assert_allclose(eps(x, jnp.full(4, 3)), jnp.broadcast_to(out[2], (4, 2)), rtol=1e-5)


def test_jit_grad():
    model = Batched(ResNetMLP(2, 8, 2, hidden=4, embed_dim=4, key=jax.random.key(0)))
    x = jax.random.normal(jax.random.key(1), (6, 2))
    t = jnp.arange(1, 7)
    grads = eqx.filter_jit(eqx.filter_grad(lambda m: jnp.sum(m(x, t) ** 2)))(model)
    leaves = jax.tree.leaves(grads)
    assert leaves and all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    assert float(jnp.abs(grads.module.time_proj.weight).sum()) > 0


def test_bad_arguments():
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="depth"):
        ResNetMLP(2, 8, 0, key=key)
    with pytest.raises(TypeError, match="in_size"):
        ResNetMLP(2.0, 8, 2, key=key)
    with pytest.raises(ValueError, match="add_time_to"):
        ResNetMLP(2, 8, 2, key=key, add_time_to="output")
    with pytest.raises(TypeError, match="activation"):
        ResNetMLP(2, 8, 2, key=key, activation="relu")
    model = ResNetMLP(2, 8, 1, embed_dim=4, key=key)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        model(jnp.ones((4, 2)), 1)
    with pytest.raises(ValueError, match="t must have shape"):
        Batched(model)(jnp.ones((4, 2)), jnp.ones(3, int))
    with pytest.raises(TypeError, match="callable"):
        Batched(3)
