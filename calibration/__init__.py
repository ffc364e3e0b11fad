"""INT8 calibration: representative frames -> an explicit Q/DQ ONNX graph that passed the quality gate.

``calibrate`` is the whole pipeline with every knob. It takes its components explicitly: the FP32
ONNX graph and the activation-range cache file, which ``realtime.artifacts`` (the runtime's one
entry into this package) supplies from its cache folder; without them it exports and calibrates in a
temporary folder. This package uses only the runtime's core modules (model, model file, exporter,
metrics, frame sources, errors) and never the runtime's backends or caches.
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
from realtime.errors import ModelError, OutputError
from realtime.export import export_onnx
from realtime.model import Generator
from realtime.modelfile import ModelInfo, atomic_write_bytes

log = logging.getLogger(__name__)

#: bump when the quantization recipe or the default gate changes, so older cached INT8 graphs are not reused
RECIPE = "qdq-conv-subres-s8s8sym-3"

__all__ = [
    "DEFAULT_SIZE",
    "METHODS",
    "CalibrationReport",
    "FrameSet",
    "GateThresholds",
    "cache_key",
    "calibrate",
    "representative_frames",
    "source_digest",
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


def cache_key(*parts: str) -> str:
    """SHA-256 of ``parts`` plus the recipe and the onnxruntime version: a key for anything calibrated."""
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
    fp32_onnx: Path | None = None,
    ranges_cache: Path | None = None,
) -> CalibrationReport:
    """Calibrate, gate and write the INT8 Q/DQ graph of a model to ``output`` (plus ``output``.json).

    ``fp32_onnx``: the model's FP32 export (exported here when None). ``ranges_cache``: where the
    activation ranges of these frames are kept between calls (a temporary file when None).
    """
    if method not in METHODS:
        raise ModelError(f"unknown calibration method {method!r}; choose one of {', '.join(METHODS)}")
    thresholds = thresholds or GateThresholds()
    start = time.perf_counter()
    n = info.config.num_styles
    with tempfile.TemporaryDirectory(prefix="stylecast-int8-") as tmp:
        fp32 = fp32_onnx or export_onnx(generator, info, Path(tmp) / "fp32.onnx")
        ranges = ranges_cache or Path(tmp) / "ranges.json"
        inner, full = sub_resolution_convs(fp32, n)
        gate = Gate(fp32, frames, n)

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
