"""Frechet distance between Gaussians fitted to two feature sets (the FID formula)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from jaxtt._validation import check_array, check_finite
from jaxtt.metrics._samples import check_samples

__all__ = ["frechet_distance", "gaussian_frechet_distance"]


def _psd_sqrt(matrix):
    """Symmetric square root of a symmetric positive semi-definite matrix via ``eigh`` (negative rounding clipped)."""
    eigvals, eigvecs = jnp.linalg.eigh(matrix)
    return (eigvecs * jnp.sqrt(jnp.clip(eigvals, 0.0))) @ eigvecs.T


@jax.jit
def _gaussian_frechet(mean_a, cov_a, mean_b, cov_b):
    root_a = _psd_sqrt(cov_a)
    middle = root_a @ cov_b @ root_a
    middle_eigvals = jnp.linalg.eigvalsh(0.5 * (middle + middle.T))
    trace_sqrt = jnp.sum(jnp.sqrt(jnp.clip(middle_eigvals, 0.0)))
    diff = mean_a - mean_b
    return diff @ diff + jnp.trace(cov_a) + jnp.trace(cov_b) - 2.0 * trace_sqrt


def gaussian_frechet_distance(
    mean_a: Float[Array, " D"],
    cov_a: Float[Array, "D D"],
    mean_b: Float[Array, " D"],
    cov_b: Float[Array, "D D"],
) -> Float[Array, ""]:
    r"""Squared 2-Wasserstein (Frechet) distance between :math:`N(\mu_a, \Sigma_a)` and :math:`N(\mu_b, \Sigma_b)`.

    .. math::
        d^2 = \|\mu_a - \mu_b\|^2 + \operatorname{tr}\big(\Sigma_a + \Sigma_b - 2 (\Sigma_a \Sigma_b)^{1/2}\big)

    (Dowson & Landau 1982; the FID of Heusel et al. 2017). The trace of the non-symmetric
    root is computed stably as :math:`\operatorname{tr}(\Sigma_a^{1/2} \Sigma_b \Sigma_a^{1/2})^{1/2}` — the two
    matrices are similar, so their roots have the same eigenvalues — with two symmetric eigendecompositions
    (``eigh``), tiny negative eigenvalues from rounding clipped to zero. Cost :math:`O(D^3)`.

    Args:
        mean_a, mean_b: means ``(D,)``.
        cov_a, cov_b: symmetric positive semi-definite covariances ``(D, D)``.

    Returns:
        Scalar :math:`d^2` (not its square root) in the floating dtype of the inputs. Pure and jit-able.

    Examples:
        >>> import jax.numpy as jnp
        >>> d2 = gaussian_frechet_distance(jnp.zeros(1), jnp.eye(1), jnp.ones(1), 4 * jnp.eye(1))
        >>> round(float(d2), 4)  # (0 - 1)² + 1 + 4 - 2 sqrt(1 · 4)
        2.0
    """
    mean_a = check_array(mean_a, "mean_a", ndim=1, floating=True)
    mean_b = check_array(mean_b, "mean_b", ndim=1, floating=True)
    cov_a = check_array(cov_a, "cov_a", ndim=2, floating=True)
    cov_b = check_array(cov_b, "cov_b", ndim=2, floating=True)
    dim = mean_a.shape[0]
    for arr, name, shape in ((mean_b, "mean_b", (dim,)), (cov_a, "cov_a", (dim, dim)), (cov_b, "cov_b", (dim, dim))):
        if tuple(arr.shape) != shape:
            raise ValueError(
                f"{name} must have shape {shape} to match mean_a of shape {(dim,)}, got {tuple(arr.shape)}"
            )
    for arr, name in ((mean_a, "mean_a"), (cov_a, "cov_a"), (mean_b, "mean_b"), (cov_b, "cov_b")):
        check_finite(arr, name)
    arrays = [jnp.asarray(a) for a in (mean_a, cov_a, mean_b, cov_b)]
    dtype = jnp.result_type(*arrays)
    return _gaussian_frechet(*(a.astype(dtype) for a in arrays))


@jax.jit
def _frechet_from_features(features_a, features_b):
    mean_a, mean_b = jnp.mean(features_a, axis=0), jnp.mean(features_b, axis=0)
    cov_a = jnp.cov(features_a, rowvar=False).reshape(mean_a.shape * 2)
    cov_b = jnp.cov(features_b, rowvar=False).reshape(mean_b.shape * 2)
    return _gaussian_frechet(mean_a, cov_a, mean_b, cov_b)


def frechet_distance(features_a: Float[Array, "N D"], features_b: Float[Array, "M D"]) -> Float[Array, ""]:
    r"""Frechet distance between Gaussians fitted to two feature sets (FID when the features are Inception codes).

    Fits :math:`\mu, \Sigma` (sample mean and unbiased covariance, ``1/(N-1)``, as ``numpy.cov``) to each
    feature set and returns :func:`gaussian_frechet_distance`,
    :math:`\|\mu_a - \mu_b\|^2 + \operatorname{tr}(\Sigma_a + \Sigma_b - 2(\Sigma_a\Sigma_b)^{1/2})` (Heusel et al. 2017;
    Heusel et al. 2017, eq. 6). The value is the squared distance, as FID is reported. Cost
    :math:`O((N + M) D^2 + D^3)`.

    Args:
        features_a: ``(N, D)`` features, ``N >= 2``.
        features_b: ``(M, D)`` features, ``M >= 2``.

    Returns:
        Scalar in the floating dtype of the inputs. Pure and jit-able.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> a = jax.random.normal(jax.random.key(0), (100, 3))
        >>> round(float(frechet_distance(a, a + jnp.array([1.0, 2.0, 2.0]))), 4)  # only the mean moves: 1 + 4 + 4
        9.0
    """
    features_a, features_b = check_samples(features_a, features_b, names=("features_a", "features_b"), min_samples=2)
    return _frechet_from_features(features_a, features_b)
