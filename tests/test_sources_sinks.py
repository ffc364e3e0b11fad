from __future__ import annotations

import sys
import types
import wave
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from conftest import SAMPLE_VIDEO

from realtime.errors import InputError, OutputError
from realtime.sinks import (
    ImageSink,
    NullSink,
    VideoSink,
    VirtualCamSink,
    WindowSink,
    check_output,
    open_file_sink,
    parse_bitrate,
)
from realtime.sources import CameraSource, Frame, ImageSource, ReplaySource, VideoSource, fit_size, open_source


def _video_info(path: Path) -> tuple[int, Fraction, float, list[str]]:
    with av.open(str(path)) as c:
        n = sum(1 for _ in c.decode(video=0))
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        return n, v.average_rate, c.duration / 1e6, [s.type for s in c.streams]


def _write_video(path: Path, frames: list[np.ndarray], rotation: int = 0, fps: int = 10) -> Path:
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.height, s.width = frames[0].shape[:2]
        s.pix_fmt = "yuv420p"
        if rotation:
            s.set_display_rotation(rotation)
        for i, img in enumerate(frames):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts = i
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def test_fit_size() -> None:
    assert fit_size(1280, 720) == (1280, 720)
    assert fit_size(1280, 720, max_side=640) == (640, 360)
    assert fit_size(720, 1280, max_side=100) == (56, 100)  # even sides for yuv420p
    assert fit_size(1280, 720, max_side=640, size=(300, 200)) == (300, 200)
    assert fit_size(320, 200, max_side=640) == (320, 200)


def test_video_source_keeps_timestamps_and_scales() -> None:
    with VideoSource(SAMPLE_VIDEO, max_side=160) as src:
        assert src.size == (160, 90) and src.fps == 25 and src.frame_count == 132 and not src.live
        frames = list(src)
    assert len(frames) == 132
    assert frames[0].image.shape == (90, 160, 3) and frames[0].image.dtype == np.uint8
    assert [f.pts for f in frames[:3]] == [0, 512, 1024]  # time base 1/12800 at 25 fps
    assert frames[25].seconds == pytest.approx(1.0)
    assert [f.index for f in frames] == list(range(132))


def test_rotation_metadata_is_applied(tmp_path: Path) -> None:
    img = np.zeros((32, 64, 3), np.uint8)
    img[:, :16] = 255  # white on the left
    path = _write_video(tmp_path / "rot.mp4", [img] * 3, rotation=90)
    with VideoSource(path) as src:
        assert src.size == (32, 64)
        first = next(iter(src)).image
    # 90 degrees counter-clockwise: the left edge becomes the bottom.
    assert first.shape == (64, 32, 3)
    assert first[-8:].mean() > 200 and first[:40].mean() < 40


def test_image_folder_source(tmp_path: Path) -> None:
    for i, size in enumerate([(20, 30), (40, 10)]):
        cv2.imwrite(str(tmp_path / f"im{i}.png"), np.full((*size, 3), 50 * i, np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    src = open_source(tmp_path)
    assert isinstance(src, ImageSource) and src.frame_count == 2
    frames = list(src)
    assert [f.name for f in frames] == ["im0.png", "im1.png"]
    assert frames[1].image.shape == (40, 10, 3)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.mp4", None, "not found"),
        ("empty.mp4", b"", "empty"),
        ("text.mp4", b"hello " * 100, "cannot read"),
        ("", None, "no images"),
    ],
)
def test_bad_inputs(tmp_path: Path, name: str, content: bytes | None, message: str) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        open_source(path)


def test_audio_only_file_has_no_video_stream(tmp_path: Path) -> None:
    path = tmp_path / "tone.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(np.zeros(8000, np.int16).tobytes())
    with pytest.raises(InputError, match="no video stream"):
        open_source(path)


