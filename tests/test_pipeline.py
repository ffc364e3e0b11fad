from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from conftest import SAMPLE_VIDEO, TINY_STYLES

from realtime import Stylizer
from realtime.backends.base import Backend
from realtime.errors import InputError
from realtime.pipeline import _END, STAGES, OrderedLink, Pipeline
from realtime.sinks import Sink
from realtime.sources import Frame, ReplaySource, VideoSource
from realtime.styles import Schedule, StyleController

torch.set_num_threads(2)


class CaptureSink(Sink):
    def __init__(self, stop_after: int | None = None) -> None:
        self.items: list[tuple[Frame, np.ndarray]] = []
        self.stop_after = stop_after
        self.closed: bool | None = None
        self.aborted = False

    def write(self, frame: Frame, image: np.ndarray) -> None:
        self.items.append((frame, image))
        if self.stop_after is not None and len(self.items) >= self.stop_after:
            self.stop_requested = True

    def close(self, complete: bool = True) -> None:
        self.closed = complete

    def abort(self) -> None:
        self.aborted = True


class SlowBackend(Backend):
    """Wraps a real backend and makes inference take ``delay`` seconds (a slow GPU/CPU)."""

    name = "slow"

    def __init__(self, inner: Backend, delay: float) -> None:
        self.inner, self.delay, self.num_styles = inner, delay, inner.num_styles

    def upload(self, frames: np.ndarray) -> Any:
        return self.inner.upload(frames)

    def infer(self, inputs: Any, style_weights: np.ndarray) -> Any:
        time.sleep(self.delay)
        return self.inner.infer(inputs, style_weights)

    def download(self, outputs: Any) -> np.ndarray:
        return self.inner.download(outputs)


class TwoLaneBackend(SlowBackend):
    """Two infer lanes, the first ``delay`` slower than the second, so results come back out of order."""

    def __init__(self, inner: Backend, delay: float) -> None:
        super().__init__(inner, delay)
        self.finished: list[int] = []  # the lane of each finished call
        self._lock = threading.Lock()

    def infer_lanes(self) -> list[Any]:
        def lane(i: int, delay: float) -> Any:
            def infer(inputs: Any, style_weights: np.ndarray) -> Any:
                time.sleep(delay)
                out = self.inner.infer(inputs, style_weights)
                with self._lock:
                    self.finished.append(i)
                return out

            return infer

        return [lane(0, self.delay), lane(1, 0.0)]


class FailingBackend(SlowBackend):
    def infer(self, inputs: Any, style_weights: np.ndarray) -> Any:
        raise RuntimeError("device lost")


@pytest.fixture(scope="module")
def stylizer(tiny_model: Path) -> Stylizer:
    return Stylizer.load(tiny_model, backend="onnx")


def test_lossless_keeps_every_frame_in_order_with_stage_timings(stylizer: Stylizer) -> None:
    sink = CaptureSink()
    stats = stylizer.stream(VideoSource(SAMPLE_VIDEO, max_side=64), sink)
    assert stats.frames == 132 and stats.dropped == 0 and not stats.interrupted and sink.closed is True
    assert [f.index for f, _ in sink.items] == list(range(132))
    for stage in STAGES:
        assert len(stats.stage_s[stage]) == 132, stage
        assert stats.percentile_ms(stage, 50) >= 0
    assert len(stats.latency_s) == 132 and stats.fps > 0
    summary = stats.summary()
    assert summary["frames"] == 132 and summary["policy"] == "lossless" and "infer_p99_ms" in summary
    assert "132 frames, 0 dropped" in stats.format()


