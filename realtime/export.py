"""Export a stylecast model to ONNX (the artifact ONNX Runtime, the INT8 calibrator and TensorRT consume).

The graph takes ``frames [B,3,H,W]`` float32 in [0,1] and ``style_weights [B,N]`` and returns
``stylized [B,3,H,W]``; batch, height and width are dynamic. The model's style names and file hash
go into the ONNX metadata so a runtime can check that an ONNX file belongs to the model it was given.
"""

from __future__ import annotations

import io
import json
import logging
import warnings
from pathlib import Path

import torch

from realtime.model import Generator
from realtime.modelfile import ModelInfo, atomic_write_bytes

log = logging.getLogger(__name__)

OPSET = 17
INPUT_NAMES = ("frames", "style_weights")
OUTPUT_NAME = "stylized"


def export_onnx(generator: Generator, info: ModelInfo, path: Path | str, opset: int = OPSET) -> Path:
    """Write ``generator`` as ONNX with dynamic batch/height/width and the model's metadata."""
    import onnx

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
            buf,
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
