"""``lax.scan`` over sampler steps with optional two-level rematerialisation (memory ~ sqrt(steps))."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax


#: Up to this many steps a flat scan of checkpointed steps is used (its ``n`` stored carries are few).
_FLAT_MAX = 16


def sampler_scan(step, carry, xs, *, checkpoint: bool, record=None):
    """Run ``step(carry, x) -> carry`` over the leading axis of the pytree ``xs``.

    Returns ``(final_carry, trajectory)`` where ``trajectory`` stacks ``record(c)`` of the initial carry and of
    every iterate (``steps + 1`` entries) when ``record`` is given, and is None otherwise.

    With ``checkpoint=True`` each step is wrapped in ``jax.checkpoint`` and (for more than 16 steps) the
    steps are grouped into blocks of ``b = ceil(sqrt(n))`` steps, each block again checkpointed. Reverse-mode
    differentiation then stores only the carries at block boundaries plus the carries of one block being
    replayed: ``O(sqrt(n))`` carries and the activations of a single step, instead of all ``n`` steps'
    activations (Griewank & Walther 2000, two-level checkpointing). The forward pass is unchanged.
    """

    trajectory = record is not None

    def body(c, x):
        new = step(c, x)
        return new, (record(new) if trajectory else None)

    n = jax.tree.leaves(xs)[0].shape[0]
    if not checkpoint or n <= _FLAT_MAX:
        final, ys = lax.scan(jax.checkpoint(body, prevent_cse=False) if checkpoint else body, carry, xs)
    else:
        b = math.isqrt(n - 1) + 1
        q, r = divmod(n, b)
        inner = jax.checkpoint(body, prevent_cse=False)

        def block(c, xb):
            return lax.scan(inner, c, xb)

        head = jax.tree.map(lambda a: a[:r], xs)
        tail = jax.tree.map(lambda a: a[r:].reshape((q, b) + a.shape[1:]), xs)
        c = carry
        parts = []
        if r:
            c, ys_head = lax.scan(inner, c, head)
            parts.append(ys_head)
        final, ys_tail = lax.scan(jax.checkpoint(block, prevent_cse=False), c, tail)
        if trajectory:
            parts.append(ys_tail.reshape((q * b,) + ys_tail.shape[2:]))
            ys = jnp.concatenate(parts, axis=0)
    if not trajectory:
        return final, None
    return final, jnp.concatenate([record(carry)[None], ys], axis=0)
