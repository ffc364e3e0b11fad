"""A camera clip made from one real photo, for flicker measurements: a slow pan and zoom with sensor noise.

The bundled clip is an animation: flat colour and clean edges. Flicker on camera footage comes
mostly from what an animation lacks: fine natural texture moving under the lens and noise that
changes in every frame. With no licensed footage at hand, this makes that case from a licensed photo
and writes it as H.264, for ``stylecast eval --clip`` and ``stylecast bench --clip``::

    python -m benchmarks.pan_clip photo.jpg -o pan.mp4 --size 640x360 --frames 48

The motion is smooth sub-pixel pan and zoom (bilinear resampling), so the optical flow the warping
error uses has a well-defined answer; the noise is i.i.d. Gaussian per frame and pixel, like a
camera's at moderate gain.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from realtime.argtypes import finite_float, positive_int, size_wxh
from realtime.errors import InputError, StylecastError
from realtime.modelfile import temp_path_beside
from realtime.outputs import check_output

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PanConfig:
    size: tuple[int, int] = (640, 360)
    frames: int = 48
    fps: int = 24
    #: horizontal travel over the clip, as a share of the output width
    pan: float = 0.25
    #: zoom at the last frame relative to the first
    zoom: float = 1.1
    #: standard deviation of the per-frame noise, in 0..255 levels
    noise: float = 3.0
    crf: int = 16
    seed: int = 0


def read_photo(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.asarray(ImageOps.exif_transpose(im).convert("RGB"), dtype=np.float32)
    except (OSError, UnidentifiedImageError) as e:
        raise InputError(f"cannot read the photo {path}: {e}") from None


def pan_frames(photo: np.ndarray, cfg: PanConfig) -> list[np.ndarray]:
    """The clip's frames, uint8 RGB ``[H, W, 3]``: a window that pans right and zooms in over the photo."""
    width, height = cfg.size
    ph, pw = photo.shape[:2]
    # The first frame's window, travel included, must fit inside the photo.
    scale0 = min(pw / (width * (1 + cfg.pan)), ph / height)
    if scale0 < 0.5:
        raise InputError(f"the photo ({pw}x{ph}) is too small for a {width}x{height} clip with this pan; "
                         "pass a larger photo or a smaller --size")
    rng = np.random.default_rng(cfg.seed)
    frames = []
    for i in range(cfg.frames):
        t = i / max(cfg.frames - 1, 1)
        scale = scale0 / (1 + (cfg.zoom - 1) * t)  # photo pixels per output pixel
        cx = pw / 2 + (t - 0.5) * cfg.pan * width * scale0
        cy = ph / 2
        # output (x, y) -> photo (cx + (x - w/2) * scale, cy + (y - h/2) * scale)
        m = np.array([[scale, 0, cx - width / 2 * scale], [0, scale, cy - height / 2 * scale]], np.float32)
        frame = cv2.warpAffine(photo, m, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REFLECT)
        frame = frame + cfg.noise * rng.standard_normal(frame.shape, dtype=np.float32)
        frames.append(np.clip(frame + 0.5, 0, 255).astype(np.uint8))
    return frames


def write_clip(frames: list[np.ndarray], out: Path, cfg: PanConfig) -> None:
    """H.264 (yuv420p) at ``cfg.fps``, written to a temporary name and renamed when complete."""
    tmp = temp_path_beside(out)
    try:
        with av.open(str(tmp), "w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=Fraction(cfg.fps))
            stream.width, stream.height = cfg.size
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": str(cfg.crf), "preset": "medium"}
            for image in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)


def make_pan_clip(photo: Path, out: Path, cfg: PanConfig = PanConfig(), overwrite: bool = False) -> Path:
    check_output(out, [photo], overwrite)
    write_clip(pan_frames(read_photo(photo), cfg), out, cfg)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.pan_clip", description=__doc__.split("\n\n")[0])
    p.add_argument("photo", type=Path)
    p.add_argument("-o", "--output", type=Path, required=True, help="the clip to write (.mp4)")
    p.add_argument("--size", type=size_wxh, default=PanConfig.size, help="WIDTHxHEIGHT of the clip, even sides")
    p.add_argument("--frames", type=positive_int, default=PanConfig.frames)
    p.add_argument("--noise", type=finite_float, default=PanConfig.noise, help="per-frame noise, 0..255 levels")
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.frames < 2 or args.noise < 0 or args.size[0] % 2 or args.size[1] % 2:
            raise InputError("--frames must be at least 2, --noise at least 0, and the sides even (H.264 4:2:0)")
        cfg = PanConfig(size=args.size, frames=args.frames, noise=args.noise)
        out = make_pan_clip(args.photo, args.output, cfg, args.overwrite)
    except StylecastError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    log.info("wrote %s (%d frames, %dx%d)", out, cfg.frames, *cfg.size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
