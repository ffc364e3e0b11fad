"""The ``export``, ``calibrate`` and ``compile`` sub-commands: thin wrappers over ``realtime.artifacts``
and the exporter, with one set of flags per step of the chain (calibration's, the engine's).

``export`` is the one entry with a table of formats (``FORMATS``); ``calibrate`` and ``compile`` are
its INT8 and engine steps with every knob. Each checks its outputs against all its inputs before it
starts, and replaces an existing file only with ``--overwrite``.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from realtime import artifacts
from realtime.argtypes import finite_float, positive_int, size_wxh
from realtime.compile import DEFAULT_SHAPES, DEFAULT_WORKSPACE_GB, PRECISIONS, ROUTES, ShapeProfile, parse_shapes
from realtime.errors import InputError, ModelError, OutputError
from realtime.export import (
    MAX_OPSET,
    OPSET,
    PARITY_SHAPES,
    export_onnx,
    export_torchscript,
    verify_onnx,
    verify_torchscript,
)
from realtime.model import MIN_SIDE
from realtime.modelfile import ModelInfo, load_model
from realtime.outputs import check_output

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Format:
    name: str
    suffix: str
    description: str
    requires: str


FORMATS = {
    f.name: f
    for f in (
        Format("onnx", ".onnx", "ONNX FP32, dynamic batch/height/width (ONNX Runtime, TensorRT)", "onnx, onnxruntime"),
        Format("onnx-int8", ".int8.onnx", "explicit Q/DQ INT8 ONNX, calibrated and quality-gated", "onnxruntime"),
        Format("engine", ".engine", "TensorRT engine for this GPU (fp16/int8/best)", "tensorrt, CUDA GPU"),
        Format("torchscript", ".torchscript.pt", "traced TorchScript (libtorch hosts)", "torch"),
    )
}


# --- shared flags ------------------------------------------------------------------------------------------


def _add_common_args(p: argparse.ArgumentParser, output_help: str) -> None:
    p.add_argument("--model", type=Path, help="a .stylecast model file (default: the bundled model)")
    p.add_argument("-o", "--output", type=Path, help=output_help)
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")


def add_calibration_args(p: argparse.ArgumentParser, gate: bool = True) -> None:
    """Options of ``calibrate``, ``export --format onnx-int8`` and, without the gate's, ``compile``
    (whose INT8 engines use the cached INT8 graph that the default gate passed)."""
    p.add_argument("--frames", help="calibration frames: a video, a folder of images or an image (default: bundled sample clip)")
    methods = tuple(artifacts.CALIBRATION_METHODS)
    p.add_argument("--method", choices=methods, default="percentile", help="activation range calibration (default: percentile)")
    if not gate:
        return
    d = artifacts.GateThresholds()
    p.add_argument(
        "--min-psnr", type=finite_float, default=d.min_psnr_db, help=f"quality gate: least PSNR of INT8 against FP32, dB (default {d.min_psnr_db})"
    )
    p.add_argument("--min-ssim", type=finite_float, default=d.min_ssim, help=f"quality gate: least SSIM against FP32 (default {d.min_ssim})")
    p.add_argument(
        "--max-flicker",
        type=finite_float,
        default=d.max_flicker_increase,
        help=f"quality gate: most warping error INT8 may add on the clip, [0,1] scale (default {d.max_flicker_increase})",
    )


def thresholds_from(args: argparse.Namespace) -> artifacts.GateThresholds:
    return artifacts.GateThresholds(min_psnr_db=args.min_psnr, min_ssim=args.min_ssim, max_flicker_increase=args.max_flicker)


def _shapes_arg(text: str) -> ShapeProfile:
    try:
        return parse_shapes(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _workspace_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"workspace must be a positive number of GiB, got {text!r}")
    return value


def add_engine_args(p: argparse.ArgumentParser) -> None:
    """Options shared by ``compile`` and ``export --format engine``."""
    p.add_argument("--precision", choices=PRECISIONS, default="fp16", help="engine precision (default fp16)")
    p.add_argument(
        "--shapes",
        type=_shapes_arg,
        default=parse_shapes(DEFAULT_SHAPES),
        help=f"optimization profile MIN:OPT:MAX or min=..,opt=..,max=.. of BxCxHxW (default {DEFAULT_SHAPES})",
    )
    p.add_argument("--workspace", type=_workspace_arg, default=DEFAULT_WORKSPACE_GB, help="builder workspace limit, GiB (default 4)")
    p.add_argument("--route", choices=ROUTES, default="tensorrt", help="TensorRT Python API or torch-tensorrt dynamo (default tensorrt)")
    p.add_argument("--force", action="store_true", help="rebuild even when the engine cache has this engine")


def _inputs(info: ModelInfo, frames: str | None) -> list[Path | str]:
    assert info.path is not None  # load_model records the file it read
    return [info.path] if frames is None else [info.path, frames]


def _report_path(output: Path) -> Path:
    """The gate's JSON report beside an INT8 graph (``calibration.calibrate`` writes both)."""
    return output.with_suffix(output.suffix + ".json")


