#!/usr/bin/env bash
# One-shot GPU check for a borrowed CUDA machine, about 4 minutes in all:
#   1. the CUDA tests (pytest -m cuda; synthetic frames, no PyAV needed),
#   2. the GPU benchmark: torch CUDA fp32/fp16, CUDA graphs and eager, the fast
#      and the quality architecture at 1080p and 720p, batch 1 plus a batch-8 throughput figure at
#      1080p, timed with CUDA events,
#   3. where `import tensorrt` works: TensorRT FP16 and INT8 engines of both architectures at 1080p
#      and 720p (the engine builds take minutes the first time; they land in the engine cache).
# Results go to $OUT (default ./gpu-check): env.txt, cuda-tests.txt, bench-cudagraph/, bench-eager/
# and bench-tensorrt/ (bench.json + bench.md each).
# Uses the machine's python3 with PYTHONPATH=. (no install needed): torch with CUDA, numpy, onnx,
# onnxruntime, opencv, rich are enough; PyAV, matplotlib and pytest are optional.
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
OUT="${OUT:-$PWD/gpu-check}"
PY="${PYTHON:-python3}"
mkdir -p "$OUT"
# Derived artifacts (the random-init quality model, ONNX exports) stay out of the user's cache.
export STYLECAST_CACHE="${STYLECAST_CACHE:-$(mktemp -d)}"
start=$SECONDS

{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv || echo "nvidia-smi failed"
  "$PY" - <<'EOF'
import platform, torch
print("python", platform.python_version(), "| torch", torch.__version__, "| CUDA", torch.version.cuda,
      "| cuDNN", torch.backends.cudnn.version(), "| GPU", torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
for name in ("numpy", "onnxruntime", "cv2", "av", "tensorrt", "pytest", "matplotlib", "rich"):
    try:
        module = __import__(name)
        print(f"{name} {getattr(module, '__version__', '?')}")
    except ImportError:
        print(f"{name} absent")
EOF
} 2>&1 | tee "$OUT/env.txt"

echo "== 1/3 CUDA tests ($((SECONDS - start)) s)"
if "$PY" -c "import pytest" 2>/dev/null; then
  # Test modules that need packages this machine lacks (PyAV, hypothesis) fail to import; the CUDA
  # tests in the others still run.
  timeout 60 "$PY" -m pytest -q -m cuda -p no:cacheprovider --continue-on-collection-errors tests/ 2>&1 |
    tee "$OUT/cuda-tests.txt" | tail -n 25
  echo "pytest exit code: ${PIPESTATUS[0]}" | tee -a "$OUT/cuda-tests.txt"
else
  echo "pytest is not installed here: CUDA tests skipped" | tee "$OUT/cuda-tests.txt"
fi

echo "== 2/3 GPU benchmark ($((SECONDS - start)) s)"
# The full CLI imports every sub-command; if one of them cannot import here, run bench on its own.
if "$PY" -m realtime --help >/dev/null 2>"$OUT/cli-import.txt"; then
  bench=("$PY" -m realtime bench)
else
  echo "the stylecast CLI does not import here (see cli-import.txt); running bench alone"
  bench=("$PY" -c "import sys; from realtime import cli; cli.COMMAND_MODULES = {'benchmarks.cli': 'bench'}; sys.exit(cli.main(sys.argv[1:]))" bench)
fi
# Two runs, so that a time-out in the second keeps the first's files. SIGINT makes bench write what it
# has measured so far. On an H200 the two take about 35 s and 20 s (estimated from shorter runs).
common=(--device cuda --backends torch --precisions fp32,fp16 --archs fast,quality --resolutions 1080p,720p
  --seconds 0.5 --min-iters 20 --warmup 3 --no-pipeline --no-quality --no-peer --no-plots)
timeout -s INT 100 "${bench[@]}" "${common[@]}" --cuda-graphs on --batch-sizes 1,8 -o "$OUT/bench-cudagraph" 2>&1 |
  tee "$OUT/bench-cudagraph.log"
echo "bench (CUDA graphs) exit code: ${PIPESTATUS[0]} ($((SECONDS - start)) s)" | tee -a "$OUT/bench-cudagraph.log"
timeout -s INT 60 "${bench[@]}" "${common[@]}" --cuda-graphs off -o "$OUT/bench-eager" 2>&1 | tee "$OUT/bench-eager.log"
echo "bench (eager) exit code: ${PIPESTATUS[0]} ($((SECONDS - start)) s in all)" | tee -a "$OUT/bench-eager.log"

echo "== 3/3 TensorRT engines ($((SECONDS - start)) s)"
if "$PY" -c "import tensorrt" 2>/dev/null; then
  trt=(--device cuda --backends tensorrt --precisions fp16,int8 --archs fast,quality --resolutions 1080p,720p
    --seconds 0.5 --min-iters 20 --warmup 3 --no-pipeline --no-quality --no-peer --no-plots)
  timeout -s INT 420 "${bench[@]}" "${trt[@]}" -o "$OUT/bench-tensorrt" 2>&1 | tee "$OUT/bench-tensorrt.log"
  echo "bench (TensorRT) exit code: ${PIPESTATUS[0]} ($((SECONDS - start)) s in all)" | tee -a "$OUT/bench-tensorrt.log"
else
  echo "tensorrt does not import here: no engine latency measured" | tee "$OUT/bench-tensorrt.log"
fi
