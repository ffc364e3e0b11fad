"""``stylecast eval``: the perceptual measures of realtime.metrics, VGG weight detection, and the command end to end."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from benchmarks.evaluate import (
    LAYERS,
    EvalConfig,
    bundled_paintings,
    bundled_reference,
    evaluate,
    perceptual_distances,
    read_image,
)
from realtime import metrics
from realtime.cli import main
from realtime.errors import InputError, ModelError, OutputError
from realtime.model import Generator, GeneratorConfig
from realtime.modelfile import StyleInfo, load_model, save_model
from tests.conftest import TINY_STYLES, make_tiny_model
from train import losses
from train.vgg import BUNDLED_VGG, IMAGENET_VGG, VGGFeatures, bundled_vgg_path, find_vgg

CONTENT = Path(__file__).resolve().parents[1] / "train" / "assets" / "content"


@pytest.fixture(scope="module")
def vgg() -> VGGFeatures:
    return VGGFeatures(find_vgg(bundled_vgg_path()), LAYERS)


def _features(vgg: VGGFeatures, images: list[np.ndarray]) -> dict[str, torch.Tensor]:
    with torch.inference_mode():
        return vgg(torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255)


def _grams(vgg: VGGFeatures, images: list[np.ndarray]) -> dict[str, torch.Tensor]:
    """Gram matrices of images of any sizes, one row each."""
    feats = [_features(vgg, [im]) for im in images]
    return {k: torch.cat([metrics.gram(f[k]) for f in feats]) for k in LAYERS}


@pytest.fixture(scope="module")
def paintings() -> dict[str, np.ndarray]:
    folder = bundled_paintings()
    return {name: read_image(folder / f"{name}.jpg", 96) for name in ("great_wave", "starry_night", "the_scream")}


def test_gram_is_normalized_by_size() -> None:
    f = torch.ones(1, 2, 3, 4)
    assert torch.allclose(metrics.gram(f), torch.full((1, 2, 2), 1 / 2))  # 12 products of 1 over C*H*W = 24


def test_style_distance_is_zero_to_itself_and_positive_to_others(vgg: VGGFeatures, paintings: dict[str, np.ndarray]) -> None:
    grams = _grams(vgg, list(paintings.values()))
    d = metrics.style_distance(grams, grams)
    assert d.shape == (3, 3)
    assert torch.allclose(d.diagonal(), torch.zeros(3), atol=1e-6)
    assert (d + torch.eye(3) > 0.1).all()
    # An all-black output scores 1 per layer whose features vanish: the normalization's scale.
    zero = {k: torch.zeros_like(g[:1]) for k, g in grams.items()}
    assert torch.allclose(metrics.style_distance(zero, grams), torch.full((1, 3), float(len(LAYERS))))


def test_nearest_style_picks_the_painting_a_crop_comes_from(vgg: VGGFeatures, paintings: dict[str, np.ndarray]) -> None:
    images = list(paintings.values())
    crops = [im[-48:, -48:] for im in images]  # a corner of each painting: other pixels, same style
    d = metrics.style_distance(_grams(vgg, crops), _grams(vgg, images))
    assert metrics.nearest_style(d, [0, 1, 2]).all()
    assert not metrics.nearest_style(d, [1, 2, 0]).any()


def test_nearest_style_needs_a_strict_win() -> None:
    d = torch.tensor([[1.0, 1.0], [0.5, 2.0]])
    assert metrics.nearest_style(d, [0, 0]).tolist() == [False, True]


def test_content_distance_is_relative(vgg: VGGFeatures) -> None:
    photo = read_image(CONTENT / "chelsea.jpg", 64)
    feats = _features(vgg, [photo, np.zeros_like(photo), photo // 2 + 64])["relu3_3"]
    d = metrics.content_distance(feats, feats[:1].expand_as(feats))
    assert d[0] == 0 and 0 < d[2] < d[1]


def test_grid_energy_finds_a_4_pixel_grid_and_not_smooth_images() -> None:
    y, x = torch.meshgrid(torch.linspace(0, 6.28, 64), torch.linspace(0, 6.28, 64), indexing="ij")
    smooth = (0.5 + 0.05 * torch.stack([x.sin(), y.cos(), (x + y).sin()]))[None]  # a slowly varying image
    pattern = torch.zeros(64, 64)
    pattern[::4, ::4] = 0.1  # one bright pixel per 4x4 cell: what a stride-4 stem prints
    grid = smooth + pattern
    assert metrics.grid_energy(grid) > 1e-4
    assert metrics.grid_energy(smooth) < 1e-2 * metrics.grid_energy(grid)
    noise = smooth + 0.1 * torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    assert metrics.grid_energy(noise) < 0.1 * metrics.grid_energy(grid)  # texture cancels, the grid does not
    # The trainer's penalty is the same function (one definition), and it is differentiable.
    grid.requires_grad_(True)
    loss = losses.grid_loss(grid)
    loss.backward()
    assert loss.item() == metrics.grid_energy(grid).item() and grid.grad is not None


def test_vgg_preprocessing_is_told_by_name_or_entry(tmp_path: Path) -> None:
    assert find_vgg(bundled_vgg_path(BUNDLED_VGG)).caffe
    assert not find_vgg(bundled_vgg_path(IMAGENET_VGG)).caffe
    with np.load(bundled_vgg_path(IMAGENET_VGG)) as z:
        state = {k: z[k] for k in z.files}
    tagged = tmp_path / "weights.npz"
    np.savez(tagged, preprocessing=np.array("caffe"), **state)
    assert find_vgg(tagged).caffe
    VGGFeatures(find_vgg(tagged), ("relu1_2",))  # the extra entry is not a layer
    unnamed = tmp_path / "vgg16.npz"
    np.savez(unnamed, **state)
    with pytest.raises(ModelError, match="cannot tell the preprocessing"):
        find_vgg(unnamed)


# --- the command ------------------------------------------------------------------------------------


def _photos(folder: Path, count: int = 2) -> Path:
    folder.mkdir()
    for name in ("chelsea.jpg", "coffee.jpg", "rocket.jpg")[:count]:
        (folder / name).symlink_to(CONTENT / name)
    return folder


def test_quick_eval_of_the_bundled_model_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    photos = _photos(tmp_path / "photos")
    out = tmp_path / "eval"
    assert main(["eval", "--photos", str(photos), "--quick", "--reference", "-o", str(out)]) == 0
    assert "nearest-style accuracy" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["eval.json", "eval.md", "grid.jpg", "reference.jpg"]
    result = json.loads((out / "eval.json").read_text())
    assert result["perceptual"]["weights"].startswith("vgg16:" + BUNDLED_VGG)
    per_style = result["per_style"]
    _, info = load_model(None)
    assert list(per_style) == info.style_names[:2] and result["overall"]["photos"] == 4
    for figures in [*per_style.values(), result["overall"]]:
        assert 0 <= figures["nearest_style_accuracy"] <= 1 and figures["style_distance"] > 0
        assert 0 < figures["content_distance"] < 5 and figures["grid_energy"] > 0
    assert result["grid"]["photo_energy"] > 0 and result["grid"]["ratio"] > 0
    assert result["blend"][0]["a"] == info.style_names[0] and len(result["blend"][0]["distance_to_a"]) == 3
    # Flicker on each default clip: the bundled animation and the camera pan.
    assert [Path(f["clip"]).name for f in result["flicker"]] == ["sample.mp4", "documerica_0047_pan.mp4"]
    for flicker in result["flicker"]:
        assert flicker["frames"] == 4 and flicker["size"] == [128, 72] and flicker["stylecast"]["ratio_to_input"] > 0
    assert "documerica_0047_pan.mp4" in (out / "eval.md").read_text()
    ref = result["reference"]
    assert ref["style"] == "udnie" and ref["external"]["style_distance"] < ref["stylecast"]["style_distance"]
    # The same folder again is refused, and allowed with --overwrite.
    assert main(["eval", "--photos", str(photos), "--quick", "--no-clip", "-o", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err


@pytest.fixture
def tiny_setup(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A 3-style tiny model, a painting for each of its styles, and two photos."""
    model = make_tiny_model(tmp_path / "tiny.stylecast")
    paintings = tmp_path / "paintings"
    paintings.mkdir()
    rng = np.random.default_rng(0)
    from PIL import Image

    for k, name in enumerate(TINY_STYLES):
        image = np.kron(rng.integers(0, 256, (8, 8, 3)), np.ones((4 + 2 * k, 4 + 2 * k, 1))).astype(np.uint8)
        Image.fromarray(image).save(paintings / f"{name}.png")
    return model, paintings, _photos(tmp_path / "photos")


