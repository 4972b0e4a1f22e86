"""The variational bound against its closed form for Gaussian data under the exact affine eps*."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxtt.diffusion import linear_schedule, vlb

T = 40
BETAS = np.concatenate([[0.0], np.linspace(1e-3, 0.25, T)])
AB = np.cumprod(1 - BETAS)
SCHED = linear_schedule(T, 1e-3, 0.25)


def _expected_vlb(x0, mu, sigma, variance):
    """E over x_1..x_T of the bound (Ho et al. 2020, eq. 5) for one x0, in closed form.

    With eps*(x_t) = A_t (x_t - sqrt(ab_t) mu) affine, mu_theta(x_t) = P x_t + q is affine, so every term
    is the expectation of a quadratic in x_t ~ N(sqrt(ab_t) x0, (1 - ab_t) I).
    """
    d = len(mu)
    eye = np.eye(d)
    total = 0.5 * (d * (1 - AB[T]) + AB[T] * x0 @ x0 - d - d * np.log(1 - AB[T]))  # L_T
    for t in range(1, T + 1):
        A = np.sqrt(1 - AB[t]) * np.linalg.inv(AB[t] * sigma + (1 - AB[t]) * eye)
        k = BETAS[t] / np.sqrt(1 - AB[t])
        P = (eye - k * A) / np.sqrt(1 - BETAS[t])
        q = k * A @ (np.sqrt(AB[t]) * mu) / np.sqrt(1 - BETAS[t])
        m_t, v_t = np.sqrt(AB[t]) * x0, 1 - AB[t]
        if t == 1:  # L_0 = -log N(x0; mu_theta(x_1), beta_1 I)
            s2 = BETAS[1]
            r = x0 - P @ m_t - q
            total += 0.5 * ((r @ r + v_t * np.trace(P.T @ P)) / s2 + d * np.log(2 * np.pi * s2))
            continue
        post_var = (1 - AB[t - 1]) / (1 - AB[t]) * BETAS[t]
        c0 = np.sqrt(AB[t - 1]) * BETAS[t] / (1 - AB[t])
        ct = np.sqrt(1 - BETAS[t]) * (1 - AB[t - 1]) / (1 - AB[t])
        s2 = BETAS[t] if variance == "beta" else post_var
        G, h = ct * eye - P, c0 * x0 - q  # mu~ - mu_theta = G x_t + h
        r = G @ m_t + h
        sq = r @ r + v_t * np.trace(G.T @ G)
        total += 0.5 * (d * (post_var / s2 - 1 + np.log(s2 / post_var)) + sq / s2)
    return total


@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_vlb_matches_closed_form_and_bounds_the_nll(gaussian, optimal_eps, variance):
    mu, sigma = np.asarray(gaussian.means[0]), np.asarray(gaussian.covs[0])
    x0 = gaussian.sample(jax.random.key(0), 400)
    eps_fn = optimal_eps(gaussian, SCHED)
    keys = jax.random.split(jax.random.key(1), 4)
    est = np.asarray(jax.vmap(lambda k: vlb(eps_fn, SCHED, x0, k, variance=variance))(keys))
    want = np.array([_expected_vlb(x, mu, sigma, variance) for x in np.asarray(x0)])
    diff = (est - want).ravel()  # single-draw estimates around the closed-form expectation
    assert abs(diff.mean()) < 5 * diff.std() / np.sqrt(len(diff)), (diff.mean(), diff.std())
    assert abs(diff.mean()) < 0.1 * want.mean()
    # cross-entropy >= entropy: the bound's mean is above the mean exact NLL of the data
    assert want.mean() > -float(jnp.mean(gaussian.log_prob(x0)))


def test_vlb_dtype_and_bad_input(gaussian, optimal_eps):
    eps_fn = optimal_eps(gaussian, SCHED)
    x32 = gaussian.sample(jax.random.key(2), 4).astype(jnp.float32)
    assert vlb(eps_fn, SCHED, x32, jax.random.key(3)).dtype == jnp.float32
    with pytest.raises(ValueError, match="variance"):
        vlb(eps_fn, SCHED, x32, jax.random.key(3), variance="learned")
    with pytest.raises(ValueError, match="x0"):
        vlb(eps_fn, SCHED, x32.at[0, 0].set(jnp.nan), jax.random.key(3))
