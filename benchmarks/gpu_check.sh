#!/usr/bin/env bash
# One-shot GPU check for a borrowed CUDA machine: at most 9 minutes, every part under its own
# timeout, every part writing JSON + Markdown into $OUT as it goes (a time-out keeps what it measured).
#   env.txt            GPU, driver, torch/CUDA/cuDNN/Triton versions, which optional packages import
#   startup-cold.*     the compiled torch backend (`--compile`: inductor max-autotune kernels inside the
#                      backend's CUDA graphs) of the quality and the fast model, 1080p fp16 batch 1, on an
#                      empty compile cache: first-start compile time, latency, PSNR against eager
#   startup-warm.*     the same in a fresh process on the now warm cache: warm-start compile time
#   cuda-tests.txt     the CUDA tests (pytest -m cuda; synthetic frames, no PyAV needed; their compile
#                      caches live in pytest's temporary folder)
#   streams.*          the most 1080p30 quality-model streams that hold 30 fps with p99 < 33 ms
#   profile.*          per-layer device time of the quality model at 1080p fp16 (eager as trained, eager
#                      with the phase rewrite); profile-compiled.txt: the compiled model's kernel table
#   layouts.*          quality 1080p fp16 b1: channels_last both ways, inductor's own CUDA graphs
#   sweep-eager.*      eager at 1080p/720p/2160p, both models, fp16 and bf16, batch 1 and 8
#   sweep-compiled.*   the same compiled, 1080p first, in the time that is left: each new shape compiles
#                      (tens of seconds cold); the notes say which configurations it did not reach
#   summary.md         the issue's targets, met or not
# Each sweep row: first call (compile + capture), frame latency uint8 host -> uint8 host (p50/p99),
# forward alone (the infer stage's device time), fps, PSNR vs eager at the same precision and vs fp32.
# Uses the machine's python3 with PYTHONPATH=. (no install needed): torch with CUDA (and Triton),
# numpy, onnx, onnxruntime, opencv are enough; PyAV, TensorRT, matplotlib and pytest are optional.
# STYLECAST_GPU_CHECK_SMOKE=1 runs every part with tiny CPU settings (checks the plumbing only);
# STYLECAST_GPU_CHECK_SLOWDOWN=N multiplies every timeout and the whole budget (for slow or busy CPUs).
# STYLECAST_GPU_CHECK_CACHE=DIR keeps the compile cache in DIR (default: a fresh one, so that the
# first start really is one); a second call on the same DIR gets further through the sweeps.
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
OUT="${OUT:-$PWD/gpu-check}"
PY="${PYTHON:-python3}"
mkdir -p "$OUT"
export STYLECAST_CACHE="${STYLECAST_GPU_CHECK_CACHE:-$(mktemp -d)}"
SMOKE=()
[ "${STYLECAST_GPU_CHECK_SMOKE:-0}" = 1 ] && SMOKE=(--smoke --seconds 0.05)
# The whole call stays under 9 minutes: each part's timeout is its nominal share, or less when
# earlier parts ran long; parts that would get under 15 s are skipped and say so.
SLOW=${STYLECAST_GPU_CHECK_SLOWDOWN:-1}
DEADLINE=$((525 * SLOW))
start=$SECONDS

left() { echo $((DEADLINE - (SECONDS - start))); }
share() { local nominal=$(($1 * SLOW)) rest; rest=$(left); echo $((nominal < rest ? nominal : rest)); }

part() {  # part NAME NOMINAL_SECONDS ARGS...: one compiled_bench sub-command under its timeout
  local name=$1 limit
  limit=$(share "$2")
  shift 2
  if [ "$limit" -lt 15 ]; then
    echo "== $name skipped: $(left) s left of the ${DEADLINE} s budget" | tee "$OUT/$name.log"
    return
  fi
  echo "== $name (at $((SECONDS - start)) s, timeout $limit s)"
  timeout -k 10 -s INT "$limit" "$PY" -m benchmarks.compiled_bench "${SMOKE[@]}" --out "$OUT" "$@" >"$OUT/$name.log" 2>&1
  echo "$name exit code: $? ($((SECONDS - start)) s)" | tee -a "$OUT/$name.log"
}

{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv || echo "nvidia-smi failed"
  echo "compile cache: $STYLECAST_CACHE ($(find "$STYLECAST_CACHE" -type f 2>/dev/null | wc -l) files at start)"
  timeout 30 "$PY" - <<'EOF'
import platform, torch
print("python", platform.python_version(), "| torch", torch.__version__, "| CUDA", torch.version.cuda,
      "| cuDNN", torch.backends.cudnn.version(), "| GPU", torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
for name in ("triton", "numpy", "onnxruntime", "cv2", "av", "tensorrt", "pytest", "matplotlib"):
    try:
        module = __import__(name)
        print(f"{name} {getattr(module, '__version__', '?')}")
    except ImportError:
        print(f"{name} absent")
EOF
} 2>&1 | tee "$OUT/env.txt"

grid=(--archs quality,fast --resolutions 1080p,720p,2160p --precisions fp16,bf16 --batches 1,8)
startup=(sweep --archs quality,fast --resolutions 1080p --precisions fp16 --batches 1 --variants compiled)
part startup-cold 110 "${startup[@]}" --name startup-cold
part startup-warm 40 "${startup[@]}" --name startup-warm
echo "== cuda-tests ($((SECONDS - start)) s)"
if [ ${#SMOKE[@]} -gt 0 ]; then
  echo "smoke mode: CUDA tests not run" | tee "$OUT/cuda-tests.txt"
elif "$PY" -c "import pytest" 2>/dev/null; then
  # Test modules that need packages this machine lacks (PyAV, hypothesis) fail to import; the CUDA
  # tests in the others still run.
  timeout -k 10 "$(share 80)" "$PY" -m pytest -q -m cuda -p no:cacheprovider --continue-on-collection-errors tests/ 2>&1 |
    tee "$OUT/cuda-tests.txt" | tail -n 25
  echo "pytest exit code: ${PIPESTATUS[0]}" | tee -a "$OUT/cuda-tests.txt"
else
  echo "pytest is not installed here: CUDA tests skipped" | tee "$OUT/cuda-tests.txt"
fi

part streams 70 streams --archs quality --variants compiled,eager --resolution 1080p --precision fp16 \
  --max-batch 4 --max-streams 16 --seconds 1.5
part profile 35 profile --resolution 1080p --precision fp16 --iters 10
part layouts 50 sweep --name layouts --archs quality --resolutions 1080p --precisions fp16 --batches 1 \
  --variants eager-cl,compiled-cl,compiled-igraphs --time-limit 30
part sweep-eager 70 sweep --name sweep-eager "${grid[@]}" --variants eager --time-limit 60
more=$(($(left) - 10 * SLOW))
part sweep-compiled $((more / SLOW)) sweep --name sweep-compiled "${grid[@]}" --variants compiled \
  --time-limit $((more - 35 * SLOW))
timeout $((10 * SLOW)) "$PY" -m benchmarks.compiled_bench "${SMOKE[@]}" --out "$OUT" summary \
  --sweeps startup-cold,startup-warm,layouts,sweep-eager,sweep-compiled 2>&1 | tee "$OUT/summary.log"
echo "gpu_check done in $((SECONDS - start)) s; results in $OUT"
