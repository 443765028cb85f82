#!/usr/bin/env bash
# GPU benchmark in one step, for a machine with CUDA: prints and writes bench/results/gpu.json.
#   bench/gpu.sh                 # from the repository root; PYTHON=... to choose the interpreter
#   bench/gpu.sh --dry-run       # the same steps on the CPU with 64 images: checks the script anywhere
# Checks that the GPU's features equal the CPU's (tests/test_backbone.py -k gpu), then reports the forward ceiling
# (torchvision eager, folded; fp32, bf16), extract and predict img/s and their ratios, the CPU decoding pipeline
# alone, and GPU decoding (torchvision.io.decode_jpeg(device="cuda")) alone.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || command -v python3 )}"
"$PYTHON" - <<'PY'
import torch, torchvision
print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, cuda {torch.cuda.is_available()}",
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
PY
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
# The engine on the GPU against the CPU (skipped where there is no CUDA); the figures need them to hold.
"$PYTHON" -m pytest -q -p no:cacheprovider tests/test_backbone.py -k gpu
exec "$PYTHON" -m bench.gpu "$@"
