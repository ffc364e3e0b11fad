"""Perceptual (VGG) losses of the benchmark's outputs, as the trainer defines them."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from realtime.errors import StylecastError

log = logging.getLogger(__name__)


def perceptual_losses(
    inputs: Sequence[np.ndarray], outputs: dict[str, Sequence[np.ndarray]], perceptual: str = ""
) -> dict[str, Any] | None:
    """Style and content loss of each style's outputs, as the trainer defines them (VGG Gram/feature MSE).

    ``outputs`` maps a style name to its outputs for ``inputs``; a style's painting is looked up in the
    training assets by name. Returns None (logged) when the training package or its VGG weights are
    missing, since the figures are then undefined rather than zero.
    """
    try:
        import torch

        from train import losses
        from train.config import TrainConfig
        from train.data import load_styles
        from train.vgg import VGGFeatures, find_vgg
    except ImportError as e:
        log.warning("perceptual losses skipped: the training package is not importable (%s)", e)
        return None
    cfg = TrainConfig()
    try:
        src = find_vgg(cfg.vgg_weights or None)
        paintings = load_styles(cfg.styles, cfg.style_crop)
    except StylecastError as e:
        log.warning("perceptual losses skipped: %s", e)
        return None
    vgg = VGGFeatures(src, tuple(dict.fromkeys((*cfg.style_layers, cfg.content_layer))))

    def features(frames: Sequence[np.ndarray]) -> dict[str, torch.Tensor]:
        x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255.0
        with torch.inference_mode():
            return vgg(x)

    content = features(inputs)[cfg.content_layer]
    result: dict[str, Any] = {}
    for name, frames in outputs.items():
        if name not in paintings.names:
            log.warning("no painting named %s in %s: its style loss is skipped", name, cfg.styles)
            continue
        with torch.inference_mode():
            painting = vgg(paintings.images[paintings.names.index(name)][None].float() / 255.0)
            target = {layer: losses.gram(painting[layer]) for layer in cfg.style_layers}
            feats = features(frames)
            grams = {layer: losses.gram(feats[layer]) for layer in cfg.style_layers}
            style = losses.style_distance(grams, target)[:, 0].mean().item()
            content_l = losses.content_loss(feats[cfg.content_layer], content).item()
        result[name] = {"style_loss": style, "content_loss": content_l}
    return {
        "source": f"{src.description}; layers: style {','.join(cfg.style_layers)}, content {cfg.content_layer}"
        + (f"; model trained with {perceptual}" if perceptual else ""),
        "frames": len(inputs),
        "styles": result,
    }
