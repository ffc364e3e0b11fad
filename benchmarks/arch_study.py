"""The fast-architecture study: candidates x equal-budget training x ``stylecast eval`` x CPU latency.

Every candidate is a ``fast`` generator shape. Each trains from scratch with the same settings and
the same number of steps (``train/configs/arch-study.toml``, 6 styles), is measured by the eval on
the same held-out photos, and is timed with ONNX Runtime FP32 and INT8 at 640x360 on this CPU, the
candidates' frames interleaved so they share the machine's load. The report marks the candidates
no other beats on both latency and quality (the Pareto front).

    python -m benchmarks.arch_study --photos data/photos --out runs/arch-study

A candidate whose model file exists is not trained again, so a stopped study resumes; ``--tiny`` runs
the chain in seconds (tests).
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.environment import collect_environment
from benchmarks.evaluate import EvalConfig, evaluate
from benchmarks.latency import Budget, backend_step, measure_interleaved, synthetic_frames
from realtime.backends.registry import create_backend
from realtime.errors import StylecastError
from realtime.metrics import psnr
from realtime.model import PRESETS, Generator, GeneratorConfig, conv_gmacs, count_params
from realtime.modelfile import load_model
from train.recipe import config_path

log = logging.getLogger(__name__)

#: name -> overrides of the fast preset (32 channels, 4 residual blocks at 1/4 resolution, 4
#: full-resolution refinement channels, no 1/2-resolution stage)
CANDIDATES: dict[str, dict[str, int]] = {
    "shipped": {},
    "refine8": {"refine_channels": 8},
    "half16": {"half_channels": 16},
    "half16-b3": {"half_channels": 16, "res_blocks": 3},
    "wide48-b3": {"channels": 48, "res_blocks": 3},
}
STYLES = ("edtaonisl", "great_wave", "starry_night", "tableau_no_2", "the_scream", "udnie")
TINY = ["--steps", "2", "--crop", "32", "--style-crop", "64", "--batch-size", "1", "--log-every", "1",
        "--sample-every", "1000000", "--checkpoint-every", "1000000", "--holdout-fraction", "0.3"]
#: 640x360, the fast model's real-time target
SIZE = (640, 360)


@dataclass(frozen=True)
class StudyConfig:
    photos: Path
    out: Path
    candidates: tuple[str, ...] = tuple(CANDIDATES)
    eval_photos: int = 20
    seconds: float = 20.0
    threads: int = 2
    tiny: bool = False


def styles_folder(out: Path) -> Path:
    """The study's paintings: links to the bundled ones, so the trainer reads just these styles."""
    from importlib import resources

    folder = out / "styles"
    folder.mkdir(parents=True, exist_ok=True)
    bundled = Path(str(resources.files("train") / "assets" / "styles"))
    for name in STYLES:
        link = folder / f"{name}.jpg"
        if not link.exists():
            link.symlink_to((bundled / f"{name}.jpg").resolve())
    return folder


def budget_command(photos: Path, out: Path, name: str, flags: dict[str, Any], tiny: bool = False) -> list[str]:
    """The trainer's command for one run at the study's budget: arch-study.toml, its styles, ``flags``."""
    cmd = [sys.executable, "-m", "train", "--config", str(config_path("arch-study")), "--content", str(photos),
           "--styles", str(styles_folder(out)), "--out", str(out / name), "--overwrite",
           *(f"--{k.replace('_', '-')}={v}" for k, v in flags.items())]
    return cmd + TINY if tiny else cmd


def train_at_budget(photos: Path, out: Path, name: str, flags: dict[str, Any], tiny: bool = False) -> Path:
    """Train one run into ``out/name`` (a run whose model file exists is kept, so a stopped study resumes)."""
    model = out / name / "model.stylecast"
    if model.is_file():
        log.info("%s: trained already (%s)", name, model)
        return model
    cmd = budget_command(photos, out, name, flags, tiny)
    log.info("%s: training (%s)", name, " ".join(cmd[2:]))
    with open(out / f"{name}.train.log", "wb") as logf:
        code = subprocess.call(cmd, stdout=logf, stderr=subprocess.STDOUT)
    if code not in (0, 130) or not model.is_file():
        raise StylecastError(f"{name}: training failed (exit {code}); see {out / f'{name}.train.log'}")
    return model


