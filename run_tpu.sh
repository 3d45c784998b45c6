#!/usr/bin/env bash
# Runs a bv command on a Cloud TPU VM worker, as big_vision's run_tpu.sh does.
#
# Launch on every worker of a slice at once:
#   gcloud compute tpus tpu-vm ssh $NAME --zone=$ZONE --worker=all \
#     --command "git clone https://.../bv && cd bv && bash run_tpu.sh bv-train --config configs/vit_s16_i1k.ron --workdir gs-or-local-dir"
#
# On first use it installs what a bare TPU VM lacks: a Rust toolchain (rustup) and the TPU
# PJRT plugin (`pip install libtpu`); then it builds bv-train in release mode once. Each
# worker finds its place in the job from TPU_WORKER_HOSTNAMES / TPU_WORKER_ID (set by the
# TPU VM runtime); worker 0 hosts the coordination service on port 8482. Set
# BV_PREBUILT=/path/to/bv-train to skip the build and use a binary copied to the workers.
set -euo pipefail
cd "$(dirname "$0")"

if [[ $# -eq 0 ]]; then
  echo "usage: bash run_tpu.sh bv-train --config FILE --workdir DIR [key=value ...]" >&2
  exit 2
fi

if ! python3 -c 'import libtpu' 2>/dev/null; then
  echo "run_tpu.sh: installing libtpu (the TPU PJRT plugin)"
  python3 -m pip install --user --upgrade libtpu
fi

bin=${BV_PREBUILT:-}
if [[ -z "$bin" ]]; then
  if ! command -v cargo >/dev/null; then
    echo "run_tpu.sh: installing a Rust toolchain with rustup"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    # shellcheck disable=SC1091
    source "$HOME/.cargo/env"
  fi
  cargo build --release -p bv-train
  bin=target/release/bv-train
fi

# The TPU VM runtime sets TPU_WORKER_HOSTNAMES and TPU_WORKER_ID; bv reads them (see
# bv_core::distributed::ProcessInfo). The first word of the command names the binary.
shift
exec env TFDS_DATA_DIR="${TFDS_DATA_DIR:-$HOME/tensorflow_datasets}" BV_PLATFORM=tpu "$bin" "$@"
