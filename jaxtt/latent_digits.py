r"""Latent diffusion on scikit-learn's 8x8 digits, evaluated by the Fréchet distance of a classifier's features.

Latent diffusion (Rombach et al. 2022) at toy size, scored like FID (Heusel et al. 2017) but on the features of
the experiment's own classifier, as MNIST experiments do without Inception: a fixed stratified 1,497 / 300 split
(:func:`jaxtt.data.digits_split`), a CNN classifier (:class:`jaxtt.nn.ConvClassifier`) whose penultimate features
define the distance, a convolutional VAE (:class:`jaxtt.nn.VAE`) whose standardized posterior-mean latents
(:class:`jaxtt.latent.LatentSpace`) are the diffusion data, and then, on those latents, a ResNet-MLP trained by
AdamW and an FTT denoiser fitted by closed-form ALS sweeps (unconditional, guided by a classifier of noised
latents, Dhariwal & Nichol 2021, and class-conditional with classifier-free guidance, Ho & Salimans 2022),
next to a pixel-space U-Net DDPM (Ho et al. 2020). Every diffusion model is sampled by the same DDIM sampler
with the same clipping of the predicted data.

:func:`run` returns the table; :func:`print_table` and :func:`plot_grids` show it; :func:`prepare` rebuilds
just the split, the classifier, the VAE and the latents of a run, for experiments on the same latents.
``jaxtt digits`` and ``benchmarks/latent_digits.py`` run it.
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
import os
import time
from pathlib import Path

import numpy as np

# JAX and the models are imported where they are used, so that the command line can check a configuration
# (DigitsConfig) before importing JAX.

__all__ = ["DigitsConfig", "QUICK", "FULL", "DigitsSetup", "prepare", "conditional_ddpm_loss", "run", "print_table",
           "plot_grids"]

CLASSES = 10


@dataclasses.dataclass(frozen=True)
class DigitsConfig:
    """Sizes and budgets of the latent-digits experiment (:func:`run`); :data:`QUICK` and :data:`FULL` are the two
    presets (the quick one runs in about 6 minutes on 2 CPU cores, 2 of them the conditional FTT's fit).

    Attributes:
        seed: seed of the split and of every model and sample.
        validation: validation images (the rest of the 1,797 train).
        classifier_steps, vae_steps: AdamW steps of the feature classifier and of the VAE.
        latent: VAE latent dimension; beta: its KL weight.
        T: diffusion steps (linear schedule of Ho et al. 2020); ddim_steps: DDIM steps of every sampler.
        nn_width, nn_depth, nn_steps: the latent ResNet-MLP and its AdamW steps; batch_size: of every AdamW run.
        unet_channels, unet_steps, unet_batch_size: the pixel-space U-Net, its AdamW steps (0 leaves it out) and
            batch size (the quick budget takes about the latent ResNet-MLP's training time).
        rank, m, sweeps, repeats, cg_steps, targets: the latent FTT (:func:`jaxtt.solvers.fit_denoiser`).
        whiten, prediction: the latent FTTs' coordinates and output: PCA whitening of every noised marginal
            carried by the model (:class:`jaxtt.ftt.Whitening`) and the predicted quantity (``"eps"``, ``"x0"`` or
            ``"v"``; the model still returns the noise).
        fast_ftt: ``(rank, m, repeats, sweeps)`` of a second, cheaper unconditional latent FTT (None: none).
        label_dropout: fraction of rows with the null label: the conditional NN's label dropout, and the
            conditional FTT's with ``null_rows="dropout"``.
        conditional_rank, conditional_sweeps: rank and ALS sweeps of the conditional latent FTT (its label core
            multiplies the functions the TT must carry; the other settings as the unconditional FTT's).
        null_rows: how the conditional FTT fits its null label (:func:`jaxtt.solvers.fit_denoiser`):
            ``"duplicate"`` (every regression row also once with the null label) or ``"dropout"``.
        scales: classifier-free guidance weights ``w`` of the conditional models.
        guidance_interval: ``(low, high)``, fractions of ``T``: the conditional models are also sampled with
            each nonzero weight applied only on the steps ``low·T < t <= high·T``
            (:class:`jaxtt.diffusion.GuidanceInterval`, Kynkäänniemi et al. 2024); ``None``: constant
            guidance only.
        samples: generated images per model (the conditional models draw ``samples // 10`` of each class).
        fd_keys: sample sets (sampler keys) of each unconditional latent model: its ``fd`` is their mean Fréchet
            distance, ``fd_sd`` their standard deviation (the FD of 2,000 samples moves by about ±20 % from one
            sampler key to the next, more than most differences between models).
        conditional: also train the class-conditional latent models.
        noisy_classifier_steps: AdamW steps of the latent classifier of noised latents for classifier guidance
            of the unconditional latent models (0 leaves classifier guidance out).
        classifier_scales: classifier-guidance weights.

    Examples:
        >>> QUICK.latent, QUICK.scales, FULL.nn_steps
        (8, (0.0, 0.5, 1.0, 2.0, 3.0), 20000)
        >>> DigitsConfig(T=20)
        Traceback (most recent call last):
        ...
        ValueError: ddim_steps must be at most T = 20, got 50
    """

    seed: int = 0
    validation: int = 300
    classifier_steps: int = 400
    vae_steps: int = 1000
    latent: int = 8
    beta: float = 1.0
    T: int = 1000
    ddim_steps: int = 50
    nn_width: int = 128
    nn_depth: int = 3
    nn_steps: int = 3000
    batch_size: int = 256
    unet_channels: tuple[int, ...] = (16, 32)
    unet_steps: int = 1000
    unet_batch_size: int = 64
    rank: int = 8
    m: int = 12
    sweeps: int = 3
    repeats: int = 8
    cg_steps: int = 8
    targets: str = "empirical_bayes"
    whiten: bool = True
    prediction: str = "v"
    label_dropout: float = 0.1
    null_rows: str = "duplicate"
    conditional_rank: int = 16
    conditional_sweeps: int = 8
    scales: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 3.0)
    guidance_interval: tuple[float, float] | None = (0.1, 0.7)
    samples: int = 1000
    fd_keys: int = 4
    conditional: bool = True
    fast_ftt: tuple[int, int, int, int] | None = (6, 8, 4, 2)
    noisy_classifier_steps: int = 2000
    classifier_scales: tuple[float, ...] = (1.0, 2.0, 3.0)

    def __post_init__(self):
        def integer(name, minimum, maximum=None):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
            if value < minimum or (maximum is not None and value > maximum):
                bound = f">= {minimum}" + ("" if maximum is None else f" and <= {maximum}")
                raise ValueError(f"{name} must be {bound}, got {value}")

        def real(name, value, minimum=-np.inf, maximum=np.inf):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not minimum <= value <= maximum:
                raise ValueError(f"{name} must be a number in [{minimum}, {maximum}], got {value!r}")

        for name in ("seed", "cg_steps", "unet_steps", "noisy_classifier_steps"):
            integer(name, 0)
        for name in ("classifier_steps", "vae_steps", "latent", "T", "ddim_steps", "nn_width", "nn_depth",
                     "nn_steps", "batch_size", "unet_batch_size", "rank", "m", "sweeps", "repeats", "conditional_rank",
                     "conditional_sweeps", "fd_keys"):
            integer(name, 1)
        integer("validation", 10, 1787)
        integer("samples", 2 * CLASSES)
        real("beta", self.beta, 0.0)
        real("label_dropout", self.label_dropout, 0.0, 1.0)
        for w in self.scales + self.classifier_scales:
            real("scales[i]", w)
        if not isinstance(self.whiten, bool):
            raise TypeError(f"whiten must be a bool, got {type(self.whiten).__name__} {self.whiten!r}")
        if self.prediction not in ("eps", "x0", "v"):
            raise ValueError(f"prediction must be 'eps', 'x0' or 'v', got {self.prediction!r}")
        if self.null_rows not in ("duplicate", "dropout"):
            raise ValueError(f"null_rows must be 'duplicate' or 'dropout', got {self.null_rows!r}")
        if self.targets not in ("sampled", "empirical_bayes"):
            raise ValueError(f"targets must be 'sampled' or 'empirical_bayes', got {self.targets!r}")
        if self.guidance_interval is not None:
            if len(self.guidance_interval) != 2:
                raise ValueError(f"guidance_interval must be (low, high) or None, got {self.guidance_interval!r}")
            low, high = self.guidance_interval
            real("guidance_interval[0]", low, 0.0, 1.0)
            real("guidance_interval[1]", high, 0.0, 1.0)
            if not round(low * self.T) < round(high * self.T):
                raise ValueError(f"guidance_interval must satisfy low < high (fractions of T = {self.T}), "
                                 f"got {self.guidance_interval!r}")
        if self.ddim_steps > self.T:
            raise ValueError(f"ddim_steps must be at most T = {self.T}, got {self.ddim_steps}")
        if len(self.unet_channels) < 2:
            raise ValueError(f"unet_channels must have at least 2 entries, got {self.unet_channels!r}")


QUICK = DigitsConfig()
FULL = DigitsConfig(classifier_steps=1000, vae_steps=4000, nn_steps=20_000, unet_steps=8000, unet_batch_size=128,
                    rank=12, sweeps=4, ddim_steps=100, samples=2000)


def conditional_ddpm_loss(model, key, batch, *, schedule, null_label: int, label_dropout: float):
    r"""DDPM simple loss of a class-conditional model ``model(x, t, y)`` with label dropout (Ho & Salimans 2022).

    The rows of ``batch`` are ``[x..., y]`` (the label as the last column, the layout :func:`jaxtt.train.fit`
    draws batches from). Each label is replaced by ``null_label`` with probability ``label_dropout``, then
    :func:`jaxtt.diffusion.ddpm_loss` of ``(x, t) -> model(x, t, y)`` is returned:
    :math:`\mathbb{E}\,\tfrac1D\|\epsilon - \epsilon_\theta(x_t, t, \tilde y)\|^2`, with
    :math:`\tilde y = \varnothing` with probability ``label_dropout``. Bind the keyword arguments with
    ``functools.partial`` to get ``fit``'s ``loss(model, key, batch)``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxtt.diffusion import linear_schedule
        >>> model = lambda x, t, y: jnp.zeros_like(x) + y[:, None]   # predicts its label everywhere
        >>> rows = jnp.concatenate([jnp.zeros((4096, 2)), jnp.full((4096, 1), 2.0)], axis=1)
        >>> loss = conditional_ddpm_loss(model, jax.random.key(0), rows, schedule=linear_schedule(10),
        ...                              null_label=0, label_dropout=0.25)
        >>> round(float(loss), 1)  # E(eps - y)^2 = 1 + E y^2 = 1 + 0.75 * 4 (a quarter of the labels are 0)
        4.0
    """
    import jax
    import jax.numpy as jnp

    from jaxtt.diffusion import ddpm_loss

    x, y = batch[:, :-1], batch[:, -1].astype(jnp.int32)
    k_drop, k_loss = jax.random.split(key)
    y = jnp.where(jax.random.bernoulli(k_drop, label_dropout, y.shape), null_label, y)
    return ddpm_loss(lambda x_t, t: model(x_t, t, y), schedule, k_loss, x)


@dataclasses.dataclass(frozen=True)
class DigitsSetup:
    """The data, the feature classifier, the VAE and the latents of a configuration: what every model of
    :func:`run` is trained on and scored with (:func:`prepare`).

    Attributes:
        x_train, y_train, x_val, y_val: the fixed split (:func:`jaxtt.data.digits_split`) as flat images.
        classifier, classifier_seconds: the feature classifier and its training time (compilation included).
        vae, vae_seconds: the VAE and its training time.
        space: the standardized latent space of the VAE (:class:`jaxtt.latent.LatentSpace`).
        z_train, z_val: the latents of the training and validation images.
        clip: the box every latent sampler clips its predicted latents to: the training latents' range + 5 %.
        featurize, predict: the classifier's penultimate features and predicted labels of a batch of images (jitted).
        train_features: the features of the training images, the reference of :meth:`frechet`.
    """

    x_train: object
    y_train: object
    x_val: object
    y_val: object
    classifier: object
    classifier_seconds: float
    vae: object
    vae_seconds: float
    space: object
    z_train: object
    z_val: object
    clip: tuple[float, float]
    featurize: object
    predict: object
    train_features: object

    def frechet(self, images) -> float:
        """Fréchet distance of the classifier's features of ``images`` to those of the training images."""
        from jaxtt.metrics import frechet_distance

        return float(frechet_distance(self.featurize(images), self.train_features))


def prepare(config: DigitsConfig = QUICK, *, progress: bool = False) -> DigitsSetup:
    """The split, the feature classifier, the VAE and the latents of :func:`run` with ``config``, from the same
    keys: a run on the same configuration works on identical latents and scores with the identical classifier.

    Raises:
        TypeError: ``config`` is not a :class:`DigitsConfig`.

    (Training takes too long for an example; ``benchmarks/latent_ftt_variants.py`` uses it.)
    """
    if not isinstance(config, DigitsConfig):
        raise TypeError(f"config must be a DigitsConfig, got {type(config).__name__}")
    import jax
    import jax.numpy as jnp

    from jaxtt.data import digits_split
    from jaxtt.latent import LatentSpace
    from jaxtt.nn import train_classifier, train_vae

    keys = _keys(config)
    x_train, y_train, x_val, y_val = digits_split(config.validation, config.seed)
    classifier, classifier_seconds = _timed(train_classifier, x_train, y_train, key=keys[0],
                                            steps=config.classifier_steps, progress=progress)
    featurize = jax.jit(jax.vmap(classifier.features))
    predict = jax.jit(lambda x: jnp.argmax(jax.vmap(classifier)(x), axis=1))
    (vae, _), vae_seconds = _timed(train_vae, x_train, key=keys[2], latent=config.latent, beta=config.beta,
                                   steps=config.vae_steps, progress=progress)
    space = LatentSpace(vae, x_train)
    z_train = space.encode(x_train)
    low, high = float(z_train.min()), float(z_train.max())
    return DigitsSetup(x_train, y_train, x_val, y_val, classifier, classifier_seconds, vae, vae_seconds, space,
                       z_train, space.encode(x_val), (low - 0.05 * (high - low), high + 0.05 * (high - low)),
                       featurize, predict, featurize(x_train))


def _keys(config):
    """The 32 keys of a run: :func:`prepare` trains the classifier with key 0 and the VAE with key 2, :func:`run`
    draws the noise row with key 1, the VAE prior samples with key 3 and everything else from key 4 on."""
    import jax

    return jax.random.split(jax.random.key(config.seed), 32)


def _latent_ftt(config, z_train, schedule, key, *, rank: int, m: int, classes: int | None = None):
    """An FTT denoiser of the latents in the configured coordinates (whitening) and parameterization."""
    from jaxtt.ftt import FTTDenoiser, Whitening

    coordinates = {"schedule": schedule, "prediction": config.prediction,
                   "whitening": Whitening.fit(z_train) if config.whiten else None}
    return FTTDenoiser(config.latent, config.T, rank=rank, m=m, classes=classes, key=key, **coordinates)


def _timed(fn, *args, **kwargs):
    import jax

    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args, **kwargs))
    return out, time.perf_counter() - start


def run(config: DigitsConfig = QUICK, *, progress: bool = False, log=print) -> tuple[dict, dict]:
    """Run the experiment of the module docstring; return ``(results, images)``.

    ``results`` maps each row name to ``{"fd", "train_seconds", "params", "accuracy", "warm_seconds"}``
    (missing entries do not apply; ``train_seconds`` includes compilation, ``warm_seconds`` of the unconditional
    latent denoisers is the same fit run again, compiled already); ``fd`` is
    :func:`jaxtt.metrics.frechet_distance` of the classifier's penultimate features of the row's images against
    those of the training images; for the unconditional latent denoisers the mean over ``config.fd_keys`` sample
    sets, with ``fd_sd`` and ``fd_per_key``. ``images`` maps the row names to the generated flat images (guided
    rows: ``samples // 10`` per class, class by class; the first sample set of the others).

    Raises:
        TypeError: ``config`` is not a :class:`DigitsConfig`.

    (The command-line test runs a tiny configuration end to end; a run takes too long for an example.)
    """
    if not isinstance(config, DigitsConfig):
        raise TypeError(f"config must be a DigitsConfig, got {type(config).__name__}")
    import jax
    import jax.numpy as jnp

    from jaxtt.diffusion import DDIM, linear_schedule, sample
    from jaxtt.nn import Batched, ResNetMLP, UNet
    from jaxtt.solvers import ALS, fit_denoiser
    from jaxtt.train import default_optimizer, fit, num_params

    setup = prepare(config, progress=progress)
    x_train, y_train, x_val, y_val, space = setup.x_train, setup.y_train, setup.x_val, setup.y_val, setup.space
    all_keys = _keys(config)
    keys = iter(all_keys[4:])  # 23 used with every row
    results, images = {}, {}
    val_accuracy = float(jnp.mean(setup.predict(x_val) == y_val))
    log(f"classifier: {config.classifier_steps} steps in {setup.classifier_seconds:.1f} s, validation accuracy "
        f"{val_accuracy:.3f}")

    def record(name, x, seconds=None, params=None, labels=None, warm_seconds=None, more=()):
        row = {"fd": setup.frechet(x)}
        if more:  # further sample sets of the same model: report the mean and spread of their FDs
            per_key = [row["fd"], *map(setup.frechet, more)]
            row = {"fd": float(np.mean(per_key)), "fd_sd": float(np.std(per_key)), "fd_per_key": per_key}
        if seconds is not None:
            row["train_seconds"] = seconds
        if warm_seconds is not None:
            row["warm_seconds"] = warm_seconds
        if params is not None:
            row["params"] = params
        if labels is not None:
            row["accuracy"] = float(jnp.mean(setup.predict(x) == labels))
        results[name], images[name] = row, np.asarray(x)
        log(f"{name}: " + ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "fd_per_key"))

    n = config.samples
    noise = x_train.mean(0) + x_train.std(0) * jax.random.normal(all_keys[1], (n, x_train.shape[1]), x_train.dtype)
    record("random noise (train mean/std)", noise)
    prior = jax.vmap(setup.vae.decode)(jax.random.normal(all_keys[3], (n, config.latent), x_train.dtype))
    record("VAE prior samples", prior, setup.vae_seconds, num_params(setup.vae))
    record("VAE reconstructions (validation)", space.decode(setup.z_val))

    schedule = linear_schedule(config.T)
    sampler = DDIM(steps=config.ddim_steps)
    z_train, clip = setup.z_train, setup.clip  # the same box for every latent sampler

    def latent_samples(model, key, count=n):
        return space.decode(sample(model, schedule, sampler, key, (count, config.latent), clip_x0=clip).samples)

    def more_samples(model, key):  # the further sample sets of an unconditional model's FD
        return [latent_samples(model, jax.random.fold_in(key, i)) for i in range(1, config.fd_keys)]

    if config.unet_steps:
        unet = Batched(UNet(1, key=next(keys), channels=config.unet_channels, time_scale=float(config.T)))
        trained, seconds = _timed(fit, unet, x_train.reshape(-1, 1, 8, 8), schedule,
                                  default_optimizer(config.unet_steps), steps=config.unet_steps,
                                  batch_size=min(config.unet_batch_size, x_train.shape[0]), key=next(keys),
                                  progress=progress)
        pixels = sample(trained.ema_model, schedule, sampler, next(keys), (n, 1, 8, 8), clip_x0=1.0).samples
        record("pixel U-Net DDPM", pixels.reshape(n, -1), seconds, num_params(trained.ema_model))

    batch_size = min(config.batch_size, x_train.shape[0])
    net = Batched(ResNetMLP(config.latent, config.nn_width, config.nn_depth, key=next(keys),
                            time_scale=float(config.T)))
    optimizer, key = default_optimizer(config.nn_steps), next(keys)
    train_nn = functools.partial(fit, net, z_train, schedule, optimizer, steps=config.nn_steps, batch_size=batch_size,
                                 key=key, progress=progress)
    trained, seconds = _timed(train_nn)
    warm = _timed(train_nn)[1]  # the same run again: compiled already
    key = next(keys)
    record("latent NN-DDPM", latent_samples(trained.ema_model, key), seconds, num_params(trained.ema_model),
           warm_seconds=warm, more=more_samples(trained.ema_model, key))

    solver = ALS(cg_maxiter=config.cg_steps)
    variants = {"latent FTT-DDPM": (config.rank, config.m, config.repeats, config.sweeps)}
    if config.fast_ftt is not None:
        rank, m, repeats, sweeps = config.fast_ftt
        variants[f"latent FTT-DDPM, r{rank} m{m} {repeats} draws {sweeps} sweeps"] = config.fast_ftt
    fitted_ftts = {}
    for name, (rank, m, repeats, sweeps) in variants.items():
        start = _latent_ftt(config, z_train, schedule, next(keys), rank=rank, m=m)
        fit_ftt = functools.partial(fit_denoiser, start, z_train, schedule, next(keys), solver=solver, steps=sweeps,
                                    repeats=repeats, targets=config.targets, progress=progress)
        (fitted, _), seconds = _timed(fit_ftt)
        warm = _timed(fit_ftt)[1]
        key = next(keys)
        record(name, latent_samples(fitted, key), seconds, fitted.num_params, warm_seconds=warm,
               more=more_samples(fitted, key))
        fitted_ftts[name] = fitted

    if config.noisy_classifier_steps:
        _classifier_guided_rows(config, record, keys, z_train, y_train, schedule, latent_samples,
                                {"NN": trained.ema_model, "FTT": fitted_ftts["latent FTT-DDPM"]})
    if config.conditional:
        _conditional_rows(config, record, keys, z_train, y_train, schedule, latent_samples, solver)
    record("validation set", x_val)
    return results, images


def _classifier_guided_rows(config, record, keys, z_train, y_train, schedule, latent_samples, models):
    """Train a classifier of noised latents and record classifier-guided samples of the unconditional models."""
    import jax.numpy as jnp

    from jaxtt.diffusion import ClassifierGuidance
    from jaxtt.nn import NoisyClassifier, noisy_classifier_loss
    from jaxtt.train import default_optimizer, fit, num_params

    labels = jnp.repeat(jnp.arange(CLASSES), config.samples // CLASSES)
    rows = jnp.concatenate([z_train, y_train[:, None].astype(z_train.dtype)], axis=1)
    classifier = NoisyClassifier(config.latent, key=next(keys), classes=CLASSES, time_scale=float(config.T),
                                 dtype=z_train.dtype)
    steps = config.noisy_classifier_steps
    trained, seconds = _timed(fit, classifier, rows, None, default_optimizer(steps), steps=steps,
                              batch_size=min(config.batch_size, z_train.shape[0]), key=next(keys),
                              loss=functools.partial(noisy_classifier_loss, schedule=schedule), progress=False)
    for arm, model in models.items():
        key = next(keys)
        for w in config.classifier_scales:
            guided = ClassifierGuidance(model, trained.ema_model.log_prob, labels, schedule, scale=w)
            record(f"classifier-guided latent {arm}, w={w:g}", latent_samples(guided, key, labels.shape[0]),
                   seconds, num_params(trained.ema_model), labels)


def _conditional_rows(config, record, keys, z_train, y_train, schedule, latent_samples, solver):
    """Train the class-conditional latent NN and FTT and record their guided samples at every scale."""
    import jax.numpy as jnp

    from jaxtt.diffusion import ClassifierFreeGuidance, GuidanceInterval
    from jaxtt.nn import Batched, ResNetMLP
    from jaxtt.solvers import fit_denoiser
    from jaxtt.train import default_optimizer, fit, num_params

    per_class = config.samples // CLASSES
    labels = jnp.repeat(jnp.arange(CLASSES), per_class)
    net = Batched(ResNetMLP(config.latent, config.nn_width, config.nn_depth, key=next(keys),
                            time_scale=float(config.T), classes=CLASSES))
    rows = jnp.concatenate([z_train, y_train[:, None].astype(z_train.dtype)], axis=1)
    loss = functools.partial(conditional_ddpm_loss, schedule=schedule, null_label=CLASSES,
                             label_dropout=config.label_dropout)
    trained, nn_seconds = _timed(fit, net, rows, None, default_optimizer(config.nn_steps), steps=config.nn_steps,
                                 batch_size=min(config.batch_size, z_train.shape[0]), key=next(keys), loss=loss,
                                 progress=False)
    ftt = _latent_ftt(config, z_train, schedule, next(keys), rank=config.conditional_rank, m=config.m,
                      classes=CLASSES)
    (ftt, _), ftt_seconds = _timed(fit_denoiser, ftt, z_train, schedule, next(keys), solver=solver,
                                   steps=config.conditional_sweeps, repeats=config.repeats, targets=config.targets,
                                   labels=y_train, null_rows=config.null_rows, progress=False,
                                   label_dropout=config.label_dropout if config.null_rows == "dropout" else 0.0)
    arms = {"NN": (trained.ema_model, nn_seconds, num_params(trained.ema_model)),
            "FTT": (ftt, ftt_seconds, ftt.num_params)}
    for arm, (model, seconds, params) in arms.items():
        key = next(keys)  # the same x_T for every scale
        scales = {f"w={w:g}": w for w in config.scales}
        if config.guidance_interval is not None:
            low, high = (round(f * config.T) for f in config.guidance_interval)
            scales |= {f"w={w:g} on {low}<t<={high}": GuidanceInterval(w, low, high) for w in config.scales if w}
        for name, w in scales.items():
            guided = ClassifierFreeGuidance(model, label=labels, null_label=CLASSES, scale=w)
            record(f"conditional latent {arm}, {name}", latent_samples(guided, key, labels.shape[0]), seconds,
                   params, labels)


def print_table(results: dict, log=print) -> None:
    """Print ``results`` of :func:`run` as a table (Fréchet distance, training seconds, parameters, accuracy)."""
    header = f"{'model':<52}{'FD':>8}{'± sd':>6}{'train s':>9}{'warm s':>8}{'params':>9}{'accuracy':>10}"
    log(header)
    log("-" * len(header))

    def cell(row, key, fmt):
        return format(row[key], fmt) if key in row else "-"

    for name, row in results.items():
        log(f"{name:<52}{cell(row, 'fd', '.2f'):>8}{cell(row, 'fd_sd', '.2f'):>6}{cell(row, 'train_seconds', '.1f'):>9}"
            f"{cell(row, 'warm_seconds', '.1f'):>8}{cell(row, 'params', 'd'):>9}{cell(row, 'accuracy', '.3f'):>10}")
    log("(FD: Fréchet distance of the classifier's penultimate features to the training images' (± sd: mean and "
        "standard deviation over sampler keys); train s: "
        "compilation included; warm s: the same fit again; accuracy: "
        "the classifier's agreement with the requested class; classifier-guided rows: train s and params of the "
        "classifier of noised latents)")


def plot_grids(images: dict, path: str | os.PathLike, per_panel: int = 100) -> None:
    """Write one panel of ``per_panel`` digits (a 10-wide grid) per row of ``images`` to the PNG ``path``
    (atomically); the guided rows (conditional or classifier-guided), stored class by class, show one class per
    grid row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    names = list(images)
    cols = min(4, len(names))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.5 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, name in zip(axes.flat, names):
        x = np.asarray(images[name])
        if name.startswith(("conditional", "classifier-guided")):  # one row per class: the first 10 of each
            per_class = x.shape[0] // CLASSES
            x = x.reshape(CLASSES, per_class, -1)[:, :10].reshape(-1, x.shape[-1])
        x = x[:per_panel]
        tiles = np.full((-(-x.shape[0] // 10) * 10, 64), -1.0)
        tiles[: x.shape[0]] = x
        grid = tiles.reshape(-1, 10, 8, 8).transpose(0, 2, 1, 3).reshape(-1, 80)
        ax.imshow(grid, cmap="gray_r", vmin=-1, vmax=1)
        ax.set_title(name, fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
