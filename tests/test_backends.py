from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from realtime import artifacts
from realtime.artifacts import onnx_model_path
from realtime.backends import onnx_backend
from realtime.backends.onnx_backend import OnnxBackend
from realtime.backends.registry import auto_candidates, backend_class, create_backend
from realtime.backends.torch_backend import TorchBackend
from realtime.errors import BackendUnavailable
from realtime.model import Generator
from realtime.modelfile import ModelInfo, load_model

torch.set_num_threads(2)


Model = tuple[Generator, ModelInfo]


@pytest.fixture(scope="module")
def model(tiny_model: Path) -> Model:
    return load_model(tiny_model)


def _frames(b: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (b, h, w, 3), dtype=np.uint8)


def _weights(b: int, n: int = 3) -> np.ndarray:
    return np.tile(np.eye(n, dtype=np.float32)[1], (b, 1))


@pytest.mark.parametrize(("h", "w"), [(36, 64), (5, 7), (17, 33)])
def test_torch_and_onnx_agree(model: Model, h: int, w: int) -> None:
    torch_out = TorchBackend(*model, device="cpu")(_frames(2, h, w), _weights(2))
    onnx_out = OnnxBackend(*model, device="cpu")(_frames(2, h, w), _weights(2))
    assert torch_out.shape == onnx_out.shape == (2, h, w, 3)
    assert torch_out.dtype == onnx_out.dtype == np.uint8
    assert np.abs(torch_out.astype(int) - onnx_out.astype(int)).max() <= 2


def test_reference_matches_the_generator(model: Model) -> None:
    generator, info = model
    frames = _frames(1, 24, 40)
    out = TorchBackend(generator, info, device="cpu")(frames, _weights(1))
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        ref = generator(x, torch.from_numpy(_weights(1)))[0].permute(1, 2, 0).numpy()
    assert np.abs(out[0].astype(float) - ref * 255).max() <= 1.0


def test_weights_change_the_output_per_batch_item(model: Model) -> None:
    backend = OnnxBackend(*model, device="cpu")
    frames = np.repeat(_frames(1, 32, 32), 3, axis=0)
    out = backend(frames, np.eye(3, dtype=np.float32)).astype(int)
    assert np.abs(out[0] - out[1]).mean() > 1 and np.abs(out[1] - out[2]).mean() > 1


def test_onnx_cpu_lanes_split_the_cores_and_give_the_same_frames(
    model: Model, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(onnx_backend, "usable_cores", lambda: 2)
    backend = OnnxBackend(*model, device="cpu")
    frames, weights = _frames(2, 24, 40), _weights(2)
    expected = backend(frames, weights)
    lanes = backend.infer_lanes()
    assert len(lanes) == 2 and backend.infer_lanes() == lanes  # opened once
    for lane in lanes:
        out = backend.download(lane(backend.upload(frames), weights))
        assert np.abs(out.astype(int) - expected.astype(int)).max() <= 1
    monkeypatch.setattr(onnx_backend, "usable_cores", lambda: 1)
    one_core = OnnxBackend(*model, device="cpu")
    assert one_core.infer_lanes() == [one_core.infer]


def test_onnx_export_is_cached(model: Model, stylecast_cache: Path) -> None:
    path = onnx_model_path(*model)
    assert path.parent == stylecast_cache / "onnx" and path.name == f"{model[1].sha256[:16]}.onnx"
    mtime = path.stat().st_mtime_ns
    OnnxBackend(*model, device="cpu")
    assert path.stat().st_mtime_ns == mtime


def test_unsupported_requests_are_clear(model: Model) -> None:
    with pytest.raises(BackendUnavailable, match="fp16 needs CUDA"):
        TorchBackend(*model, precision="fp16", device="cpu")
    with pytest.raises(BackendUnavailable, match="int8"):
        TorchBackend(*model, precision="int8", device="cpu")
    with pytest.raises(BackendUnavailable, match="fp32 and int8"):
        OnnxBackend(*model, precision="fp16", device="cpu")
    with pytest.raises(BackendUnavailable, match="unknown backend 'tpu'"):
        create_backend("tpu", model)
    if not torch.cuda.is_available():
        with pytest.raises(BackendUnavailable, match="CUDA"):
            TorchBackend(*model, device="cuda")


def test_tensorrt_is_unavailable_without_its_module_or_gpu(model: Model) -> None:
    if importlib.util.find_spec("tensorrt") is not None and torch.cuda.is_available():
        pytest.skip("TensorRT is usable here")
    with pytest.raises(BackendUnavailable):
        create_backend("tensorrt", model, device="cuda")


def test_auto_picks_onnx_on_a_cpu_machine(model: Model) -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA machine")
    assert auto_candidates("auto", "auto")[0] == ("onnx", "cpu")
    backend = create_backend("auto", model)
    assert backend.describe() == "onnx/cpu/fp32"
    assert backend_class("torch") is TorchBackend


def test_int8_uses_the_calibrated_model(model: Model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A few small calibration frames instead of the bundled clip keep this test fast.
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), _frames(1, 48, 64, seed=i)[0])
    monkeypatch.setattr(artifacts, "int8_model_path", functools.partial(artifacts.int8_model_path, frames=tmp_path))
    generator, info = model
    backend = OnnxBackend(generator, info, precision="int8", device="cpu")
    ref = OnnxBackend(generator, info, device="cpu")
    frames = _frames(1, 64, 64)
    out, expected = backend(frames, _weights(1)), ref(frames, _weights(1))
    assert backend.describe() == "onnx/cpu/int8"
    assert np.abs(out.astype(int) - expected.astype(int)).mean() < 20


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_graphs_fp16_match_fp32_eager(model: Model) -> None:
    generator, info = load_model(model[1].path)
    fast = TorchBackend(generator, info, precision="fp16", device="cuda")
    ref = TorchBackend(*load_model(model[1].path), precision="fp32", device="cpu")
    for seed in range(3):  # replays reuse the captured graph with new inputs and weights
        frames = _frames(2, 72, 128, seed)
        w = np.random.default_rng(seed).dirichlet(np.ones(3), 2).astype(np.float32)
        assert np.abs(fast(frames, w).astype(int) - ref(frames, w).astype(int)).max() <= 4