def test_replay_source_runs_in_real_time() -> None:
    src = ReplaySource(SAMPLE_VIDEO, max_side=64, speed=10.0)
    assert src.live
    frames = list(src)
    assert len(frames) == 132
    # Capture times follow the stream's clock (at 10x): 5.24 s of video in no less than 0.52 s
    # (more only if decoding cannot keep up on a busy machine).
    span = frames[-1].captured - frames[0].captured
    assert 0.5 < span < 5.0
    assert frames[66].captured - frames[0].captured > 0.25


def _frame(i: int, img: np.ndarray, pts: int | None = None) -> Frame:
    return Frame(img, i, i / 25, 0.0, pts=pts)


def test_video_sink_copies_audio_and_renames(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    with VideoSource(SAMPLE_VIDEO, max_side=96) as src:
        sink = VideoSink(out, (96, 54), src.rate, src.time_base, audio_from=src.audio)
        for f in src:
            sink.write(f, f.image)
        assert not out.exists() and sink.tmp.exists()  # written under a temporary name
        sink.close()
    assert not sink.tmp.exists()
    n, rate, duration, types = _video_info(out)
    assert (n, rate, types) == (132, 25, ["video", "audio"])
    assert duration == pytest.approx(5.312, abs=0.05)


def test_interrupted_video_sink_is_playable_and_audio_stops_with_video(tmp_path: Path) -> None:
    out = tmp_path / "partial.mp4"
    with VideoSource(SAMPLE_VIDEO, max_side=96) as src:
        sink = VideoSink(out, (96, 54), src.rate, src.time_base, audio_from=src.audio)
        for f in src:
            if f.index == 30:
                break
            sink.write(f, f.image)
    sink.close(complete=False)
    n, _, duration, types = _video_info(out)
    assert n == 30 and types == ["video", "audio"]
    assert duration == pytest.approx(30 / 25, abs=0.15)


def test_aborted_sink_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "x.mp4"
    sink = VideoSink(out, (32, 32), 25)
    sink.write(_frame(0, np.zeros((32, 32, 3), np.uint8)), np.zeros((32, 32, 3), np.uint8))
    sink.abort()
    assert list(tmp_path.iterdir()) == []


def test_sink_without_frames_writes_nothing(tmp_path: Path) -> None:
    sink = VideoSink(tmp_path / "x.mp4", (32, 32), 25)
    sink.close()
    assert list(tmp_path.iterdir()) == []


def test_encoder_options(tmp_path: Path) -> None:
    assert parse_bitrate("4M") == 4_000_000 and parse_bitrate("800k") == 800_000 and parse_bitrate("1500") == 1500
    with pytest.raises(OutputError):
        parse_bitrate("fast")
    out = tmp_path / "b.mkv"
    sink = VideoSink(out, (64, 48), 30, bitrate="200k", preset="ultrafast")
    img = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    for i in range(5):
        sink.write(_frame(i, img), img)
    sink.close()
    assert _video_info(out)[0] == 5
    with pytest.raises(OutputError, match="codec"):
        VideoSink(tmp_path / "c.mp4", (64, 48), 30, codec="no-such-codec")


def test_image_sinks(tmp_path: Path) -> None:
    img = np.zeros((8, 12, 3), np.uint8)
    img[..., 0] = 255
    single = open_file_sink(tmp_path / "one.png", None, (12, 8), single_image=True)
    single.write(_frame(0, img), img)
    back = cv2.imread(str(tmp_path / "one.png"))
    assert back is not None
    back = cv2.cvtColor(back, cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(back, img)
    folder = open_file_sink(tmp_path / "frames", None, None, single_image=False)
    assert isinstance(folder, ImageSink)
    folder.write(Frame(img, 0, 0, 0, name="a.jpg"), img)
    folder.write(_frame(7, img), img)
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == ["000007.png", "a.png"]
    with pytest.raises(OutputError, match="input is an image"):
        open_file_sink(tmp_path / "v.mp4", None, (12, 8), single_image=True)
    with pytest.raises(OutputError, match="many frames"):
        open_file_sink(tmp_path / "v.png", None, (12, 8), single_image=False)


def test_check_output(tmp_path: Path) -> None:
    inp = tmp_path / "in.mp4"
    inp.write_bytes(b"x")
    with pytest.raises(OutputError, match="is the input"):
        check_output(tmp_path / "." / "in.mp4", [inp], overwrite=True)
    with pytest.raises(OutputError, match="exists"):
        check_output(inp, [], overwrite=False)
    check_output(inp, [], overwrite=True)
    with pytest.raises(OutputError, match="does not exist"):
        check_output(tmp_path / "nope" / "o.mp4", [inp], overwrite=False)


def test_null_sink_counts() -> None:
    sink = NullSink()
    sink.write(_frame(0, np.zeros((2, 2, 3), np.uint8)), np.zeros((2, 2, 3), np.uint8))
    assert sink.frames == 1


def test_window_sink_routes_keys_and_closes(monkeypatch: pytest.MonkeyPatch) -> None:
    shown: list[np.ndarray] = []
    keys = iter([ord("2"), 0xFF, ord("q")])
    monkeypatch.setattr(cv2, "namedWindow", lambda *a: None)
    monkeypatch.setattr(cv2, "imshow", lambda title, img: shown.append(img))
    monkeypatch.setattr(cv2, "waitKey", lambda ms: next(keys))
    monkeypatch.setattr(cv2, "getWindowProperty", lambda *a: 1.0)
    monkeypatch.setattr(cv2, "destroyWindow", lambda *a: None)
    pressed: list[int] = []
    sink = WindowSink("t", on_key=pressed.append)
    img = np.zeros((40, 200, 3), np.uint8)
    for i in range(3):
        sink.write(_frame(i, img), img)
    assert pressed == [ord("2")] and sink.stop_requested
    assert shown[0].shape == (40, 200, 3) and shown[0].any()  # the fps/latency overlay is drawn
    sink.close()


def test_window_sink_without_gui_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_gui(*a: object) -> None:
        raise cv2.error("The function is not implemented")

    monkeypatch.setattr(cv2, "namedWindow", no_gui)
    with pytest.raises(OutputError, match="cannot open windows"):
        WindowSink()


def test_virtual_cam_sink(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[np.ndarray] = []

    class Camera:
        device = "fake0"

        def __init__(self, width: int, height: int, fps: float, fmt: object) -> None:
            self.size = (width, height)

        def send(self, img: np.ndarray) -> None:
            sent.append(img)

        def close(self) -> None:
            sent.clear()

    fake = types.SimpleNamespace(Camera=Camera, PixelFormat=types.SimpleNamespace(RGB="rgb"))
    monkeypatch.setitem(sys.modules, "pyvirtualcam", fake)
    sink = VirtualCamSink((8, 4), 30)
    img = np.zeros((4, 8, 3), np.uint8)
    sink.write(_frame(0, img), img)
    assert len(sent) == 1
    monkeypatch.setitem(sys.modules, "pyvirtualcam", None)
    with pytest.raises(OutputError, match="pip install"):
        VirtualCamSink((8, 4), 30)


def test_camera_source_reads_through_opencv() -> None:
    # OpenCV opens a video file like a capture device: the camera code path without a camera.
    camera = CameraSource(str(SAMPLE_VIDEO), max_side=64)
    assert camera.live and camera.size == (64, 36) and camera.fps == pytest.approx(25)
    frames = []
    for frame in camera:
        frames.append(frame)
        if len(frames) == 5:
            break
    camera.close()
    assert [f.index for f in frames] == list(range(5))
    assert frames[0].image.shape == (36, 64, 3) and frames[0].seconds <= frames[-1].seconds
    with VideoSource(SAMPLE_VIDEO, max_side=64) as video:
        reference = next(iter(video)).image.astype(int)
    # Same picture, same channel order (OpenCV delivers BGR; sources deliver RGB).
    assert np.abs(frames[0].image.astype(int) - reference).mean() < 6
