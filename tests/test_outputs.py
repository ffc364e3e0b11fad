"""realtime.outputs.check_output: an output is never an input, never replaced unasked, always writable."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from realtime.errors import OutputError
from realtime.outputs import check_output, input_path


@pytest.fixture()
def model(tmp_path: Path) -> Path:
    path = tmp_path / "m.stylecast"
    path.write_bytes(b"model")
    return path


def test_new_output_beside_inputs_passes(model: Path, tmp_path: Path) -> None:
    check_output(tmp_path / "m.onnx", [model], overwrite=False)


@pytest.mark.parametrize("overwrite", [False, True])
def test_output_that_is_an_input_is_refused_even_with_overwrite(model: Path, tmp_path: Path, overwrite: bool) -> None:
    os.symlink(model, tmp_path / "link.stylecast")
    os.link(model, tmp_path / "hard.stylecast")
    (tmp_path / "sub").mkdir()
    for output in (model, tmp_path / "sub" / ".." / "m.stylecast", tmp_path / "link.stylecast", tmp_path / "hard.stylecast"):
        with pytest.raises(OutputError, match="is the input"):
            check_output(output, [model], overwrite)
    # The other way round: the input is the link, the output the file it points to.
    with pytest.raises(OutputError, match="is the input"):
        check_output(model, [str(tmp_path / "link.stylecast")], overwrite)


def test_file_url_inputs_are_compared_other_urls_skipped(model: Path) -> None:
    with pytest.raises(OutputError, match="is the input"):
        check_output(model, [f"file://{model}"], overwrite=True)
    check_output(model, ["rtsp://camera/stream", "https://example.com/m.stylecast"], overwrite=True)
    assert input_path("file:///a%20b.mp4") == Path("/a b.mp4")
    assert input_path("http://host/a.mp4") is None


def test_existing_output_needs_overwrite(model: Path, tmp_path: Path) -> None:
    out = tmp_path / "old.onnx"
    out.write_bytes(b"the user's file")
    with pytest.raises(OutputError, match="exists; pass --overwrite"):
        check_output(out, [model], overwrite=False)
    check_output(out, [model], overwrite=True)
    assert out.read_bytes() == b"the user's file"  # a check, not a write


def test_a_dangling_link_at_the_output_needs_overwrite(model: Path, tmp_path: Path) -> None:
    out = tmp_path / "styled.png"
    os.symlink(tmp_path / "nowhere" / "t.png", out)
    with pytest.raises(OutputError, match="exists; pass --overwrite"):
        check_output(out, [model], overwrite=False)
    check_output(out, [model], overwrite=True)
    assert out.is_symlink()


def test_folder_and_file_kinds(model: Path, tmp_path: Path) -> None:
    folder = tmp_path / "results"
    folder.mkdir()
    with pytest.raises(OutputError, match="is a folder; name a file"):
        check_output(folder, [model], overwrite=True, folder=False)
    check_output(folder, [model], overwrite=False)  # an empty folder takes files
    (folder / "old.png").write_bytes(b"x")
    with pytest.raises(OutputError, match="not empty"):
        check_output(folder, [model], overwrite=False)
    check_output(folder, [model], overwrite=True)
    with pytest.raises(OutputError, match="is a file; name a folder"):
        check_output(model, [], overwrite=True, folder=True)


def test_folder_holding_an_input_is_refused(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.png").write_bytes(b"x")
    with pytest.raises(OutputError, match="holds the input"):
        check_output(photos, [photos / "a.png"], overwrite=True)


def test_unwritable_or_missing_folders(model: Path, tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="does not exist"):
        check_output(tmp_path / "no" / "such" / "out.onnx", [model], overwrite=False)
    check_output(tmp_path / "no" / "such" / "out.onnx", [model], overwrite=False, make_parents=True)
    assert not (tmp_path / "no").exists()
    # /proc refuses new files even to root, for whom os.access says yes.
    with pytest.raises(OutputError, match="not writable"):
        check_output(Path("/proc/stylecast-test.onnx"), [model], overwrite=False)
    with pytest.raises(OutputError, match="does not exist: .*a part of it is a file"):
        check_output(model / "out.onnx", [], overwrite=False)


def test_unusable_names_are_one_line_errors(tmp_path: Path) -> None:
    loop = tmp_path / "loop"
    os.symlink(loop, loop)
    with pytest.raises(OutputError):
        check_output(loop, [], overwrite=True)
    with pytest.raises(OutputError, match="cannot be used"):
        check_output(tmp_path / ("x" * 300 + ".onnx"), [], overwrite=False)
