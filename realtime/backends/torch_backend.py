"""PyTorch backend: eager on the CPU; on CUDA fp16/bf16, pinned buffers, own stream, CUDA graphs.

On CUDA the three stages overlap with the pipeline's other threads: ``upload`` copies from a pinned
host buffer on the backend's stream, ``infer`` replays a CUDA graph captured once per input shape
(launch overhead dominates small frames), and ``download`` copies into a pinned buffer and waits on
an event, not on the whole device.

With ``compile=True`` the step runs through ``realtime.compiled`` (exact rewrites, ``torch.compile``
with its cache on disk): on CUDA inductor's autotuned kernels inside the backend's own CUDA graphs, on
the CPU inductor's C++ kernels. Each new frame shape compiles once (seconds to minutes on first
start, much less with a warm cache); if compiling fails, the backend warns and runs eagerly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from realtime.backends.base import Backend
from realtime.compiled import DTYPES, CompiledGenerator, FrameModel, compile_generator
from realtime.errors import BackendUnavailable
from realtime.machine import usable_cores
from realtime.model import Generator
from realtime.modelfile import ModelInfo

log = logging.getLogger(__name__)


def cuda_available() -> bool:
    return torch.cuda.is_available()


@dataclass
class _Graph:
    """A captured CUDA graph with its static input/output tensors."""

    graph: torch.cuda.CUDAGraph
    frames: torch.Tensor  # uint8 [B,H,W,3] on the device
    weights: torch.Tensor  # float [B,N] on the device
    output: torch.Tensor  # uint8 [B,H,W,3] on the device


class TorchBackend(Backend):
    name = "torch"

    def __init__(
        self,
        generator: Generator,
        info: ModelInfo,
        precision: str = "fp32",
        device: str = "auto",
        cuda_graphs: bool = True,
        compile: bool = False,
        channels_last: bool = False,
        compile_options: dict[str, Any] | None = None,
    ) -> None:
        """``compile_options``: ``compile_generator`` keywords (mode, backend, conv_backends) for benchmarks."""
        if device == "auto":
            device = "cuda" if cuda_available() else "cpu"
        if device == "cuda" and not cuda_available():
            raise BackendUnavailable("torch backend: CUDA requested but torch sees no CUDA GPU")
        if device not in ("cpu", "cuda"):
            raise BackendUnavailable(f"torch backend: unknown device {device!r} (use cpu or cuda)")
        if precision == "auto":
            precision = "fp16" if device == "cuda" else "fp32"
        if precision not in DTYPES:
            raise BackendUnavailable(
                f"torch backend supports {', '.join(DTYPES)}, not {precision} (use --backend onnx for int8)"
            )
        if precision != "fp32" and device == "cpu":
            raise BackendUnavailable(f"torch backend: {precision} needs CUDA; use fp32 on the CPU")
        self.device = device
        self.precision = precision
        self.num_styles = info.config.num_styles
        self.dtype = DTYPES[precision]
        self.compiled = compile
        self._step: FrameModel | CompiledGenerator
        if compile:
            # The backend captures its own CUDA graphs (on its stream, with its pinned buffers), so
            # inductor's are off; on the CPU autotuning does not apply.
            mode = ("max-autotune-no-cudagraphs" if cuda_graphs else "max-autotune") if device == "cuda" else "default"
            options = {"mode": mode, **(compile_options or {})}
            self._step = compile_generator(
                generator, device, self.dtype, channels_last=channels_last, model_sha256=info.sha256, **options
            )
        else:
            self._step = FrameModel(generator.eval().to(device=device, dtype=self.dtype), self.dtype, channels_last)
        if device == "cpu":
            # Leave a core to decoding and encoding: OpenMP's busy-waiting threads collapse when they
            # share every core with them (measured on 2 cores: 0.7-1.0 fps with 2 threads, 3.6 with 1).
            torch.set_num_threads(max(1, usable_cores() - 1))
            return
        self.stream = torch.cuda.Stream()
        self.copy_stream = torch.cuda.Stream()
        self.use_graphs = cuda_graphs
        self._graphs: dict[tuple[int, int, int], _Graph] = {}
        self._host_in: dict[tuple[int, ...], torch.Tensor] = {}
        self._host_out: dict[tuple[int, ...], torch.Tensor] = {}

    # --- the math shared by eager and captured paths --------------------------------------------------

    def _forward(self, frames_u8: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """uint8 NHWC on the device -> uint8 NHWC on the device."""
        # Plain NCHW by default on both devices. channels_last was slower in eager mode on an H100
        # (fp16, CUDA graphs, 1080p: quality 28.8 against 14.6 ms, fast 2.6 against 2.3 ms): the norms
        # and pads between the convolutions are memory-bound, and on CPUs it slowed the convs too.
        return self._step(frames_u8, weights)

    # --- the three stages -----------------------------------------------------------------------------

    def upload(self, frames: np.ndarray) -> Any:
        if self.device == "cpu":
            return torch.from_numpy(np.ascontiguousarray(frames))
        host = self._pinned(self._host_in, frames.shape)
        host.numpy()[...] = frames
        # A separate copy stream lets this H2D copy overlap the previous batch's inference; waiting on
        # it here (only the copy, not the compute) makes the pinned buffer safe to refill next call.
        with torch.cuda.stream(self.copy_stream):
            device_frames = host.to("cuda", non_blocking=True)
            copied = torch.cuda.Event()
            copied.record(self.copy_stream)
        copied.synchronize()
        device_frames.record_stream(self.stream)
        return device_frames

    @torch.inference_mode()
    def infer(self, inputs: Any, style_weights: np.ndarray) -> Any:
        weights = torch.from_numpy(np.ascontiguousarray(style_weights, dtype=np.float32))
        if self.device == "cpu":
            return self._forward(inputs, weights)
        with torch.cuda.stream(self.stream):
            weights = weights.to("cuda", non_blocking=True)
            if not self.use_graphs:
                return self._forward(inputs, weights)
            g = self._graph_for(inputs, weights)
            g.frames.copy_(inputs)
            g.weights.copy_(weights)
            g.graph.replay()
            # The static output is overwritten by the next replay, possibly before this batch's
            # download runs on the other thread; a device copy on the same stream is cheap.
            return g.output.clone()

    def download(self, outputs: Any) -> np.ndarray:
        if self.device == "cpu":
            return outputs.numpy()
        host = self._pinned(self._host_out, tuple(outputs.shape))
        with torch.cuda.stream(self.stream):
            host.copy_(outputs, non_blocking=True)
            done = torch.cuda.Event()
            done.record(self.stream)
        done.synchronize()
        # The pinned buffer is reused by the next download; the caller gets its own copy.
        return host.numpy().copy()

    # --- CUDA helpers ---------------------------------------------------------------------------------

    def _pinned(self, cache: dict[tuple[int, ...], torch.Tensor], shape: tuple[int, ...]) -> torch.Tensor:
        buf = cache.get(shape)
        if buf is None:
            buf = cache[shape] = torch.empty(shape, dtype=torch.uint8, pin_memory=True)
        return buf

    def _graph_for(self, frames: torch.Tensor, weights: torch.Tensor) -> _Graph:
        key = (frames.shape[0], frames.shape[1], frames.shape[2])
        g = self._graphs.get(key)
        if g is not None:
            return g
        static_frames = frames.clone()
        static_weights = weights.clone()
        # Warm-up on the capture stream lets cuDNN pick its algorithms before they are frozen in.
        for _ in range(3):
            self._forward(static_frames, static_weights)
        self.stream.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=self.stream):
            output = self._forward(static_frames, static_weights)
        log.debug("captured a CUDA graph for batch %d, %dx%d", *key)
        g = self._graphs[key] = _Graph(graph, static_frames, static_weights, output)
        return g

    def describe(self) -> str:
        return f"{super().describe()}+compiled" if self.compiled else super().describe()

    def close(self) -> None:
        if self.device == "cuda":
            self._graphs.clear()
            self._host_in.clear()
            self._host_out.clear()
            torch.cuda.empty_cache()


def compiled_backend(backend: str, generator: Generator, info: ModelInfo, precision: str, device: str) -> TorchBackend:
    """What ``--compile`` selects: the torch backend with ``compile=True`` (no other backend compiles)."""
    if backend not in ("auto", "torch"):
        raise BackendUnavailable(f"--compile runs the torch backend; it does not apply to --backend {backend}")
    return TorchBackend(generator, info, precision=precision, device=device, compile=True)
