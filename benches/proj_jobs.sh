#!/usr/bin/env bash
# The project jobs on Fashion-MNIST (image-text, distillation, FlexiViT, GSAM) beside the same
# recipes in JAX with big_vision's own code, interleaved (bv, JAX, bv, JAX, ...), for the
# "Project trainers" and "Image-text jobs" sections of docs/benchmarks.md.
#
#   PYTHON=/path/to/venv/bin/python PYTHONPATH=/path/to/big_vision \
#     benches/proj_jobs.sh [ROUNDS] [JOB ...]
#
# JOB: teacher lit siglip student distill flexi gsam (default: all, in that order). The
# teacher is the default job; its export (workdirs/fmnist_vit.npz) is what lit and distill
# load, so it runs first when it is missing. Needs a release build of bv-train, JAX, Flax,
# Optax and TensorFlow in $PYTHON, and Debian's Fashion-MNIST IDX files under
# /usr/share/datasets/fashion-mnist (the JAX scripts read them; bv fetches its own copy).
# One line per run on standard output: job, side, wall seconds, accuracy, load average;
# logs and workdirs under $OUT (default bench_out/).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-1}
shift || true
jobs=("$@")
((${#jobs[@]})) || jobs=(teacher lit siglip student distill flexi gsam)
python=${PYTHON:-python3}
out=${OUT:-bench_out}
bv=${BV_TRAIN:-target/release/bv-train}
mkdir -p "$out" workdirs

# The accuracy keys of the last line of a bv workdir's metrics, as "key=value" pairs.
bv_accuracy() {
  "$python" - "$1/big_vision_metrics.txt" <<'PY'
import json, sys
last = {}
for line in open(sys.argv[1]):
    last.update(json.loads(line))
print(" ".join(f"{k}={v:.4f}" for k, v in sorted(last.items())
               if k.endswith(("accuracy", "prec@1", "agree@1")) and isinstance(v, float)))
PY
}

# run_bv JOB ROUND CONFIG [ARGS...]: one bv run from an empty workdir.
run_bv() {
  local job=$1 round=$2 config=$3 wd="$out/$1_bv_$2"
  shift 3
  rm -rf "$wd"
  local start end
  start=$(date +%s.%N)
  if ! "$bv" --config "$config" --workdir "$wd" "$@" > "$out/$job.bv.$round.log" 2>&1; then
    echo "$job bv round $round FAILED: see $out/$job.bv.$round.log"
    return
  fi
  end=$(date +%s.%N)
  printf '%s bv round %s wall_s %.1f %s load %s\n' "$job" "$round" "$(echo "$end - $start" | bc)" \
    "$(bv_accuracy "$wd")" "$(cut -d' ' -f1 /proc/loadavg)"
}

# run_jax JOB ROUND SCRIPT [ARGS...]: one JAX run; its last line is a JSON summary.
run_jax() {
  local job=$1 round=$2
  shift 2
  if ! "$python" "$@" > "$out/$job.jax.$round.log" 2>&1; then
    echo "$job jax round $round FAILED: see $out/$job.jax.$round.log"
    return
  fi
  printf '%s jax round %s %s load %s\n' "$job" "$round" "$(tail -1 "$out/$job.jax.$round.log")" \
    "$(cut -d' ' -f1 /proc/loadavg)"
}

teacher=workdirs/fmnist_vit.npz
for r in $(seq "$rounds"); do
  for job in "${jobs[@]}"; do
    case $job in
      teacher)
        run_bv teacher "$r" configs/fashion_mnist_vit.ron
        "$bv" export "$out/teacher_bv_$r" --out "$teacher.tmp" >/dev/null && mv "$teacher.tmp" "$teacher"
        run_jax teacher "$r" benches/jax/fashion_mnist.py ;;
      lit)
        run_bv lit "$r" configs/proj/image_text/lit_fashion_mnist.ron
        run_jax lit "$r" benches/jax/image_text_fashion_mnist.py --job lit --init "$teacher" ;;
      siglip)
        run_bv siglip "$r" configs/proj/image_text/siglip_fashion_mnist.ron
        run_jax siglip "$r" benches/jax/image_text_fashion_mnist.py --job siglip ;;
      student)
        run_bv student "$r" configs/proj/distill/fashion_mnist_student.ron
        run_jax student "$r" benches/jax/proj_fashion_mnist.py student ;;
      distill)
        run_bv distill "$r" configs/proj/distill/fashion_mnist_distill.ron
        run_jax distill "$r" benches/jax/proj_fashion_mnist.py distill "$teacher" ;;
      flexi)
        run_bv flexi "$r" configs/proj/flexivit/fashion_mnist_flexi.ron
        run_jax flexi "$r" benches/jax/proj_fashion_mnist.py flexi ;;
      gsam)
        run_bv gsam "$r" configs/proj/gsam/fashion_mnist_gsam.ron
        run_jax gsam "$r" benches/jax/proj_fashion_mnist.py gsam ;;
      *) echo "proj_jobs: unknown job $job (teacher lit siglip student distill flexi gsam)" >&2; exit 2 ;;
    esac
  done
done
