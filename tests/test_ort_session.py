"""The ONNX Runtime form of the exported graphs: the style affine folded into its norms, exactly."""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from calibration.quantize import quantize_qdq, sub_resolution_convs
from realtime.backends.onnx_backend import OnnxBackend
from realtime.export import export_onnx
from realtime.model import CondInstanceNorm
from realtime.modelfile import load_model
from realtime.ort_session import fold_style_affine, open_session, runtime_graph


def _feeds(batch: int, num_styles: int, h: int = 40, w: int = 56) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(batch)
    return {
        "frames": rng.random((batch, 3, h, w), dtype=np.float32),
        # each sample its own blend: the folded norm must apply sample i's gamma to sample i only
        "style_weights": rng.dirichlet(np.ones(num_styles), batch).astype(np.float32),
    }


def _plain(graph: Path | bytes, level: str = "ORT_ENABLE_ALL", save: Path | None = None) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    opts.log_severity_level = 3
    if save is not None:
        opts.optimized_model_filepath = str(save)
    return ort.InferenceSession(graph if isinstance(graph, bytes) else str(graph), opts, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def exported(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, int]:
    generator, info = load_model(tiny_model)
    path = export_onnx(generator, info, tmp_path_factory.mktemp("ort") / "fp32.onnx")
    norms = sum(isinstance(m, CondInstanceNorm) for m in generator.modules())
    return path, info.config.num_styles, norms


@pytest.mark.parametrize("batch", [1, 3])
def test_folded_graph_computes_the_same(exported: tuple[Path, int, int], batch: int) -> None:
    path, n, _ = exported
    feeds = _feeds(batch, n)
    expected = _plain(path).run(None, feeds)[0]
    got = open_session(path, threads=1).run(None, feeds)[0]
    assert np.abs(got - expected).max() < 1e-5


def test_every_norm_is_folded_and_the_portable_file_is_untouched(exported: tuple[Path, int, int]) -> None:
    path, _, norms = exported
    before = path.read_bytes()
    model = onnx.load_from_string(runtime_graph(path))
    assert path.read_bytes() == before
    ops = collections.Counter(node.op_type for node in model.graph.node)
    assert ops["InstanceNormalization"] == norms
    constants = {t.name for t in model.graph.initializer}
    # every norm now takes the per-sample scale and bias computed from the style weights
    assert all(node.input[1] not in constants for node in model.graph.node if node.op_type == "InstanceNormalization")
    assert fold_style_affine(model) == 0  # nothing left to fold


def test_int8_convolutions_still_fuse(exported: tuple[Path, int, int], tmp_path: Path) -> None:
    path, n, _ = exported
    frames = [np.random.default_rng(i).integers(0, 256, (48, 64, 3), dtype=np.uint8) for i in range(3)]
    inner, _ = sub_resolution_convs(path, n)
    int8 = quantize_qdq(path, tmp_path / "int8.onnx", inner, tmp_path / "ranges.json", frames, n)

    def fused(graph: Path | bytes, name: str) -> int:
        _plain(graph, "ORT_ENABLE_EXTENDED", save=tmp_path / name)
        return sum(node.op_type == "QLinearConv" for node in onnx.load(str(tmp_path / name)).graph.node)

    assert fold_style_affine(onnx.load(str(int8))) == exported[2]  # Q/DQ nodes leave every norm foldable
    assert fused(runtime_graph(int8), "folded.onnx") == fused(int8, "portable.onnx") == len(inner) > 0
    feeds = _feeds(2, n, 48, 64)
    fp32_out = _plain(path).run(None, feeds)[0]
    # INT8 rounding flips where float sums differ in the last bit, so compare errors, not outputs
    err_portable = np.abs(_plain(int8).run(None, feeds)[0] - fp32_out).mean()
    err_folded = np.abs(open_session(int8, threads=1).run(None, feeds)[0] - fp32_out).mean()
    assert err_folded < 1.5 * err_portable + 1e-4


def test_backend_feeds_one_weight_row_per_frame(tiny_model: Path) -> None:
    """A single weight row for a batch of frames still works: the backend repeats it per frame."""
    generator, info = load_model(tiny_model)
    backend = OnnxBackend(generator, info, device="cpu")
    frames = np.random.default_rng(0).integers(0, 256, (3, 24, 40, 3), dtype=np.uint8)
    row = np.eye(info.config.num_styles, dtype=np.float32)[1:2]
    together = backend(frames, row)
    alone = np.concatenate([backend(frames[i : i + 1], row) for i in range(3)])
    assert np.abs(together.astype(int) - alone.astype(int)).max() <= 1
