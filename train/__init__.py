"""Training of stylecast's multi-style generator: ``from train import TrainConfig, train``."""

from __future__ import annotations

from pathlib import Path

from train.config import TrainConfig, load_config


def train(cfg: TrainConfig, resume: str | Path | None = None) -> Path:
    """Train (or resume) a model and return the path of the written ``.stylecast`` file.

    Imported lazily so ``import train`` (and the CLI's help) does not pull in the trainer's deps.
    """
    from train.trainer import train as _train

    return _train(cfg, resume)


__all__ = ["TrainConfig", "load_config", "train"]
