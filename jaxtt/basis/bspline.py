r"""Clamped uniform B-spline basis on an interval, evaluated with the Cox–de Boor triangle."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

from jaxtt._validation import check_domain, check_int
from jaxtt.basis.base import Basis, as_real_input, check_bool, jit_method

__all__ = ["BSpline"]


def _triangle(u, first, n_intervals: int, degree: int, xp):
    r"""The ``degree + 1`` B-splines of degree ``degree`` that do not vanish on the interval holding ``u``.

    ``u`` is the coordinate in knot units and ``first`` the index ``i`` of the interval :math:`[i, i+1]`
    that holds it, on the clamped knot sequence whose knots around that interval are
    :math:`\mathrm{clip}(i + s, 0, n)`. Returns ``[..., degree + 1]``: :math:`B_{i,p}, \dots, B_{i+p,p}` in
    the indexing of the degree-``p`` knot vector. This is the Cox–de Boor triangle (Piegl & Tiller, *The
    NURBS Book*, 1997, Algorithm A2.2, which evaluates the Cox-de Boor recursion without its zero-over-zero terms),
    vectorised over the points and, within one level ``j``, over its ``j`` divisions:

    .. math::
        \tau_r = \frac{N_r}{R_{r+1} + L_{j-r}}, \qquad
        N'_r = R_{r+1} \tau_r + L_{j-r+1} \tau_{r-1}, \qquad r = 0, \dots, j,

    with :math:`L_s = u - t_{i+1-s}`, :math:`R_s = t_{i+s} - u` and out-of-range :math:`\tau` taken as zero.
    Every denominator is a difference of two knots that enclose the interval, hence an integer ``>= 1``, so
    the triangle is finite for every ``u``; ``u`` slightly outside ``[i, i+1]`` evaluates the polynomial piece
    of that interval. ``xp`` is ``numpy`` or ``jax.numpy`` (the NumPy path builds the exact Gram matrix at
    construction time).
    """
    start = first.astype(u.dtype)[..., None]
    steps = np.arange(1, degree + 1)
    # Knots left of the interval only clip at 0, knots right of it only at n.
    left = u[..., None] - xp.maximum(start + (1 - steps), 0)  # L_1 .. L_p
    right = xp.minimum(start + steps, n_intervals) - u[..., None]  # R_1 .. R_p
    zero = xp.zeros_like(u)[..., None]
    values = xp.ones_like(u)[..., None]
    for j in range(1, degree + 1):
        r_terms, l_terms = right[..., :j], left[..., j - 1 :: -1]  # R_1 .. R_j and L_j .. L_1
        temp = values / (r_terms + l_terms)
        values = xp.concatenate([r_terms * temp, zero], axis=-1) + xp.concatenate([zero, l_terms * temp], axis=-1)
    return values


def _triangle_derivative(lower, first, n_intervals: int, degree: int):
    r"""Derivatives (in knot units) of the ``degree + 1`` non-zero B-splines from the degree ``p - 1`` ones.

    .. math::
        B_{k,p}' = p \left( \frac{B_{k,p-1}}{t_{k+p} - t_k} - \frac{B_{k+1,p-1}}{t_{k+p+1} - t_{k+1}} \right)

    (Piegl & Tiller, *The NURBS Book*, eq. 2.7) for :math:`k = i, \dots, i + p` on the interval
    :math:`[i, i+1]`. ``lower`` (``[..., p]``) holds :math:`B_{i+1,p-1}, \dots, B_{i+p,p-1}`, the output of
    :func:`_triangle` for degree ``p - 1``; :math:`B_{i,p-1}` and :math:`B_{i+p+1,p-1}` vanish on the interval
    and enter as zeros. The denominators of all other terms are differences of knots that enclose
    the interval, integers ``>= 1``; the zero terms get denominator 1 instead of a possible 0.
    """
    start = first.astype(lower.dtype)[..., None]
    shift = np.arange(degree + 2)
    # widths[s] = t_{i+s+p} - t_{i+s} with t_q = clip(q - p, 0, n): left spans s = r, right spans s = r + 1.
    widths = jnp.clip(start + shift, 0, n_intervals) - jnp.clip(start + (shift - degree), 0, n_intervals)
    widths = jnp.maximum(widths, 1)
    zero = jnp.zeros_like(lower[..., :1])
    lower_k = jnp.concatenate([zero, lower], axis=-1)  # B_{k,p-1} for k = i .. i+p
    lower_k1 = jnp.concatenate([lower, zero], axis=-1)  # B_{k+1,p-1}
    return degree * (lower_k / widths[..., :-1] - lower_k1 / widths[..., 1:])


def _scatter(first, local: Array, m: int) -> Array:
    """Dense ``[..., m]`` array holding ``local[..., r]`` at column ``first + r`` and zeros elsewhere."""
    columns = jnp.arange(m)
    dense = jnp.zeros(local.shape[:-1] + (m,), local.dtype)
    for r in range(local.shape[-1]):
        dense = dense + jnp.where(first[..., None] + r == columns, local[..., r, None], 0)
    return dense


def _orthonormalizing_transform(m: int, degree: int, width: float) -> tuple[tuple[float, ...], ...]:
    r"""Upper-triangular :math:`T = L^{-\top}` with :math:`M = L L^\top` the exact mass matrix.

    :math:`M_{jk} = \int_a^b B_j B_k \, dx = \Delta \int_0^n B_j(u) B_k(u) \, du`, computed in float64 with
    :math:`p + 1` Gauss–Legendre nodes per knot interval (exact for the degree-:math:`2p` products). Then
    :math:`\psi = B\, T` satisfies :math:`\int_a^b \psi^\top \psi \, dx = L^{-1} M L^{-\top} = I`.
    """
    n_intervals = m - degree
    nodes, weights = np.polynomial.legendre.leggauss(degree + 1)
    u = np.arange(n_intervals)[:, None] + 0.5 * (nodes + 1.0)
    first = np.broadcast_to(np.arange(n_intervals)[:, None], u.shape)
    local = _triangle(u, first, n_intervals, degree, np)  # [n, Q, p + 1]
    mass = np.zeros((m, m))
    step = width / n_intervals
    for r in range(degree + 1):
        for s in range(degree + 1):
            block = (0.5 * step) * (local[..., r] * local[..., s]) @ weights
            np.add.at(mass, (np.arange(n_intervals) + r, np.arange(n_intervals) + s), block)
    transform = np.linalg.inv(np.linalg.cholesky(mass)).T
    return tuple(tuple(float(v) for v in row) for row in transform)


class BSpline(Basis):
    r"""Clamped uniform B-splines of degree ``p`` on ``domain = (a, b)``: ``m`` functions (de Boor 1978; Piegl & Tiller 1997).

    The knot vector is clamped (open) and uniform: ``p + 1`` copies of ``a``, the interior knots
    :math:`a + j\Delta` for :math:`j = 1, \dots, n - 1`, and ``p + 1`` copies of ``b``, with
    :math:`n = m - p` knot intervals of length

    .. math::
        \Delta = \frac{b - a}{m - p}.

    The ``m + p + 1`` knots carry exactly ``m`` B-splines :math:`B_{0,p}, \dots, B_{m-1,p}` (recursion of
    the Cox-de Boor recursion), which are non-negative and form a partition of unity on all of :math:`[a, b]`,
    including the right end point (:math:`B_{m-1,p}(b) = 1`, the left limit, instead of the zero that the
    half-open indicator of eq. 15 would give).

    **Erratum of a common misprint:** a knot step
    :math:`\Delta = \lfloor (u_{max} - u_{min}) / m \rfloor` with ``m`` uniform knots is sometimes printed. The floor is wrong
    (it gives :math:`\Delta = 0` for any interval shorter than ``m``), and ``m`` unclamped knots do not
    carry ``m`` functions that sum to one on the interval. This class uses the real step above on the
    clamped knot vector.

    Evaluation uses the Cox–de Boor triangle (Piegl & Tiller, *The NURBS Book*, Algorithm A2.2): a Python
    loop over the degree only, vectorised over all points, :math:`O(p^2)` operations per point, and no
    division by zero anywhere (values and derivatives are finite at knots and end points).

    Out-of-domain policy: ``x`` is clamped to :math:`[a, b]`, so :math:`\phi_k(x) = \phi_k(\mathrm{clip}(x, a, b))`
    and :meth:`derivative` is zero outside :math:`[a, b]` (it is the derivative of the clamped function; at
    the end points it is the one-sided derivative from inside, and at interior knots of a degree-1 spline the
    right derivative). ``jax.grad`` through ``basis(x)`` gives the same numbers.

    ``orthonormal=False`` gives the plain B-splines, which have :attr:`support_size` ``= p + 1`` non-zero
    functions at any point; :meth:`local` returns just those. ``orthonormal=True`` gives
    :math:`\psi = B\,T` with the fixed upper-triangular :math:`T = L^{-\top}`, where :math:`M = L L^\top` is
    the Cholesky factorisation of the exact mass matrix :math:`M_{jk} = \int_a^b B_j B_k\,dx` (Gauss–Legendre
    quadrature, float64, at construction): :math:`\int_a^b \psi_j \psi_k \, dx = \delta_{jk}`. The
    orthonormal functions are no longer local (:math:`\psi_j` involves :math:`B_0, \dots, B_j`), so
    :meth:`local` is only available for the plain basis.

    Args:
        m: number of functions, ``m > degree``.
        degree: polynomial degree ``p >= 0`` (``p = 2``, quadratic, is the default).
        domain: the interval ``(a, b)`` with ``a < b``.
        orthonormal: use the :math:`L^2([a, b])`-orthonormal combinations described above.

    Examples:
        >>> import jax.numpy as jnp
        >>> basis = BSpline(5, degree=2, domain=(0.0, 1.0))
        >>> basis.knots
        (0.0, 0.0, 0.0, 0.3333333333333333, 0.6666666666666666, 1.0, 1.0, 1.0)
        >>> x = jnp.linspace(0.0, 1.0, 11)
        >>> bool(jnp.allclose(basis(x).sum(-1), 1.0, atol=1e-6))  # partition of unity, end points included
        True
        >>> first, values = basis.local(jnp.array([0.5]))  # the degree + 1 non-zero splines
        >>> int(first[0]), [round(float(v), 4) for v in values[0]]
        (1, [0.125, 0.75, 0.125])
    """

    m: int = eqx.field(static=True)
    degree: int = eqx.field(static=True)
    domain: tuple[float, float] = eqx.field(static=True)
    orthonormal: bool = eqx.field(static=True)
    _transform: tuple[tuple[float, ...], ...] | None = eqx.field(static=True, repr=False)

    def __init__(
        self,
        m: int,
        degree: int = 2,
        domain: tuple[float, float] = (-1.0, 1.0),
        orthonormal: bool = False,
    ):
        self.m = check_int(m, "m", minimum=1)
        self.degree = check_int(degree, "degree", minimum=0)
        if self.m <= self.degree:
            raise ValueError(f"m must be > degree for a B-spline basis, got m={self.m}, degree={self.degree}")
        self.domain = check_domain(domain, "domain")
        self.orthonormal = check_bool(orthonormal, "orthonormal")
        a, b = self.domain
        self._transform = _orthonormalizing_transform(self.m, self.degree, b - a) if self.orthonormal else None

    @property
    def support_size(self) -> int:
        """Number of functions that can be non-zero at one point: ``degree + 1`` (``m`` if orthonormal)."""
        return self.m if self.orthonormal else self.degree + 1

    @property
    def knots(self) -> tuple[float, ...]:
        """The clamped uniform knot vector, ``m + degree + 1`` floats from ``a`` to ``b``."""
        a, b = self.domain
        n_intervals = self.m - self.degree
        q = np.clip(np.arange(self.m + self.degree + 1) - self.degree, 0, n_intervals)
        return tuple(float(v) for v in a + (b - a) * q / n_intervals)

    def _locate(self, x: Array) -> tuple[Array, Array, Array]:
        """Knot-unit coordinate ``u`` (clamped to ``[0, n]`` outside the domain), interval index, inside mask.

        Inside the domain ``u`` is not clipped, so ``jax.grad`` sees ``du/dx = 1/Delta`` up to and including
        the end points; outside it is clipped and the gradient is zero.
        """
        a, b = self.domain
        n_intervals = self.m - self.degree
        inside = (x >= a) & (x <= b)
        u = (x - a) * (n_intervals / (b - a))
        u = jnp.where(inside, u, jnp.clip(u, 0, n_intervals))
        first = jnp.clip(jnp.floor(u), 0, n_intervals - 1).astype(jnp.int32)
        return u, first, inside

    def _dense(self, first: Array, local: Array) -> Array:
        dense = _scatter(first, local, self.m)
        if self._transform is None:
            return dense
        return dense @ jnp.asarray(self._transform, dtype=dense.dtype)

    def local(self, x: Float[ArrayLike, "*batch"]) -> tuple[Int[Array, "*batch"], Float[Array, "*batch p1"]]:
        r"""The ``degree + 1`` non-zero B-splines at ``x``: ``(first, values)``.

        ``first`` (int32, shape of ``x``) is the index of the first non-zero function and ``values[..., r]``
        is :math:`B_{\mathrm{first} + r, p}(x)`, shape ``[..., degree + 1]``; ``basis(x)`` is the scatter of
        ``values`` into columns ``first .. first + degree`` of an ``[..., m]`` zero array. Sparse assembly
        costs :math:`O(p^2)` per point instead of :math:`O(m)`. Only for ``orthonormal=False``.
        """
        if self.orthonormal:
            raise ValueError(
                "local(x) is only defined for the plain B-spline basis (orthonormal=False); the orthonormal "
                "functions are not locally supported"
            )
        return self._local(as_real_input(x))

    def __call__(self, x: Float[ArrayLike, "*batch"]) -> Float[Array, "*batch m"]:
        r"""Values :math:`B_{k,p}(\mathrm{clip}(x, a, b))` (or the orthonormal :math:`\psi_k`), shape ``[..., m]``."""
        return self._values(as_real_input(x))

    def derivative(self, x: Float[ArrayLike, "*batch"]) -> Float[Array, "*batch m"]:
        r"""Derivatives :math:`d\phi_k/dx`, shape ``[..., m]``; zero outside ``[a, b]`` (clamping policy).

        Inside, :math:`dB_{k,p}/dx = B_{k,p}'(u) / \Delta` with :math:`u = (x - a)/\Delta` and
        :math:`B_{k,p}' = p\,(B_{k,p-1}/(t_{k+p} - t_k) - B_{k+1,p-1}/(t_{k+p+1} - t_{k+1}))` (Piegl & Tiller,
        *The NURBS Book*, eq. 2.7; knots in units of :math:`\Delta`); degree 0 gives zeros. Orthonormal
        functions use the same transform: :math:`\psi' = B'\,T`.
        """
        return self._derivatives(as_real_input(x))

    @jit_method
    def _local(self, x: Array) -> tuple[Array, Array]:
        u, first, _ = self._locate(x)
        return first, _triangle(u, first, self.m - self.degree, self.degree, jnp)

    @jit_method
    def _values(self, x: Array) -> Array:
        return self._dense(*self._local(x))

    @jit_method
    def _derivatives(self, x: Array) -> Array:
        u, first, inside = self._locate(x)
        n_intervals = self.m - self.degree
        if self.degree == 0:
            local = jnp.zeros(x.shape + (1,), x.dtype)
        else:
            lower = _triangle(u, first, n_intervals, self.degree - 1, jnp)
            local = _triangle_derivative(lower, first, n_intervals, self.degree)
        a, b = self.domain
        local = jnp.where(inside[..., None], local * (n_intervals / (b - a)), jnp.zeros((), x.dtype))
        return self._dense(first, local)
