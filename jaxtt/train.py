"""One Optax training loop for batched noise models (Equinox networks and FTT denoisers alike).

:func:`fit` minimises the DDPM simple loss (Ho et al. 2020, eq. 14; :func:`jaxtt.diffusion.ddpm_loss`) over the
inexact-array leaves of any callable pytree ``model(x, t)``: a network wrapped in :class:`jaxtt.nn.Batched`, or a
model that is batched already such as the functional tensor-train denoiser, whose cores are ordinary pytree
leaves (gradient descent on the tensor-train cores, the baseline to the closed-form sweeps of
:mod:`jaxtt.solvers`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jaxtyping import Array, Float, PRNGKeyArray, PyTree
from tqdm.auto import tqdm

from jaxtt._validation import check_batch, check_int, check_key, check_real
from jaxtt.checkpoint import check_replaceable, load_checkpoint, save_checkpoint
from jaxtt.diffusion import Schedule, ddpm_loss
from jaxtt.errors import NumericalError
from jaxtt.sharding import check_mesh, replicate

__all__ = ["TrainResult", "default_optimizer", "fit", "num_params"]


def num_params(model: PyTree) -> int:
    """Number of trained parameters of ``model``: the entries of its floating-point array leaves
    (``eqx.is_inexact_array``), the leaves :func:`fit` updates.

    Examples:
        >>> import jax
        >>> import equinox as eqx
        >>> num_params(eqx.nn.Linear(3, 2, key=jax.random.key(0)))  # 3·2 weights + 2 biases
        8
    """
    return int(sum(leaf.size for leaf in jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array))))


class TrainResult(NamedTuple):
    """What :func:`fit` returns.

    Attributes:
        model: the trained model (same structure as the model passed in).
        ema_model: the bias-corrected exponential moving average of the weights (see :func:`fit`), as a model.
        opt_state: the final optimizer state.
        history: ``{"step", "train_loss", "time"}`` (plus ``"val_loss"`` when validation data is given), lists
            with one entry per logging point; ``train_loss`` is the mean training loss of the steps since the
            previous logging point, ``time`` the wall-clock seconds spent training up to that point.
    """

    model: PyTree
    ema_model: PyTree
    opt_state: optax.OptState
    history: dict[str, list[float]]


def default_optimizer(
    steps: int, learning_rate: float = 1e-3, weight_decay: float = 1e-4
) -> optax.GradientTransformation:
    """AdamW (Loshchilov & Hutter, 2019) with a linear warm-up over the first 5 % of ``steps`` to ``learning_rate``
    and a cosine decay (Loshchilov & Hutter, 2017) to ``learning_rate / 100`` at ``steps``
    (``optax.warmup_cosine_decay_schedule``).

    Examples:
        >>> import jax.numpy as jnp, optax
        >>> optimizer = default_optimizer(1000, learning_rate=1e-3)
        >>> params = {"w": jnp.ones(3)}
        >>> updates, _ = optimizer.update({"w": jnp.ones(3)}, optimizer.init(params), params)
        >>> isinstance(optimizer, optax.GradientTransformation), float(jnp.abs(updates["w"]).max())  # warm-up from 0
        (True, 0.0)
    """
    steps = check_int(steps, "steps", minimum=1)
    learning_rate = check_real(learning_rate, "learning_rate", minimum=0.0, strict_minimum=True)
    weight_decay = check_real(weight_decay, "weight_decay", minimum=0.0)
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=learning_rate,
        warmup_steps=steps // 20,
        decay_steps=steps,
        end_value=learning_rate / 100,
    )
    return optax.adamw(schedule, weight_decay=weight_decay)


def _loss(params, static, schedule, key, x, loss=None):
    model = eqx.combine(params, static)
    return ddpm_loss(model, schedule, key, x) if loss is None else loss(model, key, x)


@eqx.filter_jit
def _train_steps(state, static, optimizer, schedule, x0, key, start, stop, batch_size, ema_decay, loss=None,
                 batch_sharding=None):
    """Run steps ``start, ..., stop - 1``; return the new ``(params, opt_state, ema_state)`` and their mean loss.

    Step ``s`` draws its batch (with replacement) and its diffusion noise from ``fold_in(key, s)`` only, so the
    trajectory does not depend on how the steps are grouped into calls. ``start``, ``stop`` and ``ema_decay``
    are traced, so one compilation serves every chunk (and every decay). With ``batch_sharding`` the batch is
    constrained to it (split over the devices); XLA then partitions the loss and its gradient by rows and
    all-reduces the gradient.
    """
    averager = optax.ema(ema_decay, debias=True)

    def step(s, carry):
        (params, opt_state, ema_state), loss_sum = carry
        k_batch, k_loss = jax.random.split(jax.random.fold_in(key, s))
        batch = x0[jax.random.randint(k_batch, (batch_size,), 0, x0.shape[0])]
        if batch_sharding is not None:
            batch = jax.lax.with_sharding_constraint(batch, batch_sharding)
        value, grads = jax.value_and_grad(_loss)(params, static, schedule, k_loss, batch, loss)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        _, ema_state = averager.update(params, ema_state)
        return (params, opt_state, ema_state), loss_sum + value.astype(loss_sum.dtype)

    state, loss_sum = jax.lax.fori_loop(start, stop, step, (state, jnp.zeros((), x0.dtype)))
    return state, loss_sum / (stop - start).astype(x0.dtype)


@eqx.filter_jit
def _validation_loss(params, static, schedule, key, x, loss=None):
    return _loss(params, static, schedule, key, x, loss)


def _chunk_ends(start: int, steps: int, periods: tuple[int, ...]) -> Iterator[int]:
    """Step counts after ``start`` at which training pauses: multiples of each period, and ``steps``."""
    while start < steps:
        start = min([steps] + [(start // p + 1) * p for p in periods])
        yield start


def _check_loss(loss, model, x0):
    if not callable(loss):
        raise TypeError(f"loss must be callable as loss(model, key, batch), got {type(loss).__name__}")
    if not jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array)):
        raise ValueError("model has no floating-point array leaves to train")
    try:
        out = eqx.filter_eval_shape(loss, model, jax.random.key(0), x0[:2])
    except Exception as err:
        raise ValueError(f"loss(model, key, batch) failed on a batch of shape {x0[:2].shape}: {err}") from err
    if getattr(out, "shape", None) != ():
        raise ValueError(f"loss(model, key, batch) must return a scalar, got {out}")


def _check_model(model, x0):
    if not callable(model):
        raise TypeError(f"model must be callable as model(x, t) on a batch, got {type(model).__name__}")
    if not jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array)):
        raise ValueError("model has no floating-point array leaves to train")
    x = x0[:2]
    try:
        out = eqx.filter_eval_shape(model, x, jnp.ones(x.shape[:1], jnp.int32))
    except Exception as err:
        raise ValueError(
            f"model(x, t) failed on a batch x of shape {x.shape} with t of shape {x.shape[:1]}: {err}. "
            "Wrap per-example Equinox modules in jaxtt.nn.Batched."
        ) from err
    if getattr(out, "shape", None) != x.shape:
        raise ValueError(
            f"model(x, t) must return an array of x's shape {x.shape} for a batch x; got {out}. "
            "Wrap per-example Equinox modules in jaxtt.nn.Batched."
        )


def _check_checkpoint_path(path) -> str:
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ValueError(f"checkpoint_path {path!r}: the directory {directory!r} does not exist")
    if not os.access(directory, os.W_OK):
        raise ValueError(f"checkpoint_path {path!r}: the directory {directory!r} is not writable")
    if os.path.isdir(path):
        raise ValueError(f"checkpoint_path {path!r} is a directory, not a file")
    check_replaceable(path)  # a read-only checkpoint is refused now, not at the first save
    return path


def fit(
    model: PyTree,
    x0: Float[Array, "N *event"],
    schedule: Schedule,
    optimizer: optax.GradientTransformation | None = None,
    steps: int = 1000,
    batch_size: int = 256,
    key: PRNGKeyArray | None = None,
    *,
    ema_decay: float = 0.999,
    x_val: Float[Array, "M *event"] | None = None,
    log_every: int = 100,
    checkpoint_path: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    progress: bool = True,
    loss: Callable[[PyTree, PRNGKeyArray, Array], Array] | None = None,
    mesh: Mesh | None = None,
    axis: str = "data",
) -> TrainResult:
    r"""Train a batched noise model on the DDPM simple loss with an Optax optimizer; return a :class:`TrainResult`.

    With ``loss``, the same loop minimises another objective ``loss(model, key, batch)`` (a scalar, with the
    step's PRNG key and a batch of rows of ``x0``): the flow-matching loss of a velocity model
    (:func:`jaxtt.diffusion.flow_matching_loss`) or a distillation regression onto a teacher's targets
    (:mod:`jaxtt.distill`). ``schedule`` is then only passed through and may be ``None``.

    Each step ``s = 0, ..., steps - 1`` draws a batch of ``batch_size`` rows of ``x0`` uniformly with
    replacement, evaluates the simple loss of Ho et al. (2020), eq. (14) (:func:`jaxtt.diffusion.ddpm_loss`),

    .. math::
        L(\theta) = \mathbb{E}_{t, \epsilon} \tfrac{1}{D}\|\epsilon - \epsilon_\theta(\sqrt{\bar\alpha_t} x_0
        + \sqrt{1 - \bar\alpha_t}\,\epsilon, t)\|^2, \qquad t \sim U\{1, \dots, T\},\ \epsilon \sim N(0, I),

    applies one ``optimizer`` update to the inexact-array leaves of ``model`` (``eqx.is_inexact_array``; integer
    and static leaves are left alone) and updates the exponential moving average of the weights (Polyak
    averaging, used for DDPM sampling by Ho et al. 2020) with :math:`\beta` = ``ema_decay``,
    bias-corrected as in Adam (``optax.ema(β, debias=True)``): after steps :math:`1..n` with weights
    :math:`\theta_1, \dots, \theta_n`,

    .. math::
        m_n = \beta m_{n-1} + (1 - \beta)\theta_n, \quad m_0 = 0, \qquad
        \bar\theta_n = \frac{m_n}{1 - \beta^n}
        = \frac{\sum_{k=1}^{n} (1-\beta)\beta^{n-k}\theta_k}{1 - \beta^n},

    a weighted mean of the visited weights that does not remember the initialisation, so short runs get a
    useful EMA model too.

    The randomness of step ``s`` comes from ``jax.random.fold_in(key, s)`` alone, so the run is a deterministic
    function of ``key``, and a run resumed from a checkpoint continues bit-identically to an uninterrupted one.
    The steps between two logging/checkpoint points run inside one jit-compiled ``lax.fori_loop``; the loop is
    compiled once per model structure, data shape and optimizer object (pass the same optimizer object to
    later calls to reuse the compilation).

    Model convention: ``model`` is a callable pytree taking a batch, ``model(x, t)`` with ``x`` of shape
    ``(N, *event)`` and integer ``t`` of shape ``(N,)`` in ``1..T``, returning ``x``'s shape — the ``eps_fn``
    convention of :mod:`jaxtt.diffusion`. Per-example Equinox modules (:class:`jaxtt.nn.ResNetMLP`,
    :class:`jaxtt.nn.UNet`) are wrapped in :class:`jaxtt.nn.Batched`; a batched model such as the FTT denoiser
    is passed as it is (its TT cores are trained by gradient descent).

    Args:
        model: the batched noise model (a pytree, e.g. an ``eqx.Module``), used as the initial weights.
        x0: training data ``(N, *event)``, finite, floating.
        schedule: the noise schedule (:class:`jaxtt.diffusion.Schedule`).
        optimizer: any ``optax.GradientTransformation``; default :func:`default_optimizer` ``(steps)``
            (AdamW, warm-up then cosine decay).
        steps: total number of optimizer steps, ``>= 1`` (a resumed run counts the steps already done).
        batch_size: examples per step, ``1 <= batch_size <= N``.
        key: PRNG key (``jax.random.key`` or ``jax.random.PRNGKey``); required.
        ema_decay: EMA decay :math:`\beta \in [0, 1)`; ``0`` makes the EMA model the final weights.
        x_val: optional validation data ``(M, *event)``; its loss is evaluated for the current (not the EMA)
            weights at every logging point, with the same noise each time so that the values are comparable.
        log_every: steps between logging points (history entries, validation, progress-bar updates);
            the last step is always a logging point.
        checkpoint_path: file to write checkpoints to (atomically; see :mod:`jaxtt.checkpoint`): weights, EMA,
            optimizer state, step and history. Written every ``checkpoint_every`` steps and at the end.
        checkpoint_every: steps between checkpoints; default ``log_every``.
        resume: if ``True`` and ``checkpoint_path`` exists, continue from it; otherwise start from ``model`` (an
            existing file is then replaced at the first checkpoint).
            The checkpoint must come from a run with the same model structure, data, optimizer (for
            :func:`default_optimizer`: the same ``steps``), ``key``, ``batch_size``, ``ema_decay`` and with or
            without validation data; the last four are checked.
        progress: show a tqdm progress bar.
        loss: optional objective ``loss(model, key, batch) -> scalar`` replacing the DDPM loss (see above);
            ``x0`` then holds whatever rows it needs (e.g. data and coupled noise stacked as ``(N, 2, D)``).
        mesh: a :class:`jax.sharding.Mesh` (e.g. :func:`jaxtt.sharding.data_mesh`) to train data-parallel on:
            the weights, optimizer state and ``x0`` are replicated on its devices and every batch is split over
            ``axis`` (``batch_size`` must be a multiple of its size); the gradient is the all-reduced sum of the
            devices' parts (Goyal et al. 2017 for data-parallel SGD; the partitioning is XLA's). Same batches
            and noise as on one device, so the same trajectory up to the order of floating-point sums. Runs
            across processes after ``jax.distributed.initialize``. ``None``: the default device.
        axis: the mesh axis to split batches over.

    Raises:
        TypeError, ValueError: bad arguments, named (non-finite data, ``batch_size > N``, ``steps < 1``, a
            checkpoint directory that does not exist or is not writable, a checkpoint from a different run).
        jaxtt.checkpoint.CheckpointError: the checkpoint to resume from is truncated or corrupted.
        OSError: a checkpoint could not be written; the previous checkpoint is left untouched.
        jaxtt.errors.NumericalError: the training loss became NaN or infinite (raised at the end of the chunk of
            steps in which it happened, before that chunk is checkpointed; a ``FloatingPointError``).

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt.data import moons
        >>> from jaxtt.diffusion import linear_schedule
        >>> from jaxtt.nn import Batched, ResNetMLP
        >>> model = Batched(ResNetMLP(2, width=16, depth=1, time_scale=50.0, key=jax.random.key(0)))
        >>> x0 = moons(jax.random.key(1), 256)
        >>> result = fit(model, x0, linear_schedule(50), steps=20, batch_size=64, key=jax.random.key(2), log_every=10,
        ...              progress=False)
        >>> result.history["step"], len(result.history["train_loss"])
        ([10, 20], 2)
        >>> result.ema_model(x0[:4], jnp.full(4, 25)).shape  # the averaged weights, same structure
        (4, 2)
    """
    x0 = check_batch(x0, "x0", min_ndim=2)
    n = x0.shape[0]
    if loss is None and not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be a jaxtt.diffusion.Schedule, got {type(schedule).__name__}")
    steps = check_int(steps, "steps", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    if batch_size > n:
        raise ValueError(f"batch_size must be <= the number of examples in x0 (N={n}), got {batch_size}")
    if key is None:
        raise TypeError("key is required: pass a PRNG key such as jax.random.key(0)")
    key = check_key(key)
    ema_decay = check_real(ema_decay, "ema_decay", minimum=0.0)
    if ema_decay >= 1.0:
        raise ValueError(f"ema_decay must be < 1, got {ema_decay}")
    if x_val is not None:
        x_val = check_batch(x_val, "x_val", min_ndim=2, event_shape=tuple(x0.shape[1:]))
    log_every = check_int(log_every, "log_every", minimum=1)
    if checkpoint_every is None:
        checkpoint_every = log_every
    checkpoint_every = check_int(checkpoint_every, "checkpoint_every", minimum=1)
    if checkpoint_path is not None:
        checkpoint_path = _check_checkpoint_path(checkpoint_path)
    if optimizer is None:
        optimizer = default_optimizer(steps)
    elif not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(f"optimizer must be an optax.GradientTransformation, got {type(optimizer).__name__}")
    if loss is None:
        _check_model(model, x0)
    else:
        _check_loss(loss, model, x0)
    batch_sharding = None
    if mesh is not None:
        devices = check_mesh(mesh, axis)
        if batch_size % devices:
            raise ValueError(f"batch_size must be a multiple of the {devices} devices on mesh axis {axis!r} "
                             f"(each takes an equal share of a batch), got {batch_size}")
        batch_sharding = NamedSharding(mesh, PartitionSpec(axis))
        x0, x_val = replicate((x0, x_val), mesh)

    train_key, val_key = jax.random.split(key)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    state = (params, optimizer.init(params), optax.ema(ema_decay).init(params))
    # strongly typed leaves: weakly typed ones (e.g. from jnp.full(n, 0.5)) turn strong after one step and
    # would force a second compilation
    state = jax.tree.map(lambda a: jnp.asarray(a, dtype=a.dtype), state)
    start, losses = 0, []
    history: dict[str, list[float]] = {"step": [], "train_loss": [], "time": []}
    if x_val is not None:
        history["val_loss"] = []
    run_id: dict[str, Any] = {
        "key": np.asarray(jax.random.key_data(key)).tolist(),
        "batch_size": batch_size,
        "ema_decay": ema_decay,
        "validation": x_val is not None,
    }
    if resume and checkpoint_path is not None and os.path.exists(checkpoint_path):
        state, meta = load_checkpoint(checkpoint_path, state)
        for name, value in run_id.items():
            if meta.get(name) != value:
                raise ValueError(
                    f"checkpoint {checkpoint_path} comes from a run with a different {name} "
                    f"({meta.get(name)!r}, this run: {value!r}); resume needs the same {name}"
                )
        start, history, losses = meta["step"], meta["history"], [tuple(pair) for pair in meta["pending_losses"]]
        if start > steps:
            raise ValueError(f"checkpoint {checkpoint_path} is at step {start}, beyond steps={steps}")

    if mesh is not None:
        state = replicate(state, mesh)
    elapsed = history["time"][-1] if history["time"] else 0.0
    clock = time.perf_counter()
    with tqdm(total=steps, initial=start, disable=not progress, desc="fit", unit="step") as bar:
        for stop in _chunk_ends(start, steps, (log_every, checkpoint_every)):
            state, chunk_loss = _train_steps(
                state, static, optimizer, schedule, x0, train_key, jnp.asarray(start), jnp.asarray(stop), batch_size,
                jnp.asarray(ema_decay),  # weakly typed: keeps the dtype of the weights
                loss, batch_sharding,
            )  # fmt: skip
            losses.append((stop - start, float(chunk_loss)))
            bar.update(stop - start)
            start = stop
            if not np.isfinite(losses[-1][1]):
                raise NumericalError(
                    f"the training loss became non-finite in steps {stop - losses[-1][0]}..{stop - 1}", step=stop - 1,
                    remedy="lower the learning rate (the last checkpoint, if any, is from before these steps)")
            if stop % log_every == 0 or stop == steps:
                counts, means = zip(*losses)
                history["step"].append(stop)
                history["train_loss"].append(float(np.dot(counts, means) / sum(counts)))
                if x_val is not None:
                    history["val_loss"].append(
                        float(_validation_loss(state[0], static, schedule, val_key, x_val, loss)))
                history["time"].append(elapsed + time.perf_counter() - clock)
                bar.set_postfix({name: f"{values[-1]:.4g}" for name, values in history.items() if "loss" in name})
                losses = []
            if checkpoint_path is not None and (stop % checkpoint_every == 0 or stop == steps):
                meta = {"step": stop, "history": history, "pending_losses": losses, **run_id}
                save_checkpoint(checkpoint_path, state, meta)
    params, opt_state, ema_state = state
    ema = optax.tree.bias_correction(ema_state.ema, ema_decay, ema_state.count)
    return TrainResult(eqx.combine(params, static), eqx.combine(ema, static), opt_state, history)
