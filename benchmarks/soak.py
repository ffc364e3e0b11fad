"""Soak run: many thousands of frames of a replayed clip through the lossless file path, watching memory.

Every frame goes source -> backend -> encoder into a real video file; resident memory (RSS) is sampled
as the run goes. A healthy run drops no frame (the output holds exactly the frames asked for) and
its RSS stays flat after warm-up. The result is one JSON file::

    python -m benchmarks.soak --frames 20000 --size 96x54 -o benchmarks/results/soak-cpu-2core.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from realtime.modelfile import atomic_write_bytes, default_model_path
from realtime.pipeline import RunStats
from realtime.sources import Frame, Source, VideoSource

log = logging.getLogger(__name__)

SAMPLE_CLIP = Path(__file__).resolve().parents[1] / "realtime" / "assets" / "sample.mp4"


def rss_bytes() -> int:
    """This process's resident memory, from /proc (Linux), else the peak from getrusage."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


class LoopSource(Source):
    """A clip replayed end to end until ``frames`` frames, with timestamps running on across loops."""

    def __init__(self, path: Path, frames: int, size: tuple[int, int]) -> None:
        with VideoSource(path, size=size) as probe:
            self.size, self.fps, self.rate, self.time_base = probe.size, probe.fps, probe.rate, probe.time_base
        self.clip, self.frame_count = path, frames
        self.loops = 0

    def __iter__(self) -> Iterator[Frame]:
        assert self.time_base is not None and self.fps
        step = max(1, round(1 / (self.fps * self.time_base)))  # one frame, in time-base units
        index, pts_offset, seconds_offset = 0, 0, 0.0
        while index < (self.frame_count or 0):
            last_pts, last_seconds = 0, 0.0
            with VideoSource(self.clip, size=self.size) as video:
                for frame in video:
                    if index >= (self.frame_count or 0):
                        return
                    last_pts, last_seconds = frame.pts or 0, frame.seconds
                    frame.index = index
                    frame.pts = pts_offset + (frame.pts or 0)
                    frame.seconds += seconds_offset
                    yield frame
                    index += 1
            self.loops += 1
            pts_offset += last_pts + step
            seconds_offset += last_seconds + 1.0 / self.fps


@dataclass(frozen=True)
class SoakConfig:
    frames: int = 20_000
    size: tuple[int, int] = (96, 54)
    clip: Path = SAMPLE_CLIP
    model: Path | None = None
    backend: str = "auto"
    #: RSS is sampled every this many frames
    sample_every: int = 100
    #: frames before the RSS baseline is taken (allocators, caches and encoder buffers settle first)
    warmup_frames: int = 500


def soak(config: SoakConfig, output: Path) -> dict[str, Any]:
    """Run the soak into ``output`` (a video file) and return its figures."""
    from realtime.api import Stylizer

    samples: list[tuple[int, float, int]] = []  # (frames written, seconds since start, RSS bytes)
    start = time.perf_counter()
    rss_at_start = rss_bytes()

    def progress(stats: RunStats) -> None:
        if stats.frames % config.sample_every == 0 or stats.frames == config.warmup_frames:
            samples.append((stats.frames, time.perf_counter() - start, rss_bytes()))

    source = LoopSource(config.clip, config.frames, config.size)
    with Stylizer.load(config.model, backend=config.backend) as stylizer:
        stats = stylizer.stream(source, output, progress=progress, overwrite=True)
    minutes = (time.perf_counter() - start) / 60.0
    with VideoSource(output) as check:
        written = sum(1 for _ in check)  # what a player sees, not what the pipeline counted
    baseline = next((rss for n, _, rss in samples if n >= config.warmup_frames), samples[0][2] if samples else 0)
    after_warmup = [rss for n, _, rss in samples if n >= config.warmup_frames] or [baseline]
    mib = 1 / (1 << 20)
    return {
        "config": {**asdict(config), "clip": str(config.clip), "model": str(config.model or default_model_path())},
        "backend": stats.backend,
        "policy": stats.policy,
        "frames_requested": config.frames,
        "frames_written": stats.frames,
        "frames_in_output": written,
        "dropped": stats.dropped,
        "interrupted": stats.interrupted,
        "clip_loops": source.loops,
        "minutes": round(minutes, 2),
        "fps": round(stats.fps, 1),
        "rss_process_start_mib": round(rss_at_start * mib, 1),
        "rss_after_warmup_mib": round(baseline * mib, 1),
        "rss_end_mib": round(after_warmup[-1] * mib, 1),
        "rss_max_after_warmup_mib": round(max(after_warmup) * mib, 1),
        "rss_growth_after_warmup_mib": round((after_warmup[-1] - baseline) * mib, 1),
        "latency_p50_ms": round(stats.percentile_ms("latency", 50), 2),
        "latency_p99_ms": round(stats.percentile_ms("latency", 99), 2),
        "rss_samples": [{"frames": n, "seconds": round(t, 2), "rss_mib": round(r * mib, 1)} for n, t, r in samples],
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
    }


def _size(text: str) -> tuple[int, int]:
    w, sep, h = text.lower().partition("x")
    if not sep or not w.isdecimal() or not h.isdecimal() or int(w) < 1 or int(h) < 1:
        raise argparse.ArgumentTypeError(f"size must look like 96x54, got {text!r}")
    return int(w), int(h)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=SoakConfig.frames)
    parser.add_argument("--size", type=_size, default=SoakConfig.size, help="processing size WxH (default 96x54)")
    parser.add_argument("--clip", type=Path, default=SAMPLE_CLIP, help="the clip to replay (default: the bundled one)")
    parser.add_argument("--model", type=Path, help="a .stylecast model (default: the bundled one)")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--warmup-frames", type=int, default=SoakConfig.warmup_frames)
    parser.add_argument("-o", "--output", type=Path, required=True, help="the JSON result")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = SoakConfig(args.frames, args.size, args.clip, args.model, args.backend, warmup_frames=args.warmup_frames)
    with tempfile.TemporaryDirectory(prefix="stylecast-soak-") as tmp:
        result = soak(config, Path(tmp) / "soak.mp4")
    atomic_write_bytes(args.output, json.dumps(result, indent=2).encode())
    log.info(
        "%d/%d frames, %d dropped, %.1f min, RSS %.1f -> %.1f MiB after warm-up (%+.1f MiB)",
        result["frames_in_output"],
        result["frames_requested"],
        result["dropped"],
        result["minutes"],
        result["rss_after_warmup_mib"],
        result["rss_end_mib"],
        result["rss_growth_after_warmup_mib"],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
