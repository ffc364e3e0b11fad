"""Broken, odd and unusual inputs, and bad style control: each gives a clear outcome, never a traceback."""

from __future__ import annotations

import json
import logging
import shutil
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
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
    truncate,
    video_pts,
    write_audio_only,
    write_subtitles_only,
    write_video,
    write_wav,
)

from realtime.api import Stylizer
from realtime.errors import StyleError
from realtime.sources import MAX_PIXELS, ImageSource, VideoSource, fit_size, open_source

INTRA: dict[str, Any] = {"codec": "mjpeg", "pix_fmt": "yuvj420p"}  # intra-only: any timestamps can be muxed


@pytest.fixture()
def run(tiny_model: Path, capsys: pytest.CaptureFixture[str]):
    """``run(input, output, *options)`` through the CLI with the tiny model: (code, stdout, stderr)."""

    def go(inp: Path, out: Path, *options: str) -> tuple[int, str, str]:
        return stylecast(capsys, "run", inp, "-o", out, "--model", tiny_model, "--backend", "torch", *options)

    return go


# --- inputs that cannot be used ----------------------------------------------------------------------


def _missing(tmp: Path) -> Path:
    return tmp / "missing.mp4"


def _empty(tmp: Path) -> Path:
    (tmp / "empty.mp4").write_bytes(b"")
    return tmp / "empty.mp4"


def _text(tmp: Path) -> Path:
    (tmp / "notes.mp4").write_text("this is not a video\n" * 50)
    return tmp / "notes.mp4"


def _cut_before_index(tmp: Path) -> Path:
    # MP4 writes its index (moov) last: a copy cut short has no streams at all.
    return truncate(clip(tmp / "cut.mp4", n=20), 0.5)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_missing, "input not found"),
        (_empty, "input file is empty"),
        (_text, "cannot read"),
        (_cut_before_index, "damaged"),
        (lambda tmp: write_subtitles_only(tmp / "subs.mkv"), "no video stream"),
        (lambda tmp: write_wav(tmp / "tone.wav"), "no video stream"),
        (lambda tmp: write_audio_only(tmp / "audio.mp4"), "no video stream"),
    ],
    ids=["missing", "empty", "text-named-mp4", "mp4-cut-before-index", "no-video-stream", "wav", "audio-only-mp4"],
)
def test_unusable_inputs_are_one_line_errors(run, tmp_path: Path, make, message: str) -> None:
    inp = make(tmp_path)
    out = tmp_path / "out.mp4"
    code, _, err = run(inp, out)
    assert_one_line_error(code, err, message)
    assert not out.exists() and leftovers(tmp_path) == []
    if message == "no video stream":  # its streams read fine: the file is not called damaged
        assert "damaged" not in err


def _damaged_images(folder: Path) -> list[Path]:
    """A PNG and a JPEG cut in half, and text named .png."""
    folder.mkdir(exist_ok=True)
    damaged = []
    for suffix in (".png", ".jpg"):
        good = folder / f"good{suffix}"
        cv2.imwrite(str(good), gradient(64, 48))
        damaged.append(truncate(Path(shutil.copy(good, folder / f"cut{suffix}")), 0.5))
        good.unlink()
    (folder / "text.png").write_text("not an image")
    return [*damaged, folder / "text.png"]


def test_damaged_images_are_one_line_errors(run, tmp_path: Path) -> None:
    for image in _damaged_images(tmp_path / "in"):
        out = tmp_path / f"out-{image.stem}.png"
        code, _, err = run(image, out)
        assert_one_line_error(code, err, f"cannot read image {image}")
        assert not out.exists()


