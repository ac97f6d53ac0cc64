#!/usr/bin/env bash
# The GPU benchmark in one command (bench/gpu_bench.py says what it measures):
#
#   bench/gpu.sh              on a CUDA machine: at most 4.5 minutes; writes
#                             bench/results/gpu-<card>.json and prints it as the last line
#   bench/gpu.sh --dry-run    the same code path on the CPU with a tiny model (about a minute)
#
# Where $OUT names a folder (the GPU lending machinery), the JSON is copied there as well.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export TOKENIZERS_PARALLELISM=false
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
status=0
timeout --kill-after=10 290 "$PYTHON" bench/gpu_bench.py "$@" || status=$?
if [ -n "${OUT:-}" ] && [ -d "${OUT}" ]; then
    cp bench/results/gpu-*.json "$OUT"/ 2>/dev/null || true
fi
exit "$status"
