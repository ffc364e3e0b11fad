"""Frame sinks: encoded video (with the input's audio copied through), images, a window, a virtual
webcam, and a null sink for benchmarks.

File sinks write to a temporary name beside the output and rename it on ``close``, which also runs
after Ctrl-C so the frames done so far form a playable file; ``abort`` (after an error) removes it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import re
import sys
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from realtime.errors import OutputError
from realtime.modelfile import atomic_write_bytes, temp_path_beside
from realtime.outputs import check_output
from realtime.sources import IMAGE_SUFFIXES, AudioTrack, Frame, ImageSource, Source

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


def check_run_output(
    output: Path, source: Source, overwrite: bool, *, codec: str | None = None, crf: int | None = None,
    preset: str | None = None,
) -> None:
    """Refuse a ``run`` output that would destroy the input, clobber a file, or cannot be written,
    and a video output's encoder settings that its encoder would refuse after the model has loaded."""
    if str(output) == "-":
        raise OutputError("-o - (standard output) is not supported; give a file or folder name")
    if output.name.startswith(".") and not output.suffix and Path("x" + output.name).suffix:
        # Python reads ".mp4" as a hidden name without a suffix, so it would become a hidden folder.
        raise OutputError(f"output {output} is only an extension; give a name such as {output.with_name('out' + output.name)}")
    check_output(output, [source.path] if source.path is not None else [], overwrite)
    check_output_kind(output, isinstance(source, ImageSource) and not source.is_folder)
    if output.suffix and output.suffix.lower() not in IMAGE_SUFFIXES and not output.is_dir():
        video_encoder(output, codec, crf, preset, source.size)


def check_output_kind(output: Path, single_image: bool) -> None:
    """An image output for one image in, a video or a folder for many frames."""
    if output.suffix.lower() in IMAGE_SUFFIXES:
        if not single_image:
            raise OutputError(
                f"output {output} is an image but the input is a video or a folder (many frames); "
                "give a folder or a video name"
            )
    elif single_image and output.suffix and not output.is_dir():
        raise OutputError(f"input is an image; give an image output name (.png, .jpg), not {output.name}")


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


#: encoders with a constant-quality mode (--crf), and the extra options that mode needs
CRF_CODECS: dict[str, dict[str, str]] = {
    "libx264": {},
    "libx265": {},
    # libvpx uses --crf only with the bitrate set to 0; its default bitrate would cap the quality.
    "libvpx-vp9": {"b": "0"},
    "libvpx": {"b": "0"},
    "libaom-av1": {"b": "0"},
}
#: the presets x264 and x265 know; they refuse others only when the first frame is encoded
X26X_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo")


#: x265 4.2 as FFmpeg builds it corrupts the heap on some frames under this side (40x40, 48x32 crash; 32x32 not)
X265_MIN_SIDE = 64


def video_encoder(
    path: Path, codec: str | None, crf: int | None, preset: str | None, size: tuple[int, int] | None = None
) -> str:
    """The encoder ``-o path`` gets (``--codec`` or the container's default), with ``--crf``,
    ``--preset`` and the frame ``size`` (when known) checked against it: each problem an OutputError."""
    name = _video_codec(codec or ("libvpx-vp9" if path.suffix.lower() == ".webm" else "libx264"))
    if name == "libx265" and size is not None and min(size) < X265_MIN_SIDE:
        raise OutputError(
            f"libx265 cannot encode {size[0]}x{size[1]} frames safely (a side under {X265_MIN_SIDE} px); "
            "use libx264 or a larger --size"
        )
    if crf is not None and name not in CRF_CODECS:
        raise OutputError(f"--crf does not apply to {name} (only {', '.join(CRF_CODECS)}); use --bitrate")
    if preset is not None and name in ("libx264", "libx265") and preset not in X26X_PRESETS:
        raise OutputError(f"--preset {preset!r} is not a {name} preset; choose from {', '.join(X26X_PRESETS)}")
    if preset is not None and name.startswith("libvpx"):
        raise OutputError(f"--preset does not apply to {name}, which has none; set its quality with --crf or --bitrate")
    return name


#: the highest --bitrate (no encoder's level goes beyond it; larger values overflow encoder fields)
MAX_BITRATE = 2_000_000_000


def _video_codec(name: str) -> str:
    """The encoder's real name (``h264`` -> ``libx264``); refuses unknown and non-video codecs."""
    import av

    try:
        codec = av.Codec(name, "w")
    except (ValueError, av.error.FFmpegError) as e:
        raise OutputError(f"video codec {name!r} is not available: {e}") from None
    if codec.type != "video":
        raise OutputError(f"codec {name!r} encodes {codec.type}, not video; choose a video codec such as libx264")
    return str(codec.name)


