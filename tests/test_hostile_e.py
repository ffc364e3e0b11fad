"""Issue 15, class E: messages that say what is really wrong, and options that do what they say."""

from __future__ import annotations

import io
import logging
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
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

from realtime import cli
from realtime.errors import BackendUnavailable, ModelError
from realtime.model import Generator, GeneratorConfig
from realtime.modelfile import StyleInfo, load_model, save_model
from realtime.sources import CameraSource, ImageSource, VideoSource, open_source
from realtime.styles import Keyframe, Schedule


@pytest.fixture()
def run(tiny_model: Path, capsys: pytest.CaptureFixture[str]):
    def go(inp: Path | str, out: Path | str, *options: str) -> tuple[int, str, str]:
        return stylecast(capsys, "run", inp, "-o", out, "--model", tiny_model, "--backend", "torch", *options)

    return go


# --- still images FFmpeg calls videos -----------------------------------------------------------------------


def _save(path: Path, fmt: str) -> Path:
    Image.fromarray(gradient(24, 16)).save(path, format=fmt)
    return path


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("one.gif", "GIF"), ("one.avif", "AVIF"), ("one.ppm", "PPM"), ("photo", "PNG")],
    ids=["gif", "avif", "ppm", "no-extension"],
)
def test_one_frame_images_are_images(run, tmp_path: Path, name: str, fmt: str) -> None:
    code, _, err = run(_save(tmp_path / name, fmt), tmp_path / "out.png")
    assert code == 0, err
    assert read_image(tmp_path / "out.png").shape == (16, 24, 3)


def test_animated_gif_stays_a_video(tmp_path: Path) -> None:
    frames = [Image.fromarray(gradient(24, 16, i)) for i in range(3)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    assert isinstance(open_source(tmp_path / "anim.gif"), VideoSource)


def test_single_float_tiff(run, tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "hdr.tiff"), gradient(24, 16).astype(np.float32) / 255.0)
    code, _, err = run(tmp_path / "hdr.tiff", tmp_path / "out.png")
    assert code == 0, err
    assert read_image(tmp_path / "out.png").shape == (16, 24, 3)


# --- image folders into a video --------------------------------------------------------------------------------


