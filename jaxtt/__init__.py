"""jaxtt: tensor-train diffusion models in JAX.

Functional tensor trains (FTT) as denoisers for DDPM/DDIM, fitted by closed-form TT-ALS/DMRG sweeps,
Riemannian optimization or gradient descent, next to Equinox neural-network baselines. Every numerical function
is a pure function of arrays and pytrees that works under ``jax.jit``, ``jax.vmap`` and ``jax.grad``.

Subpackages (imported on first use, so ``import jaxtt; jaxtt.diffusion`` works):

* ``jaxtt.tt`` -- tensor-train algebra: construction, TT-SVD and rounding, sums, inner products,
  Riemannian geometry of the fixed-rank manifold.
* ``jaxtt.basis`` -- 1-D basis families (Legendre, Chebyshev, Fourier, B-splines, indicators).
* ``jaxtt.ftt`` -- functional tensor trains and the FTT denoiser ``FTTDenoiser``.
* ``jaxtt.solvers`` -- ALS, DMRG, Riemannian and gradient solvers, ``fit`` and ``fit_denoiser``.
* ``jaxtt.diffusion`` -- schedules, forward process, losses, ``sample`` with DDPM/DDIM/... samplers,
  guidance and likelihoods.
* ``jaxtt.nn`` -- Equinox baselines (ResNet-MLP, U-Net), embeddings, the digits VAE and classifier.
* ``jaxtt.data`` -- toy 2-D data sets, Gaussian mixtures with exact scores, digits.
* ``jaxtt.metrics`` -- MMD, sliced Wasserstein, energy and Fréchet distances, ε-error.
* ``jaxtt.train`` -- the Optax training loop for neural denoisers (EMA, atomic checkpoints).
* ``jaxtt.distill`` -- few-step students and compressed models as fixed-target regressions.
* ``jaxtt.latent``, ``jaxtt.latent_digits`` -- a VAE's latent space; latent diffusion on the digits.
* ``jaxtt.sharding`` -- data parallelism over a device mesh (``ALS(mesh=)``, ``train.fit(mesh=)``,
  ``sample(mesh=)``).
* ``jaxtt.checkpoint``, ``jaxtt.errors``, ``jaxtt.cli`` -- checkpoints, exceptions, the ``jaxtt`` command.

A first fit and sample::

    import jax
    from jaxtt.data import toy_dataset
    from jaxtt.diffusion import DDIM, linear_schedule, sample
    from jaxtt.ftt import FTTDenoiser
    from jaxtt.solvers import ALS, fit_denoiser

    x0 = toy_dataset("swiss_roll", jax.random.key(0), 5000)   # standardized 2-D points
    schedule = linear_schedule(1000)
    model = FTTDenoiser(2, 1000, rank=8, m=16, schedule=schedule, prediction="v", key=jax.random.key(1))
    model, _ = fit_denoiser(model, x0, schedule, jax.random.key(2), solver=ALS(cg_maxiter=8), repeats=4)
    x = sample(model, schedule, DDIM(steps=100), jax.random.key(3), (2000, 2)).samples

From the shell: ``jaxtt demo``, ``jaxtt train``, ``jaxtt sample``, ``jaxtt evaluate``, ``jaxtt digits``
(``jaxtt --help``).
"""

import importlib

__version__ = "0.1.0"

_SUBMODULES = ("basis", "checkpoint", "cli", "data", "diffusion", "distill", "errors", "ftt", "latent",
               "latent_digits", "metrics", "nn", "sharding", "solvers", "train", "tt")
__all__ = ["__version__", *_SUBMODULES]


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"jaxtt.{name}")
    raise AttributeError(f"module 'jaxtt' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_SUBMODULES))
