"""Representative frames for INT8 calibration and for the quality gate that checks its result.

Frames come from a video, a folder of images, one image, or the bundled sample clip. They are split
three ways so the gate never judges on data the calibrator saw: evenly spaced *calibration* frames,
*held-out* frames between them, and a short run of consecutive *clip* frames (from the end of a
video) on which temporal flicker is measured.
"""

from __future__ import annotations

import hashlib
import logging
from collections import deque
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from realtime.errors import InputError
from realtime.sources import VideoSource, open_source

log = logging.getLogger(__name__)

#: the processing size figures are quoted at (640x360, the real-time CPU target)
DEFAULT_SIZE = (640, 360)
#: frames decoded at most from a source (the first 20 s of a 30 fps video)
MAX_FRAMES = 600


def sample_video_path() -> Path:
    return Path(str(resources.files("realtime") / "assets" / "sample.mp4"))


@dataclass(frozen=True)
class FrameSet:
    """uint8 RGB ``[H,W,3]`` frames of one size; ``clip`` is empty for sources without motion."""

    calibration: tuple[np.ndarray, ...]
    held_out: tuple[np.ndarray, ...]
    clip: tuple[np.ndarray, ...]
    source: str

    @property
    def size(self) -> tuple[int, int]:
        h, w = self.calibration[0].shape[:2]
        return w, h

    def digest(self) -> str:
        """SHA-256 of the calibration frames: part of every cache key built from them."""
        h = hashlib.sha256()
        for frame in self.calibration:
            h.update(np.ascontiguousarray(frame).tobytes())
        return h.hexdigest()


def _evenly_spaced(items: list[np.ndarray], count: int) -> list[np.ndarray]:
    if len(items) <= count:
        return list(items)
    idx = np.linspace(0, len(items) - 1, count).round().astype(int)
    return [items[i] for i in idx]


def read_frames(
    spec: str | Path | None = None, size: tuple[int, int] = DEFAULT_SIZE, keep: int = 64, tail: int = 8
) -> tuple[list[np.ndarray], bool]:
    """About ``keep`` evenly strided frames of ``spec`` at ``size``, then (videos only) its last ``tail``
    consecutive frames; and whether ``spec`` is a video. At most ``MAX_FRAMES`` frames are decoded, and
    only the kept ones stay in memory."""
    source = open_source(sample_video_path() if spec is None else spec, size=size)
    is_video = isinstance(source, VideoSource)
    total = min(getattr(source, "frame_count", None) or MAX_FRAMES, MAX_FRAMES)
    step = max(1, total // keep)
    strided: list[tuple[int, np.ndarray]] = []
    last: deque[tuple[int, np.ndarray]] = deque(maxlen=tail if is_video else 0)
    with source:
        for index, frame in enumerate(source):
            if index >= MAX_FRAMES:
                break
            if index % step == 0:
                strided.append((index, frame.image))
            last.append((index, frame.image))
    if not strided:
        raise InputError(f"no frames in {spec}")
    tail_start = last[0][0] if last else MAX_FRAMES
    return [f for i, f in strided if i < tail_start] + [f for _, f in last], is_video


def split_frames(
    frames: list[np.ndarray],
    is_video: bool,
    source: str,
    calibration: int = 16,
    held_out: int = 8,
    clip: int = 8,
) -> FrameSet:
    """Split decoded frames into disjoint calibration, held-out and clip sets."""
    if len(frames) < 2:
        raise InputError(f"{source}: calibration needs at least 2 frames (got {len(frames)}); give a video or a folder")
    tail: list[np.ndarray] = []
    if is_video and len(frames) >= clip + 2:
        frames, tail = frames[:-clip], frames[-clip:]
    picked = _evenly_spaced(frames, calibration + held_out)
    # Held-out frames sit between calibration frames, so both sets spread over the whole source.
    n_held = max(1, min(held_out, len(picked) // 2))
    held_idx = set(np.linspace(0, len(picked) - 1, n_held + 2)[1:-1].round().astype(int).tolist())
    held = [f for i, f in enumerate(picked) if i in held_idx]
    calib = [f for i, f in enumerate(picked) if i not in held_idx]
    return FrameSet(tuple(calib), tuple(held), tuple(tail), source)


def representative_frames(
    spec: str | Path | None = None,
    size: tuple[int, int] = DEFAULT_SIZE,
    calibration: int = 16,
    held_out: int = 8,
    clip: int = 8,
) -> FrameSet:
    """Frames of ``spec`` (the bundled sample clip when None) split for calibration and the gate."""
    frames, is_video = read_frames(spec, size, keep=4 * (calibration + held_out), tail=clip)
    name = "bundled sample.mp4" if spec is None else str(spec)
    fs = split_frames(frames, is_video, name, calibration, held_out, clip)
    log.info(
        "%s: %d calibration, %d held-out, %d clip frames at %dx%d",
        name, len(fs.calibration), len(fs.held_out), len(fs.clip), *fs.size,
    )
    return fs


def source_digest(spec: str | Path | None) -> str:
    """SHA-256 identifying a frame source's content without decoding it (files are hashed, not names)."""
    from realtime.modelfile import file_sha256

    path = sample_video_path() if spec is None else Path(spec)
    if not path.exists():
        raise InputError(f"calibration frames not found: {path}")
    if path.is_file():
        return file_sha256(path)
    if not path.is_dir():
        raise InputError(f"calibration frames {path} are neither a video, an image nor a folder of images")
    h = hashlib.sha256()
    for file in sorted(p for p in path.iterdir() if p.is_file()):
        h.update(file.name.encode() + b"\0" + file_sha256(file).encode())
    return h.hexdigest()
