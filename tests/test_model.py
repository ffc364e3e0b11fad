"""The generator: shapes for any size, style conditioning, blending, presets, model files."""

from __future__ import annotations

import copy
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch

from realtime.errors import ModelError
from realtime.model import (
    PRESETS,
    CondInstanceNorm,
    Generator,
    GeneratorConfig,
    affine_instance_norm,
    conv_gmacs,
    count_params,
)
from realtime.modelfile import FORMAT_VERSION, StyleInfo, load_model, save_model
from realtime.ort_session import open_session
from tests.conftest import TINY_STYLES


@pytest.fixture(scope="module")
def generator() -> Generator:
    torch.manual_seed(0)
    g = Generator(GeneratorConfig(num_styles=3, channels=8, res_blocks=1, refine_channels=4)).eval()
    with torch.no_grad():
        for m in g.modules():
            if isinstance(m, CondInstanceNorm):
                m.gamma.normal_(1.0, 0.5)
                m.beta.normal_(0.0, 0.5)
    return g


@pytest.mark.parametrize("arch", ["fast", "fast-half", "fast-skip", "quality"])
@pytest.mark.parametrize("size", [(1, 1), (2, 9), (17, 31), (64, 64), (179, 321)])
def test_any_size_round_trips(arch: str, size: tuple[int, int]) -> None:
    base, _, variant = arch.partition("-")
    options = {"half_channels": 8 if variant == "half" else 0, "tail": "skip" if variant == "skip" else "refine"}
    g = Generator(GeneratorConfig(arch=base, num_styles=2, channels=8, res_blocks=1, **options)).eval()  # type: ignore[arg-type]
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        y = g(x, torch.tensor([[1.0, 0.0], [0.3, 0.7]]))
    assert y.shape == x.shape
    assert y.min() >= 0 and y.max() <= 1


def test_styles_differ_and_blend_is_cin_interpolation(generator: Generator) -> None:
    x = torch.rand(1, 3, 40, 56)
    w = torch.eye(3)
    with torch.no_grad():
        outs = generator(x.expand(3, -1, -1, -1), w)
        # CIN blends parameters, so a blend equals running with averaged gamma/beta rows.
        blend = generator(x, torch.tensor([[0.5, 0.5, 0.0]]))
    assert (outs[0] - outs[1]).abs().mean() > 1e-3
    norm = next(m for m in generator.modules() if isinstance(m, CondInstanceNorm))
    h = torch.randn(1, norm.gamma.shape[1], 5, 5)
    mixed = norm(h, torch.tensor([[0.5, 0.5, 0.0]]))
    manual = torch.nn.functional.instance_norm(h) * ((norm.gamma[0] + norm.gamma[1]) / 2)[None, :, None, None] \
        + ((norm.beta[0] + norm.beta[1]) / 2)[None, :, None, None]
    torch.testing.assert_close(mixed, manual)
    assert not torch.allclose(blend, outs[0:1]) and not torch.allclose(blend, outs[1:2])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_folded_norm_equals_instance_norm_then_affine(dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    # Values around 300: an fp16 variance of them (~9e4) would overflow; the statistics must not.
    x = (torch.randn(2, 6, 24, 40) * 300 + 50).to(dtype)
    gamma, beta = torch.randn(2, 6, 1, 1), torch.randn(2, 6, 1, 1)
    expected = torch.nn.functional.instance_norm(x.float(), eps=1e-5) * gamma + beta
    got = affine_instance_norm(x, gamma, beta)
    assert got.dtype == dtype and torch.isfinite(got).all()
    torch.testing.assert_close(got.float(), expected, atol=2e-2 if dtype == torch.float16 else 1e-5, rtol=1e-2)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_fp16_generator_matches_cpu_fp32(generator: Generator) -> None:
    x, w = torch.rand(1, 3, 64, 96), torch.tensor([[0.2, 0.8, 0.0]])
    with torch.no_grad():
        expected = generator(x, w)
        on_gpu = copy.deepcopy(generator).cuda().half()(x.cuda().half(), w.cuda().half())
    torch.testing.assert_close(on_gpu.float().cpu(), expected, atol=1e-2, rtol=0)


def test_batch_items_are_independent(generator: Generator) -> None:
    x = torch.rand(2, 3, 32, 48)
    w = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    with torch.no_grad():
        both = generator(x, w)
        first = generator(x[:1], w[:1])
    torch.testing.assert_close(both[:1], first, atol=1e-5, rtol=1e-4)


def test_presets_are_sized_as_documented() -> None:
    fast = Generator(PRESETS["fast"])
    quality = Generator(PRESETS["quality"])
    assert count_params(fast) < 200_000
    assert conv_gmacs(fast) < 2.0  # real-time budget on a 2-core CPU at 640x360
    assert count_params(quality) > 1_000_000 and conv_gmacs(quality) > 20


def test_model_file_round_trip(tmp_path: Path, generator: Generator) -> None:
    path = tmp_path / "m.stylecast"
    thumb = torch.randint(0, 255, (8, 8, 3), dtype=torch.uint8)
    styles = [StyleInfo(n, f"{i:064x}", thumb) for i, n in enumerate(TINY_STYLES)]
    save_model(path, generator, styles, {"steps": 3}, "vgg16:test")
    loaded, info = load_model(path)
    assert info.style_names == list(TINY_STYLES)
    assert info.train_config == {"steps": 3}
    assert info.perceptual == "vgg16:test"
    assert info.version == FORMAT_VERSION and len(info.sha256) == 64
    assert torch.equal(info.styles[0].thumbnail, thumb)
    x, w = torch.rand(1, 3, 20, 20), torch.tensor([[0.2, 0.3, 0.5]])
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, w), generator(x, w), atol=2e-3, rtol=0)  # fp16 storage


