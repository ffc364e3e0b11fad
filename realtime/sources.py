"""Frame sources: video files and streams (PyAV), webcams (OpenCV), images, and replayed files.

Every source yields ``Frame``s: RGB uint8 at the processing size, with the frame's index, its
presentation time (pts in the stream's time base and seconds) and the wall-clock moment it was
captured or decoded, from which the pipeline measures end-to-end latency. ``live`` sources run
under the latest-frame policy.
"""

from __future__ import annotations

import itertools
import logging
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from realtime.errors import InputError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
STREAM_SCHEMES = ("rtsp", "rtmp", "udp", "tcp", "srt", "http", "https")
#: largest frame processed at its own size unless --size/--max-side say otherwise (4K UHD)
MAX_PIXELS = 3840 * 2160


@dataclass
class Frame:
    image: np.ndarray  # uint8 [H, W, 3] RGB
    index: int
    seconds: float  # presentation time from the start of the stream
    captured: float  # time.perf_counter() when the frame was decoded/captured
    pts: int | None = None  # in the source's time base (video sources only)
    decode_s: float = 0.0  # time spent decoding and converting this frame
    name: str = ""  # file name for image sources
    alpha: np.ndarray | None = None  # uint8 [H, W] transparency of RGBA images, kept for image outputs


def fit_size(
    width: int, height: int, max_side: int | None = None, size: tuple[int, int] | None = None
) -> tuple[int, int]:
    """The processing size: ``size`` as given, else scaled so the long side <= ``max_side``.

    Without either, frames above ``MAX_PIXELS`` (8K and up) are scaled down to it with a warning:
    their activations alone would take many GiB. Scaled sizes are rounded to even numbers, which
    H.264 in yuv420p requires.
    """
    if size is not None:
        return size
    if max_side is None:
        if width * height <= MAX_PIXELS:
            return width, height
        scale = (MAX_PIXELS / (width * height)) ** 0.5
        fitted = max(2, int(width * scale / 2) * 2), max(2, int(height * scale / 2) * 2)
        log.warning(
            "input is %dx%d; processing at %dx%d to bound memory (--size or --max-side to choose)",
            width,
            height,
            *fitted,
        )
        return fitted
    if max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if (image.shape[1], image.shape[0]) == size:
        return image
    # INTER_AREA averages instead of skipping pixels when shrinking: no aliasing shimmer in video.
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


class Source(ABC):
    live: bool = False
    #: frames per second when known (video/camera); None for images
    fps: float | None = None
    #: total frames when known (for progress and ETA)
    frame_count: int | None = None
    #: the processing (output) size, (width, height); None when it varies (image folders)
    size: tuple[int, int] | None = None
    #: the input file, for sinks that copy its audio
    path: Path | None = None
    #: exact frame rate and the time base of ``Frame.pts`` (video sources; encoders reuse them)
    rate: Fraction | None = None
    time_base: Fraction | None = None

    @abstractmethod
    def __iter__(self) -> Iterator[Frame]:
        """Yield frames in order until the source ends (files) or is closed (live)."""

    def close(self) -> None:  # noqa: B027 - sources without resources need nothing
        """Release files and devices."""

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_file(path: Path) -> None:
    if not path.exists():
        raise InputError(f"input not found: {path}")
    if path.is_file() and path.stat().st_size == 0:
        raise InputError(f"input file is empty: {path}")


