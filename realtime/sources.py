"""Frame sources: video files and streams (PyAV), webcams (OpenCV), images, and replayed files.

Every source yields ``Frame``s: RGB uint8 at the processing size, with the frame's index, its
presentation time (pts in the stream's time base and seconds) and the wall-clock moment it was
captured or decoded, from which the pipeline measures end-to-end latency. ``live`` sources run
under the latest-frame policy.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import logging
import os
import re
import stat
import time
import warnings
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from realtime.errors import InputError
from realtime.outputs import input_path

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
#: URL schemes of live streams (latest-frame policy); http(s) is live only without a duration
LIVE_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "rtp", "udp", "tcp", "srt")
#: largest frame processed at its own size unless --size/--max-side say otherwise (4K UHD)
MAX_PIXELS = 3840 * 2160
#: largest image decoded at all: a PNG header can claim 20000x20000 (1.2 GB of RGB) in a few bytes
MAX_IMAGE_PIXELS = 150_000_000


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
    #: the input file (None for URLs, cameras), which no output may replace
    path: Path | None = None
    #: the input's audio, demuxed with the video, for sinks that copy it
    audio: AudioTrack | None = None
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


def _check_file(path: Path) -> os.stat_result:
    """The input's ``stat``: it must exist and, when it is a regular file, hold bytes."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise InputError(f"input not found: {path}") from None
    except OSError as e:  # a name over 255 bytes, a symlink loop, a folder we may not enter
        raise InputError(f"cannot read {path}: {e.strerror or e}") from None
    if stat.S_ISREG(st.st_mode) and st.st_size == 0:
        raise InputError(f"input file is empty: {path}")
    return st


@dataclass
class AudioTrack:
    """The input's audio stream and its packets, demuxed in one pass with the video.

    Sinks copy the packets from here: reading the audio again from the path fails for pipes and
    FIFOs and reads a URL twice. A sink that copies them sets ``wanted``; otherwise the source drops
    them once the run starts, so a run without audio output keeps flat memory.
    """

    stream: Any
    packets: deque[Any] = field(default_factory=deque)
    wanted: bool = False


def _best_video_stream(container: Any) -> Any:
    """The main video stream: FFmpeg's choice (most frames probed), never a cover picture."""
    import av

    def still(s: Any) -> bool:
        return bool(s.disposition & av.stream.Disposition.attached_pic)

    best = container.streams.best("video")
    if best is not None and not still(best):
        return best
    return next((s for s in container.streams.video if not still(s)), None)


