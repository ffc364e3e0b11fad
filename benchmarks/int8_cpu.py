"""INT8 (Q/DQ, ONNX Runtime) against FP32 ONNX Runtime on the CPU: speed and quality, one JSON file.

    python -m benchmarks.int8_cpu --out int8_cpu.json [--model M] [--size 640x360] [--threads 2]

Both sessions run the same frames alternately (FP32, INT8, FP32, ...), so a neighbour's load on a
shared machine hits both alike; the speed-up is the median of the per-pair ratios, next to the ratio
of the medians. Thread spinning is off in both sessions: one session's spinning threads would
otherwise steal the cores from the other's run. Quality figures are the calibration report's
(held-out PSNR/SSIM, clip flicker).

The file also holds this CPU's INT8 ceiling: a chain of four 3x3 convolutions with ReLU (no norms,
nothing at full resolution: the best case for INT8) at the generator's width and at twice it, on the
1/4-resolution plane, quantized the same way. No model of those widths gains more from INT8 here
than that chain does.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.environment import collect_environment
from benchmarks.latency import summarize

log = logging.getLogger(__name__)


def _session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def measure(fp32: Path, int8: Path, frames: list[np.ndarray], num_styles: int, threads: int, iters: int, warmup: int = 5) -> dict[str, Any]:
    from calibration.quantize import model_feeds

    feeds = [model_feeds(f, np.eye(num_styles, dtype=np.float32)[i % num_styles]) for i, f in enumerate(frames)]
    return _alternate(fp32, int8, feeds, threads, iters, warmup)


def _alternate(fp32: Path, int8: Path, feeds: list[dict[str, np.ndarray]], threads: int, iters: int, warmup: int) -> dict[str, Any]:
    sessions = {"fp32": _session(fp32, threads), "int8": _session(int8, threads)}
    times: dict[str, list[float]] = {"fp32": [], "int8": []}
    for i in range(warmup + iters):
        for name, session in sessions.items():
            t0 = time.perf_counter()
            session.run(None, feeds[i % len(feeds)])
            if i >= warmup:
                times[name].append((time.perf_counter() - t0) * 1e3)
    ratios = np.asarray(times["fp32"]) / np.asarray(times["int8"])
    fp32_ms, int8_ms = summarize(times["fp32"]), summarize(times["int8"])
    return {
        "fp32_ms": fp32_ms,
        "int8_ms": int8_ms,
        "speedup_median_of_pairs": float(np.median(ratios)),
        "speedup_of_medians": fp32_ms["p50"] / int8_ms["p50"],
    }


class _OneFeed:
    """onnxruntime's CalibrationDataReader over one feed."""

    def __init__(self, feed: dict[str, np.ndarray]) -> None:
        self._feeds = iter([feed])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def conv_chain_ceiling(channels: int, size: tuple[int, int], threads: int, iters: int) -> dict[str, Any]:
    """FP32 against INT8 for four ``channels``-wide 3x3 conv + ReLU layers on a ``size`` (W, H) plane."""
    import tempfile
    import warnings

    import torch
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    from calibration.quantize import QDQ_OPTIONS, quiet_onnxruntime

    torch.manual_seed(0)
    chain = torch.nn.Sequential(*[m for _ in range(4) for m in (torch.nn.Conv2d(channels, channels, 3, padding=1), torch.nn.ReLU())])
    x = torch.rand(1, channels, size[1], size[0])
    with tempfile.TemporaryDirectory() as tmp:
        fp32, int8 = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's deprecation notice
            torch.onnx.export(chain.eval(), (x,), str(fp32), input_names=["x"], dynamo=False)
        feed = {"x": x.numpy()}
        with quiet_onnxruntime():
            quantize_static(str(fp32), str(int8), _OneFeed(feed), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, extra_options=QDQ_OPTIONS)
        speed = _alternate(fp32, int8, [feed], threads, iters, warmup=5)
    return {"channels": channels, "plane": list(size), **speed}


def main(argv: list[str] | None = None) -> int:
    from calibration import int8_model_path
    from calibration.frames import read_frames
    from realtime.backends.onnx_backend import onnx_model_path
    from realtime.modelfile import load_model

    p = argparse.ArgumentParser(prog="python -m benchmarks.int8_cpu", description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, help="a .stylecast model (default: the bundled one)")
    p.add_argument("--size", default="640x360", help="frame size WxH (default 640x360)")
    p.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads (default 2)")
    p.add_argument("--iters", type=int, default=60, help="timed runs per precision (default 60)")
    p.add_argument("--method", default="percentile", help="calibration method of the INT8 graph")
    p.add_argument("--out", type=Path, required=True, help="JSON result file")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    w, h = (int(v) for v in args.size.lower().split("x"))

    generator, info = load_model(args.model)
    fp32 = onnx_model_path(generator, info)
    int8 = int8_model_path(generator, info, method=args.method)
    frames = read_frames(None, (w, h), keep=8, tail=0)[0]
    speed = measure(fp32, int8, frames, info.config.num_styles, args.threads, args.iters)
    plane = (w // generator.cfg.multiple, h // generator.cfg.multiple)
    ceiling = [conv_chain_ceiling(c, plane, args.threads, args.iters) for c in (info.config.channels, 2 * info.config.channels)]
    report = json.loads(Path(str(int8) + ".json").read_text())
    result = {
        "model_sha256": info.sha256,
        "size": [w, h],
        "threads": args.threads,
        **speed,
        "quality": report["figures"],
        "int8_layers": report["quantized"],
        "fp32_layers": report["kept_fp"],
        "conv_chain_ceiling": ceiling,
        "environment": collect_environment(),
    }
    args.out.write_text(json.dumps(result, indent=2))
    print(
        f"{w}x{h}, {args.threads} threads: FP32 {speed['fp32_ms']['p50']:.1f} ms, INT8 {speed['int8_ms']['p50']:.1f} ms "
        f"(median), speed-up {speed['speedup_median_of_pairs']:.2f}x; INT8 PSNR {report['figures']['psnr_db']:.2f} dB"
    )
    for c in ceiling:
        print(f"ceiling, 4 conv3x3+ReLU at {c['channels']} channels on {c['plane'][0]}x{c['plane'][1]}: "
              f"FP32 {c['fp32_ms']['p50']:.2f} ms, INT8 {c['int8_ms']['p50']:.2f} ms, speed-up {c['speedup_median_of_pairs']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
