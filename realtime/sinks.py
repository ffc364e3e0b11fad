"""Frame sinks: encoded video (with the input's audio copied through), images, a window, a virtual
webcam, and a null sink for benchmarks.

File sinks write to a temporary name beside the output and rename it on ``close``, which also runs
after Ctrl-C so the frames done so far form a playable file; ``abort`` (after an error) removes it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from realtime.errors import OutputError
from realtime.modelfile import atomic_write_bytes
from realtime.sources import IMAGE_SUFFIXES, Frame

log = logging.getLogger(__name__)

#: image formats that keep an alpha channel (RGBA inputs keep their transparency in these)
ALPHA_SUFFIXES = (".png", ".webp", ".tif", ".tiff")


class Sink(ABC):
    #: set when the user asked to stop (window closed, q pressed)
    stop_requested: bool = False

    @abstractmethod
    def write(self, frame: Frame, image: np.ndarray) -> None:
        """Take one stylized uint8 RGB ``image`` for the source ``frame`` it came from."""

    def close(self, complete: bool = True) -> None:  # noqa: B027 - sinks without resources need nothing
        """Finish the output, also after an interrupt (``complete=False``): flush, close, rename."""

    def abort(self) -> None:
        """Discard the output after an error."""
        self.close(complete=False)


def check_output(output: Path, inputs: list[Path], overwrite: bool) -> None:
    """Refuse outputs that would destroy an input, clobber a file, or cannot be written."""
    for inp in inputs:
        if output.resolve() == inp.resolve() or (output.exists() and inp.exists() and output.samefile(inp)):
            raise OutputError(f"output {output} is the input; choose another name")
    if output.exists() and not overwrite and not output.is_dir():
        raise OutputError(f"output {output} exists; pass --overwrite to replace it")
    if output.is_dir() and not overwrite and any(output.iterdir()):
        # Frames are named after the inputs (or numbered): earlier results would be replaced one by one.
        raise OutputError(f"output folder {output} is not empty; pass --overwrite to write into it")
    parent = output.parent if not output.is_dir() else output
    if not parent.is_dir():
        raise OutputError(f"output folder does not exist: {parent}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"output folder is not writable: {parent}")


class TeeSink(Sink):
    """Several sinks at once (a preview window beside a virtual camera)."""

    def __init__(self, sinks: list[Sink]) -> None:
        self.sinks = sinks

    @property
    def stop_requested(self) -> bool:  # type: ignore[override]
        return any(s.stop_requested for s in self.sinks)

    def write(self, frame: Frame, image: np.ndarray) -> None:
        for s in self.sinks:
            s.write(frame, image)

    def close(self, complete: bool = True) -> None:
        for s in self.sinks:
            s.close(complete)


class NullSink(Sink):
    """Discards frames (benchmarks measure the pipeline without encoding)."""

    def __init__(self) -> None:
        self.frames = 0

    def write(self, frame: Frame, image: np.ndarray) -> None:
        self.frames += 1


class VideoSink(Sink):
    """Encodes with PyAV at the input's time base and timestamps, remuxing the input's audio."""

    def __init__(
        self,
        path: Path | str,
        size: tuple[int, int],
        rate: Fraction | float | None = None,
        time_base: Fraction | None = None,
        audio_from: Path | None = None,
        codec: str | None = None,
        crf: int | None = None,
        bitrate: str | None = None,
        preset: str | None = None,
    ) -> None:
        import av

        bits_per_second = parse_bitrate(bitrate) if bitrate is not None else None
        self.path = Path(path)
        self.tmp = self.path.with_name(f".{self.path.stem}.part{self.path.suffix}")
        rate = Fraction(rate).limit_denominator(1001000) if rate else Fraction(25)
        self.time_base = time_base or 1 / rate
        self.container: Any
        self.stream: Any
        try:
            # PyAV opens the file only at the first packet; creating it now reports a bad path at once.
            self.tmp.touch()
            self.container = av.open(str(self.tmp), "w")
        except OSError as e:
            raise OutputError(f"cannot create {self.tmp}: {e.strerror or e}") from None
        except (ValueError, av.error.FFmpegError) as e:
            self.tmp.unlink(missing_ok=True)
            raise OutputError(f"cannot write video {self.path} (unknown extension or unwritable): {e}") from None
        # H.264 plays everywhere; WebM only takes VP8/VP9/AV1.
        codec = codec or ("libvpx-vp9" if self.path.suffix.lower() == ".webm" else "libx264")
        try:
            self.stream = self.container.add_stream(codec, rate=rate)
        except (ValueError, av.error.FFmpegError) as e:
            self._discard()
            raise OutputError(f"video codec {codec!r} is not available: {e}") from None
        # yuv420p (what players expect) halves chroma resolution, so sides must be even: odd frames
        # are padded by one edge pixel rather than refused.
        self.stream.width, self.stream.height = size[0] + size[0] % 2, size[1] + size[1] % 2
        self.stream.pix_fmt = "yuv420p"
        self.stream.time_base = self.time_base
        self.stream.codec_context.time_base = self.time_base
        options: dict[str, str] = {}
        if codec in ("libx264", "libx265"):
            # veryfast: encoding shares the CPU with inference; crf 20 is visually lossless for stylized art.
            options["preset"] = preset or "veryfast"
            if bits_per_second is None:
                options["crf"] = str(20 if crf is None else crf)
        elif preset:
            options["preset"] = preset
        if bits_per_second is not None:
            self.stream.bit_rate = bits_per_second
        self.stream.options = options
        self.audio_in: Any = None
        self.audio_out: Any = None
        self._audio_packets: Iterator[Any] = iter(())
        self._pending: Any = None
        if audio_from is not None:
            self._open_audio(audio_from)
        self.frames = 0
        self._last_pts: int | None = None
        self._last_seconds = 0.0

    def _open_audio(self, source: Path) -> None:
        import av

        src = av.open(str(source))
        if not src.streams.audio:
            src.close()
            return
        try:
            self.audio_out = self.container.add_stream_from_template(src.streams.audio[0])
        except (ValueError, av.error.FFmpegError) as e:
            log.warning("audio not copied: %s cannot hold it (%s)", self.path.suffix, e)
            src.close()
            return
        self.audio_in = src
        self._audio_packets = (p for p in src.demux(src.streams.audio[0]) if p.dts is not None)
        self._pending = next(self._audio_packets, None)

    def _mux_audio(self, until_seconds: float | None) -> None:
        """Copy audio packets up to ``until_seconds`` (all when None), interleaving them with video."""
        while self._pending is not None:
            p = self._pending
            if until_seconds is not None and float(p.dts * p.time_base) > until_seconds:
                return
            p.stream = self.audio_out
            self.container.mux(p)
            self._pending = next(self._audio_packets, None)

    def write(self, frame: Frame, image: np.ndarray) -> None:
        import av

        pts = frame.pts if frame.pts is not None else round(frame.seconds / self.time_base)
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1  # encoders reject non-increasing timestamps
        self._last_pts = pts
        pad_h, pad_w = self.stream.height - image.shape[0], self.stream.width - image.shape[1]
        if pad_h or pad_w:
            image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        vf = av.VideoFrame.from_ndarray(image, format="rgb24")
        vf.pts, vf.time_base = pts, self.time_base
        self._last_seconds = float(pts * self.time_base)
        try:
            if self.audio_out is not None:
                self._mux_audio(self._last_seconds)
            for packet in self.stream.encode(vf):
                self.container.mux(packet)
        except (av.error.FFmpegError, OSError) as e:
            raise OutputError(f"writing {self.path} failed: {e}") from None
        self.frames += 1

    def close(self, complete: bool = True) -> None:
        """Flush and rename. After an interrupt (``complete=False``) audio stops where video does."""
        if self.container is None:
            return
        if self.frames == 0:
            log.warning("no frames were written; %s not created", self.path)
            self._discard()
            return
        import av

        try:
            for packet in self.stream.encode(None):
                self.container.mux(packet)
            if self.audio_out is not None:
                frame_seconds = float(1 / self.stream.average_rate) if self.stream.average_rate else 0.0
                self._mux_audio(None if complete else self._last_seconds + frame_seconds)
            self._close_containers()
            os.replace(self.tmp, self.path)
        except (av.error.FFmpegError, OSError) as e:
            self._discard()
            raise OutputError(f"finishing {self.path} failed: {e}") from None
        except BaseException:  # a second Ctrl-C while finishing: abort, as the first one's message says
            self._discard()
            raise
        log.info("wrote %s (%d frames)", self.path, self.frames)

    def _close_containers(self) -> None:
        if self.container is not None:
            self.container.close()
            self.container = None
        if self.audio_in is not None:
            self.audio_in.close()
            self.audio_in = None

    def _discard(self) -> None:
        try:
            self._close_containers()
        except Exception as e:  # a half-written container may refuse to close cleanly; it is deleted anyway
            log.debug("closing a discarded output failed: %s", e)
        self.tmp.unlink(missing_ok=True)

    def abort(self) -> None:
        if self.container is not None:
            self._discard()


def parse_bitrate(text: str) -> int:
    """``4M``, ``800k`` or ``2500000`` -> bits per second."""
    units = {"k": 1_000, "m": 1_000_000}
    t = text.strip().lower()
    try:
        value = float(t[:-1]) * units[t[-1]] if t and t[-1] in units else float(t)
    except ValueError:
        raise OutputError(f"bitrate must look like 4M, 800k or 2500000, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise OutputError(f"bitrate must be a positive number, got {text!r}")
    return int(value)


class ImageSink(Sink):
    """One image file, or a folder receiving one file per frame (the input's names, else numbered)."""

    def __init__(self, path: Path | str, single: bool) -> None:
        self.path = Path(path)
        self.single = single
        self.created = not single and not self.path.exists()
        if not single:
            try:
                self.path.mkdir(exist_ok=True)
            except OSError as e:
                raise OutputError(f"cannot create output folder {self.path}: {e.strerror or e}") from None
        self.frames = 0

    def write(self, frame: Frame, image: np.ndarray) -> None:
        if self.single:
            target = self.path
        else:
            name = Path(frame.name).stem + ".png" if frame.name else f"{frame.index:06d}.png"
            target = self.path / name
        suffix = target.suffix.lower() or ".png"
        if frame.alpha is not None and suffix in ALPHA_SUFFIXES:
            bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGRA)
            bgr[..., 3] = frame.alpha  # a sprite stays a sprite: the input's transparency goes back on
        else:
            bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        ok, data = cv2.imencode(suffix, bgr)
        if not ok:
            raise OutputError(f"cannot encode {target.suffix} images")
        try:
            atomic_write_bytes(target, data.tobytes())
        except OSError as e:
            raise OutputError(f"writing {target} failed: {e.strerror or e}") from None
        self.frames += 1

    def close(self, complete: bool = True) -> None:
        if self.frames == 0 and self.created:
            # A folder this run made and never wrote into is not left behind (failed or empty runs).
            with contextlib.suppress(OSError):
                self.path.rmdir()


