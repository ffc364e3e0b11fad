"""The compiled torch path: exact rewrites, compile cache keys, fallbacks; CUDA figures where a GPU is."""

from __future__ import annotations

import copy
import json
import logging
import os
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import benchmarks.streams as streams_module
import realtime.compiled as compiled
from benchmarks.streams import StreamConfig, batch_plan, max_streams, run_streams
from realtime.api import Stylizer
from realtime.backends.base import Backend
from realtime.backends.torch_backend import TorchBackend, compiled_backend
from realtime.compiled import (
    CompileKey,
    FrameModel,
    PhaseUpConv,
    compile_cache_folder,
    compile_generator,
    compile_key,
    inductor_cache,
    rewrite_upsampling,
)
from realtime.errors import BackendUnavailable
from realtime.metrics import psnr
from realtime.model import PRESETS, CondInstanceNorm, Generator, GeneratorConfig, UpConv, conv_gmacs
from realtime.modelfile import load_model

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _random_generator(cfg: GeneratorConfig, seed: int = 0) -> Generator:
    """Random weights, and per-style norm affines far from the identity, so errors are not hidden."""
    torch.manual_seed(seed)
    generator = Generator(cfg).eval()
    with torch.no_grad():
        for module in generator.modules():
            if isinstance(module, CondInstanceNorm):
                module.gamma.normal_(1.0, 0.5)
                module.beta.normal_(0.0, 0.5)
    return generator


def _quality(channels: int = 16, styles: int = 3) -> GeneratorConfig:
    return GeneratorConfig(arch="quality", num_styles=styles, channels=channels, res_blocks=1)


def _frames(batch: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(0, 256, (batch, height, width, 3), dtype=np.uint8))


def _weights(batch: int, styles: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).dirichlet(np.ones(styles), batch).astype(np.float32))


# --- the phase rewrite --------------------------------------------------------------------------------


@pytest.mark.parametrize(("height", "width"), [(5, 7), (1, 3), (2, 2), (9, 4)])
def test_phase_upconv_equals_upsample_pad_conv(height: int, width: int) -> None:
    torch.manual_seed(height * 31 + width)
    up = UpConv(6, 5, num_styles=2).eval()
    with torch.no_grad():
        assert up.conv.conv.bias is not None
        up.conv.conv.bias.normal_()
        up.conv.norm.gamma.normal_(1.0, 0.5)
    # Borders are where the algebra could go wrong: reflect of the upsampled plane vs replicate of the input.
    x = torch.randn(2, 6, height, width)
    w = torch.tensor([[0.3, 0.7], [1.0, 0.0]])
    with torch.no_grad():
        conv_ref = up.conv.conv(up.conv.pad(torch.nn.functional.interpolate(x, scale_factor=2.0, mode="nearest")))
        phase = PhaseUpConv(up)
        conv_new = phase.conv(torch.nn.functional.pad(x, (1, 1, 1, 1), mode="replicate"))
        assert conv_new.shape[1] == 4 * conv_ref.shape[1]
        if min(height, width) > 1:  # a 1-pixel plane has no variance for the norm to divide by
            assert (up(x, w) - phase(x, w)).abs().max() < 1e-5
        # the interleave of the pre-norm conv output, checked on every pixel including 1-pixel planes
        phase.norm = _Identity()  # type: ignore[assignment]
        phase.act = False
        assert (phase(x, w) - conv_ref).abs().max() < 1e-5


class _Identity(torch.nn.Module):
    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return x


@pytest.mark.parametrize(("height", "width"), [(37, 29), (16, 16), (45, 18)])
def test_rewritten_generator_matches_eager(height: int, width: int) -> None:
    generator = _random_generator(_quality(), seed=height)
    rewritten = rewrite_upsampling(generator)
    assert not any(isinstance(m, UpConv) for m in rewritten.modules())
    assert sum(isinstance(m, PhaseUpConv) for m in rewritten.modules()) == 2
    assert any(isinstance(m, UpConv) for m in generator.modules()), "the original is left as it was"
    x = torch.rand(2, 3, height, width)
    w = _weights(2)
    with torch.no_grad():
        assert (generator(x, w) - rewritten(x, w)).abs().max() < 1e-5
        # before the sigmoid, which would hide errors in saturated pixels
        body_in = x[..., : height - height % 4, : width - width % 4] * 2 - 1
        if min(body_in.shape[-2:]) >= 16:
            assert (generator.body(body_in, w) - rewritten.body(body_in, w)).abs().max() < 1e-4


