"""How many independent live streams one backend serves: N streams at ``fps`` each, every frame in time.

Every stream delivers a frame each ``1/fps`` seconds (all streams in phase, the worst case for a
batching server) with its own style weights, which change every frame. Each tick gathers the N
frames into batches of ``max_batch`` (a last, partial batch is padded with repeated frames, so a
compiled backend meets one shape and compiles once), uploads and infers them back to back (the next batch's
upload overlaps the previous batch's inference on the GPU), then downloads them. A frame's latency is
from its tick to its uint8 result on the host; a tick that ends late delays the next, so a backend
that cannot keep up shows it in the p99. N streams *hold* when every stream keeps ``fps`` and the
p99 latency stays under ``p99_limit_ms``. The search doubles N until it fails, then bisects.

Every batch uploads the same synthetic frames (each one is still copied to the device and back):
content does not change the latency, and a server that decodes into its batch buffers pays no
gather copy either.
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from benchmarks.latency import summarize, synthetic_frames
from realtime.backends.base import Backend

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamConfig:
    width: int = 1920
    height: int = 1080
    fps: float = 30.0
    #: real time each stream count runs for (after one untimed tick)
    seconds: float = 3.0
    max_batch: int = 4
    p99_limit_ms: float = 33.0
    max_streams: int = 32


@dataclass(frozen=True)
class StreamRun:
    streams: int
    batches: list[int]
    frames: int
    #: frames per second each stream got (its frames over the run's wall time)
    fps_per_stream: float
    latency_ms: dict[str, float]
    holds: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def batch_plan(streams: int, max_batch: int) -> list[int]:
    """Batch sizes one tick runs: ``max_batch`` each, the last one padded."""
    return [max_batch] * -(-streams // max_batch)


def stream_weights(streams: int, num_styles: int, seed: int = 0) -> np.ndarray:
    """One style blend per stream, float32 ``[streams, num_styles]``; rolled by one style per tick."""
    return np.random.default_rng(seed).dirichlet(np.ones(num_styles), streams).astype(np.float32)


def run_streams(backend: Backend, streams: int, cfg: StreamConfig) -> StreamRun:
    """Serve ``streams`` streams in real time for ``cfg.seconds`` and measure each frame's latency."""
    sizes = batch_plan(streams, cfg.max_batch)
    frames = synthetic_frames(cfg.max_batch, cfg.width, cfg.height)
    counts = [min(cfg.max_batch, streams - i * cfg.max_batch) for i in range(len(sizes))]  # real frames per batch
    base = stream_weights(streams, backend.num_styles)
    padded = np.concatenate([base, np.repeat(base[-1:], sum(sizes) - streams, axis=0)])
    offsets = np.cumsum([0, *sizes])

    def tick(k: int) -> list[float]:
        weights = np.roll(padded, k, axis=1)
        pending = [backend.infer(backend.upload(frames), weights[a:b]) for a, b in itertools.pairwise(offsets)]
        done = []
        for out in pending:
            backend.download(out)
            done.append(time.perf_counter())
        return done

    tick(0)  # compiles and captures each batch shape, outside the timed run
    period = 1.0 / cfg.fps
    ticks = max(1, round(cfg.seconds * cfg.fps))
    latencies: list[float] = []
    start = time.perf_counter()
    for k in range(ticks):
        arrival = start + k * period
        wait = arrival - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        for done, count in zip(tick(k + 1), counts, strict=True):
            latencies += [(done - arrival) * 1e3] * count
    elapsed = max(time.perf_counter() - start, ticks * period)
    fps = ticks / elapsed
    latency = summarize(latencies)
    # A run that ends exactly on time has fps == cfg.fps; allow for the sleep's wake-up jitter.
    holds = fps >= 0.99 * cfg.fps and latency["p99"] < cfg.p99_limit_ms
    log.info("%d streams: %.1f fps each, p99 %.1f ms: %s", streams, fps, latency["p99"], "holds" if holds else "fails")
    return StreamRun(streams, sizes, len(latencies), fps, latency, holds)


def max_streams(backend: Backend, cfg: StreamConfig) -> tuple[int, list[StreamRun]]:
    """The largest stream count that holds (0 if even one fails), and every run the search made."""
    runs: dict[int, StreamRun] = {}

    def holds(n: int) -> bool:
        if n not in runs:
            runs[n] = run_streams(backend, n, cfg)
        return runs[n].holds

    good, n = 0, 1
    while holds(n):
        good = n
        if n == cfg.max_streams:
            return good, [runs[k] for k in sorted(runs)]
        n = min(2 * n, cfg.max_streams)
    bad = n
    while bad - good > 1:
        mid = (good + bad) // 2
        good, bad = (mid, bad) if holds(mid) else (good, mid)
    return good, [runs[k] for k in sorted(runs)]