class VideoSource(Source):
    """Any container/codec FFmpeg reads, a pipe, or a stream URL; rotation metadata is applied.

    Files, pipes and finite URLs (``file://``, ``http(s)://`` with a duration) run losslessly; live
    protocols (rtsp, rtmp, udp, srt, ...) and endless http streams are ``live``. Undecodable packets
    are skipped and counted, so one damaged packet does not end the video.
    """

    def __init__(self, path: str | Path, max_side: int | None = None, size: tuple[int, int] | None = None) -> None:
        import av

        local = input_path(path)
        if local is not None:
            if stat.S_ISDIR(_check_file(local).st_mode):
                raise InputError(f"input is a directory with no images: {local}")
            self.path = local
        where = str(local) if local is not None else str(path)
        try:
            self.container = av.open(where, "r", timeout=10.0 if local is None else None)
        except (av.error.FFmpegError, UnicodeDecodeError) as e:
            reason = e.strerror if hasattr(e, "strerror") else e
            what = f"cannot open stream {path}" if local is None else f"cannot read {path} (not a video, or damaged)"
            raise InputError(f"{what}: {reason}") from None
        stream = _best_video_stream(self.container)
        if stream is None:
            # An MP4 cut before its index (moov at the end) opens with no streams at all.
            hint = "" if self.container.streams else " (truncated or damaged file?)"
            self.container.close()
            raise InputError(f"no video stream in {path}{hint}")
        self.stream = stream
        scheme = str(path).partition("://")[0].lower() if local is None else ""
        self.live = scheme in LIVE_SCHEMES or (local is None and not self.container.duration)
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
        self.audio = AudioTrack(self.container.streams.audio[0]) if self.container.streams.audio else None
        self._started = False
        self._bad_packets = 0
        self._first_error = ""
        # The first frame is decoded now: it carries the rotation, and proves the stream decodes.
        self._decoded = self._frames()
        self._first: Any = next(self._decoded, None)
        if self._first is None:
            self.container.close()
            raise InputError(f"no decodable video frames in {path}" + self._damage())
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

    def _frames(self) -> Iterator[Any]:
        """Decoded video frames of one demuxing pass; audio packets go to ``self.audio``."""
        import av

        streams = [self.stream] if self.audio is None else [self.stream, self.audio.stream]
        try:
            for packet in self.container.demux(streams):
                if packet.stream.index != self.stream.index:
                    assert self.audio is not None
                    if packet.dts is not None and (self.audio.wanted or not self._started):
                        self.audio.packets.append(packet)
                    continue
                try:
                    frames = packet.decode()
                except av.error.FFmpegError as e:
                    self._bad_packets += 1
                    self._first_error = self._first_error or str(e)
                    continue
                yield from frames
        except av.error.FFmpegError as e:
            # Damage the demuxer cannot read past (a cut or garbled tail): keep what decoded.
            log.warning("reading %s stopped: %s", self.container.name, e)

    def _damage(self) -> str:
        if not self._bad_packets:
            return ""
        return f" ({self._bad_packets} undecodable packets: {self._first_error})"

    def __iter__(self) -> Iterator[Frame]:
        first, self._first = self._first, None
        if first is None:
            raise RuntimeError("a VideoSource can be iterated once")
        self._started = True
        if self.audio is not None and not self.audio.wanted:
            self.audio.packets.clear()
        start = first.pts if first.pts is not None else 0
        decoded = itertools.chain([first], self._decoded)
        index = 0
        furthest = 0.0  # timestamps may jump back; truncation is judged by the furthest one
        # Rotation swaps the sides: scale to the pre-rotation size, then rotate.
        assert self.size is not None
        w, h = self.size if self.rotation in (0, 180) else (self.size[1], self.size[0])
        try:
            while True:
                t0 = time.perf_counter()
                av_frame = next(decoded, None)
                if av_frame is None:
                    self._warn_if_cut_short(index, furthest)
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
        finally:
            if self._bad_packets:
                log.warning("%s: skipped%s; %d frames stylized", self.container.name, self._damage(), index)

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
        self.size, self.fps, self.frame_count, self.path, self.rate, self.time_base, self.audio = (
            v.size,
            v.fps,
            v.frame_count,
            v.path,
            v.rate,
            v.time_base,
            v.audio,
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
        with quiet_opencv():
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
        self.size = size if len(self.files) > 1 else fit_size(*image_size(self.files[0]), max_side, size)

    def uniform_size(self) -> tuple[int, int] | None:
        """The processing size every readable image shares (from the headers); None when they differ."""
        if self.size is not None:
            return self.size
        sizes: set[tuple[int, int]] = set()
        for file in self.files:
            with contextlib.suppress(InputError):  # skipped when the run reads it, too
                sizes.add(fit_size(*image_size(file), self.max_side, self.fixed_size))
        return sizes.pop() if len(sizes) == 1 else None

    def __iter__(self) -> Iterator[Frame]:
        read = 0
        for index, file in enumerate(self.files):
            t0 = time.perf_counter()
            try:
                rgb, alpha = read_image(file)
            except InputError as e:
                if not self.is_folder:
                    raise
                # One damaged picture should not cost the rest of the folder.
                log.warning("skipping unreadable image %s (%s)", file, e)
                continue
            read += 1
            size = fit_size(rgb.shape[1], rgb.shape[0], self.max_side, self.fixed_size)
            image = resize(rgb, size)
            alpha = resize(alpha, size) if alpha is not None else None
            t1 = time.perf_counter()
            yield Frame(image, index, float(index), t1, decode_s=t1 - t0, name=file.name, alpha=alpha)
        if not read:
            raise InputError(f"none of the {len(self.files)} images in {self.path} could be read")


#: EXIF orientation -> the transform that makes the picture upright (as Pillow's exif_transpose)
_ORIENT: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
    8: lambda a: np.rot90(a, 1),
}


@dataclass(frozen=True)
class _Header:
    format: str  # Pillow's name for it: PNG, GIF, ...
    size: tuple[int, int]  # (width, height) as stored, before the orientation
    orientation: int  # EXIF orientation, 1 = upright
    frames: int


#: formats Pillow opens that are video to FFmpeg (an MPEG-1/2 elementary stream is one "image")
_VIDEO_FORMATS = ("MPEG", "FLI")


