"""Prepare a training photo folder: copy and resize the images of a folder, with its MANIFEST.csv.

The photos are not part of the repository (see README, "Training data"); this makes the folder the
trainer reads from any copy of them, smaller when asked (``--short-side``), e.g. to carry the set to a
GPU machine. The manifest travels unchanged, so the provenance and licence of every file stay with it
and the trainer's recorded data digest matches the source's.

    python -m train.prepare ../shared/data/photos data/photos --short-side 256
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from realtime.errors import InputError, OutputError, StylecastError
from train.data import list_images

log = logging.getLogger(__name__)


def prepare(src: str | Path, dst: str | Path, short_side: int = 384, quality: int = 90, overwrite: bool = False) -> int:
    """Copy every image of ``src`` to ``dst`` as RGB JPEG, the short side at most ``short_side``."""
    src, dst = Path(src), Path(dst)
    files = list_images(src)
    if dst.resolve() == src.resolve():
        raise OutputError(f"{dst} is the source folder; name another output folder")
    if dst.exists() and any(dst.iterdir()) and not overwrite:
        raise OutputError(f"{dst} exists and is not empty (pass --overwrite to replace its files)")
    dst.mkdir(parents=True, exist_ok=True)
    for f in tqdm(files, desc="prepare", unit="img"):
        try:
            with Image.open(f) as im:
                rgb = im.convert("RGB")
        except OSError as e:
            raise InputError(f"cannot read image {f}: {e}") from e
        scale = short_side / min(rgb.size)
        if scale < 1:
            rgb = rgb.resize((max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale))),
                             Image.Resampling.LANCZOS)
        rgb.save(dst / f"{f.stem}.jpg", quality=quality)
    for extra in ("MANIFEST.csv", "README.md"):
        if (src / extra).is_file():
            shutil.copyfile(src / extra, dst / extra)
    return len(files)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.prepare", description=__doc__.split("\n\n")[0])
    p.add_argument("src", help="folder of photos (e.g. ../shared/data/photos)")
    p.add_argument("dst", help="output folder")
    p.add_argument("--short-side", type=int, default=384, help="resize so the short side is at most this (default 384)")
    p.add_argument("--quality", type=int, default=90, help="JPEG quality (default 90)")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty output folder")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        n = prepare(args.src, args.dst, args.short_side, args.quality, args.overwrite)
    except StylecastError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    log.info("%d images written to %s", n, args.dst)
    return 0


if __name__ == "__main__":
    sys.exit(main())