def _tiny(model: Path | None, paintings: Path | None, photos: Path, out: Path, **kw: Any) -> EvalConfig:
    cfg = EvalConfig(photos=photos, out=out, model=model, paintings=paintings, clips=()).quick_mode()
    return replace(cfg, **{"photo_side": 64, "painting_side": 48, "max_styles": 3, **kw})


def test_heldout_photos_and_painting_mismatch(tiny_setup: tuple[Path, Path, Path], tmp_path: Path) -> None:
    model, paintings, photos = tiny_setup
    generator = Generator(GeneratorConfig(arch="fast", num_styles=3, channels=8, res_blocks=1, refine_channels=4))
    styles = [StyleInfo(name, "0" * 64 if name == "mosaic" else "") for name in TINY_STYLES]
    save_model(model, generator, styles, train_config={"data": {"heldout": ["coffee.jpg", "elsewhere.jpg"]}})
    result = evaluate(_tiny(model, paintings, photos, tmp_path / "a", heldout=True))
    assert result["photos"] == ["coffee.jpg"]
    assert list(result["per_style"]) == list(TINY_STYLES) and len(result["blend"]) == 1
    assert any("mosaic" in n and "not the painting" in n for n in result["notes"])


def test_bad_input_gives_one_line_errors(tiny_setup: tuple[Path, Path, Path], tmp_path: Path) -> None:
    model, paintings, photos = tiny_setup
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no images"):
        evaluate(_tiny(model, paintings, empty, tmp_path / "o1"))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "x.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(InputError, match="cannot read image"):
        evaluate(_tiny(model, paintings, broken, tmp_path / "o2"))
    (paintings / "wave.png").unlink()
    with pytest.raises(InputError, match="no painting for style 'wave'"):
        evaluate(_tiny(model, paintings, photos, tmp_path / "o3"))
    photo, _ = bundled_reference()
    with pytest.raises(InputError, match="not the shape"):
        evaluate(_tiny(None, None, photos, tmp_path / "o4", max_styles=1, reference=(photo, CONTENT / "rocket.jpg")))
    styleless = tmp_path / "styleless.stylecast"
    save_model(styleless, Generator(GeneratorConfig(arch="fast", num_styles=0, channels=8, res_blocks=1)), [])
    with pytest.raises(ModelError, match="no styles"):
        evaluate(_tiny(styleless, paintings, photos, tmp_path / "o5"))
    file = tmp_path / "file"
    file.write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        evaluate(_tiny(model, paintings, photos, file))


