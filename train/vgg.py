"""VGG perceptual features for the content and Gram style losses, loaded from local files only.

These weight sources are accepted, and nothing is ever downloaded:

* the bundled ``assets/weights/vgg16_hed_conv1_1-conv4_3.npz`` (VGG16 conv1_1..conv4_3 of an HED edge
  detector, torchvision key names, float16; Caffe preprocessing: RGB*255 minus the ImageNet mean, no std);
* the bundled ``assets/weights/vgg16_imagenet_conv1_1-conv4_3.npz`` (torchvision's ImageNet VGG16
  conv1_1..conv4_3, same layout; torchvision preprocessing: RGB in [0,1], ImageNet mean/std);
* a torchvision ``vgg16``/``vgg19`` state dict (``.pth``), e.g. from torchvision's cache
  (``~/.cache/torch/hub/checkpoints/vgg16-397923af.pth``); torchvision preprocessing.

Both npz files have the same keys, so an npz says its preprocessing by a ``preprocessing`` entry
(``"caffe"`` or ``"torchvision"``) or, lacking one, by its name (``hed``/``caffe`` or
``imagenet``/``torchvision``); see SOURCES.md for the files' origins.

The network is rebuilt from the ``features.N.weight`` keys: a conv at index i is followed by its ReLU
at i+1, and a gap before the next conv is a max-pool, which is exactly torchvision's layout.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch import nn

from realtime.errors import ModelError

log = logging.getLogger(__name__)

BUNDLED_VGG = "vgg16_hed_conv1_1-conv4_3.npz"
IMAGENET_VGG = "vgg16_imagenet_conv1_1-conv4_3.npz"
#: File-name tokens that tell an npz's preprocessing when it has no ``preprocessing`` entry.
_NAME_TOKENS = {"hed": True, "caffe": True, "imagenet": False, "torchvision": False}
TORCHVISION_CACHE = Path.home() / ".cache" / "torch" / "hub" / "checkpoints"

#: ReLU output index in torchvision's ``features`` for each named layer.
LAYER_INDEX = {
    "vgg16": {"relu1_2": 3, "relu2_2": 8, "relu3_3": 15, "relu4_3": 22},
    "vgg19": {"relu1_2": 3, "relu2_2": 8, "relu3_3": 15, "relu4_3": 24},
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class VGGSource:
    path: Path
    family: str  # "vgg16" or "vgg19"
    caffe: bool  # Caffe preprocessing (x*255 - mean) instead of torchvision's (x - mean) / std

    @property
    def description(self) -> str:
        """Recorded in every trained model: which perceptual weights it was trained with."""
        digest = hashlib.sha256(self.path.read_bytes()).hexdigest()[:16]
        return f"{self.family}:{self.path.name}:sha256={digest}"


def bundled_vgg_path(name: str = BUNDLED_VGG) -> Path:
    return Path(str(resources.files("train") / "assets" / "weights" / name))


def _uses_caffe_preprocessing(path: Path) -> bool:
    """Whether the weights expect Caffe input (RGB*255 - mean) rather than torchvision's ((x - mean) / std)."""
    if path.suffix != ".npz":
        return False  # torchvision state dicts
    try:
        with np.load(path) as z:
            if "preprocessing" in z.files:
                kind = str(z["preprocessing"])
                if kind not in ("caffe", "torchvision"):
                    raise ModelError(f"VGG weights {path}: unknown preprocessing {kind!r} (caffe or torchvision)")
                return kind == "caffe"
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot read VGG weights {path}: {e}") from e
    tokens = set(path.stem.lower().replace("-", "_").split("_"))
    found = {_NAME_TOKENS[t] for t in tokens & set(_NAME_TOKENS)}
    if len(found) != 1:
        raise ModelError(
            f"cannot tell the preprocessing of VGG weights {path}: name the file *_hed_* (Caffe) or *_imagenet_* "
            "(torchvision), or store a 'preprocessing' entry in it"
        )
    return found.pop()


