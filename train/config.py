"""Training configuration: one frozen dataclass, loadable from TOML and overridable by flags.

Every field is also a ``stylecast train`` flag (``--style-weight 3e4``); the help text lives in
``HELP`` next to the field, so ``stylecast train --help`` documents every option.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any

from realtime.errors import StylecastError


def _asset(name: str) -> str:
    return str(resources.files("train") / "assets" / name)


@dataclass(frozen=True)
class TrainConfig:
    # data
    styles: str = _asset("styles")
    content: str = _asset("content")
    content_video: str = ""
    holdout: tuple[str, ...] = ("astronaut", "chelsea", "kodim23")
    crop: int = 256
    style_crop: int = 256
    # model
    init: str = ""
    arch: str = "fast"
    channels: int = 0
    res_blocks: int = 0
    # optimization
    steps: int = 4000
    batch_size: int = 4
    lr: float = 2e-3
    critic_lr: float = 2e-4
    n_critic: int = 1
    mix_prob: float = 0.5
    # loss weights
    content_layer: str = "relu2_2"
    style_layers: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
    content_weight: float = 1.0
    style_weight: float = 25.0
    # The gradient penalty pins the critic's input-gradient norm near 1 per image, so lambda compares
    # directly with the perceptual gradients (order 1e2 at these weights and VGG's 0..255 scale).
    gan_weight: float = 100.0
    gan_start: int = 500
    gp_weight: float = 10.0
    tv_weight: float = 0.0
    grid_weight: float = 0.0
    # Temporal MSE is in [0,1] pixel units, ~1e-3 untreated; this makes it ~10% of the objective.
    temporal_weight: float = 5e4
    vgg_weights: str = ""
    # run
    out: str = "runs/train"
    device: str = "auto"
    amp: bool = True
    seed: int = 0
    log_every: int = 10
    sample_every: int = 250
    checkpoint_every: int = 250
    max_minutes: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


HELP: dict[str, str] = {
    "styles": "folder of style paintings (one style per image; the file stem is the style name)",
    "content": "folder of content photos for training",
    "content_video": "optional video whose frames are added to the content set",
    "holdout": "content image stems kept out of training (used for sample grids and evaluation)",
    "crop": "content crop size in pixels",
    "style_crop": "side the style images are resized to for Gram targets and critic crops",
    "init": "start the generator from this .stylecast model (fine-tuning; its styles must match --styles)",
    "arch": "generator architecture: fast (real-time CPU) or quality (Johnson-style)",
    "channels": "generator width (0 = the architecture's preset)",
    "res_blocks": "residual blocks (0 = the architecture's preset)",
    "steps": "total generator updates",
    "batch_size": "content crops per step (per process under torchrun)",
    "lr": "generator learning rate (Adam)",
    "critic_lr": "critic learning rate (Adam, betas 0/0.9 as in WGAN-GP)",
    "n_critic": "critic updates per generator update",
    "mix_prob": "fraction of samples that get a random style mixture instead of a one-hot style",
    "content_layer": "VGG layer of the content loss",
    "style_layers": "VGG layers of the Gram style loss",
    "content_weight": "content loss weight",
    "style_weight": "style loss weight (applied to sum_i alpha_i * L_style_i)",
    "gan_weight": "adversarial loss weight lambda (0 disables the critic)",
    "gan_start": "step at which the adversarial loss switches on (perceptual warm-up first)",
    "gp_weight": "WGAN-GP gradient penalty weight",
    "tv_weight": "total variation weight",
    "grid_weight": "weight of the 4-pixel grid penalty (phase means of the high-passed output)",
    "temporal_weight": "temporal consistency weight (synthetic motion: warp(G(x)) = G(warp(x)))",
    "vgg_weights": "VGG16/VGG19 weights (.npz bundled format or torchvision .pth); default: the bundled VGG16",
    "out": "run folder: checkpoint.pt, model.stylecast, samples/, log.csv",
    "device": "auto, cpu, cuda or cuda:N",
    "amp": "mixed precision on CUDA (bf16 autocast)",
    "seed": "random seed (each torchrun rank adds its rank)",
    "log_every": "steps between CSV log rows",
    "sample_every": "steps between sample grid images",
    "checkpoint_every": "steps between checkpoints",
    "max_minutes": "stop (with a checkpoint and a model) after this many minutes; 0 = no limit",
}


def load_config(path: str | Path | None, overrides: dict[str, Any]) -> TrainConfig:
    """Defaults, then the TOML file (flat keys or a [train] table), then flag overrides."""
    values: dict[str, Any] = {}
    if path:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text())
        except FileNotFoundError:
            raise StylecastError(f"config file not found: {p}") from None
        except tomllib.TOMLDecodeError as e:
            raise StylecastError(f"config file {p}: {e}") from None
        values.update(data.get("train", data))
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name: f for f in fields(TrainConfig)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise StylecastError(f"unknown training option(s): {', '.join(unknown)}")
    for key in ("holdout", "style_layers"):
        if key in values and isinstance(values[key], (list, str)):
            v = values[key]
            values[key] = tuple(v.split(",") if isinstance(v, str) else v)
    return TrainConfig(**values)
