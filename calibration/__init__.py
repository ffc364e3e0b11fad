"""INT8 calibration: representative frames -> an explicit Q/DQ ONNX graph that passed the quality gate.

``int8_model_path`` is what runtimes call: a cached INT8 graph for a model, built on first use from
the bundled sample clip (or given frames). ``calibrate`` is the whole pipeline with every knob, used by
``stylecast calibrate``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from calibration.frames import DEFAULT_SIZE, FrameSet, representative_frames, source_digest
from calibration.gate import Gate, GateFigures, GateThresholds, choose_fp_layers
from calibration.quantize import METHODS, quantize_qdq, sub_resolution_convs
from realtime.backends.onnx_backend import cache_dir, onnx_model_path
from realtime.errors import ModelError, OutputError
from realtime.model import Generator
from realtime.modelfile import ModelInfo, atomic_write_bytes

log = logging.getLogger(__name__)

#: bump when the quantization recipe or the default gate changes, so older cached INT8 graphs are not reused
RECIPE = "qdq-conv-subres-s8s8sym-3"

__all__ = [
    "METHODS",
    "CalibrationReport",
    "GateThresholds",
    "calibrate",
    "int8_cache_path",
    "int8_model_path",
    "representative_frames",
]


@dataclass(frozen=True)
class CalibrationReport:
    model_sha256: str
    method: str
    source: str
    size: tuple[int, int]
    frame_counts: dict[str, int]
    quantized: tuple[str, ...]
    #: layer -> why it stayed FP32 ("full resolution": by policy; "quality gate": chosen by the gate)
    kept_fp: dict[str, str]
    figures: GateFigures
    thresholds: GateThresholds
    passed: bool
    seconds: float
    trials: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_sha256": self.model_sha256,
            "recipe": RECIPE,
            "method": self.method,
            "source": self.source,
            "size": list(self.size),
            "frame_counts": self.frame_counts,
            "quantized": list(self.quantized),
            "kept_fp": self.kept_fp,
            "figures": self.figures.to_dict(),
            "thresholds": vars(self.thresholds),
            "passed": self.passed,
            "seconds": round(self.seconds, 1),
            "trials": self.trials,
        }


def _key(*parts: str) -> str:
    import onnxruntime

    return hashlib.sha256("\0".join((*parts, RECIPE, onnxruntime.__version__)).encode()).hexdigest()


def _add_metadata(path: Path, report: CalibrationReport) -> bytes:
    import onnx

    proto = onnx.load(str(path))
    entry = proto.metadata_props.add()
    entry.key, entry.value = "stylecast_int8_report", json.dumps(report.to_dict())
    return proto.SerializeToString()


def calibrate(
    generator: Generator,
    info: ModelInfo,
    frames: FrameSet,
    output: Path,
    *,
    method: str = "percentile",
    thresholds: GateThresholds | None = None,
) -> CalibrationReport:
    """Calibrate, gate and write the INT8 Q/DQ graph of a model to ``output`` (plus ``output``.json).

    Activation ranges are cached per model, method and calibration-frame content.
    """
    if method not in METHODS:
        raise ModelError(f"unknown calibration method {method!r}; choose one of {', '.join(METHODS)}")
    thresholds = thresholds or GateThresholds()
    start = time.perf_counter()
    n = info.config.num_styles
    fp32 = onnx_model_path(generator, info)
    inner, full = sub_resolution_convs(fp32, n)
    ranges = cache_dir("calibration") / f"{_key(info.sha256, method, frames.digest())}.json"
    gate = Gate(fp32, frames, n)
    with tempfile.TemporaryDirectory(prefix="stylecast-int8-") as tmp:

        def build(kept: tuple[str, ...], path: Path) -> Path:
            return quantize_qdq(fp32, path, [c for c in inner if c not in kept], ranges, frames.calibration, n, method)

        def measure(kept: tuple[str, ...]) -> GateFigures:
            return gate.measure(build(kept, Path(tmp) / "candidate.onnx"))

        result = choose_fp_layers(measure, inner, thresholds)
        final = build(result.kept_fp, Path(tmp) / "final.onnx")
        report = CalibrationReport(
            model_sha256=info.sha256,
            method=method,
            source=frames.source,
            size=frames.size,
            frame_counts={"calibration": len(frames.calibration), "held_out": len(frames.held_out), "clip": len(frames.clip)},
            quantized=tuple(c for c in inner if c not in result.kept_fp),
            kept_fp={**dict.fromkeys(full, "full resolution"), **dict.fromkeys(result.kept_fp, "quality gate")},
            figures=result.figures,
            thresholds=thresholds,
            passed=result.passed,
            seconds=time.perf_counter() - start,
            trials=[{"kept_fp": list(k), **f.to_dict()} for k, f in result.trials],
        )
        try:
            atomic_write_bytes(output, _add_metadata(final, report))
            atomic_write_bytes(output.with_suffix(output.suffix + ".json"), json.dumps(report.to_dict(), indent=2).encode())
        except OSError as e:
            raise OutputError(f"cannot write {output}: {e.strerror or e}") from None
    if not report.passed:
        log.warning("INT8 quality gate not met even with every layer in FP32: %s", "; ".join(report.figures.failures(thresholds)))
    return report


def int8_cache_path(
    info: ModelInfo, frames: str | Path | None = None, method: str = "percentile", size: tuple[int, int] = DEFAULT_SIZE
) -> Path:
    """Where the cached INT8 graph for these settings lives.

    Keyed by the model's SHA-256, the method, the size and the content of the calibration source (the
    bundled sample clip when ``frames`` is None), so a retrained model or other frames get their own graph.
    """
    key = _key(info.sha256, method, source_digest(frames), "x".join(map(str, size)))
    return cache_dir("int8") / f"{key[:24]}.onnx"


def int8_model_path(
    generator: Generator,
    info: ModelInfo,
    *,
    frames: str | Path | None = None,
    method: str = "percentile",
) -> Path:
    """The cached INT8 Q/DQ graph for this model, calibrated now (once) when missing."""
    path = int8_cache_path(info, frames, method)
    if path.is_file():
        return path
    log.info("calibrating INT8 for this model (once; cached in %s)", path.parent)
    report = calibrate(generator, info, representative_frames(frames), path, method=method)
    log.info("INT8 ready: PSNR %.2f dB vs FP32, %d layers INT8, %d FP32", report.figures.psnr_db, len(report.quantized), len(report.kept_fp))
    return path