class VideoSource(Source):
    """Any container/codec FFmpeg reads, or a network stream URL; rotation metadata is applied."""

    def __init__(self, path: str | Path, max_side: int | None = None, size: tuple[int, int] | None = None) -> None:
        import av

        is_url = isinstance(path, str) and "://" in path
        if not is_url:
            path = Path(path)
            _check_file(path)
            if path.is_dir():
                raise InputError(f"input is a directory with no images: {path}")
            self.path = path
        self.live = is_url and str(path).split("://")[0].lower() in STREAM_SCHEMES
        try:
            self.container = av.open(str(path), "r", timeout=10.0 if is_url else None)
        except (av.error.FFmpegError, UnicodeDecodeError) as e:
            reason = e.strerror if hasattr(e, "strerror") else e
            what = f"cannot open stream {path}" if is_url else f"cannot read {path} (not a video, or damaged)"
            raise InputError(f"{what}: {reason}") from None
        if not self.container.streams.video:
            # An MP4 cut before its index (moov at the end) opens with no streams at all.
            hint = "" if self.container.streams else " (truncated or damaged file?)"
            self.container.close()
            raise InputError(f"no video stream in {path}{hint}")
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"
        self.tb: Fraction = self.stream.time_base or Fraction(1, 90000)
        self.time_base = self.tb
        rate = self.stream.average_rate or self.stream.guessed_rate
        self.rate = Fraction(rate) if rate else None
        self.fps = float(rate) if rate else None
        w, h = self.stream.codec_context.width, self.stream.codec_context.height
        if not w or not h:
            self.container.close()
            raise InputError(f"video stream in {path} has no frame size (damaged file?)")
        # The first frame is decoded now: it carries the rotation, and proves the stream decodes.
        self._decoded = self.container.decode(self.stream)
        try:
            self._first: Any = next(self._decoded)
        except (StopIteration, av.error.FFmpegError):
            self.container.close()
            raise InputError(f"no decodable video frames in {path}") from None
        self.rotation = int(round((self._first.rotation or 0) / 90.0)) % 4 * 90
        if self.rotation in (90, 270):
            w, h = h, w
        self.size = fit_size(w, h, max_side, size)
        self.frame_count = self._count()

    def _count(self) -> int | None:
        if self.stream.frames:
            return int(self.stream.frames)
        if self.stream.duration and self.fps:
            return round(float(self.stream.duration * self.tb) * self.fps)
        return None

    def __iter__(self) -> Iterator[Frame]:
        import av

        first, self._first = self._first, None
        if first is None:
            raise RuntimeError("a VideoSource can be iterated once")
        start = first.pts if first.pts is not None else 0
        decoded = itertools.chain([first], self._decoded)
        index = 0
        furthest = 0.0  # timestamps may jump back; truncation is judged by the furthest one
        # Rotation swaps the sides: scale to the pre-rotation size, then rotate.
        assert self.size is not None
        w, h = self.size if self.rotation in (0, 180) else (self.size[1], self.size[0])
        while True:
            t0 = time.perf_counter()
            try:
                av_frame = next(decoded)
            except StopIteration:
                self._warn_if_cut_short(index, furthest)
                return
            except av.error.FFmpegError as e:
                # A damaged tail: keep what decoded, like every player does.
                log.warning("decoding stopped at frame %d: %s", index, e)
                return
            image: np.ndarray = av_frame.to_ndarray(format="rgb24", width=w, height=h, interpolation="AREA")
            if self.rotation:
                image = np.ascontiguousarray(np.rot90(image, self.rotation // 90))
            t1 = time.perf_counter()
            pts = av_frame.pts
            seconds = float((pts - start) * self.tb) if pts is not None else index / (self.fps or 25.0)
            furthest = max(furthest, seconds)
            yield Frame(image, index, seconds, t1, pts=pts, decode_s=t1 - t0)
            index += 1

    def _warn_if_cut_short(self, frames: int, last_seconds: float) -> None:
        """A file cut mid-stream decodes cleanly up to the cut: compare with the duration it declares."""
        if self.stream.duration:
            declared = float(self.stream.duration * self.tb)
        elif self.container.duration:
            declared = self.container.duration / 1_000_000  # AV_TIME_BASE
        else:
            return
        end = last_seconds + 1.0 / (self.fps or 25.0)
        if end < 0.9 * declared - 0.1:
            log.warning(
                "%s ends at %.2f s of the %.2f s it declares (truncated file?): %d frames stylized",
                self.container.name,
                end,
                declared,
                frames,
            )

    def close(self) -> None:
        self.container.close()


class ReplaySource(Source):
    """A video file delivered at its own frame rate, as a camera would: the live path without a camera."""

    live = True

    def __init__(
        self, path: str | Path, max_side: int | None = None, size: tuple[int, int] | None = None, speed: float = 1.0
    ) -> None:
        self.video = VideoSource(path, max_side, size)
        v = self.video
        self.size, self.fps, self.frame_count, self.path, self.rate, self.time_base = (
            v.size,
            v.fps,
            v.frame_count,
            v.path,
            v.rate,
            v.time_base,
        )
        self.speed = speed

    def __iter__(self) -> Iterator[Frame]:
        start = time.perf_counter()
        for frame in self.video:
            due = start + frame.seconds / self.speed
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            # The frame "arrives" now; latency counts from here, as with a camera.
            frame.captured = time.perf_counter()
            yield frame

    def close(self) -> None:
        self.video.close()


class CameraSource(Source):
    """A webcam through OpenCV ``VideoCapture``: a device index or a device path."""

    live = True

    #: seconds to wait before each reconnect attempt after the camera stops delivering (then the run ends)
    reconnect_delays: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)

    def __init__(
        self,
        device: int | str = 0,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        max_side: int | None = None,
    ) -> None:
        self.device, self.requested = device, (width, height, fps)
        self.capture = self._open()
        if not self.capture.isOpened():
            raise InputError(f"cannot open camera {device!r} (not connected, busy, or no permission)")
        ok, first = self.capture.read()
        if not ok or first is None:
            self.capture.release()
            raise InputError(f"camera {device!r} opened but delivers no frames")
        self._first: np.ndarray | None = first
        self.fps = self.capture.get(cv2.CAP_PROP_FPS) or fps or 30.0
        self.size = fit_size(first.shape[1], first.shape[0], max_side)
        if width and height and (first.shape[1], first.shape[0]) != (width, height):
            log.warning("camera gives %dx%d, not the requested %dx%d", first.shape[1], first.shape[0], width, height)

    def _open(self) -> Any:
        capture = cv2.VideoCapture(self.device)
        if capture.isOpened():
            width, height, fps = self.requested
            # Drivers queue several frames by default; a live filter wants the newest one, not the oldest.
            capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
            if width and height:
                capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
                capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
            if fps:
                capture.set(cv2.CAP_PROP_FPS, fps)
        return capture

    def _reconnect(self) -> bool:
        """After an unplug: reopen with growing pauses; False when the camera does not come back."""
        self.capture.release()
        for attempt, delay in enumerate(self.reconnect_delays, start=1):
            log.warning(
                "camera %r stopped delivering frames; reconnecting in %.1f s (attempt %d)", self.device, delay, attempt
            )
            time.sleep(delay)
            self.capture = self._open()
            ok, frame = self.capture.read() if self.capture.isOpened() else (False, None)
            if ok and frame is not None:
                log.warning("camera %r reconnected", self.device)
                self._first = frame
                return True
            self.capture.release()
        log.warning("camera %r is gone; ending the run", self.device)
        return False

    def __iter__(self) -> Iterator[Frame]:
        start = time.perf_counter()
        index = 0
        assert self.size is not None
        while True:
            t0 = time.perf_counter()
            if self._first is not None:
                bgr, self._first = self._first, None
            else:
                ok, bgr = self.capture.read()
                if not ok or bgr is None:
                    if self._reconnect():
                        continue
                    return
            t1 = time.perf_counter()
            code = cv2.COLOR_GRAY2RGB if bgr.ndim == 2 else cv2.COLOR_BGR2RGB
            image = resize(cv2.cvtColor(bgr, code), self.size)
            t2 = time.perf_counter()
            yield Frame(image, index, t1 - start, t1, decode_s=t2 - t0)
            index += 1

    def close(self) -> None:
        self.capture.release()


class ImageSource(Source):
    """One image, or every image in a folder (sorted by name)."""

    def __init__(self, path: str | Path, max_side: int | None = None, size: tuple[int, int] | None = None) -> None:
        path = Path(path)
        _check_file(path)
        self.is_folder = path.is_dir()
        if self.is_folder:
            self.files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not self.files:
                raise InputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {path}")
        else:
            self.files = [path]
        self.path = path
        self.max_side, self.fixed_size = max_side, size
        self.frame_count = len(self.files)
        self.size = size if len(self.files) > 1 else fit_size(*_image_size(self.files[0]), max_side, size)

    def __iter__(self) -> Iterator[Frame]:
        read = 0
        for index, file in enumerate(self.files):
            t0 = time.perf_counter()
            try:
                rgb, alpha = read_image(file)
            except InputError:
                if not self.is_folder:
                    raise
                # One damaged picture should not cost the rest of the folder.
                log.warning("skipping unreadable image %s", file)
                continue
            read += 1
            size = fit_size(rgb.shape[1], rgb.shape[0], self.max_side, self.fixed_size)
            image = resize(rgb, size)
            alpha = resize(alpha, size) if alpha is not None else None
            t1 = time.perf_counter()
            yield Frame(image, index, float(index), t1, decode_s=t1 - t0, name=file.name, alpha=alpha)
        if not read:
            raise InputError(f"none of the {len(self.files)} images in {self.path} could be read")


def read_image(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Any 8/16-bit or float image, gray, RGB or RGBA -> (uint8 RGB, uint8 alpha or None)."""
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise InputError(f"cannot read image {path}")
    if raw.dtype == np.uint16:
        raw = (raw.astype(np.float32) * (255.0 / 65535.0) + 0.5).astype(np.uint8)
    elif raw.dtype.kind == "f":
        raw = (np.clip(np.nan_to_num(raw), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    elif raw.dtype != np.uint8:
        raise InputError(f"image {path} has unsupported sample type {raw.dtype}")
    if raw.ndim == 2 or raw.shape[2] == 1:
        return cv2.cvtColor(raw, cv2.COLOR_GRAY2RGB), None
    if raw.shape[2] == 4:
        return cv2.cvtColor(raw, cv2.COLOR_BGRA2RGB), np.ascontiguousarray(raw[..., 3])
    return cv2.cvtColor(raw, cv2.COLOR_BGR2RGB), None


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.size
    except (UnidentifiedImageError, OSError):
        raise InputError(f"cannot read image {path}") from None


def is_camera(spec: str) -> bool:
    return spec.isdigit() or re.fullmatch(r"/dev/video\d+", spec) is not None


def open_source(
    spec: str | Path | int,
    max_side: int | None = None,
    size: tuple[int, int] | None = None,
    live: bool = False,
) -> Source:
    """Pick the source for a path, URL or camera index. ``live`` replays a file in real time."""
    text = str(spec)
    if isinstance(spec, int) or is_camera(text):
        return CameraSource(int(text) if text.isdigit() else text, max_side=max_side)
    path = Path(text)
    if "://" not in text and (path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES):
        if live:
            raise InputError("--live replays a video file; images have no frame rate")
        return ImageSource(path, max_side, size)
    if live:
        return ReplaySource(text, max_side, size)
    return VideoSource(text, max_side, size)
