"""TensorRT backend: the engine ``realtime.artifacts`` has for this model and GPU, run on its own CUDA stream.

Host frames go through pinned buffers with asynchronous copies; conversion to float planes and back to
uint8 happens on the GPU. The style weights are an ordinary engine input, so they change every frame
without a rebuild. Buffers are allocated per frame shape and recycled: the pipeline keeps several
batches in flight (upload, infer and download run in their own threads), so each batch owns a slot of
buffers from upload until its download has finished, and the pool grows only to that depth.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from realtime import artifacts
from realtime.backends.base import Backend
from realtime.compile import DEFAULT_SHAPES, PRECISIONS, ShapeProfile, parse_shapes
from realtime.errors import BackendUnavailable, InputError, ModelError
from realtime.export import INPUT_NAMES, OUTPUT_NAME
from realtime.model import MIN_SIDE, Generator
from realtime.modelfile import ModelInfo

log = logging.getLogger(__name__)


@dataclass
class _Slot:
    """Every buffer one batch of one shape needs, from host upload to host download."""

    shape: tuple[int, int, int]  # (B, H, W) of the host frames
    host_in: Any  # pinned uint8 [B,H,W,3]
    dev_in: Any  # uint8 [B,H,W,3]
    frames: Any  # float32 [B,3,H',W'] engine input, H',W' >= MIN_SIDE
    host_weights: Any  # pinned float32 [B,N]
    weights: Any  # float32 [B,N] engine input
    stylized: Any  # float32 [B,3,H',W'] engine output
    dev_out: Any  # uint8 [B,H,W,3]
    host_out: Any  # pinned uint8 [B,H,W,3]
    done: Any  # torch.cuda.Event recorded after the device->host copy


class TensorRTBackend(Backend):
    name = "tensorrt"

    def __init__(
        self,
        generator: Generator,
        info: ModelInfo,
        precision: str = "auto",
        device: str = "auto",
        shapes: str | None = None,
    ) -> None:
        if device not in ("auto", "cuda"):
            raise BackendUnavailable(f"the tensorrt backend runs on CUDA GPUs, not {device!r}")
        precision = "fp16" if precision == "auto" else precision
        if precision not in PRECISIONS:
            raise BackendUnavailable(f"tensorrt backend precisions: {', '.join(PRECISIONS)}; got {precision!r}")
        self.profile = parse_shapes(shapes or DEFAULT_SHAPES)
        # Asking for the engine checks TensorRT and the GPU first: tensorrt_engine imports tensorrt.
        path, key = artifacts.ensure_engine(generator, info, precision, self.profile)
        from realtime.tensorrt_engine import load_engine

        self._runtime, engine = load_engine(path.read_bytes())
        if engine is None:
            # Checksums matched, yet this TensorRT/driver refuses the engine: rebuild once.
            log.warning("TensorRT cannot load the cached engine %s; rebuilding it", path)
            path, key = artifacts.ensure_engine(generator, info, precision, self.profile, force=True)
            self._runtime, engine = load_engine(path.read_bytes())
            if engine is None:
                raise ModelError(f"TensorRT cannot load the engine it just built: {path}")
        for tensor in (*INPUT_NAMES, OUTPUT_NAME):
            if engine.get_tensor_dtype(tensor) != _trt_float():
                raise ModelError(f"engine {path}: tensor {tensor!r} is not float32; rebuild it with stylecast compile")
        self.engine: Any = engine
        context = engine.create_execution_context()
        if context is None:
            # TensorRT logs why (usually no device memory for the profile's largest shapes) and returns None.
            raise ModelError(f"TensorRT cannot create an execution context for {path}; try a smaller --shapes maximum")
        self._attach(context, self.profile, info.config.num_styles, precision)
        log.debug("tensorrt backend: %s (%s)", path, key.precision)

    def _attach(self, context: Any, profile: ShapeProfile, num_styles: int, precision: str) -> None:
        """Everything past engine loading: the execution context, its stream and the buffer pool."""
        import torch

        self.context, self.profile = context, profile
        self.stream = torch.cuda.Stream()
        self.device, self.precision = "cuda", precision
        self.num_styles = num_styles
        self._free: dict[tuple[int, int, int], list[_Slot]] = {}
        self._lock = threading.Lock()

    # --- buffers --------------------------------------------------------------------------------------

    def _take_slot(self, b: int, h: int, w: int) -> _Slot:
        with self._lock:
            free = self._free.setdefault((b, h, w), [])
            if free:
                return free.pop()
        import torch

        ph, pw = max(h, MIN_SIDE), max(w, MIN_SIDE)
        dev = torch.device("cuda")
        log.debug("tensorrt backend: new buffers for %dx%dx%d", b, h, w)
        return _Slot(
            shape=(b, h, w),
            host_in=torch.empty((b, h, w, 3), dtype=torch.uint8, pin_memory=True),
            dev_in=torch.empty((b, h, w, 3), dtype=torch.uint8, device=dev),
            frames=torch.empty((b, 3, ph, pw), dtype=torch.float32, device=dev),
            host_weights=torch.empty((b, self.num_styles), dtype=torch.float32, pin_memory=True),
            weights=torch.empty((b, self.num_styles), dtype=torch.float32, device=dev),
            stylized=torch.empty((b, 3, ph, pw), dtype=torch.float32, device=dev),
            dev_out=torch.empty((b, h, w, 3), dtype=torch.uint8, device=dev),
            host_out=torch.empty((b, h, w, 3), dtype=torch.uint8, pin_memory=True),
            done=torch.cuda.Event(),
        )

    def _give_back(self, slot: _Slot) -> None:
        with self._lock:
            self._free.setdefault(slot.shape, []).append(slot)

    # --- the three stages -----------------------------------------------------------------------------

    def upload(self, frames: np.ndarray) -> _Slot:
        import torch

        b, h, w, _ = frames.shape
        if not self.profile.accepts(b, max(h, MIN_SIDE), max(w, MIN_SIDE)):
            raise InputError(
                f"{b} frame(s) of {w}x{h} are outside the engine's shape profile ({self.profile.spec()}); "
                "use --max-side/--size or compile an engine with --shapes covering them"
            )
        slot = self._take_slot(b, h, w)
        slot.host_in.numpy()[...] = frames
        with torch.cuda.stream(self.stream):
            slot.dev_in.copy_(slot.host_in, non_blocking=True)
            planes = slot.frames[:, :, :h, :w]
            torch.div(slot.dev_in.permute(0, 3, 1, 2), 255.0, out=planes)
            # The exported graph pads only to a multiple of 4: edge-pad frames under MIN_SIDE here.
            if h < MIN_SIDE:
                slot.frames[:, :, h:, :w] = planes[:, :, h - 1 : h, :]
            if w < MIN_SIDE:
                slot.frames[:, :, :, w:] = slot.frames[:, :, :, w - 1 : w]
        return slot

    def infer(self, inputs: Any, style_weights: np.ndarray) -> _Slot:
        import torch

        slot: _Slot = inputs
        slot.host_weights.numpy()[...] = style_weights
        with torch.cuda.stream(self.stream):
            slot.weights.copy_(slot.host_weights, non_blocking=True)
        ctx = self.context
        for name, tensor in ((INPUT_NAMES[0], slot.frames), (INPUT_NAMES[1], slot.weights)):
            # False (with a TensorRT error logged) when the engine's profile does not cover the shape
            # that upload() checked against ours: the engine is not the one this backend asked for.
            if not ctx.set_input_shape(name, tuple(tensor.shape)):
                raise ModelError(f"TensorRT refuses {name} of shape {tuple(tensor.shape)} (profile {self.profile.spec()})")
        for name, tensor in ((INPUT_NAMES[0], slot.frames), (INPUT_NAMES[1], slot.weights), (OUTPUT_NAME, slot.stylized)):
            ctx.set_tensor_address(name, tensor.data_ptr())
        if not ctx.execute_async_v3(self.stream.cuda_stream):
            raise ModelError("TensorRT failed to run the engine (see the log)")
        return slot

    def download(self, outputs: Any) -> np.ndarray:
        import torch

        slot: _Slot = outputs
        _, h, w = slot.shape
        with torch.cuda.stream(self.stream):
            # In place on the engine's output buffer (the next infer overwrites it anyway); +0.5 then the
            # truncating uint8 cast rounds, as the other backends do.
            slot.stylized.mul_(255.0).add_(0.5).clamp_(0.0, 255.0)
            slot.dev_out.copy_(slot.stylized[:, :, :h, :w].permute(0, 2, 3, 1))
            slot.host_out.copy_(slot.dev_out, non_blocking=True)
            slot.done.record(self.stream)
        slot.done.synchronize()
        result = slot.host_out.numpy().copy()  # the slot is reused for a later batch
        self._give_back(slot)
        return result

    def close(self) -> None:
        self.stream.synchronize()
        self._free.clear()
        self.context = self.engine = None


def _trt_float() -> Any:
    import tensorrt as trt

    return trt.DataType.FLOAT
