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
import pickle
import stat
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
DEFAULT_MODEL_NAME = "fast.stylecast"
#: longest file name (one path component) in bytes that Linux, macOS and Windows file systems take
NAME_MAX = 255
#: largest model file read: the quality architecture is ~4 MB, so this only stops devices and runaway files
MAX_MODEL_BYTES = 1 << 30
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


#: The models that ship with the package, by the names ``--model`` and ``Stylizer.load`` accept.
BUNDLED_MODELS = ("fast", "quality")


def bundled_model_path(name: str) -> Path:
    return Path(str(resources.files("realtime") / "assets" / f"{name}.stylecast"))


def bundled_models() -> list[str]:
    """The bundled model names whose files this installation has."""
    return [name for name in BUNDLED_MODELS if bundled_model_path(name).is_file()]


def default_model_path() -> Path:
    return Path(str(resources.files("realtime") / "assets" / DEFAULT_MODEL_NAME))


def resolve_model_path(path: Path | str | None) -> Path:
    """A model file's path: None is the default model, and a bare bundled name (``fast``) that is not
    a file in the current folder is that bundled model."""
    if path is None:
        return default_model_path()
    p = Path(path)
    if str(path) in BUNDLED_MODELS and not p.exists():
        bundled = bundled_model_path(str(path))
        if not bundled.is_file():
            have = ", ".join(bundled_models()) or "none"
            raise ModelError(f"the {path} model is not bundled with this stylecast yet (bundled: {have})")
        return bundled
    return p


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def temp_path_beside(path: Path, suffix: str = ".part") -> Path:
    """Create a new, unique, empty file beside ``path`` for writing it in full before a rename.

    The name is random (two runs writing one output never share it, and no existing file is ever
    reused) and keeps within the 255-byte name limit however long ``path``'s name is.
    """
    room = NAME_MAX - len(os.fsencode(suffix)) - 10  # the dot, mkstemp's 8 random characters, the dot
    stem = os.fsdecode(os.fsencode(path.name)[: max(room, 0)])
    fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=suffix, dir=path.parent)
    # mkstemp creates 0600; give the file the permissions an ordinary open() would.
    os.chmod(fd, 0o666 & ~_UMASK)
    os.close(fd)
    return Path(tmp)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path`` and rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_beside(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
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


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def load_plain(path: Path, what: str, map_location: Any = "cpu") -> Any:
    """``torch.load`` of tensors and plain data only, so a crafted file cannot run code; one-line errors."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only" not in str(e).lower():
            raise ModelError(f"corrupt {what} {path}: {_first_line(e)}") from None
        raise ModelError(
            f"{what} {path} holds Python objects, not only tensors and plain data; "
            "refusing to load it (unpickling such a file can run code)"
        ) from None
    except Exception as e:  # torch raises many types for damaged archives
        raise ModelError(f"corrupt {what} {path}: {type(e).__name__}: {_first_line(e)}") from e


def _check_regular_file(path: Path) -> None:
    """Only a regular file of sane size is read: a FIFO or /dev/zero would block or never end."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ModelError(f"model file not found: {path}") from None
    except OSError as e:
        raise ModelError(f"cannot read model file {path}: {e.strerror or e}") from None
    if stat.S_ISDIR(st.st_mode):
        raise ModelError(f"model path is a directory, not a model file: {path}")
    if not stat.S_ISREG(st.st_mode):
        raise ModelError(f"model path is not a regular file (a device, FIFO or socket): {path}")
    if st.st_size > MAX_MODEL_BYTES:
        raise ModelError(f"model file {path} is {st.st_size >> 20} MiB, over the {MAX_MODEL_BYTES >> 20} MiB limit")


def _read_payload(path: Path) -> dict[str, Any]:
    _check_regular_file(path)
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
    payload = load_plain(path, "model file")
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelError(f"not a stylecast model file: {path}")
    version = payload.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ModelError(f"{path} has an invalid model format version {version!r} (expected a whole number >= 1)")
    if version > FORMAT_VERSION:
        raise ModelError(
            f"{path} has model format version {version}, newer than this stylecast reads ({FORMAT_VERSION}); upgrade stylecast"
        )
    return payload


def _json_field(payload: dict[str, Any], key: str, default: str, kind: type) -> Any:
    """A JSON-encoded field of the payload, checked to be a ``kind`` (dict or list)."""
    text = payload.get(key, default)
    if not isinstance(text, str):
        raise ValueError(f"field {key!r} is not JSON text")
    value = json.loads(text)
    if not isinstance(value, kind):
        raise ValueError(f"field {key!r} is not a JSON {'object' if kind is dict else 'list'}")
    return value


def _check_style_names(path: Path, names: list[Any]) -> None:
    """Every style must be selectable by ``--style NAME`` and named once."""
    seen: set[str] = set()
    for name in names:
        if not isinstance(name, str) or not name.strip() or name != name.strip() or any(c in name for c in ",:\n"):
            raise ModelError(f"model file {path} has a style name {name!r} that --style cannot select")
        if name in seen:
            raise ModelError(f"model file {path} names the style {name!r} twice")
        seen.add(name)


def _state_dict(path: Path, raw: Any) -> dict[str, torch.Tensor]:
    """fp32 weights, each a finite tensor (NaN or Inf weights would render black frames silently)."""
    if not isinstance(raw, dict) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise ModelError(f"model file {path} is damaged: its weights are not all tensors")
    state = {str(k): v.float() for k, v in raw.items()}
    bad = next((k for k, v in state.items() if not torch.isfinite(v).all()), None)
    if bad is not None:
        raise ModelError(f"model file {path} holds NaN or infinite weights (in {bad}); it cannot be used")
    return state


def _check_shapes(path: Path, cfg: GeneratorConfig, state: dict[str, torch.Tensor]) -> None:
    """The weights must be the ones ``cfg`` describes; checked on the meta device, which allocates nothing."""
    with torch.device("meta"):
        expected = {k: v.shape for k, v in Generator(cfg).state_dict().items()}
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    wrong = [k for k in expected if k in state and state[k].shape != expected[k]]
    if missing or extra or wrong:
        what = (
            f"lacks {missing[0]}" if missing
            else f"has {extra[0]}, which its config has no place for" if extra
            else f"holds {wrong[0]} as {tuple(state[wrong[0]].shape)} where its config needs {tuple(expected[wrong[0]])}"
        )
        raise ModelError(f"model file {path} does not match its config ({cfg.arch}, {cfg.channels} channels): it {what}")


def load_model(path: Path | str | None = None) -> tuple[Generator, ModelInfo]:
    """Load a model file (the bundled default when ``path`` is None) into an eval-mode fp32 generator."""
    p = resolve_model_path(path)
    payload = _read_payload(p)
    try:
        cfg = GeneratorConfig.from_dict(_json_field(payload, "config", "", dict))
        style_dicts = _json_field(payload, "styles", "", list)
        train_config = _json_field(payload, "train_config", "{}", dict)
        names = [d["name"] if isinstance(d, dict) else d for d in style_dicts]
        _check_style_names(p, names)
        thumbs = payload.get("thumbnails") or [None] * len(style_dicts)
        styles = tuple(
            StyleInfo(d["name"], d.get("source_sha256", ""), t if isinstance(t, torch.Tensor) and t.numel() else None)
            for d, t in zip(style_dicts, thumbs, strict=False)
        )
        if cfg.num_styles < 1:
            raise ModelError(f"model file {p} holds no styles")
        if len(styles) != cfg.num_styles:
            raise ModelError(f"model file {p} names {len(styles)} styles for {cfg.num_styles} style slots")
        state = _state_dict(p, payload["state_dict"])
        _check_shapes(p, cfg, state)
        generator = Generator(cfg)
        generator.load_state_dict(state)
    except (KeyError, ValueError, TypeError, RuntimeError, AttributeError) as e:
        raise ModelError(f"model file {p} is damaged or does not match its config: {_first_line(e)}") from e
    generator.eval()
    version = payload["version"]
    info = ModelInfo(
        config=cfg,
        styles=styles,
        train_config=train_config,
        perceptual=str(payload.get("perceptual", "")),
        version=version,
        path=p,
        sha256=file_sha256(p),
    )
    log.debug("loaded %s: %s, %d styles", p, cfg.arch, cfg.num_styles)
    return generator, info
