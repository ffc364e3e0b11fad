"""Add a style to a trained model in minutes: learn one more (gamma, beta) row per norm layer.

With conditional instance norm, everything but the norm rows is shared by all styles (Dumoulin et
al., 2017), so a new painting needs only rows of its own. They start from the rows of the existing
style whose outputs are nearest the painting in Gram statistics, and are fitted with the training's
perceptual losses (Gram style, content, temporal, TV; no critic) on the photo set bundled in
``assets/photos`` while every other weight stays frozen. The fitted rows are appended to a copy of
the model whose old rows are copied unchanged, so the old styles' outputs stay bit-identical and the
new style blends with them and exports like any other.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import UnidentifiedImageError
from tqdm import tqdm

from realtime.errors import InputError, ModelError, OutputError, StyleError
from realtime.model import Generator, remap_styles
from realtime.modelfile import ModelInfo, StyleInfo, load_model, save_model
from realtime.outputs import check_output
from train import losses
from train.data import CropSampler, folder_digest, list_images, open_limited, read_rgb
from train.style_recipe import MIN_PAINTING_SIDE, TRAIN_DEFAULTS, FitRecipe
from train.trainer import (
    DistInfo,
    RunClock,
    bf16_autocast,
    cosine_lr_factor,
    pick_device,
    sample_grid,
    save_png,
    sigterm_as_interrupt,
    thumbnail,
    uses_bf16,
)
from train.vgg import VGGFeatures, VGGSource, bundled_vgg_path, find_vgg

log = logging.getLogger(__name__)

#: Modes read as they are (alpha dropped) or, for grayscale, as gray RGB: a gray painting is a valid style.
GRAY_MODES = {"L", "LA", "1", "La"}
COLOR_MODES = {"RGB", "RGBA", "RGBX", "P", "PA"}
NAME_PATTERN = re.compile(r"[A-Za-z0-9_.\-]+")
MODEL_SUFFIX = ".stylecast"


def bundled_photos() -> Path:
    return Path(str(resources.files("train") / "assets" / "photos"))


@dataclass(frozen=True)
class Painting:
    path: Path
    name: str
    #: uint8 [3, H, W], long side at most the recipe's ``style_side``
    image: torch.Tensor
    sha256: str


def read_painting(path: Path, name: str, side: int) -> Painting:
    """Decode and check one painting; every problem is a one-line :class:`InputError`."""
    if not path.is_file():
        raise InputError(f"painting not found: {path}")
    try:
        with open_limited(path) as im:
            mode, size = im.mode, im.size
    except (UnidentifiedImageError, OSError) as e:
        raise InputError(f"{path} is not an image this can read: {e}") from None
    if mode == "CMYK":
        # Without the printer's colour profile PIL's CMYK->RGB is a guess that shifts every colour,
        # and the style would learn the wrong palette.
        raise InputError(f"{path} is a CMYK image; save it as RGB (e.g. sRGB JPEG or PNG) first")
    if mode not in GRAY_MODES | COLOR_MODES:
        raise InputError(f"{path} has colour mode {mode}, which add-style does not read; save it as 8-bit RGB")
    if min(size) < MIN_PAINTING_SIDE:
        raise InputError(f"{path} is {size[0]}x{size[1]} px; a painting needs at least {MIN_PAINTING_SIDE} px per side")
    if mode in GRAY_MODES:
        log.info("%s is grayscale: the style will be gray", path)
    image = read_rgb(path, side)
    return Painting(path, name, image, hashlib.sha256(path.read_bytes()).hexdigest())


def default_name(stem: str) -> str:
    """A painting's file stem made a valid style name (runs of other characters become ``_``)."""
    name = "_".join(NAME_PATTERN.findall(stem)) or "style"
    return f"style_{name}" if name.isdecimal() else name


def check_names(names: list[str], existing: list[str]) -> None:
    taken = set(existing)
    for name in names:
        if not NAME_PATTERN.fullmatch(name) or name.isdecimal():
            raise StyleError(f"style name {name!r} must be letters, digits, '_', '-' or '.', and not a bare number")
        if name in taken:
            raise StyleError(f"style name {name!r} is already taken by the model or another painting; pass --name")
        taken.add(name)