def find_vgg(path: str | Path | None = None) -> VGGSource:
    """The weights to use: an explicit path, else the bundled file (torchvision's cache if that is gone)."""
    candidates = [Path(path)] if path else [bundled_vgg_path(), *sorted(TORCHVISION_CACHE.glob("vgg1[69]-*.pth"))]
    for p in candidates:
        if p.is_file():
            family = "vgg19" if "vgg19" in p.name else "vgg16"
            return VGGSource(p, family, caffe=_uses_caffe_preprocessing(p))
    raise ModelError(f"no VGG weights found (looked for {', '.join(map(str, candidates))}); pass --vgg-weights PATH")


def _load_state(src: VGGSource) -> dict[str, torch.Tensor]:
    try:
        if src.path.suffix == ".npz":
            with np.load(src.path) as z:
                return {k: torch.from_numpy(z[k].astype(np.float32)) for k in z.files if k.startswith("features.")}
        state = torch.load(src.path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ModelError(f"cannot read VGG weights {src.path}: {e}") from e
    return {k: v.float() for k, v in state.items() if k.startswith("features.")}


class VGGFeatures(nn.Module):
    """Frozen VGG trunk returning the requested ReLU activations for RGB input in [0, 1]."""

    mean: torch.Tensor
    scale: torch.Tensor

    def __init__(self, src: VGGSource, layers: tuple[str, ...]) -> None:
        super().__init__()
        state = _load_state(src)
        index = LAYER_INDEX[src.family]
        unknown = [name for name in layers if name not in index]
        if unknown:
            raise ModelError(f"unknown VGG layer(s) {unknown}; choose from {sorted(index)}")
        self.layers = layers
        self.taps = {index[name]: name for name in layers}
        last = max(self.taps)
        conv_idx = sorted(int(k.split(".")[1]) for k in state if k.endswith(".weight"))
        if not conv_idx or conv_idx[-1] + 1 < last:
            raise ModelError(f"VGG weights {src.path} stop before layer {max(layers)}")
        modules: list[nn.Module] = []
        for i in range(last + 1):
            if i in conv_idx:
                w = state[f"features.{i}.weight"]
                conv = nn.Conv2d(w.shape[1], w.shape[0], w.shape[2], padding=w.shape[2] // 2)
                conv.load_state_dict({"weight": w, "bias": state[f"features.{i}.bias"]})
                modules.append(conv)
            elif i - 1 in conv_idx:
                modules.append(nn.ReLU(inplace=False))
            else:
                modules.append(nn.MaxPool2d(2, 2))
        self.net = nn.Sequential(*modules)
        self.requires_grad_(False)
        self.eval()
        if src.caffe:
            mean, scale = torch.tensor(IMAGENET_MEAN) * 255.0, torch.full((3,), 255.0)
        else:
            mean, scale = torch.tensor(IMAGENET_MEAN), 1.0 / torch.tensor(IMAGENET_STD)
        self.register_buffer("mean", mean.view(1, 3, 1, 1) / scale.view(1, 3, 1, 1))
        self.register_buffer("scale", scale.view(1, 3, 1, 1))
        self.source = src

    def forward(self, x: torch.Tensor, until: str | None = None) -> dict[str, torch.Tensor]:
        """The requested activations; ``until`` stops after that one (a content target needs one layer, and
        the conv4 block that relu3_3 skips is a third of the trunk's work, relu2_2 skips two thirds)."""
        h = (x - self.mean) * self.scale
        out: dict[str, torch.Tensor] = {}
        for i, layer in enumerate(self.net):
            h = layer(h)
            if i in self.taps:
                out[self.taps[i]] = h
                if self.taps[i] == until:
                    break
        return out

    def train(self, mode: bool = True) -> VGGFeatures:
        # Always frozen and in eval mode, whatever the caller's .train() says.
        return super().train(False)
