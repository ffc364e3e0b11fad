"""``stylecast add-style``, ``--style-image`` and ``Stylizer.add_style`` end to end on the CPU, with tiny settings."""

from __future__ import annotations

import csv
import hashlib
import logging
import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from realtime.cli import main
from realtime.errors import InputError, ModelError, OutputError, StyleError
from realtime.export import export_onnx, verify_onnx
from realtime.metrics import gram, style_distance
from realtime.modelfile import load_model, save_model
from tests.conftest import TINY_STYLES, make_tiny_model
from train import style_cache
from train.add_style import Fitter, add_style, bundled_photos, read_painting, samples_path
from train.data import is_heldout, list_images, read_rgb
from train.style_recipe import FitRecipe
from train.vgg import VGGFeatures, find_vgg

#: Enough steps at a high rate for the tiny model's new style to move clearly towards its painting.
TINY = FitRecipe(steps=25, size=32, batch_size=2, lr=0.1, style_side=64)
LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")


def painting(path: Path, seed: int = 0, size: tuple[int, int] = (96, 80), mode: str = "RGB") -> Path:
    """Bold diagonal colour stripes: a style far from any random model's output."""
    yy, xx = np.mgrid[0 : size[1], 0 : size[0]]
    rng = np.random.default_rng(seed)
    colors = rng.integers(0, 256, (2, 3))
    stripe = ((xx + yy) // 6 % 2).astype(bool)
    arr = np.where(stripe[..., None], colors[0], colors[1]).astype(np.uint8)
    Image.fromarray(arr).convert(mode).save(path)
    return path


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("add_style")
    base = make_tiny_model(root / "base.stylecast", output_gain=8.0)
    art = painting(root / "stripes.png")
    before = hashlib.sha256(base.read_bytes()).hexdigest()
    out = add_style(base, [art], ["stripes"], root / "new.stylecast", recipe=TINY, device="cpu", progress=False)
    assert hashlib.sha256(base.read_bytes()).hexdigest() == before, "the input model was modified"
    return {"base": base, "painting": art, "out": out}


def test_output_holds_old_styles_and_the_new_one(fitted: dict[str, Path]) -> None:
    _, info = load_model(fitted["out"])
    assert info.style_names == [*TINY_STYLES, "stripes"]
    new = info.styles[-1]
    assert new.source_sha256 == hashlib.sha256(fitted["painting"].read_bytes()).hexdigest()
    assert new.thumbnail is not None and new.thumbnail.shape[-1] == 3
    record = info.train_config["add_style"][-1]
    assert record["steps_done"] == TINY.steps and record["init_style"] in TINY_STYLES
    assert Image.open(samples_path(fitted["out"])).size[0] > 0


def test_the_fit_uses_the_content_layer_the_base_model_was_trained_with(
    fitted: dict[str, Path], tmp_path: Path, tiny_model: Path,
) -> None:
    assert load_model(fitted["out"])[1].train_config["add_style"][-1]["content_layer"] == "relu2_2"  # none recorded
    generator, info = load_model(tiny_model)
    base = tmp_path / "relu3_3.stylecast"
    save_model(base, generator, list(info.styles), train_config={"content_layer": "relu3_3"})
    out = add_style(base, [fitted["painting"]], ["stripes"], tmp_path / "new.stylecast", device="cpu", progress=False,
                    recipe=FitRecipe(steps=1, size=32, batch_size=1, style_side=64))
    assert load_model(out)[1].train_config["add_style"][-1]["content_layer"] == "relu3_3"


def test_a_time_limit_ends_the_fit_in_fewer_steps(fitted: dict[str, Path], tmp_path: Path, tiny_model: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    recipe = FitRecipe(steps=100_000, size=32, batch_size=1, style_side=64, max_minutes=0.02)
    assert recipe.digest() != replace(recipe, max_minutes=0.0).digest()  # a cache key of its own
    with caplog.at_level(logging.INFO, logger="train.add_style"):
        out = add_style(tiny_model, [fitted["painting"]], ["stripes"], tmp_path / "new.stylecast", device="cpu",
                        progress=False, recipe=recipe)
    record = load_model(out)[1].train_config["add_style"][-1]
    assert 1 <= record["steps_done"] < recipe.steps and record["seconds"] < 30
    assert "time limit of 0.02 min reached" in caplog.text
    with pytest.raises(StyleError, match="time limit"):
        FitRecipe(max_minutes=-1)


def test_content_targets_are_computed_once_for_a_pool_of_crops(tiny_model: Path) -> None:
    generator, info = load_model(tiny_model)
    recipe = FitRecipe(steps=3, size=32, batch_size=2, pool=4, style_side=64)
    fitter = Fitter(generator, info.perceptual, recipe, torch.device("cpu"), bundled_photos(), "relu2_2")
    assert fitter.pool.shape == (4, 3, 32, 32)
    with torch.no_grad():
        want = fitter.vgg(fitter.pool, until="relu2_2")["relu2_2"]
    torch.testing.assert_close(fitter.pool_targets.float(), want, rtol=1e-2, atol=1e-2 * float(want.abs().max()))
    # never more crops than the fit can draw (steps x batch)
    wide = Fitter(generator, info.perceptual, replace(recipe, pool=100), torch.device("cpu"), bundled_photos(), "relu2_2")
    assert len(wide.pool) == 6


def test_old_styles_are_bit_identical(fitted: dict[str, Path]) -> None:
    base, _ = load_model(fitted["base"])
    ext, _ = load_model(fitted["out"])
    x = torch.rand(2, 3, 40, 56, generator=torch.Generator().manual_seed(1))
    n = len(TINY_STYLES)
    blends = [*torch.eye(n), torch.tensor([0.3, 0.7, 0.0])]
    with torch.no_grad():
        for w in blends:
            old = base(x, w.expand(2, n))
            new = ext(x, torch.cat([w, torch.zeros(1)]).expand(2, n + 1))
            assert torch.equal(old, new)
        assert not torch.equal(ext(x, torch.eye(n + 1)[n].expand(2, -1)), ext(x, torch.eye(n + 1)[0].expand(2, -1)))


def test_new_style_is_nearer_its_painting_and_blends_between(fitted: dict[str, Path]) -> None:
    ext, info = load_model(fitted["out"])
    start = info.style_names.index(info.train_config["add_style"][-1]["init_style"])
    vgg = VGGFeatures(find_vgg(), LAYERS)
    target = {k: gram(v) for k, v in vgg(read_rgb(fitted["painting"])[None].float() / 255).items()}
    photos = torch.stack([read_rgb(f)[:, :64, :64].float() / 255 for f in list_images(bundled_photos())[:4]])
    n = ext.cfg.num_styles

    def distance(t: float) -> float:
        w = torch.zeros(len(photos), n)
        w[:, start], w[:, n - 1] = 1 - t, t
        with torch.no_grad():
            feats = vgg(ext(photos, w))
        return float(style_distance({k: gram(feats[k]) for k in LAYERS}, target).mean())

    d_old, d_blend, d_new = distance(0.0), distance(0.5), distance(1.0)
    assert d_new < d_blend < d_old


def test_extended_model_exports_to_onnx(fitted: dict[str, Path], tmp_path: Path) -> None:
    generator, info = load_model(fitted["out"])
    path = export_onnx(generator, info, tmp_path / "new.onnx")
    assert verify_onnx(generator, path) <= 1e-3


def test_cli_add_style(tmp_path: Path, tiny_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    art = painting(tmp_path / "my art.png", seed=3)
    out = tmp_path / "cli.stylecast"
    code = main(["-q", "add-style", str(art), "--model", str(tiny_model), "-o", str(out), "--steps", "2", "--size", "32"])
    assert code == 0, capsys.readouterr().err
    assert load_model(out)[1].style_names == [*TINY_STYLES, "my_art"]
    assert samples_path(out).is_file()


def test_style_cache_hits_and_refits_a_damaged_entry(
    tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("STYLECAST_CACHE", str(tmp_path / "cache"))
    fits: list[int] = []
    real_extend = style_cache.extend

    def counting_extend(*args: Any, **kwargs: Any) -> Any:
        fits.append(1)
        return real_extend(*args, **kwargs)

    monkeypatch.setattr(style_cache, "extend", counting_extend)
    art = painting(tmp_path / "wave.png", seed=5)  # the stem clashes with the model's style "wave"
    recipe = FitRecipe(steps=2, size=32, batch_size=1, style_side=64)

    path, name = style_cache.style_model(tiny_model, art, recipe=recipe, device="cpu", progress=False)
    assert name.startswith("wave_") and load_model(path)[1].style_names[-1] == name and len(fits) == 1
    assert style_cache.style_model(tiny_model, art, recipe=recipe, device="cpu", progress=False) == (path, name)
    assert len(fits) == 1, "the second use must come from the cache"

    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        again, _ = style_cache.style_model(tiny_model, art, recipe=recipe, device="cpu", progress=False)
    assert len(fits) == 2 and "unusable" in caplog.text
    assert load_model(again)[1].style_names[-1] == name


def test_style_image_in_run_and_stylizer(tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from realtime.api import Stylizer

    monkeypatch.setenv("STYLECAST_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(style_cache, "FitRecipe", lambda: FitRecipe(steps=2, size=32, batch_size=1, style_side=64))
    art = painting(tmp_path / "dots.png", seed=7)
    photo = tmp_path / "photo.png"
    Image.fromarray(read_rgb(list_images(bundled_photos())[0], 64).permute(1, 2, 0).numpy()).save(photo)
    out = tmp_path / "out.png"
    code = main(["-q", "run", str(photo), "-o", str(out), "--model", str(tiny_model), "--style-image", str(art),
                 "--backend", "torch", "--device", "cpu"])
    assert code == 0 and out.is_file()
    assert len(list((tmp_path / "cache" / "styles").glob("*.stylecast"))) == 1

    stylizer = Stylizer.load(tiny_model, backend="torch", device="cpu")
    assert stylizer.add_style(art, progress=False) == "dots"  # from the cache the run filled
    assert stylizer.style_names == [*TINY_STYLES, "dots"]
    assert stylizer.controller.describe(stylizer.controller.weights_for(0, 0.0)).startswith("dots")
    assert stylizer(np.zeros((20, 24, 3), np.uint8)).shape == (20, 24, 3)


def test_a_bad_style_with_a_style_image_fails_before_the_fit(
    tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STYLECAST_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(style_cache, "extend", lambda *a, **k: pytest.fail("fitted before checking --style"))
    art = painting(tmp_path / "dots.png", seed=7)
    photo = tmp_path / "photo.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(photo)
    for extra in (["--style", "dots:0.5,no_such_style:0.5"], ["--schedule", str(tmp_path / "missing.toml")]):
        code = main(["-q", "run", str(photo), "-o", str(tmp_path / "out.png"), "--model", str(tiny_model),
                     "--style-image", str(art), *extra])
        err = capsys.readouterr().err
        assert code != 0 and err.count("\n") == 1 and "Traceback" not in err, err
    # the new style's own name is known before the fit, so a blend with it passes the check
    monkeypatch.setattr(style_cache, "extend", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    code = main(["-q", "run", str(photo), "-o", str(tmp_path / "out.png"), "--model", str(tiny_model),
                 "--style-image", str(art), "--style", f"dots:0.5,{TINY_STYLES[0]}:0.5"])
    assert code != 0 and "interrupted" in capsys.readouterr().err.lower()


def test_a_style_s_own_painting_needs_no_fit(tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    art = painting(tmp_path / "mine.png", seed=9)
    sha = hashlib.sha256(art.read_bytes()).hexdigest()
    generator, info = load_model(tiny_model)
    from dataclasses import replace

    from realtime.modelfile import save_model

    base = tmp_path / "own.stylecast"
    save_model(base, generator, [replace(info.styles[0], source_sha256=sha), *info.styles[1:]])
    monkeypatch.setattr(style_cache, "extend", lambda *a, **k: pytest.fail("fitted a style the model has"))
    assert style_cache.style_model(base, art, device="cpu", progress=False) == (base, TINY_STYLES[0])


def test_grayscale_painting_is_read_as_gray_rgb(tmp_path: Path) -> None:
    item = read_painting(painting(tmp_path / "gray.png", mode="L"), "gray", 64)
    assert item.image.shape[0] == 3 and torch.equal(item.image[0], item.image[1])


def test_a_painting_is_read_upright(tmp_path: Path) -> None:
    """A camera's EXIF orientation (6: turn 90 degrees clockwise to show) applies, as in ``run``."""
    arr = np.zeros((80, 120, 3), np.uint8)
    arr[:, :10] = 255  # a white band down the stored image's left edge
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(arr).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    item = read_painting(tmp_path / "phone.jpg", "phone", 256)
    assert tuple(item.image.shape) == (3, 120, 80)  # shown upright: taller than wide
    assert item.image[:, :10].float().mean() > 200  # the left band is now along the top


def test_a_decompression_bomb_is_a_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    art = painting(tmp_path / "big.png", size=(96, 80))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow refuses images over twice this
    with pytest.raises(InputError, match="megapixel limit"):
        read_painting(art, "big", 64)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)  # between once and twice: Pillow only warns
    monkeypatch.setattr("train.data.MAX_IMAGE_PIXELS", 5000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning may reach the user
        with pytest.raises(InputError, match="96x80, over the 0-megapixel limit"):
            read_painting(art, "big", 64)


def _text(path: Path) -> Path:
    path.write_text("not a picture")
    return path


def _cmyk(path: Path) -> Path:
    painting(path.with_suffix(".png"))
    Image.open(path.with_suffix(".png")).convert("CMYK").save(path)
    return path


BAD_INPUTS: dict[str, tuple[Callable[[Path], Path], dict[str, Any], type[Exception]]] = {
    "not an image": (lambda d: _text(d / "notes.jpg"), {}, InputError),
    "tiny image": (lambda d: painting(d / "tiny.png", size=(40, 120)), {}, InputError),
    "CMYK": (lambda d: _cmyk(d / "cmyk.jpg"), {}, InputError),
    "missing": (lambda d: d / "absent.png", {}, InputError),
    "name clash": (lambda d: painting(d / "p.png"), {"names": [TINY_STYLES[0]]}, StyleError),
    "bad name": (lambda d: painting(d / "p.png"), {"names": ["a:b"]}, StyleError),
    "names count": (lambda d: painting(d / "p.png"), {"names": ["x", "y"]}, StyleError),
    "onnx model": (lambda d: painting(d / "p.png"), {"model": "model.onnx"}, ModelError),
    "output is the input": (lambda d: painting(d / "p.png"), {"out": "base.stylecast"}, OutputError),
    "output exists": (lambda d: painting(d / "p.png"), {"out": "exists.stylecast"}, OutputError),
    "output suffix": (lambda d: painting(d / "p.png"), {"out": "new.onnx"}, OutputError),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_inputs_fail_before_anything_is_written(case: str, tmp_path: Path, tiny_model: Path) -> None:
    make, options, error = BAD_INPUTS[case]
    base = tmp_path / "base.stylecast"
    base.write_bytes(tiny_model.read_bytes())
    (tmp_path / "exists.stylecast").write_bytes(b"keep me")
    (tmp_path / "model.onnx").write_bytes(b"\x08\x07onnx")
    art = make(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    out = tmp_path / options.get("out", "new.stylecast")
    with pytest.raises(error):
        add_style(tmp_path / options.get("model", "base.stylecast"), [art], options.get("names"), out,
                  recipe=TINY, device="cpu", progress=False)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_cli_bad_input_is_one_line(tmp_path: Path, tiny_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    art = painting(tmp_path / "p.png", size=(30, 30))
    code = main(["add-style", str(art), "--model", str(tiny_model), "-o", str(tmp_path / "x.stylecast")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "64 px" in err
    assert not (tmp_path / "x.stylecast").exists()


def test_bundled_photos_are_licensed_and_never_held_out() -> None:
    folder = bundled_photos()
    files = list_images(folder)
    with open(folder / "MANIFEST.csv", newline="") as fh:
        rows = {r["file"]: r for r in csv.DictReader(fh)}
    assert sorted(rows) == sorted(f.name for f in files) and 32 <= len(files) <= 48
    for f in files:
        assert not is_heldout(f, 0.05), f
        licence = rows[f.name]["licence"].lower()
        assert ("public domain" in licence or "cc0" in licence) and rows[f.name]["author_credit"], f
        with Image.open(f) as im:
            assert min(im.size) <= 256 and im.mode == "RGB"
    assert sum(f.stat().st_size for f in files) < 1.5e6
