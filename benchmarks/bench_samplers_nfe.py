"""Sample quality against the number of model evaluations (NFE), jaxtt's samplers against diffusers', all driven
by the exact optimal noise prediction of Gaussian mixtures; plus step-level equality with diffusers.

    .venv-bench/bin/python benchmarks/bench_samplers_nfe.py [--quick]

Problems: the 2-D three-component mixture of the test suite and an 8-D mixture of four components with random
means and covariances (linear schedule, T = 1000, float64). For each NFE in 5, 10, 20, 50, 100, 1000 every
sampler draws ``--n`` samples from one shared :math:`x_T` (both libraries), so that differences are solver
differences, not sampling noise. Quality: for deterministic samplers the RMS distance to the converged solution
from the same :math:`x_T` (DPM-Solver++(3) with 1000 steps), and for all the unbiased MMD² (median-heuristic
RBF) and sliced Wasserstein-2 distance to a data sample of the same size, next to their floor (two independent
data samples).

Samplers: jaxtt UniPC (bh2, order 2 and 3, on diffusers' DPM/UniPC grid), DDIM (η = 0, ``"trailing"`` grid), DPM-Solver++ order 2 and 3 (diffusers' ``"linspace"``
grid without its last point, i.e. diffusers' own timesteps + 1; and the log-SNR-uniform grid), DDPM on a
sub-grid, Euler–Maruyama, predictor–corrector (DDIM + one Langevin corrector; NFE counts both), and the
adaptive probability-flow ODE (Tsit5, at the NFE it chooses). diffusers (torch, CPU):
``DPMSolverMultistepScheduler`` (dpmsolver++, order 2), ``UniPCMultistepScheduler`` (bh2, order 2) and
``DDIMScheduler``, each with its default spacing. jaxtt steps are diffusers steps + 1 (see
``jaxtt.diffusion.timesteps``).

Step-level equality: for DDPM (``fixed_small`` = ``beta_tilde``), DDIM (η = 0.5), DPM-Solver++ (order 2) and
UniPC (bh2, order 3),
both libraries take every step from the same point with the same model output and noise; the table reports
the largest difference of one step relative to the largest entry, in float32 and float64. diffusers keeps the
noise levels of its multistep schedulers in float32 whatever the data; the comparison hands them jaxtt's (in
the compared dtype), so that the float64 figures compare the algorithms (DPM-Solver's update itself is still
computed in float32 by diffusers).

Writes ``benchmarks/results/bench_samplers_nfe.json`` and ``.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import jax

jax.config.update("jax_enable_x64", True)

import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler  # noqa: E402

from jaxtt.data.mixture import GaussianMixture  # noqa: E402
from jaxtt.diffusion import (  # noqa: E402
    DDIM,
    DDPM,
    DPMSolver,
    EulerMaruyama,
    Heun,
    Langevin,
    PredictorCorrector,
    ProbabilityFlowODE,
    linear_schedule,
    UniPC,
    sample,
    timesteps,
)
from jaxtt.metrics import mmd, sliced_wasserstein  # noqa: E402

RESULTS = os.path.join(os.path.dirname(__file__), "results")
T = 1000
NFES = (5, 10, 20, 50, 100, 1000)


def problems():
    rng = np.random.default_rng(0)
    two = GaussianMixture(
        jnp.array([0.3, 0.3, 0.4]),
        jnp.array([[-2.0, 0.0], [2.0, 0.5], [0.0, 2.0]]),
        jnp.array([[[0.2, 0.05], [0.05, 0.1]], [[0.1, 0.0], [0.0, 0.3]], [[0.25, -0.1], [-0.1, 0.15]]]),
    )
    d, k = 8, 4
    a = rng.normal(size=(k, d, d)) * 0.25
    eight = GaussianMixture(jnp.ones(k), jnp.asarray(rng.normal(size=(k, d)) * 1.5),
                            jnp.asarray(a @ a.transpose(0, 2, 1) + 0.05 * np.eye(d)))
    return {"mixture-2d": two, "mixture-8d": eight}


class Exact:
    """The exact eps*(x_t, t) of a mixture, as a jaxtt model and as a torch function for diffusers."""

    def __init__(self, mixture, schedule):
        self.mixture, self.schedule = mixture, schedule
        self.jax = jax.tree_util.Partial(lambda m, x, t: m.optimal_eps(x, t, schedule), mixture)

    def torch(self, x, t_diffusers):
        t = jnp.full((x.shape[0],), int(t_diffusers) + 1)
        out = self.mixture.optimal_eps(jnp.asarray(x.double().numpy()), t, self.schedule)
        return torch.from_numpy(np.asarray(out)).to(x.dtype)


def jaxtt_samplers(nfe, schedule):
    """name -> (sampler, actual NFE) for a budget of ``nfe`` model evaluations."""
    # diffusers' DPMSolverMultistep "linspace" timesteps (+ 1), without the repeats rounding makes at NFE ~ T
    dpm_grid = np.unique(np.linspace(0, T - 1, nfe + 1).round()[:0:-1] + 1).astype(np.int32)[::-1]
    out = {
        "jaxtt DDIM": DDIM(steps=nfe, spacing="trailing"),
        "jaxtt DPM-Solver++(2)": DPMSolver(timesteps=dpm_grid, order=2),
        "jaxtt DPM-Solver++(3)": DPMSolver(timesteps=dpm_grid, order=3),
        "jaxtt UniPC(2)": UniPC(timesteps=dpm_grid, order=2),
        "jaxtt UniPC(3)": UniPC(timesteps=dpm_grid, order=3),
        "jaxtt DPM-Solver++(2) log-SNR": DPMSolver(steps=nfe, order=2, spacing="log_snr"),
        "jaxtt Heun": Heun(steps=(nfe + 1) // 2, spacing="trailing"),
        "jaxtt DDPM": DDPM("beta_tilde", timesteps=timesteps(T, nfe, "trailing")),
        "jaxtt Euler-Maruyama": EulerMaruyama(steps=nfe, spacing="trailing"),
    }
    if nfe >= 4:
        out["jaxtt PC (DDIM + Langevin)"] = PredictorCorrector(DDIM(steps=nfe // 2, spacing="trailing"),
                                                               Langevin(snr=0.1))
    return {name: (s, s.nfe(schedule)) for name, s in out.items()}


def diffusers_run(kind, nfe, exact, x_T):
    common = dict(num_train_timesteps=T, beta_schedule="linear")
    if kind == "diffusers DPMSolverMultistep++(2)":
        sch = DPMSolverMultistepScheduler(**common, algorithm_type="dpmsolver++", solver_order=2)
    elif kind == "diffusers UniPC(2)":
        sch = UniPCMultistepScheduler(**common, solver_order=2)
    else:
        sch = DDIMScheduler(**common, clip_sample=False, set_alpha_to_one=True)
    sch.set_timesteps(nfe)
    x = torch.from_numpy(np.array(x_T))
    for t in sch.timesteps:
        x = sch.step(exact.torch(x, t), t, x).prev_sample
    return np.asarray(x.double().numpy())


#: samplers whose output is a deterministic function of x_T (their distance to the converged solution is reported)
DETERMINISTIC = ("diffusers DDIM", "diffusers DPMSolverMultistep++(2)", "diffusers UniPC(2)", "jaxtt DDIM",
                 "jaxtt DPM-Solver++", "jaxtt PF-ODE", "jaxtt Heun", "jaxtt UniPC")


def quality(x, data, floor_data, key, reference, name):
    x = jnp.asarray(x)
    if not bool(jnp.all(jnp.isfinite(x))):
        print(f"  {name}: non-finite samples")
        return {"err": None, "mmd2": None, "sw": None, "floor_mmd2": float(mmd(floor_data, data)),
                "floor_sw": float(sliced_wasserstein(key, floor_data, data)), "nonfinite": True}
    deterministic = name.startswith(DETERMINISTIC)
    return {
        "err": float(jnp.sqrt(jnp.mean((x - reference) ** 2))) if deterministic else None,
        "mmd2": float(mmd(x, data)),
        "sw": float(sliced_wasserstein(key, x, data)),
        "floor_mmd2": float(mmd(floor_data, data)),
        "floor_sw": float(sliced_wasserstein(key, floor_data, data)),
    }


def nfe_table(args):
    schedule = linear_schedule(T)
    rows = []
    for pname, mixture in problems().items():
        exact = Exact(mixture, schedule)
        data = mixture.sample(jax.random.key(1), args.n)
        floor_data = mixture.sample(jax.random.key(2), args.n)
        shape = (args.n, mixture.dim)
        # one x_T for every sampler and both libraries, so differences are solver differences; the reference is
        # the converged deterministic solution from it (DPM-Solver++(3), 1000 steps)
        x_T = jax.random.normal(jax.random.key(3), shape, dtype=jnp.float64)
        reference = sample(exact.jax, schedule, DPMSolver(steps=T, order=3), jax.random.key(3), shape,
                           x_init=x_T).samples
        q = lambda x, name: quality(x, data, floor_data, jax.random.key(4), reference, name)  # noqa: E731
        for nfe in args.nfes:
            for name, (sampler, used) in jaxtt_samplers(nfe, schedule).items():
                start = time.perf_counter()
                x = sample(exact.jax, schedule, sampler, jax.random.key(3), shape, x_init=x_T).samples
                x.block_until_ready()
                rows.append(dict(problem=pname, sampler=name, nfe=used, seconds=time.perf_counter() - start,
                                 **q(x, name)))
            for name in ("diffusers DPMSolverMultistep++(2)", "diffusers UniPC(2)", "diffusers DDIM"):
                start = time.perf_counter()
                try:
                    x = diffusers_run(name, nfe, exact, x_T)
                except Exception as err:  # noqa: BLE001 - a peer failing at some NFE is a result, not a crash
                    print(f"  {name} at NFE {nfe} failed: {type(err).__name__}: {str(err)[:120]}")
                    continue
                rows.append(dict(problem=pname, sampler=name, nfe=nfe, seconds=time.perf_counter() - start,
                                 **q(x, name)))
            print(f"  {pname} NFE {nfe} done", flush=True)
        for rtol in (1e-3, 1e-5):
            ode = ProbabilityFlowODE(rtol=rtol, atol=rtol)
            res = sample(exact.jax, schedule, ode, jax.random.key(3), shape, x_init=x_T)
            # Tsit5 evaluates the model 6 times per step (plus the first stage)
            name = f"jaxtt PF-ODE Tsit5 rtol={rtol:g}"
            rows.append(dict(problem=pname, sampler=name, nfe=6 * int(res.steps) + 1, seconds=None,
                             **q(res.samples, name)))
    return rows


def use_sigmas(sch, schedule):
    """After ``set_timesteps``: the scheduler's noise levels in the schedule's dtype (DPMSolverMultistep and
    UniPC store them in float32 whatever the data, which bounds their float64 agreement at ~1e-7 / ~1e-5)."""
    if hasattr(sch, "sigmas") and sch.sigmas is not None and len(sch.sigmas) == len(sch.timesteps) + 1:
        ac = np.asarray(schedule.alpha_bars[1:])[sch.timesteps.numpy()]
        sch.sigmas = torch.from_numpy(np.append(((1 - ac) / ac) ** 0.5, 0.0).astype(ac.dtype))
    return sch


def use_schedule(sch, schedule):
    """Give a diffusers scheduler jaxtt's schedule arrays (diffusers keeps them in float32 otherwise)."""
    ab = torch.from_numpy(np.asarray(schedule.alpha_bars[1:]))
    sch.betas = torch.from_numpy(np.asarray(schedule.betas[1:]))
    sch.alphas = 1.0 - sch.betas
    sch.alphas_cumprod = ab
    if hasattr(sch, "lambda_t"):
        sch.alpha_t, sch.sigma_t = torch.sqrt(ab), torch.sqrt(1 - ab)
        sch.lambda_t = torch.log(sch.alpha_t) - torch.log(sch.sigma_t)
    return sch


