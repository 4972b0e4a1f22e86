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
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from jaxtt._validation import check_batch, check_int, check_labels
from jaxtt.diffusion._checks import check_schedule, check_timesteps
from jaxtt.diffusion.parameterization import signal_and_noise_scales
from jaxtt.diffusion.schedule import Schedule

__all__ = ["empirical_bayes_eps"]


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
    if (labels is None) != (reference_labels is None):
        raise ValueError("pass both labels (of the rows) and reference_labels (of the reference points), or neither")
    if labels is None:
        labels, reference_labels = jnp.zeros(x_t.shape[0], jnp.int32), jnp.zeros(reference.shape[0], jnp.int32)
    else:
        labels = check_labels(labels, "labels", x_t.shape[0])
        reference_labels = check_labels(reference_labels, "reference_labels", reference.shape[0])
    return _empirical_bayes_eps(schedule, x_t.reshape(x_t.shape[0], -1), t, reference.reshape(reference.shape[0], -1),
                                labels, reference_labels, chunk_size).reshape(x_t.shape)


@partial(jax.jit, static_argnames="chunk_size")
def _empirical_bayes_eps(schedule, x_t, t, reference, labels, reference_labels, chunk_size):
    reference = reference.astype(x_t.dtype)
    half_norms = 0.5 * jnp.sum(reference * reference, axis=1)

    def one(row):
        x, step, label = row
        a, s = signal_and_noise_scales(schedule.log_alpha_bar_at(step))
        # -‖x − a y_i‖²/(2s²) up to the row constant -‖x‖²/(2s²), which the softmax ignores
        logits = (a * (reference @ x) - a * a * half_norms) / (s * s)
        same = reference_labels == label
        mean = jax.nn.softmax(logits, where=same | ~same.any()) @ reference
        return (x - a * mean) / s

    return jax.lax.map(one, (x_t, t, labels), batch_size=chunk_size)
