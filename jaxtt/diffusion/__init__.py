"""Diffusion: noise schedules, the forward process, losses, model parameterizations, one sampling entry point
with sampler objects, guidance and likelihoods; flow matching and rectified flow
(:mod:`jaxtt.diffusion.flow_matching`), sampled as noise models through ``FlowVelocity``.

Time steps are ``t = 0..T`` with ``t = 0`` the data and ``t = 1..T`` the noised levels; schedule arrays have
length ``T + 1`` and are indexed by ``t`` (see :mod:`jaxtt.diffusion.schedule`). A model is any callable
``model(x, t)`` on a batch ``x`` of shape ``(N, *event_shape)`` with steps ``t`` of shape ``(N,)`` that returns
``x``'s shape; what it predicts (noise, data, velocity or score) is named by ``prediction=``.

Sampling: ``sample(model, schedule, sampler, key, shape)`` with a sampler object (``DDPM``, ``DDIM``,
``DPMSolver``, ``EulerMaruyama``, ``PredictorCorrector``, ``AnnealedLangevin``, ``ProbabilityFlowODE``); each
discrete sampler also exposes a pure ``init``/``step`` pair for hand-written loops. ``ddpm_sample``,
``ddim_sample``, ``langevin_sample`` and ``ode_sample`` are the same samplers as plain functions.

The samplers, losses and likelihoods compile their whole computation with ``equinox.filter_jit``: array
leaves of the model (an Equinox module, a ``jax.tree_util.Partial``) are traced, so repeated calls with new
parameters reuse the compiled code, while a fresh Python closure is a new static argument and compiles
again. Inside a user's ``jax.jit`` they are simply traced.
"""

from jaxtt.diffusion.ddim import ddim_sample, ddim_timesteps
from jaxtt.diffusion.ddpm import ddpm_sample
from jaxtt.diffusion.flow_matching import (
    flow_matching_loss,
    flow_matching_triples,
    flow_path,
    flow_timesteps,
    interpolant,
    reflow_pairs,
    straightness,
)
from jaxtt.diffusion.forward import eps_to_score, predict_x0, q_sample, score_to_eps, training_triples
from jaxtt.diffusion.guidance import ClassifierFreeGuidance, ClassifierGuidance, GuidanceInterval
from jaxtt.diffusion.langevin import langevin_sample
from jaxtt.diffusion.targets import empirical_bayes_eps, empirical_bayes_velocity
from jaxtt.diffusion.losses import ddpm_loss, loss_weights
from jaxtt.diffusion.ode import LogLikelihood, log_likelihood, ode_encode, ode_sample
from jaxtt.diffusion.parameterization import PREDICTIONS, FlowVelocity, convert_prediction
from jaxtt.diffusion.samplers import (
    DDIM,
    DDPM,
    AbstractSampler,
    AnnealedLangevin,
    DPMSolver,
    EulerMaruyama,
    Heun,
    Langevin,
    PredictorCorrector,
    ProbabilityFlowODE,
    SamplerState,
    UniPC,
)
from jaxtt.diffusion.sampling import SampleResult, sample
from jaxtt.diffusion.schedule import Schedule, cosine_schedule, linear_schedule, schedule_from_betas
from jaxtt.diffusion.timesteps import timesteps
from jaxtt.diffusion.vlb import vlb

__all__ = [
    "AbstractSampler",
    "AnnealedLangevin",
    "ClassifierFreeGuidance",
    "ClassifierGuidance",
    "DDIM",
    "DDPM",
    "DPMSolver",
    "EulerMaruyama",
    "FlowVelocity",
    "GuidanceInterval",
    "Heun",
    "Langevin",
    "LogLikelihood",
    "PREDICTIONS",
    "PredictorCorrector",
    "ProbabilityFlowODE",
    "SampleResult",
    "SamplerState",
    "Schedule",
    "convert_prediction",
    "cosine_schedule",
    "ddim_sample",
    "ddim_timesteps",
    "ddpm_loss",
    "empirical_bayes_eps",
    "empirical_bayes_velocity",
    "ddpm_sample",
    "eps_to_score",
    "flow_matching_loss",
    "flow_matching_triples",
    "flow_path",
    "flow_timesteps",
    "interpolant",
    "langevin_sample",
    "linear_schedule",
    "log_likelihood",
    "loss_weights",
    "ode_encode",
    "ode_sample",
    "predict_x0",
    "q_sample",
    "reflow_pairs",
    "sample",
    "schedule_from_betas",
    "score_to_eps",
    "straightness",
    "timesteps",
    "UniPC",
    "training_triples",
    "vlb",
]
