"""Issue 15, class A: untrusted files never run code, and nothing the user had is overwritten or deleted."""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from types import SimpleNamespace

import cv2
import pytest
import torch
from reliability_support import assert_one_line_error, clip, count_frames, gradient, leftovers, stylecast

from realtime.errors import ModelError, OutputError, StylecastError
from realtime.modelfile import load_model
from realtime.sinks import VideoSink
from realtime.sources import Frame
from train.cli import add_arguments
from train.trainer import CHECKPOINT, MODEL, Trainer


class _Payload:
    """Unpickling this creates ``marker``: proof that loading ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (Path.touch, (self.marker,))


def _crafted(path: Path, marker: Path, **state: object) -> Path:
    buf = io.BytesIO()
    torch.save({**state, "payload": _Payload(marker)}, buf)
    path.write_bytes(buf.getvalue())
    return path


@pytest.fixture()
def run(tiny_model: Path, capsys: pytest.CaptureFixture[str]):
    def go(inp: Path | str, out: Path | str, *options: str) -> tuple[int, str, str]:
        return stylecast(capsys, "run", inp, "-o", out, "--model", tiny_model, "--backend", "torch", *options)

    return go


# --- A.1: crafted checkpoints and model files ----------------------------------------------------------


def test_crafted_checkpoint_is_refused_without_running_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = _crafted(tmp_path / "evil.pt", marker, step=3)
    trainer = SimpleNamespace(device=torch.device("cpu"))  # refused before the trainer's state is touched
    with pytest.raises(StylecastError, match="refusing to load it") as e:
        Trainer.load_checkpoint(trainer, evil)  # type: ignore[arg-type]
    assert not marker.exists()
    assert "weights_only=False" not in str(e.value) and "\n" not in str(e.value)


def test_crafted_model_file_is_refused_without_running_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "pwned"
    evil = _crafted(tmp_path / "evil.stylecast", marker, format="stylecast-model", version=1)
    with pytest.raises(ModelError, match="refusing to load it"):
        load_model(evil)
    code, _, err = stylecast(capsys, "styles", "--model", evil)
    assert_one_line_error(code, err, "can run code")
    assert "weights_only=False" not in err and not marker.exists()


def test_pickle_protocol_objects_are_refused_too(tmp_path: Path) -> None:
    # A bare pickle (not a torch zip) of an object: torch's legacy path, refused the same way.
    evil = tmp_path / "legacy.pt"
    evil.write_bytes(pickle.dumps(_Payload(tmp_path / "pwned"), protocol=2))
    with pytest.raises(StylecastError):
        Trainer.load_checkpoint(SimpleNamespace(device=torch.device("cpu")), evil)  # type: ignore[arg-type]
    assert not (tmp_path / "pwned").exists()


# --- A.3: outputs that are the input by another name ---------------------------------------------------


def test_file_url_input_is_compared_with_the_output(run, tmp_path: Path) -> None:
    video = clip(tmp_path / "in.mp4", n=4)
    before = video.read_bytes()
    code, _, err = run(f"file://{video}", video, "--overwrite")
    assert_one_line_error(code, err, "is the input")
    assert video.read_bytes() == before and leftovers(tmp_path) == []


def test_image_into_its_own_folder_is_refused(run, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "a.png"), gradient(24, 16))
    before = (photos / "a.png").read_bytes()
    code, _, err = run(photos / "a.png", photos, "--overwrite")
    assert_one_line_error(code, err, "holds the input")
    assert (photos / "a.png").read_bytes() == before and sorted(p.name for p in photos.iterdir()) == ["a.png"]


# --- A.4: temporary files --------------------------------------------------------------------------------


def test_input_named_like_a_temporary_file_is_untouched(run, tmp_path: Path) -> None:
    # The old fixed temporary name of `-o x.mp4` was `.x.part.mp4`: it truncated, then deleted, this input.
    inp = clip(tmp_path / ".x.part.mp4", n=4)
    before = inp.read_bytes()
    code, _, err = run(inp, tmp_path / "x.mp4")
    assert code == 0, err
    assert inp.read_bytes() == before and count_frames(tmp_path / "x.mp4") == 4


def _sink_with(path: Path, frames: int, overwrite: bool = False) -> VideoSink:
    sink = VideoSink(path, (32, 24), 25, overwrite=overwrite)
    for i in range(frames):
        sink.write(Frame(gradient(32, 24, i), i, i / 25, 0.0), gradient(32, 24, i))
    return sink


def test_two_runs_writing_one_output_do_not_mix(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    first, second = _sink_with(out, 3), _sink_with(out, 5)
    assert first.tmp != second.tmp  # each run its own temporary file
    first.close()
    with pytest.raises(OutputError, match="appeared while this run wrote it"):
        second.close()  # not asked to replace: the file the other run completed stays as it is
    assert count_frames(out) == 3 and leftovers(tmp_path) == []
    third = _sink_with(out, 5, overwrite=True)
    third.close()
    assert count_frames(out) == 5 and leftovers(tmp_path) == []


# --- A.5: training over an earlier run -------------------------------------------------------------------


def _trainer_in(out: Path) -> Trainer:
    return SimpleNamespace(out=out, dinfo=SimpleNamespace(main=True))  # type: ignore[return-value]


def test_train_out_with_an_earlier_run_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / CHECKPOINT).write_bytes(b"earlier checkpoint")
    (out / MODEL).write_bytes(b"earlier model")
    (out / "log.csv").write_text("step,total\n1,2\n")
    with pytest.raises(StylecastError, match="--resume to continue it or --overwrite"):
        Trainer._claim_out(_trainer_in(out), resuming=False, overwrite=False)
    assert (out / CHECKPOINT).read_bytes() == b"earlier checkpoint" and (out / "log.csv").exists()
    Trainer._claim_out(_trainer_in(out), resuming=True, overwrite=False)
    assert (out / "log.csv").exists()  # a resumed run continues its log
    Trainer._claim_out(_trainer_in(out), resuming=False, overwrite=True)
    assert not (out / "log.csv").exists() and (out / "samples").is_dir()


def test_train_cli_has_overwrite() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert parser.parse_args(["--overwrite"]).overwrite and not parser.parse_args([]).overwrite


# --- A.6: output names that collide ----------------------------------------------------------------------


def test_inputs_sharing_a_stem_get_distinct_outputs(run, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "a.jpg"), gradient(24, 16, 1))
    cv2.imwrite(str(photos / "a.png"), gradient(24, 16, 2))
    cv2.imwrite(str(photos / "a_png.png"), gradient(24, 16, 3))
    code, _, err = run(photos, tmp_path / "styled")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "styled").iterdir()) == ["a.png", "a_png.png", "a_png_png.png"]
    assert "writing it as a_png.png" in " ".join(err.split())  # said, not silent (rich wraps lines)
