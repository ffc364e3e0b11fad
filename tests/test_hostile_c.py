"""Issue 15, class C: no crash or hang (odd file names, no display, devices as models, closed stdout)."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import pytest
from reliability_support import assert_one_line_error, gradient, stylecast

from realtime import cli, sinks
from realtime.errors import ModelError, OutputError
from realtime.modelfile import load_model
from realtime.sources import read_image as load_image

REPO = Path(__file__).resolve().parents[1]


# --- C.14: file names that are not UTF-8 ------------------------------------------------------------------


def test_image_whose_name_is_not_utf8(tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # cv2.imread crashed the process (SIGSEGV) on such a name; the bytes are now read by Python.
    name = os.fsdecode(b"caf\xe9.png")
    ok, data = cv2.imencode(".png", gradient(24, 16))
    assert ok
    (tmp_path / name).write_bytes(data.tobytes())
    out = tmp_path / os.fsdecode(b"out\xff.png")
    code, _, err = stylecast(capsys, "run", tmp_path / name, "-o", out, "--model", tiny_model, "--backend", "torch")
    assert code == 0, err
    assert load_image(out)[0].shape == (16, 24, 3)  # not cv2.imread: that is the crash this is about


# --- C.15: a GUI build of OpenCV without a display ----------------------------------------------------------


def test_window_without_a_display_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sinks, "opencv_gui", lambda: "QT5")
    opened: list[str] = []
    monkeypatch.setattr(cv2, "namedWindow", lambda *a: opened.append("window"))  # Qt would abort here
    with pytest.raises(OutputError, match="no display"):
        sinks.WindowSink()
    assert opened == []
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr(cv2, "destroyWindow", lambda *a: None)
    sinks.WindowSink().close()
    assert opened == ["window"]


def test_headless_build_needs_no_display_check() -> None:
    assert sinks.opencv_gui() == "NONE"  # the build stylecast installs (opencv-python-headless)


# --- C.16: models that are devices or FIFOs ---------------------------------------------------------------


def _loads_within(path: Path, seconds: float = 10.0) -> BaseException | None:
    errors: list[BaseException] = []

    def load() -> None:
        try:
            load_model(path)
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=load, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"loading {path} hangs"
    return errors[0] if errors else None


@pytest.mark.parametrize("device", ["fifo", "/dev/zero"])
def test_model_that_is_not_a_regular_file_is_refused_at_once(tmp_path: Path, device: str) -> None:
    path = Path(device)
    if device == "fifo":
        path = tmp_path / "model.stylecast"
        os.mkfifo(path)
    error = _loads_within(path)
    assert isinstance(error, ModelError) and "not a regular file" in str(error)


# --- C.18: a closed or full standard output ---------------------------------------------------------------


class _ClosedStdout:
    def __init__(self, error: int) -> None:
        self.error = error

    def write(self, text: str) -> int:
        if self.error == errno.EPIPE:
            raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))
        return len(text)

    def flush(self) -> None:
        raise OSError(self.error, os.strerror(self.error))

    def fileno(self) -> int:
        raise OSError(errno.EBADF, "no file descriptor")


@pytest.mark.parametrize("error", [errno.EPIPE, errno.ENOSPC], ids=["closed-pipe", "full"])
def test_closed_stdout_is_one_line_not_a_traceback(
    tiny_model: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], error: int
) -> None:
    monkeypatch.setattr(sys, "stdout", _ClosedStdout(error))
    code = cli.main(["-q", "styles", "--model", str(tiny_model)])
    assert_one_line_error(code, capsys.readouterr().err, "cannot write to standard output")


def test_stdout_to_dev_full_in_a_real_process(tiny_model: Path) -> None:
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            [sys.executable, "-m", "realtime", "-q", "styles", "--model", str(tiny_model)],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            timeout=600,  # minutes only on a machine busy with other work
        )
    assert_one_line_error(proc.returncode, proc.stderr, "No space left on device")


# --- C.19: names that are not what they look like -------------------------------------------------------------


def test_pipe_named_like_an_image_is_refused_not_read_twice(tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # An image is read twice (its size, then its pixels); a FIFO would block on the second open.
    fifo = tmp_path / "frame.png"
    os.mkfifo(fifo)
    result: list[tuple[int, str, str]] = []
    t = threading.Thread(
        target=lambda: result.append(stylecast(capsys, "run", fifo, "-o", tmp_path / "out.png", "--model", tiny_model, "--backend", "torch")),
        daemon=True,
    )
    t.start()
    t.join(120)
    assert result, "a FIFO named like an image hangs"
    code, _, err = result[0]
    assert_one_line_error(code, err, "not a regular file")


def test_output_that_is_only_an_extension_is_refused(tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Path(".mp4") has no suffix, so without the check it would become a hidden output folder.
    ok, data = cv2.imencode(".png", gradient(24, 16))
    (tmp_path / "in.png").write_bytes(data.tobytes())
    for name in (".mp4", ".png"):
        code, _, err = stylecast(capsys, "run", tmp_path / "in.png", "-o", tmp_path / name, "--model", tiny_model, "--backend", "torch")
        assert_one_line_error(code, err, "only an extension")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]
