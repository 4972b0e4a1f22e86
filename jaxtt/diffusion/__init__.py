"""Diffusion: noise schedules, the forward process, the DDPM loss, samplers (DDPM, DDIM, annealed Langevin,
probability-flow ODE) and likelihoods (variational bound, exact PF-ODE log-likelihood).

Time steps are ``t = 0..T`` with ``t = 0`` the data and ``t = 1..T`` the noised levels; schedule arrays have
length ``T + 1`` and are indexed by ``t`` (see :mod:`jaxtt.diffusion.schedule`). A noise model is any callable
``eps_fn(x, t)`` on a batch ``x`` of shape ``(N, *event_shape)`` with steps ``t`` of shape ``(N,)`` that returns
``x``'s shape.

The samplers, losses and likelihoods compile their whole computation with ``equinox.filter_jit``: array
leaves of ``eps_fn`` (an Equinox module, a ``jax.tree_util.Partial``) are traced, so repeated calls with new
parameters reuse the compiled code, while a fresh Python closure is a new static argument and compiles
again. Inside a user's ``jax.jit`` they are simply traced.
"""

from jaxtt.diffusion.ddim import ddim_sample, ddim_timesteps
from jaxtt.diffusion.ddpm import ddpm_sample
from jaxtt.diffusion.forward import eps_to_score, predict_x0, q_sample, score_to_eps, training_triples
from jaxtt.diffusion.langevin import langevin_sample
from jaxtt.diffusion.losses import ddpm_loss
from jaxtt.diffusion.ode import LogLikelihood, log_likelihood, ode_encode, ode_sample
from jaxtt.diffusion.schedule import Schedule, cosine_schedule, linear_schedule, schedule_from_betas
from jaxtt.diffusion.vlb import vlb

__all__ = [
    "LogLikelihood",
    "Schedule",
    "cosine_schedule",
    "ddim_sample",
    "ddim_timesteps",
    "ddpm_loss",
    "ddpm_sample",
    "eps_to_score",
    "linear_schedule",
    "log_likelihood",
    "langevin_sample",
    "ode_encode",
    "ode_sample",
    "predict_x0",
    "q_sample",
    "schedule_from_betas",
    "score_to_eps",
    "training_triples",
    "vlb",
]
