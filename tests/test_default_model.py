"""The bundled default (fast) model: loads offline, records its lineage without paths, and its
styles are what they claim on photos that no stage of its training saw.

The figures are the ``stylecast eval`` measures (realtime.metrics) on the three bundled photos that
every training stage held out, at 256 px to keep the suite quick. The thresholds sit below what the
shipped model measures here (see docs/quality.md for the full held-out evaluation).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from realtime import metrics
from realtime.modelfile import bundled_models, default_model_path, load_model
from train.config import TrainConfig
from train.data import read_rgb, split_content
from train.vgg import VGGFeatures, find_vgg

LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")


@pytest.fixture(scope="module")
def measured() -> dict[str, torch.Tensor]:
    generator, info = load_model(None)
    vgg = VGGFeatures(find_vgg(), LAYERS)
    cfg = TrainConfig()
    paintings = [read_rgb(Path(cfg.styles) / f"{name}.jpg", 192)[None].float() / 255 for name in info.style_names]
    _, held = split_content(cfg.content, cfg.holdout)
    photos = [read_rgb(f, 256)[None].float() / 255 for f in held]
    n = len(info.style_names)
    with torch.no_grad():
        targets = {layer: torch.cat([metrics.gram(vgg(p)[layer]) for p in paintings]) for layer in LAYERS}
        accuracy, grid, own = [], [], []
        blends = []
        for x in photos:
            own.append(metrics.grid_energy(x))
            eye = torch.eye(n)
            outs = generator(x.expand(n, -1, -1, -1), eye)
            feats = vgg(outs)
            d = metrics.style_distance({k: metrics.gram(feats[k]) for k in LAYERS}, targets)
            accuracy.append(metrics.nearest_style(d, list(range(n))).float())
            grid.append(metrics.grid_energy(outs))
            for a, b in ((0, 1), (3, 4), (2, 6)):
                w = torch.stack([eye[a], 0.5 * (eye[a] + eye[b]), eye[b]])
                fb = vgg(generator(x.expand(3, -1, -1, -1), w))
                db = metrics.style_distance({k: metrics.gram(fb[k]) for k in LAYERS}, targets)
                blends.append((db[0, a] < db[1, a] < db[2, a]) and (db[2, b] < db[1, b] < db[0, b]))
    return {"accuracy": torch.stack(accuracy).mean(), "grid": torch.stack(grid).mean(),
            "own_grid": torch.stack(own).mean(), "blends": torch.tensor(blends).float().mean()}


def test_loads_offline_with_16_named_styles_and_its_lineage() -> None:
    generator, info = load_model(default_model_path())
    assert len(info.style_names) >= 16 and len(set(info.style_names)) == len(info.style_names)
    assert "fast" in bundled_models() and info.config.arch == "fast"
    record = info.train_config
    assert info.perceptual.startswith("vgg16:") and record["steps_done"] > 1000
    assert record["data"]["content_digest"] and len(record["data"]["heldout"]) >= 50 and record["machine"]
    # A model file is shared: it holds file names, never the paths of the machine that trained it.
    assert '"/' not in json.dumps(record)
    assert default_model_path().stat().st_size < 5_000_000


def test_styles_are_nearest_their_own_paintings(measured: dict[str, torch.Tensor]) -> None:
    assert measured["accuracy"] >= 0.6, f"nearest-style accuracy {measured['accuracy']:.2f}"


def test_half_blends_lie_between_their_endpoints(measured: dict[str, torch.Tensor]) -> None:
    assert measured["blends"] >= 0.66, f"blends between endpoints: {measured['blends']:.2f}"


def test_no_4_pixel_grid(measured: dict[str, torch.Tensor]) -> None:
    """Issue target: grid energy at most 2x the photos' own."""
    assert measured["grid"] < 2 * measured["own_grid"], f"{measured['grid']:.2e} against {measured['own_grid']:.2e}"
