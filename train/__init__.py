"""Training of stylecast's multi-style generator: ``from train import TrainConfig, train``."""

from train.config import TrainConfig, load_config


def train(cfg: TrainConfig, resume: str | None = None):  # noqa: ANN201 - returns pathlib.Path
    """Train a model; see :func:`train.trainer.train`."""
    from train.trainer import train as _train

    return _train(cfg, resume)


__all__ = ["TrainConfig", "load_config", "train"]
