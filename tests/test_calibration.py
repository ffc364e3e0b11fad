"""INT8 calibration: frame sets, Q/DQ quantization with cached ranges, the quality gate and its
fallback to FP32 layers, the cached INT8 graph the runtime uses, and the calibrate command."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import calibration
from calibration.frames import FrameSet, representative_frames, source_digest, split_frames
from calibration.gate import Gate, GateFigures, GateThresholds, choose_fp_layers
from calibration.quantize import METHODS, quantize_qdq, sub_resolution_convs
from realtime.artifacts import calibrate, int8_cache_path, int8_model_path, onnx_model_path
from realtime.cli import main
from realtime.errors import InputError
from realtime.modelfile import load_model

torch.set_num_threads(2)
SIZE = (64, 48)


@pytest.fixture(scope="module")
def model(tiny_model: Path):  # type: ignore[no-untyped-def]
    return load_model(tiny_model)


@pytest.fixture(scope="module")
def clip() -> FrameSet:
    """The bundled sample clip, small: 6 calibration, 4 held-out and 6 consecutive clip frames."""
    return representative_frames(None, SIZE, calibration=6, held_out=4, clip=6)


@pytest.fixture(scope="module")
def fp32(model) -> Path:  # type: ignore[no-untyped-def]
    return onnx_model_path(*model)


# --- frames --------------------------------------------------------------------------------------------


def _numbered(n: int) -> list[np.ndarray]:
    return [np.full((4, 4, 3), i, np.uint8) for i in range(n)]


def test_video_frames_split_into_disjoint_sets_with_a_consecutive_clip() -> None:
    fs = split_frames(_numbered(100), True, "v", calibration=16, held_out=8, clip=8)
    ids = lambda frames: [int(f[0, 0, 0]) for f in frames]  # noqa: E731
    assert ids(fs.clip) == list(range(92, 100))
    assert len(fs.calibration) == 16 and len(fs.held_out) == 8
    assert not set(ids(fs.calibration)) & set(ids(fs.held_out))
    assert max(ids(fs.calibration) + ids(fs.held_out)) < 92
    assert min(ids(fs.held_out)) > 0 and max(ids(fs.held_out)) < 91  # between calibration frames


def test_images_have_no_clip_and_two_frames_are_enough() -> None:
    fs = split_frames(_numbered(5), False, "folder")
    assert fs.clip == () and len(fs.calibration) + len(fs.held_out) == 5 and fs.held_out
    two = split_frames(_numbered(2), False, "pair")
    assert len(two.calibration) == 1 and len(two.held_out) == 1
    with pytest.raises(InputError, match="at least 2 frames"):
        split_frames(_numbered(1), False, "one")


def test_sample_clip_frames(clip: FrameSet) -> None:
    assert clip.size == SIZE and len(clip.clip) == 6 and len(clip.held_out) == 4
    assert clip.calibration[0].dtype == np.uint8 and clip.calibration[0].shape == (48, 64, 3)
    assert len(clip.digest()) == 64


def test_source_digest_follows_content(tmp_path: Path, frame_folder: Path) -> None:
    assert source_digest(None) == source_digest(Path(calibration.frames.sample_video_path()))
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in sorted(frame_folder.iterdir()):
        (copy / f.name).write_bytes(f.read_bytes())
    assert source_digest(copy) == source_digest(frame_folder)
    (copy / "00.png").write_bytes((frame_folder / "01.png").read_bytes())
    assert source_digest(copy) != source_digest(frame_folder)
    with pytest.raises(InputError, match="not found"):
        source_digest(tmp_path / "missing")
    with pytest.raises(InputError, match="neither a video, an image nor a folder"):
        source_digest(Path("/dev/null"))


# --- quantization ----------------------------------------------------------------------------------------


def test_full_resolution_convs_are_found(fp32: Path) -> None:
    inner, full = sub_resolution_convs(fp32, 3)
    assert full == ["/body/stem/Conv", "/body/refine1/Conv", "/body/refine2/Conv"]
    assert "/body/to_sub/Conv" in inner and len(inner) == 3  # tiny model: 1 residual block


@pytest.mark.parametrize("method", list(METHODS))
def test_qdq_graph_quantizes_only_the_chosen_convs_per_channel(fp32: Path, clip: FrameSet, tmp_path: Path, method: str) -> None:
    inner, _ = sub_resolution_convs(fp32, 3)
    ranges = tmp_path / "ranges.json"
    out = quantize_qdq(fp32, tmp_path / "q.onnx", inner[:2], ranges, clip.calibration, 3, method)
    graph = onnx.load(str(out)).graph
    assert ranges.is_file() and json.loads(ranges.read_text())["data"]
    conv_inputs = {n.name: list(n.input) for n in graph.node if n.op_type == "Conv"}
    dq_outputs = {n.output[0]: n for n in graph.node if n.op_type == "DequantizeLinear"}
    for name, inputs in conv_inputs.items():
        quantized = inputs[0] in dq_outputs and inputs[1] in dq_outputs
        assert quantized == (name in inner[:2]), name
        if quantized:
            weight_dq = dq_outputs[inputs[1]]
            scale = next(t for t in graph.initializer if t.name == weight_dq.input[1])
            assert scale.dims[0] > 1  # one scale per output channel


def test_cached_ranges_are_reused_without_frames(fp32: Path, clip: FrameSet, tmp_path: Path) -> None:
    inner, _ = sub_resolution_convs(fp32, 3)
    ranges = tmp_path / "r.json"
    quantize_qdq(fp32, tmp_path / "a.onnx", inner, ranges, clip.calibration, 3, "minmax")
    stamp = ranges.stat().st_mtime_ns
    quantize_qdq(fp32, tmp_path / "b.onnx", inner[:1], ranges, (), 3, "minmax")
    assert ranges.stat().st_mtime_ns == stamp and not list(tmp_path.glob(".calibrating*"))
    with pytest.raises(ValueError, match="no calibration frames"):
        quantize_qdq(fp32, tmp_path / "c.onnx", inner, tmp_path / "none.json", (), 3, "minmax")
    with pytest.raises(ValueError, match="unknown calibration method"):
        quantize_qdq(fp32, tmp_path / "c.onnx", inner, ranges, (), 3, "kl")


# --- the gate --------------------------------------------------------------------------------------------


def _figures(psnr: float) -> GateFigures:
    return GateFigures(psnr, psnr, 0.99, 0.01, 0.011)


def test_greedy_fallback_keeps_the_most_sensitive_layers_first() -> None:
    # Each layer's PSNR cost when quantized; the gate needs >= 40 dB.
    cost = {"a": 1.0, "b": 6.0, "c": 3.0}
    seen: list[tuple[str, ...]] = []

    def measure(kept: tuple[str, ...]) -> GateFigures:
        seen.append(kept)
        return _figures(50.0 - sum(v for k, v in cost.items() if k not in kept))

    result = choose_fp_layers(measure, list(cost), GateThresholds(min_psnr_db=45.0))
    assert result.passed and result.kept_fp == ("b",)
    seen.clear()
    result = choose_fp_layers(measure, list(cost), GateThresholds(min_psnr_db=49.5))
    assert result.passed and result.kept_fp == ("b", "c", "a")
    assert len(set(seen)) == len(seen)  # ("b",) is measured once, as a sensitivity and as a step
    assert choose_fp_layers(measure, list(cost), GateThresholds(min_psnr_db=48.5)).kept_fp == ("b", "c")
    assert choose_fp_layers(measure, list(cost), GateThresholds(min_psnr_db=30.0)).kept_fp == ()


def test_failures_name_each_missed_threshold() -> None:
    f = GateFigures(psnr_db=28.0, psnr_min_db=27.0, ssim=0.9, flicker_fp32=0.010, flicker_int8=0.020)
    failures = f.failures(GateThresholds())
    assert len(failures) == 3 and "PSNR" in failures[0] and "SSIM" in failures[1] and "flicker" in failures[2]
    assert GateFigures(40.0, 40.0, 0.99).failures(GateThresholds()) == []  # no clip: flicker not judged


def test_gate_on_the_fp32_graph_itself_is_perfect(fp32: Path, clip: FrameSet) -> None:
    gate = Gate(fp32, clip, 3)
    figures = gate.measure(fp32)
    assert figures.psnr_db == 100.0 and figures.ssim == pytest.approx(1.0) and figures.flicker_increase == 0.0
    assert figures.flicker_fp32 is not None and figures.flicker_fp32 > 0


# --- the pipeline ----------------------------------------------------------------------------------------


def test_calibrate_writes_a_gated_int8_graph_and_report(model, clip: FrameSet, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "m.int8.onnx"
    report = calibrate(*model, clip, out, method="percentile")
    assert report.passed and report.figures.psnr_db >= 30.0
    assert set(report.kept_fp) >= {"/body/stem/Conv", "/body/refine1/Conv", "/body/refine2/Conv"}
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(meta["stylecast_int8_report"])["quantized"] == list(report.quantized)
    assert meta["stylecast_model_sha256"] == model[1].sha256  # the FP32 export's metadata survives
    saved = json.loads(out.with_suffix(".onnx.json").read_text())
    assert saved["figures"]["psnr_db"] == pytest.approx(report.figures.psnr_db)


def test_a_strict_gate_moves_layers_back_to_fp32(model, clip: FrameSet, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    loose = calibrate(*model, clip, tmp_path / "loose.onnx", method="minmax")
    strict = GateThresholds(min_psnr_db=loose.figures.psnr_db + 0.5)
    report = calibrate(*model, clip, tmp_path / "strict.onnx", method="minmax", thresholds=strict)
    gated = [k for k, why in report.kept_fp.items() if why == "quality gate"]
    assert gated and report.figures.psnr_db > loose.figures.psnr_db
    assert len(report.quantized) + len(gated) == len(loose.quantized)
    with caplog.at_level(logging.WARNING):
        impossible = calibrate(*model, clip, tmp_path / "none.onnx", method="minmax", thresholds=GateThresholds(min_psnr_db=500))
    assert not impossible.passed and impossible.quantized == () and "not met" in caplog.text


def test_int8_model_path_is_cached_per_model_and_method(model, frame_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    path = int8_model_path(*model, frames=frame_folder)
    assert path.is_file() and path == int8_cache_path(model[1], frame_folder)

    def no_recalibration(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("calibrated again")

    monkeypatch.setattr(calibration, "calibrate", no_recalibration)
    assert int8_model_path(*model, frames=frame_folder) == path
    assert int8_cache_path(model[1], frame_folder, "minmax") != path


# --- the command -------------------------------------------------------------------------------------------


def test_calibrate_command(tiny_model: Path, frame_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "c.onnx"
    args = ["calibrate", "--model", str(tiny_model), "--frames", str(frame_folder), "--size", "64x48", "--method", "minmax"]
    assert main([*args, "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "PSNR" in printed and "flicker: not measured" in printed and printed.strip().endswith(str(out))
    assert main([*args, "--min-psnr", "500", "-o", str(out), "--overwrite"]) == 1  # the gate failed: non-zero exit
    assert "FAILED" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--frames", "/nonexistent/clip.mp4"], 2, "not found"),
        (["--method", "kl"], 2, "invalid choice"),
        (["--size", "8x8"], 2, "sides must be >= 16"),
    ],
)
def test_calibrate_user_errors(tiny_model: Path, capsys: pytest.CaptureFixture[str], args: list[str], code: int, message: str) -> None:
    try:
        got = main(["calibrate", "--model", str(tiny_model), *args])
    except SystemExit as e:  # argparse rejects bad choices itself
        got = int(e.code or 0)
    assert got == code
    assert message in capsys.readouterr().err


def test_a_flicker_failure_ranks_layers_by_the_flicker_they_add() -> None:
    added = {"a": 0.001, "b": 0.0002, "c": 0.003}

    def measure(kept: tuple[str, ...]) -> GateFigures:
        return GateFigures(45.0, 45.0, 0.99, 0.01, 0.01 + sum(v for k, v in added.items() if k not in kept))

    assert choose_fp_layers(measure, list(added), GateThresholds(max_flicker_increase=0.0015)).kept_fp == ("c",)
    result = choose_fp_layers(measure, list(added), GateThresholds(max_flicker_increase=0.001))
    assert result.passed and result.kept_fp == ("c", "a")


def test_qdq_graph_is_symmetric_int8_as_tensorrt_requires(fp32: Path, clip: FrameSet, tmp_path: Path) -> None:
    inner, _ = sub_resolution_convs(fp32, 3)
    graph = onnx.load(str(quantize_qdq(fp32, tmp_path / "q.onnx", inner, tmp_path / "r.json", clip.calibration, 3))).graph
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
    qdq = [n for n in graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    zero_points = [inits[n.input[2]] for n in qdq if len(n.input) > 2]
    assert len(zero_points) == len(qdq)  # every Q/DQ: int8, zero point 0 (none for an int32 bias)
    assert all(z.dtype == np.int8 and not z.any() for z in zero_points)


def test_reading_a_video_keeps_strided_frames_and_a_consecutive_tail() -> None:
    from calibration.frames import read_frames

    frames, is_video = read_frames(None, (32, 18), keep=10, tail=4)
    assert is_video and 10 <= len(frames) <= 16  # the sample has 132 frames: every 13th, then the last 4
    tail = np.stack(frames[-4:]).astype(int)
    assert np.abs(np.diff(tail, axis=0)).mean() < np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean()


def test_calibrate_never_writes_over_its_inputs(tiny_model: Path, frame_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"stands in for a video")
    model = tmp_path / "m.stylecast"
    model.write_bytes(tiny_model.read_bytes())
    for output, frames in ((model, frame_folder), (video, video)):
        assert main(["calibrate", "--model", str(model), "--frames", str(frames), "-o", str(output), "--overwrite"]) == 2
        assert "is the input" in capsys.readouterr().err
    assert video.read_bytes() == b"stands in for a video" and model.read_bytes() == tiny_model.read_bytes()
    report = tmp_path / "q.onnx.json"  # the gate's report beside the graph is an output too
    report.write_text("{}")
    assert main(["calibrate", "--model", str(model), "--frames", str(frame_folder), "-o", str(tmp_path / "q.onnx")]) == 2
    assert "q.onnx.json exists; pass --overwrite" in capsys.readouterr().err


def test_a_non_finite_gate_threshold_is_refused(tiny_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["calibrate", "--model", str(tiny_model), "--min-psnr", "nan"])
    assert exc.value.code == 2 and "must be a finite number" in capsys.readouterr().err
    with pytest.raises(ValueError, match="finite"):
        GateThresholds(min_ssim=float("nan"))


def test_int8_with_a_file_for_the_cache_folder_is_one_line(tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import cv2

    blocker = tmp_path / "cache"
    blocker.write_text("a file, not a folder")
    monkeypatch.setenv("STYLECAST_CACHE", str(blocker))
    image = tmp_path / "in.png"
    cv2.imwrite(str(image), np.zeros((24, 32, 3), np.uint8))
    out = tmp_path / "out.png"
    code = main(["run", str(image), "-o", str(out), "--model", str(tiny_model), "--backend", "onnx", "--precision", "int8"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "set STYLECAST_CACHE to a writable folder" in err
    assert not out.exists()


def test_calibration_alone_needs_no_cache(model, clip: FrameSet, tmp_path: Path, stylecast_cache: Path) -> None:  # type: ignore[no-untyped-def]
    """Without the runtime's components, the library exports and keeps its ranges in a temporary folder."""
    before = sorted(stylecast_cache.rglob("*"))
    report = calibration.calibrate(*model, clip, tmp_path / "alone.onnx", method="minmax")
    assert (tmp_path / "alone.onnx").is_file() and report.quantized
    assert sorted(stylecast_cache.rglob("*")) == before