def _cases():
    return {
        "DDPM (beta_tilde, 1000 steps)": (
            DDPMScheduler(num_train_timesteps=T, beta_schedule="linear", variance_type="fixed_small",
                          clip_sample=False), T, lambda grid: DDPM("beta_tilde")),
        "DDIM (eta 0.5, 50 steps, leading)": (
            DDIMScheduler(num_train_timesteps=T, beta_schedule="linear", clip_sample=False, set_alpha_to_one=True),
            50, lambda grid: DDIM(timesteps=grid, eta=0.5)),
        "DPM-Solver++ (order 2, 20 steps)": (
            DPMSolverMultistepScheduler(num_train_timesteps=T, beta_schedule="linear", algorithm_type="dpmsolver++",
                                        solver_order=2), 20, lambda grid: DPMSolver(timesteps=grid, order=2)),
        "UniPC (bh2, order 3, 20 steps)": (
            UniPCMultistepScheduler(num_train_timesteps=T, beta_schedule="linear", solver_order=3), 20,
            lambda grid: UniPC(timesteps=grid, order=3)),
    }


def _as64(state, template):
    """``state`` (float32) with its point and history cast to float64, on the float64 coefficient tables."""
    up = lambda a: jnp.asarray(a, dtype=jnp.float64)  # noqa: E731
    return eqx.tree_at(lambda s: (s.x, s.index, s.memory), template,
                       (up(state.x), state.index, jax.tree.map(up, state.memory)))


