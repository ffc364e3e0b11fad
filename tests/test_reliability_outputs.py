"""Outputs: refused when unsafe, written under a temporary name, never left half-written (disk full,
errors, signals)."""

from __future__ import annotations

import errno
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from reliability_support import (
    assert_one_line_error,
    clip,
    count_frames,
    gradient,
    leftovers,
    read_image,
    stylecast,
    write_video,
)

from realtime import sinks
from realtime.api import Stylizer
from realtime.pipeline import RunStats
from realtime.sources import Frame

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def run(tiny_model: Path, capsys: pytest.CaptureFixture[str]):
    def go(inp: Path, out: Path, *options: str) -> tuple[int, str, str]:
        return stylecast(capsys, "run", inp, "-o", out, "--model", tiny_model, "--backend", "torch", *options)

    return go


@pytest.fixture()
def video(tmp_path: Path) -> Path:
    return clip(tmp_path / "in.mp4", n=6)


def test_missing_output_folder(run, video: Path, tmp_path: Path) -> None:
    code, _, err = run(video, tmp_path / "no" / "such" / "out.mp4")
    assert_one_line_error(code, err, "output folder does not exist")
    (tmp_path / "file").write_text("a file, not a folder")
    code, _, err = run(video, tmp_path / "file" / "out.mp4")
    assert_one_line_error(code, err, "output folder does not exist")


