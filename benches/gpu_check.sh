#!/usr/bin/env bash
# The one prepared GPU check, for a machine with an NVIDIA GPU and JAX with its CUDA plugin
# installed (pip install "jax[cuda13]", or cuda12). It loads the CUDA PJRT plugin JAX ships
# (jax_plugins/xla_cuda*/xla_cuda_plugin.so) directly and, on one GPU:
#   1. runs the device-independent test suites (jit, primitives, numpy layer, autodiff,
#      PRNG, golden StableHLO) on the GPU;
#   2. measures ViT-B/16 at 224, batch 8 (forward, train step, first step) beside JAX on the
#      same GPU, in float32 and with big_vision's dtype_mm=bfloat16;
#   3. runs the runtime benchmark (dispatch, transfers) beside JAX;
#   4. trains the default job (configs/fashion_mnist_vit.ron) and reports its time and
#      test accuracy.
# Each step's output goes to $OUT (default gpu_out/), a one-line result per step to
# $OUT/summary.txt; a failing step does not stop the others, and the script exits non-zero
# if any failed. The figures belong in docs/tpu_gpu.md ("Measured on a GPU").
#
# Usage: benches/gpu_check.sh [--dry-run]
#   --dry-run   print the steps without running them (what happens without a GPU, too:
#               the check is skipped with a message and exit status 0).
# Environment: OUT (results folder), PYTHON (the interpreter with JAX; default python3),
# ROUNDS (benchmark rounds; default 3), BV_PREBUILT_TESTS (a folder of prebuilt runtime-test
# binaries, for a machine without cargo: target/release/ must then hold bv-train and bv-bench).
set -euo pipefail
cd "$(dirname "$0")/.."

dry=0
case "${1:-}" in
  --dry-run) dry=1 ;;
  "") ;;
  *) echo "usage: benches/gpu_check.sh [--dry-run]" >&2; exit 2 ;;
esac
out=${OUT:-gpu_out}
python=${PYTHON:-python3}
rounds=${ROUNDS:-3}

if (( ! dry )) && ! { command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; }; then
  echo "gpu_check: no NVIDIA GPU on this machine (nvidia-smi lists none); skipped. --dry-run shows the steps."
  exit 0
fi

plugin=$("$python" - <<'PY' 2>/dev/null || true
import importlib.util, pathlib
for name in ("jax_plugins.xla_cuda13", "jax_plugins.xla_cuda12"):
    spec = importlib.util.find_spec(name)
    if spec and spec.origin:
        p = pathlib.Path(spec.origin).parent / "xla_cuda_plugin.so"
        if p.exists():
            print(p); break
PY
)
if [[ -z "$plugin" ]]; then
  if (( dry )); then
    plugin="<jax_plugins/xla_cuda13/xla_cuda_plugin.so>"
  else
    echo "gpu_check: $python finds no jax_plugins CUDA plugin; pip install 'jax[cuda13]'" >&2
    exit 1
  fi
fi

(( dry )) || { mkdir -p "$out"; : > "$out/summary.txt"; }
failed=0
# step NAME COMMAND...: runs COMMAND with its output in $OUT/NAME.txt, records the result.
step() {
  local name=$1; shift
  echo "== $name: $*"
  (( dry )) && return 0
  local start rc=0
  start=$(date +%s)
  "$@" > "$out/$name.txt" 2>&1 || rc=$?
  local secs=$(( $(date +%s) - start ))
  if (( rc == 0 )); then
    echo "$name: ok (${secs} s)" | tee -a "$out/summary.txt"
  else
    failed=1
    echo "$name: FAILED (exit $rc after ${secs} s; see $out/$name.txt)" | tee -a "$out/summary.txt"
  fi
}

export BV_PJRT_PLUGIN="$plugin" BV_PLATFORM=cuda
if (( ! dry )); then
  { echo "plugin $plugin"; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv;
    "$python" -c 'import jax; print("jax", jax.__version__, jax.devices())'; } | tee "$out/machine.txt"
fi

# run_test_binaries DIR: each prebuilt test binary in DIR, from bv-core/ as cargo runs them.
run_test_binaries() {
  local rc=0 t dir
  dir=$(cd "$1" && pwd)
  for t in "$dir"/*; do
    echo "== $(basename "$t")"
    (cd bv-core && "$t") || rc=1
  done
  return $rc
}

if [[ -n "${BV_PREBUILT_TESTS:-}" ]]; then
  # A machine without a Rust toolchain: release binaries built elsewhere are already in
  # target/release/ and the runtime tests' binaries in $BV_PREBUILT_TESTS.
  step runtime_tests run_test_binaries "$BV_PREBUILT_TESTS"
else
  step build cargo build --release -p bv-train -p bv-benches
  step runtime_tests cargo test --release -p bv-core --test 'jit_*' --test 'prim_*' \
    --test 'autodiff_*' --test 'random_*' --test trace_golden
fi
step vit_b16_float32 target/release/bv-bench models --variants B/16 --platform cuda \
  --dtype float32 --rounds "$rounds" --python "$python" --out "$out/benchmarks.md"
step vit_b16_bfloat16 target/release/bv-bench models --variants B/16 --platform cuda \
  --dtype bfloat16 --rounds "$rounds" --python "$python" --out "$out/benchmarks.md"
step runtime_bench target/release/bv-bench runtime --rounds "$rounds" --python "$python" \
  --out "$out/benchmarks.md"
step default_job target/release/bv-train --config configs/fashion_mnist_vit.ron \
  --workdir "$out/default_job"

if (( ! dry )) && [[ -f "$out/default_job/big_vision_metrics.txt" ]]; then
  acc=$(grep -o '"test/prec@1": [0-9.]*' "$out/default_job/big_vision_metrics.txt" | tail -1 || true)
  echo "default_job: final ${acc:-test/prec@1 missing}" | tee -a "$out/summary.txt"
fi
(( dry )) && echo "gpu_check: dry run; nothing was run" || echo "gpu_check: results in $out/"
exit "$failed"
