"""The exporter: a stylecast generator as ONNX (what ONNX Runtime, the INT8 calibrator and TensorRT
consume) or TorchScript, each checked against eager torch. ``stylecast export`` (``realtime.artifact_commands``)
offers these and, through ``realtime.artifacts``, the INT8 graph and TensorRT engines.

The ONNX graph takes ``frames [B,3,H,W]`` float32 in [0,1] and ``style_weights [B,N]`` and returns
``stylized [B,3,H,W]``; batch, height and width are dynamic. The model's style names and file hash
go into the ONNX metadata so a runtime can check that an ONNX file belongs to the model it was given.
Every ONNX and TorchScript export checks itself against eager torch on several frame sizes, odd ones
included, and fails rather than hand over a graph that computes something else.
"""

from __future__ import annotations

import io
import json
import logging
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from realtime.errors import ModelError
from realtime.model import MIN_SIDE, Generator
from realtime.modelfile import ModelInfo, atomic_write_bytes

log = logging.getLogger(__name__)

OPSET = 17
#: the newest opset torch's TorchScript-based ONNX exporter writes (InstanceNormalization and the
#: dynamic padding need at least OPSET)
MAX_OPSET = 20
INPUT_NAMES = ("frames", "style_weights")
OUTPUT_NAME = "stylized"
#: (batch, height, width) the parity check runs: the smallest side, odd sides, a batch, the 360p target
PARITY_SHAPES = ((1, MIN_SIDE, MIN_SIDE), (1, 17, 31), (2, 37, 22), (1, 360, 640))
#: most absolute difference allowed between an export and eager torch, on the [0,1] output scale
PARITY_TOLERANCE = 1e-3


def export_onnx(generator: Generator, info: ModelInfo, path: Path | str, opset: int = OPSET) -> Path:
    """Write ``generator`` as ONNX with dynamic batch/height/width and the model's metadata."""
    import onnx

    if not OPSET <= opset <= MAX_OPSET:
        raise ModelError(f"ONNX opset {opset} is outside the supported range {OPSET}..{MAX_OPSET}")
    path = Path(path)
    n = generator.cfg.num_styles
    m = generator.cfg.multiple
    # A sample whose sides are not multiples of the padding factor keeps the pad branch in the trace.
    frames = torch.rand(1, 3, 4 * m + 1, 6 * m + 3)
    weights = torch.full((1, n), 1.0 / n)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # The tracer warns about the shape arithmetic of the padding; it is recorded as graph ops.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            generator.eval(),
            (frames, weights),
            buf,  # type: ignore[arg-type]  # the TorchScript exporter writes file objects too
            input_names=list(INPUT_NAMES),
            output_names=[OUTPUT_NAME],
            dynamic_axes={
                "frames": {0: "batch", 2: "height", 3: "width"},
                "style_weights": {0: "batch"},
                OUTPUT_NAME: {0: "batch", 2: "height", 3: "width"},
            },
            opset_version=opset,
            dynamo=False,
        )
    proto = onnx.load_from_string(buf.getvalue())
    meta = {
        "stylecast_model_sha256": info.sha256,
        "stylecast_styles": json.dumps(info.style_names),
        "stylecast_arch": json.dumps(generator.cfg.to_dict()),
    }
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "stylecast"
    atomic_write_bytes(path, proto.SerializeToString())
    log.info("exported %s (opset %d)", path, opset)
    return path


def _parity_inputs(num_styles: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for b, h, w in PARITY_SHAPES:
        frames = torch.rand(b, 3, h, w, generator=g)
        # Random blends, different per sample: the style weights must reach every norm of every sample.
        weights = torch.softmax(3.0 * torch.randn(b, num_styles, generator=g), dim=1)
        out.append((frames, weights))
    return out


def check_parity(generator: Generator, run: Callable[[torch.Tensor, torch.Tensor], np.ndarray], what: str) -> float:
    """Largest |export - eager torch| over ``PARITY_SHAPES``; raises ModelError above ``PARITY_TOLERANCE``."""
    worst = 0.0
    for frames, weights in _parity_inputs(generator.cfg.num_styles):
        with torch.no_grad():
            expected = generator.eval()(frames, weights).numpy()
        got = run(frames, weights)
        if got.shape != expected.shape:
            raise ModelError(f"{what} returns shape {got.shape} for input {tuple(frames.shape)}, torch {expected.shape}")
        err = float(np.abs(got - expected).max())
        log.debug("%s parity at %s: max abs err %.2e", what, tuple(frames.shape), err)
        if not err <= PARITY_TOLERANCE:  # also catches NaN
            raise ModelError(
                f"{what} differs from torch by {err:.2e} (> {PARITY_TOLERANCE}) at input {tuple(frames.shape)}"
            )
        worst = max(worst, err)
    return worst


def verify_onnx(generator: Generator, path: Path | str) -> float:
    """Run ``path`` in ONNX Runtime against eager torch; the worst max-abs error, or ModelError."""
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own untyped errors for bad files
        raise ModelError(f"onnxruntime cannot load {path}: {str(e).splitlines()[0]}") from None

    def run(frames: torch.Tensor, weights: torch.Tensor) -> np.ndarray:
        return session.run(None, {INPUT_NAMES[0]: frames.numpy(), INPUT_NAMES[1]: weights.numpy()})[0]

    return check_parity(generator, run, f"ONNX export {path}")


def export_torchscript(generator: Generator, info: ModelInfo, path: Path | str) -> Path:
    """Trace the generator to TorchScript (for C++/libtorch hosts); style names ride along as extra files."""
    path = Path(path)
    n = generator.cfg.num_styles
    sample = (torch.rand(1, 3, 4 * generator.cfg.multiple + 1, 6 * generator.cfg.multiple + 3), torch.full((1, n), 1.0 / n))
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the same shape-arithmetic tracer warnings as the ONNX export
        traced = torch.jit.trace(generator.eval(), sample, check_trace=False)
    buf = io.BytesIO()
    extra = {"stylecast_model_sha256": info.sha256, "stylecast_styles": json.dumps(info.style_names)}
    torch.jit.save(traced, buf, _extra_files=extra)
    atomic_write_bytes(path, buf.getvalue())
    return path


def verify_torchscript(generator: Generator, path: Path | str) -> float:
    module = torch.jit.load(str(path), map_location="cpu")

    def run(frames: torch.Tensor, weights: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return module(frames, weights).numpy()

    return check_parity(generator, run, f"TorchScript export {path}")
