#!/usr/bin/env bash
# One prepared check for a GPU machine, in under 5 minutes: EfficientNet-B4 at 380 px on
# synthetic leaves, float32 against mixed precision, images/s and the share of time the GPU
# waited for data (bench/gpu_throughput.py prints the JSON).
#
# The machine may have no TensorFlow and no network. Then it runs under Keras' JAX backend, and
# keras, keras-tuner and optuna come from a folder of wheels made beforehand on a machine with
# network access (Python and platform of the GPU machine; see bench/README.md):
#
#   bench/gpu_check.sh [--wheels DIR] [--out FILE.json] [gpu_throughput.py options...]
#
# KERAS_BACKEND is respected; unset, it is tensorflow when TensorFlow imports, jax otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

wheels="" out=""
while [ $# -gt 0 ]; do
    case "$1" in
        --wheels) wheels="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        *) break ;;
    esac
done
python=${PYTHON:-python3}

if [ -n "$wheels" ]; then
    site=${LEAFSEARCH_SITE:-/tmp/leafsearch-site}
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" "$wheels"/*.whl
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ -z "${KERAS_BACKEND:-}" ]; then
    if "$python" -c "import tensorflow" >/dev/null 2>&1; then KERAS_BACKEND=tensorflow; else KERAS_BACKEND=jax; fi
    export KERAS_BACKEND
fi
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-3} PYTHONUNBUFFERED=1

echo "== machine" >&2
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >&2 || echo "nvidia-smi: not found" >&2
"$python" - >&2 <<'EOF'
import platform
import keras, keras_tuner, optuna
print(f"python {platform.python_version()}, keras {keras.__version__} ({keras.backend.backend()}), "
      f"keras-tuner {keras_tuner.__version__}, optuna {optuna.__version__}")
EOF

echo "== EfficientNet training throughput" >&2
result=$(timeout "${GPU_CHECK_TIMEOUT:-290}" "$python" bench/gpu_throughput.py "$@")
echo "$result"
if [ -n "$out" ]; then printf '%s\n' "$result" > "$out"; fi
