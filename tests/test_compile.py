"""TensorRT compile: shape profiles, engine cache keys and invalidation, error paths (TensorRT absent),
and real builds where TensorRT and a GPU exist."""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from realtime import compile as trt_compile
from realtime.artifacts import ensure_engine
from realtime.cli import main
from realtime.compile import ShapeProfile, parse_shapes
from realtime.engine_cache import EngineCache, EngineKey
from realtime.errors import BackendUnavailable, OutputError
from realtime.modelfile import file_sha256, load_model

HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None
KEY = EngineKey("a" * 64, "fp16", "min=1x3x16x16,opt=1x3x720x1280,max=1x3x1080x1920", "NVIDIA H100", "9.0", "10.13.0")


# --- shape profiles ---------------------------------------------------------------------------------


def test_parse_shapes_accepts_the_three_forms() -> None:
    colon = parse_shapes("1x3x360x640:1x3x720x1280:1x3x1080x1920")
    named = parse_shapes("min=1x3x360x640, opt=1x3x720x1280, max=1x3x1080x1920")
    assert colon == named == ShapeProfile((1, 3, 360, 640), (1, 3, 720, 1280), (1, 3, 1080, 1920))
    assert parse_shapes("2x3x720x1280") == ShapeProfile(*[(2, 3, 720, 1280)] * 3)
    assert parse_shapes(colon.spec()) == colon
    assert colon.accepts(1, 500, 1000) and not colon.accepts(1, 2000, 1000) and not colon.accepts(2, 720, 1280)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1x3x720", "BxCxHxW"),
        ("1x4x720x1280", "3 channels"),
        ("0x3x720x1280", "batch"),
        ("1x3x8x8", ">= 16"),
        ("1x3x720x1280:1x3x360x640:1x3x1080x1920", "min <= opt <= max"),
        ("1x3x360x640:1x3x720x1280", "MIN:OPT:MAX"),
        ("min=1x3x360x640,opt=1x3x720x1280", "all of min, opt and max"),
        ("min=1x3x360x640,top=1x3x720x1280,max=1x3x1080x1920", "min=...,opt=...,max=..."),
        ("1x3xabcx640", "BxCxHxW"),
    ],
)
def test_parse_shapes_rejects_bad_profiles(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_shapes(text)


def test_bad_shapes_on_the_command_line_are_one_line_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["compile", "--shapes", "1x3x720x1280:1x3x360x640:1x3x1080x1920"])
    assert exc.value.code == 2
    assert "min <= opt <= max" in capsys.readouterr().err


# --- cache keys and the cache -----------------------------------------------------------------------


def test_every_key_field_changes_the_digest() -> None:
    base = KEY.digest()
    assert KEY.digest() == base  # stable
    for field, value in [
        ("model_sha256", "b" * 64),
        ("precision", "int8"),
        ("profile", "min=1x3x16x16,opt=1x3x360x640,max=1x3x1080x1920"),
        ("gpu_name", "NVIDIA L4"),
        ("compute_capability", "8.9"),
        ("tensorrt_version", "10.14.0"),
        ("route", "torch-tensorrt"),
        ("graph_sha256", "c" * 64),
        ("frontend_versions", "torch 2.9.0, torch-tensorrt 2.9.0"),
    ]:
        changed = EngineKey(**{**KEY.__dict__, field: value})
        assert changed.digest() != base, field


def test_cache_round_trip_and_fast_hit(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path / "engines")
    assert cache.load(KEY) is None
    blob = np.random.default_rng(0).bytes(8 << 20)
    path = cache.store(KEY, blob, style_names=["a"])
    assert path.exists() and json.loads(cache.paths(KEY)[1].read_text())["style_names"] == ["a"]
    start = time.perf_counter()
    assert cache.load(KEY) == blob
    assert time.perf_counter() - start < 1.0


def test_corrupt_engine_is_evicted_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cache = EngineCache(tmp_path)
    engine_path = cache.store(KEY, b"engine bytes")
    engine_path.write_bytes(b"engine bytez")  # same size, other content
    with caplog.at_level(logging.WARNING):
        assert cache.load(KEY) is None
    assert "corrupt" in caplog.text
    assert not engine_path.exists() and not cache.paths(KEY)[1].exists()


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda meta: meta.unlink(), "missing"),
        (lambda meta: meta.write_text("{not json"), "unreadable"),
        (lambda meta: meta.write_text(json.dumps({**json.loads(meta.read_text()), "format": 0})), "another stylecast version"),
        (
            lambda meta: meta.write_text(json.dumps({**json.loads(meta.read_text()), "key": {**KEY.__dict__, "precision": "fp32"}})),
            "another model, precision",
        ),
    ],
)
def test_stale_or_damaged_metadata_means_rebuild(tmp_path: Path, caplog: pytest.LogCaptureFixture, damage, reason: str) -> None:  # type: ignore[no-untyped-def]
    cache = EngineCache(tmp_path)
    cache.store(KEY, b"engine")
    damage(cache.paths(KEY)[1])
    with caplog.at_level(logging.WARNING):
        assert cache.load(KEY) is None
    assert reason in caplog.text


