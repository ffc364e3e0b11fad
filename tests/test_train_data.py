"""Training data and lineage: the held-out split, what a model file records, growing a model's styles,
the photo-folder preparation and the one-call recipe (tiny, on the CPU)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from realtime.errors import OutputError
from realtime.model import Generator, GeneratorConfig
from realtime.modelfile import StyleInfo, load_model, save_model
from train.config import TrainConfig
from train.data import folder_digest, is_heldout, split_content
from train.prepare import prepare
from train.trainer import Trainer, train

ROOT = Path(__file__).resolve().parents[1]
STYLES = ROOT / "train" / "assets" / "styles"
TINY = dict(batch_size=1, crop=32, style_crop=64, channels=8, res_blocks=1, device="cpu", gan_weight=0.0,
            log_every=1, sample_every=1000, checkpoint_every=1000)


def _photos(folder: Path, names: list[str], size: tuple[int, int] = (48, 40)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in names:
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(folder / name)
    return folder


def _styles(folder: Path, names: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copyfile(STYLES / f"{name}.jpg", folder / f"{name}.jpg")
    return folder


def test_heldout_rule_is_fixed_and_keeps_crops_with_their_wallpaper(tmp_path: Path) -> None:
    names = [f"src_{i:04d}.jpg" for i in range(200)] + [f"src_{i:04d}_c{k}.jpg" for i in range(200) for k in (1, 2)]
    folder = _photos(tmp_path / "p", names, (8, 8))
    train_files, held = split_content(folder, (), 0.1)
    assert 0.03 < len(held) / 600 < 0.2 and len(train_files) + len(held) == 600
    held_names = {f.name for f in held}
    for f in held:  # a held-out wallpaper takes its crops along, and the reverse
        parent = f.name.split("_c")[0].removesuffix(".jpg")
        assert {f"{parent}.jpg", f"{parent}_c1.jpg", f"{parent}_c2.jpg"} <= held_names
    assert all(is_heldout(f, 0.1) for f in held)  # a pure function of the name
    assert split_content(folder, ("src_0000",), 0.0)[1] == [folder / "src_0000.jpg"]


def test_model_records_its_data_by_name_only(tmp_path: Path) -> None:
    photos = _photos(tmp_path / "my photos", [f"ph_{i:03d}.jpg" for i in range(40)])
    (photos / "MANIFEST.csv").write_text("file,licence\n")
    styles = _styles(tmp_path / "styles", ["udnie", "the_scream"])
    out = tmp_path / "run"
    _, info = load_model(train(TrainConfig(styles=str(styles), content=str(photos), holdout_fraction=0.2,
                                           out=str(out), steps=1, **TINY)))
    data = info.train_config["data"]
    assert data["content"] == "my photos" and data["content_digest"] == folder_digest(photos)
    assert data["heldout"] and data["train_files"] + len(data["heldout"]) == 40
    assert info.train_config["machine"] and info.train_config["train_seconds"] >= 0
    # No path of the machine that trained it, anywhere in the record.
    assert str(tmp_path) not in json.dumps(info.train_config)


def test_init_grows_the_styles_and_keeps_the_old_ones(tmp_path: Path) -> None:
    old = Generator(GeneratorConfig(arch="fast", num_styles=2, channels=8, res_blocks=1))
    torch.nn.init.normal_(old.body.stem_norm.gamma)  # rows that differ, so a mix-up would show
    base = tmp_path / "base.stylecast"
    lineage = {"styles": str(tmp_path / "s"), "init_from": {"out": str(tmp_path / "o"), "steps_done": 3}}
    save_model(base, old, [StyleInfo("the_scream"), StyleInfo("udnie")], lineage, "test")
    old, _ = load_model(base)  # model files hold float16 weights
    styles = _styles(tmp_path / "styles", ["great_wave", "the_scream", "udnie"])
    trainer = Trainer(TrainConfig(styles=str(styles), init=str(base), out=str(tmp_path / "run"), steps=0, **TINY))
    grown = trainer.generator.eval()
    assert str(tmp_path) not in json.dumps(trainer.parent)  # the lineage keeps names, not paths
    assert trainer.parent["init_from"] == {"out": "o", "steps_done": 3}
    assert grown.cfg.num_styles == 3 and trainer.styles.names == ["great_wave", "the_scream", "udnie"]
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        for old_i, new_i in ((0, 1), (1, 2)):
            assert torch.equal(old(x, torch.eye(2)[old_i : old_i + 1]), grown(x, torch.eye(3)[new_i : new_i + 1]))
        # The new style starts as a copy of one of the old ones (the nearest by painting Grams).
        new = grown(x, torch.eye(3)[:1])
        assert any(torch.equal(new, old(x, torch.eye(2)[i : i + 1])) for i in range(2))


def test_init_refuses_a_model_whose_styles_are_missing(tmp_path: Path) -> None:
    base = tmp_path / "base.stylecast"
    save_model(base, Generator(GeneratorConfig(arch="fast", num_styles=1, channels=8, res_blocks=1)),
               [StyleInfo("not_a_painting_here")], {}, "test")
    with pytest.raises(Exception, match="not_a_painting_here"):
        Trainer(TrainConfig(init=str(base), out=str(tmp_path / "run"), steps=0, **TINY))


def test_prepare_resizes_copies_the_manifest_and_never_overwrites(tmp_path: Path) -> None:
    src = _photos(tmp_path / "src", ["a.png", "b.jpg"], (120, 80))
    (src / "MANIFEST.csv").write_text("file,licence\na.png,CC0\n")
    dst = tmp_path / "dst"
    assert prepare(src, dst, short_side=40) == 2
    assert sorted(p.name for p in dst.iterdir()) == ["MANIFEST.csv", "a.jpg", "b.jpg"]
    assert Image.open(dst / "a.jpg").size == (60, 40)
    assert (dst / "MANIFEST.csv").read_bytes() == (src / "MANIFEST.csv").read_bytes()
    with pytest.raises(OutputError, match="not empty"):
        prepare(src, dst)
    with pytest.raises(OutputError, match="source"):
        prepare(src, src, overwrite=True)


@pytest.mark.slow
def test_recipe_runs_end_to_end_tiny(tmp_path: Path) -> None:
    """The one-call GPU recipe, with --tiny on the CPU: both models, their logs and their evaluations."""
    photos = _photos(tmp_path / "photos", [f"ph_{i:03d}.jpg" for i in range(60)], (64, 48))
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "train.recipe", "--tiny", "--device", "cpu", "--data", str(photos),
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "recipe.json").read_text())
    assert summary["train_exit_codes"] == {"fast": 0, "quality": 0}
    for model in ("fast", "quality"):
        assert (out / model / "model.stylecast").is_file() and (out / f"{model}.log.csv").is_file()
        assert (out / model / "eval" / "eval.json").is_file()
