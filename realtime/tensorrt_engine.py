"""The TensorRT Python API (TensorRT >= 10): build an engine from ONNX, and load one.

Imported only after ``realtime.compile.require_tensorrt`` found TensorRT, so the rest of stylecast
runs without it. Type-checked against the ``tensorrt`` stubs in ``typings/`` (see pyproject's mypy
section), which is what keeps this code honest on machines that cannot install TensorRT.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import tensorrt as trt

from realtime.errors import ModelError
from realtime.export import INPUT_NAMES
from realtime.modelfile import atomic_write_bytes

log = logging.getLogger(__name__)

Shape = tuple[int, int, int, int]

_LEVELS = {
    trt.ILogger.Severity.INTERNAL_ERROR: logging.ERROR,
    trt.ILogger.Severity.ERROR: logging.ERROR,
    trt.ILogger.Severity.WARNING: logging.WARNING,
    trt.ILogger.Severity.INFO: logging.DEBUG,
    trt.ILogger.Severity.VERBOSE: logging.DEBUG,
}


class _Logger(trt.ILogger):
    """TensorRT's messages into Python logging (its INFO is chatty: debug here)."""

    def __init__(self) -> None:
        trt.ILogger.__init__(self)

    def log(self, severity: trt.ILogger.Severity, msg: str) -> None:
        log.log(_LEVELS.get(severity, logging.DEBUG), "TensorRT: %s", msg)


#: one logger for every builder and runtime: TensorRT requires it to outlive all objects made with it
LOGGER = _Logger()


class _Progress(trt.IProgressMonitor):
    """Logs the builder's top-level phases with their duration: builds take minutes, users should see why."""

    def __init__(self) -> None:
        trt.IProgressMonitor.__init__(self)
        self._started: dict[str, float] = {}

    def phase_start(self, phase_name: str, parent_phase: str, num_steps: int) -> None:
        self._started[phase_name] = time.perf_counter()
        level = logging.INFO if not parent_phase else logging.DEBUG
        log.log(level, "TensorRT build: %s (%d steps)", phase_name, num_steps)

    def step_complete(self, phase_name: str, step: int) -> bool:
        return True  # never cancel

    def phase_finish(self, phase_name: str) -> None:
        seconds = time.perf_counter() - self._started.pop(phase_name, time.perf_counter())
        log.debug("TensorRT build: %s done in %.1f s", phase_name, seconds)


@dataclass(frozen=True)
class BuildSpec:
    onnx_path: Path
    #: "fp32", "fp16", "int8" or "best"; int8/best expect an explicit Q/DQ graph
    precision: str
    #: frames [B,3,H,W] min/opt/max
    min_shape: Shape
    opt_shape: Shape
    max_shape: Shape
    num_styles: int
    workspace_bytes: int
    timing_cache: Path


def _weights_shape(frames: Shape, num_styles: int) -> tuple[int, int]:
    return frames[0], num_styles


def build_engine(spec: BuildSpec) -> bytes:
    """Parse the ONNX graph and build a serialized engine (minutes; the timing cache makes rebuilds faster)."""
    builder = trt.Builder(LOGGER)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, LOGGER)
    if not parser.parse_from_file(str(spec.onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelError(f"TensorRT cannot parse {spec.onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, spec.workspace_bytes)
    config.progress_monitor = _Progress()
    if spec.precision in ("fp16", "best"):
        config.set_flag(trt.BuilderFlag.FP16)
    if spec.precision in ("int8", "best"):
        # Explicit quantization: the Q/DQ nodes carry the scales, no calibrator is involved.
        config.set_flag(trt.BuilderFlag.INT8)
    profile = builder.create_optimization_profile()
    profile.set_shape(INPUT_NAMES[0], trt.Dims(list(spec.min_shape)), trt.Dims(list(spec.opt_shape)), trt.Dims(list(spec.max_shape)))
    profile.set_shape(
        INPUT_NAMES[1],
        trt.Dims(list(_weights_shape(spec.min_shape, spec.num_styles))),
        trt.Dims(list(_weights_shape(spec.opt_shape, spec.num_styles))),
        trt.Dims(list(_weights_shape(spec.max_shape, spec.num_styles))),
    )
    config.add_optimization_profile(profile)
    _use_timing_cache(config, spec.timing_cache)
    start = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ModelError(f"TensorRT could not build an engine from {spec.onnx_path} (see the warnings above)")
    log.info("TensorRT engine built in %.0f s", time.perf_counter() - start)
    try:
        atomic_write_bytes(spec.timing_cache, bytes(config.get_timing_cache().serialize()))
    except OSError as e:
        log.warning("cannot save the timing cache %s: %s", spec.timing_cache, e.strerror or e)
    return bytes(serialized)


def _use_timing_cache(config: trt.IBuilderConfig, path: Path) -> None:
    """Attach the timing cache saved at ``path``, or a new one when it is missing, unreadable or foreign."""
    data = path.read_bytes() if path.is_file() else b""
    # create_timing_cache gives None for a blob it cannot parse (trtexec checks for exactly that), and
    # set_timing_cache refuses a cache from another device; either way the build starts from scratch.
    cache = config.create_timing_cache(data) if data else None
    if cache is None or not config.set_timing_cache(cache, ignore_mismatch=False):
        if data:
            log.warning("timing cache %s is unreadable or from another GPU/TensorRT; starting a new one", path)
        config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)


def load_engine(data: bytes) -> tuple[trt.Runtime, trt.ICudaEngine | None]:
    """Deserialize an engine; the engine is None when this TensorRT/GPU cannot use it (the caller rebuilds).

    The runtime comes back too: it must outlive the engine, so the caller keeps both.
    """
    runtime = trt.Runtime(LOGGER)
    return runtime, runtime.deserialize_cuda_engine(data)
