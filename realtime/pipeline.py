"""The streaming engine: decode, upload, infer, download and encode in their own threads.

Stages are joined by bounded queues, so decoding and encoding overlap inference. Two policies:

* ``lossless`` (files): every frame, in order; a full queue blocks the stage before it (back-pressure).
  Frames of equal size may be batched, and a backend with several infer lanes
  (``Backend.infer_lanes``) gets several frames at once, where either raises throughput.
* ``latest`` (live sources): every link is a one-slot mailbox; a newer frame replaces a waiting
  one and the replaced frame is counted as dropped, so latency never grows when inference is
  slower than the source.

The encode/display stage runs on the calling thread (windows must live there on some platforms),
and SIGINT/SIGTERM/SIGHUP end the run cleanly: the sink still finalizes what was written.
"""

from __future__ import annotations

import functools
import logging
import queue
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from realtime.argtypes import check_batch
from realtime.backends.base import Backend, InferFn
from realtime.sinks import Sink
from realtime.sources import Frame, Source
from realtime.styles import StyleController, mix_output

log = logging.getLogger(__name__)

STAGES = ("decode", "upload", "infer", "download", "encode")
Policy = Literal["lossless", "latest"]

_END = object()  # end of stream marker, never dropped by a mailbox
#: signals that end a run cleanly (a playable output of the frames so far): Ctrl-C, kill, a closed terminal
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
_POLL_S = 0.05


#: per-frame timings kept for the statistics: the latest frames only, so a run of days (a webcam
#: filter left on) keeps flat memory; ~20 MiB when full, about an hour at 30 fps
STATS_WINDOW = 100_000


def _window() -> deque[float]:
    return deque(maxlen=STATS_WINDOW)


@dataclass
class RunStats:
    """Counts and per-frame timings of one run; stage durations are per frame (a batch's time / B).

    With several infer lanes a frame's infer time is its own lane's call, and the lanes overlap, so
    the infer figures are latencies, not what each frame costs the throughput.

    Counts cover the whole run; timings (and the percentiles from them) the latest ``STATS_WINDOW`` frames.
    """

    frames: int = 0
    dropped: int = 0
    elapsed_s: float = 0.0
    interrupted: bool = False
    backend: str = ""
    policy: str = ""
    stage_s: dict[str, deque[float]] = field(default_factory=lambda: {s: _window() for s in STAGES})
    #: capture/decode of the source frame -> written by the sink, per written frame
    latency_s: deque[float] = field(default_factory=_window)

    @property
    def fps(self) -> float:
        return self.frames / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def percentile_ms(self, name: str, q: float) -> float:
        values = self.latency_s if name == "latency" else self.stage_s[name]
        return float(np.percentile(values, q) * 1000.0) if values else float("nan")

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "frames": self.frames,
            "dropped": self.dropped,
            "fps": round(self.fps, 2),
            "elapsed_s": round(self.elapsed_s, 3),
            "interrupted": self.interrupted,
            "backend": self.backend,
            "policy": self.policy,
        }
        for name in (*STAGES, "latency"):
            out[f"{name}_p50_ms"] = round(self.percentile_ms(name, 50), 2)
            out[f"{name}_p99_ms"] = round(self.percentile_ms(name, 99), 2)
        return out

    def format(self) -> str:
        state = "interrupted after" if self.interrupted else "done:"
        lines = [
            f"{state} {self.frames} frames, {self.dropped} dropped, {self.fps:.1f} fps, "
            f"latency p50 {self.percentile_ms('latency', 50):.1f} ms / p99 {self.percentile_ms('latency', 99):.1f} ms"
            f" ({self.backend}, {self.policy})"
        ]
        stages = ", ".join(f"{s} {self.percentile_ms(s, 50):.1f}" for s in STAGES)
        lines.append(f"per-frame stage p50 (ms): {stages}")
        return "\n".join(lines)


class Link:
    """A bounded FIFO between two stages (back-pressure), for lossless runs."""

    def __init__(self, maxsize: int, stop: threading.Event) -> None:
        self._q: queue.Queue[Any] = queue.Queue(maxsize)
        self._stop = stop
        self.dropped = 0

    def put(self, item: Any) -> None:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    def get(self) -> Any:
        """The next item, or ``_END`` at the end of the stream or when the run is stopping."""
        while not self._stop.is_set():
            try:
                return self._q.get(timeout=_POLL_S)
            except queue.Empty:
                continue
        return _END

    def get_nowait(self) -> Any:
        try:
            return self._q.get_nowait()
        except queue.Empty:
            return None

    def close(self) -> None:
        self.put(_END)