def _check_int8_outputs(output: Path, inputs: list[Path | str], overwrite: bool) -> None:
    for path in (output, _report_path(output)):
        check_output(path, inputs, overwrite, folder=False)


def print_report(report: artifacts.CalibrationReport, output: Path) -> None:
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


# --- the commands ------------------------------------------------------------------------------------------


def register(subparsers: Any) -> None:
    rows = "\n".join(f"  {f.name:<12} {f.suffix:<16} {f.description} [{f.requires}]" for f in FORMATS.values())
    export = subparsers.add_parser(
        "export",
        help="export a model to ONNX, INT8 ONNX, a TensorRT engine or TorchScript",
        description="Export a model for deployment. ONNX and TorchScript exports are checked against torch.",
        epilog="formats:\n" + rows,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_common_args(export, "output file (default: <model name><format suffix> here)")
    export.add_argument("--format", choices=tuple(FORMATS), default="onnx", help="what to export (default: onnx)")
    export.add_argument("--int8", action="store_true", help="INT8: onnx -> onnx-int8; engine -> int8 precision")
    export.add_argument("--half", action="store_true", help="FP16 (engine only: --format engine --half)")
    export.add_argument("--opset", type=int, default=OPSET, help=f"ONNX opset, {OPSET} to {MAX_OPSET} (default {OPSET})")
    export.add_argument("--no-verify", action="store_true", help="skip the parity check against torch")
    add_calibration_args(export)
    add_engine_args(export)
    export.set_defaults(func=run_export)

    calibrate = subparsers.add_parser(
        "calibrate",
        help="INT8-quantize a model (explicit Q/DQ ONNX) and check it against FP32",
        description=(
            "Calibrate activation ranges on representative frames, write an explicit Q/DQ INT8 ONNX graph "
            "(for ONNX Runtime on CPUs and TensorRT on GPUs) and gate it against FP32 on held-out frames: "
            "layers that cost quality stay FP32. Without -o the result goes to the cache that "
            "`stylecast run --backend onnx --precision int8` reads."
        ),
    )
    _add_common_args(calibrate, "output .onnx (default: the INT8 cache entry for these settings)")
    calibrate.add_argument("--size", type=size_wxh, default=None, help="frame size WxH for calibration and the gate (default 640x360)")
    calibrate.add_argument("--calibration-frames", type=positive_int, default=16, help="frames to calibrate on (default 16)")
    calibrate.add_argument("--held-out", type=positive_int, default=8, help="frames the gate judges on (default 8)")
    add_calibration_args(calibrate)
    calibrate.set_defaults(func=run_calibrate)

    compile_ = subparsers.add_parser(
        "compile",
        help="build a TensorRT engine (cached per model, precision, shapes, GPU, TensorRT)",
        description="Compile a model to a TensorRT engine for this GPU. Needs the tensorrt extra and an NVIDIA GPU.",
    )
    _add_common_args(compile_, "also copy the engine here (it stays in the cache either way)")
    add_engine_args(compile_)
    add_calibration_args(compile_, gate=False)
    compile_.set_defaults(func=run_compile)


def _write_verified(output: Path, write: Callable[[Path], Path], verify: Callable[[Path], float] | None) -> None:
    """Write beside ``output`` under a temporary name, verify, then rename: a failed export replaces nothing."""
    fd, name = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".part", dir=output.parent)
    os.close(fd)
    scratch = Path(name)
    try:
        write(scratch)
        if verify is not None:
            err = verify(scratch)
            log.info("%s matches torch: max abs error %.2e over %d shapes", output.name, err, len(PARITY_SHAPES))
        os.replace(scratch, output)
    except OSError as e:
        raise OutputError(f"cannot write {output}: {e.strerror or e}") from None
    finally:
        scratch.unlink(missing_ok=True)


