"""Helpers for the reliability tests: small, odd and broken media made on the fly, and CLI runs.

Every writer takes RGB uint8 frames (or higher-depth arrays where it says so) and returns the path.
"""

from __future__ import annotations

import wave
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest


def gradient(width: int, height: int, shift: int = 0) -> np.ndarray:
    """A smooth RGB test card that changes with ``shift`` (so frames differ)."""
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    r = np.broadcast_to(x, (height, width))
    g = np.broadcast_to(y, (height, width))
    b = np.full((height, width), (shift * 37) % 256, np.float32)
    return np.stack([r, g, b], axis=-1).astype(np.uint8)


def write_video(
    path: Path,
    frames: Sequence[np.ndarray],
    *,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    fps: int = 10,
    pts: Sequence[int] | None = None,
    time_base: Fraction | None = None,
    rotation: int = 0,
    in_format: str = "rgb24",
    audio_seconds: float = 0.0,
) -> Path:
    """Encode ``frames`` (RGB uint8, or ``in_format`` arrays) with explicit timestamps when given.

    Packets are muxed with the ``pts`` given (also repeated or jumping ones) by encoding intra-only
    codecs frame by frame and rewriting each packet's timestamps.
    """
    with av.open(str(path), "w") as c:
        s: Any = c.add_stream(codec, rate=fps)  # a VideoStream (PyAV types it as any stream)
        s.height, s.width = frames[0].shape[:2]
        s.pix_fmt = pix_fmt
        if time_base is not None:
            s.time_base = s.codec_context.time_base = time_base
        if rotation:
            s.set_display_rotation(rotation)
        audio = c.add_stream("aac", rate=8000, layout="mono") if audio_seconds else None
        for i, img in enumerate(frames):
            f = av.VideoFrame.from_ndarray(img, format=in_format)
            f.pts = i
            for p in s.encode(f):
                if pts is not None:
                    # Muxers need non-decreasing dts <= pts; the suffix minimum lets pts go backwards.
                    p.pts, p.dts = pts[i], min(pts[i:])
                c.mux(p)
        for p in s.encode():
            c.mux(p)
        if audio is not None:
            _mux_silence(c, audio, audio_seconds)
    return path


def clip(path: Path, n: int = 8, width: int = 48, height: int = 32, **kw: object) -> Path:
    """A short moving gradient clip."""
    return write_video(path, [gradient(width, height, i) for i in range(n)], **kw)  # type: ignore[arg-type]


def write_wav(path: Path, seconds: float = 0.5) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(np.zeros(int(8000 * seconds), np.int16).tobytes())
    return path


def write_audio_only(path: Path, seconds: float = 0.5) -> Path:
    """An audio-only file in a video container (e.g. ``.mp4`` holding only AAC)."""
    with av.open(str(path), "w") as c:
        _mux_silence(c, c.add_stream("aac", rate=8000, layout="mono"), seconds)
    return path


def _mux_silence(container: Any, stream: Any, seconds: float) -> None:
    """Encode ``seconds`` of silence into a mono AAC ``stream`` (the container muxes any order)."""
    for start in range(0, int(stream.rate * seconds), 1024):
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = stream.rate, start
        for p in stream.encode(frame):
            container.mux(p)
    for p in stream.encode():
        container.mux(p)


def read_image(path: Path, flags: int = 1) -> np.ndarray:
    """``cv2.imread`` that fails the test, not a later line, when the file is missing or unreadable."""
    import cv2

    image = cv2.imread(str(path), flags)
    assert image is not None, f"cannot read {path}"
    return image


def truncate(path: Path, fraction: float) -> Path:
    """Cut a file to ``fraction`` of its bytes, as an interrupted download or copy leaves it."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def count_frames(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def video_pts(path: Path) -> list[int]:
    with av.open(str(path)) as c:
        return [f.pts for f in c.decode(video=0) if f.pts is not None]


def write_subtitles_only(path: Path) -> Path:
    """A Matroska file whose only stream is subtitles: a container with no video stream."""
    srt = path.with_suffix(".srt")
    srt.write_text("1\n00:00:00,000 --> 00:00:01,000\nhello\n\n2\n00:00:01,000 --> 00:00:02,000\nworld\n")
    with av.open(str(srt)) as src, av.open(str(path), "w") as out:
        stream = out.add_stream_from_template(src.streams[0])
        for p in src.demux(src.streams[0]):
            if p.dts is not None:
                p.stream = stream
                out.mux(p)
    srt.unlink()
    return path


# --- the CLI ------------------------------------------------------------------------------------------


def stylecast(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    """Run the real CLI entry point in-process: (exit code, stdout, stderr)."""
    from realtime import cli

    code = cli.main(["-q", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, message: str) -> None:
    """A user error: non-zero exit and exactly one ``stylecast: error:`` line naming the problem."""
    lines = err.strip().splitlines()
    assert code != 0, err
    assert len(lines) == 1 and lines[0].startswith("stylecast: error:"), err
    assert message.lower() in lines[0].lower(), err
    assert "Traceback" not in err


def leftovers(folder: Path) -> list[str]:
    """Temporary or partial files a run left in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if ".part" in p.name or p.name.startswith(".tmp"))


# --- hostile inputs (issue 15) ------------------------------------------------------------------------


def write_with_audio(path: Path, n: int, audio_codec: str, audio_format: str = "u8", seconds: float = 1.0) -> Path:
    """An MJPEG clip (Matroska) with ``seconds`` of silence in ``audio_codec`` (e.g. PCM that MP4 refuses)."""
    with av.open(str(path), "w") as c:
        v: Any = c.add_stream("mjpeg", rate=10)
        v.width, v.height, v.pix_fmt = 48, 32, "yuvj420p"
        a: Any = c.add_stream(audio_codec, rate=8000, layout="mono")
        for i in range(n):
            f = av.VideoFrame.from_ndarray(gradient(48, 32, i), format="rgb24")
            f.pts = i
            c.mux(v.encode(f))
        c.mux(v.encode())
        dtype = {"u8": np.uint8, "s16": np.int16}[audio_format]
        silence = np.full((1, int(8000 * seconds)), 128 if audio_format == "u8" else 0, dtype)
        frame = av.AudioFrame.from_ndarray(silence, format=audio_format, layout="mono")
        frame.sample_rate, frame.pts = 8000, 0
        c.mux(a.encode(frame))
        c.mux(a.encode())
    return path


def damage_packets(path: Path, indices: Sequence[int], stream: int = 0) -> Path:
    """Overwrite the payload of the given video packets with junk, keeping the container intact."""
    with av.open(str(path)) as c:
        payloads = [bytes(p) for p in c.demux(c.streams.video[stream]) if p.size]
    data = bytearray(path.read_bytes())
    for i in indices:
        at = data.find(payloads[i])
        data[at : at + len(payloads[i])] = b"\x07" * len(payloads[i])
    path.write_bytes(bytes(data))
    return path


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header claims ``width`` x ``height`` (a decompression bomb's first bytes)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return path
