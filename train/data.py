"""Training data: style paintings, content photos (and optionally video frames), random crops.

The data sets here are small (a few paintings, a dozen photos), so everything is decoded once and
kept as uint8 tensors on the training device; a batch is a set of random scaled crops and flips.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from realtime.errors import InputError
from realtime.sources import MAX_IMAGE_PIXELS

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def list_images(folder: str | Path) -> list[Path]:
    p = Path(folder)
    if not p.is_dir():
        raise InputError(f"image folder not found: {p}")
    files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"no images in {p}")
    return files


@contextlib.contextmanager
def open_limited(path: Path) -> Iterator[Image.Image]:
    """``Image.open`` that refuses images over ``MAX_IMAGE_PIXELS`` in one line (an InputError), in
    place of Pillow's decompression-bomb warning or traceback."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the limit below says it
            with Image.open(path) as src:
                if src.width * src.height > MAX_IMAGE_PIXELS:
                    raise InputError(f"image {path} is {src.width}x{src.height}, over the {MAX_IMAGE_PIXELS / 1e6:.0f}-megapixel limit")
                yield src
    except Image.DecompressionBombError:
        raise InputError(f"image {path} is over the {MAX_IMAGE_PIXELS / 1e6:.0f}-megapixel limit") from None


def read_rgb(path: Path, max_side: int | None = None) -> torch.Tensor:
    """uint8 ``[3,H,W]`` as the image is shown (EXIF orientation applied), optionally downscaled so
    the long side is at most ``max_side``; images over ``MAX_IMAGE_PIXELS`` are refused."""
    try:
        with open_limited(path) as src:
            im = ImageOps.exif_transpose(src).convert("RGB")
        if max_side and max(im.size) > max_side:
            s = max_side / max(im.size)
            im = im.resize((max(1, round(im.width * s)), max(1, round(im.height * s))), Image.Resampling.LANCZOS)
        arr = np.asarray(im)
    except OSError as e:
        raise InputError(f"cannot read image {path}: {e}") from e
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)


def video_frames(path: str | Path, every: int = 5, max_side: int = 640) -> list[torch.Tensor]:
    import av

    frames = []
    try:
        with av.open(str(path)) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if i % every == 0:
                    img = frame.to_image()
                    if max(img.size) > max_side:
                        s = max_side / max(img.size)
                        img = img.resize((round(img.width * s), round(img.height * s)), Image.Resampling.LANCZOS)
                    frames.append(torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1))
    except av.FFmpegError as e:
        raise InputError(f"cannot decode {path}: {e}") from e
    return frames


@dataclass(frozen=True)
class StyleSet:
    names: list[str]
    images: list[torch.Tensor]  # uint8 [3,H,W], long side = style_crop
    sha256: list[str]


def load_styles(folder: str | Path, side: int) -> StyleSet:
    files = list_images(folder)
    return StyleSet(
        names=[f.stem for f in files],
        images=[read_rgb(f, side) for f in files],
        sha256=[hashlib.sha256(f.read_bytes()).hexdigest() for f in files],
    )


def split_group(path: Path) -> str:
    """The unit of the held-out split: extra crops of one wallpaper (``<stem>_c<k>``) share their parent's."""
    return re.sub(r"_c\d+$", "", path.stem)


def is_heldout(path: Path, fraction: float) -> bool:
    """A fixed, content-free rule: the same file name is held out on every machine and in every run."""
    digest = hashlib.sha256(split_group(path).encode()).hexdigest()
    return int(digest[:8], 16) < fraction * 0x1_0000_0000


def split_content(folder: str | Path, holdout: tuple[str, ...], fraction: float = 0.0) -> tuple[list[Path], list[Path]]:
    """(train, held-out) photo files; held-out files never enter training.

    A photo is held out when its stem is in ``holdout`` or when the hash rule picks it for the
    ``fraction`` held-out share; crops of one wallpaper always land on the same side.
    """
    files = list_images(folder)
    held = [f for f in files if f.stem in holdout or (fraction > 0 and is_heldout(f, fraction))]
    train = [f for f in files if f not in held]
    if not train:
        raise InputError(f"every image in {folder} is held out; nothing left to train on")
    return train, held


def folder_digest(folder: str | Path) -> str:
    """SHA-256 of the folder's ``MANIFEST.csv`` when it has one, else of its sorted file names and sizes."""
    p = Path(folder)
    manifest = p / "MANIFEST.csv"
    if manifest.is_file():
        return hashlib.sha256(manifest.read_bytes()).hexdigest()
    listing = "\n".join(f"{f.name}\t{f.stat().st_size}" for f in list_images(p))
    return hashlib.sha256(listing.encode()).hexdigest()


class CropSampler:
    """Random scaled crops with horizontal flips from a list of uint8 images kept on ``device``."""

    def __init__(self, images: list[torch.Tensor], crop: int, device: torch.device, seed: int) -> None:
        self.images = [im.to(device) for im in images]
        self.crop = crop
        self.device = device
        self.rng = np.random.default_rng(seed)

    def _one(self, im: torch.Tensor) -> torch.Tensor:
        _, h, w = im.shape
        # Random scale: a crop of 1x to 2x the target size is resized down, so textures and objects
        # appear at several sizes and the model does not learn one fixed scale.
        side = int(min(h, w, self.crop * self.rng.uniform(1.0, 2.0)))
        y = int(self.rng.integers(0, h - side + 1))
        x = int(self.rng.integers(0, w - side + 1))
        patch = im[:, y : y + side, x : x + side].float()[None] / 255.0
        patch = F.interpolate(patch, size=(self.crop, self.crop), mode="bilinear", antialias=True, align_corners=False)
        if self.rng.random() < 0.5:
            patch = patch.flip(-1)
        return patch[0]

    def sample(self, n: int, indices: list[int] | None = None) -> torch.Tensor:
        idx = indices if indices is not None else list(self.rng.integers(0, len(self.images), n))
        return torch.stack([self._one(self.images[i]) for i in idx]).clamp_(0, 1)


def sample_style_weights(n: int, num_styles: int, mix_prob: float, rng: np.random.Generator,
                         one_hot_probs: np.ndarray | None = None) -> torch.Tensor:
    """One-hot styles (drawn by ``one_hot_probs``, uniformly if None), and with probability ``mix_prob``
    a random mixture of two or more styles."""
    w = np.zeros((n, num_styles), np.float32)
    for b in range(n):
        if rng.random() < mix_prob and num_styles > 1:
            k = int(rng.integers(2, min(3, num_styles) + 1))
            chosen = rng.choice(num_styles, size=k, replace=False)
            w[b, chosen] = rng.dirichlet(np.ones(k))
        else:
            # The uniform draw stays rng.integers, so runs without a focus repeat bit for bit.
            style = rng.integers(num_styles) if one_hot_probs is None else rng.choice(num_styles, p=one_hot_probs)
            w[b, int(style)] = 1.0
    return torch.from_numpy(w)
