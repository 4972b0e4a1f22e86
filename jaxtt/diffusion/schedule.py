r"""Noise schedules of the discrete DDPM forward process and their continuous-time view.

Time convention (used by every function of :mod:`jaxtt.diffusion`): the forward process has the steps
``t = 0, 1, ..., T``; ``t = 0`` is the data and ``t = 1..T`` are the noised levels (Ho et al. 2020, sec. 2). The
schedule arrays have length ``T + 1`` and are indexed directly by ``t``; entry 0 is the data level with
:math:`\beta_0 = 0`, :math:`\alpha_0 = 1`, :math:`\bar\alpha_0 = 1`. With :math:`\alpha_t = 1 - \beta_t`,

.. math::
    \bar\alpha_t = \prod_{i=1}^{t} \alpha_i

(the product runs to ``t``). A noise model ``eps_fn(x, t)``
receives integer steps ``t`` in ``1..T``; samplers that need non-integer times (the probability-flow ODE)
pass real ``t`` in ``(0, T]`` on the same scale.

Continuous view: ``s = t / T`` in ``[0, 1]``. :math:`\log\bar\alpha` is interpolated between the grid points
``t = 0..T`` by the monotone piecewise-cubic Hermite interpolant (PCHIP, Fritsch & Carlson 1980, with the
slopes of ``scipy.interpolate.PchipInterpolator``), so :math:`\bar\alpha(t/T) = \bar\alpha_t` exactly on the
grid, :math:`\bar\alpha` decreases monotonically between grid points, and
:math:`\beta(s) = -\tfrac{d}{ds}\log\bar\alpha(s) \ge 0` is continuous. This is the VP-SDE
:math:`dx = -\tfrac12\beta(s)x\,ds + \sqrt{\beta(s)}\,dw` whose marginals at ``s = t/T`` are exactly those of
the discrete chain (Song et al. 2021, "Score-Based Generative Modeling through SDEs", eq. 11).
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Real

from jaxtt._validation import check_array, check_finite, check_float_dtype, check_int, check_real, is_concrete

__all__ = ["Schedule", "cosine_schedule", "linear_schedule", "schedule_from_betas"]


def _default_float():
    """The default floating dtype of JAX (float64 when ``jax_enable_x64`` is on, else float32)."""
    return jnp.result_type(float)


def _pchip_slopes(y: Array) -> Array:
    r"""Derivatives at the nodes ``0..T`` of the PCHIP interpolant of ``y`` on the unit-spaced grid.

    Interior slopes are the harmonic mean of the neighbouring secants when they share a sign (else 0); the end
    slopes use the one-sided three-point formula with the shape-preserving corrections of
    ``scipy.interpolate.PchipInterpolator`` (Moler, "Numerical Computing with MATLAB", sec. 3.6).
    """
    d = jnp.diff(y)
    if d.shape[0] == 1:
        return jnp.concatenate([d, d])
    same_sign = d[:-1] * d[1:] > 0
    safe = jnp.where(same_sign, d[:-1] + d[1:], jnp.ones_like(d[1:]))
    interior = jnp.where(same_sign, 2.0 * d[:-1] * d[1:] / safe, jnp.zeros_like(d[1:]))

    def edge(m0, m1):
        e = (3.0 * m0 - m1) / 2.0
        e = jnp.where(jnp.sign(e) != jnp.sign(m0), jnp.zeros_like(e), e)
        flip = (jnp.sign(m0) != jnp.sign(m1)) & (jnp.abs(e) > 3.0 * jnp.abs(m0))
        return jnp.where(flip, 3.0 * m0, e)

    return jnp.concatenate([edge(d[0], d[1])[None], interior, edge(d[-1], d[-2])[None]])


def _hermite(u, y0, y1, m0, m1):
    """Cubic Hermite interpolant on the unit cell: values ``y0, y1`` and slopes ``m0, m1`` at ``u = 0, 1``."""
    u2, u3 = u * u, u * u * u
    return (2 * u3 - 3 * u2 + 1) * y0 + (u3 - 2 * u2 + u) * m0 + (3 * u2 - 2 * u3) * y1 + (u3 - u2) * m1


def _hermite_slope(u, y0, y1, m0, m1):
    """Derivative in ``u`` of :func:`_hermite`."""
    u2 = u * u
    return (6 * u2 - 6 * u) * (y0 - y1) + (3 * u2 - 4 * u + 1) * m0 + (3 * u2 - 2 * u) * m1


class Schedule(eqx.Module):
    r"""A DDPM noise schedule on the steps ``t = 0..T`` (a pytree; ``T`` is static).

    Every array has shape ``(T + 1,)`` and is indexed by the step ``t``; entry 0 is the data level.

    Attributes:
        betas: :math:`\beta_t`, with :math:`\beta_0 = 0`.
        alphas: :math:`\alpha_t = 1 - \beta_t`.
        alpha_bars: :math:`\bar\alpha_t = \prod_{i \le t}\alpha_i` (Ho et al. 2020, sec. 2).
        log_alpha_bars: :math:`\log\bar\alpha_t = \sum_{i \le t}\log(1 - \beta_i)`, accurate for small ``t``.
        posterior_variance: :math:`\tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\beta_t`, the variance
            of :math:`q(x_{t-1}\mid x_t, x_0)` (Ho et al. 2020, eq. 7); 0 for ``t <= 1``.
        posterior_mean_coef_x0: :math:`\frac{\sqrt{\bar\alpha_{t-1}}\beta_t}{1-\bar\alpha_t}`, the weight of
            :math:`x_0` in the posterior mean :math:`\tilde\mu_t(x_t, x_0)` (Ho et al. 2020, eq. 7); 1 at ``t = 0``.
        posterior_mean_coef_xt: :math:`\frac{\sqrt{\alpha_t}(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}`, the weight of
            :math:`x_t`; 0 at ``t = 0`` (the posterior at the data level is the point mass at :math:`x_0`).
        log_alpha_bar_slopes: PCHIP derivatives :math:`\frac{d}{dt}\log\bar\alpha` at the grid points, used by
            the continuous view (module docstring).
        T: number of noising steps (static).

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxtt.diffusion import linear_schedule
        >>> schedule = linear_schedule(100)
        >>> schedule.T, schedule.betas.shape, float(schedule.alpha_bars[0])  # entry 0 is the data level
        (100, (101,), 1.0)
        >>> bool(jnp.allclose(schedule.alpha_bars, jnp.cumprod(schedule.alphas)))
        True
        >>> t = schedule.step_at_log_alpha_bar(schedule.log_alpha_bar_at(jnp.array(37.25)))  # real steps invert
        >>> round(float(t), 3)
        37.25
    """

    betas: Float[Array, " T1"]
    alphas: Float[Array, " T1"]
    alpha_bars: Float[Array, " T1"]
    log_alpha_bars: Float[Array, " T1"]
    posterior_variance: Float[Array, " T1"]
    posterior_mean_coef_x0: Float[Array, " T1"]
    posterior_mean_coef_xt: Float[Array, " T1"]
    log_alpha_bar_slopes: Float[Array, " T1"]
    T: int = eqx.field(static=True)

    @property
    def dtype(self):
        """Floating dtype of the schedule arrays."""
        return self.betas.dtype

    @eqx.filter_jit
    def log_alpha_bar_at(self, t: Real[Array, "*B"]) -> Float[Array, "*B"]:
        r""":math:`\log\bar\alpha` at steps ``t``: a table look-up for integer ``t``, the PCHIP interpolant
        (module docstring) for real ``t`` in ``[0, T]``; both agree on the integer grid."""
        t = jnp.asarray(t)
        if jnp.issubdtype(t.dtype, jnp.integer):
            return self.log_alpha_bars[t]
        return _hermite(*self._cell(t))

    def _cell(self, t):
        """``(u, y0, y1, m0, m1)``: position of real ``t`` in its grid cell and the cell's Hermite data."""
        k = jnp.clip(jnp.floor(t), 0, self.T - 1).astype(jnp.int32)
        u = (t - k).astype(self.dtype)
        y, m = self.log_alpha_bars, self.log_alpha_bar_slopes
        return u, y[k], y[k + 1], m[k], m[k + 1]

    def alpha_bar_at(self, t: Real[Array, "*B"]) -> Float[Array, "*B"]:
        r""":math:`\bar\alpha_t` for integer steps, or its monotone interpolant for real ``t`` in ``[0, T]``."""
        return jnp.exp(self.log_alpha_bar_at(t))

    def noise_std_at(self, t: Real[Array, "*B"]) -> Float[Array, "*B"]:
        r""":math:`\sigma_t = \sqrt{1 - \bar\alpha_t}`, as ``sqrt(-expm1(log ᾱ_t))`` (accurate for small ``t``)."""
        return jnp.sqrt(-jnp.expm1(self.log_alpha_bar_at(t)))

    @eqx.filter_jit
    def step_at_log_alpha_bar(self, log_alpha_bar: Float[Array, "*B"]) -> Float[Array, "*B"]:
        r"""The real step ``t`` in ``[0, T]`` at which the interpolant :math:`\log\bar\alpha(t)` equals
        ``log_alpha_bar`` (clipped to :math:`[\log\bar\alpha_T, 0]`): the inverse of :meth:`log_alpha_bar_at`.

        The grid cell is found by binary search, then the monotone cubic is inverted by 8 safeguarded Newton
        steps from the linear guess (quadratic convergence; the cubic is close to linear on each cell).
        """
        y = jnp.clip(jnp.asarray(log_alpha_bar, dtype=self.dtype), self.log_alpha_bars[-1], 0.0)
        k = jnp.searchsorted(-self.log_alpha_bars, -y, side="right") - 1
        k = jnp.clip(k, 0, self.T - 1)
        y0, y1, m0, m1 = self._cell(k)[1:]
        u = jnp.clip((y - y0) / (y1 - y0), 0.0, 1.0)
        floor = 1e-3 * (y1 - y0)  # the secant is negative; keep the Newton slope at least this negative
        for _ in range(8):
            slope = jnp.minimum(_hermite_slope(u, y0, y1, m0, m1), floor)
            u = jnp.clip(u - (_hermite(u, y0, y1, m0, m1) - y) / slope, 0.0, 1.0)
        return k + u

    def alpha_bar_continuous(self, s: Real[Array, "*B"]) -> Float[Array, "*B"]:
        r""":math:`\bar\alpha(s)` for ``s`` in ``[0, 1]``, with :math:`\bar\alpha(t/T) = \bar\alpha_t`."""
        return self.alpha_bar_at(jnp.asarray(s, dtype=self.dtype) * self.T)

    @eqx.filter_jit
    def beta_continuous(self, s: Real[Array, "*B"]) -> Float[Array, "*B"]:
        r""":math:`\beta(s) = -\frac{d}{ds}\log\bar\alpha(s)` for ``s`` in ``[0, 1]`` (continuous, non-negative)."""
        return -self.T * _hermite_slope(*self._cell(jnp.asarray(s, dtype=self.dtype) * self.T))