def step_equality():
    """One-step differences: jaxtt vs diffusers from the same point, model output and noise, in float32 and
    float64; in float32 also each library against the float64 step (jaxtt's, equal to diffusers' float64 step)
    from the same inputs, which shows which side a float32 disagreement comes from. Relative to max(1, |x|)."""
    out = {}
    rng = np.random.default_rng(5)
    w = rng.normal(size=(2, 2))
    sched64 = linear_schedule(T, dtype=jnp.float64)
    for dtype in (np.float32, np.float64):
        schedule = linear_schedule(T, dtype=jnp.float32 if dtype == np.float32 else jnp.float64)
        for name, (sch, steps, make) in _cases().items():
            use_schedule(sch, schedule)
            sch.set_timesteps(steps)
            use_sigmas(sch, schedule)
            sampler = make(sch.timesteps.numpy().astype(np.int32) + 1)
            x = rng.normal(size=(256, 2)).astype(dtype)
            state = sampler.init(schedule, jnp.asarray(x))
            template = sampler.init(sched64, jnp.asarray(x, dtype=jnp.float64))
            worst = {"jaxtt vs diffusers": 0.0, "jaxtt vs float64": 0.0, "diffusers vs float64": 0.0}
            for t_d in sch.timesteps:
                xs = np.asarray(state.x)
                eps = np.tanh(xs @ w + int(t_d) / T).astype(dtype)
                noise = torch.randn(xs.shape, generator=torch.Generator().manual_seed(int(t_d)),
                                    dtype=torch.float32 if dtype == np.float32 else torch.float64).numpy()
                kwargs = {}
                if isinstance(sampler, DDIM):
                    kwargs = dict(eta=0.5, variance_noise=torch.from_numpy(noise))
                elif isinstance(sampler, DDPM):  # diffusers draws the same noise from a generator of that seed
                    kwargs = dict(generator=torch.Generator().manual_seed(int(t_d)))
                ref = sch.step(torch.from_numpy(eps), t_d, torch.from_numpy(xs), **kwargs).prev_sample.numpy()
                z = jnp.asarray(noise) if sampler.stochastic else None
                new = sampler.step(state, jnp.asarray(eps), z)
                scale = max(1.0, float(np.max(np.abs(ref))))
                worst["jaxtt vs diffusers"] = max(worst["jaxtt vs diffusers"],
                                                  float(np.max(np.abs(np.asarray(new.x) - ref))) / scale)
                if dtype == np.float32:
                    exact = np.asarray(sampler.step(_as64(state, template), jnp.asarray(eps, jnp.float64),
                                                    None if z is None else jnp.asarray(noise, jnp.float64)).x)
                    worst["jaxtt vs float64"] = max(worst["jaxtt vs float64"],
                                                    float(np.max(np.abs(np.asarray(new.x) - exact))) / scale)
                    worst["diffusers vs float64"] = max(worst["diffusers vs float64"],
                                                        float(np.max(np.abs(ref - exact))) / scale)
                # single-step samplers continue from diffusers' point, so every step starts from the same x
                state = new if isinstance(sampler, (DPMSolver, UniPC)) else eqx.tree_at(
                    lambda s: s.x, new, jnp.asarray(ref.astype(dtype)))
            for k, v in worst.items():
                if dtype == np.float64 and k != "jaxtt vs diffusers":
                    continue
                out[f"{name} {np.dtype(dtype).name}: {k}"] = v
    return out