def run_export(args: argparse.Namespace) -> int:
    fmt = FORMATS["onnx-int8" if args.int8 and args.format == "onnx" else args.format]
    if args.half and fmt.name != "engine":
        raise ModelError("--half applies to TensorRT engines (--format engine); ONNX exports stay FP32 for portability")
    if not OPSET <= args.opset <= MAX_OPSET:
        raise ModelError(f"--opset must be >= {OPSET} and <= {MAX_OPSET} (the range this exporter supports), got {args.opset}")
    generator, info = load_model(args.model)
    precision = "int8" if args.int8 else "fp16" if args.half else args.precision
    stem = info.path.stem if info.path is not None else "model"
    output = args.output or Path.cwd() / (stem + (f".{precision}.engine" if fmt.name == "engine" else fmt.suffix))
    inputs = _inputs(info, args.frames if fmt.name in ("onnx-int8", "engine") else None)
    if fmt.name == "onnx-int8":
        _check_int8_outputs(output, inputs, args.overwrite)
        frames = artifacts.representative_frames(args.frames)
        report = artifacts.calibrate(generator, info, frames, output, method=args.method, thresholds=thresholds_from(args))
        print_report(report, output)
        return 0 if report.passed else 1
    check_output(output, inputs, args.overwrite, folder=False)
    if fmt.name == "onnx":
        _write_verified(output, lambda p: export_onnx(generator, info, p, opset=args.opset), None if args.no_verify else lambda p: verify_onnx(generator, p))
    elif fmt.name == "torchscript":
        _write_verified(output, lambda p: export_torchscript(generator, info, p), None if args.no_verify else lambda p: verify_torchscript(generator, p))
    else:
        _compile(args, info, precision, output)
    print(output)
    return 0


def run_calibrate(args: argparse.Namespace) -> int:
    generator, info = load_model(args.model)
    size = args.size or artifacts.CALIBRATION_SIZE
    if min(size) < MIN_SIDE:
        raise InputError(f"--size sides must be >= {MIN_SIDE}, got {size[0]}x{size[1]}")
    if args.output is not None:
        _check_int8_outputs(args.output, _inputs(info, args.frames), args.overwrite)
    # The default output is the cache's own entry for these settings, which calibrating again renews.
    output = args.output or artifacts.int8_cache_path(info, args.frames, args.method, size)
    frames = artifacts.representative_frames(args.frames, size, calibration=args.calibration_frames, held_out=args.held_out)
    report = artifacts.calibrate(generator, info, frames, output, method=args.method, thresholds=thresholds_from(args))
    print_report(report, output)
    return 0 if report.passed else 1


def _compile(args: argparse.Namespace, info: ModelInfo, precision: str, output: Path | None) -> Path:
    return artifacts.compile_engine(
        info.path,
        precision,
        args.shapes,
        output,
        route=args.route,
        workspace_gb=args.workspace,
        force=args.force,
        frames=args.frames,
        method=args.method,
    )


def run_compile(args: argparse.Namespace) -> int:
    _, info = load_model(args.model)
    if args.output is not None:
        check_output(args.output, _inputs(info, args.frames), args.overwrite, folder=False)
    print(_compile(args, info, args.precision, args.output))
    return 0