class OrderedLink:
    """The FIFO after the infer lanes: items (numbered by the upload stage) leave in their order.

    Lanes finish out of order; an item that is not the next one waits here, at most ``maxsize`` of
    them, while the next one is always taken, so the buffer cannot stall the stream. The stream ends
    when every lane has closed the link.
    """

    def __init__(self, maxsize: int, stop: threading.Event, producers: int) -> None:
        self._cond = threading.Condition()
        self._items: dict[int, Any] = {}
        self._next = 0
        self._open = producers
        self._maxsize = maxsize
        self._stop = stop
        self.dropped = 0

    def put(self, item: Any) -> None:
        seq = item[0]
        with self._cond:
            while seq != self._next and len(self._items) >= self._maxsize and not self._stop.is_set():
                self._cond.wait(_POLL_S)
            self._items[seq] = item
            self._cond.notify_all()

    def get(self) -> Any:
        with self._cond:
            while self._next not in self._items and self._open and not self._stop.is_set():
                self._cond.wait(_POLL_S)
            if self._stop.is_set() or self._next not in self._items:
                return _END
            return self._pop_next()

    def get_nowait(self) -> Any:
        with self._cond:
            return self._pop_next() if self._next in self._items else None

    def _pop_next(self) -> Any:
        item = self._items.pop(self._next)
        self._next += 1
        self._cond.notify_all()
        return item

    def close(self) -> None:
        with self._cond:
            self._open -= 1
            self._cond.notify_all()


class Mailbox:
    """One slot for live runs: a put replaces what is waiting there and counts it as dropped.

    The end marker is a flag, not an item, so the last frame of a stream is never dropped for it.
    """

    def __init__(self, stop: threading.Event, count: Callable[[Any], int]) -> None:
        self._stop = stop
        self._count = count  # frames in a replaced item
        self._cond = threading.Condition()
        self._item: Any = None
        self._closed = False
        self.dropped = 0

    def put(self, item: Any) -> None:
        with self._cond:
            if self._item is not None:
                self.dropped += self._count(self._item)
            self._item = item
            self._cond.notify()

    def get(self) -> Any:
        with self._cond:
            while self._item is None and not self._closed and not self._stop.is_set():
                self._cond.wait(_POLL_S)
            if self._stop.is_set() or self._item is None:
                return _END
            item, self._item = self._item, None
            return item

    def get_nowait(self) -> Any:
        return None  # live runs never batch

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()


