#!/usr/bin/env bash
# One prepared run of the jaxtt benchmarks on an accelerator: W-ALS (bench_als), DDPM sampling (bench_sampler),
# training (bench_train) and scaling (bench_scale), each under its own time limit so that the whole suite ends
# within 8 minutes on one GPU. The peers (teneva, PyTorch, diffusers) run wherever their packages put them
# (CPU builds: CPU); jaxtt runs on JAX's default backend, recorded in each JSON.
#
# Usage (from the repository root):
#   PYTHON=.venv-bench/bin/python bash benchmarks/gpu_suite.sh [--quick] [OUTDIR]
# --quick: small sizes, to check every step on a CPU. OUTDIR (default: $OUT if set, else benchmarks/results/gpu)
# receives the four JSON files and suite.log; a step that fails or runs out of time is logged and the suite
# goes on (its exit status is the number of failed steps).
set -u
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv-bench/bin/python}
QUICK=0
if [ "${1:-}" = "--quick" ]; then QUICK=1; shift; fi
OUTDIR=${1:-${OUT:-benchmarks/results/gpu}}
mkdir -p "$OUTDIR"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's jaxtt, not an installed one
export PYTHONUNBUFFERED=1  # a step stopped at its limit still leaves its output in the log
LOG="$OUTDIR/suite.log"
FAILED=0

step() {  # step NAME LIMIT_S RESULT_JSON COMMAND...
    local name=$1 limit=$2 result=$3
    shift 3
    local start=$SECONDS
    echo "== $name (limit ${limit}s): $*" | tee -a "$LOG"
    timeout --signal=TERM --kill-after=10 "$limit" "$@" >>"$LOG" 2>&1
    local status=$?
    if [ "$status" = 0 ]; then
        cp "$result" "$OUTDIR/" && echo "   ok in $((SECONDS - start))s -> $OUTDIR/$(basename "$result")" | tee -a "$LOG"
    else
        FAILED=$((FAILED + 1))
        echo "   FAILED (status $status; 124: over its limit) after $((SECONDS - start))s" | tee -a "$LOG"
    fi
}

"$PYTHON" -c "import jax; print('jax', jax.__version__, jax.default_backend(), jax.devices())" | tee "$LOG"
if command -v nvidia-smi >/dev/null; then nvidia-smi --query-gpu=name,memory.total --format=csv,noheader >>"$LOG"; fi

R=benchmarks/results
if [ "$QUICK" = 1 ]; then
    step bench_als 600 $R/bench_als.json "$PYTHON" benchmarks/bench_als.py --quick --repeats 1
    step bench_sampler 300 $R/bench_sampler.json "$PYTHON" benchmarks/bench_sampler.py --n 1000 --steps 100 --repeats 1
    step bench_train 300 $R/bench_train_suite.json "$PYTHON" benchmarks/bench_train.py --steps 20 --repeats 2 \
        --out $R/bench_train_suite.json
    step bench_scale 600 $R/bench_scale_quick.json "$PYTHON" benchmarks/bench_scale.py --quick
else
    # budgets: 180 + 80 + 70 + 130 = 460 s of the 480 (the teneva and PyTorch peers run on the host CPU)
    step bench_als 180 $R/bench_als.json "$PYTHON" benchmarks/bench_als.py --quick --repeats 2
    step bench_sampler 80 $R/bench_sampler.json "$PYTHON" benchmarks/bench_sampler.py --n 10000 --steps 1000 --repeats 3
    step bench_train 70 $R/bench_train_suite.json "$PYTHON" benchmarks/bench_train.py --steps 200 --repeats 3 \
        --out $R/bench_train_suite.json
    step bench_scale 130 $R/bench_scale.json "$PYTHON" benchmarks/bench_scale.py --device-n 20000
fi
echo "suite done in ${SECONDS}s, $FAILED failed step(s)" | tee -a "$LOG"
exit "$FAILED"
