"""The ``.stylecast`` model file: weights plus everything needed to use and reproduce them.

A model file is a torch archive holding only tensors, strings and numbers (read with
``weights_only=True``, so loading a file never runs code). It carries the generator config, the style
names with the SHA-256 of each source painting and a small thumbnail, the training config, the
perceptual network the model was trained against, and a format version.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from realtime.errors import ModelError
from realtime.model import Generator, GeneratorConfig

log = logging.getLogger(__name__)

FORMAT = "stylecast-model"
FORMAT_VERSION = 1
DEFAULT_MODEL_NAME = "default.stylecast"
# Read once at import: os.umask can only be read by setting it, which is not thread-safe later on.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


@dataclass(frozen=True)
class StyleInfo:
    name: str
    source_sha256: str = ""
    #: uint8 [h, w, 3] RGB thumbnail of the painting (small; for UIs and `stylecast styles`).
    thumbnail: torch.Tensor | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ModelInfo:
    config: GeneratorConfig
    styles: tuple[StyleInfo, ...]
    train_config: dict[str, Any]
    perceptual: str
    version: int = FORMAT_VERSION
    path: Path | None = None
    sha256: str = ""

    @property
    def style_names(self) -> list[str]:
        return [s.name for s in self.styles]


def default_model_path() -> Path:
    return Path(str(resources.files("realtime") / "assets" / DEFAULT_MODEL_NAME))


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path`` and rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        # mkstemp creates 0600; give the file the permissions an ordinary open() would.
        os.chmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_model(
    path: Path | str,
    generator: Generator,
    styles: list[StyleInfo],
    train_config: dict[str, Any] | None = None,
    perceptual: str = "",
) -> None:
    cfg = generator.cfg
    if len(styles) != cfg.num_styles:
        raise ValueError(f"{len(styles)} style entries for a {cfg.num_styles}-style generator")
    payload: dict[str, Any] = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "config": json.dumps(cfg.to_dict()),
        "styles": json.dumps([{"name": s.name, "source_sha256": s.source_sha256} for s in styles]),
        "thumbnails": [s.thumbnail if s.thumbnail is not None else torch.zeros(0, dtype=torch.uint8) for s in styles],
        "train_config": json.dumps(train_config or {}, default=str),
        "perceptual": perceptual,
        # fp16 halves the file; the generator is trained and validated to tolerate it.
        "state_dict": {k: v.detach().to("cpu", torch.float16) for k, v in generator.state_dict().items()},
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(Path(path), buf.getvalue())


def _read_payload(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise ModelError(f"model file not found: {path}")
    if path.is_dir():
        raise ModelError(f"model path is a directory, not a model file: {path}")
    if not zipfile.is_zipfile(path):
        raise ModelError(f"not a stylecast model (unreadable or truncated file): {path}")
    # torch.load does not check the archive's CRCs: flipped bits in the weights would load silently.
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise ModelError(f"corrupt model file {path}: {e}") from None
    if damaged is not None:
        raise ModelError(f"corrupt model file {path}: checksum mismatch in {damaged}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for damaged archives
        raise ModelError(f"corrupt model file {path}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelError(f"not a stylecast model file: {path}")
    version = payload.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelError(
            f"{path} has model format version {version}, newer than this stylecast reads ({FORMAT_VERSION}); upgrade stylecast"
        )
    return payload


def load_model(path: Path | str | None = None) -> tuple[Generator, ModelInfo]:
    """Load a model file (the bundled default when ``path`` is None) into an eval-mode fp32 generator."""
    p = Path(path) if path is not None else default_model_path()
    payload = _read_payload(p)
    try:
        cfg = GeneratorConfig.from_dict(json.loads(payload["config"]))
        style_dicts = json.loads(payload["styles"])
        thumbs = payload.get("thumbnails") or [None] * len(style_dicts)
        styles = tuple(
            StyleInfo(d["name"], d.get("source_sha256", ""), t if t is not None and t.numel() else None)
            for d, t in zip(style_dicts, thumbs, strict=False)
        )
        generator = Generator(cfg)
        state = {k: v.float() for k, v in payload["state_dict"].items()}
        generator.load_state_dict(state)
    except (KeyError, ValueError, TypeError, RuntimeError) as e:
        raise ModelError(f"model file {p} is damaged or does not match its config: {str(e).splitlines()[0]}") from e
    if len(styles) != cfg.num_styles:
        raise ModelError(f"model file {p} names {len(styles)} styles for {cfg.num_styles} style slots")
    generator.eval()
    info = ModelInfo(
        config=cfg,
        styles=styles,
        train_config=json.loads(payload.get("train_config", "{}")),
        perceptual=str(payload.get("perceptual", "")),
        version=int(payload["version"]),
        path=p,
        sha256=file_sha256(p),
    )
    log.debug("loaded %s: %s, %d styles", p, cfg.arch, cfg.num_styles)
    return generator, info
