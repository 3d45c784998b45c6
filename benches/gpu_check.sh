#!/usr/bin/env bash
# One prepared GPU check for a machine with an NVIDIA GPU and JAX (with its CUDA plugin)
# installed: loads the jax_plugins CUDA plugin directly, runs the runtime and sharding tests
# on it, and the runtime benchmark beside JAX on the same GPU. Results go to $OUT (or ./gpu_out).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu_out}
mkdir -p "$out"
plugin=$(python3 - <<'PY'
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
  echo "gpu_check: no jax_plugins CUDA plugin found; pip install jax[cuda13]" >&2
  exit 1
fi
echo "gpu_check: plugin $plugin" | tee "$out/plugin.txt"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee -a "$out/plugin.txt"
export BV_PJRT_PLUGIN="$plugin" BV_PLATFORM=cuda
# The device-independent suites: everything that runs through the default client (jit,
# primitives, numpy layer, autodiff, PRNG) runs on the GPU here.
cargo test --release -p bv-core --test 'jit_*' --test 'prim_*' --test 'autodiff_*' --test 'random_*' --test trace_golden 2>&1 | tee "$out/tests.txt"
cargo run --release -p bv-benches -- runtime --rounds 5 --python "$(command -v python3)" --out "$out/benchmarks.md" 2>&1 | tee "$out/bench.txt"
