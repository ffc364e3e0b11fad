"""Latency and throughput of one inference backend, stage by stage.

Every measurement runs warm-up iterations first (allocator, cuDNN autotuning, CUDA graph capture,
ONNX Runtime's first-run optimizations), then times iterations until both a minimum count and a time
budget are reached. On the CPU each stage is timed with ``perf_counter``; on CUDA with CUDA events
recorded on the backend's own stream between the stages, so a stage's figure is the device time it
took, and the host-side frame latency (upload call to host uint8 result) is timed as well. Throughput
is frames over the wall time of the timed loop, batches run back to back. A backend with several
infer lanes (``Backend.infer_lanes``) is also timed with every lane busy at once, as a file run keeps
them: that throughput is what ``stylecast run`` can reach, each frame's latency is its lane's.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from realtime.backends.base import Backend, InferFn
from realtime.errors import StylecastError

#: Named resolutions (width, height); anything else is given as WIDTHxHEIGHT.
RESOLUTIONS: dict[str, tuple[int, int]] = {
    "360p": (640, 360),
    "480p": (854, 480),
    "720p": (1280, 720),
    "1080p": (1920, 1080),
    "1440p": (2560, 1440),
    "2160p": (3840, 2160),
    "4k": (3840, 2160),
}
BACKEND_STAGES = ("upload", "infer", "download")


def parse_resolution(text: str) -> tuple[int, int]:
    """``"720p"`` or ``"1280x720"`` -> ``(1280, 720)``."""
    key = text.strip().lower()
    if key in RESOLUTIONS:
        return RESOLUTIONS[key]
    m = re.fullmatch(r"(\d+)x(\d+)", key)
    if not m or min(int(m[1]), int(m[2])) < 1:
        raise StylecastError(
            f"bad resolution {text!r}: use one of {', '.join(RESOLUTIONS)} or WIDTHxHEIGHT, e.g. 1280x720"
        )
    return int(m[1]), int(m[2])


def resolution_name(width: int, height: int) -> str:
    for name, size in RESOLUTIONS.items():
        if size == (width, height):
            return name
    return f"{width}x{height}"


@dataclass(frozen=True)
class Budget:
    """How long to measure: ``warmup`` untimed iterations, then at least ``min_iters`` and ``seconds``.

    Slow configurations (4K on a CPU, seconds per frame) stop earlier: warm-up ends once it has taken
    ``seconds``, and timing ends after ``max_seconds`` once ``MIN_SAMPLES`` frames are in; the sample
    count ``n`` is reported with every figure.
    """

    warmup: int = 3
    min_iters: int = 10
    seconds: float = 3.0
    max_iters: int = 1000
    max_seconds: float = 20.0


#: Timed iterations a measurement never goes below, whatever its time limits.
MIN_SAMPLES = 3


def summarize(samples_ms: Sequence[float]) -> dict[str, float]:
    a = np.asarray(samples_ms, dtype=np.float64)
    if a.size == 0:
        raise ValueError("no samples")
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {
        "n": int(a.size),
        "mean": float(a.mean()),
        "p50": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "max": float(a.max()),
    }


class HostClock:
    """Stage boundaries by ``perf_counter``."""

    def __init__(self) -> None:
        self._marks: list[float] = []

    def start(self) -> None:
        self._marks = [time.perf_counter()]

    def mark(self) -> None:
        self._marks.append(time.perf_counter())

    def durations_ms(self) -> list[float]:
        return [(b - a) * 1e3 for a, b in itertools.pairwise(self._marks)]


class CudaClock:
    """Stage boundaries by CUDA events on ``stream``: the device's view of each stage."""

    def __init__(self, stream: Any, stages: int) -> None:
        import torch

        self._stream = stream
        self._events = [torch.cuda.Event(enable_timing=True) for _ in range(stages + 1)]
        self._next = 0

    def start(self) -> None:
        self._next = 0
        self.mark()

    def mark(self) -> None:
        self._events[self._next].record(self._stream)
        self._next += 1

    def durations_ms(self) -> list[float]:
        self._events[self._next - 1].synchronize()
        return [a.elapsed_time(b) for a, b in itertools.pairwise(self._events[: self._next])]


