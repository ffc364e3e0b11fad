"""The engine cache: a built TensorRT engine is reused as long as everything it depends on is unchanged.

An engine is valid only for the model weights (and, for INT8, the calibrated graph), precision and
shape profile it was built with, and only on the GPU architecture and TensorRT version that built it
(for the torch-tensorrt route, also the torch and torch-tensorrt versions). All of these form the key;
its SHA-256 names the files. Beside each engine a JSON file records the key and the engine's own SHA-256, so a
stale entry (key mismatch, other format) or a corrupt one (truncated, edited) is noticed on load,
reported with a warning and rebuilt: the cache never crashes a run and never serves a wrong engine.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from realtime.errors import OutputError
from realtime.modelfile import atomic_write_bytes
from realtime.outputs import writable_folder

log = logging.getLogger(__name__)

#: bump when what an entry holds changes meaning; older entries are then rebuilt
CACHE_FORMAT = 1


@dataclass(frozen=True)
class EngineKey:
    model_sha256: str
    precision: str
    #: canonical shape profile, e.g. "min=1x3x16x16,opt=1x3x720x1280,max=1x3x2160x3840"
    profile: str
    gpu_name: str
    compute_capability: str
    tensorrt_version: str
    #: "tensorrt" (TensorRT Python API) or "torch-tensorrt" (dynamo ExportedProgram)
    route: str = "tensorrt"
    #: SHA-256 of the ONNX graph the engine is built from (the FP32 export or the calibrated Q/DQ graph,
    #: which differs per calibration method and frames); empty for the torch-tensorrt route
    graph_sha256: str = ""
    #: torch and torch-tensorrt versions for the torch-tensorrt route, whose ExportedProgram holds their
    #: graph and runtime ops and is loaded by them, not by TensorRT alone; empty for the tensorrt route
    frontend_versions: str = ""

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()


class EngineCache:
    """Engines under ``root``: ``<digest>.engine`` plus ``<digest>.json`` (the key, the engine hash)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def paths(self, key: EngineKey) -> tuple[Path, Path]:
        stem = key.digest()[:32]
        return self.root / f"{stem}.engine", self.root / f"{stem}.json"

    def timing_cache(self, key: EngineKey) -> Path:
        """TensorRT's timing cache for the builds of ``key``'s GPU architecture and TensorRT version."""
        return self.root / f"timing-sm{key.compute_capability.replace('.', '')}-trt{key.tensorrt_version}.cache"

    def check_writable(self) -> None:
        """Fail now, with the fix in the message, rather than after a build that takes minutes."""
        writable_folder(self.root, "engine cache folder", "set STYLECAST_CACHE to a writable folder")

    def load(self, key: EngineKey) -> bytes | None:
        """The cached engine for ``key``, or None when there is none or it cannot be trusted."""
        engine_path, meta_path = self.paths(key)
        if not engine_path.exists() and not meta_path.exists():
            return None
        problem = self._problem(key, engine_path, meta_path)
        if problem is None:
            return engine_path.read_bytes()
        log.warning("cached engine %s is unusable (%s); rebuilding it", engine_path.name, problem)
        self.evict(key)
        return None

    @staticmethod
    def _problem(key: EngineKey, engine_path: Path, meta_path: Path) -> str | None:
        try:
            meta: dict[str, Any] = json.loads(meta_path.read_text())
            data = engine_path.read_bytes()
        except FileNotFoundError as e:
            return f"{Path(e.filename or '').name or 'a file'} is missing"
        except (OSError, ValueError) as e:
            return f"unreadable: {e}"
        if not isinstance(meta, dict) or meta.get("format") != CACHE_FORMAT:
            return "written by another stylecast version"
        if meta.get("key") != asdict(key):
            return "built for another model, precision, profile, GPU or TensorRT (or torch-tensorrt) version"
        if meta.get("engine_sha256") != hashlib.sha256(data).hexdigest():
            return "engine file is corrupt (checksum mismatch)"
        return None

    def store(self, key: EngineKey, engine: bytes, **extra: Any) -> Path:
        engine_path, meta_path = self.paths(key)
        meta = {"format": CACHE_FORMAT, "key": asdict(key), "engine_sha256": hashlib.sha256(engine).hexdigest(), **extra}
        try:
            # Engine first, metadata last: a crash in between leaves an entry that fails its check.
            atomic_write_bytes(engine_path, engine)
            atomic_write_bytes(meta_path, json.dumps(meta, indent=2).encode())
        except OSError as e:
            raise OutputError(f"cannot write the engine cache {self.root}: {e.strerror or e}") from None
        return engine_path

    def evict(self, key: EngineKey) -> None:
        for path in self.paths(key):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError as e:
                log.warning("cannot remove %s: %s", path, e.strerror or e)
