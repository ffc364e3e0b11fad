"""Models, ONNX exports and engines that are damaged, too new or not the model's: refused clearly, or
rebuilt when they are only a cache."""

from __future__ import annotations

import io
import json
import logging
import shutil
import sys
import types
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_tiny_model
from reliability_support import assert_one_line_error, stylecast

from realtime import artifacts
from realtime import compile as trt_compile
from realtime.artifacts import ensure_engine, onnx_model_path
from realtime.backends.onnx_backend import OnnxBackend
from realtime.backends.torch_backend import TorchBackend
from realtime.compile import parse_shapes
from realtime.engine_cache import EngineKey
from realtime.errors import ModelError, OutputError
from realtime.modelfile import FORMAT_VERSION, file_sha256, load_model


def _truncated(tiny: Path, tmp: Path) -> Path:
    data = tiny.read_bytes()
    (tmp / "half.stylecast").write_bytes(data[: len(data) // 2])
    return tmp / "half.stylecast"


def _bit_rot(tiny: Path, tmp: Path) -> Path:
    # Flip bytes inside the stored tensors: the zip directory is intact, a member's CRC is not.
    data = bytearray(tiny.read_bytes())
    for i in range(len(data) // 3, len(data) // 3 + 64):
        data[i] ^= 0xFF
    (tmp / "rot.stylecast").write_bytes(bytes(data))
    return tmp / "rot.stylecast"


def _random(tiny: Path, tmp: Path) -> Path:
    (tmp / "noise.stylecast").write_bytes(np.random.default_rng(0).bytes(4096))
    return tmp / "noise.stylecast"


def _other_zip(tiny: Path, tmp: Path) -> Path:
    with zipfile.ZipFile(tmp / "other.stylecast", "w") as z:
        z.writestr("readme.txt", "a zip, but not a model")
    return tmp / "other.stylecast"


def _payload(tiny: Path, tmp: Path, name: str, change) -> Path:
    payload = torch.load(tiny, weights_only=True)
    change(payload)
    buf = io.BytesIO()
    torch.save(payload, buf)
    (tmp / name).write_bytes(buf.getvalue())
    return tmp / name


def _newer(tiny: Path, tmp: Path) -> Path:
    return _payload(tiny, tmp, "future.stylecast", lambda p: p.update(version=FORMAT_VERSION + 1))


def _wrong_shapes(tiny: Path, tmp: Path) -> Path:
    def widen(p):
        cfg = json.loads(p["config"])
        cfg["channels"] *= 2
        p["config"] = json.dumps(cfg)

    return _payload(tiny, tmp, "mismatch.stylecast", widen)


def _config(**values: object):
    def make(tiny: Path, tmp: Path) -> Path:
        def change(p):
            p["config"] = json.dumps({**json.loads(p["config"]), **values})

        return _payload(tiny, tmp, "config.stylecast", change)

    return make


def _missing_styles(tiny: Path, tmp: Path) -> Path:
    return _payload(tiny, tmp, "styles.stylecast", lambda p: p.update(styles=json.dumps([{"name": "only_one"}])))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tiny, tmp: tmp / "absent.stylecast", "model file not found"),
        (lambda tiny, tmp: tmp, "is a directory"),
        (_truncated, "unreadable or truncated"),
        (_bit_rot, "corrupt model file"),
        (_random, "not a stylecast model"),
        (_other_zip, "corrupt model file"),
        (_newer, f"model format version {FORMAT_VERSION + 1}, newer than this stylecast reads"),
        (_wrong_shapes, "does not match its config"),
        # checked before anything is allocated: a hostile file cannot ask for gigabytes
        (_config(channels=100_000), "config channels = 100000 is not a whole number in 1..1024"),
        (_config(arch="nope"), "config arch = 'nope' is not fast or quality"),
        (_config(res_blocks="3"), "config res_blocks = '3' is not a whole number"),
        (_config(tail="skip"), "it lacks body.skip"),
        (_missing_styles, "names 1 styles for 3 style slots"),
    ],
    ids=[
        "missing",
        "directory",
        "truncated",
        "bit-rot",
        "random-bytes",
        "other-zip",
        "newer-version",
        "wrong-shapes",
        "huge-config",
        "unknown-arch",
        "config-type",
        "other-tail",
        "style-count",
    ],
)
def test_bad_model_files_are_one_line_errors(
    tiny_model: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    make,
    message: str,
) -> None:
    path = make(tiny_model, tmp_path)
    with pytest.raises(ModelError, match=message):
        load_model(path)
    code, _, err = stylecast(capsys, "styles", "--model", path)
    assert_one_line_error(code, err, message)
    code, _, err = stylecast(capsys, "run", "in.mp4", "-o", tmp_path / "o.mp4", "--model", path)
    assert code != 0 and "Traceback" not in err and err.count("\n") == 1


