"""ResNet-like MLP noise model (a residual MLP with LayerNorm and a learned time encoding)."""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray, Real

from jaxtt._validation import check_choice, check_float_dtype, check_int, check_key
from jaxtt.nn.embedding import SinusoidalEmbedding

__all__ = ["ResNetMLP"]


class _Block(eqx.Module):
    """One block ``z -> z + LayerNorm(B2 act(B1 z))`` (or without the ``z +`` when not residual)."""

    inner: eqx.nn.Linear
    outer: eqx.nn.Linear
    norm: eqx.nn.LayerNorm
    activation: Callable = eqx.field(static=True)
    residual: bool = eqx.field(static=True)

    def __call__(self, z):
        u = self.norm(self.outer(self.activation(self.inner(z))))
        return z + u if self.residual else u


class ResNetMLP(eqx.Module):
    r"""ResNet-like MLP noise model :math:`\epsilon_\theta(x_t, t)` (He et al. 2016 residual blocks on an MLP).

    .. math::
        x' &= x_t + f(t), \qquad z_0 = A_1 x' \quad \text{(expansion to the width } D_1\text{)} \\
        u_l &= B_2\,\sigma(B_1 z_{l-1}), \qquad
        z_l = z_{l-1} + \mathrm{LN}(u_l) \quad (l = 1, \dots, L) \\
        \epsilon_\theta(x_t, t) &= A_2 z_L \quad \text{(contraction to } D\text{)}

    where LN is layer normalisation with learned :math:`\gamma, \beta` and :math:`f` is the time encoding,
    :math:`f(t) = W e(t) + b`, a learned linear map of the sinusoidal embedding :math:`e(t) \in \mathbb{R}^{E}`
    (:class:`SinusoidalEmbedding`). All linear maps carry a bias. Two deviations from the printed
    equations, each with the printed form as an option:

    - The model is called ResNet-like, but the plain form has no skip connection (:math:`z_l = \mathrm{LN}(u_l)`); the
      residual form above is the default and ``residual=False`` gives the printed form.
    - Where the time enters. The printed form (``add_time_to="input"``) adds :math:`f(t) \in \mathbb{R}^D` to
      the data, so the network sees only the sum :math:`x_t + f(t)`: pairs :math:`(x_t, t)` with the same sum
      are indistinguishable, which for small ``D`` cripples the model. The default (``add_time_to="width"``)
      adds the encoding after the expansion, :math:`z_0 = A_1 x_t + f(t)` with
      :math:`f : \mathbb{R} \to \mathbb{R}^{D_1}`; the printed form is the special case where :math:`f(t)`
      lies in the range of :math:`A_1`. Measured on a 2-D two-Gaussian mixture (width 32, depth 2, T = 100,
      1500 Adam steps, EMA weights): L_simple 0.159 (the exact optimum: 0.158) against 0.261 for the printed
      form, and 25-step DDIM samples at MMD² 0.004 from the data against 0.49 (pure noise: 0.67).

    The module maps one example, ``x`` of shape ``(D,)`` and a scalar time ``t``; wrap it in
    :class:`jaxtt.nn.Batched` (or ``vmap`` it) for batches.

    Args:
        in_size: data dimension ``D``.
        width: block width ``D_1`` (output size of ``A_1``).
        depth: number of blocks ``L``.
        key: PRNG key for the initialisation.
        hidden: inner size ``D_2`` of each block (between ``B_1`` and ``B_2``); default ``width``.
        embed_dim: size ``E`` of the sinusoidal time embedding (even, ``>= 4``).
        time_scale: the scale ``s`` of the sinusoidal embedding (the number of diffusion steps is a good value).
        add_time_to: ``"width"`` (default, :math:`z_0 = A_1 x_t + f(t)`) or ``"input"`` (printed eq. 6,
            :math:`z_0 = A_1 (x_t + f(t))`).
        residual: use the residual block ``z_l = z_{l-1} + LN(u_l)`` (default) or the printed ``z_l = LN(u_l)``.
        activation: the non-linearity :math:`\sigma`.
        dtype: floating dtype of the parameters (default: JAX's default floating dtype).
        classes: number ``K`` of class labels for a class-conditional model (default ``None``: unconditional).
            A learned embedding :math:`c(y) \in \mathbb{R}^{D_1}` of the label :math:`y \in \{0, \dots, K\}` is
            added after the expansion, :math:`z_0 = A_1 x_t + f(t) + c(y)` (the class embedding of Ho & Salimans
            2022); the extra label :math:`K` (:attr:`null_label`) is the null class :math:`\varnothing` of
            classifier-free guidance, trained by label dropout. The model is then called as ``model(x, t, y)``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> model = ResNetMLP(2, width=32, depth=2, key=jax.random.key(0))
        >>> x = jnp.array([0.5, -1.0])
        >>> model(x, 10).shape, bool(jnp.allclose(model(x, 10), model(x, 90)))  # one example; t matters
        ((2,), False)
        >>> cond = ResNetMLP(2, width=32, depth=2, classes=3, key=jax.random.key(0))
        >>> cond.null_label, bool(jnp.allclose(cond(x, 10, 0), cond(x, 10, 1)))  # the label matters
        (3, False)
    """

    embedding: SinusoidalEmbedding
    time_proj: eqx.nn.Linear
    expand: eqx.nn.Linear
    blocks: tuple[_Block, ...]
    contract: eqx.nn.Linear
    label_embedding: eqx.nn.Embedding | None
    in_size: int = eqx.field(static=True)
    classes: int | None = eqx.field(static=True)
    add_time_to: str = eqx.field(static=True)

    def __init__(
        self,
        in_size: int,
        width: int = 128,
        depth: int = 3,
        *,
        key: PRNGKeyArray,
        hidden: int | None = None,
        embed_dim: int = 32,
        time_scale: float = 1000.0,
        residual: bool = True,
        add_time_to: str = "width",
        activation: Callable[[Array], Array] = jax.nn.silu,
        dtype=None,
        classes: int | None = None,
    ):
        key = check_key(key)
        if dtype is not None:
            check_float_dtype(dtype)
        self.in_size = check_int(in_size, "in_size", minimum=1)
        width = check_int(width, "width", minimum=1)
        depth = check_int(depth, "depth", minimum=1)
        hidden = width if hidden is None else check_int(hidden, "hidden", minimum=1)
        if not callable(activation):
            raise TypeError(f"activation must be callable, got {type(activation).__name__}")
        self.embedding = SinusoidalEmbedding(embed_dim, time_scale)
        k_time, k_expand, k_contract, *k_blocks = jax.random.split(key, 3 + 2 * depth)
        self.add_time_to = check_choice(add_time_to, "add_time_to", {"width", "input"})
        time_size = width if self.add_time_to == "width" else in_size
        self.time_proj = eqx.nn.Linear(embed_dim, time_size, dtype=dtype, key=k_time)
        self.expand = eqx.nn.Linear(in_size, width, dtype=dtype, key=k_expand)
        self.blocks = tuple(
            _Block(
                inner=eqx.nn.Linear(width, hidden, dtype=dtype, key=k_blocks[2 * i]),
                outer=eqx.nn.Linear(hidden, width, dtype=dtype, key=k_blocks[2 * i + 1]),
                norm=eqx.nn.LayerNorm(width, dtype=dtype),
                activation=activation,
                residual=bool(residual),
            )
            for i in range(depth)
        )
        self.contract = eqx.nn.Linear(width, in_size, dtype=dtype, key=k_contract)
        self.classes = None if classes is None else check_int(classes, "classes", minimum=1)
        self.label_embedding = (None if classes is None else  # its own key: unconditional weights stay as they were
                                eqx.nn.Embedding(self.classes + 1, width, dtype=dtype, key=jax.random.fold_in(key, 1)))

    @property
    def null_label(self) -> int | None:
        """The null class :math:`\\varnothing` = ``classes`` of a conditional model (``None`` if unconditional)."""
        return self.classes

    def __call__(
        self, x: Float[Array, " D"], t: Real[Array, ""], y: Int[Array, ""] | None = None
    ) -> Float[Array, " D"]:
        """Predicted noise for one example ``x`` of shape ``(D,)`` at the scalar time ``t`` (and, for a conditional
        model, the integer label ``y`` in ``0..classes``, ``classes`` being the null label)."""
        if x.shape != (self.in_size,):
            raise ValueError(f"x must have shape ({self.in_size},) (one example), got {x.shape}")
        if (y is None) != (self.classes is None):
            raise TypeError("a class-conditional ResNetMLP is called as model(x, t, y)" if y is None else
                            "y was given but the ResNetMLP is unconditional (build it with classes=K)")
        t = jnp.asarray(t)
        t = t if jnp.issubdtype(t.dtype, jnp.floating) else t.astype(x.dtype)
        f_t = self.time_proj(self.embedding(t))
        z = self.expand(x) + f_t if self.add_time_to == "width" else self.expand(x + f_t)
        if y is not None:
            z = z + self.label_embedding(jnp.asarray(y))
        for block in self.blocks:
            z = block(z)
        return self.contract(z)
