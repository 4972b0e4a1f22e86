r"""Marginal whitening of the forward process in the data's principal axes: the coordinates an FTT denoiser
should see.

For any data distribution with mean :math:`\mu` and covariance :math:`\Sigma = U \operatorname{diag}(\lambda) U^\top`,
the noised point :math:`x_t = a_t x_0 + s_t \epsilon` (:math:`a_t = \sqrt{\bar\alpha_t}`,
:math:`s_t = \sqrt{1-\bar\alpha_t}`) has mean :math:`a_t\mu` and covariance :math:`a_t^2\Sigma + s_t^2 I`
exactly, with the same eigenvectors. So

.. math:: u = \operatorname{diag}\big(a_t^2\lambda + s_t^2\big)^{-1/2}\, U^\top (x_t - a_t\mu)

has zero mean and identity covariance at *every* step: the input preconditioning :math:`c_{in}` of Karras et
al. (2022, "Elucidating the design space of diffusion-based generative models", Table 1), per principal axis
instead of one scalar :math:`\sigma_{data}`. A separable (TT) model works in these axes, and predicts the noise in
them too (:math:`U^\top\epsilon` is again standard normal). For Gaussian data the optimal noise is then exactly
separable, one axis per output:

.. math:: \epsilon^*(x_t, t) = U\Big[\frac{s_t\, u_i}{\sqrt{a_t^2\lambda_i + s_t^2}}\Big]_i,

a rank-1 function of :math:`(u_i, t)` whatever the rotation and anisotropy of :math:`\Sigma`; a low-rank FTT
only has to learn the non-Gaussian remainder.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from jaxtt._validation import check_array, check_finite, check_real

__all__ = ["Whitening"]


class Whitening(eqx.Module):
    r"""The data's mean, principal axes and variances, which whiten every noised marginal (module docstring).

    The statistics are stored as static tuples of Python floats: constants of the model, never trained (an
    Optax loop over the model's array leaves does not see them) and folded into every compiled call.

    Attributes:
        mean: :math:`\mu`, ``D`` floats.
        axes: :math:`U`, ``D × D`` floats (rows of the matrix), orthonormal columns: principal axes by decreasing
            variance.
        variances: :math:`\lambda`, ``D`` floats.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> x0 = jax.random.normal(jax.random.key(0), (4000, 2)) @ jnp.array([[2.0, 0.0], [1.5, 0.3]]) + 5.0
        >>> w = Whitening.fit(x0)
        >>> u = w.transform(x0, jnp.ones(4000), jnp.zeros(4000))           # at the data level (a = 1, s = 0)
        >>> bool(jnp.allclose(jnp.cov(u.T), jnp.eye(2), atol=1e-3))
        True
        >>> bool(jnp.allclose(w.rotate_back(w.rotate(x0)), x0, atol=1e-4))   # outputs rotate orthogonally
        True
    """

    mean: tuple[float, ...] = eqx.field(static=True)
    axes: tuple[tuple[float, ...], ...] = eqx.field(static=True)
    variances: tuple[float, ...] = eqx.field(static=True)

    @classmethod
    def fit(cls, x0, *, min_variance: float = 1e-8) -> Whitening:
        r"""Mean and principal axes of data ``x0 (N, D)`` (covariance eigendecomposition in float64).

        Args:
            x0: data ``(N, D)`` with ``N >= 2``.
            min_variance: floor on the variances, relative to the largest: a degenerate direction (data on a
                subspace) is scaled as if it had this variance instead of dividing by zero.
        """
        x0 = check_array(x0, "x0", ndim=2, floating=True)
        if x0.shape[0] < 2:
            raise ValueError(f"x0 needs at least 2 rows to estimate a covariance, got {x0.shape[0]}")
        check_finite(x0, "x0")
        min_variance = check_real(min_variance, "min_variance", minimum=0.0)
        data = np.asarray(x0, np.float64)
        variances, axes = np.linalg.eigh(np.cov(data, rowvar=False).reshape(data.shape[1], data.shape[1]))
        order = np.argsort(variances)[::-1]
        variances = np.maximum(variances[order], min_variance * max(variances.max(), 1e-300))
        return cls(tuple(data.mean(0).tolist()), tuple(map(tuple, axes[:, order].tolist())), tuple(variances.tolist()))

    @property
    def dim(self) -> int:
        """Data dimension ``D``."""
        return len(self.mean)

    def transform(self, x_t: Float[Array, "N D"], a: Float[Array, " N"], s: Float[Array, " N"]) -> Float[Array, "N D"]:
        r""":math:`u = (a^2\lambda + s^2)^{-1/2} U^\top(x_t - a\mu)` per row, for signal and noise scales ``a, s``."""
        mean, variances = jnp.asarray(self.mean, x_t.dtype), jnp.asarray(self.variances, x_t.dtype)
        scale = jnp.sqrt(a[:, None] ** 2 * variances + s[:, None] ** 2)
        return self.rotate(x_t - a[:, None] * mean) / scale

    def rotate(self, y: Float[Array, "N D"]) -> Float[Array, "N D"]:
        r"""Coordinates in the principal axes, :math:`U^\top y` per row."""
        return y @ jnp.asarray(self.axes, y.dtype)

    def rotate_back(self, g: Float[Array, "N D"]) -> Float[Array, "N D"]:
        r"""Back to data coordinates, :math:`U g` per row."""
        return g @ jnp.asarray(self.axes, g.dtype).T