def test_folder_of_equal_images_makes_a_video(run, tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(4):
        cv2.imwrite(str(folder / f"{i}.png"), gradient(24, 16, i))
    code, _, err = run(folder, tmp_path / "out.mp4")
    assert code == 0, err
    assert count_frames(tmp_path / "out.mp4") == 4
    cv2.imwrite(str(folder / "9.png"), gradient(32, 16))
    code, _, err = run(folder, tmp_path / "other.mp4")
    assert_one_line_error(code, err, "differ in size; give --size")
    assert ImageSource(folder).uniform_size() is None


# --- names -------------------------------------------------------------------------------------------------------


def test_254_byte_output_name_is_taken(run, tmp_path: Path) -> None:
    out = tmp_path / ("n" * 250 + ".mp4")
    code, _, err = run(clip(tmp_path / "in.mp4", n=2), out)
    assert code == 0, err
    assert count_frames(out) == 2 and leftovers(tmp_path) == []


def test_newline_in_a_path_stays_one_line(run, tmp_path: Path) -> None:
    code, _, err = run(tmp_path / "two\nlines.mp4", tmp_path / "out.mp4")
    assert_one_line_error(code, err, "two\\nlines.mp4")


def test_dash_output_is_refused(run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(clip(tmp_path / "in.mp4", n=2), "-")
    assert_one_line_error(code, err, "standard output")
    assert not (tmp_path / "-").exists()


def test_file_named_0_is_not_the_camera(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    monkeypatch.chdir(tmp_path)
    clip(tmp_path / "video.mp4", n=2).rename(tmp_path / "0")
    assert isinstance(open_source("./0"), VideoSource)
    monkeypatch.setattr(cv2, "VideoCapture", lambda device: type("Closed", (), {"isOpened": lambda s: False})())
    with caplog.at_level(logging.WARNING), pytest.raises(Exception, match="cannot open camera 0"):
        open_source("0")
    assert "write ./0" in caplog.text


# --- backends and cameras -------------------------------------------------------------------------------------------


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_on_a_cpu_machine_says_why(run, tmp_path: Path) -> None:
    code, _, err = run(clip(tmp_path / "in.mp4", n=2), tmp_path / "out.mp4", "--device", "cuda", "--backend", "auto")
    assert_one_line_error(code, err, "no CUDA GPU is available")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize(
    "command",
    [
        ["webcam", "--compute-device", "cuda"],  # refused before the camera opens
        ["bench", "--device", "cuda", "-o", "{tmp}/bench"],
        ["eval", "--device", "cuda", "--photos", "{tmp}", "-o", "{tmp}/eval"],
        ["train", "--device", "cuda", "--steps", "1", "--out", "{tmp}/run"],
        ["add-style", "{tmp}/painting.png", "--name", "p", "-o", "{tmp}/p.stylecast", "--device", "cuda"],
    ],
    ids=lambda c: c[0],
)
def test_cuda_on_a_cpu_machine_is_the_same_error_in_every_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    cv2.imwrite(str(tmp_path / "painting.png"), np.full((96, 96, 3), 128, np.uint8))
    code = cli.main(["-q", *(part.format(tmp=tmp_path) for part in command)])
    err = capsys.readouterr().err
    assert code == BackendUnavailable.exit_code
    assert_one_line_error(code, err, "no CUDA GPU is available")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["painting.png"]


def test_missing_camera_error_comes_alone(capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(Exception, match="cannot open camera"):
        CameraSource(97)
    assert capfd.readouterr().err == ""  # OpenCV's own warnings are silenced


# --- model files ---------------------------------------------------------------------------------------------------


def _model_with_names(path: Path, names: list[str]) -> Path:
    cfg = GeneratorConfig(arch="fast", num_styles=len(names), channels=8, res_blocks=1, refine_channels=4)  # type: ignore[arg-type]
    save_model(path, Generator(cfg), [StyleInfo(n) for n in names])
    return path


@pytest.mark.parametrize(
    ("names", "message"),
    [(["a", "a", "b"], "twice"), (["a", "b:c"], "cannot select"), (["a", " b"], "cannot select"), (["", "b"], "cannot select")],
    ids=["duplicate", "colon", "padded", "empty"],
)
def test_unselectable_style_names_are_refused(tmp_path: Path, names: list[str], message: str) -> None:
    with pytest.raises(ModelError, match=message):
        load_model(_model_with_names(tmp_path / "m.stylecast", names))


def test_string_format_version_is_named_as_such(tiny_model: Path, tmp_path: Path) -> None:
    payload = torch.load(tiny_model, weights_only=True)
    payload["version"] = "1"
    buf = io.BytesIO()
    torch.save(payload, buf)
    (tmp_path / "v.stylecast").write_bytes(buf.getvalue())
    with pytest.raises(ModelError, match="invalid model format version '1'"):
        load_model(tmp_path / "v.stylecast")


# --- encoder options -----------------------------------------------------------------------------------------------


def test_crf_is_applied_to_vp9_and_refused_where_it_means_nothing(run, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    noisy = write_video(tmp_path / "in.mkv", [rng.integers(0, 256, (32, 48, 3), np.uint8) for _ in range(4)], codec="ffv1")
    sizes = []
    for crf in ("4", "50"):
        out = tmp_path / f"crf{crf}.webm"
        code, _, err = run(noisy, out, "--crf", crf)
        assert code == 0, err
        sizes.append(out.stat().st_size)
    assert sizes[0] > 1.5 * sizes[1]  # ignored, both files were the same size
    code, _, err = run(noisy, tmp_path / "m.mkv", "--codec", "mpeg4", "--crf", "20")
    assert_one_line_error(code, err, "--crf does not apply to mpeg4")
    assert leftovers(tmp_path) == []


def test_presets_are_checked_before_the_model_loads(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    import realtime.api

    def run(out: Path, *options: str) -> tuple[int, str, str]:
        # capfd: x265 and libpng write to the file descriptor itself, past Python's sys.stderr
        return stylecast(capfd, "run", video, "-o", out, "--model", tiny_model, "--backend", "torch", *options)

    video = write_video(tmp_path / "in.mkv", [gradient(48, 32) for _ in range(3)], codec="ffv1")
    monkeypatch.setattr(realtime.api.Stylizer, "load", lambda *a, **k: pytest.fail("loaded the model first"))
    code, _, err = run(tmp_path / "a.mp4", "--preset", "bogus")
    assert_one_line_error(code, err, "--preset 'bogus' is not a libx264 preset")
    code, _, err = run(tmp_path / "b.webm", "--preset", "slow")
    assert_one_line_error(code, err, "--preset does not apply to libvpx-vp9")
    # x265 corrupts the heap and aborts the process on frames like these (sides of 40-48 px)
    code, _, err = run(tmp_path / "c.mkv", "--codec", "libx265")
    assert_one_line_error(code, err, "libx265 cannot encode 48x32 frames safely")
    monkeypatch.undo()
    code, _, err = run(tmp_path / "d.mkv", "--codec", "libx265", "--preset", "ultrafast", "--size", "64x64")
    assert code == 0 and count_frames(tmp_path / "d.mkv") == 3, err
    assert "x265 [" not in err


# --- schedules --------------------------------------------------------------------------------------------------------


def test_large_schedule_lookup_is_not_linear() -> None:
    a, b = np.array([1.0, 0.0], np.float32), np.array([0.0, 1.0], np.float32)
    schedule = Schedule(tuple(Keyframe(float(i), a if i % 2 else b) for i in range(200_000)))
    start = time.perf_counter()
    for i in range(2000):
        schedule.weights_at(0, 199_990.5 + i * 1e-3)
    # A scan from the start is 2000 x 200,000 steps (tens of seconds); bisection is milliseconds.
    assert time.perf_counter() - start < 3.0
    np.testing.assert_allclose(schedule.weights_at(0, 2.5), [0.5, 0.5])
