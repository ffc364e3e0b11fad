"""Training configuration: one frozen dataclass, loadable from TOML and overridable by flags.

Every field is also a ``stylecast train`` flag (``--style-weight 3e4``); the help text lives in
``HELP`` next to the field, so ``stylecast train --help`` documents every option.
"""

from __future__ import annotations

import dataclasses
import math
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
    holdout_fraction: float = 0.0
    crop: int = 256
    style_crop: int = 256
    # model
    init: str = ""
    arch: str = "fast"
    channels: int = 0
    res_blocks: int = 0
    refine_channels: int = 0
    half_channels: int = -1
    tail: str = ""
    # optimization
    steps: int = 4000
    batch_size: int = 4
    lr: float = 2e-3
    critic_lr: float = 2e-4
    n_critic: int = 1
    critic_every: int = 1
    mix_prob: float = 0.5
    style_focus: float = 0.0
    # loss weights
    content_layer: str = "relu2_2"
    style_layers: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
    content_weight: float = 1.0
    style_weight: float = 25.0
    # Relative Gram distance per layer (the `stylecast eval` measure) instead of the raw squared one,
    # whose deep layers are orders of magnitude larger and so decide the style alone.
    style_relative: bool = False
    content_relative: bool = False
    # The gradient penalty pins the critic's input-gradient norm near 1 per image, so lambda compares
    # directly with the perceptual gradients (order 1e2 at these weights and VGG's 0..255 scale).
    gan_weight: float = 100.0
    gan_start: int = 500
    gp_weight: float = 10.0
    tv_weight: float = 0.0
    grid_weight: float = 0.0
    # L1 between the output and the init model's on the same crop and style weights: how a model is
    # moved to a cheaper architecture without relearning its styles.
    distill_weight: float = 0.0
    # Train only these layers of the generator (module names such as body.head_mix), the rest frozen:
    # a new --tail distilled from the --init model with the style and content weights at 0 needs no
    # VGG pass (minutes on a CPU). Empty: every layer trains.
    train_only: tuple[str, ...] = ()
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
    "holdout_fraction": "share of the content folder held out by a fixed file-name hash (recorded in the model)",
    "crop": "content crop size in pixels",
    "style_crop": "side the style images are resized to for Gram targets and critic crops",
    "init": "start the generator from this .stylecast model (fine-tuning; its styles must match --styles)",
    "arch": "generator architecture: fast (real-time CPU) or quality (Johnson-style)",
    "channels": "generator width (0 = the architecture's preset)",
    "res_blocks": "residual blocks (0 = the architecture's preset)",
    "refine_channels": "fast: full-resolution refinement channels (0 = the preset)",
    "half_channels": "fast: width of a 1/2-resolution stage (0 = none, -1 = the preset)",
    "tail": "fast: refine (thin full-resolution convolutions), skip (linear, all at 1/4 resolution) or head (nonlinear, at 1/4 resolution); empty = the preset or the init model's; with --init, layers the new tail lacks start fresh",
    "steps": "total generator updates",
    "batch_size": "content crops per step (per process under torchrun)",
    "lr": "generator learning rate (Adam)",
    "critic_lr": "critic learning rate (Adam, betas 0/0.9 as in WGAN-GP)",
    "n_critic": "critic updates per generator update (on the steps the critic runs)",
    "critic_every": "run the critic on every k-th generator step only (its gradient penalty costs a double backward)",
    "mix_prob": "fraction of samples that get a random style mixture instead of a one-hot style",
    "style_focus": "draw one-hot styles in proportion to their running style loss to this power (0 = uniformly), so the styles the model fits worst get more steps",
    "content_layer": "VGG layer of the content loss",
    "style_layers": "VGG layers of the Gram style loss",
    "content_weight": "content loss weight",
    "style_weight": "style loss weight (applied to sum_i alpha_i * L_style_i)",
    "style_relative": "style distance per layer relative to the painting's Gram norm (the eval measure)",
    "content_relative": "content loss relative to the photo features' energy (the eval measure)",
    "gan_weight": "adversarial loss weight lambda (0 disables the critic)",
    "gan_start": "step at which the adversarial loss switches on (perceptual warm-up first)",
    "gp_weight": "WGAN-GP gradient penalty weight",
    "tv_weight": "total variation weight",
    "grid_weight": "weight of the 4-pixel grid penalty (phase means of the high-passed output)",
    "distill_weight": "weight of the L1 distance to the --init model's output (distillation into another architecture; 0 = off)",
    "train_only": "train only these generator layers (module names, e.g. body.head_mix), the rest frozen; empty = all",
    "temporal_weight": "temporal consistency weight (synthetic motion: warp(G(x)) = G(warp(x)))",
    "vgg_weights": "VGG16/VGG19 weights (.npz bundled format or torchvision .pth); default: the bundled VGG16",
    "out": "run folder: checkpoint.pt, model.stylecast, samples/, log.csv",
    "device": "auto, cpu, cuda or cuda:N",
    "amp": "bf16 autocast on CUDA, and on CPUs with native bf16 (AVX-512 BF16 or AMX)",
    "seed": "random seed (each torchrun rank adds its rank)",
    "log_every": "steps between CSV log rows",
    "sample_every": "steps between sample grid images",
    "checkpoint_every": "steps between checkpoints",
    "max_minutes": "stop (with a checkpoint and a model) after this many minutes; 0 = no limit",
}


