"""Styles fitted on first use and kept in the user cache, so the second use is instant.

``stylecast run --style-image PAINTING`` and ``Stylizer.add_style`` fit the painting onto the base
model once. The extended model is stored under a key made of the painting's SHA-256, the base
model's SHA-256, the style's name, the fitting recipe, the photo set and the perceptual network.
A model file records all of these for its newest style, so an entry is checked by loading it (which
verifies the archive's checksums) and comparing its record with the key: a damaged entry, or one
written for another key, is refitted with a warning.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from realtime.artifacts import cache_dir
from realtime.errors import ModelError
from realtime.modelfile import load_model
from train.add_style import (
    FitRecipe,
    bundled_photos,
    check_extendable,
    default_name,
    extend,
    perceptual_source,
    read_painting,
    write,
)
from train.data import folder_digest
from train.trainer import DistInfo, pick_device

log = logging.getLogger(__name__)

#: bump when what an entry holds changes meaning; older entries then get other keys and are refitted
CACHE_FORMAT = 1


@dataclass(frozen=True)
class StyleKey:
    painting_sha256: str
    base_model_sha256: str
    name: str
    recipe_sha256: str
    photos_sha256: str
    perceptual: str
    format: int = CACHE_FORMAT

    @classmethod
    def of_record(cls, record: dict[str, Any]) -> StyleKey:
        """The key a model file's ``add_style`` record was fitted under."""
        values: dict[str, Any] = {k: record.get(k, "") for k in cls.__dataclass_fields__ if k != "format"}
        return cls(**values)

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()


def _entry_problem(key: StyleKey, path: Path) -> str | None:
    """Why the cached model at ``path`` cannot serve ``key``, or None."""
    try:
        _, info = load_model(path)
    except ModelError as e:
        return str(e)
    records = info.train_config.get("add_style") or [{}]
    if StyleKey.of_record(records[-1]) != key or info.style_names[-1] != key.name:
        return "fitted for another painting, model or recipe"
    return None


def style_model(model: str | Path | None, painting: str | Path, *, recipe: FitRecipe | None = None,
                device: str = "auto", progress: bool = True,
                check_names: Callable[[list[str]], None] | None = None) -> tuple[Path, str]:
    """A model file holding ``model``'s styles plus ``painting``, and the painting's style name.

    The painting of an existing style (same SHA-256) is that style, with nothing fitted. Otherwise
    a valid cache entry is used, or the style is fitted now and stored (nothing is stored when the
    fit is interrupted). A cache that cannot be written costs a fit per run, not the run.
    ``check_names`` gets the style names the result will have before any fit, so a caller's
    ``--style`` or schedule can fail in a second rather than after minutes of fitting.
    """
    recipe = recipe or FitRecipe()
    if model is not None:
        check_extendable(Path(model))
    generator, info = load_model(model)
    item = read_painting(Path(painting), "", recipe.style_side)
    assert info.path is not None  # load_model always records it
    for style in info.styles:
        if style.source_sha256 == item.sha256:
            log.info("%s is the painting of the model's style %s", painting, style.name)
            if check_names is not None:
                check_names(list(info.style_names))
            return info.path, style.name
    # The model may have a style of the same name from another painting; the hash tells them apart.
    name = default_name(item.path.stem)
    item = replace(item, name=name if name not in info.style_names else f"{name}_{item.sha256[:8]}")
    if check_names is not None:
        check_names([*info.style_names, item.name])
    photos = bundled_photos()
    key = StyleKey(item.sha256, info.sha256, item.name, recipe.digest(), folder_digest(photos),
                   perceptual_source(info.perceptual).description)
    root = cache_dir("styles")
    model_path = root / f"{key.digest()[:32]}.stylecast"
    if model_path.exists():
        problem = _entry_problem(key, model_path)
        if problem is None:
            log.info("style %s from the cache: %s", item.name, model_path)
            return model_path, item.name
        log.warning("cached style %s is unusable (%s); fitting it again", model_path.name, problem)
    log.info("fitting %s as style %s (once per painting and model)", painting, item.name)
    ext = extend(generator, info, [item], recipe, pick_device(device, DistInfo()), photos, progress)
    if ext.interrupted:
        raise KeyboardInterrupt
    try:
        write(ext, model_path)
    except OSError as e:
        scratch = Path(tempfile.mkdtemp(prefix="stylecast-style-"))
        atexit.register(shutil.rmtree, scratch, ignore_errors=True)
        log.warning("cannot write the style cache %s (%s); keeping the style for this run only "
                    "(set STYLECAST_CACHE to a writable folder)", root, e.strerror or e)
        model_path = scratch / model_path.name
        write(ext, model_path)
    return model_path, item.name

