#!/usr/bin/env bash
# Step time of the default job's ViT with dtype_mm float32 and bfloat16 on CPU, runs
# interleaved (f32, bf16, f32, bf16, ...): bv-train (release) on configs/fashion_mnist_vit.ron
# for 300 steps, the per-step time read from big_vision_metrics.txt (img/sec/core of the
# intervals after step 50: input pipeline included, compilation excluded); and, with a
# Python that has JAX and big_vision (BV_PYTHON, PYTHONPATH), big_vision's own ViT of the
# same size (benches/jax/dtype_mm_step.py, input pipeline excluded).
#   benches/dtype_mm_cpu.sh ROUNDS
set -euo pipefail
rounds=${1:-3}
bin=target/release/bv-train
tmp=$(mktemp -d)
for r in $(seq "$rounds"); do
  for d in float32 bfloat16; do
    wd="$tmp/$d-$r"
    "$bin" --config configs/fashion_mnist_vit.ron --workdir "$wd" \
      --set "model.dtype_mm=\"$d\"" --set total_epochs=None --set total_steps=300 \
      --set schedule.warmup_steps=10 --set log_training_steps=50 \
      --set evals.test.log_steps=300 >/dev/null
    python3 - "$wd/big_vision_metrics.txt" "$d" "$r" <<'PY'
import json, statistics, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
ms = [128e3 / r["img/sec/core"] for r in recs if r.get("step", 0) > 50 and "img/sec/core" in r]
loss = [r["training_loss"] for r in recs if "training_loss" in r][-1]
print(json.dumps({"side": "bv", "dtype_mm": sys.argv[2], "round": int(sys.argv[3]),
                  "median_ms": statistics.median(ms), "loss_300": loss}))
PY
    if [ -n "${BV_PYTHON:-}" ]; then
      "$BV_PYTHON" benches/jax/dtype_mm_step.py --dtype_mm "$d" --steps 100 2>/dev/null |
        sed "s/^{/{\"side\": \"jax\", \"round\": $r, /"
    fi
  done
done
rm -rf "$tmp"