def test_rewrite_of_the_quality_preset_and_the_bundled_model() -> None:
    quality = _random_generator(replace(PRESETS["quality"], num_styles=7), seed=1)
    x, w = torch.rand(1, 3, 36, 44), _weights(1, 7)
    with torch.no_grad():
        assert (quality(x, w) - rewrite_upsampling(quality)(x, w)).abs().max() < 1e-5
    bundled, _ = load_model(None)  # the fast architecture has no resize-convolution: unchanged
    w = _weights(1, bundled.cfg.num_styles)
    with torch.no_grad():
        assert torch.equal(bundled(x, w), rewrite_upsampling(bundled)(x, w))


def test_phase_rewrite_saves_the_expected_macs() -> None:
    c = 16
    generator = Generator(_quality(channels=c))
    h, w = 64, 96
    before, after = conv_gmacs(generator, h, w), conv_gmacs(rewrite_upsampling(generator), h, w)
    # up1: (h/4, w/4) -> (h/2, w/2), c -> c/2; up2: (h/2, w/2) -> (h, w), c/2 -> c/4. The 3x3 conv at the
    # upsampled size against one 2x2 conv with 4x the outputs on the (padded) input.
    upsampled = (h // 2) * (w // 2) * (c // 2) * 9 * c + h * w * (c // 4) * 9 * (c // 2)
    phases = (h // 4 + 1) * (w // 4 + 1) * 4 * (c // 2) * 4 * c + (h // 2 + 1) * (w // 2 + 1) * 4 * (c // 4) * 4 * (c // 2)
    assert before - after == pytest.approx((upsampled - phases) / 1e9, rel=1e-9)


# --- the frame model, dtypes -------------------------------------------------------------------------


def test_frame_model_bf16_keeps_close_to_fp32() -> None:
    generator = _random_generator(_quality())
    frames, w = _frames(1, 40, 48), _weights(1)
    with torch.no_grad():
        ref = FrameModel(rewrite_upsampling(generator), torch.float32)(frames, w)
        low = FrameModel(rewrite_upsampling(generator).to(torch.bfloat16), torch.bfloat16)(frames, w)
    assert low.dtype == torch.uint8 and low.shape == frames.shape
    assert psnr(ref.numpy(), low.numpy()) > 30


# --- cache keys --------------------------------------------------------------------------------------


def test_compile_key_names_one_folder_per_configuration(stylecast_cache: Path) -> None:
    key = compile_key("ab" * 32, (1, 1080, 1920), torch.float16, "max-autotune", False, "cpu")
    assert key.shape == "1x1080x1920" and key.dtype == "fp16" and key.torch_version == torch.__version__
    assert key.digest() == compile_key("ab" * 32, (1, 1080, 1920), torch.float16, "max-autotune", False, "cpu").digest()
    changes: dict[str, Any] = {
        "model_sha256": "cd" * 32,
        "shape": "8x1080x1920",
        "dtype": "bf16",
        "mode": "default",
        "channels_last": True,
        "conv_backends": "ATEN,TRITON",
        "device_name": "NVIDIA H100 80GB HBM3",
        "compute_capability": "9.0",
        "torch_version": "2.11.0+cu130",
        "triton_version": "3.5.0",
        "format": key.format + 1,
    }
    assert set(changes) == {f.name for f in fields(CompileKey)}, "every field must change the digest"
    digests = {key.digest()} | {replace(key, **{name: value}).digest() for name, value in changes.items()}
    assert len(digests) == len(changes) + 1
    folder = compile_cache_folder(key)
    assert folder.parent == stylecast_cache / "inductor" and folder.name == key.digest()[:32]


def test_inductor_cache_points_inductor_at_the_folder_and_restores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from torch._inductor.runtime.cache_dir_utils import cache_dir

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "user"))
    with inductor_cache(tmp_path / "entry"):
        assert Path(cache_dir()) == tmp_path / "entry"
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "user")
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR")
    with inductor_cache(tmp_path / "entry"):
        pass
    assert "TORCHINDUCTOR_CACHE_DIR" not in os.environ


