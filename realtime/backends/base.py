"""The interface every inference backend implements.

A frame batch travels as uint8 RGB ``[B, H, W, 3]`` on the host. Each backend splits the work into
the three stages the pipeline runs (and times) separately: ``upload`` (host -> device, layout and
dtype conversion), ``infer`` and ``download`` (device -> host uint8). For CPU backends upload and
download are cheap conversions; for CUDA backends they are the async copies on the backend's stream.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

#: ``infer``'s signature: (inputs from ``upload``, float32 style weights ``[B,N]``) -> outputs for ``download``
InferFn = Callable[[Any, np.ndarray], Any]


class Backend(ABC):
    #: registry name used by ``--backend`` ("torch", "onnx", "tensorrt", ...)
    name: ClassVar[str]
    #: "fp32", "fp16" or "int8"
    precision: str = "fp32"
    #: "cpu" or "cuda"
    device: str = "cpu"
    num_styles: int

    @abstractmethod
    def upload(self, frames: np.ndarray) -> Any:
        """uint8 ``[B,H,W,3]`` host frames -> the backend's input (may be asynchronous)."""

    @abstractmethod
    def infer(self, inputs: Any, style_weights: np.ndarray) -> Any:
        """Run the generator; ``style_weights`` is float32 ``[B,N]`` and may change every call."""

    @abstractmethod
    def download(self, outputs: Any) -> np.ndarray:
        """The backend's output -> uint8 ``[B,H,W,3]`` host frames (waits for the device)."""

    def infer_lanes(self) -> list[InferFn]:
        """The infer calls a throughput run (every frame, in order) keeps busy at once, one thread each.

        One, ``infer`` itself, unless a backend does better with several frames in flight than with
        one frame at a time; the pipeline restores the order.
        """
        return [self.infer]

    def __call__(self, frames: np.ndarray, style_weights: np.ndarray) -> np.ndarray:
        return self.download(self.infer(self.upload(frames), style_weights))

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing to release
        """Release device memory, streams and sessions."""

    def describe(self) -> str:
        return f"{self.name}/{self.device}/{self.precision}"
