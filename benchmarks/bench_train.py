"""Training throughput of the ResNet-MLP noise model: ``jaxtt.train.fit`` against an equivalent PyTorch loop.

Run with the benchmark environment (torch installed, jaxtt editable)::

    .venv-bench/bin/python benchmarks/bench_train.py

Workload (the same in both, float32): 2-D data (a two-component Gaussian mixture, N = 10,000), linear schedule
with T = 1000, ResNet-MLP (jaxtt.nn.ResNetMLP) with width 128, depth 3 (inner size 128), SiLU, LayerNorm,
residual blocks and a 32-feature sinusoidal time embedding projected to the width (``jaxtt.nn.ResNetMLP``
defaults); batch 1024; per step: draw the batch indices, the time steps and the noise, the L_simple loss,
backward pass, Adam (lr 1e-3) and an EMA of the weights (decay 0.999).

- jaxtt: ``jaxtt.train.fit`` with ``jaxtt.nn.Batched(ResNetMLP(...))`` and ``optax.adam``; a timed call runs
  ``--steps`` steps (one jit-compiled ``lax.fori_loop`` chunk); the first call (compilation) is timed apart.
- PyTorch: the same network as ``torch.nn`` modules, ``torch.optim.Adam(foreach=True)`` and
  ``torch.optim.swa_utils.AveragedModel`` with ``get_ema_multi_avg_fn`` for the EMA, in an eager Python loop.
- bare JAX: the same step written by hand (one ``jax.jit`` step function called from a Python loop), to show
  what ``fit`` adds or saves.

Also measured, as the physical reference: each framework's float32 matmul throughput on the step's dominant
GEMM shape (batch x width @ width x width), and the training FLOP rate of each loop (3x the forward FLOPs of
the linear layers, the usual forward + backward estimate).

Both use ``--threads`` threads (default: all cores): ``torch.set_num_threads`` and XLA's CPU intra-op thread
pool (``XLA_FLAGS``, set before JAX starts). The loops are timed in turn, ``--repeats`` times each, and the
median steps per second is reported with the ratio jaxtt / PyTorch. Writes ``benchmarks/results/bench_train.json``
(``--out`` to change). The load average before and after is recorded: on a shared machine, PyTorch's OpenMP
threads spin-wait for each other and its multi-threaded timings collapse under contention, so compare
multi-threaded numbers only from a quiet machine (``--threads 1`` is far less sensitive).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="training steps per timed call")
    parser.add_argument("--repeats", type=int, default=7, help="timed calls per framework")
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--n-data", type=int, default=10_000)
    parser.add_argument("--T", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_train.json")
    return parser.parse_args(argv)


ARGS = parse_args()
_multi_thread = "true" if ARGS.threads > 1 else "false"
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "")
    + f" --xla_cpu_multi_thread_eigen={_multi_thread} intra_op_parallelism_threads={ARGS.threads}"
).strip()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import equinox as eqx  # noqa: E402
import optax  # noqa: E402
import torch  # noqa: E402
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn  # noqa: E402

from jaxtt.diffusion import linear_schedule  # noqa: E402
from jaxtt.nn import Batched, ResNetMLP  # noqa: E402
from jaxtt.train import fit  # noqa: E402

EMBED_DIM = 32
LEARNING_RATE = 1e-3
EMA_DECAY = 0.999


def mixture(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    means = np.array([[1.5, 0.5], [-1.5, -0.5]])
    return (means[rng.integers(0, 2, n)] + 0.25 * rng.standard_normal((n, 2))).astype(np.float32)


# ----------------------------------------------------------------------------- PyTorch reference


class TorchEmbedding(torch.nn.Module):
    """The sinusoidal embedding of jaxtt.nn.SinusoidalEmbedding (sines, then cosines, frequencies scale^(-i/(h-1)))."""

    def __init__(self, dim: int, scale: float):
        super().__init__()
        half = dim // 2
        self.register_buffer("freqs", torch.exp(-np.log(scale) / (half - 1) * torch.arange(half)))

    def forward(self, t):
        angles = t[:, None].float() * self.freqs
        return torch.cat([angles.sin(), angles.cos()], dim=-1)


class TorchBlock(torch.nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.inner = torch.nn.Linear(width, width)
        self.outer = torch.nn.Linear(width, width)
        self.norm = torch.nn.LayerNorm(width)

    def forward(self, z):
        return z + self.norm(self.outer(torch.nn.functional.silu(self.inner(z))))


class TorchResNetMLP(torch.nn.Module):
    """The network of ``jaxtt.nn.ResNetMLP`` (default ``add_time_to="width"``) in PyTorch."""

    def __init__(self, d: int, width: int, depth: int, scale: float):
        super().__init__()
        self.embedding = TorchEmbedding(EMBED_DIM, scale)
        self.time_proj = torch.nn.Linear(EMBED_DIM, width)
        self.expand = torch.nn.Linear(d, width)
        self.blocks = torch.nn.Sequential(*[TorchBlock(width) for _ in range(depth)])
        self.contract = torch.nn.Linear(width, d)

    def forward(self, x, t):
        return self.contract(self.blocks(self.expand(x) + self.time_proj(self.embedding(t))))


def torch_trainer(x0: np.ndarray, alpha_bars: np.ndarray):
    """Return ``run(steps)``: the eager PyTorch training loop (same work per step as ``jaxtt.train.fit``)."""
    torch.manual_seed(0)
    data = torch.from_numpy(x0)
    sqrt_ab = torch.from_numpy(np.sqrt(alpha_bars).astype(np.float32))
    sqrt_1m_ab = torch.from_numpy(np.sqrt(1 - alpha_bars).astype(np.float32))
    model = TorchResNetMLP(x0.shape[1], ARGS.width, ARGS.depth, float(ARGS.T))
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(EMA_DECAY), use_buffers=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE, foreach=True)
    n = data.shape[0]

    def run(steps: int) -> float:
        for _ in range(steps):
            batch = data[torch.randint(0, n, (ARGS.batch,))]
            t = torch.randint(1, ARGS.T + 1, (ARGS.batch,))
            eps = torch.randn_like(batch)
            x_t = sqrt_ab[t, None] * batch + sqrt_1m_ab[t, None] * eps
            loss = torch.nn.functional.mse_loss(model(x_t, t), eps)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            ema.update_parameters(model)
        return float(loss.detach())

    return run


# ----------------------------------------------------------------------------- jaxtt


def jaxtt_trainer(x0: np.ndarray, schedule):
    """Return ``run(steps)``: ``jaxtt.train.fit`` continuing from the previous call's weights."""
    model = Batched(ResNetMLP(x0.shape[1], ARGS.width, ARGS.depth, embed_dim=EMBED_DIM, key=jax.random.key(0)))
    optimizer = optax.adam(LEARNING_RATE)
    data = jnp.asarray(x0)
    state = {"model": model, "call": 0}

    def run(steps: int) -> float:
        result = fit(
            state["model"], data, schedule, optimizer, steps, ARGS.batch, jax.random.key(state["call"]),
            ema_decay=EMA_DECAY, log_every=steps, progress=False,
        )  # fmt: skip
        state["model"], state["call"] = result.model, state["call"] + 1
        return result.history["train_loss"][-1]

    return run