def plot(rows, path):
    """Per problem: solver error of the deterministic samplers (log-log) and MMD² of all (symlog)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    probs = sorted({r["problem"] for r in rows})
    fig, axes = plt.subplots(len(probs), 2, figsize=(13, 4.5 * len(probs)), squeeze=False)
    names = sorted({r["sampler"] for r in rows})
    colors = {name: plt.cm.tab20(i % 20) for i, name in enumerate(names)}
    for (ax_err, ax_mmd), p in zip(axes, probs):
        sub = [r for r in rows if r["problem"] == p]
        for name in names:
            mine = sorted((r for r in sub if r["sampler"] == name and r["mmd2"] is not None), key=lambda r: r["nfe"])
            if not mine:
                continue
            style = dict(ls="--" if name.startswith("diffusers") else "-", marker="o", ms=3, color=colors[name])
            if mine[0]["err"] is not None:
                ax_err.plot([r["nfe"] for r in mine], [r["err"] for r in mine], label=name, **style)
            ax_mmd.plot([r["nfe"] for r in mine], [r["mmd2"] for r in mine], label=name, **style)
        ax_err.set(xscale="log", yscale="log", xlabel="NFE", ylabel="RMS distance to the converged ODE solution",
                   title=f"{p}: solver error (same x_T)")
        ax_mmd.axhline(sub[0]["floor_mmd2"], color="k", lw=0.8, ls=":", label="data vs data")
        ax_mmd.set(xscale="log", xlabel="NFE", ylabel="MMD² to data", title=f"{p}: sample quality")
        ax_mmd.set_yscale("symlog", linthresh=1e-3)
        ax_err.legend(fontsize=6)
        ax_mmd.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="NFE 5, 10, 20 only and 1000 samples")
    args = parser.parse_args()
    args.nfes = (5, 10, 20) if args.quick else NFES
    if args.quick:
        args.n = min(args.n, 1000)
    start = time.perf_counter()
    load = os.getloadavg()
    equality = step_equality()
    rows = nfe_table(args)
    tag = "_quick" if args.quick else ""
    result = dict(machine=platform.machine(), cores=os.cpu_count(), jax=jax.__version__, torch=torch.__version__,
                  load_start=load, load_end=os.getloadavg(), seconds=time.perf_counter() - start,
                  step_equality=equality, rows=rows)
    os.makedirs(RESULTS, exist_ok=True)
    tmp = os.path.join(RESULTS, f"bench_samplers_nfe{tag}.json.tmp")
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, os.path.join(RESULTS, f"bench_samplers_nfe{tag}.json"))
    plot(rows, os.path.join(RESULTS, f"bench_samplers_nfe{tag}.png"))
    print("\nstep-level max |jaxtt - diffusers| / max(1, |x|):")
    for k, v in equality.items():
        print(f"  {k:70s} {v:.2e}")
    for p in sorted({r["problem"] for r in rows}):
        sub = [r for r in rows if r["problem"] == p]
        print(f"\n{p}  (floor: MMD² {sub[0]['floor_mmd2']:.5f}, SW {sub[0]['floor_sw']:.4f})")
        names = sorted({r["sampler"] for r in sub})
        print(f"{'sampler':40s} {'NFE':>5s} {'RMS err':>9s} {'MMD²':>9s} {'SW':>7s}")
        for name in names:
            for r in sorted((r for r in sub if r["sampler"] == name), key=lambda r: r["nfe"]):
                if r["mmd2"] is None:
                    print(f"{name:40s} {r['nfe']:5d}  non-finite samples")
                    continue
                err = "" if r["err"] is None else f"{r['err']:.2e}"
                print(f"{name:40s} {r['nfe']:5d} {err:>9s} {r['mmd2']:9.5f} {r['sw']:7.4f}")
    print(f"\n{time.perf_counter() - start:.0f} s, load {load} -> {os.getloadavg()}")


if __name__ == "__main__":
    main()
