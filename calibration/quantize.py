"""Post-training static INT8 quantization of the exported generator into an explicit Q/DQ ONNX graph.

One artifact serves both INT8 targets: ONNX Runtime on CPUs fuses each ``DQ -> Conv -> Q`` into a
``QLinearConv``, and TensorRT reads the same Q/DQ nodes as explicit quantization (its implicit
calibrators are deprecated).

Only convolutions between sub-resolution planes are quantized. Measured on the 2-core CPU: the
quantize/dequantize passes over full-resolution planes (the stem's input, the thin refinement) and the
layout changes QLinearConv needs there cost more than INT8 arithmetic saves, and the instance norms
between convolutions have no INT8 kernel, so they stay float in every case.

Weights are per-channel and activations per-tensor, both signed int8 with zero point 0 (S8S8
symmetric), biases stay float: the INT8 form TensorRT's explicit quantization accepts.

Activation ranges are computed once per (model, method, calibration frames) and cached as JSON, so
the quality gate re-quantizes with different FP layers without running calibration again.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from realtime.errors import ModelError
from realtime.export import INPUT_NAMES

log = logging.getLogger(__name__)

#: --method choices -> onnxruntime CalibrationMethod names
METHODS = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}
#: Percentile keeps 99.999% of activations; outliers beyond it clip instead of stretching the scale.
PERCENTILE = 99.999
#: onnxruntime ``quantize_static`` extra options of every Q/DQ graph stylecast writes.
QDQ_OPTIONS = {
    # Signed int8 with zero point 0 for activations too: TensorRT accepts only symmetric INT8 Q/DQ,
    # and one artifact serves both runtimes. Measured against asymmetric uint8 on the 2-core CPU
    # (trained default model): the same speed, 1.2-1.5 dB lower PSNR, still far above the gate.
    "WeightSymmetric": True,
    "ActivationSymmetric": True,
    # Float biases, as NVIDIA's own Q/DQ tools write them (TensorRT quantizes biases itself); ONNX
    # Runtime still fuses DQ -> Conv -> Q into QLinearConv (checked: nine QLinearConv either way).
    "QuantizeBias": False,
}


def model_feeds(frame: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
    """One uint8 RGB ``[H,W,3]`` frame and a ``[N]`` style-weight row -> the ONNX graph's inputs."""
    x = np.ascontiguousarray(frame.transpose(2, 0, 1)[None], dtype=np.float32) / 255.0
    return {INPUT_NAMES[0]: x, INPUT_NAMES[1]: np.asarray(weights, dtype=np.float32).reshape(1, -1)}


def cycled_styles(num_styles: int, count: int) -> np.ndarray:
    """``[count, N]`` one-hot rows cycling through the styles: each style's norm parameters get calibrated."""
    return np.eye(num_styles, dtype=np.float32)[np.arange(count) % num_styles]


def sub_resolution_convs(onnx_path: Path, num_styles: int) -> tuple[list[str], list[str]]:
    """Conv node names split into (sub-resolution, touching the full-resolution planes), in graph order.

    Found by running the graph once on a small probe frame with every Conv's input and output exposed.
    """
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(onnx_path))
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    exposed = list(dict.fromkeys(t for n in convs for t in (n.input[0], n.output[0])))
    known = {o.name for o in model.graph.output}
    for name in exposed:
        if name not in known:
            model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    h, w = 32, 48  # multiples of 4 and >= MIN_SIDE, so the graph's own padding leaves them as they are
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    frame = np.zeros((h, w, 3), np.uint8)
    values = dict(zip([o.name for o in session.get_outputs()], session.run(None, model_feeds(frame, np.eye(num_styles)[0])), strict=True))
    inner: list[str] = []
    full: list[str] = []
    for node in convs:
        shapes = {values[node.input[0]].shape[2:], values[node.output[0]].shape[2:]}
        (full if (h, w) in shapes else inner).append(node.name)
    return inner, full


class _DropPreprocessHint(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing" not in record.getMessage()


@contextlib.contextmanager
def quiet_onnxruntime() -> Iterator[None]:
    """onnxruntime's quantizer prints progress and advises a pre-processing step that fails on this
    graph (symbolic shape inference cannot follow the size-dependent padding): send both to debug."""
    root = logging.getLogger()
    hint = _DropPreprocessHint()
    root.addFilter(hint)
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            yield
    finally:
        root.removeFilter(hint)
        if printed.getvalue():
            log.debug("onnxruntime: %s", printed.getvalue().strip())


class _Reader:
    """Feeds the calibration frames to onnxruntime's calibrator, each frame with one style."""

    def __init__(self, frames: Sequence[np.ndarray], weights: np.ndarray) -> None:
        self._feeds = (model_feeds(f, w) for f, w in zip(frames, weights, strict=True))

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)

    def __iter__(self) -> Iterable[dict[str, np.ndarray]]:  # onnxruntime's CalibrationDataReader protocol
        return iter(self.get_next, None)


def quantize_qdq(
    fp32_path: Path,
    out_path: Path,
    nodes: Sequence[str],
    ranges_cache: Path,
    frames: Sequence[np.ndarray] = (),
    num_styles: int = 1,
    method: str = "percentile",
) -> Path:
    """Write the Q/DQ INT8 graph of ``fp32_path`` quantizing only the Conv ``nodes``.

    Activation ranges come from ``ranges_cache`` when it exists; otherwise they are calibrated on
    ``frames`` (each paired with a cycled style) and saved there for the next call.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if method not in METHODS:
        raise ValueError(f"unknown calibration method {method!r}; choose one of {', '.join(METHODS)}")
    calibrate = not ranges_cache.is_file()
    if calibrate and not frames:
        raise ValueError("no cached activation ranges and no calibration frames")
    if not nodes:
        # onnxruntime reads an empty node list as "all nodes"; nothing to quantize is the FP32 graph.
        shutil.copyfile(fp32_path, out_path)
        return out_path
    extra = {**QDQ_OPTIONS, "CalibPercentile": PERCENTILE}
    if calibrate:
        log.info("calibrating activation ranges (%s) on %d frames", method, len(frames))
    ranges_cache.parent.mkdir(parents=True, exist_ok=True)
    # onnxruntime writes its cache in place: calibrate into a temporary folder and rename, so an
    # interrupted run never leaves a half-written cache that a later run would trust.
    with tempfile.TemporaryDirectory(dir=ranges_cache.parent, prefix=".calibrating.") as tmp:
        cache_arg = Path(tmp) / ranges_cache.name if calibrate else ranges_cache
        try:
            with quiet_onnxruntime():
                quantize_static(
                    str(fp32_path),
                    str(out_path),
                    _Reader(frames, cycled_styles(num_styles, len(frames))) if calibrate else None,
                    quant_format=QuantFormat.QDQ,
                    op_types_to_quantize=["Conv"],
                    nodes_to_quantize=list(nodes),
                    per_channel=True,
                    activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8,
                    calibrate_method=getattr(CalibrationMethod, METHODS[method]),
                    extra_options=extra,
                    calibration_cache_path=str(cache_arg),
                )
        except (ValueError, RuntimeError, KeyError) as e:
            raise ModelError(f"INT8 quantization of {fp32_path} failed: {str(e).splitlines()[0]}") from e
        if calibrate:
            os.replace(cache_arg, ranges_cache)
    return out_path
