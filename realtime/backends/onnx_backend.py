"""ONNX Runtime backend: the exported generator (FP32) or its calibrated INT8 (Q/DQ) graph.

The graphs come from ``realtime.artifacts``: exported (and calibrated) once per model file into the
cache, so a second run starts in a fraction of a second. Exported graphs pad only to a multiple of 4,
so frames with a side under ``MIN_SIDE`` are edge-padded here and cropped back after inference.

On the CPU a throughput run (a file, every frame kept) splits the cores between two frames instead
of spreading one frame over all of them: each convolution of a 640x360 frame is too short for two
threads to share without waiting at its end for the slower one, and decoding and encoding take
turns on the same cores. Measured on a 2-core AMD EPYC (Zen 3, AVX2), stage-8 fast model at 640x360:
one session of 2 threads 20.7 (INT8) / 16.9 (FP32) frames/s, two sessions of 1 thread side by side
26.3 / 24.0.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

import numpy as np

from realtime import artifacts
from realtime.backends.base import Backend, InferFn
from realtime.errors import BackendUnavailable, ModelError
from realtime.machine import usable_cores
from realtime.model import MIN_SIDE, Generator
from realtime.modelfile import ModelInfo
from realtime.ort_session import open_session

#: frames in flight in a CPU throughput run (see the module docstring)
CPU_LANES = 2

log = logging.getLogger(__name__)


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
        self.path: Path = artifacts.int8_model_path(generator, info) if precision == "int8" else artifacts.onnx_model_path(generator, info)
        self.session = self._open()
        self._lanes: list[InferFn] = []
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_name = self.session.get_outputs()[0].name
        log.debug("onnx backend: %s on %s", self.path, self.session.get_providers())

    def upload(self, frames: np.ndarray) -> Any:
        b, h, w, _ = frames.shape
        pad_h, pad_w = max(MIN_SIDE - h, 0), max(MIN_SIDE - w, 0)
        if pad_h or pad_w:
            frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        x = np.ascontiguousarray(frames.transpose(0, 3, 1, 2), dtype=np.float32)
        x *= 1.0 / 255.0
        return x, (h, w)

    def _open(self, threads: int | None = None) -> Any:
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if self.device == "cuda" else ["CPUExecutionProvider"]
        try:
            return open_session(self.path, threads=threads, providers=providers)
        except Exception as e:  # onnxruntime and onnx raise their own untyped errors for bad files
            raise ModelError(f"onnxruntime cannot load {self.path}: {str(e).splitlines()[0]}") from None

    def infer(self, inputs: Any, style_weights: np.ndarray) -> Any:
        return self._run(self.session, inputs, style_weights)

    def infer_lanes(self) -> list[InferFn]:
        cores = usable_cores()
        if self.device != "cpu" or cores < CPU_LANES:
            return [self.infer]
        if not self._lanes:
            # one session per lane: two threads sharing one session measured slower (20.3 against
            # 24.0 frames/s FP32 on the Zen 3 above)
            sessions = [self._open(threads=cores // CPU_LANES) for _ in range(CPU_LANES)]
            self._lanes = [functools.partial(self._run, s) for s in sessions]
        return self._lanes

    def _run(self, session: Any, inputs: Any, style_weights: np.ndarray) -> Any:
        x, size = inputs
        # one weight row per frame, as the session's folded norms expect (realtime.ort_session)
        weights = np.ascontiguousarray(np.broadcast_to(style_weights, (x.shape[0], self.num_styles)), dtype=np.float32)
        feeds = {self.input_names[0]: x, self.input_names[1]: weights}
        return session.run([self.output_name], feeds)[0], size

    def download(self, outputs: Any) -> np.ndarray:
        y, (h, w) = outputs
        y = y[:, :, :h, :w].transpose(0, 2, 3, 1)
        return np.clip(y * 255.0 + 0.5, 0, 255).astype(np.uint8)
