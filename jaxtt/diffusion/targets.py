r"""Low-variance regression targets: the noise the empirical data distribution's optimal denoiser predicts.

L_simple regresses :math:`\epsilon_\theta(x_t, t)` on the *sampled* noise :math:`\epsilon`, whose conditional
mean given :math:`x_t` is the optimal prediction :math:`\epsilon^*(x_t, t) = E[\epsilon \mid x_t]`; the rest,
:math:`\epsilon - \epsilon^*`, is noise the regression has to average out. A closed-form fit sees a fixed set
of rows, so that noise stays in the fitted model. Replacing :math:`\epsilon` by its conditional mean under the
*empirical* distribution of a reference set :math:`\{y_i\}_{i=1}^n` (the training set) removes it (the
"stable target field" of Xu et al. 2023, "Stable target field for reduced variance score estimation in
diffusion models", eq. 6): with :math:`a_t = \sqrt{\bar\alpha_t}`, :math:`s_t = \sqrt{1 - \bar\alpha_t}`,

.. math::

    w_i(x_t) = \operatorname{softmax}_i\Big(-\frac{\|x_t - a_t y_i\|^2}{2 s_t^2}\Big), \qquad
    \hat\epsilon(x_t, t) = \frac{x_t - a_t \sum_i w_i(x_t)\, y_i}{s_t},

the posterior mean of the noise when :math:`x_0` is uniform on the reference set. At large :math:`t` the
weights spread over many points and the target is much less noisy than :math:`\epsilon`; at small :math:`t` it
is the noise towards the nearest reference point, i.e. the sampled :math:`\epsilon` itself when :math:`x_t` was
drawn from a reference point. A model that fitted these targets *exactly* would reproduce the reference points
(the empirical distribution's denoiser memorises); a smooth model class (a low-rank FTT) averages nearby
targets instead, and the distance of samples to their nearest training point against a held-out set measures
how much is memorised.

The same posterior mean gives the low-variance target of flow matching (Lipman et al. 2022; Liu et al. 2022) on
the linear interpolant :math:`x_s = (1 - s)\,x_0 + s\,\epsilon` (:mod:`jaxtt.diffusion.flow_matching`): it is
the signal/noise pair :math:`(a, \sigma) = (1 - s, s)`, and with :math:`\hat x_0(x_s) = \sum_i w_i y_i` for the
weights :math:`w_i = \operatorname{softmax}_i(-\|x_s - (1 - s) y_i\|^2 / (2 s^2))`,

.. math::

    E[\epsilon - x_0 \mid x_s] = \frac{x_s - (1 - s)\,\hat x_0}{s} - \hat x_0 = \frac{x_s - \hat x_0}{s}

replaces the sampled velocity :math:`\epsilon - x_0` (:func:`empirical_bayes_velocity`).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from jaxtt._validation import check_array, check_batch, check_finite, check_int, check_labels, is_concrete
from jaxtt.diffusion._checks import check_schedule, check_timesteps
from jaxtt.diffusion.parameterization import per_row, signal_and_noise_scales
from jaxtt.diffusion.schedule import Schedule

__all__ = ["empirical_bayes_eps", "empirical_bayes_velocity"]


def empirical_bayes_eps(
    schedule: Schedule,
    x_t: Float[Array, "M D"],
    t: Int[Array, " M"],
    reference: Float[Array, "n D"],
    *,
    labels: Int[Array, " M"] | None = None,
    reference_labels: Int[Array, " n"] | None = None,
    chunk_size: int = 256,
) -> Float[Array, "M D"]:
    r""":math:`E[\epsilon \mid x_t]` when :math:`x_0` is uniform on ``reference`` (module docstring).

    With class labels the target is the class-conditional one, :math:`E[\epsilon \mid x_t, y]` under the
    empirical distribution of class :math:`y`: the softmax of a row runs over the reference points of the row's
    label only. A row whose label no reference point carries (the null label of classifier-free guidance)
    gets the unconditional target over all points.

    Cost ``O(M n D)`` in chunks of ``chunk_size`` rows (memory ``O(chunk_size · n)``); jit-able.

    Args:
        schedule: the diffusion schedule.
        x_t: noised points ``(M, D)``; t: their steps ``(M,)`` in ``1..T``.
        reference: the points of the empirical distribution ``(n, D)`` (usually the training set).
        labels, reference_labels: integer class labels ``(M,)`` of the rows and ``(n,)`` of the reference
            points (both or neither).
        chunk_size: rows per chunk.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt.diffusion import linear_schedule, q_sample
        >>> schedule = linear_schedule(100)
        >>> y = jnp.array([[1.0, -2.0]])  # one reference point: the target is the exact noise
        >>> eps = jax.random.normal(jax.random.key(0), (3, 2))
        >>> t = jnp.array([1, 50, 100])
        >>> x_t = q_sample(schedule, jnp.tile(y, (3, 1)), t, eps)
        >>> bool(jnp.allclose(empirical_bayes_eps(schedule, x_t, t, y), eps, atol=1e-4))
        True
    """
    schedule = check_schedule(schedule)
    x_t = check_batch(x_t, "x_t", min_ndim=2)
    reference = check_batch(reference, "reference", event_shape=x_t.shape[1:])
    t = jnp.broadcast_to(check_timesteps(t, schedule, x_t.shape[0]), x_t.shape[:1])
    chunk_size = check_int(chunk_size, "chunk_size", minimum=1)
    labels, reference_labels = _check_label_pair(labels, reference_labels, x_t.shape[0], reference.shape[0])
    a, s = signal_and_noise_scales(schedule.log_alpha_bar_at(t))
    mean = _posterior_mean(x_t.reshape(x_t.shape[0], -1), a, s, reference.reshape(reference.shape[0], -1), labels,
                           reference_labels, chunk_size).reshape(x_t.shape)
    return (x_t - per_row(a, x_t) * mean) / per_row(s, x_t)


def empirical_bayes_velocity(
    x_s: Float[Array, "M D"],
    s: Float[Array, " M"],
    reference: Float[Array, "n D"],
    *,
    labels: Int[Array, " M"] | None = None,
    reference_labels: Int[Array, " n"] | None = None,
    chunk_size: int = 256,
) -> Float[Array, "M D"]:
    r""":math:`E[\epsilon - x_0 \mid x_s]` on the linear interpolant when :math:`x_0` is uniform on ``reference``.

    The flow-matching velocity of the empirical distribution (module docstring):
    :math:`(x_s - \hat x_0(x_s))/s` with :math:`\hat x_0` the softmax-weighted mean of the reference points
    under the signal scale :math:`1 - s` and noise scale :math:`s`. At :math:`s = 1` the weights are uniform
    (the target is :math:`x_s` minus the reference mean); as :math:`s \to 0` they concentrate on the nearest
    reference point. ``s`` is floored at the dtype's machine epsilon, so a row at ``s = 0`` gets a finite
    target (0 when :math:`x_s` is a reference point, the limit of the target along a path that ends there).
    Labels as in :func:`empirical_bayes_eps`. Cost ``O(M n D)`` in chunks of ``chunk_size`` rows; jit-able.

    Args:
        x_s: interpolant points ``(M, D)``.
        s: their times ``(M,)`` (or a scalar) in ``[0, 1]``.
        reference: the points of the empirical distribution ``(n, D)`` (usually the training set).
        labels, reference_labels: integer class labels ``(M,)`` and ``(n,)`` (both or neither).
        chunk_size: rows per chunk.

    Returns:
        The target velocity, shape of ``x_s``.

    Raises:
        ValueError: ``s`` outside ``[0, 1]`` or of the wrong shape, ``reference`` of another event shape, labels
            given for one side only.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> y = jnp.array([[1.0, -2.0]])  # one reference point: the target is the exact eps - x0
        >>> eps = jax.random.normal(jax.random.key(0), (3, 2))
        >>> s = jnp.array([0.01, 0.5, 1.0])
        >>> x_s = (1 - s[:, None]) * y + s[:, None] * eps
        >>> bool(jnp.allclose(empirical_bayes_velocity(x_s, s, y), eps - y, atol=1e-5))
        True
    """
    x_s = check_batch(x_s, "x_s", min_ndim=2)
    reference = check_batch(reference, "reference", event_shape=x_s.shape[1:])
    s = check_array(s, "s", floating=True)
    check_finite(s, "s")
    if s.ndim > 1 or (s.ndim == 1 and s.shape[0] != x_s.shape[0]):
        raise ValueError(f"s must be a scalar or have shape ({x_s.shape[0]},), got {tuple(s.shape)}")
    if is_concrete(s) and s.size and (np.min(s) < 0.0 or np.max(s) > 1.0):
        raise ValueError(f"s must lie in [0, 1], got values in [{np.min(s)}, {np.max(s)}]")
    chunk_size = check_int(chunk_size, "chunk_size", minimum=1)
    labels, reference_labels = _check_label_pair(labels, reference_labels, x_s.shape[0], reference.shape[0])
    s = jnp.maximum(jnp.broadcast_to(s.astype(x_s.dtype), x_s.shape[:1]), np.finfo(x_s.dtype).eps)
    mean = _posterior_mean(x_s.reshape(x_s.shape[0], -1), 1.0 - s, s, reference.reshape(reference.shape[0], -1),
                           labels, reference_labels, chunk_size).reshape(x_s.shape)
    return (x_s - mean) / per_row(s, x_s)


def _check_label_pair(labels, reference_labels, n_rows, n_reference):
    """Both label arrays checked, or all-zero labels (one class) when neither is given."""
    if (labels is None) != (reference_labels is None):
        raise ValueError("pass both labels (of the rows) and reference_labels (of the reference points), or neither")
    if labels is None:
        return jnp.zeros(n_rows, jnp.int32), jnp.zeros(n_reference, jnp.int32)
    return check_labels(labels, "labels", n_rows), check_labels(reference_labels, "reference_labels", n_reference)


@partial(jax.jit, static_argnames="chunk_size")
def _posterior_mean(x, a, s, reference, labels, reference_labels, chunk_size):
    """:math:`E[x_0 \mid x]` for :math:`x = a x_0 + s \epsilon`, :math:`x_0` uniform on the reference points of
    the row's label (on all of them when no point carries it); ``a``, ``s`` one value per row."""
    reference = reference.astype(x.dtype)
    half_norms = 0.5 * jnp.sum(reference * reference, axis=1)

    def one(row):
        x, a, s, label = row
        # -‖x − a y_i‖²/(2s²) up to the row constant -‖x‖²/(2s²), which the softmax ignores
        logits = (a * (reference @ x) - a * a * half_norms) / (s * s)
        same = reference_labels == label
        return jax.nn.softmax(logits, where=same | ~same.any()) @ reference

    return jax.lax.map(one, (x, a.astype(x.dtype), s.astype(x.dtype), labels), batch_size=chunk_size)
