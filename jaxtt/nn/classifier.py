"""Classifiers: a small CNN whose penultimate layer gives the features of a Fréchet distance, and a time-conditioned
classifier of noised data for classifier guidance."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray

from jaxtt._validation import check_array, check_int, check_key
from jaxtt.diffusion import q_sample
from jaxtt.nn.conv import Conv3x3, check_image_shape
from jaxtt.nn.embedding import SinusoidalEmbedding
from jaxtt.train import default_optimizer, fit

__all__ = [
    "ConvClassifier",
    "NoisyClassifier",
    "accuracy",
    "classifier_loss",
    "noisy_classifier_loss",
    "train_classifier",
]


class ConvClassifier(eqx.Module):
    r"""Class logits from two 3x3 convolutions (:class:`jaxtt.nn.conv.Conv3x3`), 2x2 average pooling and two
    linear layers.

    .. math::
        h &= \mathrm{pool}\bigl(\sigma(\mathrm{conv}_2\,\sigma(\mathrm{conv}_1 x))\bigr), \qquad
        \phi(x) = \sigma(W_1 \operatorname{vec} h + b_1) \in \mathbb{R}^{F}, \\
        \mathrm{logits}(x) &= W_2\,\phi(x) + b_2,

    with :math:`\sigma` = ReLU. The penultimate features :math:`\phi(x)` define the Fréchet distance of
    generated images (the FID recipe of Heusel et al. 2017 with the classifier in place of Inception; the
    latent-diffusion evaluation of Rombach et al. 2022 on MNIST uses the features of its own classifier in the
    same way): :meth:`features`.

    The module maps one image given as a flat row of ``height * width`` pixels (row-major, the layout of
    :func:`jaxtt.data.digits`); ``vmap`` it for batches.

    Args:
        key: PRNG key for the initialisation.
        image_shape: ``(height, width)``, both even.
        classes: number of classes.
        channels: channels of the two convolutions.
        features: size ``F`` of the penultimate layer.
        dtype: floating dtype of the parameters (default: JAX's default floating dtype).

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> model = ConvClassifier(key=jax.random.key(0))
        >>> x = jnp.zeros(64)
        >>> model(x).shape, model.features(x).shape
        ((10,), (32,))
        >>> bool(jnp.allclose(model(x), model.head(model.features(x))))  # the logits are linear in the features
        True
    """

    conv1: Conv3x3
    conv2: Conv3x3
    hidden: eqx.nn.Linear
    head: eqx.nn.Linear
    image_shape: tuple[int, int] = eqx.field(static=True)

    def __init__(
        self,
        *,
        key: PRNGKeyArray,
        image_shape: tuple[int, int] = (8, 8),
        classes: int = 10,
        channels: tuple[int, int] = (16, 32),
        features: int = 32,
        dtype=None,
    ):
        key = check_key(key)
        self.image_shape = check_image_shape(image_shape)
        classes = check_int(classes, "classes", minimum=2)
        c1, c2 = (check_int(c, "channels[i]", minimum=1) for c in channels)
        features = check_int(features, "features", minimum=1)
        k1, k2, k3, k4 = jax.random.split(key, 4)
        height, width = self.image_shape
        self.conv1 = Conv3x3(1, c1, dtype=dtype, key=k1)
        self.conv2 = Conv3x3(c1, c2, dtype=dtype, key=k2)
        self.hidden = eqx.nn.Linear(c2 * (height // 2) * (width // 2), features, dtype=dtype, key=k3)
        self.head = eqx.nn.Linear(features, classes, dtype=dtype, key=k4)

    def features(self, x: Float[Array, " P"]) -> Float[Array, " F"]:
        """The penultimate features :math:`\\phi(x)` of one flat image ``x``."""
        height, width = self.image_shape
        if x.shape != (height * width,):
            raise ValueError(f"x must be one flat image of shape ({height * width},), got {x.shape}")
        h = jax.nn.relu(self.conv2(jax.nn.relu(self.conv1(x.reshape(1, height, width)))))
        c = h.shape[0]
        h = h.reshape(c, height // 2, 2, width // 2, 2).mean(axis=(2, 4))
        return jax.nn.relu(self.hidden(h.reshape(-1)))

    def __call__(self, x: Float[Array, " P"]) -> Float[Array, " K"]:
        """Class logits of one flat image ``x``."""
        return self.head(self.features(x))


def classifier_loss(model: ConvClassifier, key: PRNGKeyArray, batch: Float[Array, "N P1"]) -> Float[Array, ""]:
    r"""Mean cross-entropy :math:`-\frac1N\sum_n \log\operatorname{softmax}(\mathrm{logits}(x_n))_{y_n}` of a
    batch whose rows are ``[pixels..., label]`` (the label as the last column, the row layout
    :func:`jaxtt.train.fit` draws batches from); the signature of ``fit``'s ``loss`` (``key`` is unused).

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> model = ConvClassifier(key=jax.random.key(0))
        >>> rows = jnp.concatenate([jnp.zeros((3, 64)), jnp.array([[1.0], [2.0], [7.0]])], axis=1)
        >>> logits = model(jnp.zeros(64))
        >>> bool(jnp.allclose(classifier_loss(model, None, rows),
        ...                   -jnp.mean(jax.nn.log_softmax(logits)[jnp.array([1, 2, 7])])))
        True
    """
    del key
    logits = jax.vmap(model)(batch[:, :-1])
    labels = batch[:, -1].astype(jnp.int32)
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))


def accuracy(model: ConvClassifier, x: Float[Array, "N P"], y: Int[Array, " N"]) -> float:
    """Fraction of the images ``x`` (flat rows) whose most likely class is the label ``y``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> model = ConvClassifier(key=jax.random.key(0))
        >>> x = jax.random.normal(jax.random.key(1), (5, 64))
        >>> accuracy(model, x, jnp.argmax(jax.vmap(model)(x), axis=1))
        1.0
    """
    x = check_array(x, "x", ndim=2, floating=True)
    y = check_array(y, "y", ndim=1)
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"y must have shape ({x.shape[0]},) to match x, got {tuple(y.shape)}")
    return float(jnp.mean(jnp.argmax(jax.vmap(model)(x), axis=1) == y))


def train_classifier(
    x: Float[Array, "N P"],
    y: Int[Array, " N"],
    *,
    key: PRNGKeyArray,
    steps: int = 600,
    batch_size: int = 128,
    learning_rate: float = 3e-3,
    progress: bool = False,
    **model_options,
) -> ConvClassifier:
    """Train a :class:`ConvClassifier` on flat images ``x`` with labels ``y`` by :func:`jaxtt.train.fit`
    (:func:`classifier_loss`, AdamW with warm-up and cosine decay); return the EMA weights.

    Args:
        x: images ``(N, height * width)``.
        y: integer labels ``(N,)`` in ``0..classes-1``.
        key: PRNG key (initialisation and batches).
        steps, batch_size, learning_rate: the optimisation (``batch_size`` is capped at ``N``).
        progress: show a progress bar.
        **model_options: passed to :class:`ConvClassifier` (``image_shape``, ``classes``, ``features`` ...).

    Returns:
        The trained classifier (bias-corrected EMA of the weights, decay 0.99).

    Examples:
        >>> import jax
        >>> from jaxtt.data import digits_split
        >>> x, y, x_val, y_val = digits_split()
        >>> model = train_classifier(x, y, key=jax.random.key(0), steps=100)
        >>> accuracy(model, x_val, y_val) > 0.8
        True
    """
    x = check_array(x, "x", ndim=2, floating=True)
    y = check_array(y, "y", ndim=1)
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"y must have shape ({x.shape[0]},) to match x, got {tuple(y.shape)}")
    steps = check_int(steps, "steps", minimum=1)
    k_init, k_fit = jax.random.split(check_key(key))
    model = ConvClassifier(key=k_init, dtype=x.dtype, **model_options)
    rows = jnp.concatenate([x, y[:, None].astype(x.dtype)], axis=1)
    result = fit(model, rows, None, default_optimizer(steps, learning_rate), steps=steps,
                 batch_size=min(batch_size, x.shape[0]), key=k_fit, ema_decay=0.99, log_every=steps,
                 progress=progress, loss=classifier_loss)
    return result.ema_model


class NoisyClassifier(eqx.Module):
    r"""Time-conditioned MLP classifier :math:`p_\phi(y \mid x_t, t)` of noised data, for classifier guidance
    (Dhariwal & Nichol 2021; Song et al. 2021): logits :math:`\mathrm{MLP}([x_t, e(t)])` with the sinusoidal
    embedding :math:`e(t)` (:class:`jaxtt.nn.SinusoidalEmbedding`) of the step. Trained by
    :func:`noisy_classifier_loss` on :math:`x_t = a_t x_0 + s_t \epsilon`; :meth:`log_prob` is the ``log_prob``
    that :class:`jaxtt.diffusion.ClassifierGuidance` takes.

    One example ``x`` of shape ``(D,)`` and a scalar ``t``; ``vmap`` for batches.

    Args:
        in_size: data dimension ``D``.
        key: PRNG key for the initialisation.
        classes: number of classes.
        width, depth: hidden width and number of hidden layers of the MLP (SiLU).
        embed_dim: size of the time embedding; time_scale: its scale (the number of diffusion steps).
        dtype: floating dtype of the parameters.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> model = NoisyClassifier(8, key=jax.random.key(0))
        >>> x, t, y = jnp.zeros((3, 8)), jnp.array([1, 500, 999]), jnp.array([0, 4, 9])
        >>> log_p = model.log_prob(x, t, y)
        >>> log_p.shape, bool(jnp.all(log_p < 0))
        ((3,), True)
    """

    embedding: SinusoidalEmbedding
    layers: tuple[eqx.nn.Linear, ...]
    in_size: int = eqx.field(static=True)

    def __init__(self, in_size: int, *, key: PRNGKeyArray, classes: int = 10, width: int = 128, depth: int = 2,
                 embed_dim: int = 32, time_scale: float = 1000.0, dtype=None):
        self.in_size = check_int(in_size, "in_size", minimum=1)
        classes = check_int(classes, "classes", minimum=2)
        width = check_int(width, "width", minimum=1)
        depth = check_int(depth, "depth", minimum=1)
        self.embedding = SinusoidalEmbedding(embed_dim, time_scale)
        sizes = [self.in_size + embed_dim] + [width] * depth + [classes]
        keys = jax.random.split(check_key(key), depth + 1)
        self.layers = tuple(eqx.nn.Linear(a, b, dtype=dtype, key=k) for a, b, k in zip(sizes, sizes[1:], keys))

    def __call__(self, x: Float[Array, " D"], t) -> Float[Array, " K"]:
        """Class logits of one noised example ``x`` at step ``t``."""
        if x.shape != (self.in_size,):
            raise ValueError(f"x must have shape ({self.in_size},) (one example), got {x.shape}")
        h = jnp.concatenate([x, self.embedding(jnp.asarray(t, x.dtype))])
        for layer in self.layers[:-1]:
            h = jax.nn.silu(layer(h))
        return self.layers[-1](h)

    def log_prob(self, x: Float[Array, "N D"], t: Int[Array, " N"], y: Int[Array, " N"]) -> Float[Array, " N"]:
        r""":math:`\log p_\phi(y_n \mid x_n, t_n)` of a batch (the ``log_prob`` of classifier guidance)."""
        logits = jax.vmap(self)(x, t)
        return jax.nn.log_softmax(logits)[jnp.arange(x.shape[0]), y]


def noisy_classifier_loss(model: NoisyClassifier, key: PRNGKeyArray, batch, schedule) -> Float[Array, ""]:
    r"""Cross-entropy of a :class:`NoisyClassifier` on noised rows: for rows ``[x..., y]`` draw
    :math:`t \sim U\{1..T\}`, :math:`\epsilon \sim N(0, I)` and return
    :math:`-\frac1N\sum_n \log p_\phi(y_n \mid a_{t_n} x_n + s_{t_n}\epsilon_n, t_n)` (Dhariwal & Nichol 2021).
    Bind ``schedule`` with ``functools.partial`` for :func:`jaxtt.train.fit`'s ``loss``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt.diffusion import linear_schedule
        >>> model = NoisyClassifier(2, key=jax.random.key(0), classes=3)
        >>> rows = jnp.array([[0.0, 1.0, 2.0], [1.0, 0.0, 0.0]])
        >>> float(noisy_classifier_loss(model, jax.random.key(1), rows, linear_schedule(10))) > 0
        True
    """
    x, y = batch[:, :-1], batch[:, -1].astype(jnp.int32)
    k_t, k_eps = jax.random.split(key)
    t = jax.random.randint(k_t, (x.shape[0],), 1, schedule.T + 1)
    x_t = q_sample(schedule, x, t, jax.random.normal(k_eps, x.shape, x.dtype))
    return -jnp.mean(model.log_prob(x_t, t, y))
