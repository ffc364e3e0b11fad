"""Issue 15, class B: no silently wrong results (URLs, pipes, damaged packets, streams, EXIF, weights, audio)."""

from __future__ import annotations

import functools
import http.server
import io
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import torch
from PIL import Image, ImageOps
from reliability_support import (
    assert_one_line_error,
    clip,
    count_frames,
    damage_packets,
    gradient,
    read_image,
    stylecast,
    write_video,
    write_with_audio,
)

from realtime.api import Stylizer
from realtime.errors import ModelError
from realtime.modelfile import load_model
from realtime.sources import VideoSource, _best_video_stream, image_size, open_source
from realtime.sources import read_image as load_image
from realtime.styles import parse_style_spec

INTRA: dict[str, Any] = {"codec": "mjpeg", "pix_fmt": "yuvj420p"}


@pytest.fixture()
def run(tiny_model: Path, capsys: pytest.CaptureFixture[str]):
    def go(inp: Path | str, out: Path, *options: str) -> tuple[int, str, str]:
        return stylecast(capsys, "run", inp, "-o", out, "--model", tiny_model, "--backend", "torch", *options)

    return go


def _streams(path: Path) -> list[str]:
    with av.open(str(path)) as c:
        return [s.type for s in c.streams]


# --- B.7: URLs of files are files ------------------------------------------------------------------------