# --- compile_generator on the CPU --------------------------------------------------------------------


def test_compile_generator_traces_the_whole_step(stylecast_cache: Path) -> None:
    generator = _random_generator(_quality(channels=8))
    # dynamo's eager backend: the whole step traces as one graph (fullgraph) without inductor's compile time
    model = compile_generator(generator, "cpu", torch.float32, (2, 24, 32), model_sha256="cd" * 32, backend="eager")
    assert model.fallback is None and set(model.compile_seconds) == {(2, 24, 32)}
    assert compile_cache_folder(model.key((2, 24, 32))).is_dir()
    frames, w = _frames(2, 24, 32), _weights(2)
    with torch.inference_mode():
        assert torch.equal(model(frames, w), FrameModel(generator, torch.float32)(frames, w))


def test_a_failing_compiler_falls_back_to_eager(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    def broken(model: Any, **_: Any) -> Any:
        def call(*args: Any) -> Any:
            raise RuntimeError("no C++ compiler\nsecond line")

        return call

    monkeypatch.setattr(compiled.torch, "compile", broken)
    generator = _random_generator(_quality(channels=8))
    with caplog.at_level(logging.WARNING, logger="realtime.compiled"):
        model = compile_generator(generator, "cpu", torch.float32, (1, 20, 20))
    assert model.fallback == "RuntimeError: no C++ compiler"
    assert "running the model eagerly" in caplog.text
    frames, w = _frames(1, 20, 20), _weights(1)
    with torch.inference_mode():
        assert torch.equal(model(frames, w), FrameModel(generator, torch.float32)(frames, w))


def test_compile_is_for_the_torch_backend_only(tiny_model: Path) -> None:
    generator, info = load_model(tiny_model)
    with pytest.raises(BackendUnavailable, match="--compile runs the torch backend"):
        compiled_backend("onnx", generator, info, "auto", "cpu")
    with pytest.raises(BackendUnavailable, match="--compile runs the torch backend"):
        Stylizer.load(tiny_model, backend="onnx", compile=True)
    with pytest.raises(BackendUnavailable, match="bf16 needs CUDA"):
        TorchBackend(generator, info, precision="bf16", device="cpu", compile=True)


def test_run_and_webcam_take_compile() -> None:
    from realtime.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["run", "in.mp4", "-o", "out.mp4", "--backend", "torch", "--compile"]).compile
    assert not parser.parse_args(["webcam"]).compile


# --- CUDA ---------------------------------------------------------------------------------------------


@pytest.mark.cuda
@CUDA
@pytest.mark.parametrize(("dtype", "min_db"), [(torch.float16, 45.0), (torch.bfloat16, 40.0)])
def test_compiled_matches_eager_on_cuda(dtype: torch.dtype, min_db: float) -> None:
    generator = _random_generator(_quality(channels=32, styles=3)).cuda()
    frames, w = _frames(2, 72, 128).cuda(), _weights(2).cuda()
    with torch.inference_mode():
        eager = FrameModel(copy.deepcopy(generator).to(dtype), dtype)(frames, w)
        # "default": the same kernels' numerics as the backend's max-autotune, in a fraction of the compile time
        model = compile_generator(generator, "cuda", dtype, (2, 72, 128), mode="default")
        out = model(frames, w)
    assert model.fallback is None and (2, 72, 128) in model.compile_seconds
    # bf16's 8-bit mantissa: eager rounds every op's output, inductor only each fused kernel's
    assert psnr(eager.cpu().numpy(), out.cpu().numpy()) >= min_db


@pytest.mark.cuda
@CUDA
def test_compiled_backend_on_cuda_matches_eager(tiny_model: Path) -> None:
    generator, info = load_model(tiny_model)
    # Inductor on the CPU works too (--compile --device cpu), but its C++ builds take 20-60 s here.
    backend = TorchBackend(generator, info, precision="fp16", device="cuda", compile=True)
    ref = TorchBackend(*load_model(tiny_model), precision="fp32", device="cuda", cuda_graphs=False)
    assert backend.describe() == "torch/cuda/fp16+compiled"
    for seed in range(3):  # graph replays with new inputs and weights
        frames, w = _frames(2, 72, 128, seed).numpy(), _weights(2, seed=seed).numpy()
        assert psnr(backend(frames, w), ref(frames, w)) >= 45
    step = backend._step
    assert isinstance(step, compiled.CompiledGenerator) and step.fallback is None
    # inductor's caches went into the entry's own folder
    assert any(compile_cache_folder(step.key((2, 72, 128))).iterdir())
    backend.close()


