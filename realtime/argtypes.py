"""Argument types shared by every sub-command's parser: one definition, one wording of each error."""

from __future__ import annotations

import argparse
import math

from realtime.errors import InputError

#: longest frame side taken (H.264 and VP9 encoders stop at 16384)
MAX_SIDE = 16384
#: most pixels one inference call may hold (frame x batch): one 8K frame; a full-resolution
#: activation of the bundled model at this size is already 4.2 GB
MAX_CALL_PIXELS = 7680 * 4320


def size_wxh(text: str) -> tuple[int, int]:
    w, sep, h = text.lower().partition("x")
    # isdecimal, not isdigit: int() refuses digits such as "²".
    if not sep or not w.isdecimal() or not h.isdecimal() or int(w) < 1 or int(h) < 1:
        raise argparse.ArgumentTypeError(f"size must look like 640x360, got {text!r}")
    width, height = int(w), int(h)
    if max(width, height) > MAX_SIDE or width * height > MAX_CALL_PIXELS:
        raise argparse.ArgumentTypeError(
            f"size {text} is over the limit: sides up to {MAX_SIDE} and at most 7680x4320 pixels in all"
        )
    return width, height


def check_batch(batch: int, size: tuple[int, int] | None) -> None:
    """Refuse a batch of frames of ``size`` that would not fit in memory (``MAX_CALL_PIXELS``)."""
    if size is not None and batch * size[0] * size[1] > MAX_CALL_PIXELS:
        raise InputError(
            f"--batch {batch} at {size[0]}x{size[1]} is over the limit of 7680x4320 pixels per call; "
            f"use --batch {max(1, MAX_CALL_PIXELS // (size[0] * size[1]))} or less"
        )


def positive_int(text: str) -> int:
    if not text.isdecimal() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return int(text)


def unit_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number between 0 and 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def finite_float(text: str) -> float:
    """Any real number; NaN and infinities are refused (a NaN threshold would silently pass every check)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value
