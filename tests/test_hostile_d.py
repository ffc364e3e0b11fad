"""Issue 15, class D: one line and a non-zero exit where a traceback came, and no ``.part`` file left."""

from __future__ import annotations

import io
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from reliability_support import assert_one_line_error, clip, leftovers, png_claiming, stylecast

from realtime.errors import StylecastError
from train.config import load_config
from train.trainer import Trainer

LONG = "n" * 256  # one byte over the limit of a file name


@pytest.fixture()
def run(tiny_model: Path, capsys: pytest.CaptureFixture[str]):
    def go(inp: Path | str, out: Path | str, *options: str) -> tuple[int, str, str]:
        return stylecast(capsys, "run", inp, "-o", out, "--model", tiny_model, "--backend", "torch", *options)

    return go


@pytest.fixture()
def video(tmp_path: Path) -> Path:
    return clip(tmp_path / "in.mp4", n=3)


# --- encoder options -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--codec", "aac"], "encodes audio, not video"),
        (["--codec", "srt"], "encodes subtitle, not video"),
        (["--bitrate", "1e19"], "at most 2000M"),
    ],
    ids=["audio-codec", "subtitle-codec", "huge-bitrate"],
)
def test_bad_encoder_options(run, video: Path, tmp_path: Path, options: list[str], message: str) -> None:
    code, _, err = run(video, tmp_path / "out.mp4", *options)
    assert_one_line_error(code, err, message)
    assert not (tmp_path / "out.mp4").exists() and leftovers(tmp_path) == []


# --- sizes -------------------------------------------------------------------------------------------------


def test_png_header_claiming_20000x20000(run, tmp_path: Path) -> None:
    bomb = png_claiming(tmp_path / "bomb.png", 20000, 20000)
    code, _, err = run(bomb, tmp_path / "out.png")
    assert_one_line_error(code, err, "megapixel limit")
    folder = tmp_path / "photos"
    folder.mkdir()
    bomb.rename(folder / "bomb.png")
    code, _, err = run(folder, tmp_path / "styled")
    assert code != 0 and "megapixel limit" in " ".join(err.split()) and "Traceback" not in err
    assert leftovers(tmp_path) == [] and not (tmp_path / "styled").exists()


def test_size_over_the_limit_is_refused_by_the_parser(run, video: Path, tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as e:
        run(video, tmp_path / "out.mp4", "--size", "99999x99999")
    assert e.value.code == 2 and "over the limit: sides up to 16384" in capsys.readouterr().err


def test_batch_that_cannot_fit_in_memory(run, video: Path, tmp_path: Path) -> None:
    code, _, err = run(video, tmp_path / "out.mp4", "--size", "7680x4320", "--batch", "2")
    assert_one_line_error(code, err, "over the limit of 7680x4320 pixels per call")
    assert not (tmp_path / "out.mp4").exists() and leftovers(tmp_path) == []


# --- names the file system refuses ---------------------------------------------------------------------------


def test_output_that_is_a_symlink_loop(run, video: Path, tmp_path: Path) -> None:
    loop = tmp_path / "loop.mp4"
    loop.symlink_to(loop)
    for extra in ([], ["--overwrite"]):
        code, _, err = run(video, loop, *extra)
        assert code != 0 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert loop.is_symlink() and leftovers(tmp_path) == []


@pytest.mark.parametrize("where", ["input", "output", "model", "schedule"])
def test_names_over_255_bytes(run, video: Path, tmp_path: Path, where: str) -> None:
    long = tmp_path / f"{LONG}.mp4"
    args = {
        "input": (long, tmp_path / "out.mp4"),
        "output": (video, long),
        "model": (video, tmp_path / "out.mp4", "--model", str(tmp_path / LONG)),
        "schedule": (video, tmp_path / "out.mp4", "--schedule", str(tmp_path / f"{LONG}.toml")),
    }[where]
    code, _, err = run(*args)
    assert code != 0 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert leftovers(tmp_path) == []


# --- schedules -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("deep.json", '{"keyframes": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
        ("deep.toml", "keyframes = " + "[" * 100_000 + "]" * 100_000 + "\n", "nested too deeply"),
        ("digits.json", '{"keyframes": [{"time": ' + "9" * 5000 + ', "style": "candy"}]}', "digits"),
        ("digits.toml", "[[keyframes]]\ntime = " + "9" * 5000 + '\nstyle = "candy"\n', "digits"),
    ],
    ids=["json-nested", "toml-nested", "json-5000-digits", "toml-5000-digits"],
)
def test_hostile_schedules(run, video: Path, tmp_path: Path, name: str, text: str, message: str) -> None:
    (tmp_path / name).write_text(text)
    code, _, err = run(video, tmp_path / "out.mp4", "--schedule", str(tmp_path / name))
    assert_one_line_error(code, err, message)


