"""The camera clip maker of the flicker measurements: motion, noise, frame count, errors."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from benchmarks.pan_clip import PanConfig, main, make_pan_clip, pan_frames
from realtime.errors import InputError


def _photo(path: Path, size: tuple[int, int] = (320, 200)) -> Path:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def test_frames_pan_with_fresh_noise_in_every_frame() -> None:
    photo = np.tile(np.linspace(0, 255, 400, dtype=np.float32)[None, :, None], (200, 1, 3))  # a ramp left to right
    frames = pan_frames(photo, PanConfig(size=(64, 36), frames=5, noise=0.0, zoom=1.0))
    assert len(frames) == 5 and frames[0].shape == (36, 64, 3) and frames[0].dtype == np.uint8
    means = [float(f.mean()) for f in frames]
    assert all(a < b for a, b in zip(means, means[1:], strict=False))  # the window moves right, onto brighter pixels
    noisy = pan_frames(photo, PanConfig(size=(64, 36), frames=2, noise=3.0, pan=0.0, zoom=1.0))
    assert 1.5 < float(np.abs(noisy[0].astype(float) - noisy[1].astype(float)).mean()) < 6  # same view, new noise


def test_clip_is_written_once_and_decodes(tmp_path: Path) -> None:
    out = tmp_path / "pan.mp4"
    make_pan_clip(_photo(tmp_path / "p.png"), out, PanConfig(size=(96, 54), frames=6))
    with av.open(str(out)) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == 6 and (frames[0].width, frames[0].height) == (96, 54)
    assert main([str(tmp_path / "p.png"), "-o", str(out), "--size", "96x54", "--frames", "6"]) == 2  # exists
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left behind


def test_bad_inputs_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "not.jpg").write_text("text")
    assert main([str(tmp_path / "not.jpg"), "-o", str(tmp_path / "a.mp4")]) == 2
    assert main([str(_photo(tmp_path / "p.png")), "-o", str(tmp_path / "b.mp4"), "--size", "65x36"]) == 2
    err = capsys.readouterr().err
    assert "cannot read the photo" in err and "even" in err and "Traceback" not in err
    with pytest.raises(InputError, match="too small"):
        pan_frames(np.zeros((20, 30, 3), np.float32), PanConfig(size=(640, 360)))
