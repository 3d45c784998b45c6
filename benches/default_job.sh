#!/usr/bin/env bash
# The default job beside JAX/Flax/Optax, interleaved (bv, JAX, bv, JAX, ...), for the
# "default job" section of docs/benchmarks.md. Needs a release build of bv-train and
# benches/setup_jax.sh's venv. Usage: benches/default_job.sh [ROUNDS] (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-2}
wd=$(mktemp -d)
trap 'rm -rf "$wd"' EXIT
for r in $(seq "$rounds"); do
  rm -rf "$wd/bv"
  s=$(date +%s.%N)
  ./target/release/bv-train --config configs/fashion_mnist_vit.ron --workdir "$wd/bv" > "$wd/bv.log" 2>&1
  e=$(date +%s.%N)
  acc=$(grep -o '"test/prec@1": [0-9.]*' "$wd/bv/big_vision_metrics.txt" | tail -1)
  echo "round $r bv wall_s $(echo "$e - $s" | bc) $acc load $(cut -d' ' -f1 /proc/loadavg)"
  echo "round $r jax $(benches/.venv/bin/python benches/jax/fashion_mnist.py | tail -1) load $(cut -d' ' -f1 /proc/loadavg)"
done
