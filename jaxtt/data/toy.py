r"""Two-dimensional toy densities, standardised with the exact moments of each distribution.

Every generator draws an i.i.d. sample with ``jax.random`` (deterministic given the key, jit-able with ``n``
static) and maps it affinely with *fixed constants*: the exact per-coordinate mean
and standard deviation of the distribution (noise included), computed in closed form from the parameters.
The distribution is therefore standardised (zero mean, unit variance per coordinate); a finite sample is not
forced to be. Correlations between the two coordinates are left as they are. Noise levels are given in the
raw units of each construction, before standardisation.

Randomness: each call makes one draw ``jax.random.normal(key, (n, m))``; the uniform and discrete variables
of a construction are its columns mapped through the standard normal CDF :math:`\Phi` (probability integral
transform: :math:`\Phi(Z) \sim U(0, 1)`). One random-bit generation per call keeps compilation cheap. Only
``n``, ``dtype`` (and ``num_arms``) are compile-time constants; the real-valued parameters are traced, so
changing them does not recompile.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
from jax.scipy.special import ndtr
from jaxtyping import Array, Float, PRNGKeyArray

from jaxtt._validation import check_choice, check_float_dtype, check_int, check_key, check_real

__all__ = [
    "TOY_DATASETS",
    "checkerboard",
    "circles",
    "eight_gaussians",
    "moons",
    "pinwheel",
    "swiss_roll",
    "toy_dataset",
]

_ROLL_START, _ROLL_END = 1.5 * math.pi, 4.5 * math.pi


def _check_common(key, n, dtype) -> int:
    """Validate the arguments every generator shares; return ``n`` as an int."""
    check_key(key)
    check_float_dtype(dtype)
    return check_int(n, "n", minimum=1)


def _uniform(z):
    """``U(0, 1)`` variables from standard normals ``z`` by the probability integral transform."""
    return ndtr(z)


def _categorical(z, k: int):
    """Uniform integers ``0..k-1`` (as floats) from standard normals ``z``."""
    return jnp.minimum(jnp.floor(k * _uniform(z)), k - 1)


def _add_noise_and_standardise(z, points, noise, mean, var):
    """Add ``noise * z`` (``z`` standard normal, shape of ``points``) and map with the exact moments ``mean`` and
    ``var`` of the noise-free construction (the noise variance is added to ``var``)."""
    points = points + noise * z
    mean = jnp.asarray(mean, dtype=points.dtype)
    std = jnp.sqrt(jnp.asarray(var, dtype=points.dtype) + noise**2)
    return (points - mean) / std


def _swiss_roll_moments() -> tuple[tuple[float, float], tuple[float, float]]:
    """Exact mean and variance of ``(t cos t, t sin t)`` for ``t ~ U[1.5 pi, 4.5 pi]`` from antiderivatives."""
    a, b = _ROLL_START, _ROLL_END

    def average(antiderivative):
        return (antiderivative(b) - antiderivative(a)) / (b - a)

    def t2_cos2t(t):  # antiderivative of t^2 cos(2t)
        return 0.5 * t**2 * math.sin(2 * t) + 0.5 * t * math.cos(2 * t) - 0.25 * math.sin(2 * t)

    mean_x = average(lambda t: t * math.sin(t) + math.cos(t))
    mean_y = average(lambda t: math.sin(t) - t * math.cos(t))
    second_x = average(lambda t: t**3 / 6 + 0.5 * t2_cos2t(t))
    second_y = average(lambda t: t**3 / 6 - 0.5 * t2_cos2t(t))
    return (mean_x, mean_y), (second_x - mean_x**2, second_y - mean_y**2)


@partial(jax.jit, static_argnames=("n", "dtype"))
def _swiss_roll(key, n, noise, dtype):
    z = jax.random.normal(key, (n, 3), dtype=dtype)
    t = _ROLL_START + (_ROLL_END - _ROLL_START) * _uniform(z[:, 0])
    mean, var = _swiss_roll_moments()
    return _add_noise_and_standardise(z[:, 1:], jnp.stack([t * jnp.cos(t), t * jnp.sin(t)], axis=1), noise, mean, var)


def swiss_roll(key: PRNGKeyArray, n: int, noise: float = 1.0, dtype=jnp.float32) -> Float[Array, "n 2"]:
    r"""Two-dimensional swiss roll :math:`(t \cos t, t \sin t) + \text{noise} \cdot N(0, I)`, t ~ U[1.5 pi, 4.5 pi].

    The roll of ``sklearn.datasets.make_swiss_roll`` (its first and third coordinates), as used for 2-D
    density-model benchmarks (Grathwohl et al. 2019, FFJORD). Standardised with the exact moments (module
    docstring); the mean of the curve is :math:`(2, 2/(3\pi))`.

    Args:
        key: JAX PRNG key.
        n: number of points.
        noise: standard deviation of the isotropic Gaussian noise, in raw units (the roll spans about ±14).
        dtype: floating dtype of the result.

    Returns:
        ``(n, 2)`` array of ``dtype``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> x = swiss_roll(jax.random.key(0), 20000)
        >>> x.shape, x.dtype
        ((20000, 2), dtype('float32'))
        >>> bool(jnp.allclose(x.mean(0), 0.0, atol=0.05) & jnp.allclose(x.std(0), 1.0, atol=0.05))  # standardised
        True
    """
    n = _check_common(key, n, dtype)
    noise = check_real(noise, "noise", minimum=0.0)
    return _swiss_roll(key, n, noise, dtype)


@partial(jax.jit, static_argnames=("n", "dtype"))
def _moons(key, n, noise, dtype):
    z = jax.random.normal(key, (n, 4), dtype=dtype)
    theta = math.pi * _uniform(z[:, 0])
    upper = jnp.stack([jnp.cos(theta), jnp.sin(theta)], axis=1)
    lower = jnp.stack([1.0 - jnp.cos(theta), 0.5 - jnp.sin(theta)], axis=1)
    points = jnp.where(z[:, 1:2] > 0, upper, lower)
    return _add_noise_and_standardise(z[:, 2:], points, noise, (0.5, 0.25), (0.75, 9 / 16 - 1 / math.pi))


def moons(key: PRNGKeyArray, n: int, noise: float = 0.1, dtype=jnp.float32) -> Float[Array, "n 2"]:
    r"""Two interleaving half circles, as ``sklearn.datasets.make_moons`` but with random angles and moon labels.

    With :math:`\theta \sim U[0, \pi]` and a fair coin, a point is :math:`(\cos\theta, \sin\theta)` (upper moon)
    or :math:`(1 - \cos\theta, 1/2 - \sin\theta)` (lower moon), plus ``noise`` times :math:`N(0, I)`. Exact
    moments: mean :math:`(1/2, 1/4)`, variances :math:`3/4 + \text{noise}^2` and
    :math:`9/16 - 1/\pi + \text{noise}^2`; standardised with them.

    Args:
        key: JAX PRNG key.
        n: number of points.
        noise: standard deviation of the Gaussian noise in raw units (the moons have radius 1).
        dtype: floating dtype of the result.

    Returns:
        ``(n, 2)`` array of ``dtype``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> x = moons(jax.random.key(0), 20000)
        >>> bool(jnp.allclose(x.mean(0), 0.0, atol=0.05) & jnp.allclose(x.std(0), 1.0, atol=0.05))  # standardised
        True
    """
    n = _check_common(key, n, dtype)
    noise = check_real(noise, "noise", minimum=0.0)
    return _moons(key, n, noise, dtype)


@partial(jax.jit, static_argnames=("n", "dtype"))
def _circles(key, n, noise, factor, dtype):
    z = jax.random.normal(key, (n, 4), dtype=dtype)
    theta = 2 * math.pi * _uniform(z[:, 0])
    radius = jnp.where(z[:, 1] > 0, jnp.ones_like(theta), factor * jnp.ones_like(theta))
    points = radius[:, None] * jnp.stack([jnp.cos(theta), jnp.sin(theta)], axis=1)
    var = (1.0 + factor**2) / 4.0
    return _add_noise_and_standardise(z[:, 2:], points, noise, (0.0, 0.0), (var, var))


def circles(
    key: PRNGKeyArray, n: int, noise: float = 0.08, factor: float = 0.5, dtype=jnp.float32
) -> Float[Array, "n 2"]:
    r"""Two concentric circles of radii 1 and ``factor``, as ``sklearn.datasets.make_circles`` with random angles.

    A point is :math:`r(\cos\theta, \sin\theta) + \text{noise} \cdot N(0, I)` with :math:`\theta \sim U[0, 2\pi)`
    and :math:`r \in \{1, \text{factor}\}` by a fair coin. Exact moments: mean zero, variance
    :math:`(1 + \text{factor}^2)/4 + \text{noise}^2` per coordinate; standardised with them.

    Args:
        key: JAX PRNG key.
        n: number of points.
        noise: standard deviation of the Gaussian noise in raw units.
        factor: radius of the inner circle, in ``(0, 1)``.
        dtype: floating dtype of the result.

    Returns:
        ``(n, 2)`` array of ``dtype``.

    Examples:
        >>> import math, jax, jax.numpy as jnp
        >>> x = circles(jax.random.key(0), 1000, noise=0.0, factor=0.5)
        >>> radii = jnp.linalg.norm(x, axis=1) * math.sqrt((1 + 0.5**2) / 4)  # undo the standardisation
        >>> sorted({round(float(r), 4) for r in radii})
        [0.5, 1.0]
    """
    n = _check_common(key, n, dtype)
    noise = check_real(noise, "noise", minimum=0.0)
    factor = check_real(factor, "factor", minimum=0.0, maximum=1.0, strict_minimum=True)
    if factor == 1.0:
        raise ValueError("factor must be < 1 (the inner circle must be smaller), got 1.0")
    return _circles(key, n, noise, factor, dtype)


@partial(jax.jit, static_argnames=("n", "dtype"))
def _eight_gaussians(key, n, noise, dtype):
    z = jax.random.normal(key, (n, 3), dtype=dtype)
    angle = (math.pi / 4) * _categorical(z[:, 0], 8)
    points = jnp.stack([jnp.cos(angle), jnp.sin(angle)], axis=1)
    return _add_noise_and_standardise(z[:, 1:], points, noise, (0.0, 0.0), (0.5, 0.5))


def eight_gaussians(key: PRNGKeyArray, n: int, noise: float = 0.125, dtype=jnp.float32) -> Float[Array, "n 2"]:
    r"""Equal mixture of eight isotropic Gaussians centred at :math:`(\cos(k\pi/4), \sin(k\pi/4))`, k = 0..7.

    Each component has standard deviation ``noise`` (FFJORD's ring of radius 4 with std 0.5 corresponds to
    ``noise = 0.125``). Exact moments: mean zero, variance :math:`1/2 + \text{noise}^2` per coordinate (and zero
    covariance); standardised with them.

    Args:
        key: JAX PRNG key.
        n: number of points.
        noise: component standard deviation relative to the unit radius of the ring.
        dtype: floating dtype of the result.

    Returns:
        ``(n, 2)`` array of ``dtype``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> x = eight_gaussians(jax.random.key(0), 1000, noise=0.0)  # the eight centres only
        >>> len({(round(float(a), 3), round(float(b), 3)) for a, b in x})
        8
        >>> bool(jnp.allclose(jnp.linalg.norm(x, axis=1), 2**0.5, atol=1e-5))  # unit ring / sqrt(1/2)
        True
    """
    n = _check_common(key, n, dtype)
    noise = check_real(noise, "noise", minimum=0.0)
    return _eight_gaussians(key, n, noise, dtype)


@partial(jax.jit, static_argnames=("n", "dtype"))
def _checkerboard(key, n, noise, dtype):
    z = jax.random.normal(key, (n, 5), dtype=dtype)
    x = 4.0 * _uniform(z[:, 0]) - 2.0
    column_parity = jnp.mod(jnp.floor(x), 2.0)
    y = _uniform(z[:, 1]) + column_parity - 2.0 + 2.0 * (z[:, 2] > 0).astype(dtype)
    return _add_noise_and_standardise(z[:, 3:], jnp.stack([x, y], axis=1), noise, (0.0, 0.0), (4 / 3, 4 / 3))


def checkerboard(key: PRNGKeyArray, n: int, noise: float = 0.0, dtype=jnp.float32) -> Float[Array, "n 2"]:
    r"""Uniform density on the 8 cells :math:`[i, i+1) \times [j, j+1)` of :math:`[-2, 2]^2` with ``i + j`` even.

    The checkerboard of FFJORD (Grathwohl et al. 2019), optionally blurred by ``noise`` times :math:`N(0, I)`.
    Both marginals are uniform on :math:`[-2, 2]`, so the exact moments are mean zero and variance
    :math:`4/3 + \text{noise}^2` per coordinate; standardised with them. The coordinates are correlated
    (covariance 1/4 before standardisation), which standardisation keeps.

    Args:
        key: JAX PRNG key.
        n: number of points.
        noise: standard deviation of the Gaussian blur in raw units (cells have side 1).
        dtype: floating dtype of the result.

    Returns:
        ``(n, 2)`` array of ``dtype``.

    Examples:
        >>> import math, jax, jax.numpy as jnp
        >>> raw = checkerboard(jax.random.key(0), 1000) * math.sqrt(4 / 3)  # undo the standardisation
        >>> bool(jnp.all(jnp.abs(raw) <= 2) & jnp.all((jnp.floor(raw[:, 0]) + jnp.floor(raw[:, 1])) % 2 == 0))
        True
    """
    n = _check_common(key, n, dtype)
    noise = check_real(noise, "noise", minimum=0.0)
    return _checkerboard(key, n, noise, dtype)


@partial(jax.jit, static_argnames=("n", "num_arms", "dtype"))
def _pinwheel(key, n, radial_std, tangential_std, num_arms, rate, dtype):
    z = jax.random.normal(key, (n, 3), dtype=dtype)
    radial = 1.0 + radial_std * z[:, 0]
    tangential = tangential_std * z[:, 1]
    arm = _categorical(z[:, 2], num_arms)
    phi = (2 * math.pi / num_arms) * arm + rate * jnp.exp(radial)
    points = jnp.stack(
        [radial * jnp.cos(phi) - tangential * jnp.sin(phi), radial * jnp.sin(phi) + tangential * jnp.cos(phi)], axis=1
    )
    return points / jnp.sqrt((1.0 + radial_std**2 + tangential_std**2) / 2.0)


def pinwheel(
    key: PRNGKeyArray,
    n: int,
    radial_std: float = 0.3,
    tangential_std: float = 0.1,
    num_arms: int = 5,
    rate: float = 0.25,
    dtype=jnp.float32,
) -> Float[Array, "n 2"]:
    r"""Pinwheel of ``num_arms`` curved arms (Johnson et al. 2016, "Composing graphical models with neural networks").

    With :math:`f = (1 + \sigma_r z_0, \sigma_t z_1)`, :math:`z \sim N(0, I)`, and an arm
    :math:`k \sim U\{0, \dots, K-1\}`, the point is :math:`R(\varphi) f` for the rotation by
    :math:`\varphi = 2\pi k/K + \text{rate} \cdot e^{f_0}`. The K-fold rotational symmetry (K >= 3) makes the
    mean zero and the covariance isotropic with variance :math:`(1 + \sigma_r^2 + \sigma_t^2)/2` per coordinate
    (half of :math:`E\|f\|^2`); standardised with them.

    Args:
        key: JAX PRNG key.
        n: number of points.
        radial_std: :math:`\sigma_r`, spread along an arm.
        tangential_std: :math:`\sigma_t`, spread across an arm.
        num_arms: number of arms K >= 3.
        rate: how strongly an arm curls.
        dtype: floating dtype of the result.

    Returns:
        ``(n, 2)`` array of ``dtype``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> x = pinwheel(jax.random.key(0), 20000, num_arms=5)
        >>> bool(jnp.allclose(x.mean(0), 0.0, atol=0.05) & jnp.allclose(x.std(0), 1.0, atol=0.05))  # standardised
        True
    """
    n = _check_common(key, n, dtype)
    radial_std = check_real(radial_std, "radial_std", minimum=0.0)
    tangential_std = check_real(tangential_std, "tangential_std", minimum=0.0)
    num_arms = check_int(num_arms, "num_arms", minimum=3)
    rate = check_real(rate, "rate")
    return _pinwheel(key, n, radial_std, tangential_std, num_arms, rate, dtype)


#: Name -> generator ``f(key, n, ...)`` of every toy data set, used by ``toy_dataset`` and the CLI.
TOY_DATASETS = {
    "swiss_roll": swiss_roll,
    "moons": moons,
    "circles": circles,
    "eight_gaussians": eight_gaussians,
    "checkerboard": checkerboard,
    "pinwheel": pinwheel,
}


def toy_dataset(name: str, key: PRNGKeyArray, n: int, **kwargs) -> Float[Array, "n 2"]:
    """Draw ``n`` standardised points from the toy data set ``name`` (a key of ``TOY_DATASETS``).

    Keyword arguments (``noise``, ``dtype``, ...) are passed to the generator.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> sorted(TOY_DATASETS)
        ['checkerboard', 'circles', 'eight_gaussians', 'moons', 'pinwheel', 'swiss_roll']
        >>> x = toy_dataset("moons", jax.random.key(0), 100, noise=0.05)
        >>> bool(jnp.array_equal(x, moons(jax.random.key(0), 100, noise=0.05)))
        True
    """
    check_choice(name, "name", TOY_DATASETS)
    return TOY_DATASETS[name](key, n, **kwargs)