@pytest.mark.parametrize("damage", ["missing", "empty", "text", "truncated", "not_a_model", "newer", "wrong_shape"])
def test_bad_model_files_give_clear_errors(tmp_path: Path, tiny_model: Path, damage: str) -> None:
    path = tmp_path / "bad.stylecast"
    data = tiny_model.read_bytes()
    if damage == "empty":
        path.write_bytes(b"")
    elif damage == "text":
        path.write_text("hello, I am not a model")
    elif damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage in ("not_a_model", "newer", "wrong_shape"):
        payload = torch.load(tiny_model, weights_only=True)
        if damage == "not_a_model":
            payload = {"weights": torch.zeros(3)}
        elif damage == "newer":
            payload["version"] = FORMAT_VERSION + 1
        else:
            cfg = json.loads(payload["config"])
            cfg["channels"] = 16
            payload["config"] = json.dumps(cfg)
        buf = io.BytesIO()
        torch.save(payload, buf)
        path.write_bytes(buf.getvalue())
    with pytest.raises(ModelError) as err:
        load_model(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    if damage == "newer":
        assert "newer" in message


def test_model_file_is_written_atomically(tmp_path: Path, generator: Generator, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "m.stylecast"
    save_model(path, generator, [StyleInfo(n) for n in TINY_STYLES])
    before = path.read_bytes()

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("os.fsync", boom)
    with pytest.raises(OSError):
        save_model(path, generator, [StyleInfo(n) for n in TINY_STYLES], {"changed": True})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.stylecast"]
    assert zipfile.is_zipfile(path)


@pytest.mark.parametrize(("variant", "layers"), [({"half_channels": 8}, {"half_stem", "half_conv", "refine1"}),
                                                  ({"tail": "skip"}, {"skip"})])
def test_fast_variants_export_and_reload(tmp_path: Path, variant: dict[str, Any], layers: set[str]) -> None:
    """The fast body's options (a 1/2-resolution stage, the skip tail) survive the model file and the ONNX export."""
    from realtime.export import export_onnx, verify_onnx

    torch.manual_seed(1)
    g = Generator(GeneratorConfig(num_styles=len(TINY_STYLES), channels=8, res_blocks=1, **variant)).eval()
    assert layers <= {n for n, _ in g.body.named_children()}
    if "tail" in variant:
        assert not {"refine1", "refine2"} & {n for n, _ in g.body.named_children()}
    path = tmp_path / "variant.stylecast"
    save_model(path, g, [StyleInfo(n) for n in TINY_STYLES])
    loaded, info = load_model(path)
    assert loaded.cfg == g.cfg
    x, w = torch.rand(1, 3, 40, 56), torch.eye(len(TINY_STYLES))[:1]
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, w), g(x, w), atol=2e-3, rtol=0)  # fp16 storage
    onnx_path = export_onnx(loaded, info, tmp_path / "variant.onnx")
    assert verify_onnx(loaded, onnx_path) < 1e-4
    # and as ONNX Runtime runs it, the norms folded
    with torch.no_grad():
        expected = loaded(x, w).numpy()
    got = open_session(onnx_path, threads=1).run(None, {"frames": x.numpy(), "style_weights": w.numpy()})[0]
    assert abs(got - expected).max() < 1e-4


def test_norms_keep_fp32_statistics_under_cpu_autocast(generator: Generator) -> None:
    x, w = torch.rand(2, 3, 32, 48), torch.tensor([[1.0, 0.0, 0.0], [0.2, 0.3, 0.5]])
    with torch.no_grad():
        expected = generator(x, w)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = generator(x, w)
    assert (got.float() - expected).abs().max() < 0.1


def test_unknown_or_impossible_tails_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown fast tail"):
        Generator(GeneratorConfig(tail="bilinear"))
    with pytest.raises(ValueError, match="half_channels"):
        Generator(GeneratorConfig(tail="skip", half_channels=8))
