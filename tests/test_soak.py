"""A short soak: a replayed clip through the lossless file path with flat memory and no lost frame.

The long version is ``python -m benchmarks.soak`` (figures in benchmarks/results/).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import SAMPLE_VIDEO

from benchmarks.soak import LoopSource, SoakConfig, soak

FRAMES = 450  # three loops of the 132-frame clip, and a bit


def test_loop_source_runs_timestamps_on_across_loops() -> None:
    source = LoopSource(SAMPLE_VIDEO, 140, (32, 18))
    frames = list(source)
    assert len(frames) == 140 and [f.index for f in frames] == list(range(140))
    pts = [f.pts for f in frames if f.pts is not None]
    assert len(pts) == 140
    assert all(b > a for a, b in zip(pts, pts[1:], strict=False))
    # Seamless: the step across the loop is one ordinary frame step.
    assert pts[132] - pts[131] == pts[1] - pts[0]
    assert frames[132].seconds - frames[131].seconds == pytest.approx(frames[1].seconds - frames[0].seconds)


def test_short_soak_keeps_every_frame_with_flat_memory(tiny_model: Path, tmp_path: Path) -> None:
    config = SoakConfig(
        frames=FRAMES, size=(320, 180), model=tiny_model, backend="onnx", sample_every=25, warmup_frames=150
    )
    result = soak(config, tmp_path / "soak.mp4")
    assert result["frames_written"] == result["frames_in_output"] == FRAMES
    assert result["dropped"] == 0 and not result["interrupted"] and result["clip_loops"] >= 3
    # Holding on to one 320x180 frame per frame adds about 40 MiB over the 300 frames after warm-up
    # (measured with a sink that keeps its images: +41.8 MiB), a float copy four times that; the bound
    # leaves room only for allocator noise (the malloc arenas of the pipeline's new threads).
    assert result["rss_growth_after_warmup_mib"] < 24, result["rss_samples"]


def test_run_stats_keep_a_bounded_window_of_timings(monkeypatch: pytest.MonkeyPatch) -> None:
    from realtime import pipeline

    monkeypatch.setattr(pipeline, "STATS_WINDOW", 10)
    stats = pipeline.RunStats()
    for i in range(50):
        stats.latency_s.append(i / 1000)
        stats.stage_s["infer"].extend([i / 1000])
    assert len(stats.latency_s) == len(stats.stage_s["infer"]) == 10
    assert stats.percentile_ms("latency", 0) == pytest.approx(40.0)  # the latest frames count
