"""The Python API for integrators::

from realtime import Stylizer

stylizer = Stylizer.load()                      # bundled model, fastest backend here
out = stylizer(frame_rgb_uint8, "starry_night:0.6,great_wave:0.4")
stylizer.set_style("the_scream")                # from any thread, e.g. a game loop
stats = stylizer.stream("in.mp4", "out.mp4", schedule="fade.toml")
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from realtime.backends.base import Backend
from realtime.backends.registry import create_backend
from realtime.errors import InputError, ModelError
from realtime.modelfile import ModelInfo, load_model
from realtime.pipeline import Pipeline, Policy, RunStats
from realtime.sinks import NullSink, Sink, check_run_output, open_file_sink
from realtime.sources import ImageSource, Source, open_source
from realtime.styles import (
    Schedule,
    StyleController,
    WeightsLike,
    load_schedule,
    mix_output,
    resolve_weights,
    validate_strength,
)

if TYPE_CHECKING:
    from train.style_recipe import FitRecipe

log = logging.getLogger(__name__)


class Stylizer:
    """A loaded model on a backend, plus the thread-safe current style (``controller``)."""

    def __init__(self, backend: Backend, info: ModelInfo) -> None:
        self.backend = backend
        self.info = info
        self.controller = StyleController(info.style_names)

    @classmethod
    def load(
        cls,
        model: str | Path | None = None,
        backend: str = "auto",
        precision: str = "auto",
        device: str = "auto",
        compile: bool = False,
    ) -> Stylizer:
        """``model``: a ``.stylecast`` file or None for the bundled one; ``backend``: auto, torch, onnx, tensorrt.

        ``compile``: run the torch backend under ``torch.compile`` (``realtime.compiled``).
        """
        generator, info = load_model(model)
        if compile:
            from realtime.backends.torch_backend import compiled_backend

            return cls(compiled_backend(backend, generator, info, precision, device), info)
        return cls(create_backend(backend, (generator, info), precision=precision, device=device), info)

    @property
    def style_names(self) -> list[str]:
        return self.info.style_names

    def set_style(self, weights: WeightsLike, crossfade_s: float = 0.0) -> None:
        """Change the current style (``"name"``, ``"a:0.6,b:0.4"``, ``{name: w}`` or a vector); thread-safe."""
        if crossfade_s > 0:
            self.controller.crossfade_to(weights, crossfade_s)
        else:
            self.controller.set(weights)

    def add_style(self, painting: str | Path, progress: bool = True, recipe: FitRecipe | None = None) -> str:
        """Add ``painting`` as a style and make it current; returns its name.

        The style is fitted on first use (minutes on a CPU, with a progress bar) and cached after
        that (``train.style_cache``). The stylizer moves to the extended model on the same backend,
        precision and device; the old styles are unchanged. ``recipe``: how to fit (default: the
        standard ``train.style_recipe.FitRecipe``).
        """
        from train.style_cache import style_model

        if self.info.path is None:
            raise ModelError("this stylizer's model has no file to extend; load it from a .stylecast file")
        path, name = style_model(
            self.info.path, painting, recipe=recipe, device=self.backend.device, progress=progress
        )
        if path != self.info.path:
            generator, info = load_model(path)
            backend = create_backend(
                self.backend.name, (generator, info), precision=self.backend.precision, device=self.backend.device
            )
            self.backend.close()
            self.backend, self.info = backend, info
        self.controller = StyleController(self.style_names, name)
        return name

    def __call__(
        self,
        frames: np.ndarray,
        weights: WeightsLike | None = None,
        strength: float = 1.0,
        preserve_color: bool = False,
    ) -> np.ndarray:
        """Stylize uint8 RGB ``[H,W,3]`` or ``[B,H,W,3]``; ``weights`` None uses the current style."""
        frames = np.asarray(frames)
        single = frames.ndim == 3
        batch = frames[None] if single else frames
        if batch.ndim != 4 or batch.shape[-1] != 3 or batch.dtype != np.uint8 or 0 in batch.shape:
            raise InputError(f"expected uint8 RGB frames [H,W,3] or [B,H,W,3], got {frames.dtype} {frames.shape}")
        strength = validate_strength(strength)
        w = self.controller.weights_for(0, 0.0) if weights is None else resolve_weights(weights, self.style_names)
        out = self.backend(batch, np.repeat(w[None], len(batch), axis=0))
        out = np.stack([mix_output(f, o, strength, preserve_color) for f, o in zip(batch, out, strict=True)])
        return out[0] if single else out

    def stream(
        self,
        source: Source | str | Path | int,
        sink: Sink | str | Path | None = None,
        schedule: Schedule | str | Path | None = None,
        *,
        max_side: int | None = None,
        live: bool = False,
        policy: Policy | None = None,
        batch: int = 1,
        strength: float = 1.0,
        preserve_color: bool = False,
        overwrite: bool = False,
        progress: Callable[[RunStats], None] | None = None,
        **encode: Any,
    ) -> RunStats:
        """Stylize a whole source into a sink (None = discard, for benchmarks) and return the run's stats.

        ``source``: a Source, a file/folder/URL, or a camera index. ``sink``: a Sink or an output
        path. ``schedule``: a Schedule or a TOML/JSON file; while it is None, or after a
        ``set_style`` call, frames follow the current style. ``encode``: VideoSink options
        (codec, crf, bitrate, preset).
        """
        strength = validate_strength(strength)
        if isinstance(schedule, str | Path):
            schedule = load_schedule(schedule, self.style_names)
        if schedule is not None:
            self.controller.follow(schedule)
        src = source if isinstance(source, Source) else open_source(source, max_side=max_side, live=live)
        try:
            out = sink if isinstance(sink, Sink) else self._file_sink(src, sink, overwrite, encode)
        except BaseException:
            src.close()
            raise
        try:
            pipeline = Pipeline(
                src,
                self.backend,
                out,
                self.controller,
                policy=policy or "auto",
                batch=batch,
                strength=strength,
                preserve_color=preserve_color,
                progress=progress,
            )
        except BaseException:  # e.g. a batch too large for memory: no temporary file may stay behind
            out.abort()
            src.close()
            raise
        return pipeline.run()

    def _file_sink(self, src: Source, output: str | Path | None, overwrite: bool, encode: dict[str, Any]) -> Sink:
        if output is None:
            return NullSink()
        path = Path(output)
        check_run_output(path, src, overwrite)
        single = isinstance(src, ImageSource) and not src.is_folder
        return open_file_sink(
            path,
            src,
            src.size,
            single_image=single,
            rate=src.rate or src.fps,
            time_base=src.time_base,
            overwrite=overwrite,
            **encode,
        )

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Stylizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