# --- the stream benchmark and the GPU check's smoke mode -----------------------------------------------


class _VirtualClock:
    """``time.perf_counter``/``time.sleep`` on a clock that only the test moves: timing tests without jitter."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class _SaturatedBackend(Backend):
    """Inference takes ``ms_per_frame`` per frame of the batch on ``clock``, as a saturated GPU would."""

    name = "saturated"

    def __init__(self, clock: _VirtualClock, ms_per_frame: float) -> None:
        self.num_styles = 3
        self.clock = clock
        self.ms_per_frame = ms_per_frame

    def upload(self, frames: np.ndarray) -> Any:
        return frames

    def infer(self, inputs: Any, style_weights: np.ndarray) -> Any:
        assert style_weights.shape == (len(inputs), self.num_styles)
        self.clock.sleep(self.ms_per_frame * len(inputs) / 1e3)
        return inputs

    def download(self, outputs: Any) -> np.ndarray:
        return np.asarray(outputs)


def test_batch_plan_pads_to_one_shape() -> None:
    assert batch_plan(1, 4) == [4]
    assert batch_plan(8, 4) == [4, 4]
    assert batch_plan(9, 4) == [4, 4, 4]


def test_max_streams_finds_the_largest_count_that_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _VirtualClock()
    monkeypatch.setattr(streams_module, "time", clock)
    # 30 ms per batch of 2; the last batch of N streams ends 30 * ceil(N / 2) ms after the tick:
    # 4 streams 60 ms (holds under 75 ms), 5 streams 90 ms (fails); ticks every 100 ms.
    cfg = StreamConfig(width=8, height=8, fps=10, seconds=0.5, max_batch=2, p99_limit_ms=75, max_streams=16)
    best, runs = max_streams(_SaturatedBackend(clock, 15.0), cfg)
    assert best == 4
    assert [run.streams for run in runs] == [1, 2, 4, 5, 6, 8]  # doubling, then bisection
    by_count = {run.streams: run for run in runs}
    assert by_count[4].holds and by_count[4].fps_per_stream == pytest.approx(10, rel=0.02)
    assert not by_count[5].holds and by_count[5].latency_ms["p99"] >= 75
    assert by_count[4].frames == 4 * 5  # padding frames are not counted
    # 16 streams need 240 ms a tick: they fall behind, and their latency grows tick by tick
    late = run_streams(_SaturatedBackend(clock, 15.0), 16, cfg)
    assert late.fps_per_stream < 5 and late.latency_ms["max"] > late.latency_ms["p50"] > 240


def test_gpu_check_smoke_mode_writes_every_part(tmp_path: Path) -> None:
    from benchmarks import compiled_bench

    common = ["--smoke", "--seconds", "0.02", "--out", str(tmp_path)]
    sweep = ["sweep", "--archs", "fast", "--batches", "1", "--variants", "eager,compiled"]
    assert compiled_bench.main([*common, *sweep]) == 0
    streams = ["streams", "--archs", "fast", "--variants", "compiled", "--max-streams", "2", "--max-batch", "2"]
    assert compiled_bench.main([*common, *streams]) == 0
    assert compiled_bench.main([*common, "summary"]) == 0
    rows = json.loads((tmp_path / "sweep.json").read_text())["rows"]
    assert [(r["variant"], r["res"], r.get("error")) for r in rows] == [("eager", "64x48", None), ("compiled", "64x48", None)]
    assert rows[1]["compile_s"] > 0 and rows[1]["psnr_vs_eager"] is None  # identical: infinite PSNR
    assert "max_streams" in json.loads((tmp_path / "streams.json").read_text())["rows"][-1]
    summary = (tmp_path / "summary.md").read_text()
    assert "fast 1080p forward >= 1000 fps | - | - | not measured" in summary  # 64x48 rows are no 1080p figures