def _takes_as_is(container_format: str, template: Any) -> bool:
    """Whether ``container_format`` holds the input's audio stream as it is (tried on a header in memory).

    Muxers check codecs when they write the header, which for a short clip happens only when the
    encoder's first packets come out at the end; this finds out before any frame is decoded.
    """
    import av

    try:
        with av.open(io.BytesIO(), "w", format=container_format) as probe:
            probe.add_stream_from_template(template)
            probe.start_encoding()
    except (ValueError, av.error.FFmpegError):
        return False
    return True


def publish(tmp: Path, path: Path, overwrite: bool) -> None:
    """Rename a complete ``tmp`` to ``path``; without ``overwrite`` never replace a file that appeared meanwhile."""
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # atomic, and fails when ``path`` exists
    except FileExistsError:
        raise OutputError(f"{path} appeared while this run wrote it (another run?); it was not replaced") from None
    except OSError:  # a file system without hard links: the check and the rename are two steps
        if os.path.lexists(path):
            raise OutputError(f"{path} appeared while this run wrote it (another run?); it was not replaced") from None
        os.replace(tmp, path)
        return
    tmp.unlink()


class VideoSink(Sink):
    """Encodes with PyAV at the input's time base and timestamps, copying the input's audio.

    The audio is copied as it is when the container takes it, else encoded with the container's
    default audio codec (e.g. PCM into MP4 becomes AAC).
    """

    def __init__(
        self,
        path: Path | str,
        size: tuple[int, int],
        rate: Fraction | float | None = None,
        time_base: Fraction | None = None,
        audio_from: AudioTrack | None = None,
        codec: str | None = None,
        crf: int | None = None,
        bitrate: str | None = None,
        preset: str | None = None,
        overwrite: bool = False,
    ) -> None:
        import av

        bits_per_second = parse_bitrate(bitrate) if bitrate is not None else None
        self.path = Path(path)
        self.overwrite = overwrite
        # H.264 plays everywhere; WebM only takes VP8/VP9/AV1.
        codec = video_encoder(self.path, codec, crf, preset, size)
        rate = Fraction(rate).limit_denominator(1001000) if rate else Fraction(25)
        self.time_base = time_base or 1 / rate
        self.container: Any = None
        self.stream: Any
        try:
            # A new, uniquely named file: never one the user has (or another run writes).
            self.tmp = temp_path_beside(self.path.with_suffix(""), suffix=".part" + self.path.suffix)
        except OSError as e:
            raise OutputError(f"cannot create a file in {self.path.parent}: {e.strerror or e}") from None
        try:
            self.container = av.open(str(self.tmp), "w")
        except (ValueError, av.error.FFmpegError, OSError) as e:
            self.tmp.unlink(missing_ok=True)
            raise OutputError(f"cannot write video {self.path} (unknown extension or unwritable): {e}") from None
        try:
            self.stream = self.container.add_stream(codec, rate=rate)
        except (ValueError, av.error.FFmpegError) as e:
            self._discard()
            raise OutputError(f"video codec {codec!r} cannot be written to {self.path.suffix}: {e}") from None
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
            if codec == "libx265":
                options["x265-params"] = "log-level=error"  # x265 prints some 25 info lines per file to stderr
        elif preset:
            options["preset"] = preset
        if crf is not None and codec not in ("libx264", "libx265"):
            options["crf"] = str(crf)
            if bits_per_second is None:
                options.update(CRF_CODECS[codec])  # with --bitrate too, libvpx caps the quality at it
        if bits_per_second is not None:
            self.stream.bit_rate = bits_per_second
        self.stream.options = options
        self.audio: AudioTrack | None = None
        self.audio_out: Any = None
        self._transcode = False
        if audio_from is not None:
            self._open_audio(audio_from)
        self.frames = 0
        self._last_pts: int | None = None
        self._last_seconds = 0.0

    def _open_audio(self, track: AudioTrack) -> None:
        import av

        template = track.stream
        try:
            if _takes_as_is(self.container.format.name, template):
                self.audio_out = self.container.add_stream_from_template(template)
            else:
                encoder = self.container.default_audio_codec
                rates = av.Codec(encoder, "w").audio_rates  # e.g. Opus takes 48 kHz, not 44.1
                rate = template.rate if not rates or template.rate in rates else max(rates)
                # The channel count's standard layout: PCM often carries none, which encoders refuse.
                layout = av.AudioLayout(f"{template.channels}c")
                self.audio_out = self.container.add_stream(encoder, rate=rate, layout=layout)
                self._transcode = True
                log.warning(
                    "%s cannot hold the input's %s audio as it is; encoding it as %s",
                    self.path.suffix,
                    template.codec_context.name,
                    encoder,
                )
        except (ValueError, av.error.FFmpegError) as e:
            self._discard()
            raise OutputError(f"{self.path.suffix} cannot hold the input's audio ({e}); pass --no-audio") from None
        self.audio = track
        track.wanted = True

    def _mux_audio(self, until_seconds: float | None) -> None:
        """Copy audio packets up to ``until_seconds`` (all when None), interleaving them with video."""
        import av

        assert self.audio is not None
        packets = self.audio.packets
        while packets:
            p = packets[0]
            if until_seconds is not None and float(p.dts * p.time_base) > until_seconds:
                return
            packets.popleft()
            if not self._transcode:
                p.stream = self.audio_out
                self.container.mux(p)
                continue
            try:
                decoded = p.decode()
            except av.error.FFmpegError:
                continue  # a damaged audio packet: a moment of silence, not a failed run
            for frame in decoded:
                frame.pts = None  # the encoder counts samples; the input's pts are in another time base
                self.container.mux(self.audio_out.encode(frame))

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
                if self._transcode:
                    self.container.mux(self.audio_out.encode(None))
            self._close_containers()
            publish(self.tmp, self.path, self.overwrite)
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

    def _discard(self) -> None:
        try:
            self._close_containers()
        except Exception as e:  # a half-written container may refuse to close cleanly; it is deleted anyway
            log.debug("closing a discarded output failed: %s", e)
            self.container = None
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
    if value > MAX_BITRATE:
        raise OutputError(f"bitrate must be at most {MAX_BITRATE // 1_000_000}M, got {text!r}")
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
        self._names: set[str] = set()

    def _name(self, frame: Frame) -> str:
        """The input's name as PNG, made unique: ``a.jpg`` and ``a.png`` would both be ``a.png``."""
        if not frame.name:
            return f"{frame.index:06d}.png"
        source = Path(frame.name)
        name = source.stem + ".png"
        if name.casefold() in self._names:  # casefold: macOS and Windows folders ignore case
            name = f"{source.stem}_{source.suffix.lstrip('.')}.png"
            n = 1
            while name.casefold() in self._names:
                n += 1
                name = f"{source.stem}_{source.suffix.lstrip('.')}_{n}.png"
            log.warning("%s would share its output name with another input; writing it as %s", frame.name, name)
        self._names.add(name.casefold())
        return name

    def write(self, frame: Frame, image: np.ndarray) -> None:
        target = self.path if self.single else self.path / self._name(frame)
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