def train_command(cfg: StudyConfig, name: str) -> list[str]:
    return budget_command(cfg.photos, cfg.out, name, CANDIDATES[name], cfg.tiny)


def quality(cfg: StudyConfig, name: str, model: Path) -> dict[str, Any]:
    ecfg = EvalConfig(photos=cfg.photos, out=cfg.out / name / "eval", model=model, heldout=True, clips=(),
                      max_photos=cfg.eval_photos, quick=cfg.tiny, overwrite=True)
    result = evaluate(ecfg)
    return {**result["overall"], "grid_ratio": result["grid"]["ratio"]}


def latency(cfg: StudyConfig, models: dict[str, Path]) -> dict[str, dict[str, float]]:
    """FP32 and INT8 ONNX Runtime latency of every model, all interleaved, plus INT8's PSNR vs FP32."""
    import onnxruntime as ort  # noqa: F401 - fail here, not halfway, when the CPU backend is missing

    width, height = (64, 36) if cfg.tiny else SIZE
    frames = synthetic_frames(1, width, height)
    backends = {(name, p): create_backend("onnx", path, precision=p, device="cpu")
                for name, path in models.items() for p in ("fp32", "int8")}
    out: dict[str, dict[str, float]] = {name: {} for name in models}
    weights = np.eye(backends[next(iter(backends))].num_styles, dtype=np.float32)[:1]
    for name in models:
        out[name]["int8_psnr_db"] = round(psnr(backends[name, "fp32"](frames, weights), backends[name, "int8"](frames, weights)), 2)
    budget = Budget(warmup=5, min_iters=5 if cfg.tiny else 50, seconds=0.2 if cfg.tiny else cfg.seconds)
    steps = {f"{n}/{p}": (("upload", "infer", "download"), backend_step(b, frames)) for (n, p), b in backends.items()}
    for key, m in measure_interleaved(steps, budget).items():
        name, precision = key.split("/")
        out[name][f"{precision}_ms"] = round(m.frame_latency_ms["p50"], 2)
    for b in backends.values():
        b.close()
    return out


def objective(r: dict[str, Any]) -> float:
    """Style plus content distance: the relative, equally weighted objective every candidate trained on."""
    return float(r["style_distance"] + r["content_distance"])


