"""INT8 (Q/DQ, ONNX Runtime) against FP32 ONNX Runtime on the CPU: speed and quality, one JSON file.

    python -m benchmarks.int8_cpu --out int8_cpu.json [--model M] [--size 640x360] [--threads 2]

Both sessions run the same frames alternately (FP32, INT8, FP32, ...), so a neighbour's load on a
shared machine hits both alike; the speed-up is the median of the per-pair ratios, next to the ratio
of the medians. Thread spinning is off in both sessions: one session's spinning threads would
otherwise steal the cores from the other's run. Quality figures are the calibration report's
(held-out PSNR/SSIM, clip flicker).

The file also holds this CPU's INT8 ceilings, which say how much any model could gain here:

* a chain of four 3x3 convolutions with ReLU (no norms, nothing at full resolution: the best case
  for a convolutional generator) on the 1/4-resolution plane: at the generator's width quantized
  the same way and with uint8 activations (the chain's own best case), and at twice the width. No
  model of those widths gains more from INT8 here than that chain;
* one large matrix product, FP32 ``MatMul`` against ``MatMulInteger`` on uint8 x int8 (the form
  x86 INT8 kernels run fastest): the CPU's INT8 arithmetic advantage with nothing else in the way.
  CPUs with 8-bit dot-product instructions (VNNI, AMX; listed under ``environment.cpu_isa``)
  should have a larger one than CPUs with plain AVX2, where it was measured.
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
from realtime.ort_session import open_session

log = logging.getLogger(__name__)


def measure(
    fp32: Path, int8: Path, frames: list[np.ndarray], num_styles: int, threads: int, iters: int, warmup: int = 5
) -> dict[str, Any]:
    from calibration.quantize import model_feeds

    feeds = [model_feeds(f, np.eye(num_styles, dtype=np.float32)[i % num_styles]) for i, f in enumerate(frames)]
    return _alternate(fp32, int8, feeds, threads, iters, warmup)


Feeds = list[dict[str, np.ndarray]]


def _alternate(
    fp32: Path | bytes,
    int8: Path | bytes,
    feeds: Feeds,
    threads: int,
    iters: int,
    warmup: int,
    int8_feeds: Feeds | None = None,
) -> dict[str, Any]:
    """Time two graphs alternately; ``int8_feeds`` where the INT8 graph takes other inputs than ``feeds``."""
    runs = {"fp32": (open_session(fp32, threads=threads), feeds), "int8": (open_session(int8, threads=threads), int8_feeds or feeds)}
    times: dict[str, list[float]] = {"fp32": [], "int8": []}
    for i in range(warmup + iters):
        for name, (session, inputs) in runs.items():
            t0 = time.perf_counter()
            session.run(None, inputs[i % len(inputs)])
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


def conv_chain_ceiling(
    channels: int, size: tuple[int, int], threads: int, iters: int, unsigned: bool = False
) -> dict[str, Any]:
    """FP32 against INT8 for four ``channels``-wide 3x3 conv + ReLU layers on a ``size`` (W, H) plane.

    Quantized as stylecast quantizes (signed symmetric activations, TensorRT's form) or, with
    ``unsigned``, with asymmetric uint8 activations: ONNX Runtime then folds each ReLU into the
    quantization range and chains the INT8 convolutions without float passes between them, the best
    case on x86 for a chain (not for the generator, whose norms sit between its convolutions).
    """
    import tempfile
    import warnings

    import torch
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    from calibration.quantize import QDQ_OPTIONS, quiet_onnxruntime

    torch.manual_seed(0)
    chain = torch.nn.Sequential(
        *[m for _ in range(4) for m in (torch.nn.Conv2d(channels, channels, 3, padding=1), torch.nn.ReLU())]
    )
    x = torch.rand(1, channels, size[1], size[0])
    with tempfile.TemporaryDirectory() as tmp:
        fp32, int8 = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's deprecation notice
            torch.onnx.export(chain.eval(), (x,), str(fp32), input_names=["x"], dynamo=False)
        feed = {"x": x.numpy()}
        with quiet_onnxruntime():
            quantize_static(
                str(fp32),
                str(int8),
                _OneFeed(feed),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8 if unsigned else QuantType.QInt8,
                weight_type=QuantType.QInt8,
                extra_options={**QDQ_OPTIONS, "ActivationSymmetric": not unsigned},
            )
        speed = _alternate(fp32, int8, [feed], threads, iters, warmup=5)
    return {
        "channels": channels,
        "plane": list(size),
        "activations": "uint8 asymmetric" if unsigned else "int8 symmetric",
        **speed,
    }


def gemm_ceiling(n: int, threads: int, iters: int) -> dict[str, Any]:
    """FP32 ``MatMul`` against uint8 x int8 ``MatMulInteger`` for one ``n`` x ``n`` x ``n`` product."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)

    def graph(op: str, x_type: int, out_type: int, weight: np.ndarray) -> bytes:
        nodes = [helper.make_node(op, ["x", "w"], ["y"])]
        io = (
            [helper.make_tensor_value_info("x", x_type, [n, n])],
            [helper.make_tensor_value_info("y", out_type, [n, n])],
        )
        g = helper.make_graph(nodes, op, *io, initializer=[numpy_helper.from_array(weight, "w")])
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()

    fp32 = graph("MatMul", TensorProto.FLOAT, TensorProto.FLOAT, rng.standard_normal((n, n), dtype=np.float32))
    int8 = graph("MatMulInteger", TensorProto.UINT8, TensorProto.INT32, rng.integers(-127, 128, (n, n), dtype=np.int8))
    speed = _alternate(
        fp32,
        int8,
        [{"x": rng.standard_normal((n, n), dtype=np.float32)}],
        threads,
        iters,
        warmup=3,
        int8_feeds=[{"x": rng.integers(0, 256, (n, n), dtype=np.uint8)}],
    )
    ops = 2 * n**3 / 1e9
    return {
        "size": n,
        "fp32_gflops": ops / speed["fp32_ms"]["p50"] * 1e3,
        "int8_gops": ops / speed["int8_ms"]["p50"] * 1e3,
        **speed,
    }


def main(argv: list[str] | None = None) -> int:
    from calibration.frames import read_frames
    from realtime.artifacts import int8_model_path, onnx_model_path
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
    width = info.config.channels
    ceiling = [
        conv_chain_ceiling(c, plane, args.threads, args.iters, unsigned)
        for c, unsigned in ((width, False), (width, True), (2 * width, False))
    ]
    gemm = gemm_ceiling(1024, args.threads, min(args.iters, 30))
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
        "gemm_ceiling": gemm,
        "environment": collect_environment(),
    }
    args.out.write_text(json.dumps(result, indent=2))
    print(
        f"{w}x{h}, {args.threads} threads: FP32 {speed['fp32_ms']['p50']:.1f} ms, INT8 {speed['int8_ms']['p50']:.1f} ms "
        f"(median), speed-up {speed['speedup_median_of_pairs']:.2f}x; INT8 PSNR {report['figures']['psnr_db']:.2f} dB"
    )
    for c in ceiling:
        print(
            f"ceiling, 4 conv3x3+ReLU at {c['channels']} channels on {c['plane'][0]}x{c['plane'][1]}, {c['activations']}: "
            f"FP32 {c['fp32_ms']['p50']:.2f} ms, INT8 {c['int8_ms']['p50']:.2f} ms, speed-up {c['speedup_median_of_pairs']:.2f}x"
        )
    print(
        f"ceiling, {gemm['size']}^3 matrix product: FP32 {gemm['fp32_gflops']:.0f} GFLOP/s, uint8 x int8 {gemm['int8_gops']:.0f} GOP/s, "
        f"speed-up {gemm['speedup_median_of_pairs']:.2f}x; CPU features: {', '.join(result['environment']['cpu_isa'] or ['unknown'])}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