def clock_for(backend: Backend) -> HostClock | CudaClock:
    if backend.device == "cuda":
        import torch

        stream = getattr(backend, "stream", None) or torch.cuda.current_stream()
        # A backend that drives its own non-torch stream (e.g. a raw CUDA handle) is timed from the host:
        # its download waits for the device, so the frame latency stays exact, the stage split less so.
        if isinstance(stream, torch.cuda.Stream):
            return CudaClock(stream, len(BACKEND_STAGES))
    return HostClock()


@dataclass(frozen=True)
class Measurement:
    stages: dict[str, dict[str, float]]
    frame_latency_ms: dict[str, float]
    fps: float
    batch: int
    #: raw per-iteration latencies (ms), kept so CDFs can be redrawn and results compared later
    samples_ms: list[float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "stages": self.stages,
            "frame_latency_ms": self.frame_latency_ms,
            "fps": self.fps,
            "batch": self.batch,
            "samples_ms": [round(s, 4) for s in self.samples_ms],
        }


def _timed_loop(
    step: Callable[[int], Sequence[float]], budget: Budget
) -> tuple[list[Sequence[float]], list[float], float]:
    """Warm up, then call ``step(i)`` under ``budget``: each call's durations, its host time (ms), the wall time (s)."""
    begin = time.perf_counter()
    for i in range(budget.warmup):
        step(i)
        if time.perf_counter() - begin >= budget.seconds:
            break
    durations: list[Sequence[float]] = []
    frame: list[float] = []
    begin = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        durations.append(step(len(frame)))
        frame.append((time.perf_counter() - t0) * 1e3)
        elapsed = time.perf_counter() - begin
        n = len(frame)
        if (
            n >= budget.max_iters
            or (n >= budget.min_iters and elapsed >= budget.seconds)
            or (n >= MIN_SAMPLES and elapsed >= budget.max_seconds)
        ):
            return durations, frame, elapsed


def run_timed(
    step: Callable[[int], Sequence[float]], stages: Sequence[str], budget: Budget, batch: int = 1
) -> Measurement:
    """Call ``step(i)`` (which returns its per-stage durations in ms) under ``budget``."""
    durations, frame, elapsed = _timed_loop(step, budget)
    per_stage = list(zip(*durations, strict=True)) if durations else [()] * len(stages)
    return Measurement(
        stages={name: summarize(bucket) for name, bucket in zip(stages, per_stage, strict=True)},
        frame_latency_ms=summarize(frame),
        fps=len(frame) * batch / elapsed,
        batch=batch,
        samples_ms=frame,
    )


def measure_interleaved(
    steps: Mapping[str, tuple[Sequence[str], Callable[[int], Sequence[float]]]], budget: Budget
) -> dict[str, Measurement]:
    """Time several engines in alternation, one frame each per round, so they share the machine's load.

    ``steps`` maps a name to (its stage names, its step). On a shared machine, measuring two engines
    one after the other compares two different moments; alternating frame by frame compares the
    engines. Each engine's fps is its frames over its own time (the others' turns excluded).
    """
    names = list(steps)

    def round_(i: int) -> list[float]:
        return [d for name in names for d in steps[name][1](i)]

    durations, _, _ = _timed_loop(round_, budget)
    out, offset = {}, 0
    for name in names:
        stages = steps[name][0]
        per_stage = [[row[offset + k] for row in durations] for k in range(len(stages))]
        frame = [sum(row[offset : offset + len(stages)]) for row in durations]
        offset += len(stages)
        out[name] = Measurement(
            stages={stage: summarize(bucket) for stage, bucket in zip(stages, per_stage, strict=True)},
            frame_latency_ms=summarize(frame),
            fps=len(frame) * 1e3 / sum(frame),
            batch=1,
            samples_ms=frame,
        )
    return out


