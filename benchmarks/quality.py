"""Temporal flicker of a set of outputs on a clip, as the bench and the eval report it."""

from __future__ import annotations

from typing import Any

import numpy as np

from realtime import metrics


def flicker_summary(
    reference: metrics.TemporalReference, outputs: dict[str, list[np.ndarray]], model: str
) -> dict[str, Any]:
    per_style = {name: reference.flicker(outs) for name, outs in outputs.items()}
    error = float(np.mean([f["warping_error"] for f in per_style.values()]))
    return {
        "model": model,
        "styles": list(outputs),
        "frames": len(reference.pairs) + 1,
        "warping_error": error,
        "input_warping_error": reference.input_error,
        "ratio_to_input": error / reference.input_error if reference.input_error > 0 else None,
        "per_style": {name: f["warping_error"] for name, f in per_style.items()},
    }
