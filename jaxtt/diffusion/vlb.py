r"""The discrete-time variational bound on the negative log-likelihood (Ho et al. 2020, eq. 5; Sohl-Dickstein et al. 2015)."""

from __future__ import annotations

import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Float, PRNGKeyArray

from jaxtt._validation import check_batch, check_choice, check_key
from jaxtt.diffusion._checks import call_eps, check_eps_fn, check_schedule
from jaxtt.diffusion.parameterization import PREDICTIONS, to_data_and_noise
from jaxtt.diffusion.schedule import Schedule

__all__ = ["vlb"]


def vlb(
    eps_fn: Callable[[Array, Array], Array],
    schedule: Schedule,
    x0: Float[Array, "N *event"],
    key: PRNGKeyArray,
    *,
    variance: str = "beta",
    prediction: str = "eps",
) -> Float[Array, " N"]:
    r"""Single-sample estimate of the variational bound :math:`L \ge -\log p_\theta(x_0)` in nats, per row.

    .. math::
        L = \underbrace{D_{KL}(q(x_T\mid x_0)\,\|\,N(0, I))}_{L_T}
        + \sum_{t=2}^{T}\underbrace{D_{KL}(q(x_{t-1}\mid x_t, x_0)\,\|\,p_\theta(x_{t-1}\mid x_t))}_{L_{t-1}}
        \underbrace{-\log p_\theta(x_0\mid x_1)}_{L_0}

    (Ho et al. 2020, eq. 5), with :math:`q(x_{t-1}\mid x_t, x_0) = N(\tilde\mu_t, \tilde\beta_t I)` (Ho et al.
    2020, eq. 7), the DDPM reverse model :math:`p_\theta(x_{t-1}\mid x_t) = N(\mu_\theta(x_t, t), \sigma_t^2 I)` with
    the mean of Ho et al. 2020, eq. 11 and :math:`\sigma_t^2 = \beta_t` (``variance="beta"``) or :math:`\tilde\beta_t`
    (``"beta_tilde"``), and a Gaussian decoder :math:`p_\theta(x_0\mid x_1) = N(\mu_\theta(x_1, 1), \beta_1 I)`
    (continuous data; :math:`\tilde\beta_1 = 0` cannot serve as a decoder variance, so the decoder uses
    :math:`\beta_1` for both choices). Every term :math:`t` is evaluated once with its own
    :math:`x_t \sim q(x_t\mid x_0)` (Ho et al. 2020, eq. 4), so the result is an unbiased estimate of the bound.

    A ``lax.scan`` over ``t = 1..T``: ``T`` calls of ``eps_fn`` on the batch. Divide by ``D * log(2)`` for
    bits per dimension.

    Args:
        eps_fn: batched noise model ``eps_fn(x, t)`` (integer ``t`` of shape ``(N,)`` in ``1..T``).
        schedule: the noise schedule.
        x0: data ``(N, *event_shape)``, finite.
        key: PRNG key for the noise of each term.
        variance: ``"beta"`` or ``"beta_tilde"``.
        prediction: what the model outputs (``"eps"``, ``"x0"``, ``"v"`` or ``"score"``; converted to
            :math:`\hat\epsilon` exactly).

    Returns:
        Shape ``(N,)`` in ``x0``'s dtype.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt.data import GaussianMixture
        >>> from jaxtt.diffusion import cosine_schedule
        >>> schedule = cosine_schedule(50)
        >>> data = GaussianMixture(jnp.ones(1), jnp.zeros((1, 2)), 0.25 * jnp.eye(2)[None])  # N(0, 0.5² I)
        >>> x0 = data.sample(jax.random.key(1), 1000)
        >>> bound = vlb(lambda x, t: data.optimal_eps(x, t, schedule), schedule, x0, jax.random.key(0))
        >>> bound.shape, abs(float(bound.mean() + data.log_prob(x0).mean())) < 0.25  # close to the true NLL
        ((1000,), True)
        >>> zero = vlb(lambda x, t: jnp.zeros_like(x), schedule, x0, jax.random.key(0))
        >>> bool(bound.mean() < zero.mean())  # a worse model has a larger bound
        True
    """
    check_eps_fn(eps_fn)
    schedule = check_schedule(schedule)
    x0 = check_batch(x0, "x0")
    check_key(key)
    check_choice(variance, "variance", ("beta", "beta_tilde"))
    check_choice(prediction, "prediction", PREDICTIONS)
    return _vlb(eps_fn, schedule, x0, key, variance, prediction)


@eqx.filter_jit
def _vlb(eps_fn, schedule, x0, key, variance, prediction):
    dtype, n = x0.dtype, x0.shape[0]
    d = math.prod(x0.shape[1:])

    def rows(a):
        return jnp.sum(a.reshape(n, -1), axis=1)

    ab_T = schedule.alpha_bars[schedule.T].astype(dtype)
    one_minus_T = (-jnp.expm1(schedule.log_alpha_bars[schedule.T])).astype(dtype)
    prior_kl = 0.5 * (d * (one_minus_T - 1.0 - jnp.log(one_minus_T)) + ab_T * rows(x0**2))

    ts = jnp.arange(1, schedule.T + 1, dtype=jnp.int32)
    var = schedule.betas if variance == "beta" else schedule.posterior_variance
    model_var = jnp.where(ts == 1, schedule.betas[ts], var[ts]).astype(dtype)
    keys = jax.random.split(key, schedule.T)

    def term(total, inp):
        t, s2, k = inp
        eps = jax.random.normal(k, x0.shape, dtype=dtype)
        scale = jnp.exp(0.5 * schedule.log_alpha_bars[t]).astype(dtype)
        std = schedule.noise_std_at(t).astype(dtype)
        x_t = scale * x0 + std * eps
        eps_hat = call_eps(eps_fn, x_t, jnp.full((n,), t, dtype=jnp.int32))
        if prediction != "eps":
            eps_hat = to_data_and_noise(eps_hat, x_t, schedule.log_alpha_bars[t], prediction)[1]
        beta, alpha = schedule.betas[t].astype(dtype), schedule.alphas[t].astype(dtype)
        mu_theta = (x_t - beta / std * eps_hat) * lax.rsqrt(alpha)
        c0 = schedule.posterior_mean_coef_x0[t].astype(dtype)
        ct = schedule.posterior_mean_coef_xt[t].astype(dtype)
        post_var = schedule.posterior_variance[t].astype(dtype)
        sq = rows((c0 * x0 + ct * x_t - mu_theta) ** 2)
        safe_post = jnp.where(t > 1, post_var, 1.0)
        kl = 0.5 * (d * (post_var / s2 - 1.0 + jnp.log(s2 / safe_post)) + sq / s2)
        nll0 = 0.5 * (rows((x0 - mu_theta) ** 2) / s2 + d * jnp.log(2 * math.pi * s2))
        return total + jnp.where(t > 1, kl, nll0), None

    total, _ = lax.scan(term, prior_kl, (ts, model_var, keys))
    return total
