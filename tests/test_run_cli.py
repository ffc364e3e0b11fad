"""`stylecast run/webcam/styles` end to end, through the real CLI entry point."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from conftest import SAMPLE_VIDEO, TINY_STYLES, make_tiny_model

from realtime import cli
from realtime.sources import CameraSource

REPO = Path(__file__).resolve().parents[1]
# Only this module's commands: the run commands must not depend on the other sub-commands importing.
CLI_SNIPPET = (
    "import sys; from realtime import cli; cli.COMMAND_MODULES = {'realtime.commands': ''}; sys.exit(cli.main())"
)


@pytest.fixture(autouse=True)
def only_run_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "COMMAND_MODULES", {"realtime.commands": "run, webcam, styles"})


def stylecast(*args: str | Path) -> int:
    return cli.main(["-q", *map(str, args)])


def probe(path: Path) -> dict[str, object]:
    with av.open(str(path)) as c:
        frames = sum(1 for _ in c.decode(video=0))
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        audio = c.streams.audio[0] if c.streams.audio else None
        return {
            "frames": frames,
            "rate": v.average_rate,
            "duration": c.duration / 1e6,
            "size": (v.codec_context.width, v.codec_context.height),
            "audio": (audio.codec_context.name, audio.channels, audio.rate) if audio else None,
        }


def audio_packets(path: Path) -> list[tuple[int | None, int]]:
    with av.open(str(path)) as c:
        return [(p.pts, p.size) for p in c.demux(audio=0) if p.size]


def test_run_sample_keeps_frames_rate_duration_and_audio(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "stylized.mp4"
    assert stylecast("run", SAMPLE_VIDEO, "-o", out, "--max-side", "160", "--model", tiny_model, "--style", "wave") == 0
    got, ref = probe(out), probe(SAMPLE_VIDEO)
    assert got["frames"] == ref["frames"] == 132
    assert got["rate"] == ref["rate"] == 25
    assert got["duration"] == pytest.approx(ref["duration"], abs=0.05)
    assert got["audio"] == ref["audio"] == ("aac", 6, 48000)
    assert audio_packets(out) == audio_packets(SAMPLE_VIDEO)  # copied, not re-encoded or cut
    assert got["size"] == (160, 90)
    summary = capsys.readouterr().out
    assert "132 frames, 0 dropped" in summary and "latency p50" in summary and "p99" in summary
    assert not list(tmp_path.glob(".*part*"))


def test_run_with_schedule_blend_strength_and_backends(tiny_model: Path, tmp_path: Path) -> None:
    schedule = tmp_path / "fade.toml"
    schedule.write_text(
        'interpolation = "smooth"\n[[keyframes]]\nframe = 0\nstyle = "candy"\n[[keyframes]]\nframe = 100\nstyle = "wave"\n'
    )
    out = tmp_path / "a.mkv"
    assert (
        stylecast(
            "run",
            SAMPLE_VIDEO,
            "-o",
            out,
            "--size",
            "96x64",
            "--model",
            tiny_model,
            "--schedule",
            schedule,
            "--backend",
            "torch",
        )
        == 0
    )
    assert probe(out)["size"] == (96, 64)
    out2 = tmp_path / "b.mp4"
    args = ["--style", "candy:0.3,mosaic:0.7", "--strength", "0.5", "--preserve-color", "--no-audio", "--batch", "3"]
    assert stylecast("run", SAMPLE_VIDEO, "-o", out2, "--max-side", "64", "--model", tiny_model, *args) == 0
    assert probe(out2)["audio"] is None and probe(out2)["frames"] == 132


def test_run_images(tiny_model: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"p{i}.jpg"), np.full((20 + i, 30, 3), 40 * i, np.uint8))
    assert stylecast("run", folder, "-o", tmp_path / "out", "--model", tiny_model) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["p0.png", "p1.png", "p2.png"]
    assert stylecast("run", folder / "p1.jpg", "-o", tmp_path / "one.png", "--model", tiny_model) == 0
    one = cv2.imread(str(tmp_path / "one.png"))
    assert one is not None and one.shape == (21, 30, 3)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "missing.mp4", "-o", "{tmp}/o.mp4"], "input not found"),
        (["run", SAMPLE_VIDEO, "-o", SAMPLE_VIDEO, "--overwrite"], "is the input"),
        (["run", SAMPLE_VIDEO, "-o", "{tmp}/exists.mp4"], "exists; pass --overwrite"),
        (["run", SAMPLE_VIDEO, "-o", "{tmp}/no/dir/o.mp4"], "output folder does not exist"),
        (["run", SAMPLE_VIDEO, "-o", "{tmp}/o.mp4", "--style", "wav"], "unknown style 'wav'; did you mean wave"),
        (["run", SAMPLE_VIDEO, "-o", "{tmp}/o.mp4", "--style", "wave:-2"], ">= 0"),
        (["run", SAMPLE_VIDEO, "-o", "{tmp}/o.mp4", "--style", "wave", "--schedule", "{tmp}/s.toml"], "not both"),
        (["run", SAMPLE_VIDEO, "-o", "{tmp}/o.mp4", "--schedule", "{tmp}/missing.toml"], "schedule file not found"),
        (["run", SAMPLE_VIDEO, "-o", "{tmp}/o.mp4", "--backend", "tensorrt"], "tensorrt"),
        (["run", SAMPLE_VIDEO, "-o", "{tmp}/o.png"], "many frames"),
        # the output's kind is checked before the model loads (an INT8 calibration can take half a minute)
        (["run", SAMPLE_VIDEO, "-o", "{tmp}/o.png", "--model", "{tmp}/empty.mp4"], "many frames"),
        (["run", "{tmp}/empty.mp4", "-o", "{tmp}/o.mp4"], "input file is empty"),
        (["run", SAMPLE_VIDEO, "-o", "{tmp}/o.mp4", "--model", "{tmp}/empty.mp4"], "not a stylecast model"),
    ],
)
def test_user_errors_are_one_line(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str | Path], message: str
) -> None:
    (tmp_path / "exists.mp4").write_bytes(b"keep me")
    (tmp_path / "empty.mp4").write_bytes(b"")
    argv = [str(a).format(tmp=tmp_path) for a in args]
    if "--model" not in argv:
        argv += ["--model", str(tiny_model)]
    code = stylecast(*argv)
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert message in err and err.startswith("stylecast: error:") and "\n" not in err, err
    assert (tmp_path / "exists.mp4").read_bytes() == b"keep me"
    assert not (tmp_path / "o.mp4").exists()


def test_bad_numbers_are_rejected_by_the_parser(tiny_model: Path, tmp_path: Path) -> None:
    for args in (["--max-side", "0"], ["--strength", "2"], ["--size", "12by3"], ["--batch", "-1"]):
        with pytest.raises(SystemExit) as e:
            stylecast("run", SAMPLE_VIDEO, "-o", tmp_path / "o.mp4", *args)
        assert e.value.code == 2


def test_styles_lists_the_model(tiny_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert stylecast("styles", "--model", tiny_model) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in TINY_STYLES) and "key 1" in out
    assert stylecast("styles") == 0
    assert "starry_night" in capsys.readouterr().out  # the bundled model's style names


def test_webcam_without_camera_is_a_clear_error(tiny_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert stylecast("webcam", "--device", "/dev/video97", "--model", tiny_model) != 0
    assert "cannot open camera" in capsys.readouterr().err


def test_live_replay_reports_drops(tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "live.mp4"
    assert stylecast("run", SAMPLE_VIDEO, "-o", out, "--live", "--max-side", "64", "--model", tiny_model) == 0
    summary = capsys.readouterr().out
    assert "dropped" in summary and "latest" in summary
    assert 0 < probe(out)["frames"] <= 132  # type: ignore[operator]


def test_ctrl_c_leaves_a_playable_partial_output(tmp_path: Path) -> None:
    # A deliberately heavy model, so the run is still going when the signal arrives.
    model = make_tiny_model(tmp_path / "heavy.stylecast", arch="quality", channels=32)
    out = tmp_path / "partial.mp4"
    cmd = [
        sys.executable,
        "-c",
        CLI_SNIPPET,
        "-q",
        "run",
        str(SAMPLE_VIDEO),
        "-o",
        str(out),
        "--model",
        str(model),
        "--backend",
        "torch",
        "--size",
        "640x360",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    # The temporary name is unique per run: .partial.<random>.part.mp4
    while not list(tmp_path.glob(".partial.*.part.mp4")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(2.0)  # the output exists from the first frame on; let a few frames through
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    done = re.search(r"interrupted after (\d+) frames", stdout)
    assert done, stdout
    info = probe(out)
    assert 0 < info["frames"] == int(done.group(1)) < 132, stdout  # type: ignore[operator]
    assert info["audio"] is not None
    assert info["duration"] == pytest.approx(info["frames"] / 25, abs=0.2)
    assert not list(tmp_path.glob(".partial.*.part.mp4"))


def test_webcam_to_a_virtual_camera(
    tiny_model: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sent: list[np.ndarray] = []

    class Camera:
        device = "fake"

        def __init__(self, width: int, height: int, fps: float, fmt: object) -> None:
            pass

        def send(self, img: np.ndarray) -> None:
            sent.append(img)

        def close(self) -> None:
            pass

    monkeypatch.setitem(
        sys.modules, "pyvirtualcam", types.SimpleNamespace(Camera=Camera, PixelFormat=types.SimpleNamespace(RGB=1))
    )
    # OpenCV opens the sample clip as if it were a capture device; at its end the "camera" is gone.
    monkeypatch.setattr(CameraSource, "reconnect_delays", ())
    args: list[str | Path] = [
        "webcam",
        "--device",
        SAMPLE_VIDEO,
        "--virtual-cam",
        "--no-window",
        "--max-side",
        "64",
        "--model",
        tiny_model,
    ]
    assert stylecast(*args, "--style", "mosaic") == 0
    assert sent and sent[0].shape == (36, 64, 3)
    assert "latest" in capsys.readouterr().out
    assert stylecast("webcam", "--no-window") != 0
    assert "nothing to show" in capsys.readouterr().err
