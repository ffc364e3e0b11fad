"""Where a training step's time goes: data, generator, VGG passes, critic with gradient penalty.

Each phase is timed on its own (with a device sync around it), then whole steps, so the phases can
be compared with the step they make up. The figures say what a GPU window buys (steps = window x
steps/s) and which phase to speed up first.

    python -m benchmarks.train_speed --device cpu --crop 192 --batch-size 4 --out train-speed.json
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from benchmarks.environment import collect_environment
from realtime.errors import StylecastError
from train import losses
from train.config import TrainConfig
from train.data import sample_style_weights
from train.trainer import Trainer

log = logging.getLogger(__name__)


def _timed(fn: Callable[[], Any], device: torch.device, repeats: int) -> dict[str, float]:
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    fn()  # warm-up: allocator, cudnn autotuning, lazy initialisation
    times = []
    for _ in range(repeats):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t) * 1000)
    return {"median_ms": statistics.median(times), "min_ms": min(times), "n": repeats}


def measure(cfg: TrainConfig, repeats: int = 5) -> dict[str, Any]:
    """Phase and step timings of ``cfg``'s training step (the run folder is never written)."""
    trainer = Trainer(replace(cfg, gan_start=0))
    dev, b, n = trainer.device, cfg.batch_size, trainer.g_cfg.num_styles
    g = trainer.generator.train()
    x = trainer.content.sample(b)
    alpha_cpu = sample_style_weights(b, n, cfg.mix_prob, trainer.rng)
    alpha = alpha_cpu.to(dev)

    def data() -> None:
        trainer.content.sample(b)
        sample_style_weights(b, n, cfg.mix_prob, trainer.rng).to(dev)
        losses.warp(x, losses.random_motion(b, dev))

    def generator() -> None:
        with trainer.autocast():
            y = g(torch.cat([x, x]), torch.cat([alpha, alpha]))
        y.float().mean().backward()

    with torch.no_grad():  # a fixed output for the VGG and critic phases; its graph is not needed
        y_fixed = g(x, alpha).requires_grad_(True)

    def vgg() -> None:
        with trainer.autocast():
            feats_y = trainer.vgg(y_fixed)
            with torch.no_grad():
                feats_x = trainer.vgg(x, until=cfg.content_layer)
            grams = {layer: losses.gram(feats_y[layer]) for layer in cfg.style_layers}
            loss = losses.fused_style_loss(losses.style_distance(grams, trainer.style_grams, cfg.style_relative), alpha)
            loss = loss + losses.content_loss(feats_y[cfg.content_layer], feats_x[cfg.content_layer], cfg.content_relative)
        loss.backward()

    def critic() -> None:
        trainer.critic_step(y_fixed.detach().float(), alpha, alpha_cpu)

    def step() -> None:
        trainer.train_step(g)

    phases = {"data": data, "generator_fwd_bwd": generator, "vgg_fwd_bwd": vgg}
    if cfg.gan_weight > 0:
        phases["critic_with_gp"] = critic
    result: dict[str, Any] = {name: _timed(fn, dev, repeats) for name, fn in phases.items()}
    result["step"] = _timed(step, dev, repeats)
    step_s = result["step"]["median_ms"] / 1000
    critic_share = 1.0 / cfg.critic_every if cfg.gan_weight > 0 else 0.0
    return {
        "config": {k: cfg.to_dict()[k] for k in ("arch", "crop", "batch_size", "gan_weight", "n_critic", "critic_every")},
        "device": str(dev),
        "bf16_autocast": trainer.amp,
        "phases_ms": result,
        # The step above runs the critic every time; with --critic-every k it runs on 1 step in k.
        "critic_runs_per_step": critic_share * cfg.n_critic,
        "samples_per_s": b / step_s,
        "steps_per_s": 1 / step_s,
        "environment": collect_environment(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.train_speed", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--arch", default="fast")
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--gan-weight", type=float, default=100.0)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", type=Path, help="write the JSON here (default: print it)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = TrainConfig(device=args.device, arch=args.arch, crop=args.crop, batch_size=args.batch_size,
                      gan_weight=args.gan_weight, out="unused")
    try:
        result = measure(cfg, args.repeats)
    except StylecastError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    else:
        print(text)
    for name, t in result["phases_ms"].items():
        log.info("%-18s %8.1f ms", name, t["median_ms"])
    log.info("%.2f samples/s on %s (bf16 autocast: %s)", result["samples_per_s"], result["device"], result["bf16_autocast"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