class Pipeline:
    """One run of ``source`` through ``backend`` into ``sink``; see the module docstring."""

    def __init__(
        self,
        source: Source,
        backend: Backend,
        sink: Sink,
        controller: StyleController,
        policy: Policy | Literal["auto"] = "auto",
        batch: int = 1,
        strength: float = 1.0,
        preserve_color: bool = False,
        queue_size: int = 1,
        progress: Callable[[RunStats], None] | None = None,
    ) -> None:
        self.source, self.backend, self.sink, self.controller = source, backend, sink, controller
        self.policy: Policy = ("latest" if source.live else "lossless") if policy == "auto" else policy
        # Batching trades latency for throughput: only where no frame may be dropped.
        self.batch = max(1, batch) if self.policy == "lossless" else 1
        check_batch(self.batch, source.size)
        self.strength, self.preserve_color = strength, preserve_color
        self.progress = progress
        self.stop = threading.Event()
        self.stats = RunStats(backend=backend.describe(), policy=self.policy)
        self._timing_lock = threading.Lock()
        self._errors: list[BaseException] = []
        self._carry: Any = None  # an item that did not fit the current batch
        self.links: list[Link | Mailbox | OrderedLink]
        if self.policy == "latest":
            # one frame at a time: a second frame in flight would add its whole inference to the latency
            self.lanes: list[InferFn] = [backend.infer]
            self.links = [Mailbox(self.stop, _frames_in) for _ in range(4)]
        else:
            self.lanes = backend.infer_lanes() or [backend.infer]
            # Short queues: enough to keep every stage busy, while each waiting frame adds a full
            # inference time to the latency.
            self.links = [
                Link(queue_size * self.batch, self.stop),
                Link(queue_size, self.stop),
                OrderedLink(queue_size, self.stop, producers=len(self.lanes)),
                Link(queue_size, self.stop),
            ]

    # --- bookkeeping ----------------------------------------------------------------------------------

    def _record(self, stage: str, seconds: float, frames: int = 1) -> None:
        with self._timing_lock:
            self.stats.stage_s[stage].extend([seconds / frames] * frames)

    def _thread(self, name: str, body: Callable[[], None]) -> threading.Thread:
        def run() -> None:
            try:
                body()
            except BaseException as e:  # handed to the calling thread, which re-raises it
                self._errors.append(e)
                self.stop.set()

        t = threading.Thread(target=run, name=f"stylecast-{name}", daemon=True)
        t.start()
        return t

    # --- stages ---------------------------------------------------------------------------------------

    def _decode(self) -> None:
        out = self.links[0]
        frames: Iterator[Frame] = iter(self.source)
        while not self.stop.is_set():
            frame = next(frames, None)
            if frame is None:
                break
            self._record("decode", frame.decode_s)
            out.put(frame)
        out.close()

    def _next_batch(self) -> list[Frame] | None:
        first, self._carry = (self._carry if self._carry is not None else self.links[0].get()), None
        if first is _END:
            return None
        batch = [first]
        while len(batch) < self.batch:
            nxt = self.links[0].get_nowait()
            if nxt is None:
                break
            if nxt is _END or nxt.image.shape != first.image.shape:
                self._carry = nxt  # starts the next batch (or ends the stream)
                break
            batch.append(nxt)
        return batch

    def _upload(self) -> None:
        out = self.links[1]
        seq = 0  # the order the infer lanes' results are put back in
        while (frames := self._next_batch()) is not None:
            weights = np.stack([self.controller.weights_for(f.index, f.seconds) for f in frames])
            t0 = time.perf_counter()
            inputs = self.backend.upload(np.stack([f.image for f in frames]))
            self._record("upload", time.perf_counter() - t0, len(frames))
            out.put((seq, frames, weights, inputs))
            seq += 1
        for _ in self.lanes:
            out.close()  # one end marker for each lane

    def _infer(self, infer: InferFn) -> None:
        src, out = self.links[1], self.links[2]
        while (item := src.get()) is not _END:
            seq, frames, weights, inputs = item
            t0 = time.perf_counter()
            outputs = infer(inputs, weights)
            self._record("infer", time.perf_counter() - t0, len(frames))
            out.put((seq, frames, weights, outputs))
        out.close()

    def _download(self) -> None:
        src, out = self.links[2], self.links[3]
        while (item := src.get()) is not _END:
            seq, frames, _, outputs = item
            t0 = time.perf_counter()
            images = self.backend.download(outputs)
            mixed = [
                mix_output(f.image, img, self.strength, self.preserve_color)
                for f, img in zip(frames, images, strict=True)
            ]
            self._record("download", time.perf_counter() - t0, len(frames))
            out.put((seq, frames, mixed))
        out.close()

    # --- the calling thread ---------------------------------------------------------------------------

    def run(self, handle_signals: bool = True) -> RunStats:
        """Run to the end of the source, a stop request or a signal; always finalizes the sink."""
        restore = self._install_signal_handlers() if handle_signals else {}
        start = time.perf_counter()
        threads = [
            self._thread("decode", self._decode),
            self._thread("upload", self._upload),
            *(self._thread(f"infer-{i}", functools.partial(self._infer, lane)) for i, lane in enumerate(self.lanes)),
            self._thread("download", self._download),
        ]
        completed = False
        try:
            completed = self._encode_loop()
        finally:
            self.stop.set()
            for t in threads:
                t.join(timeout=5.0)
            self.stats.elapsed_s = time.perf_counter() - start
            self.stats.dropped = sum(link.dropped for link in self.links)
            for sig, handler in restore.items():
                signal.signal(sig, handler)
            failed = bool(self._errors) or not (completed or self.stats.interrupted or self.sink.stop_requested)
            try:
                if failed:
                    self.sink.abort()
                else:
                    self.sink.close(complete=completed)
            finally:
                self.source.close()
        if self._errors:
            raise self._errors[0]
        return self.stats

    def _encode_loop(self) -> bool:
        """Write frames until the stream ends (True) or the run is stopped (False)."""
        src = self.links[3]
        while (item := src.get()) is not _END:
            _, frames, images = item
            for frame, image in zip(frames, images, strict=True):
                t0 = time.perf_counter()
                self.sink.write(frame, image)
                now = time.perf_counter()
                self._record("encode", now - t0)
                self.stats.latency_s.append(now - frame.captured)
                self.stats.frames += 1
                if self.progress is not None:
                    self.progress(self.stats)
            if self.sink.stop_requested:
                return False
        return not self.stop.is_set()

    def _install_signal_handlers(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous: dict[int, Any] = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}

        def on_signal(signum: int, _frame: Any) -> None:
            log.warning("interrupted: finishing the output written so far (again to abort)")
            self.stats.interrupted = True
            self.stop.set()
            # A second Ctrl-C gets the default behaviour back, in case finishing hangs.
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        for sig in previous:
            signal.signal(sig, on_signal)
        return previous


def _frames_in(item: Any) -> int:
    """Frames carried by a queue item: a Frame, or a (seq, frames, ...) tuple from later stages."""
    return 1 if isinstance(item, Frame) else len(item[1])


def run_stream(source: Source, backend: Backend, sink: Sink, controller: StyleController, **options: Any) -> RunStats:
    """Convenience: build a ``Pipeline`` and run it (options as in ``Pipeline``)."""
    handle_signals = options.pop("handle_signals", True)
    return Pipeline(source, backend, sink, controller, **options).run(handle_signals)
