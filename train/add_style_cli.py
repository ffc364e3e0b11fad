"""``stylecast add-style``: kept apart from ``train.add_style`` so building the CLI parser imports no torch."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from realtime.argtypes import finite_float, positive_int
from train.style_recipe import FitRecipe


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "add-style",
        help="add paintings as new styles of a model (minutes per style on a CPU)",
        description="Fit each painting as a new style of a model: one more (gamma, beta) row per norm layer, "
        "the rest of the network frozen. Writes a new model file with all the old styles plus the new ones, "
        "and a sample grid beside it; the input model is not modified. Ctrl-C saves what has been fitted.",
    )
    p.add_argument("paintings", nargs="+", type=Path, metavar="PAINTING", help="painting image(s), RGB or grayscale")
    p.add_argument("--model", type=Path, help="the .stylecast model to extend (default: the bundled model)")
    p.add_argument("--name", action="append", dest="names", metavar="NAME",
                   help="style name, once per painting in order (default: the file names)")
    p.add_argument("-o", "--output", type=Path, required=True, help="the new model file (.stylecast)")
    recipe = FitRecipe()
    p.add_argument("--steps", type=positive_int, default=recipe.steps, help=f"fitting steps per style (default {recipe.steps})")
    p.add_argument("--max-minutes", type=finite_float, default=recipe.max_minutes,
                   help="time limit of each style's fit: a slower machine fits in fewer steps "
                   f"(0: none; default {recipe.max_minutes:g})")
    p.add_argument("--size", type=positive_int, default=recipe.size,
                   help=f"side of the photo crops it fits on, 32-256 px (default {recipe.size})")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where fitting runs")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output (and its sample grid)")
    p.set_defaults(func=cmd_add_style)


def cmd_add_style(args: argparse.Namespace) -> int:
    from realtime.modelfile import load_model
    from train.add_style import add_style, samples_path

    recipe = FitRecipe(steps=args.steps, size=args.size, max_minutes=args.max_minutes)
    out = add_style(args.model, args.paintings, args.names, args.output, recipe=recipe, device=args.device,
                    overwrite=args.overwrite, progress=not args.quiet)
    _, info = load_model(out)
    print(f"wrote {out} ({len(info.style_names)} styles: {', '.join(info.style_names)}) and {samples_path(out)}")
    return 0