@jax.jit
def _build(betas):
    """The schedule arrays from ``(beta_1..beta_T)`` (one compiled computation per length and dtype)."""
    zero = jnp.zeros((1,), dtype=betas.dtype)
    betas = jnp.concatenate([zero, betas])
    alphas = 1.0 - betas
    log_alpha_bars = jnp.cumsum(jnp.log1p(-betas))
    alpha_bars = jnp.exp(log_alpha_bars)
    one_minus = -jnp.expm1(log_alpha_bars)  # 1 - ᾱ_t; entry 0 is 0
    safe = jnp.where(one_minus > 0, one_minus, jnp.ones_like(one_minus))
    prev_one_minus = jnp.concatenate([zero, one_minus[:-1]])
    prev_alpha_bars = jnp.concatenate([jnp.ones_like(zero), alpha_bars[:-1]])
    is_data = jnp.arange(betas.shape[0]) == 0
    posterior_variance = prev_one_minus / safe * betas
    coef_x0 = jnp.where(is_data, 1.0, jnp.sqrt(prev_alpha_bars) * betas / safe).astype(betas.dtype)
    coef_xt = jnp.sqrt(alphas) * prev_one_minus / safe
    return Schedule(
        betas=betas,
        alphas=alphas,
        alpha_bars=alpha_bars,
        log_alpha_bars=log_alpha_bars,
        posterior_variance=posterior_variance,
        posterior_mean_coef_x0=coef_x0,
        posterior_mean_coef_xt=coef_xt,
        log_alpha_bar_slopes=_pchip_slopes(log_alpha_bars),
        T=int(betas.shape[0] - 1),
    )