def _stylize(backend, seed: int = 0) -> np.ndarray:
    frames = np.random.default_rng(seed).integers(0, 256, (1, 24, 32, 3), np.uint8)
    return backend(frames, np.array([[0.2, 0.3, 0.5]], np.float32))


def test_onnx_cache_from_another_model_is_exported_again(
    tiny_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    other = load_model(make_tiny_model(tmp_path / "other.stylecast", seed=1))
    mine = load_model(tiny_model)
    # The other model's export sits where this model's export belongs (a copied cache, a hash clash).
    shutil.copy(onnx_model_path(*other), onnx_model_path(*mine))
    with caplog.at_level(logging.WARNING):
        backend = OnnxBackend(*mine)
    assert "exported from another model file" in caplog.text
    reference = TorchBackend(*mine, device="cpu")
    assert np.abs(_stylize(backend).astype(int) - _stylize(reference)).max() <= 2


def test_damaged_onnx_cache_is_exported_again(tiny_model: Path, caplog: pytest.LogCaptureFixture) -> None:
    generator, info = load_model(tiny_model)
    path = onnx_model_path(generator, info)
    path.write_bytes(path.read_bytes()[:1000])
    with caplog.at_level(logging.WARNING):
        backend = OnnxBackend(generator, info)
    assert "unusable" in caplog.text and path.stat().st_size > 1000
    assert _stylize(backend).shape == (1, 24, 32, 3)


def test_unwritable_onnx_cache_still_runs(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "cache-is-a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("STYLECAST_CACHE", str(blocker))
    with caplog.at_level(logging.WARNING):
        backend = OnnxBackend(*load_model(tiny_model))
    assert "cannot write the ONNX cache" in caplog.text and "STYLECAST_CACHE" in caplog.text
    assert _stylize(backend).shape == (1, 24, 32, 3)
    assert blocker.read_text() == "not a folder"


# --- TensorRT engines: the cache logic, with the GPU identity and the build replaced ------------------


@dataclass
class FakeGpu:
    """A switchable GPU/TensorRT identity; ``builds`` records the identity each engine was built for."""

    gpu: str = "Fake A"
    capability: str = "8.9"
    tensorrt: str = "10.13.0"
    builds: list[tuple[str, str]] = field(default_factory=list)


@pytest.fixture()
def gpu(monkeypatch: pytest.MonkeyPatch) -> FakeGpu:
    state = FakeGpu()

    def key(info, precision, profile, route="tensorrt", graph=None):
        identity = (state.gpu, state.capability, state.tensorrt)
        return EngineKey(info.sha256, precision, profile.spec(), *identity, route, file_sha256(graph) if graph else "")

    def build(*args, **kwargs):
        state.builds.append((state.gpu, state.tensorrt))
        return f"engine for {state.gpu} {state.tensorrt}".encode()

    monkeypatch.setattr(trt_compile, "engine_key", key)
    monkeypatch.setattr(trt_compile, "build_tensorrt", build)
    return state


def test_engine_for_another_gpu_or_tensorrt_is_rebuilt_not_loaded(tiny_model: Path, gpu: FakeGpu) -> None:
    generator, info = load_model(tiny_model)
    profile = parse_shapes("1x3x32x32")
    first, _ = ensure_engine(generator, info, "fp16", profile)
    ensure_engine(generator, info, "fp16", profile)  # same GPU: served from the cache
    gpu.gpu, gpu.capability = "Fake B", "9.0"
    other_gpu, _ = ensure_engine(generator, info, "fp16", profile)
    gpu.tensorrt = "10.14.1"
    other_trt, _ = ensure_engine(generator, info, "fp16", profile)
    assert gpu.builds == [("Fake A", "10.13.0"), ("Fake B", "10.13.0"), ("Fake B", "10.14.1")]
    assert len({first, other_gpu, other_trt}) == 3 and other_trt.read_bytes() == b"engine for Fake B 10.14.1"


def test_engine_whose_record_names_another_model_is_rebuilt(
    tiny_model: Path, gpu: FakeGpu, caplog: pytest.LogCaptureFixture
) -> None:
    generator, info = load_model(tiny_model)
    profile = parse_shapes("1x3x32x32")
    path, key = ensure_engine(generator, info, "fp32", profile)
    meta_path = path.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    meta["key"]["model_sha256"] = "0" * 64  # an engine of another model under this name
    meta_path.write_text(json.dumps(meta))
    with caplog.at_level(logging.WARNING):
        ensure_engine(generator, info, "fp32", profile)
    assert "built for another model" in caplog.text and len(gpu.builds) == 2


def test_engine_cache_not_writable_fails_before_building(
    tiny_model: Path, tmp_path: Path, gpu: FakeGpu, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("STYLECAST_CACHE", str(blocker))
    generator, info = load_model(tiny_model)
    with pytest.raises(OutputError, match="set STYLECAST_CACHE to a writable folder"):
        ensure_engine(generator, info, "fp16", parse_shapes("1x3x32x32"))
    assert gpu.builds == []


def test_model_info_hash_ties_exports_to_the_file(tiny_model: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.stylecast"
    shutil.copy(tiny_model, copy)
    _, a = load_model(tiny_model)
    _, b = load_model(copy)
    assert a.sha256 == b.sha256 and replace(a, path=None) == replace(b, path=None)
    other = make_tiny_model(tmp_path / "other.stylecast", seed=3)
    assert load_model(other)[1].sha256 != a.sha256


def test_damaged_int8_cache_is_calibrated_again(
    tiny_model: Path, frame_folder: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calibrate_on_small_frames = artifacts.int8_model_path
    monkeypatch.setattr(
        artifacts, "int8_model_path", lambda g, i, **kw: calibrate_on_small_frames(g, i, frames=frame_folder)
    )
    generator, info = load_model(tiny_model)
    path = artifacts.int8_model_path(generator, info)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    with caplog.at_level(logging.WARNING):
        backend = OnnxBackend(generator, info, precision="int8")
    assert "calibrating again" in caplog.text and backend.describe() == "onnx/cpu/int8"
    assert _stylize(backend).shape == (1, 24, 32, 3)


def test_engine_this_tensorrt_refuses_is_rebuilt_once(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A cached engine whose checks pass but which this TensorRT/driver cannot deserialize (say, after
    a driver update) is rebuilt once, not a crash. TensorRT itself is replaced: no GPU here."""
    from realtime.backends import tensorrt_backend

    float32 = object()

    class Engine:
        def get_tensor_dtype(self, name: str) -> object:
            return float32

        def create_execution_context(self) -> object:
            return object()

    def load_engine(data: bytes) -> tuple[object, Engine | None]:
        return object(), (Engine() if data == b"rebuilt" else None)

    builds: list[bool] = []

    def ensure_engine(generator, info, precision, profile, force=False):
        builds.append(force)
        path = tmp_path / "model.engine"
        path.write_bytes(b"rebuilt" if force else b"from an older driver")
        return path, types.SimpleNamespace(precision=precision)

    monkeypatch.setitem(sys.modules, "realtime.tensorrt_engine", types.SimpleNamespace(load_engine=load_engine))
    monkeypatch.setattr(trt_compile, "require_tensorrt", lambda route="tensorrt": "10.13.0")
    monkeypatch.setattr(artifacts, "ensure_engine", ensure_engine)
    monkeypatch.setattr(tensorrt_backend, "_trt_float", lambda: float32)
    monkeypatch.setattr(tensorrt_backend.TensorRTBackend, "_attach", lambda self, *args: None)
    with caplog.at_level(logging.WARNING):
        tensorrt_backend.TensorRTBackend(*load_model(tiny_model), device="cuda")
    assert builds == [False, True] and "cannot load the cached engine" in caplog.text
    monkeypatch.setattr(sys.modules["realtime.tensorrt_engine"], "load_engine", lambda data: (object(), None))
    with pytest.raises(ModelError, match="cannot load the engine it just built"):
        tensorrt_backend.TensorRTBackend(*load_model(tiny_model), device="cuda")
