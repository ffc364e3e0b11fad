"""The recipe that fits a new style (``stylecast add-style``); light, so the CLI parser can show its defaults."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

from realtime.errors import StyleError
from train.config import TrainConfig

MIN_PAINTING_SIDE = 64
#: The layers are the training's defaults.
TRAIN_DEFAULTS = TrainConfig()


@dataclass(frozen=True)
class FitRecipe:
    """How a new style is fitted; with the painting and the base model it keys the cached result.

    With a time limit the steps done depend on the machine's speed (each fit records ``steps_done``).
    """

    #: 600 on the pooled content targets fit as well as 800 did without them (docs/quality.md)
    steps: int = 600
    #: side of the square photo crops the rows are fitted on
    size: int = 160
    batch_size: int = 4
    #: distinct photo crops drawn once, with their content targets computed once: a few hundred
    #: crops are plenty for a few hundred norm parameters, and the content layer's VGG pass on fresh
    #: crops was a fifth of every step on the CPU
    pool: int = 256
    #: wall-clock limit of one painting's fit in minutes (0: none). The learning rate follows the
    #: clock as well as the steps, so a slower machine ends the same schedule in fewer steps: on a
    #: 2-core Zen 3 (AVX2 only, 1.4 s a step) 367 steps fitted poppies as well as 600 did.
    max_minutes: float = 8.5
    #: Adam on the norm rows alone takes a larger step than whole-network training does
    lr: float = 2e-2
    #: long side the painting is resized to for its Gram targets (the bundled model's style_crop)
    style_side: int = 384
    #: The objective of the bundled fast model (train/configs/fast-cpu.toml): relative style and
    #: content distances at equal weight, so a new style sits among the old ones as they were trained.
    relative: bool = True
    content_weight: float = 1.0
    style_weight: float = 1.0
    temporal_weight: float = 80.0
    tv_weight: float = TRAIN_DEFAULTS.tv_weight
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.pool < 1 or self.lr <= 0:
            raise StyleError("steps, batch size, pool and learning rate must be positive")
        if not self.max_minutes >= 0:
            raise StyleError(f"the time limit must be 0 (none) or positive minutes, got {self.max_minutes}")
        if not 32 <= self.size <= 256:
            raise StyleError(f"fitting size must lie in 32..256 px (the bundled photos' short side), got {self.size}")
        if self.style_side < MIN_PAINTING_SIDE:
            raise StyleError(f"painting side must be at least {MIN_PAINTING_SIDE} px, got {self.style_side}")

    def digest(self) -> str:
        return hashlib.sha256(repr(sorted(asdict(self).items())).encode()).hexdigest()
