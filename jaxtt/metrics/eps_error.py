"""Relative error of a noise model against the exact optimal noise prediction of a Gaussian mixture."""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from jaxtt._validation import check_array, check_int, check_key
from jaxtt.data.mixture import GaussianMixture
from jaxtt.diffusion import Schedule, q_sample
from jaxtt.diffusion._checks import call_eps, check_eps_fn, check_schedule, check_timesteps

__all__ = ["default_eps_error_steps", "eps_error"]

#: Number of time steps of the default evaluation grid of :func:`eps_error`.
DEFAULT_NUM_STEPS = 10


def default_eps_error_steps(T: int) -> Int[Array, " L"]:
    """The default steps of :func:`eps_error`: ``min(T, 10)`` distinct integers spread evenly over ``1..T``
    (``round(linspace(1, T, 10))``), endpoints included.

    Examples:
        >>> default_eps_error_steps(100).tolist()
        [1, 12, 23, 34, 45, 56, 67, 78, 89, 100]
        >>> default_eps_error_steps(5).tolist()
        [1, 2, 3, 4, 5]
    """
    T = check_int(T, "T", minimum=1)
    return jnp.asarray(np.unique(np.round(np.linspace(1, T, min(T, DEFAULT_NUM_STEPS)))).astype(np.int32))


@eqx.filter_jit
def _eps_error(eps_fn, mixture, schedule, key, t_values, n):
    def relative_error(step_and_key):
        t, k = step_and_key
        key_x0, key_eps = jax.random.split(k)
        x0 = mixture.sample(key_x0, n)
        eps = jax.random.normal(key_eps, x0.shape, dtype=x0.dtype)
        steps = jnp.full((n,), t)
        x_t = q_sample(schedule, x0, steps, eps)
        target = mixture.optimal_eps(x_t, steps, schedule)
        return jnp.linalg.norm(call_eps(eps_fn, x_t, steps) - target) / jnp.linalg.norm(target)

    keys = jax.random.split(key, t_values.shape[0])
    return jnp.mean(jax.lax.map(relative_error, (t_values, keys)))


def eps_error(
    eps_fn: Callable[[Float[Array, "N D"], Int[Array, " N"]], Float[Array, "N D"]],
    mixture: GaussianMixture,
    schedule: Schedule,
    key: PRNGKeyArray,
    n: int = 1000,
    t_values: Int[Array, " L"] | None = None,
) -> Float[Array, ""]:
    r"""Relative L2 error of a noise model to the exact optimum, averaged over time steps.

    For data :math:`x_0 \sim p` (the Gaussian ``mixture``), :math:`x_t = \sqrt{\bar\alpha_t}x_0 +
    \sqrt{1-\bar\alpha_t}\epsilon` (Ho et al. 2020, eq. 4, :func:`jaxtt.diffusion.q_sample`) and the exact minimiser
    of L_simple :math:`\epsilon^*(x_t, t) = E[\epsilon \mid x_t]` (Song et al. 2021, sec. 3.3,
    :meth:`GaussianMixture.optimal_eps`), this returns

    .. math::
        \frac{1}{L}\sum_{l=1}^{L} \frac{\|\epsilon_\theta(X_{t_l}, t_l) - \epsilon^*(X_{t_l}, t_l)\|_F}
        {\|\epsilon^*(X_{t_l}, t_l)\|_F},

    where :math:`X_{t_l}` stacks ``n`` fresh draws of :math:`x_{t_l}` (the Frobenius norms over the whole batch
    make each term a ratio of root-mean-square errors, well defined where :math:`\epsilon^*` of a single point
    vanishes). This makes isolation experiments on the denoiser exact: the
    error of a fitted model is measured against the true optimum rather than against the noisy regression
    target.

    Args:
        eps_fn: batched noise model ``eps_fn(x, t)`` with ``x`` of shape ``(N, D)`` and integer ``t`` of shape
            ``(N,)``, returning ``(N, D)``.
        mixture: the data distribution, a :class:`jaxtt.data.GaussianMixture`; its dtype sets the dtype of the
            evaluation.
        schedule: the noise schedule.
        key: PRNG key for the data and noise draws (the result is deterministic given it).
        n: samples per time step.
        t_values: integer steps in ``1..T`` to average over, shape ``(L,)``; default
            :func:`default_eps_error_steps` (10 steps spread evenly over ``1..T``).

    Returns:
        Scalar mean relative error in the mixture's dtype. Pure and jit-able; ``eps_fn`` is treated as static
        unless it is an Equinox module (then its arrays are traced). Cost: ``L`` evaluations of ``eps_fn`` and
        of :meth:`GaussianMixture.optimal_eps` on ``n`` points each (evaluated one step at a time).

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt.data import GaussianMixture
        >>> from jaxtt.diffusion import linear_schedule
        >>> schedule = linear_schedule(100)
        >>> mix = GaussianMixture(jnp.ones(2), jnp.array([[-1.0, 0.0], [1.0, 0.0]]), 0.1 * jnp.stack([jnp.eye(2)] * 2))
        >>> exact = lambda x, t: mix.optimal_eps(x, t, schedule)
        >>> round(float(eps_error(exact, mix, schedule, jax.random.key(0), n=200)), 6)
        0.0
        >>> zero = lambda x, t: jnp.zeros_like(x)  # predicting 0 is off by 100 %
        >>> round(float(eps_error(zero, mix, schedule, jax.random.key(0), n=200)), 6)
        1.0
    """
    check_eps_fn(eps_fn)
    if not isinstance(mixture, GaussianMixture):
        raise TypeError(f"mixture must be a jaxtt.data.GaussianMixture, got {type(mixture).__name__}")
    schedule = check_schedule(schedule)
    check_key(key)
    n = check_int(n, "n", minimum=1)
    if t_values is None:
        t_values = default_eps_error_steps(schedule.T)
    else:
        t_values = check_array(t_values, "t_values", ndim=1)
        if not jnp.issubdtype(t_values.dtype, jnp.integer):
            raise TypeError(f"t_values must be an integer array of steps in 1..T, got dtype {t_values.dtype}")
        if t_values.shape[0] == 0:
            raise ValueError("t_values must hold at least one step, got an empty array")
        t_values = check_timesteps(t_values, schedule, t_values.shape[0], "t_values")
    return _eps_error(eps_fn, mixture, schedule, key, t_values, n)
