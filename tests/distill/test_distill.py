"""Distillation targets against independent truth: progressive distillation reproduces two teacher DDIM steps,
the consistency target is the teacher's ODE step written out by hand, and compression of an FTT into a larger
FTT is exact to round-off."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxtt.diffusion import DDIM, cosine_schedule, linear_schedule, sample
from jaxtt.distill import (
    ConsistencyModel,
    compression_rows,
    consistency_distillation_rows,
    ddim_step,
    progressive_distillation_rows,
    progressive_distillation_targets,
    student_grid,
)
from jaxtt.ftt import FTTDenoiser
from jaxtt.solvers import fit_regression

MU = np.array([0.5, -1.0])
SIGMA = np.array([0.5, 1.2])


def gaussian_eps(schedule):
    """Exact eps*(x_t, t) of x0 ~ N(mu, diag sigma^2): x_t = a x0 + s eps is Gaussian with mean a mu and
    variance a^2 sigma^2 + s^2, and E[eps | x_t] = s (x_t - a mu) / (a^2 sigma^2 + s^2)."""

    def eps(x, t):
        ab = schedule.alpha_bars[t][:, None]
        a, s = jnp.sqrt(ab), jnp.sqrt(1 - ab)
        return s * (x - a * MU) / (ab * SIGMA**2 + s**2)

    return eps


@pytest.mark.parametrize("target", ["x0", "v"])
def test_one_progressive_round_reproduces_two_teacher_ddim_steps(target):
    schedule = cosine_schedule(1000)
    teacher = gaussian_eps(schedule)
    teacher_grid = (1000, 750, 500, 250)
    x0 = MU + SIGMA * jax.random.normal(jax.random.key(0), (2000, 2))
    rows = progressive_distillation_rows(teacher, schedule, teacher_grid, jax.random.key(1), x0, 2, target=target)
    # the target is affine in x_t at each of the two student steps: degree 1 in x, two time values (a domain
    # wide enough that no input is clamped)
    student = FTTDenoiser(2, 1000, rank=2, m=2, time_m=2, domain=(-8.0, 8.0), key=jax.random.key(2))
    student, result = fit_regression(student, *rows, steps=6, reg=0.0)
    assert result.train_residual[-1] < 1e-9
    x_T = jax.random.normal(jax.random.key(3), (500, 2))  # held-out starting points
    by_teacher = sample(teacher, schedule, DDIM(timesteps=teacher_grid), jax.random.key(4), x_T.shape, x_init=x_T)
    by_student = sample(student, schedule, DDIM(timesteps=student_grid(teacher_grid)), jax.random.key(4),
                        x_T.shape, x_init=x_T, prediction=target)
    np.testing.assert_allclose(np.asarray(by_student.samples), np.asarray(by_teacher.samples), atol=1e-7)


def test_progressive_targets_of_an_odd_grid_end_with_one_teacher_step():
    schedule = linear_schedule(100)
    teacher = gaussian_eps(schedule)
    x = jax.random.normal(jax.random.key(0), (4, 2))
    y = progressive_distillation_targets(teacher, schedule, (90, 60, 30), x, jnp.full(4, 1), target="x0")
    one_step = ddim_step(teacher, schedule, x, jnp.full(4, 30), jnp.zeros(4, int))  # = the teacher's x0 at t = 30
    np.testing.assert_allclose(np.asarray(y), np.asarray(one_step), rtol=1e-12)


def test_consistency_target_is_the_teachers_ode_step():
    schedule = linear_schedule(200)
    teacher = gaussian_eps(schedule)
    grid = (200, 120, 40)
    frozen = lambda x, t: jnp.sin(x) * (t[:, None] / 200.0) + 0.1 * x  # noqa: E731  an arbitrary frozen copy
    x0 = MU + SIGMA * jax.random.normal(jax.random.key(0), (300, 2))
    x_t, t, y = consistency_distillation_rows(frozen, teacher, schedule, grid, jax.random.key(1), x0)
    # the DDIM (probability-flow Euler) step written out: x0_hat = (x - sqrt(1 - ab) eps) / sqrt(ab),
    # x' = sqrt(ab') x0_hat + sqrt(1 - ab') eps; the target is frozen(x', t'), or x' itself at t' = 0
    x_t, t, y = np.asarray(x_t), np.asarray(t), np.asarray(y)
    t_next = np.array([dict(zip(grid, grid[1:] + (0,)))[int(v)] for v in t])
    ab, ab_next = np.asarray(schedule.alpha_bars)[t][:, None], np.asarray(schedule.alpha_bars)[t_next][:, None]
    eps = np.asarray(teacher(jnp.asarray(x_t), jnp.asarray(t)))
    x0_hat = (x_t - np.sqrt(1 - ab) * eps) / np.sqrt(ab)
    x_next = np.sqrt(ab_next) * x0_hat + np.sqrt(1 - ab_next) * eps
    expected = np.where((t_next == 0)[:, None], x_next,
                        np.asarray(frozen(jnp.asarray(x_next), jnp.asarray(np.maximum(t_next, 1)))))
    assert set(t.tolist()) == set(grid)
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-12)


def test_consistency_model_boundary_and_network_targets():
    schedule = cosine_schedule(100)
    network = lambda x, t: jnp.cos(x) + t[:, None] / 100.0  # noqa: E731
    f = ConsistencyModel(network, schedule)
    x = jax.random.normal(jax.random.key(0), (5, 2))
    np.testing.assert_array_equal(np.asarray(f(x, jnp.zeros(5, int))), np.asarray(x))
    t = jnp.array([1, 10, 50, 99, 100])
    y = jax.random.normal(jax.random.key(1), (5, 2))
    target = f.network_targets(x, t, y)
    np.testing.assert_allclose(np.asarray(ConsistencyModel(lambda x, t: target, schedule)(x, t)), np.asarray(y),
                               rtol=1e-10)
    # one DDIM step of the data predictor from T is the one-step consistency sample f(x_T, T)
    one = sample(f, schedule, DDIM(timesteps=(100,)), jax.random.key(2), x.shape, x_init=x, prediction="x0")
    np.testing.assert_allclose(np.asarray(one.samples), np.asarray(f(x, jnp.full(5, 100))), rtol=1e-12)


def test_compressing_an_ftt_into_a_larger_ftt_is_exact():
    schedule = linear_schedule(50)
    teacher = FTTDenoiser(2, 50, rank=2, m=3, time_m=3, noise=0.3, key=jax.random.key(0))
    x0 = jax.random.uniform(jax.random.key(1), (1500, 2), minval=-1.5, maxval=1.5)
    rows = compression_rows(teacher, schedule, jax.random.key(2), x0, 2, target="eps")
    student = FTTDenoiser(2, 50, rank=3, m=4, time_m=4, key=jax.random.key(3))
    assert student.num_params > teacher.num_params
    held_out = compression_rows(teacher, schedule, jax.random.key(4), x0[:300])
    student, result = fit_regression(student, *rows, steps=12, reg=0.0, tol=1e-12, validation=held_out)
    assert result.val_residual[-1] < 1e-9, result.val_residual


def test_compression_converts_the_parameterization():
    schedule = linear_schedule(50)
    teacher = gaussian_eps(schedule)
    x0 = jax.random.normal(jax.random.key(0), (10, 2))
    x_t, t, eps = compression_rows(teacher, schedule, jax.random.key(1), x0)
    _, _, x0_hat = compression_rows(teacher, schedule, jax.random.key(1), x0, target="x0")
    ab = schedule.alpha_bars[t][:, None]
    np.testing.assert_allclose(np.asarray(x0_hat), np.asarray((x_t - jnp.sqrt(1 - ab) * eps) / jnp.sqrt(ab)),
                               rtol=1e-10)


def test_bad_input_is_named():
    schedule = linear_schedule(100)
    teacher = gaussian_eps(schedule)
    x0 = jnp.zeros((4, 2))
    with pytest.raises(ValueError, match="teacher_grid"):
        progressive_distillation_rows(teacher, schedule, (50, 90), jax.random.key(0), x0)
    with pytest.raises(ValueError, match="target"):
        progressive_distillation_rows(teacher, schedule, (90, 50), jax.random.key(0), x0, target="noise")
    with pytest.raises(ValueError, match="index"):
        progressive_distillation_targets(teacher, schedule, (90, 50), x0, jnp.full(4, 1))
    with pytest.raises(ValueError, match="grid"):
        consistency_distillation_rows(teacher, teacher, schedule, (100, 200), jax.random.key(0), x0)
    with pytest.raises(TypeError, match="frozen"):
        consistency_distillation_rows(None, teacher, schedule, (90, 50), jax.random.key(0), x0)
    with pytest.raises(ValueError, match="t_next"):
        ddim_step(teacher, schedule, x0, jnp.full(4, 10), jnp.full(4, 10))
    with pytest.raises(ValueError, match="sigma_data"):
        ConsistencyModel(teacher, schedule, sigma_data=0.0)
    with pytest.raises(ValueError, match="prediction"):
        compression_rows(teacher, schedule, jax.random.key(0), x0, prediction="x")
