"""The compiled torch path against eager, for ``benchmarks/gpu_check.sh``: one sub-command per part.

* ``sweep``: eager vs compiled torch backend for every architecture x resolution x precision x batch.
  Each row gives the first call's time (compilation, autotuning, CUDA graph capture), the frame
  latency from a uint8 host frame to a uint8 host frame, the forward alone (the infer stage's device
  time, uint8 in and out on the device), throughput, and the PSNR against eager at the same precision
  and against eager fp32. Run twice in fresh processes on one cache, it gives first-start and
  warm-start times.
* ``profile``: per-layer device time of the quality model (CUDA events around each top-level layer),
  eager as trained and with the phase rewrite, plus the torch profiler's kernel table of the compiled
  model.
* ``streams``: the largest number of live 1080p30 streams that hold (``benchmarks.streams``).
* ``summary``: the targets of the GPU issue, met or not, from the JSON files the others wrote.

Each part writes JSON and Markdown after every configuration, so a time-out keeps what was measured
(``timeout -s INT`` ends a part with a clean write). ``--smoke`` runs tiny settings on the CPU (64x48
frames, fp32, dynamo's eager backend in place of inductor) to check the plumbing.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks import latency, streams
from benchmarks.report import write_json
from realtime.backends.torch_backend import TorchBackend
from realtime.compiled import DTYPES, rewrite_upsampling
from realtime.metrics import psnr
from realtime.model import Generator, QualityBody
from realtime.modelfile import ModelInfo, load_model

log = logging.getLogger(__name__)

#: variant -> TorchBackend keywords. "compiled" is what ``--compile`` runs (inductor kernels inside
#: the backend's CUDA graphs); "compiled-igraphs" lets inductor capture its own CUDA graphs instead.
VARIANTS: dict[str, dict[str, Any]] = {
    "eager": {},
    "eager-cl": {"channels_last": True},
    "compiled": {"compile": True},
    "compiled-cl": {"compile": True, "channels_last": True},
    "compiled-igraphs": {"compile": True, "cuda_graphs": False},
    "compiled-tritonconv": {"compile": True, "compile_options": {"conv_backends": "ATEN,TRITON"}},
}

Model = tuple[Generator, ModelInfo]


@dataclass(frozen=True)
class Settings:
    device: str = "cuda"
    budget: latency.Budget = latency.Budget(warmup=3, min_iters=20, seconds=0.5, max_seconds=3.0)
    #: smoke mode: dynamo's eager backend instead of inductor (with tiny frames, chosen in ``main``)
    smoke: bool = False

    def backend_options(self, variant: str) -> dict[str, Any]:
        options = dict(VARIANTS[variant])
        if self.smoke and options.get("compile"):
            options["compile_options"] = {**options.get("compile_options", {}), "backend": "eager"}
        return options


def load_arch(arch: str) -> Model:
    """The bundled model for its architecture (fast); a seeded random-init model for the other."""
    generator, info = load_model(None)
    if arch == info.config.arch:
        return generator, info
    from benchmarks.suite import random_init_model

    return random_init_model(arch, info)


class Writer:
    """Results as JSON plus a Markdown table, rewritten after every row."""

    def __init__(self, out: Path, name: str, meta: dict[str, Any]) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.json_path, self.md_path = out / f"{name}.json", out / f"{name}.md"
        self.record: dict[str, Any] = {"meta": meta, "rows": [], "notes": []}

    def add(self, row: dict[str, Any]) -> None:
        self.record["rows"].append(row)
        self.flush()

    def note(self, text: str) -> None:
        log.warning("%s", text)
        self.record["notes"].append(text)
        self.flush()

    def flush(self) -> None:
        write_json(self.record, self.json_path)
        self.md_path.write_text(render_rows(self.record))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return "-" if value is None else str(value)


def render_rows(record: dict[str, Any]) -> str:
    rows = record["rows"]
    lines = [f"# {record['meta'].get('title', 'results')}", ""]
    lines += [f"- {k}: {v}" for k, v in record["meta"].items() if k != "title"]
    if rows:
        columns = [c for c in rows[0] if not isinstance(rows[0][c], dict | list)]
        for row in rows[1:]:
            columns += [c for c in row if c not in columns and not isinstance(row[c], dict | list)]
        lines += ["", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(_fmt(row.get(c)) for c in columns) + " |" for row in rows]
    lines += [f"\n> {note}" for note in record["notes"]]
    return "\n".join(lines) + "\n"


def environment(settings: Settings) -> dict[str, Any]:
    from realtime.machine import describe_machine

    return {
        "machine": describe_machine(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "device": settings.device,
        "smoke": settings.smoke,
    }


@contextmanager
def _backend(model: Model, precision: str, variant: str, settings: Settings) -> Iterator[TorchBackend]:
    generator, info = model
    backend = TorchBackend(generator, info, precision=precision, device=settings.device, **settings.backend_options(variant))
    try:
        yield backend
    finally:
        backend.close()
        # Compiled graphs and their CUDA graphs hold device memory; each configuration starts clean.
        torch._dynamo.reset()


# --- sweep --------------------------------------------------------------------------------------------


def sweep(args: argparse.Namespace, settings: Settings) -> None:
    writer = Writer(args.out, args.name, {"title": "eager vs compiled torch backend", **environment(settings)})
    start = time.perf_counter()
    references: dict[tuple[str, str, int, str], np.ndarray] = {}
    configs = itertools.product(args.resolutions, args.archs, args.precisions, args.batches, args.variants)
    for resolution, arch, precision, batch, variant in configs:
        if time.perf_counter() - start > args.time_limit:
            writer.note(f"time limit {args.time_limit:.0f} s reached: {resolution} {arch} {precision} b{batch} {variant} and later not run")
            break
        model = load_arch(arch)
        width, height = latency.parse_resolution(resolution)
        frames = latency.synthetic_frames(batch, width, height)
        weights = latency.rotating_weights(model[1].config.num_styles, batch)(1)
        row: dict[str, Any] = {"arch": arch, "res": resolution, "precision": precision, "batch": batch, "variant": variant}
        interrupted = f"interrupted during {resolution} {arch} {precision} b{batch} {variant}: it and later ones not run"
        try:
            with _backend(model, precision, variant, settings) as backend:
                t0 = time.perf_counter()
                out = backend(frames, weights)
                # compilation, autotuning and CUDA graph capture (eager: cuDNN's algorithm search and capture)
                row["first_call_s"] = time.perf_counter() - t0
                step = getattr(backend, "_step", None)
                row["compile_s"] = next(iter(getattr(step, "compile_seconds", {}).values()), None)
                row["fallback"] = getattr(step, "fallback", None)
                measured = latency.measure_backend(backend, frames, settings.budget)
            if variant == "eager":  # the reference of the compiled rows at this precision, at no extra cost
                references.setdefault((arch, resolution, batch, precision), out)
            for base in ("eager", "fp32"):
                key = (arch, resolution, batch, precision if base == "eager" else "fp32")
                if key not in references:
                    with _backend(model, key[3], "eager", settings) as ref:
                        references[key] = ref(frames, weights)
                row[f"psnr_vs_{base}"] = psnr(references[key], out)
            stages = measured.stages
            row |= {
                "fps": measured.fps,
                "forward_ms_p50": stages["infer"]["p50"],
                "forward_fps": 1e3 * batch / stages["infer"]["p50"],
                "frame_ms_p50": measured.frame_latency_ms["p50"],
                "frame_ms_p99": measured.frame_latency_ms["p99"],
                "upload_ms_p50": stages["upload"]["p50"],
                "download_ms_p50": stages["download"]["p50"],
                "n": measured.frame_latency_ms["n"],
            }
        except (RuntimeError, torch.OutOfMemoryError) as e:  # one configuration's failure is a row, not the end
            row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        except KeyboardInterrupt:
            writer.note(interrupted)
            raise
        log.info("%s", row)
        writer.add(row)


# --- per-layer profile ------------------------------------------------------------------------------


def _layers(body: QualityBody) -> list[tuple[str, torch.nn.Module]]:
    named = [(f"down{i}", m) for i, m in enumerate(body.down)] + [(f"res{i}", m) for i, m in enumerate(body.blocks)]
    return named + [(f"up{i}", m) for i, m in enumerate(body.up)] + [("out", body.out)]


def layer_times(generator: Generator, x: torch.Tensor, w: torch.Tensor, iters: int) -> dict[str, float]:
    """Mean time per top-level layer of a quality body, in ms (CUDA events on CUDA, host clock on the CPU)."""
    assert isinstance(generator.body, QualityBody)
    layers = _layers(generator.body)
    totals = dict.fromkeys([name for name, _ in layers], 0.0)
    cuda = x.is_cuda
    marks: dict[str, Any] = {}

    def before(name: str) -> Callable[..., None]:
        def hook(*_: Any) -> None:
            marks[name] = _mark(cuda)

        return hook

    def after(name: str) -> Callable[..., None]:
        def hook(*_: Any) -> None:
            marks[name + ":end"] = _mark(cuda)

        return hook

    handles = [h for name, m in layers for h in (m.register_forward_pre_hook(before(name)), m.register_forward_hook(after(name)))]
    try:
        with torch.inference_mode():
            generator(x, w)  # warm-up: cuDNN algorithm choice
            for _ in range(iters):
                generator(x, w)
                if cuda:
                    torch.cuda.synchronize()
                for name in totals:
                    totals[name] += _elapsed_ms(marks[name], marks[name + ":end"])
    finally:
        for h in handles:
            h.remove()
    return {name: t / iters for name, t in totals.items()}


def _mark(cuda: bool) -> Any:
    if not cuda:
        return time.perf_counter()
    event = torch.cuda.Event(enable_timing=True)
    event.record()
    return event


def _elapsed_ms(a: Any, b: Any) -> float:
    return float(a.elapsed_time(b)) if isinstance(a, torch.cuda.Event) else (b - a) * 1e3


def profile(args: argparse.Namespace, settings: Settings) -> None:
    writer = Writer(args.out, "profile", {"title": f"quality model per layer, {args.resolution} {args.precision}", **environment(settings)})
    generator, info = load_arch("quality")
    dtype = DTYPES[args.precision]
    width, height = latency.parse_resolution(args.resolution)
    n = info.config.num_styles
    x = torch.rand(1, 3, height, width, device=settings.device, dtype=dtype)
    w = torch.full((1, n), 1.0 / n, device=settings.device, dtype=dtype)
    eager = generator.eval().to(device=settings.device, dtype=dtype)
    times = {"eager": layer_times(eager, x, w, args.iters), "eager+phase": layer_times(rewrite_upsampling(eager), x, w, args.iters)}
    for name in times["eager"]:
        writer.add({"layer": name, **{f"{k}_ms": v[name] for k, v in times.items()}})
    writer.add({"layer": "total", **{f"{k}_ms": sum(v.values()) for k, v in times.items()}})
    # The compiled model as the backend runs it, kernel by kernel.
    frames = latency.synthetic_frames(1, width, height)
    weights = latency.rotating_weights(n, 1)(0)
    with _backend((generator, info), args.precision, "compiled", settings) as backend:
        backend(frames, weights)
        activities = [torch.profiler.ProfilerActivity.CPU]
        if settings.device == "cuda":
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        with torch.profiler.profile(activities=activities) as prof:
            for _ in range(args.iters):
                backend(frames, weights)
        sort = "cuda_time_total" if settings.device == "cuda" else "cpu_time_total"
        (args.out / "profile-compiled.txt").write_text(prof.key_averages().table(sort_by=sort, row_limit=40))


# --- streams ------------------------------------------------------------------------------------------


def stream_test(args: argparse.Namespace, settings: Settings) -> None:
    writer = Writer(args.out, args.name, {"title": "live streams on one device", **environment(settings)})
    width, height = latency.parse_resolution(args.resolution)
    cfg = streams.StreamConfig(width, height, args.fps, args.seconds, args.max_batch, args.p99_ms, args.max_streams)
    for arch, variant in itertools.product(args.archs, args.variants):
        with _backend(load_arch(arch), args.precision, variant, settings) as backend:
            best, runs = streams.max_streams(backend, cfg)
        for run in runs:
            writer.add({"arch": arch, "variant": variant, **run.to_dict(), "p99_ms": run.latency_ms["p99"]})
        writer.add({"arch": arch, "variant": variant, "max_streams": best})


# --- summary ------------------------------------------------------------------------------------------


def _rows(out: Path, name: str) -> list[dict[str, Any]]:
    path = out / f"{name}.json"
    return list(json.loads(path.read_text())["rows"]) if path.exists() else []


def summary(args: argparse.Namespace, settings: Settings) -> None:
    """The issue's targets against the best measured row of each."""
    rows = [r for name in args.sweeps for r in _rows(args.out, name) if "error" not in r]

    def best(arch: str, key: str, low: bool = False) -> dict[str, Any] | None:
        cands = [r for r in rows if r["arch"] == arch and r["res"] == "1080p" and r["batch"] == 1 and key in r]
        return (min if low else max)(cands, key=lambda r: r[key]) if cands else None

    def verdict(row: dict[str, Any] | None, key: str, ok: Callable[[float], bool]) -> list[Any]:
        if row is None:
            return ["-", "-", "not measured"]
        where = f"{row['variant']} {row['precision']}"
        return [f"{row[key]:.2f}", where, "met" if ok(row[key]) else "NOT met"]

    stream_rows = [r for r in _rows(args.out, "streams") if "max_streams" in r and r["arch"] == "quality"]
    best_streams = max(stream_rows, key=lambda r: r["max_streams"], default=None)
    compiled = [r for r in rows if r["variant"].startswith("compiled") and "psnr_vs_eager" in r]
    for r in compiled:  # JSON holds the infinite PSNR of identical outputs as null
        r["psnr_vs_eager"] = float("inf") if r["psnr_vs_eager"] is None else r["psnr_vs_eager"]
    worst_psnr = min(compiled, key=lambda r: r["psnr_vs_eager"], default=None)
    targets = [
        ["quality 1080p forward >= 240 fps", *verdict(best("quality", "forward_fps"), "forward_fps", lambda v: v >= 240)],
        ["quality 1080p p99 frame latency < 10 ms", *verdict(best("quality", "frame_ms_p99", low=True), "frame_ms_p99", lambda v: v < 10)],
        ["fast 1080p forward >= 1000 fps", *verdict(best("fast", "forward_fps"), "forward_fps", lambda v: v >= 1000)],
        ["eager-vs-compiled PSNR >= 45 dB (worst row)", *verdict(worst_psnr, "psnr_vs_eager", lambda v: v >= 45)],
    ]
    if best_streams is None:
        targets.append([">= 8 quality 1080p30 streams", "-", "-", "not measured"])
    else:
        n = best_streams["max_streams"]
        targets.append([">= 8 quality 1080p30 streams", str(n), best_streams["variant"], "met" if n >= 8 else "NOT met"])
    lines = ["# GPU targets", "", "| target | measured | best variant | verdict |", "|---|---|---|---|"]
    lines += ["| " + " | ".join(t) + " |" for t in targets]
    (args.out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


# --- command line -------------------------------------------------------------------------------------


def _csv(kind: Callable[[str], Any] = str) -> Callable[[str], list[Any]]:
    return lambda text: [kind(part) for part in text.split(",") if part]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.compiled_bench", description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("gpu-check"))
    p.add_argument("--smoke", action="store_true", help="tiny CPU settings: checks the plumbing, measures nothing")
    p.add_argument("--seconds", type=float, default=0.5, help="timing budget per configuration")
    sub = p.add_subparsers(dest="part", required=True)
    s = sub.add_parser("sweep")
    s.add_argument("--name", default="sweep")
    s.add_argument("--archs", type=_csv(), default=["quality", "fast"])
    s.add_argument("--resolutions", type=_csv(), default=["1080p", "720p", "2160p"])
    s.add_argument("--precisions", type=_csv(), default=["fp16", "bf16"])
    s.add_argument("--batches", type=_csv(int), default=[1, 8])
    s.add_argument("--variants", type=_csv(), default=["eager", "compiled"])
    s.add_argument("--time-limit", type=float, default=float("inf"), help="start no configuration after this (s)")
    s.set_defaults(func=sweep)
    pr = sub.add_parser("profile")
    pr.add_argument("--resolution", default="1080p")
    pr.add_argument("--precision", default="fp16")
    pr.add_argument("--iters", type=int, default=10)
    pr.set_defaults(func=profile)
    st = sub.add_parser("streams")
    st.add_argument("--name", default="streams")
    st.add_argument("--archs", type=_csv(), default=["quality"])
    st.add_argument("--variants", type=_csv(), default=["compiled", "eager"])
    st.add_argument("--precision", default="fp16")
    st.add_argument("--resolution", default="1080p")
    st.add_argument("--fps", type=float, default=30.0)
    st.add_argument("--max-batch", type=int, default=4)
    st.add_argument("--p99-ms", type=float, default=33.0)
    st.add_argument("--max-streams", type=int, default=24)
    st.set_defaults(func=stream_test)
    sm = sub.add_parser("summary")
    sm.add_argument("--sweeps", type=_csv(), default=["sweep"])
    sm.set_defaults(func=summary)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    budget = latency.Budget(warmup=3, min_iters=20, seconds=args.seconds, max_seconds=max(3.0, 2 * args.seconds))
    if args.smoke:
        torch.set_num_threads(1)
        budget = latency.Budget(warmup=1, min_iters=3, seconds=args.seconds, max_seconds=args.seconds)
        settings = Settings(device="cpu", budget=budget, smoke=True)
        if args.part == "sweep":
            args.resolutions, args.precisions = ["64x48"], ["fp32"]
        elif args.part in ("profile", "streams"):
            args.resolution, args.precision = "64x48", "fp32"
    else:
        settings = Settings(budget=budget)
    try:
        args.func(args, settings)
    except KeyboardInterrupt:  # timeout -s INT: the files hold every finished row
        log.warning("interrupted; results so far are in %s", args.out)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
