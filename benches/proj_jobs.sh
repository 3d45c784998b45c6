#!/usr/bin/env bash
# The project jobs on Fashion-MNIST (image-text, distillation, FlexiViT, GSAM) beside the same
# recipes in JAX with big_vision's own code, interleaved (bv, JAX, bv, JAX, ...), for the
# "Project trainers" and "Image-text jobs" sections of docs/benchmarks.md.
#
#   PYTHON=/path/to/venv/bin/python PYTHONPATH=/path/to/big_vision \
#     benches/proj_jobs.sh [ROUNDS] [JOB ...]
#
# JOB: teacher lit siglip student distill flexi gsam (default: all, in that order). The
# teacher is the default job; its export ($TEACHER, default workdirs/fmnist_vit.npz) is what
# lit and distill load, so it comes first. Needs a release build of bv-train, JAX, Flax,
# Optax and TensorFlow in $PYTHON, and Debian's Fashion-MNIST IDX files under
# /usr/share/datasets/fashion-mnist (the JAX scripts read them; bv fetches its own copy).
# One line per run on standard output: job, side, seed, wall seconds, accuracy, load average;
# logs and workdirs under $OUT (default bench_out/). For student, distill, flexi and gsam,
# SEED (bv: `--set seed=`) and EPOCHS (bv: `--set total_epochs=`) change the recipe on both
# sides (for the teacher, on bv's). SIDES="bv" or SIDES="jax" runs one side only.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-1}
shift || true
jobs=("$@")
((${#jobs[@]})) || jobs=(teacher lit siglip student distill flexi gsam)
python=${PYTHON:-python3}
out=${OUT:-bench_out}
bv=${BV_TRAIN:-target/release/bv-train}
sides=${SIDES:-bv jax}
seed=${SEED:-0}
export SEED=$seed
recipe=(--set "seed=$seed")
if [ -n "${EPOCHS:-}" ]; then
  export EPOCHS
  recipe+=(--set "total_epochs=$EPOCHS")
fi
mkdir -p "$out" workdirs

# runs_side SIDE: whether SIDES includes SIDE (bv or jax).
runs_side() { [[ " $sides " == *" $1 "* ]]; }

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
  local job=$1 round=$2 config=$3 run="$1.bv.seed$seed.$2"
  local wd="$out/$run"
  shift 3
  runs_side bv || return 0
  rm -rf "$wd"
  local start end
  start=$(date +%s.%N)
  if ! "$bv" --config "$config" --workdir "$wd" "$@" > "$out/$run.log" 2>&1; then
    echo "$job bv seed $seed round $round FAILED: see $out/$run.log"
    return
  fi
  end=$(date +%s.%N)
  printf '%s bv seed %s round %s wall_s %.1f %s load %s\n' "$job" "$seed" "$round" \
    "$(echo "$end - $start" | bc)" "$(bv_accuracy "$wd")" "$(cut -d' ' -f1 /proc/loadavg)"
}

# run_jax JOB ROUND SCRIPT [ARGS...]: one JAX run; its last line is a JSON summary.
run_jax() {
  local job=$1 round=$2 run="$1.jax.seed$seed.$2"
  shift 2
  runs_side jax || return 0
  if ! "$python" "$@" > "$out/$run.log" 2>&1; then
    echo "$job jax seed $seed round $round FAILED: see $out/$run.log"
    return
  fi
  printf '%s jax round %s %s load %s\n' "$job" "$round" "$(tail -1 "$out/$run.log")" \
    "$(cut -d' ' -f1 /proc/loadavg)"
}

teacher=${TEACHER:-workdirs/fmnist_vit.npz}
for r in $(seq "$rounds"); do
  for job in "${jobs[@]}"; do
    case $job in
      teacher)
        run_bv teacher "$r" configs/fashion_mnist_vit.ron "${recipe[@]}"
        if runs_side bv; then
          "$bv" export "$out/teacher.bv.seed$seed.$r" --out "$teacher.tmp" >/dev/null && mv "$teacher.tmp" "$teacher"
        fi
        run_jax teacher "$r" benches/jax/fashion_mnist.py ;;
      lit)
        run_bv lit "$r" configs/proj/image_text/lit_fashion_mnist.ron
        run_jax lit "$r" benches/jax/image_text_fashion_mnist.py --job lit --init "$teacher" ;;
      siglip)
        run_bv siglip "$r" configs/proj/image_text/siglip_fashion_mnist.ron
        run_jax siglip "$r" benches/jax/image_text_fashion_mnist.py --job siglip ;;
      student)
        run_bv student "$r" configs/proj/distill/fashion_mnist_student.ron "${recipe[@]}"
        run_jax student "$r" benches/jax/proj_fashion_mnist.py student ;;
      distill)
        run_bv distill "$r" configs/proj/distill/fashion_mnist_distill.ron "${recipe[@]}" \
          --set "teachers.prof.init=$teacher"
        run_jax distill "$r" benches/jax/proj_fashion_mnist.py distill "$teacher" ;;
      flexi)
        run_bv flexi "$r" configs/proj/flexivit/fashion_mnist_flexi.ron "${recipe[@]}"
        run_jax flexi "$r" benches/jax/proj_fashion_mnist.py flexi ;;
      gsam)
        run_bv gsam "$r" configs/proj/gsam/fashion_mnist_gsam.ron "${recipe[@]}"
        run_jax gsam "$r" benches/jax/proj_fashion_mnist.py gsam ;;
      *) echo "proj_jobs: unknown job $job (teacher lit siglip student distill flexi gsam)" >&2; exit 2 ;;
    esac
  done
done
