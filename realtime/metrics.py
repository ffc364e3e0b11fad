"""Quality measures used by the product and its benchmarks: flicker, drift between precisions, style and content.

The one place for metrics: calibration's quality gate, ``stylecast bench`` and ``stylecast eval`` all
import them from here, so every figure means the same thing everywhere.

Flicker is the warping error of Lai et al. (2018, "Learning Blind Video Temporal Consistency"): the
input's optical flow (OpenCV DIS) carries output frame t-1 onto frame t, and the mean absolute
difference to output frame t is taken over pixels that are visible in both frames. Occlusions are
found by forward-backward consistency (Sundaram et al., 2010). The same measure on the input frames is
the floor any stylization is compared with, so the ratio output/input says how much flicker the
stylization adds: 1.0 would be as steady as the video itself.

The flicker and drift functions take uint8 RGB ``[H,W,3]`` frames, the runtime's host format. The
perceptual section at the end (Gram matrices, style and content distances, nearest style, grid energy)
takes torch tensors.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two uint8 images in dB (inf when identical)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM (Wang et al., 2004) of two uint8 RGB images: 11x11 Gaussian window, sigma 1.5, per channel."""
    x, y = a.astype(np.float64), b.astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(img: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(img, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return float(np.mean(num / den))


def drift(reference: Sequence[np.ndarray], test: Sequence[np.ndarray]) -> dict[str, float]:
    """How far ``test`` outputs are from ``reference`` outputs (e.g. FP16/INT8 against FP32)."""
    if len(reference) != len(test) or not reference:
        raise ValueError("drift needs two equally long, non-empty frame lists")
    psnrs = [psnr(r, t) for r, t in zip(reference, test, strict=True)]
    finite = [p for p in psnrs if np.isfinite(p)]
    return {
        # Identical frames have infinite PSNR; the mean over the others stays informative, and all-equal is
        # reported as a large finite number so JSON stays standard.
        "psnr_db": float(np.mean(finite)) if finite else 100.0,
        "psnr_min_db": float(min(finite)) if finite else 100.0,
        "ssim": float(np.mean([ssim(r, t) for r, t in zip(reference, test, strict=True)])),
        "max_abs_diff": float(
            max(np.abs(r.astype(np.int16) - t.astype(np.int16)).max() for r, t in zip(reference, test, strict=True))
        ),
    }


def _gray(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def _warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Sample ``image`` at ``x + flow(x)`` (backward warping)."""
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(image, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


@dataclass(frozen=True)
class _Correspondence:
    """Where each pixel of frame t was in frame t-1, and which pixels are visible in both."""

    flow: np.ndarray  # [H,W,2] float32, t -> t-1
    mask: np.ndarray  # [H,W] bool


class TemporalReference:
    """Optical flow and occlusion masks of an input clip, computed once and reused for every output."""

    def __init__(self, frames: Sequence[np.ndarray]) -> None:
        if len(frames) < 2:
            raise ValueError("flicker needs at least two consecutive frames")
        shapes = {f.shape for f in frames}
        if len(shapes) != 1:
            raise ValueError(f"flicker needs frames of one size, got {sorted(shapes)}")
        self.shape = frames[0].shape
        dis = cv2.DISOpticalFlow.create(cv2.DISOpticalFlow_PRESET_MEDIUM)
        grays = [_gray(f) for f in frames]
        self.pairs = [self._correspond(dis, grays[t - 1], grays[t]) for t in range(1, len(grays))]
        self.input_error = self.warping_error(frames)

    @staticmethod
    def _correspond(dis: cv2.DISOpticalFlow, prev: np.ndarray, cur: np.ndarray) -> _Correspondence:
        h, w = cur.shape
        backward = dis.calc(cur, prev, np.zeros((h, w, 2), np.float32))  # t -> t-1
        forward = dis.calc(prev, cur, np.zeros((h, w, 2), np.float32))  # t-1 -> t
        # Following the backward flow and then the forward flow must come back to the start; where it does
        # not, the pixel is occluded in one of the frames or the flow is unreliable.
        forward_at = _warp(forward, backward)
        loop = np.sum((backward + forward_at) ** 2, axis=-1)
        bound = 0.01 * (np.sum(backward**2, axis=-1) + np.sum(forward_at**2, axis=-1)) + 0.5
        gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        sx, sy = gx + backward[..., 0], gy + backward[..., 1]
        inside = (sx >= 0) & (sx <= w - 1) & (sy >= 0) & (sy <= h - 1)
        return _Correspondence(backward, (loop < bound) & inside)

    @property
    def valid_fraction(self) -> float:
        """Share of pixels used by the measure (the rest are occluded or leave the frame)."""
        return float(np.mean([p.mask.mean() for p in self.pairs]))

    def warping_error(self, frames: Sequence[np.ndarray]) -> float:
        """Mean |frame_t - warp(frame_{t-1})| over visible pixels and all pairs, on a [0,1] scale."""
        if len(frames) != len(self.pairs) + 1:
            raise ValueError(f"expected {len(self.pairs) + 1} frames, got {len(frames)}")
        total, count = 0.0, 0
        for t, pair in enumerate(self.pairs, start=1):
            if frames[t].shape != self.shape:
                raise ValueError(f"frame {t} is {frames[t].shape}, the reference clip is {self.shape}")
            warped = _warp(frames[t - 1], pair.flow).astype(np.float32)
            diff = np.abs(frames[t].astype(np.float32) - warped).mean(axis=-1)
            total += float(diff[pair.mask].sum())
            count += int(pair.mask.sum())
        return total / max(count, 1) / 255.0

    def flicker(self, outputs: Sequence[np.ndarray]) -> dict[str, float | None]:
        error = self.warping_error(outputs)
        # A perfectly still input has no flicker to compare with; the ratio is then undefined.
        ratio = error / self.input_error if self.input_error > 0 else None
        return {"warping_error": error, "input_warping_error": self.input_error, "ratio_to_input": ratio}


# --- Perceptual and periodic-artifact measures (``stylecast eval``) ------------------------------------
#
# These take torch tensors: VGG feature maps ``[B,C,H,W]`` for the style and content distances, and
# images ``[B,3,H,W]`` in [0,1] for the grid energy. The trainer's grid penalty is ``grid_energy`` itself,
# so the figure ``stylecast eval`` reports is the quantity the trainer minimizes.


def gram(features: torch.Tensor) -> torch.Tensor:
    """``[B,C,H,W] -> [B,C,C]``: ``F Fᵀ / (C·H·W)``, so layers and image sizes are comparable."""
    b, c, h, w = features.shape
    f = features.float().reshape(b, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)


def style_distance(out_grams: Mapping[str, torch.Tensor], painting_grams: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """``[B,N]``: ``Σ_l ‖G_l(out) − G_l(painting)‖²_F / ‖G_l(painting)‖²_F`` of B outputs to N paintings.

    Dividing by the painting's own Gram norm makes every layer count alike (relu4_3's raw distance is
    orders of magnitude above relu1_2's), and 1.0 per layer is the distance of an all-zero output.
    """
    if set(out_grams) != set(painting_grams):
        raise ValueError(f"layers differ: {sorted(out_grams)} against {sorted(painting_grams)}")
    total = torch.zeros(())
    for layer, g in out_grams.items():
        target = painting_grams[layer]  # [N,C,C]
        d = ((g[:, None] - target[None]) ** 2).sum(dim=(2, 3))
        total = total + d / (target**2).sum(dim=(1, 2))[None]
    return total


def content_distance(out_features: torch.Tensor, photo_features: torch.Tensor) -> torch.Tensor:
    """``[B]``: ``mean((φ(out) − φ(photo))²) / mean(φ(photo)²)`` per image (0 = the photo's features)."""
    diff = (out_features.float() - photo_features.float()).pow(2).flatten(1).mean(dim=1)
    return diff / photo_features.float().pow(2).flatten(1).mean(dim=1).clamp_min(1e-12)


def nearest_style(distances: torch.Tensor, own: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """``[B]`` bool: output b is strictly closer to painting ``own[b]`` than to every other painting."""
    own_index = torch.as_tensor(own, dtype=torch.long).reshape(-1, 1)
    mine = distances.gather(1, own_index)
    others = distances.scatter(1, own_index, float("inf"))
    return (mine < others).all(dim=1)


def grid_energy(x: torch.Tensor, period: int = 4, window: int = 32) -> torch.Tensor:
    """Energy of a pattern that repeats every ``period`` pixels, measured in ``window``-sized tiles.

    A stride-``period`` stem and a sub-pixel upsampling give each of the period x period output
    phases its own weights, and any systematic difference between them prints a grid. A box filter
    one period wide removes that grid exactly, so the residual holds it (and the fine texture);
    averaging the residual over each phase inside a tile cancels the texture, which does not repeat
    on the grid, and leaves the grid, whose squared amplitude is the energy (a mean over the batch).
    Natural images score near 0. Differentiable: the trainer's grid penalty is this function.
    """
    b, c, h, w = x.shape
    window = min(window, h // period * period, w // period * period)  # small crops: one smaller tile
    h, w = h // window * window, w // window * window
    x = x[..., :h, :w].float()
    lo, hi = (period - 1) // 2, period // 2
    residual = x - F.avg_pool2d(F.pad(x, (lo, hi, lo, hi), mode="replicate"), period, stride=1)
    cells = window // period
    tiles = residual.reshape(b, c, h // window, cells, period, w // window, cells, period)
    return tiles.mean(dim=(3, 6)).pow(2).mean()