def test_perceptual_distances_of_outside_outputs_read_like_the_eval(tmp_path: Path) -> None:
    """The bench's table: a styled output is nearer its painting than the plain photo is; a photo is at
    content distance 0 from itself; a style without a painting gives no figures rather than zeros."""
    generator, info = load_model(None)
    photo = read_image(CONTENT / sorted(p.name for p in CONTENT.iterdir())[0], 256)
    k = info.style_names.index("woman_with_a_hat")
    with torch.no_grad():
        x = torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 255
        styled = (generator(x, torch.eye(info.config.num_styles)[k : k + 1])[0].permute(1, 2, 0) * 255).round().byte().numpy()
    result = perceptual_distances(generator, info, [photo], {"woman_with_a_hat": [styled]})
    unstyled = perceptual_distances(generator, info, [photo], {"woman_with_a_hat": [photo]})
    assert result is not None and unstyled is not None and "eval" in result["source"]
    ours, plain = result["styles"]["woman_with_a_hat"], unstyled["styles"]["woman_with_a_hat"]
    assert plain["content_distance"] == pytest.approx(0.0, abs=1e-6)
    assert ours["nearest_style_accuracy"] == 1.0 and 0 < ours["style_distance"] < plain["style_distance"]
    assert next(generator.parameters()).device.type == "cpu"
    path = make_tiny_model(tmp_path / "unknown.stylecast")  # styles with no bundled painting
    tiny, tiny_info = load_model(path)
    assert perceptual_distances(tiny, tiny_info, [photo], {TINY_STYLES[0]: [photo]}) is None
