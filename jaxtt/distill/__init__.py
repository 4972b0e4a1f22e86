"""Few-step generators and compressed models by distillation, each a regression with fixed targets.

* :mod:`~jaxtt.distill.progressive` — progressive distillation (Salimans & Ho 2022): a student learns two
  deterministic teacher steps in one, halving the steps each round.
* :mod:`~jaxtt.distill.consistency` — consistency distillation (Song et al. 2023): a data predictor consistent
  along the teacher's probability-flow ODE, for 1- and 2-step sampling.
* :mod:`~jaxtt.distill.compression` — compression (Hinton et al. 2015): a small student copies a teacher's outputs.

Each method produces rows ``(x_t, t, y)``; an FTT student is fitted to them in closed form with
:func:`jaxtt.solvers.fit_regression` (TT-ALS), a network student with :func:`regression_loss` as the ``loss`` of
:func:`jaxtt.train.fit`. The teacher is any batched model on a DDPM schedule — including a rectified flow through
:class:`jaxtt.diffusion.FlowVelocity` (:mod:`jaxtt.diffusion.flow_matching`) — and the students sample through
:func:`jaxtt.diffusion.sample`.
"""

from jaxtt.distill.compression import compression_rows
from jaxtt.distill.consistency import ConsistencyModel, consistency_distillation_rows, consistency_scalings
from jaxtt.distill.progressive import progressive_distillation_rows, progressive_distillation_targets, student_grid
from jaxtt.distill.teacher import ddim_step, regression_loss

__all__ = [
    "ConsistencyModel",
    "compression_rows",
    "consistency_distillation_rows",
    "consistency_scalings",
    "ddim_step",
    "progressive_distillation_rows",
    "progressive_distillation_targets",
    "regression_loss",
    "student_grid",
]
