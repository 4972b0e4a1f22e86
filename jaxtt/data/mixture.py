r"""Gaussian mixtures with exact log-density, score and optimal noise prediction under DDPM noising.

For :math:`p(x) = \sum_k w_k N(x; \mu_k, \Sigma_k)` the forward process (Ho et al. 2020, eq. 4) keeps the mixture
form: :math:`q(x_t) = \sum_k w_k N(x_t; \sqrt{\bar\alpha_t}\mu_k, \bar\alpha_t\Sigma_k + (1-\bar\alpha_t) I)`.
Its score is closed form, and so is the minimiser of L_simple (Ho et al. 2020, eq. 14),
:math:`\epsilon^*(x_t, t) = E[\epsilon \mid x_t] = -\sqrt{1-\bar\alpha_t}\,\nabla\log q(x_t)` (Song et al. 2021, sec. 3.3).
A single Gaussian is the case ``K = 1``; then :math:`\epsilon^*` is affine in :math:`x_t`.
"""

from __future__ import annotations

import functools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import cho_solve
from jaxtyping import Array, Float, PRNGKeyArray, Real

from jaxtt._validation import check_array, check_finite, check_int, is_concrete
from jaxtt.diffusion._checks import check_schedule, check_timesteps

__all__ = ["GaussianMixture"]


def _log_normals_and_precision_products(x, means, covs):
    """For one point ``x`` (D,): ``log N(x; mu_k, Sigma_k)`` (K,) and ``Sigma_k^{-1} (x - mu_k)`` (K, D)."""
    chol = jnp.linalg.cholesky(covs)
    diff = x[None, :] - means
    sol = jax.vmap(lambda c, r: cho_solve((c, True), r))(chol, diff)
    logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)
    d = x.shape[0]
    log_n = -0.5 * (jnp.sum(diff * sol, axis=-1) + logdet + d * math.log(2.0 * math.pi))
    return log_n, sol


def _log_prob_and_score(x, log_w, means, covs):
    """``log p(x)`` and ``grad log p(x)`` of the mixture at one point ``x`` (D,)."""
    log_n, sol = _log_normals_and_precision_products(x, means, covs)
    joint = log_w + log_n
    log_p = jax.nn.logsumexp(joint)
    resp = jnp.exp(joint - log_p)
    return log_p, -resp @ sol


_batched_log_prob_and_score = jax.jit(jax.vmap(_log_prob_and_score, in_axes=(0, None, None, None)))


@jax.jit
def _optimal_eps(x, log_ab, log_w, means, covs):
    """``-sqrt(1 - ab) * grad log q_t(x)`` row by row, with ``log ab`` given per row."""
    eye = jnp.eye(means.shape[1], dtype=x.dtype)

    def one(xi, lab):
        ab, std2 = jnp.exp(lab), -jnp.expm1(lab)
        _, score = _log_prob_and_score(xi, log_w, jnp.exp(0.5 * lab) * means, ab * covs + std2 * eye)
        return -jnp.sqrt(std2) * score

    return jax.vmap(one)(x, log_ab)


@functools.partial(jax.jit, static_argnums=4)
def _sample(key, log_w, means, covs, n):
    k_comp, k_z = jax.random.split(key)
    comp = jax.random.categorical(k_comp, log_w, shape=(n,))
    z = jax.random.normal(k_z, (n, means.shape[1]), dtype=means.dtype)
    return means[comp] + jnp.einsum("nij,nj->ni", jnp.linalg.cholesky(covs)[comp], z)


