"""Backend names -> classes, imported lazily, and the ``auto`` choice.

Every backend class is constructed as ``cls(generator, info, precision=..., device=...)`` and raises
``BackendUnavailable`` when it cannot run here. ``auto`` tries the fastest first: TensorRT (CUDA),
then torch on CUDA, then ONNX Runtime on the CPU.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any

from realtime.backends.base import Backend
from realtime.errors import BackendUnavailable
from realtime.model import Generator
from realtime.modelfile import ModelInfo, load_model

log = logging.getLogger(__name__)

#: name -> module holding a ``Backend`` subclass whose ``name`` is that name
BACKEND_MODULES: dict[str, str] = {
    "tensorrt": "realtime.backends.tensorrt_backend",
    "torch": "realtime.backends.torch_backend",
    "onnx": "realtime.backends.onnx_backend",
}

BACKEND_NAMES = ("auto", *BACKEND_MODULES)

ModelArg = str | Path | None | tuple[Generator, ModelInfo]


def backend_class(name: str) -> Any:
    """The class registered as ``name``; called as ``cls(generator, info, precision=..., device=...)``."""
    if name not in BACKEND_MODULES:
        raise BackendUnavailable(f"unknown backend {name!r}; choose one of {', '.join(BACKEND_NAMES)}")
    try:
        module = importlib.import_module(BACKEND_MODULES[name])
    except ImportError as e:
        raise BackendUnavailable(f"{name} backend is not available here: {e}") from None
    for obj in vars(module).values():
        if isinstance(obj, type) and issubclass(obj, Backend) and getattr(obj, "name", None) == name:
            return obj
    raise BackendUnavailable(f"{BACKEND_MODULES[name]} defines no backend named {name!r}")


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def auto_candidates(precision: str, device: str) -> list[tuple[str, str]]:
    """(backend, device) pairs ``auto`` tries in order."""
    cuda = device in ("auto", "cuda") and _cuda_available()
    pairs: list[tuple[str, str]] = []
    if cuda:
        pairs += [("tensorrt", "cuda")]
        if precision != "int8":
            pairs += [("torch", "cuda")]
        pairs += [("onnx", "cuda")]
    if device in ("auto", "cpu"):
        pairs += [("onnx", "cpu"), ("torch", "cpu")]
    return pairs


def create_backend(
    name: str = "auto", model: ModelArg = None, precision: str = "auto", device: str = "auto"
) -> Backend:
    """Build a backend for ``model`` (a path, None for the bundled default, or ``(generator, info)``)."""
    generator, info = model if isinstance(model, tuple) else load_model(model)
    if name != "auto":
        return backend_class(name)(generator, info, precision=precision, device=device)
    candidates = auto_candidates(precision, device)
    if not candidates:
        raise BackendUnavailable(f"--device {device}: no CUDA GPU is available here (torch sees none); use --device cpu")
    reasons: list[str] = []
    for candidate, dev in candidates:
        try:
            backend = backend_class(candidate)(generator, info, precision=precision, device=dev)
        except BackendUnavailable as e:
            log.debug("auto: skipping %s/%s: %s", candidate, dev, e)
            reasons.append(str(e))
            continue
        log.info("backend: %s", backend.describe())
        return backend
    raise BackendUnavailable("no backend can run here: " + "; ".join(reasons))
