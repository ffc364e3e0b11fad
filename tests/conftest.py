"""Shared fixtures. Add yours; never remove others'."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from realtime.model import CondInstanceNorm, Generator, GeneratorConfig
from realtime.modelfile import StyleInfo, save_model

SAMPLE_VIDEO = Path(__file__).resolve().parents[1] / "realtime" / "assets" / "sample.mp4"
TINY_STYLES = ("candy", "mosaic", "wave")


def make_tiny_model(path: Path, arch: str = "fast", channels: int = 8, seed: int = 0, output_gain: float = 1.0) -> Path:
    """A small random generator whose styles really differ (random per-style norm affines).

    At the default initialisation its outputs stay within a few percent of mid-grey; ``output_gain``
    scales the last convolution so that they span the range, as a trained model's do (a fit that must
    move the outputs towards a painting needs that)."""
    torch.manual_seed(seed)
    cfg = GeneratorConfig(arch=arch, num_styles=len(TINY_STYLES), channels=channels, res_blocks=1, refine_channels=4)  # type: ignore[arg-type]
    generator = Generator(cfg)
    with torch.no_grad():
        for module in generator.modules():
            if isinstance(module, CondInstanceNorm):
                module.gamma.copy_(1.0 + 0.5 * torch.randn_like(module.gamma))
                module.beta.copy_(0.5 * torch.randn_like(module.beta))
        last = [m for m in generator.modules() if isinstance(m, torch.nn.Conv2d)][-1]
        last.weight.mul_(output_gain)
        last.bias.mul_(output_gain)
    save_model(path, generator, [StyleInfo(name) for name in TINY_STYLES])
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("model") / "tiny.stylecast")


@pytest.fixture(autouse=True)
def stylecast_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep derived artifacts (ONNX exports, engines) out of the user's cache; shared per session."""
    cache = tmp_path_factory.getbasetemp() / "stylecast-cache"
    monkeypatch.setenv("STYLECAST_CACHE", str(cache))
    return cache


@pytest.fixture(scope="session")
def frame_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twelve small, different, smooth-ish RGB images: calibration and gate input that decodes fast."""
    import cv2
    import numpy as np

    folder = tmp_path_factory.mktemp("frames")
    rng = np.random.default_rng(0)
    for i in range(12):
        noise = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
        image = cv2.resize(noise, (64, 48), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(folder / f"{i:02d}.png"), image)
    return folder