def test_unwritable_cache_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    cache = EngineCache(blocker / "engines")
    with pytest.raises(OutputError, match="STYLECAST_CACHE"):
        cache.check_writable()
    with pytest.raises(OutputError, match="cannot write the engine cache"):
        cache.store(KEY, b"engine")


def test_torch_tensorrt_engines_are_keyed_by_torch_and_torch_tensorrt(tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An ExportedProgram is loaded by torch and torch-tensorrt: upgrading either must not serve the old one."""
    monkeypatch.setattr(trt_compile, "require_tensorrt", lambda route="tensorrt": "10.13.0")
    monkeypatch.setattr(trt_compile, "gpu_identity", lambda: ("Fake GPU", "9.0"))
    monkeypatch.setitem(sys.modules, "torch_tensorrt", types.SimpleNamespace(__version__="2.10.0"))
    _, info = load_model(tiny_model)
    profile = parse_shapes("1x3x64x64")
    key = trt_compile.engine_key(info, "fp16", profile, "torch-tensorrt")
    assert key.frontend_versions == f"torch {torch.__version__}, torch-tensorrt 2.10.0"
    assert trt_compile.engine_key(info, "fp16", profile).frontend_versions == ""


# --- ensure_engine's cache logic, with the TensorRT-specific parts replaced ---------------------------


@pytest.fixture()
def fake_builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Replace the key (GPU/TensorRT identity) and the build with fakes; records each build's precision."""
    builds: list[str] = []

    def key(info, precision, profile, route="tensorrt", graph=None):  # type: ignore[no-untyped-def]
        graph_sha = file_sha256(graph) if graph is not None else ""
        return EngineKey(info.sha256, precision, profile.spec(), "Fake GPU", "9.0", "10.13.0", route, graph_sha)

    def build(graph, info, precision, profile, workspace_gb, timing_cache):  # type: ignore[no-untyped-def]
        assert graph.suffix == ".onnx"
        builds.append(precision)
        return f"engine {precision} {profile.spec()}".encode()

    monkeypatch.setattr(trt_compile, "engine_key", key)
    monkeypatch.setattr(trt_compile, "build_tensorrt", build)
    return builds


def test_engine_is_built_once_then_served_from_the_cache(tiny_model: Path, frame_folder: Path, fake_builds: list[str]) -> None:
    generator, info = load_model(tiny_model)
    profile = parse_shapes("1x3x16x16:1x3x64x64:1x3x128x128")
    path, _ = ensure_engine(generator, info, "fp16", profile)
    again, _ = ensure_engine(generator, info, "fp16", profile)
    assert path == again and fake_builds == ["fp16"]
    ensure_engine(generator, info, "int8", profile, frames=frame_folder)  # another precision: another engine
    ensure_engine(generator, info, "int8", profile, frames=frame_folder)
    ensure_engine(generator, info, "int8", profile, frames=frame_folder, method="minmax")  # another INT8 graph
    ensure_engine(generator, info, "fp16", parse_shapes("1x3x64x64"))  # another profile
    ensure_engine(generator, info, "fp16", profile, force=True)
    assert fake_builds == ["fp16", "int8", "int8", "fp16", "fp16"]


def test_corrupt_cached_engine_is_rebuilt(tiny_model: Path, fake_builds: list[str], caplog: pytest.LogCaptureFixture) -> None:
    generator, info = load_model(tiny_model)
    profile = parse_shapes("1x3x32x32")
    path, _ = ensure_engine(generator, info, "fp32", profile)
    path.write_bytes(b"truncated")
    with caplog.at_level(logging.WARNING):
        rebuilt, _ = ensure_engine(generator, info, "fp32", profile)
    assert fake_builds == ["fp32", "fp32"] and "rebuilding" in caplog.text
    assert rebuilt.read_bytes().startswith(b"engine fp32")


def test_unknown_precision_or_route_is_refused(tiny_model: Path, fake_builds: list[str]) -> None:
    generator, info = load_model(tiny_model)
    with pytest.raises(Exception, match="unknown precision"):
        ensure_engine(generator, info, "int4")
    with pytest.raises(Exception, match="unknown route"):
        ensure_engine(generator, info, "fp16", route="onnx")


# --- without TensorRT ----------------------------------------------------------------------------------


@pytest.mark.skipif(HAS_TENSORRT, reason="TensorRT is installed here")
def test_compile_without_tensorrt_says_how_to_install(tiny_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compile", "--model", str(tiny_model)]) == BackendUnavailable.exit_code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "TensorRT is not installed" in err and "pip install 'stylecast[tensorrt]'" in err


@pytest.mark.skipif(HAS_TENSORRT, reason="TensorRT is installed here")
def test_export_engine_without_tensorrt_is_the_same_error(tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--model", str(tiny_model), "--format", "engine", "--half", "-o", str(tmp_path / "m.engine")]) == 3
    assert "stylecast[tensorrt]" in capsys.readouterr().err
    assert not (tmp_path / "m.engine").exists()


def test_old_tensorrt_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="8.6.1"))
    with pytest.raises(BackendUnavailable, match="TensorRT 8.6.1 is too old"):
        trt_compile.require_tensorrt()


def _tensorrt_engine_with_fake_tensorrt(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """realtime.tensorrt_engine executed against a stand-in for what it uses of tensorrt at import time.

    Registered in sys.modules only for the test (dataclasses look their module up there), so the real
    module, where TensorRT is installed, comes back afterwards.
    """

    class Interface:  # the pybind11 trampolines the module subclasses
        def __init__(self) -> None:
            pass

    class ILogger(Interface):
        Severity = types.SimpleNamespace(INTERNAL_ERROR=0, ERROR=1, WARNING=2, INFO=3, VERBOSE=4)

    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(ILogger=ILogger, IProgressMonitor=Interface))
    spec = importlib.util.find_spec("realtime.tensorrt_engine")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


class _FakeBuilderConfig:
    """create_timing_cache/set_timing_cache as TensorRT answers them: None for an unparsable blob,
    False from set_timing_cache for a cache made on another device."""

    def __init__(self, same_device: bool = True) -> None:
        self.same_device = same_device
        self.attached: list[bytes] = []

    def create_timing_cache(self, data: bytes) -> bytes | None:
        return None if data.startswith(b"garbage") else bytes(data)

    def set_timing_cache(self, cache: bytes, ignore_mismatch: bool) -> bool:
        assert cache is not None and not ignore_mismatch
        self.attached.append(cache)
        return self.same_device or cache == b""


@pytest.mark.parametrize(
    ("content", "same_device", "attached", "warns"),
    [
        (None, True, [b""], False),  # first build: a new cache, silently
        (b"timings", True, [b"timings"], False),
        (b"garbage", True, [b""], True),  # truncated or damaged file
        (b"timings", False, [b"timings", b""], True),  # another GPU wrote it
    ],
)
def test_timing_cache_is_reused_or_started_anew(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, content: bytes | None, same_device: bool, attached: list[bytes], warns: bool
) -> None:
    engine_module = _tensorrt_engine_with_fake_tensorrt(monkeypatch)
    path = tmp_path / "timing.cache"
    if content is not None:
        path.write_bytes(content)
    config = _FakeBuilderConfig(same_device)
    with caplog.at_level(logging.WARNING):
        engine_module._use_timing_cache(config, path)
    assert config.attached == attached
    assert ("starting a new one" in caplog.text) == warns


def test_no_gpu_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(BackendUnavailable, match="no CUDA device"):
        trt_compile.gpu_identity()


@pytest.mark.skipif(HAS_TENSORRT, reason="TensorRT is installed here")
def test_tensorrt_backend_without_tensorrt_is_unavailable(tiny_model: Path) -> None:
    from realtime.backends.tensorrt_backend import TensorRTBackend

    with pytest.raises(BackendUnavailable, match="stylecast\\[tensorrt\\]"):
        TensorRTBackend(*load_model(tiny_model))
    with pytest.raises(BackendUnavailable, match="CUDA"):
        TensorRTBackend(*load_model(tiny_model), device="cpu")


# --- with TensorRT and a GPU ------------------------------------------------------------------------------


@pytest.fixture()
def tensorrt_gpu() -> None:
    pytest.importorskip("tensorrt")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")


@pytest.mark.tensorrt
@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_tensorrt_engine_matches_torch_and_reloads_fast(tiny_model: Path, tensorrt_gpu: None, precision: str) -> None:
    from realtime.backends.tensorrt_backend import TensorRTBackend

    generator, info = load_model(tiny_model)
    shapes = "1x3x16x16:1x3x64x96:2x3x128x160"
    backend = TensorRTBackend(generator, info, precision=precision, shapes=shapes)
    rng = np.random.default_rng(0)
    for b, h, w in [(1, 64, 96), (2, 37, 51), (1, 9, 13)]:  # odd sizes and one under MIN_SIDE
        frames = rng.integers(0, 256, (b, h, w, 3), dtype=np.uint8)
        weights = np.eye(3, dtype=np.float32)[rng.integers(0, 3, b)]
        out = backend(frames, weights)
        with torch.no_grad():
            x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
            ref = (generator(x, torch.from_numpy(weights)).permute(0, 2, 3, 1).numpy() * 255 + 0.5).clip(0, 255).astype(np.uint8)
        assert out.shape == frames.shape
        assert np.abs(out.astype(int) - ref.astype(int)).mean() < (3 if precision == "fp16" else 12)
    backend.close()
    start = time.perf_counter()
    TensorRTBackend(generator, info, precision=precision, shapes=shapes).close()
    assert time.perf_counter() - start < 1.0  # a cache hit only deserializes


@pytest.mark.tensorrt
def test_frames_outside_the_profile_are_refused(tiny_model: Path, tensorrt_gpu: None) -> None:
    from realtime.backends.tensorrt_backend import TensorRTBackend
    from realtime.errors import InputError

    backend = TensorRTBackend(*load_model(tiny_model), shapes="1x3x16x16:1x3x32x32:1x3x64x64")
    with pytest.raises(InputError, match="shape profile"):
        backend.upload(np.zeros((1, 128, 128, 3), np.uint8))


# --- the TensorRT backend's CUDA side (buffers, stream, padding, slot reuse), engine replaced by torch ----


class _TorchContext:
    """Stands in for an IExecutionContext: runs the generator on the device buffers bound to it."""

    def __init__(self, generator: torch.nn.Module, tensors: dict[int, torch.Tensor]) -> None:
        self.generator = generator.cuda().eval()
        self.tensors = tensors  # data_ptr -> tensor, filled as the backend allocates
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.addresses: dict[str, int] = {}

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
        self.shapes[name] = tuple(shape)
        return True

    def set_tensor_address(self, name: str, address: int) -> bool:
        self.addresses[name] = address
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        frames, weights, out = (self.tensors[self.addresses[n]] for n in ("frames", "style_weights", "stylized"))
        assert tuple(frames.shape) == self.shapes["frames"] and tuple(weights.shape) == self.shapes["style_weights"]
        with torch.cuda.stream(torch.cuda.ExternalStream(stream_handle)), torch.no_grad():
            out.copy_(self.generator(frames, weights))
        return True


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_tensorrt_backend_buffers_on_cuda(tiny_model: Path) -> None:
    from realtime.backends.tensorrt_backend import TensorRTBackend

    generator, info = load_model(tiny_model)
    tensors: dict[int, torch.Tensor] = {}
    backend = TensorRTBackend.__new__(TensorRTBackend)
    backend._attach(_TorchContext(load_model(tiny_model)[0], tensors), parse_shapes("1x3x16x16:1x3x64x64:2x3x256x256"), 3, "fp32")
    take = backend._take_slot

    def recording_take(b: int, h: int, w: int):  # type: ignore[no-untyped-def]
        slot = take(b, h, w)
        for t in (slot.frames, slot.weights, slot.stylized):
            tensors[t.data_ptr()] = t
        assert slot.host_in.is_pinned() and slot.host_out.is_pinned() and slot.frames.is_cuda
        return slot

    backend._take_slot = recording_take  # type: ignore[method-assign]
    rng = np.random.default_rng(0)
    batches = [(1, 64, 96), (2, 37, 51), (1, 9, 13), (1, 64, 96), (1, 64, 96)]
    inputs = [
        (rng.integers(0, 256, (b, h, w, 3), dtype=np.uint8), np.eye(3, dtype=np.float32)[rng.integers(0, 3, b)]) for b, h, w in batches
    ]
    # Like the pipeline: every batch is uploaded and run before the first download.
    pending = [backend.infer(backend.upload(f), w) for f, w in inputs]
    outputs = [backend.download(p) for p in pending]
    for (frames, weights), out in zip(inputs, outputs, strict=True):
        with torch.no_grad():
            x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
            ref = (generator(x, torch.from_numpy(weights)).permute(0, 2, 3, 1).numpy() * 255 + 0.5).clip(0, 255).astype(np.uint8)
        assert out.shape == frames.shape
        assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1
    # Three 64x96 batches were in flight at once: three slots, then recycled, not reallocated.
    assert len(backend._free[(1, 64, 96)]) == 3
    backend(*inputs[0])
    assert len(backend._free[(1, 64, 96)]) == 3


def test_tensorrt_backend_stops_when_the_engine_refuses_a_shape() -> None:
    """set_input_shape answers False, with no exception, for a shape outside the engine's profile: the
    backend must stop there with a clear error instead of enqueueing the engine."""
    from realtime.backends.tensorrt_backend import TensorRTBackend, _Slot
    from realtime.errors import ModelError

    class RefusingContext:
        def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
            return False

        def execute_async_v3(self, stream_handle: int) -> bool:
            raise AssertionError("must not run")

    backend = TensorRTBackend.__new__(TensorRTBackend)
    backend.context, backend.stream, backend.profile = RefusingContext(), None, parse_shapes("1x3x16x16")
    tensors = {name: torch.zeros(shape) for name, shape in [("frames", (1, 3, 16, 16)), ("weights", (1, 3)), ("host_weights", (1, 3))]}
    slot = _Slot(shape=(1, 16, 16), host_in=None, dev_in=None, stylized=None, dev_out=None, host_out=None, done=None, **tensors)
    with pytest.raises(ModelError, match="refuses frames"):
        backend.infer(slot, np.full((1, 3), 1 / 3, np.float32))


def test_dynamo_export_serves_the_whole_profile(tiny_model: Path) -> None:
    """The torch-tensorrt route's first half (torch.export), on the CPU: dynamic batch and sizes."""
    generator, _ = load_model(tiny_model)
    program = trt_compile.export_for_dynamo(generator, parse_shapes("1x3x16x16:1x3x64x96:4x3x256x320"), device="cpu").module()
    for b, h, w in [(1, 16, 16), (3, 36, 52), (4, 256, 320)]:
        x, wts = torch.rand(b, 3, h, w), torch.softmax(torch.randn(b, 3), 1)
        with torch.no_grad():
            assert torch.allclose(program(x, wts), generator(x, wts), atol=1e-5)


def test_torch_tensorrt_precision_options_follow_its_typing_mode() -> None:
    """fp16 must not pass enabled_precisions to a strongly typed torch-tensorrt (>= 2.10 rejects it)."""

    # torch-tensorrt 2.4
    def weakly_typed(exported_program, inputs=None, *, enabled_precisions=None, **kwargs):  # type: ignore[no-untyped-def]
        pass

    # 2.5 on; strong typing became the default in 2.10
    def typing_switch(exported_program, inputs=None, *, enabled_precisions=None, use_explicit_typing=True, **kwargs):  # type: ignore[no-untyped-def]
        pass

    # releases without weak typing
    def strongly_typed(exported_program, inputs=None, *, enable_autocast=False, autocast_low_precision_type=None, **kwargs):  # type: ignore[no-untyped-def]
        pass

    options = trt_compile._precision_options
    assert options(weakly_typed, "fp16") == {"enabled_precisions": {torch.float16}}
    assert options(typing_switch, "fp16") == {"enabled_precisions": {torch.float16}, "use_explicit_typing": False}
    assert options(typing_switch, "fp32") == {"enabled_precisions": {torch.float32}, "use_explicit_typing": False}
    assert options(strongly_typed, "fp16") == {"enable_autocast": True, "autocast_low_precision_type": torch.float16}
    assert options(strongly_typed, "fp32") == {}


def test_torch_tensorrt_route_refuses_sides_that_are_not_multiples_of_4(tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch_tensorrt", types.SimpleNamespace())
    generator, info = load_model(tiny_model)
    with pytest.raises(Exception, match="multiples of 4"):
        trt_compile.build_torch_tensorrt(generator, info, "fp16", parse_shapes("1x3x18x18"), 1.0)
    with pytest.raises(BackendUnavailable, match="fp32/fp16"):
        trt_compile.build_torch_tensorrt(generator, info, "int8", parse_shapes("1x3x16x16"), 1.0)


def test_compile_output_is_checked_before_anything_is_built(tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "m.stylecast"
    model.write_bytes(tiny_model.read_bytes())
    assert main(["compile", "--model", str(model), "-o", str(model), "--overwrite"]) == 2
    assert "is the input" in capsys.readouterr().err and model.read_bytes() == tiny_model.read_bytes()
    existing = tmp_path / "m.engine"
    existing.write_bytes(b"an engine the user keeps")
    assert main(["compile", "--model", str(model), "-o", str(existing)]) == 2
    assert "pass --overwrite" in capsys.readouterr().err and existing.read_bytes() == b"an engine the user keeps"
