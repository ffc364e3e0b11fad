#!/usr/bin/env bash
# One device call (<= 9 minutes on a lent H100/H200) that trains both shipped models, evaluates them
# and leaves everything in $OUT. Prepare the carried photo set here first (the tree that travels is at
# most 64 MiB; the photos at short side 256 are about 30 MB):
#   python -m train.prepare ../shared/data/photos .carry/photos --short-side 256 --quality 85
#   tar -czf .carry/photos.tar.gz -C .carry photos && rm -r .carry/photos
# then run it with the device tool: command "bash train/gpu_recipe.sh", carry [".carry"], timeout 560.
# Each model trains for MINUTES (default 6.5) of wall-clock time, both at once; eval follows.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-runs/recipe}"
MINUTES="${MINUTES:-6.5}"
mkdir -p "$OUT"
if [ ! -d .carry/photos ]; then
    tar -xzf .carry/photos.tar.gz -C .carry
fi
# The device image has torch, numpy, pillow, onnx, opencv and tqdm but not this package: run from the tree.
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/gpu.txt" 2>&1 || true
python3 -m train.recipe --data .carry/photos --out "$OUT" --minutes "$MINUTES" --device cuda
