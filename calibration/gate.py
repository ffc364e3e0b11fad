"""The INT8 quality gate: compare the INT8 graph with FP32 on frames calibration never saw.

Figures: PSNR and SSIM of INT8 against FP32 outputs on the held-out frames (each with one style, the
styles cycled), and temporal flicker on a short consecutive clip, as the optical-flow warping error of
``realtime.metrics`` for both precisions. When a figure misses its threshold, layers go back to FP32
greedily in order of their measured sensitivity (how much of the failing figure, PSNR first, then
SSIM, then flicker, the model regains when that layer alone stays FP32) until the gate passes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from calibration.frames import FrameSet
from calibration.quantize import cycled_styles, model_feeds
from realtime.metrics import TemporalReference, drift
from realtime.ort_session import open_session

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GateThresholds:
    min_psnr_db: float = 30.0
    min_ssim: float = 0.95
    #: INT8 may add this much to FP32's warping error on the clip ([0,1] scale; 0.002 is half a grey
    #: level of 255). Absolute, not relative: a steady FP32 output (an untrained model's, a still
    #: scene's) would make any relative bound meaningless. Measured on the first trained default model,
    #: all-INT8 added 0.0034 (+40% over FP32's 0.0086), mostly from the last sub-resolution conv.
    max_flicker_increase: float = 0.002

    def __post_init__(self) -> None:
        # NaN compares false with everything: a NaN threshold would pass every graph unchecked.
        if not all(math.isfinite(v) for v in (self.min_psnr_db, self.min_ssim, self.max_flicker_increase)):
            raise ValueError(f"gate thresholds must be finite numbers, got {self}")


@dataclass(frozen=True)
class GateFigures:
    psnr_db: float
    psnr_min_db: float
    ssim: float
    flicker_fp32: float | None = None
    flicker_int8: float | None = None

    @property
    def flicker_increase(self) -> float | None:
        if self.flicker_fp32 is None or self.flicker_int8 is None:
            return None
        return self.flicker_int8 - self.flicker_fp32

    def failures(self, th: GateThresholds) -> list[str]:
        out = []
        if self.psnr_db < th.min_psnr_db:
            out.append(f"PSNR {self.psnr_db:.2f} dB < {th.min_psnr_db} dB")
        if self.ssim < th.min_ssim:
            out.append(f"SSIM {self.ssim:.4f} < {th.min_ssim}")
        inc = self.flicker_increase
        if inc is not None and inc > th.max_flicker_increase:
            out.append(f"flicker +{inc:.4f} > +{th.max_flicker_increase}")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "flicker_increase": self.flicker_increase}


def stylize(session: Any, frames: Sequence[np.ndarray], weights: np.ndarray) -> list[np.ndarray]:
    """uint8 RGB outputs of an ONNX generator session, frame i with style-weight row i."""
    out = []
    for frame, w in zip(frames, weights, strict=True):
        y = session.run(None, model_feeds(frame, w))[0][0].transpose(1, 2, 0)
        out.append(np.clip(y * 255.0 + 0.5, 0, 255).astype(np.uint8))
    return out


class Gate:
    """FP32 reference outputs computed once; ``measure`` judges one candidate INT8 graph against them."""

    def __init__(self, fp32_path: Path, frames: FrameSet, num_styles: int) -> None:
        fp32 = open_session(fp32_path)
        self.frames = frames
        self.weights = cycled_styles(num_styles, len(frames.held_out))
        self.reference = stylize(fp32, frames.held_out, self.weights)
        # Flicker is judged on an even blend of all styles: the one setting every norm row contributes to.
        self.clip_weights = np.full((len(frames.clip), num_styles), 1.0 / num_styles, np.float32)
        self.temporal = TemporalReference(list(frames.clip)) if len(frames.clip) >= 2 else None
        self.flicker_fp32 = self._flicker(fp32)

    def _flicker(self, session: Any) -> float | None:
        if self.temporal is None:
            return None
        return self.temporal.warping_error(stylize(session, self.frames.clip, self.clip_weights))

    def measure(self, int8_path: Path) -> GateFigures:
        session = open_session(int8_path)
        d = drift(self.reference, stylize(session, self.frames.held_out, self.weights))
        return GateFigures(d["psnr_db"], d["psnr_min_db"], d["ssim"], self.flicker_fp32, self._flicker(session))


@dataclass(frozen=True)
class GateResult:
    kept_fp: tuple[str, ...]
    figures: GateFigures
    passed: bool
    #: every configuration measured: (layers kept FP32, figures)
    trials: tuple[tuple[tuple[str, ...], GateFigures], ...] = field(default=())


def choose_fp_layers(
    measure: Callable[[tuple[str, ...]], GateFigures],
    candidates: Sequence[str],
    thresholds: GateThresholds,
) -> GateResult:
    """Keep the fewest candidate layers in FP32 that let ``measure`` pass the thresholds (greedy).

    ``measure(kept_fp)`` quantizes every candidate except ``kept_fp`` and returns the figures.
    """
    measured: dict[tuple[str, ...], GateFigures] = {}

    def run(kept: tuple[str, ...]) -> GateFigures:
        if kept not in measured:
            measured[kept] = measure(kept)
            log.info("FP32 layers %s: %s", list(kept) or "none", _summary(measured[kept]))
        return measured[kept]

    def result(kept: tuple[str, ...]) -> GateResult:
        figures = measured[kept]
        return GateResult(kept, figures, not figures.failures(thresholds), tuple(measured.items()))

    first = run(())
    if not first.failures(thresholds) or not candidates:
        return result(())
    log.info("gate failed (%s); measuring each layer's sensitivity", "; ".join(first.failures(thresholds)))
    regained = {name: _score(run((name,)), first, thresholds) for name in candidates}
    kept: tuple[str, ...] = ()
    for name in sorted(candidates, key=lambda n: regained[n], reverse=True):
        kept = (*kept, name)
        if not run(kept).failures(thresholds):
            break
    return result(kept)


def _score(f: GateFigures, first: GateFigures, th: GateThresholds) -> float:
    """How much keeping one layer in FP32 improves the criterion the all-INT8 graph failed first."""
    if first.psnr_db < th.min_psnr_db:
        return f.psnr_db
    if first.ssim < th.min_ssim:
        return f.ssim
    return -(f.flicker_increase or 0.0)


def _summary(f: GateFigures) -> str:
    flicker = "" if f.flicker_increase is None else f", flicker {f.flicker_increase:+.4f}"
    return f"PSNR {f.psnr_db:.2f} dB (min {f.psnr_min_db:.2f}), SSIM {f.ssim:.4f}{flicker}"
