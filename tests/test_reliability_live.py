"""Live runs: a camera that is missing or unplugged mid-run, a slow consumer, a window the user closes."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from reliability_support import assert_one_line_error, gradient, stylecast

from realtime.api import Stylizer
from realtime.sinks import Sink
from realtime.sources import CameraSource, Frame

FAST_RETRY = (0.01, 0.02, 0.04)


class FakeCameras:
    """Stands in for ``cv2.VideoCapture``. Each open takes the next plug-in from ``sessions``: the
    number of frames the camera delivers before it is unplugged, or None for "not there"."""

    def __init__(self, sessions: list[int | None], interval: float = 0.005) -> None:
        self.sessions = sessions
        self.interval = interval
        self.opens = 0

    def __call__(self, device: object) -> FakeCameras._Capture:
        self.opens += 1
        frames = self.sessions.pop(0) if self.sessions else None
        return self._Capture(frames, self.interval)

    class _Capture:
        def __init__(self, frames: int | None, interval: float) -> None:
            self.left, self.interval, self.shown = frames, interval, 0

        def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
            return self.left is not None

        def read(self) -> tuple[bool, np.ndarray | None]:
            if not self.left:
                return False, None
            time.sleep(self.interval)
            self.left -= 1
            self.shown += 1
            return True, gradient(40, 30, self.shown)

        def set(self, prop: int, value: float) -> bool:
            return True

        def get(self, prop: int) -> float:
            return 30.0 if prop == cv2.CAP_PROP_FPS else 0.0

        def release(self) -> None:
            self.left = None


@pytest.fixture()
def cameras(monkeypatch: pytest.MonkeyPatch):
    def plug(*sessions: int | None, interval: float = 0.005) -> FakeCameras:
        fake = FakeCameras(list(sessions), interval)
        monkeypatch.setattr(cv2, "VideoCapture", fake)
        monkeypatch.setattr(CameraSource, "reconnect_delays", FAST_RETRY)
        return fake

    return plug


def test_missing_camera_is_a_one_line_error(cameras, tiny_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cameras(None)
    code, _, err = stylecast(capsys, "webcam", "--device", "3", "--model", tiny_model, "--backend", "torch")
    assert_one_line_error(code, err, "cannot open camera 3")
    cameras(0)  # opens, but never delivers a frame
    code, _, err = stylecast(capsys, "webcam", "--model", tiny_model, "--backend", "torch")
    assert_one_line_error(code, err, "delivers no frames")


def test_unplugged_camera_that_stays_away_ends_the_run(cameras, caplog: pytest.LogCaptureFixture) -> None:
    fake = cameras(5)
    with caplog.at_level(logging.WARNING, logger="realtime.sources"):
        frames = list(CameraSource(0))
    assert len(frames) == 5 and fake.opens == 1 + len(FAST_RETRY)
    assert caplog.text.count("reconnecting") == len(FAST_RETRY) and "is gone; ending the run" in caplog.text


def test_unplugged_camera_that_comes_back_continues(cameras, caplog: pytest.LogCaptureFixture) -> None:
    cameras(5, None, 4)  # unplugged after 5 frames, absent at the first retry, back at the second
    with caplog.at_level(logging.WARNING, logger="realtime.sources"):
        frames = list(CameraSource(0))
    assert len(frames) == 9 and "reconnected" in caplog.text
    assert [f.index for f in frames] == list(range(9)) and all(f.image.shape == (30, 40, 3) for f in frames)
    assert all(b.seconds >= a.seconds for a, b in zip(frames, frames[1:], strict=False))


def test_camera_reconnect_backs_off(cameras) -> None:
    cameras(1)
    start = time.perf_counter()
    assert len(list(CameraSource(0))) == 1
    assert time.perf_counter() - start >= sum(FAST_RETRY)
    assert list(CameraSource.reconnect_delays) == sorted(CameraSource.reconnect_delays)


class _FakeWindow:
    """``cv2`` window functions: the user closes the window after ``close_after`` frames."""

    def __init__(self, close_after: int) -> None:
        self.close_after, self.shown, self.destroyed = close_after, 0, False

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(cv2, "namedWindow", lambda *a: None)
        monkeypatch.setattr(cv2, "imshow", self.imshow)
        monkeypatch.setattr(cv2, "waitKey", lambda ms: 0xFF)
        monkeypatch.setattr(cv2, "getWindowProperty", lambda *a: 0.0 if self.shown >= self.close_after else 1.0)
        monkeypatch.setattr(cv2, "destroyWindow", self.destroy)

    def imshow(self, title: str, image: np.ndarray) -> None:
        self.shown += 1

    def destroy(self, title: str) -> None:
        self.destroyed = True


@pytest.mark.parametrize(
    ("camera_frames", "close_after"),
    [(10_000, 6), (8, 10_000)],
    ids=["window-closed-by-user", "camera-unplugged-for-good"],
)
def test_webcam_command_ends_cleanly(
    cameras,
    tiny_model: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    camera_frames: int,
    close_after: int,
) -> None:
    cameras(camera_frames)
    window = _FakeWindow(close_after)
    window.install(monkeypatch)
    code, out, err = stylecast(capsys, "webcam", "--model", tiny_model, "--backend", "torch")
    assert code == 0 and "Traceback" not in err, err
    assert window.destroyed and 0 < window.shown <= min(camera_frames, close_after)
    assert f"done: {window.shown} frames" in out
    if close_after < camera_frames:
        assert window.shown == close_after


class _SlowSink(Sink):
    def __init__(self, delay: float) -> None:
        self.delay, self.latencies = delay, list[float]()

    def write(self, frame: Frame, image: np.ndarray) -> None:
        time.sleep(self.delay)
        self.latencies.append(time.perf_counter() - frame.captured)


def test_slow_consumer_keeps_latency_bounded(cameras, tiny_model: Path) -> None:
    cameras(150, interval=0.004)  # a 250 fps camera for 0.6 s
    sink = _SlowSink(0.04)  # a consumer that takes 25 frames per second
    with Stylizer.load(tiny_model, backend="torch") as stylizer:
        stats = stylizer.stream(CameraSource(0), sink)
    assert stats.policy == "latest" and stats.dropped > 0 and stats.frames + stats.dropped <= 150
    # Queues of old frames would grow the latency to the whole run (> 1 s by the end); the latest-frame
    # policy keeps it near one consumer step plus one inference, whatever the run's length.
    assert max(sink.latencies[len(sink.latencies) // 2 :]) < 0.5


def test_unreachable_stream_is_a_one_line_error(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Port 9 (discard) on the loopback: refused at once, no network needed.
    code, _, err = stylecast(capsys, "run", "rtsp://127.0.0.1:9/none", "-o", tmp_path / "o.mp4", "--model", tiny_model)
    assert_one_line_error(code, err, "cannot open stream rtsp://127.0.0.1:9/none")
    assert not (tmp_path / "o.mp4").exists()
