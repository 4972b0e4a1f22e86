"""FTT evaluation and the FTT denoiser against dense references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxtt import tt
from jaxtt.basis import BSpline, Indicator, Legendre
from jaxtt.ftt import FTT, FTTDenoiser, constant_init
from jaxtt.nn import SinusoidalEmbedding


def random_ftt(seed=0, m=4, d=3, rank=2, dtype=jnp.float64, bases=None):
    bases = bases or [Legendre(m)] * d
    return FTT(tt.random(jax.random.key(seed), [b.m for b in bases], rank, dtype=dtype), bases)


def test_ftt_matches_dense_sum():
    f = random_ftt()
    x = np.random.default_rng(0).uniform(-1, 1, (20, 3))
    phis = [np.asarray(b(jnp.asarray(x[:, k]))) for k, b in enumerate(f.bases)]
    dense = np.asarray(tt.full(f.tt))
    ref = np.einsum("ijk,ni,nj,nk->n", dense, *phis)
    np.testing.assert_allclose(f(jnp.asarray(x)), ref, rtol=1e-12)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_ftt_gradient_matches_autodiff(dtype):
    f = random_ftt(1, bases=[Legendre(5), BSpline(6, domain=(-1.5, 1.5)), Legendre(3)], dtype=dtype)
    x = jnp.asarray(np.random.default_rng(1).uniform(-0.9, 0.9, (7, 3)), dtype)
    auto = jax.vmap(jax.grad(lambda xi: f(xi[None])[0]))(x)
    out = f.grad(x)
    assert out.dtype == dtype
    np.testing.assert_allclose(out, auto, rtol=1e-4 if dtype == jnp.float32 else 1e-10, atol=1e-5)


def test_batched_ftt_evaluates_each_member():
    bases = [Legendre(3)] * 3
    batch = jax.vmap(lambda k: tt.random(k, (3, 3, 3), 2, dtype=jnp.float64))(jax.random.split(jax.random.key(2), 4))
    f = FTT(batch, bases)
    x = jnp.asarray(np.random.default_rng(2).uniform(-1, 1, (6, 3)))
    out, grad = f(x), f.grad(x)
    assert out.shape == (6, 4) and grad.shape == (6, 4, 3)  # samples first, like the targets of a fit
    for j in range(4):
        member = FTT(jax.tree_util.tree_map(lambda c: c[j], batch), bases)
        np.testing.assert_allclose(out[:, j], member(x), rtol=1e-12)
        np.testing.assert_allclose(grad[:, j], member.grad(x), rtol=1e-12)


def test_constant_init_is_constant_plus_noise():
    for basis in (Legendre(5, domain=(-2, 3)), BSpline(7, domain=(-1, 1)), Legendre(4, orthonormal=True)):
        bases = [basis] * 3
        f = FTT(constant_init(bases, 3, noise=0.0, dtype=jnp.float64, key=jax.random.key(0)), bases)
        a, b = basis.domain
        x = jnp.asarray(np.random.default_rng(3).uniform(a, b, (10, 3)))
        np.testing.assert_allclose(f(x), 1.0, rtol=1e-8)


def test_ftt_errors():
    f = random_ftt()
    with pytest.raises(ValueError, match="one basis per mode"):
        FTT(f.tt, [Legendre(4)] * 2)
    with pytest.raises(ValueError, match="m = 5 functions"):
        FTT(f.tt, [Legendre(4), Legendre(5), Legendre(4)])
    with pytest.raises(TypeError, match="TensorTrain"):
        FTT(np.ones((2, 2)), [Legendre(2)])
    with pytest.raises(ValueError, match=r"shape \(N, 3\)"):
        f(jnp.ones((4, 2)))
    with pytest.raises(ValueError, match="finite"):
        f(jnp.full((2, 3), jnp.nan))


@pytest.mark.parametrize("time", ["core", "additive"])
@pytest.mark.parametrize("output", ["independent", "core"])
def test_denoiser_against_manual_evaluation(time, output):
    dim, T = 3, 50
    model = FTTDenoiser(dim, T, rank=3, m=4, time=time, output=output, noise=0.3, dtype=jnp.float64,
                        key=jax.random.key(0))
    rng = np.random.default_rng(4)
    x = jnp.asarray(rng.normal(size=(5, dim)) * 2)
    t = jnp.asarray(rng.integers(1, T + 1, 5))
    out = model(x, t)
    assert out.shape == (5, dim) and out.dtype == jnp.float64
    # independent reference: build the variables by hand and evaluate dense TTs
    if time == "core":
        v = np.concatenate([np.clip(np.asarray(x), -4, 4), np.asarray(t)[:, None] / T], axis=1)
    else:
        emb = np.asarray(jax.vmap(SinusoidalEmbedding(4, scale=T))(t.astype(jnp.float64)))[:, :dim]
        v = np.clip(np.asarray(x) + emb, -4, 4)
    bases = model.ftt.bases
    phis = [np.asarray(b(jnp.asarray(v[:, k]))) for k, b in enumerate(bases[: v.shape[1]])]
    letters = "abcdefgh"[: len(phis)]
    spec = letters + "," + ",".join(f"n{c}" for c in letters) + "->n"
    if output == "independent":
        for j in range(dim):
            dense = np.asarray(tt.full(jax.tree_util.tree_map(lambda c: c[j], model.ftt.tt)))
            np.testing.assert_allclose(out[:, j], np.einsum(spec, dense, *phis), rtol=1e-10)
    else:
        assert isinstance(bases[-1], Indicator)
        dense = np.asarray(tt.full(model.ftt.tt))
        ref = np.einsum(letters + "z," + ",".join(f"n{c}" for c in letters) + "->nz", dense, *phis)
        np.testing.assert_allclose(out, ref, rtol=1e-10)


def test_denoiser_is_jittable_and_clamps():
    model = FTTDenoiser(2, 10, rank=2, m=3, noise=0.5, dtype=jnp.float32, key=jax.random.key(1))
    x = jnp.array([[10.0, -20.0], [4.0, -4.0]], jnp.float32)
    t = jnp.array([3, 3])
    out = jax.jit(lambda m, a, b: m(a, b))(model, x, t)
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(out[0], out[1], rtol=1e-6)  # clamped to the domain (-4, 4)
    assert model.num_params == sum(int(np.prod(c.shape)) for c in model.ftt.tt.cores)


def test_denoiser_errors():
    with pytest.raises(ValueError, match="time must be one of"):
        FTTDenoiser(2, 10, time="concat", key=jax.random.key(0))
    with pytest.raises(ValueError, match="output must be one of"):
        FTTDenoiser(2, 10, output="shared", key=jax.random.key(0))
    with pytest.raises(ValueError, match="basis must be one of"):
        FTTDenoiser(2, 10, basis="wavelet", key=jax.random.key(0))
    with pytest.raises(ValueError, match="rank must be >= 1"):
        FTTDenoiser(2, 10, rank=0, key=jax.random.key(0))
    model = FTTDenoiser(2, 10, key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"x must have shape \(N, 2\)"):
        model(jnp.ones((3, 3)), jnp.ones(3, jnp.int32))
    with pytest.raises(ValueError, match="t must have shape"):
        model(jnp.ones((3, 2)), jnp.ones(4, jnp.int32))
