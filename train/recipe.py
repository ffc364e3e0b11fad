"""The one-call training recipe: both shipped models, their logs and their evaluations, in one window.

Made for a lent GPU with a fixed time budget (one device call of at most 9 minutes): the fast and the
quality model train at the same time on the one GPU (each alone leaves most of it idle: the fast
generator is tiny and VGG's small batches do not fill an H100), each bounded by ``--minutes`` of
wall-clock time with its learning-rate schedule following the clock, so the step count adapts to
the throughput the machine really has. Then ``stylecast eval`` measures each on the held-out photos.
SIGTERM or Ctrl-C is passed on to the trainers, which save a checkpoint and a model, and the recipe
still collects what exists.

    python -m train.recipe --data .carry/photos --out "$OUT" --minutes 6.5 --device cuda

``--tiny`` runs the same chain in seconds on a CPU (tests, and a dry run before spending GPU time).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MODELS = ("fast", "quality")
#: Overrides that make the whole chain run in seconds on a CPU.
TINY = ["--crop", "32", "--style-crop", "64", "--batch-size", "1", "--channels", "8", "--res-blocks", "1",
        "--steps", "3", "--gan-start", "1", "--log-every", "1", "--sample-every", "1000000",
        "--checkpoint-every", "1000000"]


@dataclass(frozen=True)
class RecipeConfig:
    data: Path
    out: Path
    minutes: float = 6.5
    device: str = "cuda"
    tiny: bool = False


def config_path(model: str) -> Path:
    return Path(str(resources.files("train") / "configs" / f"{model}.toml"))


def _train_command(cfg: RecipeConfig, model: str) -> list[str]:
    cmd = [sys.executable, "-m", "train", "--config", str(config_path(model)), "--content", str(cfg.data),
           "--out", str(cfg.out / model), "--device", cfg.device, "--max-minutes", str(cfg.minutes), "--overwrite"]
    return cmd + TINY if cfg.tiny else cmd


def _forward_signals(procs: list[subprocess.Popen[bytes]]) -> None:
    def handler(signum: int, frame: Any) -> None:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def train_all(cfg: RecipeConfig) -> dict[str, int]:
    """Train both models at once; returns each trainer's exit code (130: stopped early, model saved)."""
    cfg.out.mkdir(parents=True, exist_ok=True)
    procs = {}
    for model in MODELS:
        logf = open(cfg.out / f"{model}.train.log", "wb")  # noqa: SIM115 - the child owns it until it exits
        procs[model] = subprocess.Popen(_train_command(cfg, model), stdout=logf, stderr=subprocess.STDOUT)
    _forward_signals(list(procs.values()))
    return {model: p.wait() for model, p in procs.items()}


def evaluate_all(cfg: RecipeConfig) -> dict[str, Any]:
    from benchmarks.evaluate import EvalConfig, evaluate

    results: dict[str, Any] = {}
    for model in MODELS:
        path = cfg.out / model / "model.stylecast"
        if not path.is_file():
            results[model] = {"error": "no model was written"}
            continue
        # No clip: the GPU image has no PyAV; flicker is measured on the CPU afterwards.
        ecfg = EvalConfig(photos=cfg.data, out=cfg.out / model / "eval", model=path, heldout=True, clips=(),
                          device=cfg.device, quick=cfg.tiny, overwrite=True)
        results[model] = evaluate(ecfg)
    return results


def run(cfg: RecipeConfig) -> dict[str, Any]:
    t0 = time.monotonic()
    codes = train_all(cfg)
    trained_s = time.monotonic() - t0
    evals = evaluate_all(cfg)
    summary = {
        "minutes_per_model": cfg.minutes,
        "train_exit_codes": codes,
        "train_wall_s": round(trained_s, 1),
        "total_wall_s": round(time.monotonic() - t0, 1),
        "eval": {m: e.get("overall", e) if isinstance(e, dict) else e for m, e in evals.items()},
    }
    for model in MODELS:
        log_csv = cfg.out / model / "log.csv"
        if log_csv.is_file():
            shutil.copyfile(log_csv, cfg.out / f"{model}.log.csv")
    (cfg.out / "recipe.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.recipe", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="photo folder (python -m train.prepare makes one)")
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "runs/recipe")))
    p.add_argument("--minutes", type=float, default=6.5, help="training minutes per model (both run at once)")
    p.add_argument("--device", default="cuda")
    p.add_argument("--tiny", action="store_true", help="seconds-long dry run of the whole chain (CPU)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.data.is_dir():
        print(f"error: photo folder not found: {args.data}", file=sys.stderr)
        return 2
    summary = run(RecipeConfig(args.data, args.out, args.minutes, args.device, args.tiny))
    log.info(json.dumps(summary, indent=2, default=str))
    return 0 if all(c in (0, 130) for c in summary["train_exit_codes"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