class FrameClock:
    """Rolling display fps and end-to-end latency, for the window overlay."""

    def __init__(self, window: int = 30) -> None:
        self.times: deque[float] = deque(maxlen=window)
        self.latencies: deque[float] = deque(maxlen=window)

    def tick(self, frame: Frame) -> tuple[float, float]:
        now = time.perf_counter()
        self.times.append(now)
        self.latencies.append(now - frame.captured)
        span = self.times[-1] - self.times[0]
        fps = (len(self.times) - 1) / span if span > 0 else 0.0
        return fps, 1000.0 * sum(self.latencies) / len(self.latencies)


class WindowSink(Sink):
    """An OpenCV window with an fps/latency overlay; keys go to ``on_key`` (q or Esc closes)."""

    def __init__(
        self, title: str = "stylecast", on_key: Callable[[int], Any] | None = None, overlay: bool = True
    ) -> None:
        self.title, self.on_key, self.overlay = title, on_key, overlay
        self.clock = FrameClock()
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error:
            raise OutputError(
                "this OpenCV build cannot open windows (opencv-python-headless); "
                "install opencv-python, or use --virtual-cam, or record with: stylecast run 0 -o FILE"
            ) from None

    def write(self, frame: Frame, image: np.ndarray) -> None:
        fps, latency_ms = self.clock.tick(frame)
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        if self.overlay:
            text = f"{fps:5.1f} fps  {latency_ms:5.0f} ms"
            cv2.putText(bgr, text, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(bgr, text, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
        cv2.imshow(self.title, bgr)
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), 27) or cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
            self.stop_requested = True
        elif key != 0xFF and self.on_key is not None:
            self.on_key(key)

    def close(self, complete: bool = True) -> None:
        cv2.destroyWindow(self.title)