#: smallest value of numeric fields that have one above 0; every other number must be finite and >= 0
_AT_LEAST: dict[str, int] = {
    "steps": 1, "batch_size": 1, "n_critic": 1, "critic_every": 1, "log_every": 1, "sample_every": 1,
    "checkpoint_every": 1,
    # VGG's relu4_3 sees an eighth of the crop, and the grid penalty works in 32-pixel tiles.
    "crop": 32, "style_crop": 32,
}
_POSITIVE = ("lr", "critic_lr")
_FRACTIONS = ("mix_prob", "holdout_fraction")


def _checked(name: str, value: Any, default: Any) -> Any:
    """``value`` for field ``name`` in the type of its default, within its range; one-line errors."""
    if isinstance(default, tuple):
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or not all(isinstance(x, str) for x in items):
            raise StylecastError(f"training option {name} must be a list of names, got {value!r}")
        return tuple(x.strip() for x in items if x.strip())
    if default is None:  # an optional field: no type to hold it to
        return value
    kind = type(default)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise StylecastError(f"training option {name} must be {kind.__name__}, got {value!r}")
    if kind in (int, float):
        low = _AT_LEAST.get(name, 0)
        if not math.isfinite(value) or value < low or (name in _POSITIVE and value <= 0):
            bound = "> 0" if name in _POSITIVE else f">= {low}"
            raise StylecastError(f"training option {name} must be a finite number {bound}, got {value!r}")
        if name in _FRACTIONS and value > 1:
            raise StylecastError(f"training option {name} must be between 0 and 1, got {value!r}")
    return value


def load_config(path: str | Path | None, overrides: dict[str, Any]) -> TrainConfig:
    """Defaults, then the TOML file (flat keys or a [train] table), then flag overrides."""
    values: dict[str, Any] = {}
    if path:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise StylecastError(f"config file not found: {p}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError, ValueError, RecursionError) as e:
            raise StylecastError(f"config file {p} is not valid TOML: {str(e).splitlines()[0]}") from None
        except OSError as e:
            raise StylecastError(f"cannot read config file {p}: {e.strerror or e}") from None
        table = data.get("train", data)
        if not isinstance(table, dict):
            raise StylecastError(f"config file {p}: [train] must be a table of options")
        values.update(table)
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name: f for f in fields(TrainConfig)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise StylecastError(f"unknown training option(s): {', '.join(unknown)}")
    defaults = TrainConfig()
    values = {k: _checked(k, v, getattr(defaults, k)) for k, v in values.items()}
    return TrainConfig(**values)