def test_output_folder_not_writable(run, video: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # /proc refuses new files even to root, so this is a real failure on any Linux; a non-root user
    # is stopped by the permission check, root by the creation itself.
    code, _, err = run(video, Path("/proc/stylecast-out.mp4"))
    assert_one_line_error(code, err, "/proc")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    # Root may write anyway: the check's probe file is refused there as a read-only mount refuses it.
    real_probe = tempfile.TemporaryFile

    def probe(*args: Any, dir: Any = None, **kw: Any) -> Any:  # noqa: A002 - TemporaryFile's own keyword
        if dir is not None and Path(dir) == locked:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        return real_probe(*args, dir=dir, **kw)

    monkeypatch.setattr(tempfile, "TemporaryFile", probe)
    code, _, err = run(video, locked / "out.mp4")
    assert_one_line_error(code, err, "not writable")
    assert list(locked.iterdir()) == []


def test_output_equal_to_input_is_refused(run, video: Path, tmp_path: Path) -> None:
    before = video.read_bytes()
    for same in (video, tmp_path / "." / "in.mp4"):
        code, _, err = run(video, same, "--overwrite")
        assert_one_line_error(code, err, "is the input")
    os.link(video, tmp_path / "hardlink.mp4")
    code, _, err = run(video, tmp_path / "hardlink.mp4", "--overwrite")
    assert_one_line_error(code, err, "is the input")
    assert video.read_bytes() == before and leftovers(tmp_path) == []


def test_existing_output_needs_overwrite(run, video: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    out.write_bytes(b"precious")
    code, _, err = run(video, out)
    assert_one_line_error(code, err, "--overwrite")
    assert out.read_bytes() == b"precious"
    code, _, err = run(video, out, "--overwrite")
    assert code == 0, err
    assert count_frames(out) == 6


def test_output_appears_only_when_complete(tiny_model: Path, video: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    seen: list[tuple[bool, list[str]]] = []

    def progress(stats: RunStats) -> None:
        seen.append((out.exists(), leftovers(tmp_path)))

    with Stylizer.load(tiny_model, backend="torch") as stylizer:
        stylizer.stream(video, out, progress=progress)
    assert len(seen) == 6 and all(not exists and len(parts) == 1 for exists, parts in seen)
    assert re.fullmatch(r"\.out\.\w{8}\.part\.mp4", seen[0][1][0])  # unique per run: see test_hostile_a
    assert count_frames(out) == 6 and leftovers(tmp_path) == []


def _noise_video(path: Path, frames: int = 40) -> Path:
    """Incompressible frames, so the output grows fast (for the disk-full test)."""
    rng = np.random.default_rng(0)
    return write_video(path, [rng.integers(0, 256, (96, 128, 3), np.uint8) for _ in range(frames)], codec="ffv1")


def _limit_file_size(limit: int) -> None:
    # Ignoring SIGXFSZ turns "file too large" into an EFBIG error from write(), as a full disk gives ENOSPC.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_disk_full_mid_video_leaves_nothing(tiny_model: Path, tmp_path: Path) -> None:
    inp = _noise_video(tmp_path / "noise.mkv")
    out = tmp_path / "out.mp4"
    cmd = [sys.executable, "-m", "realtime", "-q", "run", str(inp), "-o", str(out), "--model", str(tiny_model)]
    cmd += ["--backend", "torch", "--crf", "0", "--no-audio"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        cmd,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=lambda: _limit_file_size(64_000),
    )
    assert_one_line_error(proc.returncode, proc.stderr, "too large")
    assert not out.exists() and leftovers(tmp_path) == []


def test_disk_full_writing_images(run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.png"), gradient(32, 24, i))

    def full(path: Path, data: bytes) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(sinks, "atomic_write_bytes", full)
    code, _, err = run(folder, tmp_path / "styled")
    assert_one_line_error(code, err, "No space left on device")
    code, _, err = run(folder / "0.png", tmp_path / "one.png")
    assert_one_line_error(code, err, "No space left on device")
    assert not (tmp_path / "one.png").exists()


_SLOW_RUN = """
import sys, time
from realtime import cli, sinks
write = sinks.VideoSink.write
def slow(self, frame, image):
    time.sleep(0.05)  # a slow encoder: the run is surely still going when the signal comes
    write(self, frame, image)
sinks.VideoSink.write = slow
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_signal_during_a_file_run_leaves_a_playable_partial_output(tiny_model: Path, tmp_path: Path, sig: int) -> None:
    inp = clip(tmp_path / "long.mp4", n=200, width=64, height=48, fps=25, audio_seconds=8.0)
    out = tmp_path / "out.mp4"
    cmd = [sys.executable, "-c", _SLOW_RUN, "-q", "run", str(inp), "-o", str(out), "--model", str(tiny_model)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        cmd + ["--backend", "torch"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while not leftovers(tmp_path) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted after" in stdout and "Traceback" not in stderr
    frames = count_frames(out)
    assert 0 < frames < 200 and f"interrupted after {frames} frames" in stdout
    assert leftovers(tmp_path) == []


def test_non_empty_output_folder_needs_overwrite(run, tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), gradient(32, 24))
    styled = tmp_path / "styled"
    styled.mkdir()
    (styled / "a.png").write_bytes(b"an earlier result")
    code, _, err = run(folder, styled)
    assert_one_line_error(code, err, "not empty; pass --overwrite")
    assert (styled / "a.png").read_bytes() == b"an earlier result"
    code, _, err = run(folder, styled, "--overwrite")
    assert code == 0, err
    assert read_image(styled / "a.png").shape == (24, 32, 3)
    code, _, err = run(folder, tmp_path / "new-folder")
    assert code == 0, err


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [("out.xyz", [], "unknown extension"), ("out.mp4", ["--codec", "nosuch"], "video codec 'nosuch' is not available")],
)
def test_unknown_output_format_or_codec(
    run, video: Path, tmp_path: Path, name: str, options: list[str], message: str
) -> None:
    code, _, err = run(video, tmp_path / name, *options)
    assert_one_line_error(code, err, message)
    assert not (tmp_path / name).exists() and leftovers(tmp_path) == []


def test_second_ctrl_c_while_finishing_discards_the_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out.mp4"
    sink = sinks.VideoSink(out, (32, 24))
    for i in range(5):
        sink.write(Frame(gradient(32, 24, i), i, i / 25, 0.0), gradient(32, 24, i))
    finish = sink._close_containers
    calls: list[int] = []

    def interrupted_once() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
        finish()

    monkeypatch.setattr(sink, "_close_containers", interrupted_once)
    with pytest.raises(KeyboardInterrupt):
        sink.close(complete=False)
    assert not out.exists() and leftovers(tmp_path) == []
