"""Frechet distance: scipy.linalg.sqrtm reference (Heusel et al. 2017 formula), Gaussian closed forms, validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.linalg import sqrtm

from jaxtt.metrics import frechet_distance, gaussian_frechet_distance


def _reference(a, b):
    """The usual FID implementation: numpy moments and scipy.linalg.sqrtm of the product."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a.T), np.cov(b.T)
    return np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2 * sqrtm(cov_a @ cov_b).real)


def test_matches_sqrtm_reference():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(60, 5))
    b = rng.normal(size=(45, 5)) @ rng.normal(size=(5, 5)) + 1.0
    np.testing.assert_allclose(frechet_distance(a, b), _reference(a, b), rtol=1e-10)
    np.testing.assert_allclose(jax.jit(frechet_distance)(a, b), _reference(a, b), rtol=1e-10)


def test_gaussian_closed_forms():
    # commuting (diagonal) covariances: |mu_a - mu_b|^2 + sum (sqrt(a_i) - sqrt(b_i))^2
    mean_a, mean_b = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, -1.0])
    var_a, var_b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    exact = np.sum((mean_a - mean_b) ** 2) + np.sum((np.sqrt(var_a) - np.sqrt(var_b)) ** 2)
    out = gaussian_frechet_distance(mean_a, np.diag(var_a), mean_b, np.diag(var_b))
    np.testing.assert_allclose(out, exact, rtol=1e-12)
    # rotation of a covariance: W2^2(N(0, S), N(0, R S R^T)) with S = diag(4, 1), R = 90 degrees -> 2 (2 - 1)^2
    rot = np.array([[0.0, -1.0], [1.0, 0.0]])
    s = np.diag([4.0, 1.0])
    np.testing.assert_allclose(gaussian_frechet_distance(np.zeros(2), s, np.zeros(2), rot @ s @ rot.T), 2.0, rtol=1e-12)


def test_identical_rank_deficient_features_give_zero_in_float32():
    # fewer samples than features: singular covariances must not produce NaN
    a = np.random.default_rng(1).normal(size=(4, 8)).astype(np.float32)
    out = frechet_distance(a, a)
    assert out.dtype == jnp.float32
    assert abs(float(out)) < 1e-3 * float(np.trace(np.cov(a.T)))


@pytest.mark.parametrize(
    ("a", "b", "match"),
    [
        (np.zeros((5, 3)), np.zeros((5, 4)), "feature dimension"),
        (np.zeros((1, 3)), np.zeros((5, 3)), "features_a must have at least 2"),
        (np.zeros((5, 3)), np.full((5, 3), np.nan), "features_b must be finite"),
    ],
)
def test_validation(a, b, match):
    with pytest.raises(ValueError, match=match):
        frechet_distance(a, b)


def test_gaussian_validation():
    with pytest.raises(ValueError, match="cov_b must have shape"):
        gaussian_frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.eye(3))
    with pytest.raises(TypeError, match="mean_a must be a floating"):
        gaussian_frechet_distance(np.zeros(2, dtype=int), np.eye(2), np.zeros(2), np.eye(2))
