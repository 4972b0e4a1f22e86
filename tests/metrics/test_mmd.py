"""MMD: numpy reference, median heuristic, Gaussian closed form, dtype, jit/grad, validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.distance import cdist, pdist

from jaxtt.metrics import DEFAULT_BANDWIDTH_MULTIPLES, mmd


def _mmd2_reference(x, y, bandwidths):
    """Unbiased MMD^2 (Gretton et al. 2012, eq. 3) with explicit off-diagonal sums."""

    def gram(a, b):
        d2 = cdist(a, b, "sqeuclidean")
        return sum(np.exp(-d2 / (2 * s**2)) for s in bandwidths)

    m, n = len(x), len(y)
    k_xx, k_yy, k_xy = gram(x, x), gram(y, y), gram(x, y)
    off = lambda k: k[~np.eye(len(k), dtype=bool)].sum()  # noqa: E731
    return off(k_xx) / (m * (m - 1)) + off(k_yy) / (n * (n - 1)) - 2 * k_xy.mean()


@pytest.fixture(scope="module")
def samples():
    rng = np.random.default_rng(0)
    return rng.normal(size=(23, 3)), rng.normal(loc=0.4, size=(17, 3)) * 1.3


def test_matches_numpy_reference_with_explicit_bandwidths(samples):
    x, y = samples
    bandwidths = [0.3, 1.0, 2.5]
    np.testing.assert_allclose(mmd(x, y, jnp.array(bandwidths)), _mmd2_reference(x, y, bandwidths), rtol=1e-12)


def test_default_bandwidths_are_multiples_of_pooled_median_distance(samples):
    x, y = samples
    median = np.median(pdist(np.concatenate([x, y])))
    expected = _mmd2_reference(x, y, [c * median for c in DEFAULT_BANDWIDTH_MULTIPLES])
    np.testing.assert_allclose(mmd(x, y), expected, rtol=1e-12)


def test_unbiased_estimate_matches_gaussian_closed_form():
    # x ~ N(0, I_2), y ~ N(mu, I_2), RBF width s: MMD^2 = 2 (s^2/(s^2+2))^(d/2) (1 - exp(-|mu|^2 / (2 (s^2+2)))).
    rng = np.random.default_rng(1)
    mu, s, d = np.array([1.0, -0.5]), 1.5, 2
    x, y = rng.normal(size=(1500, d)), rng.normal(size=(1200, d)) + mu
    c = s**2 / (s**2 + 2)
    exact = 2 * c ** (d / 2) * (1 - np.exp(-(mu @ mu) / (2 * (s**2 + 2))))
    np.testing.assert_allclose(mmd(x, y, jnp.array([s])), exact, rtol=0.08)
    # same distribution: the unbiased estimate fluctuates around zero, far below the shifted value
    assert abs(float(mmd(x, rng.normal(size=(1200, d)), jnp.array([s])))) < 0.05 * exact


def test_float32_preserved_and_jit_matches_eager(samples):
    x, y = (a.astype(np.float32) for a in samples)
    out = mmd(x, y)
    assert out.dtype == jnp.float32 and out.shape == ()
    bandwidths = np.median(pdist(np.concatenate(samples))) * np.array(DEFAULT_BANDWIDTH_MULTIPLES)
    np.testing.assert_allclose(jax.jit(mmd)(x, y), _mmd2_reference(*samples, bandwidths), rtol=1e-4)


def test_gradient_matches_finite_differences(samples):
    x, y = samples
    bw = jnp.array([0.7, 2.0])
    grad = jax.grad(lambda a: mmd(a, y, bw))(jnp.asarray(x))
    h, i, j = 1e-6, 4, 1
    e = np.zeros_like(x)
    e[i, j] = h
    fd = (_mmd2_reference(x + e, y, [0.7, 2.0]) - _mmd2_reference(x - e, y, [0.7, 2.0])) / (2 * h)
    np.testing.assert_allclose(grad[i, j], fd, rtol=1e-6)


@pytest.mark.parametrize(
    ("x", "y", "bandwidths", "error", "match"),
    [
        (np.zeros((5, 2)), np.zeros((5, 3)), None, ValueError, "feature dimension"),
        (np.zeros((1, 2)), np.zeros((5, 2)), None, ValueError, "x must have at least 2"),
        (np.zeros((5, 2)), np.full((5, 2), np.nan), None, ValueError, "y must be finite"),
        (np.zeros(5), np.zeros((5, 1)), None, ValueError, "x must have 2 dimensions"),
        (np.zeros((5, 2), dtype=int), np.zeros((5, 2)), None, TypeError, "x must be a floating"),
        (np.zeros((5, 2)), np.ones((5, 2)), np.array([1.0, -1.0]), ValueError, "bandwidths must be positive"),
        (np.zeros((5, 2)), np.ones((5, 2)), np.array([]), ValueError, "at least one bandwidth"),
    ],
)
def test_validation(x, y, bandwidths, error, match):
    with pytest.raises(error, match=match):
        mmd(x, y, bandwidths)
