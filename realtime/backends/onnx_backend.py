"""ONNX Runtime backend: the exported generator (FP32) or its calibrated INT8 (Q/DQ) graph.

The FP32 graph is exported once per model file into the cache, keyed by the model's SHA-256, so a
second run starts in a fraction of a second. Exported graphs pad only to a multiple of 4, so frames
with a side under ``MIN_SIDE`` are edge-padded here and cropped back after inference.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from realtime.backends.base import Backend
from realtime.errors import BackendUnavailable, ModelError
from realtime.model import MIN_SIDE, Generator
from realtime.modelfile import ModelInfo

log = logging.getLogger(__name__)


def cache_dir(kind: str) -> Path:
    """``$STYLECAST_CACHE/<kind>`` or ``~/.cache/stylecast/<kind>``: derived artifacts, safe to delete."""
    root = os.environ.get("STYLECAST_CACHE") or Path.home() / ".cache" / "stylecast"
    return Path(root) / kind


def onnx_model_path(generator: Generator, info: ModelInfo) -> Path:
    """The cached FP32 ONNX export of this model file, exported now if missing or not this model's.

    A cache that cannot be written costs a fresh export per run (into a temporary folder), not the run.
    """
    from realtime.export import export_onnx

    path = cache_dir("onnx") / f"{info.sha256[:16]}.onnx"
    problem = _cached_onnx_problem(path, info.sha256)
    if problem is None:
        return path
    if path.exists():
        log.warning("cached ONNX %s is unusable (%s); exporting it again", path, problem)
    log.info("exporting the model to ONNX (once per model): %s", path)
    try:
        export_onnx(generator, info, path)
    except OSError as e:
        scratch = Path(tempfile.mkdtemp(prefix="stylecast-onnx-"))
        atexit.register(shutil.rmtree, scratch, ignore_errors=True)
        log.warning(
            "cannot write the ONNX cache %s (%s); exporting for this run only (set STYLECAST_CACHE to a writable folder)",
            path.parent,
            e.strerror or e,
        )
        path = export_onnx(generator, info, scratch / path.name)
    return path


def _cached_onnx_problem(path: Path, model_sha256: str) -> str | None:
    """Why the cached export cannot serve this model (missing, damaged, another model's), or None."""
    import onnx

    if not path.is_file():
        return "missing"
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf raises its own DecodeError for damaged files
        return f"unreadable: {type(e).__name__}"
    meta = {p.key: p.value for p in proto.metadata_props}
    if meta.get("stylecast_model_sha256") != model_sha256:
        return "exported from another model file"
    return None


class OnnxBackend(Backend):
    name = "onnx"

    def __init__(self, generator: Generator, info: ModelInfo, precision: str = "fp32", device: str = "auto") -> None:
        try:
            import onnxruntime as ort  # type: ignore[import-untyped,unused-ignore]
        except ImportError as e:
            raise BackendUnavailable(f"onnx backend needs onnxruntime: {e}") from None
        if precision == "auto":
            precision = "fp32"
        if precision not in ("fp32", "int8"):
            raise BackendUnavailable(f"onnx backend supports fp32 and int8, not {precision}")
        providers = ort.get_available_providers()
        if device == "auto":
            device = "cuda" if "CUDAExecutionProvider" in providers else "cpu"
        if device == "cuda" and "CUDAExecutionProvider" not in providers:
            raise BackendUnavailable("onnx backend: CUDA requested but onnxruntime has no CUDAExecutionProvider")
        if device not in ("cpu", "cuda"):
            raise BackendUnavailable(f"onnx backend: unknown device {device!r} (use cpu or cuda)")
        self.device, self.precision = device, precision
        self.num_styles = info.config.num_styles
        path = self._model_path(generator, info)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = os.cpu_count() or 1
        # Spinning worker threads steal the cores that decoding and encoding need between inferences:
        # measured on 2 cores, a full run went from 3.8-4.5 to 5.9-7.9 fps with spinning off.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        chosen = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=chosen)
        except Exception as e:  # onnxruntime raises its own untyped errors for bad files
            raise ModelError(f"onnxruntime cannot load {path}: {str(e).splitlines()[0]}") from None
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_name = self.session.get_outputs()[0].name
        log.debug("onnx backend: %s on %s", path, self.session.get_providers())

    def _model_path(self, generator: Generator, info: ModelInfo) -> Path:
        if self.precision != "int8":
            return onnx_model_path(generator, info)
        try:
            from calibration import int8_model_path  # type: ignore[attr-defined,unused-ignore]
        except ImportError as e:
            raise BackendUnavailable(f"int8 needs the calibration package: {e}") from None
        path = Path(int8_model_path(generator, info))
        problem = _cached_onnx_problem(path, info.sha256)
        if problem is not None:
            log.warning("cached INT8 graph %s is unusable (%s); calibrating again", path, problem)
            path.unlink(missing_ok=True)
            path = Path(int8_model_path(generator, info))
        return path

    def upload(self, frames: np.ndarray) -> Any:
        b, h, w, _ = frames.shape
        pad_h, pad_w = max(MIN_SIDE - h, 0), max(MIN_SIDE - w, 0)
        if pad_h or pad_w:
            frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        x = np.ascontiguousarray(frames.transpose(0, 3, 1, 2), dtype=np.float32)
        x *= 1.0 / 255.0
        return x, (h, w)

    def infer(self, inputs: Any, style_weights: np.ndarray) -> Any:
        x, size = inputs
        feeds = {self.input_names[0]: x, self.input_names[1]: np.ascontiguousarray(style_weights, dtype=np.float32)}
        return self.session.run([self.output_name], feeds)[0], size

    def download(self, outputs: Any) -> np.ndarray:
        y, (h, w) = outputs
        y = y[:, :, :h, :w].transpose(0, 2, 3, 1)
        return np.clip(y * 255.0 + 0.5, 0, 255).astype(np.uint8)