def schedule_from_betas(betas: Float[Array, " T"]) -> Schedule:
    r"""Build a :class:`Schedule` from :math:`(\beta_1, \dots, \beta_T)`, each in ``(0, 1)``.

    Computes :math:`\alpha_t`, :math:`\bar\alpha_t` (Ho et al. 2020, sec. 2), the posterior variance
    :math:`\tilde\beta_t` and the posterior-mean coefficients of :math:`q(x_{t-1}\mid x_t, x_0)` (Ho et al. 2020,
    eq. 6-7), and prepends the data level ``t = 0``. Keeps the dtype of ``betas``; differentiable in ``betas``.
    :math:`1 - \bar\alpha_t` is evaluated as ``-expm1(log ᾱ_t)`` to keep relative accuracy at small ``t``.

    Raises:
        TypeError: ``betas`` is not a floating array.
        ValueError: ``betas`` is not 1-D and non-empty, or (when concrete) not finite in ``(0, 1)``.

    Examples:
        >>> import jax.numpy as jnp
        >>> schedule = schedule_from_betas(jnp.array([0.1, 0.2]))
        >>> [round(float(v), 4) for v in schedule.alpha_bars]  # 1, 0.9, 0.9 * 0.8
        [1.0, 0.9, 0.72]
        >>> round(float(schedule.posterior_variance[2]), 4)  # (1 - 0.9) / (1 - 0.72) * 0.2
        0.0714
    """
    betas = check_array(betas, "betas", ndim=1, floating=True)
    if betas.shape[0] < 1:
        raise ValueError("betas must hold at least one value (T >= 1), got an empty array")
    check_finite(betas, "betas")
    if is_concrete(betas):
        b = np.asarray(betas)
        if not (np.all(b > 0) and np.all(b < 1)):
            raise ValueError(f"betas must lie in (0, 1), got min {b.min()} and max {b.max()}")
    return _build(jnp.asarray(betas))