# --- model files with wrong contents ------------------------------------------------------------------------------


def _model_with(tiny: Path, tmp: Path, change) -> Path:
    payload = torch.load(tiny, weights_only=True)
    change(payload)
    buf = io.BytesIO()
    torch.save(payload, buf)
    (tmp / "odd.stylecast").write_bytes(buf.getvalue())
    return tmp / "odd.stylecast"


def _no_styles(p: dict) -> None:
    cfg = json.loads(p["config"])
    cfg["num_styles"] = 0
    p.update(config=json.dumps(cfg), styles="[]", thumbnails=[])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p.update(train_config="{not json"), "damaged"),
        (lambda p: p.update(train_config="[1, 2]"), "not a JSON object"),
        (lambda p: p["state_dict"].update(extra="a string"), "not all tensors"),
        (_no_styles, "no styles"),
    ],
    ids=["train-config-not-json", "train-config-not-object", "non-tensor-weight", "zero-styles"],
)
def test_model_contents(run, tiny_model: Path, video: Path, tmp_path: Path, capsys, change, message: str) -> None:
    odd = _model_with(tiny_model, tmp_path, change)
    code, _, err = stylecast(capsys, "styles", "--model", odd)
    assert_one_line_error(code, err, message)
    code, _, err = run(video, tmp_path / "out.mp4", "--model", str(odd))
    assert_one_line_error(code, err, message)
    assert leftovers(tmp_path) == []


# --- train ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe\x00garbage\x80", "not valid TOML"),
        (b"train = 5\n", "must be a table"),
        (b"steps = [\n", "not valid TOML"),
        (b'crop = "big"\n', "crop must be int"),
        (b"holdout = [1, 2]\n", "list of names"),
    ],
    ids=["binary", "train-not-a-table", "syntax", "wrong-type", "wrong-list"],
)
def test_train_garbage_config(tmp_path: Path, capsys, content: bytes, message: str) -> None:
    (tmp_path / "bad.toml").write_bytes(content)
    code, _, err = stylecast(capsys, "train", "--config", tmp_path / "bad.toml", "--out", tmp_path / "run")
    assert_one_line_error(code, err, message)
    assert not (tmp_path / "run").exists()


def test_train_config_that_is_a_folder(tmp_path: Path, capsys) -> None:
    code, _, err = stylecast(capsys, "train", "--config", tmp_path, "--out", tmp_path / "run")
    assert_one_line_error(code, err, "cannot read config file")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--batch-size", "0"], "batch_size must be a finite number >= 1"),
        (["--lr", "nan"], "lr must be a finite number > 0"),
        (["--lr", "0"], "lr must be a finite number > 0"),
        (["--crop", "1"], "crop must be a finite number >= 32"),
        (["--mix-prob", "1.5"], "between 0 and 1"),
        (["--style-weight", "inf"], "style_weight must be a finite number"),
    ],
)
def test_train_out_of_range_flags(tmp_path: Path, capsys, flags: list[str], message: str) -> None:
    code, _, err = stylecast(capsys, "train", *flags, "--out", tmp_path / "run")
    assert_one_line_error(code, err, message)


def test_train_config_values_keep_working(tmp_path: Path) -> None:
    (tmp_path / "ok.toml").write_text('[train]\nlr = 1\nholdout = "a,b"\ncrop = 32\n')
    cfg = load_config(tmp_path / "ok.toml", {"steps": 3})
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float) and cfg.holdout == ("a", "b") and cfg.steps == 3


def test_train_out_that_cannot_be_written() -> None:
    trainer = SimpleNamespace(out=Path("/proc/stylecast-run"), dinfo=SimpleNamespace(main=True))
    with pytest.raises(StylecastError, match="cannot write the run folder /proc/stylecast-run"):
        Trainer._claim_out(trainer, resuming=False, overwrite=False)  # type: ignore[arg-type]
