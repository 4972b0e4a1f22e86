"""The sweeps' factorizations (``jaxtt._linalg``) equal jax.numpy.linalg's, values and derivatives, under vmap."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.linalg import cho_factor, cho_solve

from jaxtt._linalg import cholesky_solve, eigh, qr, svd

A = jax.random.normal(jax.random.key(0), (3, 2, 9, 4))
SPD = jnp.einsum("...ji,...jk->...ik", A, A) + jnp.eye(4)
B = jax.random.normal(jax.random.key(1), (3, 2, 4))

CASES = {
    "qr": (qr, jnp.linalg.qr, (A,)),
    "svd": (svd, lambda a: jnp.linalg.svd(a, full_matrices=False), (A,)),
    "eigh": (eigh, jnp.linalg.eigh, (SPD,)),
    "cholesky_solve": (cholesky_solve, lambda a, b: cho_solve(cho_factor(a), b[..., None])[..., 0], (SPD, B)),
}


@pytest.mark.parametrize("name", CASES)
def test_looped_factorizations_equal_the_batched_ones_with_their_gradients(name):
    ours, reference, args = CASES[name]
    got = jax.vmap(jax.vmap(ours))(*args)
    if name == "cholesky_solve":  # and it solves the system
        np.testing.assert_allclose(jnp.einsum("...ij,...j->...i", SPD, got), B, rtol=1e-10, atol=1e-12)
    want = reference(*args)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)

    def loss(f):  # a smooth, sign-invariant function of every output
        return lambda *a: sum(jnp.sum(jnp.sin(leaf) ** 2) for leaf in jax.tree.leaves(f(*a)))

    grads = jax.vmap(jax.grad(loss(ours), argnums=range(len(args))))(*[a[0] for a in args])
    expected = jax.vmap(jax.grad(loss(reference), argnums=range(len(args))))(*[a[0] for a in args])
    for g, w in zip(grads, expected, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-8, atol=1e-10)