def test_batching_gives_the_same_frames(stylizer: Stylizer, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    sizes = [(24, 32)] * 3 + [(16, 20)] * 2 + [(24, 32)]  # a batch may not mix sizes
    for i, (h, w) in enumerate(sizes):
        cv2.imwrite(str(tmp_path / f"{i}.png"), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    results = []
    for batch in (1, 4):
        sink = CaptureSink()
        stylizer.stream(tmp_path, sink, batch=batch)
        results.append(sink.items)
    assert [f.name for f, _ in results[1]] == [f"{i}.png" for i in range(6)]
    for (_, a), (_, b) in zip(results[0], results[1], strict=True):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_schedule_changes_style_gradually_and_monotonically(stylizer: Stylizer) -> None:
    """Fade candy -> wave over the clip: each frame's output, projected on the line between the two
    pure styles of the same input frame, must move from one end to the other without going back."""
    schedule = Schedule.from_dict(
        {"keyframes": [{"time": 0.0, "style": "candy"}, {"time": 5.0, "style": "wave"}]}, TINY_STYLES
    )
    sink = CaptureSink()
    stylizer.stream(VideoSource(SAMPLE_VIDEO, max_side=48), sink, schedule=schedule)
    assert len(sink.items) == 132
    positions = []
    for frame, out in sink.items[::4]:
        a = stylizer(frame.image, "candy").astype(float)
        b = stylizer(frame.image, "wave").astype(float)
        d = (b - a).ravel()
        positions.append(float(np.dot(out.astype(float).ravel() - a.ravel(), d) / np.dot(d, d)))
    assert positions[0] == pytest.approx(0.0, abs=0.05)
    assert positions[-1] == pytest.approx(1.0, abs=0.05)
    steps = np.diff(positions)
    assert (steps > -0.02).all(), positions  # monotone up to quantization
    assert steps.max() < 0.25  # gradual: no jump


def test_live_policy_drops_instead_of_queueing(stylizer: Stylizer) -> None:
    delay = 0.08  # inference at 12.5 fps against a source at 4 x 25 fps
    sink = CaptureSink()
    source = ReplaySource(SAMPLE_VIDEO, max_side=64, speed=4.0)
    stats = Pipeline(source, SlowBackend(stylizer.backend, delay), sink, StyleController(TINY_STYLES)).run()
    assert stats.policy == "latest"
    assert stats.dropped > 60
    assert stats.frames + stats.dropped == 132  # every decoded frame is either shown or counted
    assert sink.items[-1][0].index == 131  # the end of the stream is not dropped
    # Latency stays bounded: about one inference waiting plus one running, never a growing queue.
    # (Queueing every frame instead would reach 132 x 80 ms = 10 s by the end.)
    assert stats.percentile_ms("latency", 99) < 1000 * (4 * delay + 0.2)
    indices = [f.index for f, _ in sink.items]
    assert indices == sorted(indices)


def test_lossless_policy_on_a_slow_backend_keeps_everything(stylizer: Stylizer) -> None:
    sink = CaptureSink()
    source = VideoSource(SAMPLE_VIDEO, max_side=32)
    stats = Pipeline(
        source, SlowBackend(stylizer.backend, 0.002), sink, StyleController(TINY_STYLES), queue_size=1
    ).run()
    assert stats.frames == 132 and stats.dropped == 0


def test_infer_lanes_finish_out_of_order_and_the_output_keeps_it(stylizer: Stylizer) -> None:
    backend = TwoLaneBackend(stylizer.backend, 0.01)
    sink = CaptureSink()
    stats = Pipeline(VideoSource(SAMPLE_VIDEO, max_side=32), backend, sink, StyleController(TINY_STYLES)).run()
    assert stats.frames == 132 and stats.dropped == 0 and sink.closed is True
    assert [f.index for f, _ in sink.items] == list(range(132))
    assert backend.finished.count(0) > 5 and backend.finished.count(1) > 5  # both lanes worked
    for frame, out in sink.items[::13]:
        assert np.abs(out.astype(int) - stylizer(frame.image, "candy").astype(int)).max() <= 1


def test_ordered_link_puts_lanes_results_back_in_order_and_ends_with_the_last_lane() -> None:
    link = OrderedLink(1, threading.Event(), producers=2)
    link.put((1, "b"))
    assert link.get_nowait() is None  # 0 is still running
    link.put((0, "a"))  # the next one is taken although the buffer is full
    link.close()
    assert link.get() == (0, "a") and link.get() == (1, "b")
    assert link.get_nowait() is None
    link.put((2, "c"))
    link.close()
    assert link.get() == (2, "c") and link.get() is _END


def test_live_runs_keep_one_frame_in_flight(stylizer: Stylizer) -> None:
    backend = TwoLaneBackend(stylizer.backend, 0.0)
    pipeline = Pipeline(ReplaySource(SAMPLE_VIDEO, max_side=32), backend, CaptureSink(), StyleController(TINY_STYLES))
    assert pipeline.lanes == [backend.infer]
    pipeline.source.close()


def test_backend_errors_reach_the_caller_and_discard_the_output(stylizer: Stylizer) -> None:
    sink = CaptureSink()
    pipeline = Pipeline(
        VideoSource(SAMPLE_VIDEO, max_side=32), FailingBackend(stylizer.backend, 0), sink, StyleController(TINY_STYLES)
    )
    with pytest.raises(RuntimeError, match="device lost"):
        pipeline.run()
    assert sink.aborted and sink.closed is None


def test_sink_can_stop_the_run(stylizer: Stylizer) -> None:
    sink = CaptureSink(stop_after=10)
    stats = stylizer.stream(VideoSource(SAMPLE_VIDEO, max_side=32), sink)
    assert stats.frames == 10 and sink.closed is False


def test_weights_set_from_another_thread_take_effect(tiny_model: Path) -> None:
    stylizer = Stylizer.load(tiny_model, backend="onnx")
    sink = CaptureSink()

    def game_loop() -> None:
        while len(sink.items) < 20:
            time.sleep(0.001)
        stylizer.set_style("wave")

    thread = threading.Thread(target=game_loop)
    thread.start()
    stylizer.stream(VideoSource(SAMPLE_VIDEO, max_side=32), sink)
    thread.join()
    first_frame, first_out = sink.items[0]
    last_frame, last_out = sink.items[-1]
    assert np.abs(first_out.astype(int) - stylizer(first_frame.image, "candy").astype(int)).max() <= 1
    expected_wave = stylizer(last_frame.image, "wave")
    assert np.abs(last_out.astype(int) - expected_wave.astype(int)).max() <= 1
    assert np.abs(expected_wave.astype(int) - stylizer(last_frame.image, "candy").astype(int)).mean() > 1


def test_single_frame_api(stylizer: Stylizer) -> None:
    frame = np.random.default_rng(1).integers(0, 256, (30, 50, 3), dtype=np.uint8)
    out = stylizer(frame, {"mosaic": 1.0})
    assert out.shape == frame.shape and out.dtype == np.uint8
    batch = stylizer(np.stack([frame, frame]), "mosaic")
    np.testing.assert_array_equal(batch[0], out)
    np.testing.assert_array_equal(stylizer(frame, "mosaic", strength=0.0), frame)
    assert stylizer.style_names == list(TINY_STYLES)
    with pytest.raises(InputError, match="uint8 RGB"):
        stylizer(frame.astype(np.float32))
    with pytest.raises(InputError, match="uint8 RGB"):
        stylizer(frame[..., :2])
