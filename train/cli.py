"""``stylecast train`` (also ``python -m train``): every TrainConfig field is a flag."""

from __future__ import annotations

import argparse
import logging
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

from train.config import HELP, TrainConfig, load_config

log = logging.getLogger(__name__)


def _flag_type(default: Any) -> Any:
    if isinstance(default, tuple):
        return lambda s: tuple(x.strip() for x in s.split(",") if x.strip())
    return type(default)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="TOML", help="training config file (flags override it)")
    p.add_argument("--resume", nargs="?", const="auto", metavar="CHECKPOINT",
                   help="resume from CHECKPOINT, or from OUT/checkpoint.pt when given without a path")
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh in an OUT folder that holds an earlier run (its checkpoint and model are replaced)")
    for f in fields(TrainConfig):
        default = f.default if f.default is not MISSING else None
        flag = "--" + f.name.replace("_", "-")
        shown = ",".join(default) if isinstance(default, tuple) else default
        if isinstance(default, bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None,
                           help=f"{HELP[f.name]} (default: {shown})")
        else:
            p.add_argument(flag, type=_flag_type(default), default=None, metavar=f.name.upper(),
                           help=f"{HELP[f.name]} (default: {shown})")


def run(args: argparse.Namespace) -> int:
    from train.trainer import CHECKPOINT, train

    overrides = {f.name: getattr(args, f.name) for f in fields(TrainConfig)}
    cfg = load_config(args.config, overrides)
    resume = None
    if args.resume:
        resume = Path(cfg.out) / CHECKPOINT if args.resume == "auto" else Path(args.resume)
    path = train(cfg, resume, overwrite=args.overwrite)
    log.info("model written to %s", path)
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("train", help="train a multi-style generator",
                       description="Train a multi-style GAN generator (fused Gram style loss, content, "
                       "WGAN-GP critic, temporal and TV terms). Runs under torchrun for DDP.")
    add_arguments(p)
    p.set_defaults(func=run)
