"""The artifact chain: a model as FP32 ONNX, INT8 Q/DQ ONNX, or a TensorRT engine (or torch-tensorrt
program) for this machine, answered from one cache folder and built on a miss.

Each request walks the chain as far as it needs: export (``realtime.export``), then calibration
(``calibration``), then compile (``realtime.compile``). Backends and the ``export``, ``calibrate`` and
``compile`` commands ask here and nowhere else, and this is the one module of the runtime that
imports ``calibration``.

The cache folder is ``$STYLECAST_CACHE`` or ``~/.cache/stylecast``; everything in it is derived and
safe to delete:

* ``onnx/<model sha256[:16]>.onnx``: the FP32 export;
* ``calibration/<key>.json``: activation ranges per model, method and calibration frames;
* ``int8/<key[:24]>.onnx`` (and ``.onnx.json``, the gate's report): the gated INT8 Q/DQ graph;
* ``engines/``: TensorRT engines and torch-tensorrt programs (``realtime.engine_cache``) and
  TensorRT's timing caches;
* ``bench/`` and others: what other parts of stylecast keep (``cache_dir``).

An entry that is missing, damaged or another model's is rebuilt with a warning, never served.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
from pathlib import Path

import calibration
import realtime.compile as compiler
from calibration import DEFAULT_SIZE as CALIBRATION_SIZE
from calibration import METHODS as CALIBRATION_METHODS
from calibration import CalibrationReport, FrameSet, GateThresholds, representative_frames, source_digest
from realtime.compile import DEFAULT_SHAPES, DEFAULT_WORKSPACE_GB, PRECISIONS, ROUTES, ShapeProfile, parse_shapes
from realtime.engine_cache import EngineCache, EngineKey
from realtime.errors import ModelError, OutputError
from realtime.export import export_onnx
from realtime.model import Generator
from realtime.modelfile import ModelInfo, atomic_write_bytes, load_model
from realtime.outputs import writable_folder

log = logging.getLogger(__name__)

__all__ = [
    "CALIBRATION_METHODS",
    "CALIBRATION_SIZE",
    "CalibrationReport",
    "GateThresholds",
    "cache_dir",
    "calibrate",
    "compile_engine",
    "engine_cache",
    "ensure_engine",
    "int8_cache_path",
    "int8_model_path",
    "onnx_model_path",
    "representative_frames",
]

_CACHE_FIX = "set STYLECAST_CACHE to a writable folder"


def cache_dir(kind: str) -> Path:
    """``$STYLECAST_CACHE/<kind>`` or ``~/.cache/stylecast/<kind>``: derived artifacts, safe to delete."""
    root = os.environ.get("STYLECAST_CACHE") or Path.home() / ".cache" / "stylecast"
    return Path(root) / kind


def _onnx_problem(path: Path, model_sha256: str) -> str | None:
    """Why the cached graph cannot serve this model (missing, damaged, another model's), or None."""
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


# --- FP32 ONNX -----------------------------------------------------------------------------------------


def onnx_model_path(generator: Generator, info: ModelInfo) -> Path:
    """The cached FP32 ONNX export of this model file, exported now if missing or not this model's.

    A cache that cannot be written costs a fresh export per run (into a temporary folder), not the run.
    """
    path = cache_dir("onnx") / f"{info.sha256[:16]}.onnx"
    problem = _onnx_problem(path, info.sha256)
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
        log.warning("cannot write the ONNX cache %s (%s); exporting for this run only (%s)", path.parent, e.strerror or e, _CACHE_FIX)
        path = export_onnx(generator, info, scratch / path.name)
    return path


# --- INT8 Q/DQ ONNX --------------------------------------------------------------------------------------


def int8_cache_path(
    info: ModelInfo, frames: str | Path | None = None, method: str = "percentile", size: tuple[int, int] = CALIBRATION_SIZE
) -> Path:
    """Where the cached INT8 graph for these settings lives.

    Keyed by the model's SHA-256, the method, the size and the content of the calibration source (the
    bundled sample clip when ``frames`` is None), so a retrained model or other frames get their own graph.
    """
    key = calibration.cache_key(info.sha256, method, source_digest(frames), "x".join(map(str, size)))
    return cache_dir("int8") / f"{key[:24]}.onnx"


def calibrate(
    generator: Generator,
    info: ModelInfo,
    frames: FrameSet,
    output: Path,
    *,
    method: str = "percentile",
    thresholds: GateThresholds | None = None,
) -> CalibrationReport:
    """``calibration.calibrate`` on the cached FP32 export, with activation ranges cached per frames."""
    ranges = writable_folder(cache_dir("calibration"), "calibration cache folder", _CACHE_FIX)
    return calibration.calibrate(
        generator,
        info,
        frames,
        output,
        method=method,
        thresholds=thresholds,
        fp32_onnx=onnx_model_path(generator, info),
        ranges_cache=ranges / f"{calibration.cache_key(info.sha256, method, frames.digest())}.json",
    )


def int8_model_path(generator: Generator, info: ModelInfo, *, frames: str | Path | None = None, method: str = "percentile") -> Path:
    """The cached INT8 Q/DQ graph for this model, calibrated now (once) when missing or damaged."""
    path = int8_cache_path(info, frames, method)
    problem = _onnx_problem(path, info.sha256)
    if problem is None:
        return path
    writable_folder(path.parent, "INT8 cache folder", _CACHE_FIX)
    if path.exists():
        log.warning("cached INT8 graph %s is unusable (%s); calibrating again", path, problem)
    else:
        log.info("calibrating INT8 for this model (once; cached in %s)", path.parent)
    report = calibrate(generator, info, representative_frames(frames), path, method=method)
    log.info("INT8 ready: PSNR %.2f dB vs FP32, %d layers INT8, %d FP32", report.figures.psnr_db, len(report.quantized), len(report.kept_fp))
    return path


# --- TensorRT engines -------------------------------------------------------------------------------------


def engine_cache() -> EngineCache:
    return EngineCache(cache_dir("engines"))


def ensure_engine(
    generator: Generator,
    info: ModelInfo,
    precision: str = "fp16",
    profile: ShapeProfile | None = None,
    *,
    route: str = "tensorrt",
    workspace_gb: float = DEFAULT_WORKSPACE_GB,
    force: bool = False,
    frames: str | Path | None = None,
    method: str = "percentile",
) -> tuple[Path, EngineKey]:
    """The cached engine for these settings, built now when missing, stale or corrupt.

    The ``tensorrt`` route builds from the FP32 export (``fp32``/``fp16``) or the INT8 graph calibrated
    on ``frames`` with ``method`` (``int8``/``best``); ``torch-tensorrt`` from the generator itself.
    """
    if precision not in PRECISIONS:
        raise ModelError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if route not in ROUTES:
        raise ModelError(f"unknown route {route!r}; choose one of {', '.join(ROUTES)}")
    profile = profile or parse_shapes(DEFAULT_SHAPES)
    # TensorRT and the GPU are checked first: calibrating for an engine that cannot be built wastes a minute.
    compiler.engine_key(info, precision, profile, route)
    graph = None
    if route == "tensorrt":
        int8 = precision in ("int8", "best")
        graph = int8_model_path(generator, info, frames=frames, method=method) if int8 else onnx_model_path(generator, info)
    key = compiler.engine_key(info, precision, profile, route, graph)
    cache = engine_cache()
    cache.check_writable()
    if force:
        cache.evict(key)
    elif cache.load(key) is not None:
        log.info("engine cache hit: %s", cache.paths(key)[0])
        return cache.paths(key)[0], key
    log.info("building a %s %s engine for %s on %s (minutes; cached afterwards)", route, precision, profile.spec(), key.gpu_name)
    if graph is not None:
        data = compiler.build_tensorrt(graph, info, precision, profile, workspace_gb, cache.timing_cache(key))
    else:
        data = compiler.build_torch_tensorrt(generator, info, precision, profile, workspace_gb)
    return cache.store(key, data, style_names=info.style_names), key


def compile_engine(
    model: Path | str | None = None,
    precision: str = "fp16",
    shapes: str | ShapeProfile = DEFAULT_SHAPES,
    output: Path | str | None = None,
    *,
    route: str = "tensorrt",
    workspace_gb: float = DEFAULT_WORKSPACE_GB,
    force: bool = False,
    frames: str | Path | None = None,
    method: str = "percentile",
) -> Path:
    """Python API of ``stylecast compile``: the engine's path (a copy at ``output`` when given)."""
    generator, info = load_model(model)
    profile = parse_shapes(shapes) if isinstance(shapes, str) else shapes
    path, _ = ensure_engine(
        generator, info, precision, profile, route=route, workspace_gb=workspace_gb, force=force, frames=frames, method=method
    )
    if output is None:
        return path
    output = Path(output)
    try:
        atomic_write_bytes(output, path.read_bytes())
    except OSError as e:
        raise OutputError(f"cannot write {output}: {e.strerror or e}") from None
    return output