@pytest.fixture()
def http_folder(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """``tmp_path`` served over http on a free local port."""
    handler = functools.partial(QuietHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


def test_http_file_is_lossless_and_keeps_its_audio(tiny_model: Path, http_folder: tuple[Path, str]) -> None:
    folder, base = http_folder
    clip(folder / "in.mkv", n=12, audio_seconds=1.0)
    source = open_source(f"{base}/in.mkv")
    assert not source.live and source.audio is not None  # a file behind a URL, not a live stream
    with Stylizer.load(tiny_model, backend="torch") as stylizer:
        stats = stylizer.stream(source, folder / "out.mkv")
    assert stats.dropped == 0 and count_frames(folder / "out.mkv") == 12
    assert _streams(folder / "out.mkv") == ["video", "audio"]


def test_file_url_is_the_file_with_its_audio(run, tmp_path: Path) -> None:
    video = clip(tmp_path / "in.mkv", n=6, audio_seconds=1.0)
    code, _, err = run(f"file://{video}", tmp_path / "out.mkv")
    assert code == 0, err
    assert count_frames(tmp_path / "out.mkv") == 6 and _streams(tmp_path / "out.mkv") == ["video", "audio"]


def test_live_protocols_keep_the_latest_frame_policy() -> None:
    from realtime.sources import LIVE_SCHEMES

    assert {"rtsp", "rtmp", "udp", "srt"} <= set(LIVE_SCHEMES) and "http" not in LIVE_SCHEMES


# --- B.8: pipes and FIFOs ----------------------------------------------------------------------------------


def test_fifo_input_keeps_every_frame_and_the_audio(tiny_model: Path, tmp_path: Path) -> None:
    data = clip(tmp_path / "in.ts", n=15, audio_seconds=1.5).read_bytes()
    fifo = tmp_path / "stream"
    os.mkfifo(fifo)

    def feed() -> None:
        with open(fifo, "wb") as f:
            f.write(data)

    result: list[int] = []

    def stylize() -> None:
        with Stylizer.load(tiny_model, backend="torch") as stylizer:
            result.append(stylizer.stream(str(fifo), tmp_path / "out.mkv").frames)

    threads = [threading.Thread(target=feed, daemon=True), threading.Thread(target=stylize, daemon=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "the run hung on the FIFO (audio read from the path again?)"
    assert result == [15] and count_frames(tmp_path / "out.mkv") == 15
    assert _streams(tmp_path / "out.mkv") == ["video", "audio"]


# --- B.9: damaged packets -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("damaged", "left"), [([10, 20], 28), ([0, 1], 28)], ids=["mid-stream", "first-packets"])
def test_undecodable_packets_are_skipped_counted_and_warned_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damaged: list[int], left: int
) -> None:
    video = damage_packets(write_video(tmp_path / "in.mkv", [gradient(48, 32, i) for i in range(30)], **INTRA), damaged)
    with caplog.at_level(logging.WARNING, logger="realtime.sources"), VideoSource(video) as src:
        assert len(list(src)) == left
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "2 undecodable packets" in warnings[0], warnings


# --- B.10: the main video stream, not a cover picture -------------------------------------------------------


def _cover_then_video(path: Path) -> Path:
    with av.open(str(path), "w") as c:
        cover: Any = c.add_stream("mjpeg", rate=1)
        video: Any = c.add_stream("mjpeg", rate=10)
        cover.width = cover.height = 16
        video.width, video.height = 48, 32
        cover.pix_fmt = video.pix_fmt = "yuvj420p"
        c.mux(cover.encode(av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")))
        c.mux(cover.encode())
        for i in range(20):
            f = av.VideoFrame.from_ndarray(gradient(48, 32, i), format="rgb24")
            f.pts = i
            c.mux(video.encode(f))
        c.mux(video.encode())
    return path


def test_the_main_stream_is_used_not_stream_zero(run, tmp_path: Path) -> None:
    code, _, err = run(_cover_then_video(tmp_path / "in.mkv"), tmp_path / "out.mkv")
    assert code == 0, err
    assert count_frames(tmp_path / "out.mkv") == 20 and "truncated" not in err


def test_attached_pictures_are_never_the_video() -> None:
    def stream(index: int, attached: bool) -> Any:
        return type("S", (), {"index": index, "disposition": av.stream.Disposition.attached_pic if attached else 0})()

    cover, movie = stream(0, True), stream(1, False)
    streams = type("Streams", (), {"video": [cover, movie], "best": lambda self, kind: cover})()
    assert _best_video_stream(type("C", (), {"streams": streams})()) is movie


# --- B.11: EXIF orientation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(tmp_path: Path, orientation: int) -> None:
    rgb = gradient(48, 32, 5)
    rgb[:4, :8] = (255, 0, 0)  # a corner marker: every flip and turn moves it
    im = Image.fromarray(rgb)
    exif = im.getexif()
    exif[0x0112] = orientation
    path = tmp_path / "photo.png"
    im.save(path, exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    got, _ = load_image(path)
    np.testing.assert_array_equal(got, expected)
    assert image_size(path) == (expected.shape[1], expected.shape[0])


def test_portrait_photo_comes_out_upright(run, tmp_path: Path) -> None:
    im = Image.fromarray(gradient(48, 32))
    exif = im.getexif()
    exif[0x0112] = 6  # stored landscape, shown rotated 90 degrees clockwise
    im.save(tmp_path / "portrait.jpg", exif=exif)
    code, _, err = run(tmp_path / "portrait.jpg", tmp_path / "out.png")
    assert code == 0, err
    assert read_image(tmp_path / "out.png").shape == (48, 32, 3)


# --- B.12: weights that render nothing ----------------------------------------------------------------------


def _poisoned(tiny: Path, tmp: Path, value: float) -> Path:
    payload = torch.load(tiny, weights_only=True)
    name = next(iter(payload["state_dict"]))
    payload["state_dict"][name] = torch.full_like(payload["state_dict"][name], value)
    buf = io.BytesIO()
    torch.save(payload, buf)
    (tmp / "bad.stylecast").write_bytes(buf.getvalue())
    return tmp / "bad.stylecast"


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_model_with_non_finite_weights_is_refused(run, tiny_model: Path, tmp_path: Path, value: float) -> None:
    bad = _poisoned(tiny_model, tmp_path, value)
    with pytest.raises(ModelError, match="NaN or infinite"):
        load_model(bad)
    code, _, err = run(clip(tmp_path / "in.mp4", n=2), tmp_path / "out.mp4", "--model", str(bad))
    assert_one_line_error(code, err, "NaN or infinite")


def test_huge_weights_blend_instead_of_vanishing() -> None:
    names = ["udnie", "the_scream", "mosaic"]
    np.testing.assert_allclose(parse_style_spec("udnie:1e308,the_scream:1e308", names), [0.5, 0.5, 0.0])
    np.testing.assert_allclose(parse_style_spec("udnie:1e-320", names), [1.0, 0.0, 0.0])


def test_empty_style_is_an_error_not_the_default(run, tmp_path: Path) -> None:
    code, _, err = run(clip(tmp_path / "in.mp4", n=2), tmp_path / "out.mp4", "--style", "")
    assert_one_line_error(code, err, "empty style")
    assert not (tmp_path / "out.mp4").exists()


# --- B.13: audio the output container cannot hold -----------------------------------------------------------


def test_audio_the_container_refuses_is_encoded_up_front(run, tmp_path: Path) -> None:
    inp = write_with_audio(tmp_path / "in.mkv", 10, "pcm_u8")  # MP4 cannot hold 8-bit PCM
    code, _, err = run(inp, tmp_path / "out.mp4")
    assert code == 0, err
    assert "encoding it as aac" in " ".join(err.split())
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert c.streams.audio[0].codec_context.name == "aac"
        assert c.streams.audio[0].duration and float(c.streams.audio[0].duration * c.streams.audio[0].time_base) > 0.5
    assert count_frames(tmp_path / "out.mp4") == 10