def pareto(rows: dict[str, dict[str, Any]]) -> set[str]:
    """Candidates no other beats on both best-CPU latency (FP32 or INT8) and the trained objective."""
    def key(r: dict[str, Any]) -> tuple[float, float]:
        return (min(r["fp32_ms"], r["int8_ms"]), objective(r))

    def dominates(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
        return all(x <= y for x, y in zip(a, b, strict=True)) and a != b

    return {n for n, r in rows.items() if not any(dominates(key(o), key(r)) for m, o in rows.items() if m != n)}


def shape_of(name: str) -> dict[str, Any]:
    cfg = GeneratorConfig.from_dict({**PRESETS["fast"].to_dict(), "num_styles": len(STYLES), **CANDIDATES[name]})
    g = Generator(cfg)
    return {"generator": cfg.to_dict(), "params": count_params(g), "gmacs_640x360": round(conv_gmacs(g), 3)}


def report(cfg: StudyConfig, rows: dict[str, dict[str, Any]], env: dict[str, Any]) -> str:
    """study.md: the table, its settings and its machine."""
    front = pareto(rows)
    lines = [
        "# Fast-architecture study",
        "",
        f"{len(rows)} candidates, each trained from scratch with `train/configs/arch-study.toml` "
        f"({rows[next(iter(rows))]['steps']} steps, styles {', '.join(STYLES)}); eval on {cfg.eval_photos} held-out photos; "
        f"ONNX Runtime latency p50 at {SIZE[0]}x{SIZE[1]}, {cfg.threads} threads, candidates interleaved.",
        f"Machine: {env['cpu']} ({', '.join(env['cpu_isa'])}), {env.get('cpu_count')} CPUs. "
        "Pareto: no other candidate is at least as fast (best of FP32/INT8) and as good on style + content distance "
        "(the objective all of them trained on: both relative, equal weights).",
        "",
        "| candidate | c / blocks / refine / half | params | GMACs | FP32 ms | INT8 ms | INT8 PSNR dB | nearest-style | style | content | style + content | grid ratio | train s | Pareto |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        g = r["generator"]
        lines.append(
            f"| {name} | {g['channels']} / {g['res_blocks']} / {g['refine_channels']} / {g['half_channels']} | {r['params']:,} | "
            f"{r['gmacs_640x360']:.2f} | {r['fp32_ms']:.1f} | {r['int8_ms']:.1f} | {r['int8_psnr_db']:.1f} | "
            f"{r['nearest_style_accuracy'] * 100:.0f} % | {r['style_distance']:.3f} | {r['content_distance']:.3f} | {objective(r):.3f} | "
            f"{r['grid_ratio']:.2f} | {r['train_seconds']:.0f} | {'yes' if name in front else ''} |"
        )
    return "\n".join(lines) + "\n"


def run(cfg: StudyConfig) -> dict[str, Any]:
    import torch

    torch.set_num_threads(cfg.threads)
    cfg.out.mkdir(parents=True, exist_ok=True)
    models = {name: train_at_budget(cfg.photos, cfg.out, name, CANDIDATES[name], cfg.tiny) for name in cfg.candidates}
    rows: dict[str, dict[str, Any]] = {}
    for name, path in models.items():
        info = load_model(path)[1]
        overall = quality(cfg, name, path)
        rows[name] = {**shape_of(name), **overall, "steps": info.train_config.get("steps_done", info.train_config.get("steps")),
                      "train_seconds": info.train_config.get("train_seconds", 0.0)}
    for name, figures in latency(cfg, models).items():
        rows[name].update(figures)
    env = collect_environment()
    result = {"environment": env, "styles": list(STYLES), "candidates": rows, "pareto": sorted(pareto(rows))}
    (cfg.out / "study.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (cfg.out / "study.md").write_text(report(cfg, rows, env))
    return result


def rewrite_report(cfg: StudyConfig) -> dict[str, Any]:
    path = cfg.out / "study.json"
    try:
        result: dict[str, Any] = json.loads(path.read_text())
        rows = result["candidates"]
    except (OSError, ValueError, KeyError) as e:
        raise StylecastError(f"{path}: not a study result ({e})") from e
    result["pareto"] = sorted(pareto(rows))
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    (cfg.out / "study.md").write_text(report(cfg, rows, result["environment"]))
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.arch_study", description=__doc__.split("\n\n")[0])
    p.add_argument("--photos", type=Path, default=Path("data/photos"), help="photo folder (python -m train.prepare makes one)")
    p.add_argument("--out", type=Path, default=Path("runs/arch-study"))
    p.add_argument("--candidates", default=",".join(CANDIDATES), help=f"comma list of {', '.join(CANDIDATES)}")
    p.add_argument("--eval-photos", type=int, default=20, help="held-out photos the eval measures")
    p.add_argument("--seconds", type=float, default=20.0, help="latency timing budget (all candidates interleaved)")
    p.add_argument("--tiny", action="store_true", help="seconds-long run of the whole chain (tests)")
    p.add_argument("--report-only", action="store_true", help="rewrite study.md from the study.json in --out")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    names = tuple(n for n in args.candidates.split(",") if n)
    unknown = [n for n in names if n not in CANDIDATES]
    try:
        if unknown or not names:
            raise StylecastError(f"unknown candidate(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(CANDIDATES)}")
        cfg = StudyConfig(args.photos, args.out, names, args.eval_photos, args.seconds, tiny=args.tiny)
        if args.report_only:
            result = rewrite_report(cfg)
        elif not args.photos.is_dir():
            raise StylecastError(f"photo folder not found: {args.photos}")
        else:
            result = run(cfg)
    except StylecastError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    log.info("%s", (args.out / "study.md").read_text())
    log.info("Pareto front: %s", ", ".join(result["pareto"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
