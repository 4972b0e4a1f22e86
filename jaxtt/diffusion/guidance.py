r"""Guidance: turn a conditional model into the unconditional-looking ``model(x, t)`` every sampler takes.

- Classifier-free guidance (Ho & Salimans 2022, eq. 6): with a conditional model trained with a null label
  :math:`\varnothing` (label dropout),

  .. math:: \tilde\epsilon(x_t, t) = (1 + w)\,\epsilon(x_t, t, y) - w\,\epsilon(x_t, t, \varnothing).

  The combination is affine with weights summing to one, so it is the same in every parameterization
  (``eps``, ``x0``, ``v``, ``score``): the guided model predicts what the conditional model predicts.
- Classifier guidance (Dhariwal & Nichol 2021, eq. 14; Song et al. 2021, eq. 48): with a classifier
  :math:`\log p_\phi(y \mid x_t, t)`,

  .. math:: \tilde\epsilon(x_t, t) = \hat\epsilon(x_t, t) - w\,s_t\,\nabla_{x_t}\log p_\phi(y \mid x_t, t),

  the noise prediction of the score :math:`\nabla\log q_t(x_t) + w\nabla\log p_\phi(y\mid x_t)`, i.e. of the
  tilted density :math:`q_t(x)\,p_\phi(y \mid x)^w`; ``w = 1`` with the exact classifier gives exactly the
  conditional model :math:`\epsilon(x_t, t, y)`.

Both are Equinox modules (their array leaves are traced by the samplers' ``filter_jit``), and ``scale`` may be
a number or a function ``w(t)`` of the integer step (time-dependent guidance), e.g. :class:`GuidanceInterval`:
guidance only on a limited interval of noise levels (Kynkäänniemi et al. 2024), which keeps it away from the
small-``t`` end, where the guidance direction :math:`\epsilon(x_t, t, y) - \epsilon(x_t, t, \varnothing)` of a
fitted model is least accurate and guidance costs the most diversity.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array

from jaxtt._validation import check_choice, check_int, check_real
from jaxtt.diffusion._checks import check_model, check_schedule
from jaxtt.diffusion.parameterization import PREDICTIONS, per_row, signal_and_noise_scales, to_data_and_noise

__all__ = ["ClassifierFreeGuidance", "ClassifierGuidance", "GuidanceInterval"]


def _check_scale(scale):
    """A callable ``w(t)``, or the weight as a 0-d array (traced by ``filter_jit``: no recompilation per value)."""
    if callable(scale):
        return scale
    if hasattr(scale, "shape") and getattr(scale, "ndim", None) == 0:
        return jnp.asarray(scale)
    return jnp.asarray(check_real(scale, "scale"))


def _scale_at(scale, t, x):
    w = scale(t) if callable(scale) else scale
    return per_row(jnp.broadcast_to(jnp.asarray(w), t.shape), x)


def _labels(label, n):
    label = jnp.asarray(label)
    return jnp.broadcast_to(label, (n,) + label.shape[1:]) if label.ndim <= 1 else label


class GuidanceInterval(eqx.Module):
    r"""A guidance weight on a limited interval of steps (Kynkäänniemi et al. 2024, "Applying guidance in a
    limited interval improves sample and distribution quality in diffusion models"):

    .. math:: w(t) = w \text{ if } t_\text{low} < t \le t_\text{high}, \text{ else } 0,

    the ``scale`` of :class:`ClassifierFreeGuidance` or :class:`ClassifierGuidance` (``w = 0`` is the
    conditional, respectively the unguided, model). Its leaves are arrays, so changing ``w`` or the interval
    does not recompile a jitted sampler.

    Args:
        scale: the guidance weight :math:`w` inside the interval.
        low, high: the interval ``(low, high]`` of integer steps (``0 <= low < high``).

    Raises:
        TypeError: ``low`` or ``high`` is not an integer.
        ValueError: a non-finite ``scale``, a negative ``low`` or ``high <= low``.

    Examples:
        >>> import jax.numpy as jnp
        >>> GuidanceInterval(2.0, low=100, high=700)(jnp.array([50, 100, 101, 700, 900])).tolist()
        [0.0, 0.0, 2.0, 2.0, 0.0]
    """

    scale: Array
    low: Array
    high: Array

    def __init__(self, scale, low, high):
        self.scale = jnp.asarray(check_real(scale, "scale"))
        low = check_int(low, "low", minimum=0)
        self.low, self.high = jnp.asarray(low), jnp.asarray(check_int(high, "high", minimum=low + 1))

    def __call__(self, t):
        t = jnp.asarray(t)
        return jnp.where((t > self.low) & (t <= self.high), self.scale, jnp.zeros_like(self.scale))


class ClassifierFreeGuidance(eqx.Module):
    r"""Classifier-free guidance :math:`(1 + w)\,m(x, t, y) - w\,m(x, t, \varnothing)` of a conditional model
    (module docstring); both halves are evaluated in one batched call of size ``2N``.

    Args:
        model: conditional model ``model(x, t, y)`` with labels ``y`` of shape ``(N,)`` (or ``(N, ...)``).
        label: the label to guide towards: a scalar (every row) or one per row.
        null_label: the null label :math:`\varnothing` the model was trained with under label dropout.
        scale: the guidance weight :math:`w` (``0`` is the conditional model, ``-1`` the unconditional one),
            or a function ``w(t)`` of the integer steps ``t`` ``(N,)``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt.diffusion import ClassifierFreeGuidance, DDIM, linear_schedule, sample
        >>> cond = lambda x, t, y: 0.9 * x + 0.1 * y[:, None]     # a stand-in conditional model
        >>> guided = ClassifierFreeGuidance(cond, label=1, null_label=0, scale=2.0)
        >>> sample(guided, linear_schedule(100), DDIM(steps=10), jax.random.key(0), (4, 2)).samples.shape
        (4, 2)
    """

    model: Callable
    label: Array
    null_label: Array
    scale: float | Callable = 1.0

    def __init__(self, model, label, null_label, scale=1.0):
        check_model(model)
        self.model = model
        self.label = jnp.asarray(label)
        self.null_label = jnp.asarray(null_label)
        self.scale = _check_scale(scale)

    def __call__(self, x, t):
        n = x.shape[0]
        y = _labels(self.label, n)
        null = jnp.broadcast_to(self.null_label.astype(y.dtype), y.shape)
        both = self.model(jnp.concatenate([x, x]), jnp.concatenate([t, t]), jnp.concatenate([y, null]))
        cond, uncond = both[:n], both[n:]
        w = _scale_at(self.scale, t, cond)
        return (1.0 + w) * cond - w * uncond


class ClassifierGuidance(eqx.Module):
    r"""Classifier guidance :math:`\hat\epsilon - w\,s_t\nabla_{x}\log p_\phi(y \mid x, t)` (module docstring).

    The guided model always predicts the noise (sample it with ``prediction="eps"``); a base model of another
    parameterization is converted first. The gradient is taken row by row (the classifier must treat the rows
    of its batch independently).

    Args:
        model: the unconditional model ``model(x, t)``.
        log_prob: the classifier, ``log_prob(x, t, y) -> (N,)`` log-probabilities of the labels ``y`` (e.g.
            ``jax.nn.log_softmax(logits(x, t))[jnp.arange(N), y]``).
        label: the label to guide towards: a scalar or one per row.
        schedule: the noise schedule (for :math:`s_t`).
        scale: the guidance weight :math:`w`, or a function ``w(t)``.
        prediction: what ``model`` outputs (``"eps"``, ``"x0"``, ``"v"`` or ``"score"``).

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt.data import GaussianMixture
        >>> from jaxtt.diffusion import linear_schedule
        >>> schedule = linear_schedule(100)
        >>> means, covs = jnp.array([[-2.0, 0.0], [2.0, 0.0]]), 0.25 * jnp.stack([jnp.eye(2)] * 2)
        >>> mix = GaussianMixture(jnp.ones(2), means, covs)  # class y = k is component k
        >>> def log_prob(x, t, y):  # the exact classifier p(y | x_t) of the noised mixture
        ...     ab = schedule.alpha_bar_at(t)[:, None]
        ...     d2 = jnp.sum((x[:, None, :] - jnp.sqrt(ab)[..., None] * means) ** 2, axis=-1)
        ...     return jax.nn.log_softmax(-d2 / (2 * (0.25 * ab + 1 - ab)))[jnp.arange(x.shape[0]), y]
        >>> guided = ClassifierGuidance(lambda x, t: mix.optimal_eps(x, t, schedule), log_prob, 1, schedule)
        >>> x, t = jax.random.normal(jax.random.key(0), (5, 2)), jnp.full(5, 30)
        >>> right = GaussianMixture(jnp.ones(1), means[1:], covs[1:])  # w = 1 gives the conditional model
        >>> bool(jnp.allclose(guided(x, t), right.optimal_eps(x, t, schedule), atol=1e-4))
        True
    """

    model: Callable
    log_prob: Callable
    label: Array
    schedule: eqx.Module
    scale: float | Callable = 1.0
    prediction: str = eqx.field(static=True, default="eps")

    def __init__(self, model, log_prob, label, schedule, scale=1.0, prediction="eps"):
        check_model(model)
        if not callable(log_prob):
            raise TypeError(f"log_prob must be callable as log_prob(x, t, y), got {type(log_prob).__name__}")
        self.model = model
        self.log_prob = log_prob
        self.label = jnp.asarray(label)
        self.schedule = check_schedule(schedule)
        self.scale = _check_scale(scale)
        self.prediction = check_choice(prediction, "prediction", PREDICTIONS)

    def __call__(self, x, t):
        lab = self.schedule.log_alpha_bar_at(t)
        out = self.model(x, t)
        eps = out if self.prediction == "eps" else to_data_and_noise(out, x, lab, self.prediction)[1]
        y = _labels(self.label, x.shape[0])
        grad = jax.grad(lambda z: jnp.sum(self.log_prob(z, t, y)))(x)
        _, s = signal_and_noise_scales(lab)
        return eps - _scale_at(self.scale, t, x) * per_row(s, x) * grad.astype(x.dtype)