class GaussianMixture(eqx.Module):
    r"""The mixture :math:`p(x) = \sum_{k=1}^K w_k N(x; \mu_k, \Sigma_k)` in :math:`\mathbb{R}^D` (a pytree).

    Args:
        weights: positive component weights ``(K,)``; normalised to sum to one.
        means: component means ``(K, D)``.
        covs: symmetric positive-definite covariances ``(K, D, D)``.

    The arrays share the floating dtype of ``means`` and ``covs``. Methods evaluating at points ``x`` compute in
    ``x``'s dtype.

    Raises:
        TypeError: non-floating ``means`` or ``covs``.
        ValueError: inconsistent shapes; when concrete, non-positive or non-finite weights, non-finite means,
            or covariances that are not symmetric positive definite.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> mix = GaussianMixture(jnp.ones(2), jnp.array([[-2.0, 0.0], [2.0, 0.0]]), 0.25 * jnp.stack([jnp.eye(2)] * 2))
        >>> mix.dim, mix.weights.tolist()
        (2, [0.5, 0.5])
        >>> x = jnp.array([[2.0, 0.0]])  # at a mean, the other component is negligible
        >>> bool(jnp.allclose(mix.log_prob(x), jnp.log(0.5) - jnp.log(2 * jnp.pi * 0.25), atol=1e-5))
        True
        >>> bool(jnp.allclose(mix.score(x), 0.0, atol=1e-5))
        True
    """

    weights: Float[Array, " K"]
    means: Float[Array, "K D"]
    covs: Float[Array, "K D D"]

    def __init__(self, weights, means, covs):
        means = check_array(means, "means", ndim=2, floating=True)
        covs = check_array(covs, "covs", ndim=3, floating=True)
        weights = check_array(weights, "weights", ndim=1)
        k, d = means.shape
        if k < 1 or d < 1:
            raise ValueError(f"means must have shape (K, D) with K, D >= 1, got {tuple(means.shape)}")
        if weights.shape != (k,):
            raise ValueError(f"weights must have shape (K,) = ({k},) to match means, got {tuple(weights.shape)}")
        if covs.shape != (k, d, d):
            raise ValueError(f"covs must have shape (K, D, D) = ({k}, {d}, {d}), got {tuple(covs.shape)}")
        for value, name in ((weights, "weights"), (means, "means"), (covs, "covs")):
            check_finite(value, name)
        if is_concrete(weights) and not bool(np.all(np.asarray(weights) > 0)):
            raise ValueError("weights must be positive")
        if is_concrete(covs):
            c = np.asarray(covs, dtype=np.float64)
            if not np.allclose(c, np.swapaxes(c, 1, 2), rtol=1e-6, atol=1e-12):
                raise ValueError("covs must be symmetric")
            if np.any(np.linalg.eigvalsh(c) <= 0):
                raise ValueError("covs must be positive definite")
        dtype = jnp.result_type(means, covs)
        weights = jnp.asarray(weights, dtype=dtype)
        self.weights = weights / jnp.sum(weights)
        self.means = jnp.asarray(means, dtype=dtype)
        self.covs = jnp.asarray(covs, dtype=dtype)

    @property
    def dim(self) -> int:
        """Dimension ``D`` of the space."""
        return self.means.shape[1]

    def _points(self, x, name="x"):
        x = check_array(x, name, ndim=2, floating=True)
        if x.shape[1] != self.dim:
            raise ValueError(f"{name} must have shape (N, {self.dim}), got {tuple(x.shape)}")
        return jnp.asarray(x)

    def _params(self, dtype):
        return jnp.log(self.weights).astype(dtype), self.means.astype(dtype), self.covs.astype(dtype)

    def sample(self, key: PRNGKeyArray, n: int) -> Float[Array, "n D"]:
        """Draw ``n`` points: a component ``k ~ Categorical(w)``, then :math:`\\mu_k + L_k z`,
        :math:`L_k L_k^T = \\Sigma_k`, :math:`z \\sim N(0, I)`. Returned in the mixture's dtype."""
        n = check_int(n, "n", minimum=1)
        return _sample(key, jnp.log(self.weights), self.means, self.covs, n)

    def log_prob(self, x: Float[Array, "N D"]) -> Float[Array, " N"]:
        r""":math:`\log p(x) = \operatorname{logsumexp}_k [\log w_k + \log N(x; \mu_k, \Sigma_k)]` per row."""
        x = self._points(x)
        log_w, means, covs = self._params(x.dtype)
        return _batched_log_prob_and_score(x, log_w, means, covs)[0]

    def score(self, x: Float[Array, "N D"]) -> Float[Array, "N D"]:
        r""":math:`\nabla_x \log p(x) = -\sum_k r_k(x)\,\Sigma_k^{-1}(x - \mu_k)` with the responsibilities
        :math:`r_k(x) = w_k N(x; \mu_k, \Sigma_k)/p(x)`."""
        x = self._points(x)
        log_w, means, covs = self._params(x.dtype)
        return _batched_log_prob_and_score(x, log_w, means, covs)[1]

    def noised(self, alpha_bar: float | Real[Array, ""]) -> GaussianMixture:
        r"""The law of :math:`x_t = \sqrt{\bar\alpha}x_0 + \sqrt{1-\bar\alpha}\epsilon` for :math:`x_0 \sim p`:
        the mixture with means :math:`\sqrt{\bar\alpha}\mu_k` and covariances
        :math:`\bar\alpha\Sigma_k + (1-\bar\alpha)I` (Ho et al. 2020, eq. 4). ``alpha_bar`` is a scalar in ``[0, 1]``."""
        ab = jnp.asarray(alpha_bar, dtype=self.means.dtype)
        if ab.ndim != 0:
            raise ValueError(f"alpha_bar must be a scalar, got shape {tuple(ab.shape)}")
        if is_concrete(ab) and not 0.0 <= float(ab) <= 1.0:
            raise ValueError(f"alpha_bar must lie in [0, 1], got {float(ab)}")
        eye = jnp.eye(self.dim, dtype=self.means.dtype)
        return GaussianMixture(self.weights, jnp.sqrt(ab) * self.means, ab * self.covs + (1.0 - ab) * eye)

    def optimal_eps(self, x_t: Float[Array, "N D"], t: Real[Array, " N"], schedule) -> Float[Array, "N D"]:
        r"""The exact optimal noise prediction :math:`\epsilon^*(x_t, t) = -\sqrt{1-\bar\alpha_t}\,\nabla\log q(x_t)`
        (Song et al. 2021, sec. 3.3), the minimiser of L_simple over all functions, for data distributed as this mixture.

        ``t`` has shape ``(N,)`` (or is a scalar): integer steps in ``1..T`` use the table
        :math:`\bar\alpha_t`; real steps in ``(0, T]`` use the schedule's continuous interpolant
        (:meth:`jaxtt.diffusion.Schedule.alpha_bar_at`), so this is also the exact field for the
        probability-flow ODE. Computed in ``x_t``'s dtype; ``O(N K D^3)``.
        """
        schedule = check_schedule(schedule)
        x_t = self._points(x_t, "x_t")
        t = jnp.broadcast_to(check_timesteps(t, schedule, x_t.shape[0]), (x_t.shape[0],))
        log_ab = schedule.log_alpha_bar_at(t).astype(x_t.dtype)
        return _optimal_eps(x_t, log_ab, *self._params(x_t.dtype))