def test_a_cut_png_prints_nothing_past_the_error(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """OpenCV's libpng writes its own complaint to file descriptor 2, which no log level silences."""
    from realtime.errors import InputError
    from realtime.sources import read_image

    noise = np.random.default_rng(0).integers(0, 256, (120, 160, 3), np.uint8)
    cv2.imwrite(str(tmp_path / "noise.png"), noise)
    cut = truncate(tmp_path / "noise.png", 0.5)
    with pytest.raises(InputError, match="cannot read image"):
        read_image(cut)
    assert capfd.readouterr().err == ""


def test_folder_skips_damaged_images_and_keeps_the_rest(run, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    _damaged_images(folder)
    cv2.imwrite(str(folder / "fine.png"), gradient(64, 48))
    code, out, err = run(folder, tmp_path / "styled")
    assert code == 0, err
    assert "skipping unreadable image" in err and "done: 1 frames" in out
    assert sorted(p.name for p in (tmp_path / "styled").iterdir()) == ["fine.png"]
    (folder / "fine.png").unlink()  # nothing readable left: an error, and no empty output folder
    code, _, err = run(folder, tmp_path / "styled-again")
    assert "none of the 3 images" in err.strip().splitlines()[-1] and code != 0
    assert not (tmp_path / "styled-again").exists()


# --- inputs that are damaged or unusual but usable ---------------------------------------------------


def test_truncated_stream_stylizes_what_decodes_and_warns(
    run, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    full = clip(tmp_path / "full.mkv", n=40, codec="mpeg4", pix_fmt="yuv420p")
    cut = truncate(Path(shutil.copy(full, tmp_path / "cut.mkv")), 0.5)
    with caplog.at_level(logging.WARNING, logger="realtime.sources"), VideoSource(cut) as src:
        decoded = len(list(src))
    assert 0 < decoded < 40 and "truncated file?" in caplog.text
    with caplog.at_level(logging.WARNING, logger="realtime.sources"), VideoSource(full) as src:
        caplog.clear()
        assert len(list(src)) == 40 and "truncated" not in caplog.text  # no false alarm on the whole file
    out = tmp_path / "out.mp4"
    code, stdout, err = run(cut, out)
    assert code == 0, err
    assert count_frames(out) == decoded and f"done: {decoded} frames" in stdout


def test_variable_frame_rate_keeps_each_frames_time(run, tmp_path: Path) -> None:
    pts = [0, 1, 5, 6, 20, 21]  # tenths of a second: bursts and pauses
    inp = write_video(
        tmp_path / "vfr.mkv", [gradient(48, 32, i) for i in range(6)], pts=pts, time_base=Fraction(1, 10), **INTRA
    )
    out = tmp_path / "out.mkv"
    code, _, err = run(inp, out)
    assert code == 0, err
    with av.open(str(out)) as c:
        times = [float(f.time) for f in c.decode(video=0) if f.time is not None]
    assert times == pytest.approx([p / 10 for p in pts], abs=0.002)


def test_jumping_and_repeated_timestamps_give_a_valid_stream(run, tmp_path: Path) -> None:
    pts = [0, 1, 1, 2, 40, 3]  # a repeat, a jump forward, a jump back
    inp = write_video(
        tmp_path / "jump.mkv", [gradient(48, 32, i) for i in range(6)], pts=pts, time_base=Fraction(1, 10), **INTRA
    )
    out = tmp_path / "out.mp4"
    code, _, err = run(inp, out)
    assert code == 0, err
    got = video_pts(out)
    assert len(got) == 6 and all(b > a for a, b in zip(got, got[1:], strict=False))


@pytest.mark.parametrize("size", [(321, 179), (1, 1), (2, 4000)], ids=["321x179", "1x1", "2x4000"])
def test_odd_sized_images(run, tmp_path: Path, size: tuple[int, int]) -> None:
    inp = tmp_path / "in.png"
    cv2.imwrite(str(inp), gradient(*size))
    out = tmp_path / "out.png"
    code, _, err = run(inp, out)
    assert code == 0, err
    assert read_image(out).shape == (size[1], size[0], 3)


@pytest.mark.parametrize("size", [(321, 179), (1, 1)], ids=["321x179", "1x1"])
def test_odd_sized_videos_are_padded_to_even_sides(run, tmp_path: Path, size: tuple[int, int]) -> None:
    inp = write_video(tmp_path / "odd.mkv", [gradient(*size, i) for i in range(3)], codec="ffv1", pix_fmt="yuv444p")
    out = tmp_path / "out.mp4"
    code, _, err = run(inp, out)
    assert code == 0, err
    with av.open(str(out)) as c:
        v = c.streams.video[0].codec_context
        assert (v.width, v.height) == (size[0] + size[0] % 2, size[1] + size[1] % 2)
    assert count_frames(out) == 3


def test_8k_frames_are_scaled_down_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert fit_size(1920, 1080) == (1920, 1080) and fit_size(3840, 2160) == (3840, 2160)
    inp = tmp_path / "8k.png"
    cv2.imwrite(str(inp), np.zeros((4320, 7680, 3), np.uint8))
    with caplog.at_level(logging.WARNING, logger="realtime.sources"):
        src = ImageSource(inp)
        frame = next(iter(src))
    assert src.size == (3840, 2160) and frame.image.shape == (2160, 3840, 3)
    assert "7680x4320" in caplog.text and "--max-side" in caplog.text
    video = write_video(tmp_path / "8k.mkv", [np.zeros((4320, 7680, 3), np.uint8)], **INTRA)
    with VideoSource(video) as video_source:
        assert video_source.size == (3840, 2160) and next(iter(video_source)).image.shape == (2160, 3840, 3)
    w, h = fit_size(7680, 7680)  # any shape stays within the pixel budget, sides even
    assert w * h <= MAX_PIXELS and w % 2 == 0 and h % 2 == 0
    assert fit_size(7680, 4320, size=(7680, 4320)) == (7680, 4320)  # an explicit size is the user's call


def test_grayscale_image_and_video_become_rgb(tmp_path: Path) -> None:
    gray = gradient(40, 30)[..., 0]
    cv2.imwrite(str(tmp_path / "gray.png"), gray)
    image = next(iter(ImageSource(tmp_path / "gray.png"))).image
    assert image.shape == (30, 40, 3) and np.array_equal(image[..., 0], gray) and np.array_equal(image[..., 2], gray)
    frames = [gradient(48, 32, i)[..., 0] for i in range(3)]
    path = write_video(tmp_path / "gray.mkv", frames, codec="ffv1", pix_fmt="gray", in_format="gray")
    with VideoSource(path) as src:
        first = next(iter(src)).image
    assert first.shape == (32, 48, 3) and np.abs(first[..., 1].astype(int) - frames[0]).max() <= 2


def test_rgba_image_keeps_its_transparency(run, tmp_path: Path) -> None:
    alpha = np.tile(np.linspace(0, 255, 40, dtype=np.uint8), (30, 1))
    cv2.imwrite(str(tmp_path / "sprite.png"), np.dstack([gradient(40, 30), alpha]))
    code, _, err = run(tmp_path / "sprite.png", tmp_path / "out.png")
    assert code == 0, err
    out = read_image(tmp_path / "out.png", cv2.IMREAD_UNCHANGED)
    assert out.shape == (30, 40, 4) and np.array_equal(out[..., 3], alpha)
    code, _, err = run(tmp_path / "sprite.png", tmp_path / "out.jpg")  # JPEG has no alpha: plain RGB
    assert code == 0, err
    assert read_image(tmp_path / "out.jpg", cv2.IMREAD_UNCHANGED).shape == (30, 40, 3)


def test_16_bit_images_are_scaled_not_clipped(tmp_path: Path) -> None:
    rgb8 = gradient(40, 30)
    cv2.imwrite(str(tmp_path / "deep.png"), cv2.cvtColor(rgb8, cv2.COLOR_RGB2BGR).astype(np.uint16) * 257)
    cv2.imwrite(str(tmp_path / "deep_gray.png"), np.full((30, 40), 40000, np.uint16))
    assert np.array_equal(next(iter(ImageSource(tmp_path / "deep.png"))).image, rgb8)
    assert np.all(next(iter(ImageSource(tmp_path / "deep_gray.png"))).image == round(40000 / 257))


@pytest.mark.parametrize(("codec", "pix_fmt"), [("ffv1", "yuv420p10le"), ("ffv1", "yuv444p16le")])
def test_10_and_16_bit_video(run, tmp_path: Path, codec: str, pix_fmt: str) -> None:
    frames8 = [gradient(48, 32, i) for i in range(3)]
    frames16 = [f.astype(np.uint16) * 257 for f in frames8]
    path = write_video(tmp_path / "deep.mkv", frames16, codec=codec, pix_fmt=pix_fmt, in_format="rgb48le")
    with VideoSource(path) as src:
        first = next(iter(src)).image
    # 4:2:0 chroma and YUV rounding cost a few levels; a wrong bit depth would be off by far more.
    assert first.dtype == np.uint8 and np.abs(first.astype(int) - frames8[0]).mean() < 4
    code, _, err = run(path, tmp_path / "out.mp4")
    assert code == 0, err
    assert count_frames(tmp_path / "out.mp4") == 3


def test_rotated_phone_video_is_upright_and_not_rotated_twice(run, tmp_path: Path) -> None:
    inp = clip(tmp_path / "phone.mp4", n=3, width=48, height=32, rotation=90)
    out = tmp_path / "out.mp4"
    code, _, err = run(inp, out)
    assert code == 0, err
    with av.open(str(out)) as c:
        v = c.streams.video[0].codec_context
        assert (v.width, v.height) == (32, 48)
        assert (next(c.decode(video=0)).rotation or 0) == 0


# --- style control -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("style", "message"),
    [
        ("mosiac", "did you mean mosaic"),
        ("nonsense_style_name", "available: candy, mosaic, wave"),
        ("candy:-1", ">= 0"),
        ("candy:nan", "finite"),
        ("candy:inf,wave:1", "finite"),
        ("candy:0,wave:0", "all zero"),
        ("candy:abc", "not a number"),
        ("7", "out of range"),
        (",", "empty style name"),
    ],
)
def test_bad_styles_on_the_command_line(run, tmp_path: Path, style: str, message: str) -> None:
    inp = clip(tmp_path / "in.mp4", n=2)
    code, _, err = run(inp, tmp_path / "out.mp4", "--style", style)
    assert_one_line_error(code, err, message)
    assert not (tmp_path / "out.mp4").exists()


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ([1.0, 0.0], "expected 3 style weights, got 2"),
        ([1.0, 0.0, 0.0, 0.0], "expected 3 style weights, got 4"),
        ([-1.0, 1.0, 1.0], "negative"),
        ([float("nan"), 1.0, 0.0], "finite"),
        ([float("inf"), 1.0, 0.0], "finite"),
        ([0.0, 0.0, 0.0], "all zero"),
        (["a", "b", "c"], "must be numbers"),
        ({"candy": -2.0}, "negative"),
        ({"mosiac": 1.0}, "did you mean mosaic"),
    ],
)
def test_bad_weights_through_the_api(tiny_model: Path, weights: object, message: str) -> None:
    stylizer = Stylizer.load(tiny_model, backend="torch")
    with pytest.raises(StyleError, match=message):
        stylizer.set_style(weights)  # type: ignore[arg-type]
    with pytest.raises(StyleError, match=message):
        stylizer(np.zeros((16, 16, 3), np.uint8), weights)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("syntax.toml", '[[keyframes]]\ntime = 0\nstyle = "candy"\n[[keyframes]\n', "line 4"),
        (
            "syntax.json",
            '{"keyframes": [\n  {"time": 0, "style": "candy"},\n  {"time": 1 "style": "wave"}\n]}',
            "line 3",
        ),
        (
            "field.toml",
            '[[keyframes]]\ntime = 0\nstyle = "candy"\n[[keyframes]]\ntime = "soon"\nstyle = "wave"\n',
            "keyframe 2: field 'time'",
        ),
        (
            "order.json",
            json.dumps({"keyframes": [{"time": 2, "style": "candy"}, {"time": 1, "style": "wave"}]}),
            "keyframe 2: 'time' = 1 is not after",
        ),
        (
            "dup.json",
            json.dumps({"keyframes": [{"frame": 3, "style": "candy"}, {"frame": 3, "style": "wave"}]}),
            "is not after",
        ),
        (
            "style.json",
            json.dumps({"keyframes": [{"time": 0, "style": "candi"}]}),
            "keyframe 1: unknown style 'candi'; did you mean candy",
        ),
        (
            "weights.json",
            json.dumps({"keyframes": [{"time": 0, "weights": [1, -1, 0]}]}),
            "keyframe 1: style weights must not be negative",
        ),
        (
            "both.json",
            json.dumps({"keyframes": [{"time": 0, "style": "candy", "weights": [1, 0, 0]}]}),
            "exactly one of 'style' or 'weights'",
        ),
        ("extra.toml", 'speed = 2\n[[keyframes]]\ntime = 0\nstyle = "candy"\n', "unknown field(s) 'speed'"),
        ("binary.json", "\udcff", "cannot read schedule"),
        ("sched.yaml", "keyframes: []", "use .toml or .json"),
    ],
)
def test_malformed_schedules_name_the_line_or_field(run, tmp_path: Path, name: str, text: str, message: str) -> None:
    schedule = tmp_path / name
    schedule.write_bytes(text.encode("utf-8", "surrogateescape"))
    inp = clip(tmp_path / "in.mp4", n=2)
    code, _, err = run(inp, tmp_path / "out.mp4", "--schedule", str(schedule))
    assert_one_line_error(code, err, message)
    assert name in err and not (tmp_path / "out.mp4").exists()


def test_style_and_schedule_together_are_refused(run, tmp_path: Path) -> None:
    schedule = tmp_path / "s.json"
    schedule.write_text(json.dumps({"keyframes": [{"time": 0, "style": "candy"}]}))
    code, _, err = run(
        clip(tmp_path / "in.mp4", n=2), tmp_path / "o.mp4", "--style", "wave", "--schedule", str(schedule)
    )
    assert_one_line_error(code, err, "not both")


def test_open_source_of_a_folder_without_images(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no pictures here")
    with pytest.raises(Exception, match="no images"):
        open_source(tmp_path)


def test_tracebacks_only_with_debug(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from realtime import cli
    from realtime.errors import InputError

    code, _, err = stylecast(capsys, "run", tmp_path / "missing.mp4", "-o", tmp_path / "o.mp4")
    assert_one_line_error(code, err, "input not found")
    with pytest.raises(InputError, match="input not found"):  # --debug lets it through, with its traceback
        cli.main(["--debug", "run", str(tmp_path / "missing.mp4"), "-o", str(tmp_path / "o.mp4")])