def _header(source: Path | io.BytesIO, path: Path) -> _Header | None:
    """What Pillow reads from an image's header; None when Pillow does not know the format."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit follows
            with Image.open(source) as im:
                orientation = im.getexif().get(0x0112, 1)
                frames = getattr(im, "n_frames", 1)
                header = _Header(str(im.format), im.size, orientation if orientation in _ORIENT else 1, frames)
    except Image.DecompressionBombError:
        raise InputError(f"image {path} is over the {MAX_IMAGE_PIXELS / 1e6:.0f}-megapixel limit") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):  # SyntaxError: Pillow's parse errors
        return None
    w, h = header.size
    if w * h > MAX_IMAGE_PIXELS:
        raise InputError(f"image {path} is {w}x{h}, over the {MAX_IMAGE_PIXELS / 1e6:.0f}-megapixel limit")
    return header


@contextlib.contextmanager
def quiet_opencv() -> Iterator[None]:
    """OpenCV's own warnings (a missing camera, a truncated PNG) off stderr: our one-line errors say it all."""
    previous = cv2.utils.logging.getLogLevel()
    if not log.isEnabledFor(logging.DEBUG):
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(previous)


def _upright(header: _Header | None, image: np.ndarray) -> np.ndarray:
    if header is None or header.orientation == 1:
        return image
    return np.ascontiguousarray(_ORIENT[header.orientation](image))


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image as it is shown (EXIF orientation applied)."""
    header = _header(path, path)
    if header is None:  # a format only OpenCV reads (e.g. float TIFF): decode it
        rgb, _ = read_image(path)
        return rgb.shape[1], rgb.shape[0]
    w, h = header.size
    return (h, w) if header.orientation in (5, 6, 7, 8) else (w, h)


def read_image(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Any 8/16-bit or float image, gray, RGB or RGBA -> (uint8 RGB upright, uint8 alpha or None).

    The bytes are read by Python and decoded from memory: ``cv2.imread`` crashes on file names that
    are not UTF-8. The header is checked against ``MAX_IMAGE_PIXELS`` before anything is decoded.
    """
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read image {path}: {e.strerror or e}") from None
    header = _header(io.BytesIO(data), path)
    # A PNG cut short (no end chunk) goes to Pillow, whose error is an exception: OpenCV's libpng
    # prints its own to stderr, past any log level.
    cut_png = data.startswith(b"\x89PNG\r\n\x1a\n") and data.rfind(b"IEND") < 0
    with quiet_opencv():
        raw = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data and not cut_png else None
    if raw is None:
        if header is None:
            raise InputError(f"cannot read image {path}")
        rgb, alpha = _pillow_decode(data, path)
    else:
        rgb, alpha = _from_opencv(raw, path)
    return _upright(header, rgb), _upright(header, alpha) if alpha is not None else None


def _from_opencv(raw: np.ndarray, path: Path) -> tuple[np.ndarray, np.ndarray | None]:
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


def _pillow_decode(data: bytes, path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Formats OpenCV lacks (GIF, AVIF, ...): the first frame, as RGB and alpha."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            has_alpha = "A" in im.getbands() or "transparency" in im.info
            rgba = np.asarray(im.convert("RGBA" if has_alpha else "RGB"))
    except (OSError, ValueError, SyntaxError) as e:
        raise InputError(f"cannot read image {path}: {e}") from None
    if has_alpha:
        return np.ascontiguousarray(rgba[..., :3]), np.ascontiguousarray(rgba[..., 3])
    return np.ascontiguousarray(rgba), None


def _is_still_image(path: Path, st: os.stat_result) -> bool:
    """A one-frame picture in a format or name the suffix list misses (.gif, .ppm, .avif, no suffix)."""
    if not stat.S_ISREG(st.st_mode):
        return False  # sniffing would consume a pipe's bytes
    header = _header(path, path)
    return header is not None and header.frames == 1 and header.format not in _VIDEO_FORMATS


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
        if text.isdigit() and os.path.lexists(text):
            log.warning("%r selects camera %s; to read the file named %s, write ./%s", text, text, text, text)
        return CameraSource(int(text) if text.isdigit() else text, max_side=max_side)
    path = input_path(spec)
    if path is not None:
        st = _check_file(path)
        if path.suffix.lower() in IMAGE_SUFFIXES and not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
            # An image is read twice (its size, then its pixels), which a pipe cannot give.
            raise InputError(f"{path} is not a regular file (a pipe or device?); images are read from files")
        if stat.S_ISDIR(st.st_mode) or path.suffix.lower() in IMAGE_SUFFIXES or _is_still_image(path, st):
            if live:
                raise InputError("--live replays a video file; images have no frame rate")
            return ImageSource(path, max_side, size)
    if live:
        return ReplaySource(text, max_side, size)
    return VideoSource(text, max_side, size)