def _float_dtype(dtype):
    return _default_float() if dtype is None else check_float_dtype(dtype)


def linear_schedule(T: int, beta_start: float = 1e-4, beta_end: float = 2e-2, *, dtype=None) -> Schedule:
    r"""The linear DDPM schedule :math:`\beta_t = \beta_{start} + \frac{t-1}{T-1}(\beta_{end} - \beta_{start})`,
    ``t = 1..T`` (Ho et al. 2020, sec. 4).

    Args:
        T: number of steps, ``>= 1`` (``T = 1`` uses :math:`\beta_1 = \beta_{start}`).
        beta_start, beta_end: first and last :math:`\beta`, both in ``(0, 1)``.
        dtype: floating dtype of the arrays (default: JAX's default float).

    Examples:
        >>> schedule = linear_schedule(1000)
        >>> round(float(schedule.betas[1]), 6), round(float(schedule.betas[1000]), 6)
        (0.0001, 0.02)
        >>> float(schedule.alpha_bars[1000]) < 1e-4  # x_T is almost pure noise
        True
    """
    T = check_int(T, "T", minimum=1)
    beta_start = check_real(beta_start, "beta_start", minimum=0.0, maximum=1.0, strict_minimum=True)
    beta_end = check_real(beta_end, "beta_end", minimum=0.0, maximum=1.0, strict_minimum=True)
    if beta_start >= 1.0 or beta_end >= 1.0:
        raise ValueError(f"beta_start and beta_end must be < 1, got {beta_start} and {beta_end}")
    betas = np.linspace(beta_start, beta_end, T)
    return schedule_from_betas(jnp.asarray(betas, dtype=_float_dtype(dtype)))


def cosine_schedule(T: int, s: float = 0.008, *, max_beta: float = 0.999, dtype=None) -> Schedule:
    r"""The cosine schedule of Nichol & Dhariwal (2021, "Improved DDPM", eq. 17):

    .. math::
        \bar\alpha(t) = \frac{f(t)}{f(0)},\quad f(t) = \cos^2\Big(\frac{t/T + s}{1 + s}\frac{\pi}{2}\Big),\quad
        \beta_t = \min\Big(1 - \frac{\bar\alpha(t)}{\bar\alpha(t-1)},\ \beta_{max}\Big),

    with :math:`\bar\alpha_t` then recomputed from the clipped :math:`\beta_t` (so it differs from
    :math:`f(t)/f(0)` only where the clip is active, near ``t = T``).

    Args:
        T: number of steps, ``>= 1``.
        s: offset ``> 0`` that keeps :math:`\beta_1` away from 0.
        max_beta: the clip, in ``(0, 1)`` (0.999 as in the paper).
        dtype: floating dtype of the arrays (default: JAX's default float).

    Examples:
        >>> import math
        >>> schedule = cosine_schedule(100)
        >>> f = lambda t: math.cos((t / 100 + 0.008) / 1.008 * math.pi / 2) ** 2
        >>> abs(float(schedule.alpha_bars[50]) - f(50) / f(0)) < 1e-5  # eq. 17 away from the clip
        True
    """
    T = check_int(T, "T", minimum=1)
    s = check_real(s, "s", minimum=0.0, strict_minimum=True)
    max_beta = check_real(max_beta, "max_beta", minimum=0.0, maximum=1.0, strict_minimum=True)
    if max_beta >= 1.0:
        raise ValueError(f"max_beta must be < 1, got {max_beta}")
    grid = np.arange(T + 1, dtype=np.float64) / T
    f = np.cos((grid + s) / (1.0 + s) * math.pi / 2.0) ** 2
    betas = np.minimum(1.0 - f[1:] / f[:-1], max_beta)
    return schedule_from_betas(jnp.asarray(betas, dtype=_float_dtype(dtype)))
