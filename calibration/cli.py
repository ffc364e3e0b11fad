"""``stylecast calibrate``: build the INT8 Q/DQ graph of a model and print the quality gate's report."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from realtime.argtypes import positive_int, size_wxh

log = logging.getLogger(__name__)


def add_calibration_args(p: argparse.ArgumentParser, gate: bool = True) -> None:
    """Options shared by ``calibrate``, ``export --format onnx-int8`` and, without the gate's, ``compile``
    (whose INT8 engines use the cached INT8 graph that the default gate passed)."""
    from calibration.gate import GateThresholds
    from calibration.quantize import METHODS

    p.add_argument("--frames", help="calibration frames: a video, a folder of images or an image (default: bundled sample clip)")
    p.add_argument("--method", choices=tuple(METHODS), default="percentile", help="activation range calibration (default: percentile)")
    if not gate:
        return
    d = GateThresholds()
    p.add_argument("--min-psnr", type=float, default=d.min_psnr_db, help=f"quality gate: least PSNR of INT8 against FP32, dB (default {d.min_psnr_db})")
    p.add_argument("--min-ssim", type=float, default=d.min_ssim, help=f"quality gate: least SSIM against FP32 (default {d.min_ssim})")
    p.add_argument(
        "--max-flicker",
        type=float,
        default=d.max_flicker_increase,
        help=f"quality gate: most warping error INT8 may add on the clip, [0,1] scale (default {d.max_flicker_increase})",
    )


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "calibrate",
        help="INT8-quantize a model (explicit Q/DQ ONNX) and check it against FP32",
        description=(
            "Calibrate activation ranges on representative frames, write an explicit Q/DQ INT8 ONNX graph "
            "(for ONNX Runtime on CPUs and TensorRT on GPUs) and gate it against FP32 on held-out frames: "
            "layers that cost quality stay FP32. Without -o the result goes to the cache that "
            "`stylecast run --backend onnx --precision int8` reads."
        ),
    )
    p.add_argument("--model", type=Path, help="a .stylecast model file (default: the bundled model)")
    p.add_argument("-o", "--output", type=Path, help="output .onnx (default: the INT8 cache entry for these settings)")
    p.add_argument("--size", type=size_wxh, default=None, help="frame size WxH for calibration and the gate (default 640x360)")
    p.add_argument("--calibration-frames", type=positive_int, default=16, help="frames to calibrate on (default 16)")
    p.add_argument("--held-out", type=positive_int, default=8, help="frames the gate judges on (default 8)")
    add_calibration_args(p)
    p.set_defaults(func=run_calibrate)


def thresholds_from(args: argparse.Namespace) -> Any:
    from calibration.gate import GateThresholds

    return GateThresholds(min_psnr_db=args.min_psnr, min_ssim=args.min_ssim, max_flicker_increase=args.max_flicker)


def run_calibrate(args: argparse.Namespace) -> int:
    from calibration import calibrate, int8_cache_path
    from calibration.frames import DEFAULT_SIZE, representative_frames
    from realtime.errors import InputError
    from realtime.model import MIN_SIDE
    from realtime.modelfile import load_model

    generator, info = load_model(args.model)
    size = args.size or DEFAULT_SIZE
    if min(size) < MIN_SIDE:
        raise InputError(f"--size sides must be >= {MIN_SIDE}, got {size[0]}x{size[1]}")
    output = args.output or int8_cache_path(info, args.frames, args.method, size)
    frames = representative_frames(args.frames, size, calibration=args.calibration_frames, held_out=args.held_out)
    report = calibrate(generator, info, frames, output, method=args.method, thresholds=thresholds_from(args))
    print_report(report, output)
    return 0 if report.passed else 1


def print_report(report: Any, output: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"INT8 ({report.method}) vs FP32 on {report.frame_counts['held_out']} held-out frames")
    table.add_column("layer")
    table.add_column("precision")
    table.add_column("why")
    for name in report.quantized:
        table.add_row(name, "int8", "")
    for name, why in report.kept_fp.items():
        table.add_row(name, "fp32", why)
    console = Console()
    console.print(table)
    f, th = report.figures, report.thresholds
    console.print(f"PSNR {f.psnr_db:.2f} dB (worst frame {f.psnr_min_db:.2f}; gate >= {th.min_psnr_db})", markup=False)
    console.print(f"SSIM {f.ssim:.4f} (gate >= {th.min_ssim})", markup=False)
    if f.flicker_increase is not None:
        console.print(
            f"flicker (warping error) FP32 {f.flicker_fp32:.4f}, INT8 {f.flicker_int8:.4f}, "
            f"added {f.flicker_increase:+.4f} (gate <= {th.max_flicker_increase})",
            markup=False,
        )
    else:
        console.print("flicker: not measured (the frames are not a video clip)", markup=False)
    verdict = "passed" if report.passed else "FAILED: " + "; ".join(f.failures(th))
    console.print(f"quality gate {verdict}; {report.seconds:.0f} s", markup=False)
    print(output)
