#!/usr/bin/env bash
# Every CUDA path once, one PASS/FAIL/SKIP line each; writes benchmarks/results/gpu.json.
# Under 5 minutes on one GPU. Without a CUDA device: prints "no CUDA device: ..." and exits 3.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
exec "$PYTHON" scripts/gpu_check.py "$@"