def opencv_gui() -> str:
    """The desktop GUI OpenCV was built with (QT5, GTK3, ...), or NONE for the headless build."""
    found = re.search(r"^\s*GUI:\s*(\S+)", cv2.getBuildInformation(), re.MULTILINE)
    return found.group(1).upper() if found else "NONE"


def _no_display() -> bool:
    """A GUI build of OpenCV on Linux/BSD with no X11 or Wayland display (nor a Qt platform chosen)."""
    if sys.platform in ("win32", "darwin") or opencv_gui() == "NONE":
        return False  # the headless build refuses windows itself, with a catchable cv2.error
    return not any(os.environ.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))


class WindowSink(Sink):
    """An OpenCV window with an fps/latency overlay; keys go to ``on_key`` (q or Esc closes)."""

    def __init__(
        self, title: str = "stylecast", on_key: Callable[[int], Any] | None = None, overlay: bool = True
    ) -> None:
        self.title, self.on_key, self.overlay = title, on_key, overlay
        self.clock = FrameClock()
        if _no_display():
            # OpenCV's Qt build aborts the whole process (SIGABRT) when it finds no display.
            raise OutputError(
                "no display to open a window on (DISPLAY and WAYLAND_DISPLAY are not set); "
                "use --no-window --virtual-cam, or record with: stylecast run 0 -o FILE"
            )
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
    source: Source | None,
    size: tuple[int, int] | None,
    single_image: bool,
    rate: Fraction | float | None = None,
    time_base: Fraction | None = None,
    copy_audio: bool = True,
    overwrite: bool = False,
    **encode: Any,
) -> Sink:
    """The sink for ``-o OUTPUT``: images for image outputs or folders, else an encoded video.

    ``source`` gives the audio to copy (and, for image folders, the size they share).
    """
    check_output_kind(output, single_image)
    if output.suffix.lower() in IMAGE_SUFFIXES:
        return ImageSink(output, single=True)
    if output.is_dir() or not output.suffix:
        return ImageSink(output, single=False)
    if size is None and isinstance(source, ImageSource):
        size = source.uniform_size()
    if size is None:
        raise OutputError("input images differ in size; give --size WxH to make a video of them, or write a folder")
    audio = source.audio if source is not None and copy_audio else None
    return VideoSink(output, size, rate, time_base, audio, overwrite=overwrite, **encode)