class VirtualCamSink(Sink):
    """A virtual webcam (pyvirtualcam), so video-call apps can pick up the stylized feed."""

    def __init__(self, size: tuple[int, int], fps: float) -> None:
        try:
            import pyvirtualcam  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            raise OutputError("--virtual-cam needs pyvirtualcam: pip install 'stylecast[virtualcam]'") from None
        try:
            self.camera = pyvirtualcam.Camera(width=size[0], height=size[1], fps=fps, fmt=pyvirtualcam.PixelFormat.RGB)
        except RuntimeError as e:
            raise OutputError(f"cannot start the virtual camera: {e}") from None
        log.info("virtual camera: %s", self.camera.device)

    def write(self, frame: Frame, image: np.ndarray) -> None:
        self.camera.send(image)

    def close(self, complete: bool = True) -> None:
        self.camera.close()


def open_file_sink(
    output: Path,
    source_path: Path | None,
    size: tuple[int, int] | None,
    single_image: bool,
    rate: Fraction | float | None = None,
    time_base: Fraction | None = None,
    copy_audio: bool = True,
    **encode: Any,
) -> Sink:
    """The sink for ``-o OUTPUT``: images for image outputs or folders, else an encoded video."""
    if output.suffix.lower() in IMAGE_SUFFIXES:
        if not single_image:
            raise OutputError(
                f"output {output} is an image but the input has many frames; give a folder or a video name"
            )
        return ImageSink(output, single=True)
    if output.is_dir() or not output.suffix:
        return ImageSink(output, single=False)
    if single_image:
        raise OutputError(f"input is an image; give an image output name (.png, .jpg), not {output.name}")
    if size is None:
        raise OutputError("input images differ in size; write them to a folder, not a video")
    return VideoSink(output, size, rate, time_base, source_path if copy_audio else None, **encode)
