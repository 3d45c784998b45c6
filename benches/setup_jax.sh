#!/usr/bin/env bash
# Creates benches/.venv with the JAX version the benchmarks compare against (pinned).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
python3 -m venv "$here/.venv"
"$here/.venv/bin/pip" install --disable-pip-version-check -q jax==0.10.2 jaxlib==0.10.2 numpy
"$here/.venv/bin/python" -c 'import jax; print("JAX", jax.__version__, "ready in", "'"$here"'/.venv")'