def bare_jax_trainer(x0: np.ndarray, schedule):
    """Return ``run(steps)``: the same training step written by hand, a jitted step in a Python loop."""
    model = Batched(ResNetMLP(x0.shape[1], ARGS.width, ARGS.depth, embed_dim=EMBED_DIM, key=jax.random.key(0)))
    params, static = eqx.partition(model, eqx.is_inexact_array)
    optimizer, averager = optax.adam(LEARNING_RATE), optax.ema(EMA_DECAY)
    data = jnp.asarray(x0)
    sqrt_ab, sqrt_1m_ab = jnp.sqrt(schedule.alpha_bars), jnp.sqrt(1 - schedule.alpha_bars)

    @jax.jit
    def step(state, key):
        params, opt_state, ema_state = state
        k_batch, k_t, k_eps = jax.random.split(key, 3)
        batch = data[jax.random.randint(k_batch, (ARGS.batch,), 0, data.shape[0])]
        t = jax.random.randint(k_t, (ARGS.batch,), 1, ARGS.T + 1)
        eps = jax.random.normal(k_eps, batch.shape, batch.dtype)
        x_t = sqrt_ab[t, None] * batch + sqrt_1m_ab[t, None] * eps
        loss, grads = jax.value_and_grad(lambda p: jnp.mean((eqx.combine(p, static)(x_t, t) - eps) ** 2))(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        _, ema_state = averager.update(params, ema_state)
        return (params, opt_state, ema_state), loss

    state = {"state": (params, optimizer.init(params), averager.init(params)), "key": jax.random.key(1), "i": 0}

    def run(steps: int) -> float:
        current = state["state"]
        for _ in range(steps):
            current, loss = step(current, jax.random.fold_in(state["key"], state["i"]))
            state["i"] += 1
        state["state"] = current
        return float(loss)

    return run


def matmul_gflops(repeats: int = 300) -> dict:
    """Median float32 GFLOP/s of a (batch x width) @ (width x width) product in each framework."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((ARGS.batch, ARGS.width)).astype(np.float32)
    b = rng.standard_normal((ARGS.width, ARGS.width)).astype(np.float32)
    flops = 2 * ARGS.batch * ARGS.width * ARGS.width
    ja, jb = jnp.asarray(a), jnp.asarray(b)
    jmm = jax.jit(jnp.matmul)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    fns = {"jax": lambda: jmm(ja, jb).block_until_ready(), "torch": lambda: torch.mm(ta, tb)}
    out = {}
    for name, fn in fns.items():
        fn()
        ts = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - start)
        out[name] = flops / float(np.median(ts)) / 1e9
    return out


def train_flops_per_step(d: int) -> float:
    """3x the forward FLOPs of the linear layers (forward + backward), the usual estimate."""
    layers = [(EMBED_DIM, ARGS.width), (d, ARGS.width), (ARGS.width, d)] + [(ARGS.width, ARGS.width)] * 2 * ARGS.depth
    return 3.0 * sum(2.0 * ARGS.batch * n_in * n_out for n_in, n_out in layers)


def timed(run, steps: int) -> float:
    start = time.perf_counter()
    run(steps)
    return time.perf_counter() - start


def main() -> None:
    torch.set_num_threads(ARGS.threads)
    load_before = os.getloadavg()
    x0 = mixture(ARGS.n_data)
    schedule = linear_schedule(ARGS.T, dtype=jnp.float32)
    runners = {
        "jaxtt": jaxtt_trainer(x0, schedule),
        "torch": torch_trainer(x0, np.asarray(schedule.alpha_bars)),
        "bare_jax": bare_jax_trainer(x0, schedule),
    }
    first_call_s = {name: timed(run, ARGS.steps) for name, run in runners.items()}  # compile / warm-up
    times = {name: [] for name in runners}
    for _ in range(ARGS.repeats):
        for name, run in runners.items():
            times[name].append(timed(run, ARGS.steps))
    final_loss = {name: run(ARGS.steps) for name, run in runners.items()}
    steps_per_s = {name: ARGS.steps / float(np.median(ts)) for name, ts in times.items()}
    ratio = steps_per_s["jaxtt"] / steps_per_s["torch"]
    flops = train_flops_per_step(x0.shape[1])
    train_gflops = {name: flops * rate / 1e9 for name, rate in steps_per_s.items()}
    peaks = matmul_gflops()
    machine = {
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "threads": ARGS.threads,
        "python": sys.version.split()[0],
        "jax": jax.__version__,
        "torch": torch.__version__,
        "platform": platform.platform(),
        "load_average_1_5_15min_before": load_before,
        "load_average_1_5_15min_after": os.getloadavg(),
    }
    record = {
        "workload": {
            "batch": ARGS.batch, "width": ARGS.width, "depth": ARGS.depth, "n_data": ARGS.n_data, "T": ARGS.T,
            "embed_dim": EMBED_DIM, "optimizer": f"adam(lr={LEARNING_RATE})", "ema_decay": EMA_DECAY,
            "dtype": "float32", "steps_per_call": ARGS.steps, "repeats": ARGS.repeats,
        },
        "steps_per_s_median": steps_per_s,
        "call_times_s": times,
        "first_call_s": first_call_s,
        "final_train_loss": final_loss,
        "ratio_jaxtt_over_torch": ratio,
        "ratio_jaxtt_over_bare_jax": steps_per_s["jaxtt"] / steps_per_s["bare_jax"],
        "train_gflops": train_gflops,
        "train_flops_per_step": flops,
        "matmul_gflops": peaks,
        "goal_ratio": 2.0,
        "machine": machine,
    }  # fmt: skip
    ARGS.out.parent.mkdir(parents=True, exist_ok=True)
    ARGS.out.write_text(json.dumps(record, indent=2))

    print(f"ResNet-MLP training, batch {ARGS.batch}, width {ARGS.width}, depth {ARGS.depth}, Adam + EMA, float32")
    print(f"machine: {machine['processor']}, {machine['cpu_count']} cores, {ARGS.threads} threads, "
          f"jax {machine['jax']}, torch {machine['torch']}, 1-min load average {load_before[0]:.1f} before, "
          f"{machine['load_average_1_5_15min_after'][0]:.1f} after")  # fmt: skip
    header = f"{'loop':<10}{'steps/s (median)':>18}{'ms/step':>10}{'GFLOP/s':>10}{'first call s':>14}{'final loss':>12}"
    print(header)
    for name in runners:
        print(
            f"{name:<10}{steps_per_s[name]:>18.1f}{1e3 / steps_per_s[name]:>10.2f}{train_gflops[name]:>10.1f}"
            f"{first_call_s[name]:>14.2f}{final_loss[name]:>12.4f}"
        )
    print(f"matmul {ARGS.batch}x{ARGS.width} @ {ARGS.width}x{ARGS.width} float32 GFLOP/s: "
          f"jax {peaks['jax']:.1f}, torch {peaks['torch']:.1f}")  # fmt: skip
    print(f"ratio jaxtt / torch: {ratio:.2f}x (goal >= 2x); jaxtt fit / bare JAX loop: "
          f"{steps_per_s['jaxtt'] / steps_per_s['bare_jax']:.2f}x")  # fmt: skip
    print(f"wrote {ARGS.out}")


if __name__ == "__main__":
    main()
