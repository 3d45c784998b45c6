#!/usr/bin/env bash
# Input-pipeline benchmark: bv vs tf.data on the same JPEG TFDS directory, interleaved
# A B A B, reporting medians. Needs a venv with tensorflow-cpu, tensorflow-datasets,
# scikit-image and pillow (VENV, default /tmp/bvbench).
# Usage: bv-train/benches/run.sh [WORKDIR] [ROUNDS] [BATCHES]
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK=${1:-/tmp/bv-pipeline-bench}
ROUNDS=${2:-5}
BATCHES=${3:-40}
VENV=${VENV:-/tmp/bvbench}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target-data}
BENCH_FEATURES=${BENCH_FEATURES:-}
cargo build --release -q -p bv-train --bench pipeline ${BENCH_FEATURES:+--features $BENCH_FEATURES}
BIN=$(ls -t "$CARGO_TARGET_DIR"/release/deps/pipeline-* | grep -v '\.d$' | head -1)
if [ ! -d "$WORK/data/bv_jpeg_bench/1.0.0" ]; then
  "$VENV/bin/python" bv-train/benches/make_jpegs.py "$WORK/jpegs" 512
  "$BIN" make "$WORK/jpegs" "$WORK/data"
fi
: > "$WORK/results.jsonl"
for r in $(seq "$ROUNDS"); do
  "$BIN" run "$WORK/data" 2 "$BATCHES" | tee -a "$WORK/results.jsonl"
  TF_CPP_MIN_LOG_LEVEL=2 "$VENV/bin/python" bv-train/benches/pipeline_tf.py "$WORK/data" "$BATCHES" 2>/dev/null | tee -a "$WORK/results.jsonl"
done
"$VENV/bin/python" - "$WORK/results.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(key):
    return {k: statistics.median(r[key] for r in rows if r["impl"] == k) for k in ("bv", "tf.data")}
ips, cpu = med("images_per_sec"), med("cpu_ms_per_image")
print(json.dumps({"median_images_per_sec": ips, "ratio_bv_over_tf": ips["bv"] / ips["tf.data"],
                  "median_cpu_ms_per_image": cpu,
                  "cpu_ratio_tf_over_bv": cpu["tf.data"] / cpu["bv"]}))
PY