def check_extendable(path: Path) -> None:
    if path.suffix.lower() in (".onnx", ".engine", ".plan", ".ts"):
        raise ModelError(f"{path} is an exported graph, which cannot be extended; pass the .stylecast model it came from")


def autocast_for(device: torch.device) -> AbstractContextManager[Any]:
    return bf16_autocast(uses_bf16(device), device)


def perceptual_source(perceptual: str) -> VGGSource:
    """The VGG weights a model records it was trained against (``family:file:sha256=...``), else the default.

    New rows fitted against another perceptual network would not match the old styles' statistics.
    """
    parts = perceptual.split(":")
    candidate = bundled_vgg_path().parent / parts[1] if len(parts) == 3 else None
    source = find_vgg(candidate) if candidate is not None and candidate.is_file() else find_vgg()
    if perceptual and source.description != perceptual:
        log.warning("the model was trained against %s, which is not here; fitting against %s", perceptual,
                    source.description)
    return source


def _norm_params(generator: Generator) -> list[torch.nn.Parameter]:
    return [p for name, p in generator.named_parameters() if name.endswith((".gamma", ".beta"))]


class Fitter:
    """The frozen parts (VGG, photo crops) shared by every painting fitted onto one base model."""

    def __init__(self, generator: Generator, perceptual: str, recipe: FitRecipe, device: torch.device,
                 photos: Path, content_layer: str) -> None:
        self.base = generator.to(device).eval()
        self.recipe = recipe
        self.content_layer = content_layer
        self.device = device
        self.photos_digest = folder_digest(photos)
        self.crops = CropSampler([read_rgb(f) for f in list_images(photos)], recipe.size, device, recipe.seed)
        self.vgg_source = perceptual_source(perceptual)
        layers = tuple(dict.fromkeys((*TRAIN_DEFAULTS.style_layers, content_layer)))
        self.vgg = VGGFeatures(self.vgg_source, layers).to(device)
        # A fixed set of crops on which the existing styles are compared with a new painting.
        self.probe = self.crops.sample(4)
        self.pool, self.pool_targets = self._content_pool(min(recipe.pool, recipe.steps * recipe.batch_size))

    @torch.no_grad()
    def _content_pool(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``size`` crops and their content-layer features (half precision: a target, not a gradient path)."""
        log.info("content targets for %d photo crops (once per call)", size)
        crops = self.crops.sample(size)
        with autocast_for(self.device):
            feats = [self.vgg(c, until=self.content_layer)[self.content_layer].half()
                     for c in crops.split(self.recipe.batch_size)]
        return crops, torch.cat(feats)

    def grams(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.vgg(images)
        return {layer: losses.gram(feats[layer]) for layer in TRAIN_DEFAULTS.style_layers}

    @torch.no_grad()
    def targets(self, painting: Painting) -> dict[str, torch.Tensor]:
        return self.grams(painting.image[None].float().to(self.device) / 255.0)

    @torch.no_grad()
    def nearest_style(self, target: dict[str, torch.Tensor]) -> int:
        """The existing style whose outputs on the probe photos are nearest ``target`` in Gram statistics.

        The model file holds no painting Grams, so the styles are compared by what they produce.
        """
        n = self.base.cfg.num_styles
        distances = []
        for i in range(n):
            w = F.one_hot(torch.full((len(self.probe),), i, device=self.device), n).float()
            distances.append(losses.style_distance(self.grams(self.base(self.probe, w)), target, relative=True).mean())
        return int(torch.stack(distances).argmin())

    def fit(self, painting: Painting, target: dict[str, torch.Tensor], start: int,
            bar: tqdm) -> tuple[Generator, int, bool]:
        """A one-style generator holding the fitted rows, the steps done, and whether Ctrl-C cut the fit short."""
        r = self.recipe
        work = remap_styles(self.base, [start]).train()
        work.requires_grad_(False)
        params = _norm_params(work)
        for p in params:
            p.requires_grad_(True)
        opt = torch.optim.Adam(params, lr=r.lr)
        rng = torch.Generator().manual_seed(r.seed)
        w = torch.ones(2 * r.batch_size, 1, device=self.device)
        step, interrupted, clock = 0, False, RunClock(r.steps, r.max_minutes)
        try:
            with sigterm_as_interrupt():
                while step < r.steps:
                    if clock.out_of_time():
                        log.info("%s: time limit of %g min reached at step %d", painting.name, r.max_minutes, step)
                        break
                    for group in opt.param_groups:
                        group["lr"] = r.lr * cosine_lr_factor(clock.progress(step))
                    terms = self._step(work, target, rng, w)
                    total = sum(terms.values(), torch.zeros((), device=self.device))
                    opt.zero_grad(set_to_none=True)
                    total.backward()
                    opt.step()
                    step += 1
                    bar.update(1)
                    if step % 10 == 0 or step == r.steps:
                        postfix = {k: f"{float(v.detach()):.3g}" for k, v in terms.items()}
                        bar.set_postfix({**postfix, **clock.time_left()}, refresh=False)
        except KeyboardInterrupt:
            log.warning("interrupted at step %d of %d while fitting %s", step, r.steps, painting.name)
            interrupted = True
        return work.eval(), step, interrupted

    def _step(self, work: Generator, target: dict[str, torch.Tensor], rng: torch.Generator,
              w: torch.Tensor) -> dict[str, torch.Tensor]:
        r = self.recipe
        pick = torch.randint(len(self.pool), (r.batch_size,), generator=rng).to(self.device)
        x, content_target = self.pool[pick], self.pool_targets[pick].float()
        theta = losses.random_motion(r.batch_size, self.device, generator=rng)
        x_moved, mask = losses.warp(x, theta)
        x_moved = (x_moved + 0.02 * torch.randn(x_moved.shape, generator=rng).to(self.device)).clamp(0, 1)
        with autocast_for(self.device):
            y, y_moved = work(torch.cat([x, x_moved]), w).chunk(2)
            feats_y = self.vgg(y)
            grams = {layer: losses.gram(feats_y[layer]) for layer in TRAIN_DEFAULTS.style_layers}
            terms = {
                "style": r.style_weight * losses.style_distance(grams, target, r.relative).mean(),
                "content": r.content_weight * losses.content_loss(feats_y[self.content_layer], content_target, r.relative),
                "temporal": r.temporal_weight * losses.temporal_loss(y_moved, losses.warp(y.float(), theta)[0], mask),
            }
            if r.tv_weight:
                terms["tv"] = r.tv_weight * losses.tv_loss(y)
        return terms


@dataclass(frozen=True)
class Extension:
    """A base model plus fitted styles, ready to save; ``interrupted`` when a fit stopped early."""

    generator: Generator
    styles: list[StyleInfo]
    train_config: dict[str, Any]
    perceptual: str
    interrupted: bool
    #: the style each new one started from (for the sample grid's blend row)
    starts: list[int]
    #: uint8 [3, H, W] photos for the sample grid
    grid_photos: list[torch.Tensor]


def extend(generator: Generator, info: ModelInfo, paintings: list[Painting], recipe: FitRecipe,
           device: torch.device, photos: Path, progress: bool = True) -> Extension:
    """Fit each painting in turn; Ctrl-C/SIGTERM stops the fit in progress and keeps what was fitted."""
    # The content loss on the layer the base model was trained with (the model file records it), so that a
    # new style keeps the photo the way the old ones do.
    content_layer = info.train_config.get("content_layer", TRAIN_DEFAULTS.content_layer)
    fitter = Fitter(generator, info.perceptual, recipe, device, photos, content_layer)
    n = generator.cfg.num_styles
    fitted: list[Generator] = []
    starts: list[int] = []
    records: list[dict[str, Any]] = []
    precision = "bf16" if uses_bf16(device) else "fp32"
    interrupted = False
    for painting in paintings:
        target = fitter.targets(painting)
        start = fitter.nearest_style(target)
        log.info("%s: starting from %s, the nearest style in Gram statistics", painting.name, info.style_names[start])
        t0 = time.monotonic()
        with tqdm(total=recipe.steps, desc=painting.name, unit="step", disable=not progress, dynamic_ncols=True) as bar:
            work, steps, stopped = fitter.fit(painting, target, start, bar)
        seconds = time.monotonic() - t0
        log.info("%s: %d steps in %.0f s on %s (%s)", painting.name, steps, seconds, device, precision)
        if steps == 0:
            interrupted = True
            break
        fitted.append(work)
        starts.append(start)
        records.append({
            "name": painting.name, "painting": painting.path.name, "painting_sha256": painting.sha256,
            "init_style": info.style_names[start], "steps_done": steps, "recipe": asdict(recipe),
            "recipe_sha256": recipe.digest(),
            "base_model_sha256": info.sha256, "photos_sha256": fitter.photos_digest,
            "perceptual": fitter.vgg_source.description, "content_layer": content_layer, "device": str(device),
            "precision": precision,
            "seconds": round(seconds, 1),
        })
        if stopped:
            interrupted = True
            break
    if not fitted:
        raise KeyboardInterrupt
    out = remap_styles(generator, list(range(n)) + starts)
    with torch.no_grad():
        for row, work in enumerate(fitted, start=n):
            for dst, src in zip(_norm_params(out), _norm_params(work), strict=True):
                # Rounded as the model file stores them, so what the sample grid shows is what is saved.
                dst[row] = src[0].half().float()
    styles = list(info.styles) + [
        StyleInfo(p.name, p.sha256, thumbnail(p.image)) for p in paintings[: len(fitted)]
    ]
    train_config = {**info.train_config, "add_style": [*info.train_config.get("add_style", []), *records]}
    images = fitter.crops.images
    grid_photos = [images[i].cpu() for i in range(0, len(images), max(1, len(images) // 3))][:3]
    return Extension(out.eval(), styles, train_config, info.perceptual, interrupted, starts, grid_photos)


def samples_path(out: Path) -> Path:
    """The sample grid written beside the output model."""
    return out.with_name(out.name.removesuffix(MODEL_SUFFIX) + ".samples.png")


def prepare(model: str | Path | None, paintings: list[str | Path], names: list[str] | None,
            recipe: FitRecipe) -> tuple[Generator, ModelInfo, list[Painting]]:
    """Load the base model and check every input before anything is fitted or written."""
    if model is not None:
        check_extendable(Path(model))
    generator, info = load_model(model)
    if not paintings:
        raise InputError("no painting given")
    paths = [Path(p) for p in paintings]
    if names is None:
        names = [default_name(p.stem) for p in paths]
    if len(names) != len(paths):
        raise StyleError(f"{len(names)} names for {len(paths)} paintings; give one --name per painting")
    check_names(names, info.style_names)
    return generator, info, [read_painting(p, name, recipe.style_side) for p, name in zip(paths, names, strict=True)]


def add_style(model: str | Path | None, paintings: list[str | Path], names: list[str] | None, out: str | Path, *,
              recipe: FitRecipe | None = None, device: str = "auto", overwrite: bool = False,
              progress: bool = True, photos: str | Path | None = None) -> Path:
    """Write ``out``: the model ``model`` (None = bundled) plus one new style per painting.

    ``names`` default to the paintings' file stems (made valid names). The input model is never modified. A sample
    grid is written beside ``out``. On Ctrl-C or SIGTERM the styles fitted so far (the one in
    progress included) are saved and KeyboardInterrupt is raised again.
    """
    recipe = recipe or FitRecipe()
    out = Path(out)
    if out.suffix != MODEL_SUFFIX:
        raise OutputError(f"output {out} must end in {MODEL_SUFFIX}")
    base, info, items = prepare(model, paintings, names, recipe)
    inputs = [*(p.path for p in items), *([info.path] if info.path else [])]
    for path in (out, samples_path(out)):
        check_output(path, inputs, overwrite, folder=False)
    ext = extend(base, info, items, recipe, pick_device(device, DistInfo()), Path(photos) if photos else bundled_photos(),
                 progress)
    write(ext, out)
    if ext.interrupted:
        log.warning("stopped early: saved %s with the styles fitted so far", out)
        raise KeyboardInterrupt
    return out


def write(ext: Extension, out: Path) -> None:
    """The model file, then its sample grid: photos x every style, and a blend from the first new style's start."""
    save_model(out, ext.generator, ext.styles, ext.train_config, ext.perceptual)
    first_new = ext.generator.cfg.num_styles - len(ext.starts)
    grid = sample_grid(ext.generator, ext.grid_photos, [s.name for s in ext.styles], side=160,
                       blend=(ext.starts[0], first_new))
    save_png(samples_path(out), grid)

