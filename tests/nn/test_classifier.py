"""The feature classifier: >= 95 % validation accuracy with quick training, a Fréchet distance that separates the
validation digits from noise, its loss against NumPy, checkpoints and bad input."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxtt.checkpoint import load_checkpoint, save_checkpoint
from jaxtt.data import digits_split
from jaxtt.metrics import frechet_distance
from jaxtt.nn import ConvClassifier, NoisyClassifier, accuracy, classifier_loss, train_classifier


@pytest.fixture(scope="module")
def split():
    return digits_split()  # float32 images, the fixed 1,497 / 300 split


@pytest.fixture(scope="module")
def classifier(split):
    x, y, _, _ = split
    return train_classifier(x, y, key=jax.random.key(0), steps=400)


def test_quick_training_reaches_95_percent_on_the_validation_split(classifier, split):
    _, _, x_val, y_val = split
    assert accuracy(classifier, x_val, y_val) >= 0.95


def test_frechet_distance_of_validation_is_far_below_that_of_noise(classifier, split):
    x, _, x_val, _ = split
    features = jax.jit(jax.vmap(classifier.features))
    noise = x.mean(0) + x.std(0) * jax.random.normal(jax.random.key(1), x_val.shape, x.dtype)
    fd_val = float(frechet_distance(features(x_val), features(x)))
    fd_noise = float(frechet_distance(features(noise), features(x)))
    assert 0 <= fd_val < 0.05 * fd_noise


def test_loss_is_the_numpy_cross_entropy():
    model = ConvClassifier(key=jax.random.key(0), features=16)
    x = jax.random.normal(jax.random.key(1), (6, 64))
    y = np.array([0, 3, 9, 3, 1, 7])
    rows = jnp.concatenate([x, jnp.asarray(y, x.dtype)[:, None]], axis=1)
    logits, loss = eqx.filter_jit(lambda m, r: (jax.vmap(m)(r[:, :-1]), classifier_loss(m, None, r)))(model, rows)
    logits = np.asarray(logits, np.float64)
    log_softmax = logits - logits.max(1, keepdims=True)
    log_softmax -= np.log(np.exp(log_softmax).sum(1, keepdims=True))
    np.testing.assert_allclose(loss, -log_softmax[np.arange(6), y].mean(), rtol=1e-10)


def test_save_and_load_round_trip(classifier, split, tmp_path):
    path = tmp_path / "classifier.ckpt"
    save_checkpoint(path, classifier, {"features": 32})
    loaded, meta = load_checkpoint(path, ConvClassifier(key=jax.random.key(9), dtype=jnp.float32))
    x_val = split[2]
    assert meta == {"features": 32}
    logits = eqx.filter_jit(lambda model, x: jax.vmap(model)(x))
    np.testing.assert_array_equal(logits(loaded, x_val), logits(classifier, x_val))


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="image_shape"):
        ConvClassifier(key=jax.random.key(0), image_shape=(7, 8))
    with pytest.raises(ValueError, match="classes"):
        ConvClassifier(key=jax.random.key(0), classes=1)
    model = ConvClassifier(key=jax.random.key(0))
    with pytest.raises(ValueError, match="x must be one flat image"):
        model(jnp.zeros((8, 8)))
    with pytest.raises(ValueError, match="y must have shape"):
        accuracy(model, jnp.zeros((3, 64)), jnp.zeros(2, jnp.int32))


def test_noisy_classifier_log_probabilities_are_normalized():
    model = NoisyClassifier(4, key=jax.random.key(0), classes=3, width=16)
    x, t = jax.random.normal(jax.random.key(1), (5, 4)), jnp.array([1, 10, 100, 500, 1000])
    log_p = jax.jit(lambda y: model.log_prob(x, t, y))
    total = sum(np.exp(np.asarray(log_p(jnp.full(5, c)), np.float64)) for c in range(3))
    np.testing.assert_allclose(total, 1.0, rtol=1e-12)
    with pytest.raises(ValueError, match=r"x must have shape \(4,\)"):
        model(jnp.zeros(3), 1)