def rotating_weights(num_styles: int, batch: int) -> Callable[[int], np.ndarray]:
    """Iteration -> style weights: one-hot styles in turn, as a user switching styles would send them."""
    table = np.eye(num_styles, dtype=np.float32)

    def weights(i: int) -> np.ndarray:
        return np.ascontiguousarray(table[(i + np.arange(batch)) % num_styles])

    return weights


def synthetic_frames(batch: int, width: int, height: int, seed: int = 0) -> np.ndarray:
    """uint8 ``[B,H,W,3]`` frames with image-like structure (smooth gradients plus noise).

    Latency of these networks does not depend on content, and the GPU bench must run where no video
    decoder is installed; quality figures use the bundled clip instead.
    """
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([x / max(width - 1, 1), y / max(height - 1, 1), 0.5 + 0.5 * np.sin(x / 37.0 + y / 53.0)], axis=-1)
    frames = base[None] * 200 + rng.normal(0, 20, size=(batch, height, width, 3))
    return np.clip(frames, 0, 255).astype(np.uint8)


def backend_step(backend: Backend, frames: np.ndarray, infer: InferFn | None = None) -> Callable[[int], list[float]]:
    """One timed upload/infer/download of ``frames`` (uint8 ``[B,H,W,3]``) through ``infer`` (default:
    ``backend.infer``); returns the stage times in ms."""
    clock = clock_for(backend)
    weights = rotating_weights(backend.num_styles, frames.shape[0])
    infer = infer or backend.infer

    def step(i: int) -> list[float]:
        clock.start()
        x = backend.upload(frames)
        clock.mark()
        y = infer(x, weights(i))
        clock.mark()
        backend.download(y)
        clock.mark()
        return clock.durations_ms()

    return step


def call_step(call: Callable[[], Any]) -> Callable[[int], list[float]]:
    """A plain host call (e.g. the peer's engine) as a one-stage step."""

    def step(_: int) -> list[float]:
        t0 = time.perf_counter()
        call()
        return [(time.perf_counter() - t0) * 1e3]

    return step


def measure_backend(backend: Backend, frames: np.ndarray, budget: Budget) -> Measurement:
    """Latency per stage and throughput of ``backend`` on ``frames`` (uint8 ``[B,H,W,3]``)."""
    return run_timed(backend_step(backend, frames), BACKEND_STAGES, budget, batch=frames.shape[0])


def measure_lanes(backend: Backend, frames: np.ndarray, budget: Budget) -> Measurement:
    """Throughput with each of ``backend``'s infer lanes in its own thread, all timed over the same span.

    The lanes warm up, wait for each other, then run their timed loops side by side; fps is every
    lane's frames over the longest loop's wall time, the latencies are each lane's own frames.
    """
    steps = [backend_step(backend, frames, infer) for infer in backend.infer_lanes()]
    start = threading.Barrier(len(steps))
    results: list[tuple[list[Sequence[float]], list[float], float]] = [([], [], 0.0)] * len(steps)
    errors: list[BaseException] = []

    def lane(k: int) -> None:
        try:
            for i in range(budget.warmup):
                steps[k](i)
        except BaseException as e:  # re-raised in the caller's thread below
            errors.append(e)
            start.abort()
            return
        try:
            start.wait()
        except threading.BrokenBarrierError:
            return
        try:
            results[k] = _timed_loop(steps[k], replace(budget, warmup=0))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=lane, args=(k,), name=f"lane-{k}") for k in range(len(steps))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    durations = [d for r in results for d in r[0]]
    frame = [f for r in results for f in r[1]]
    per_stage = list(zip(*durations, strict=True))
    return Measurement(
        stages={name: summarize(bucket) for name, bucket in zip(BACKEND_STAGES, per_stage, strict=True)},
        frame_latency_ms=summarize(frame),
        fps=len(frame) * frames.shape[0] / max(r[2] for r in results),
        batch=frames.shape[0],
        samples_ms=frame,
    )
