"""Style control: which blend of the model's styles each frame gets, and how it is mixed back.

* ``parse_style_spec`` turns ``starry_night`` or ``starry_night:0.6,great_wave:0.4`` into a weight
  vector; ``validate_weights`` checks any vector a user or program hands in.
* ``Schedule`` holds keyframes (in seconds or in frames) loaded from TOML or JSON and interpolates
  between them, linearly or with smoothstep.
* ``StyleController`` is the one thread-safe owner of "the current style": the stream asks it for
  each frame's weights, while a game loop, the Python API or the window's keys change it.
* ``mix_output`` applies ``--strength`` (mix with the original) and ``--preserve-color``.
"""

from __future__ import annotations

import bisect
import difflib
import json
import math
import sys
import threading
import time
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from realtime.errors import StyleError

Interpolation = Literal["linear", "smooth"]
WeightsLike = str | Mapping[str, float] | Sequence[float] | np.ndarray


def _unknown_style(name: str, names: Sequence[str]) -> StyleError:
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(close)}?" if close else f"; available: {', '.join(names)}"
    return StyleError(f"unknown style {name!r}{hint}")


def validate_weights(weights: Sequence[float] | np.ndarray, num_styles: int) -> np.ndarray:
    """Check a weight vector and normalize it to sum 1 (a blend, whatever scale the user wrote)."""
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or w.shape[0] != num_styles:
        raise StyleError(f"expected {num_styles} style weights, got {w.size}")
    if not np.all(np.isfinite(w)):
        raise StyleError("style weights must be finite numbers (got NaN or infinity)")
    if np.any(w < 0):
        raise StyleError("style weights must not be negative")
    if not np.any(w > 0):
        raise StyleError("style weights are all zero; give at least one style a positive weight")
    # Scaled by the largest first: weights near the float limit (1e308) would sum to infinity and
    # normalize to all zeros. After it every weight is in [0, 1] and the sum in [1, N]: always a blend.
    w = w / w.max()
    return (w / w.sum()).astype(np.float32)


def parse_style_spec(spec: str, names: Sequence[str]) -> np.ndarray:
    """``name``, ``index`` or ``name:weight,name:weight`` -> normalized float32 weights."""
    if not spec or not spec.strip():
        raise StyleError("empty style; give a style name such as " + repr(names[0]))
    weights = np.zeros(len(names), dtype=np.float64)
    seen: set[int] = set()
    for part in spec.split(","):
        name, sep, value = part.strip().partition(":")
        name = name.strip()
        if not name:
            raise StyleError(f"empty style name in {spec!r}")
        # isdecimal, not isdigit: "²" is a digit that int() refuses.
        if name.isdecimal() and name not in names:
            index = int(name)
            if not 0 <= index < len(names):
                raise StyleError(f"style index {index} out of range 0..{len(names) - 1}")
        elif name in names:
            index = names.index(name)
        else:
            raise _unknown_style(name, names)
        try:
            weight = float(value) if sep else 1.0
        except ValueError:
            raise StyleError(f"style weight for {name!r} is not a number: {value.strip()!r}") from None
        if not math.isfinite(weight) or weight < 0:
            raise StyleError(f"style weight for {name!r} must be a finite number >= 0, got {value.strip()}")
        if index in seen:
            # "a:1,a:1" is more likely a typo for another style than a wish for weight 2.
            raise StyleError(f"style {names[index]!r} is named twice in {spec!r}")
        seen.add(index)
        weights[index] = weight
    return validate_weights(weights, len(names))


def resolve_weights(value: WeightsLike, names: Sequence[str]) -> np.ndarray:
    """Any way a user can name a blend (spec string, {name: weight}, vector) -> normalized weights."""
    if isinstance(value, str):
        return parse_style_spec(value, names)
    if isinstance(value, Mapping):
        w = np.zeros(len(names), dtype=np.float64)
        for name, weight in value.items():
            if name not in names:
                raise _unknown_style(str(name), names)
            try:
                w[names.index(name)] = float(weight)
            except (TypeError, ValueError, OverflowError):
                raise StyleError(f"style weight for {name!r} is not a number: {weight!r}") from None
        return validate_weights(w, len(names))
    try:
        return validate_weights(np.asarray(value, dtype=np.float64), len(names))
    except (TypeError, ValueError, OverflowError):  # OverflowError: integers beyond float range
        raise StyleError(f"style weights must be numbers, got {value!r}") from None


def one_hot(index: int, num_styles: int) -> np.ndarray:
    w = np.zeros(num_styles, dtype=np.float32)
    w[index] = 1.0
    return w


def smoothstep(t: float) -> float:
    return t * t * (3.0 - 2.0 * t)


def blend(a: np.ndarray, b: np.ndarray, t: float, interpolation: Interpolation = "linear") -> np.ndarray:
    """Weights a fraction ``t`` in [0, 1] of the way from ``a`` to ``b`` (still summing to 1)."""
    t = min(max(t, 0.0), 1.0)
    if interpolation == "smooth":
        t = smoothstep(t)
    return ((1.0 - t) * a + t * b).astype(np.float32)


# --- schedules ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Keyframe:
    at: float  # seconds or frame index, per the schedule's unit
    weights: np.ndarray


@dataclass(frozen=True)
class Schedule:
    """Keyframed style weights over time; before the first and after the last keyframe they hold."""

    keyframes: tuple[Keyframe, ...]
    unit: Literal["seconds", "frames"] = "seconds"
    interpolation: Interpolation = "linear"

    @cached_property
    def _times(self) -> list[float]:
        return [k.at for k in self.keyframes]

    def weights_at(self, index: int, seconds: float) -> np.ndarray:
        x = float(index) if self.unit == "frames" else seconds
        keys = self.keyframes
        # Bisection: a schedule may hold a million keyframes, and this runs once per frame.
        i = bisect.bisect_left(self._times, x)
        if i == 0:
            return keys[0].weights
        if i == len(keys):
            return keys[-1].weights
        a, b = keys[i - 1], keys[i]
        return blend(a.weights, b.weights, (x - a.at) / (b.at - a.at), self.interpolation)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], names: Sequence[str], where: str = "schedule") -> Schedule:
        """Build from parsed TOML/JSON. Errors name the file and the offending keyframe/field."""
        if not isinstance(data, Mapping):
            raise StyleError(f"{where}: expected a table/object with 'keyframes'")
        unknown = set(data) - {"interpolation", "unit", "keyframes", "keyframe"}
        if unknown:
            raise StyleError(f"{where}: unknown field(s) {', '.join(map(repr, sorted(unknown)))}")
        interpolation = data.get("interpolation", "linear")
        if interpolation not in ("linear", "smooth"):
            raise StyleError(f"{where}: field 'interpolation' must be 'linear' or 'smooth', got {interpolation!r}")
        raw = data.get("keyframes", data.get("keyframe"))
        if not isinstance(raw, list) or not raw:
            raise StyleError(f"{where}: needs a non-empty list 'keyframes' (TOML: [[keyframes]] tables)")
        unit = data.get("unit")
        if unit not in (None, "seconds", "frames"):
            raise StyleError(f"{where}: field 'unit' must be 'seconds' or 'frames', got {unit!r}")
        keyframes: list[Keyframe] = []
        for i, k in enumerate(raw, start=1):
            at_key, key_unit = _keyframe_position(k, i, where)
            if unit is None:
                unit = key_unit
            elif key_unit != unit:
                raise StyleError(f"{where}: keyframe {i} uses {key_unit} but the schedule uses {unit}; use one unit")
            at = k[at_key]
            if isinstance(at, bool) or not isinstance(at, int | float) or not _finite(at) or at < 0:
                raise StyleError(f"{where}: keyframe {i}: field '{at_key}' must be a number >= 0, got {at!r}")
            if keyframes and at <= keyframes[-1].at:
                raise StyleError(f"{where}: keyframe {i}: '{at_key}' = {at} is not after the previous keyframe")
            if ("style" in k) == ("weights" in k):
                raise StyleError(f"{where}: keyframe {i}: give exactly one of 'style' or 'weights'")
            value = k.get("style", k.get("weights"))
            try:
                weights = resolve_weights(value, names)
            except StyleError as e:
                raise StyleError(f"{where}: keyframe {i}: {e}") from None
            keyframes.append(Keyframe(float(at), weights))
        return cls(tuple(keyframes), unit or "seconds", interpolation)


def _finite(x: float) -> bool:
    try:
        return math.isfinite(x)
    except OverflowError:  # an integer too large for a float (JSON and TOML allow them)
        return False


def _keyframe_position(k: Any, i: int, where: str) -> tuple[str, Literal["seconds", "frames"]]:
    if not isinstance(k, Mapping):
        raise StyleError(f"{where}: keyframe {i} must be a table/object, got {type(k).__name__}")
    unknown = set(k) - {"time", "at", "frame", "style", "weights"}
    if unknown:
        raise StyleError(f"{where}: keyframe {i}: unknown field(s) {', '.join(map(repr, sorted(unknown)))}")
    present = [key for key in ("time", "at", "frame") if key in k]
    if len(present) != 1:
        raise StyleError(f"{where}: keyframe {i}: give exactly one of 'time' (seconds) or 'frame'")
    return present[0], "frames" if present[0] == "frame" else "seconds"


def load_schedule(path: Path | str, names: Sequence[str]) -> Schedule:
    """Read a ``.toml`` or ``.json`` schedule file; syntax errors report the line."""
    path = Path(path)
    try:
        found = path.is_file()
    except OSError as e:  # a name over 255 bytes, a symlink loop
        raise StyleError(f"cannot read schedule {path}: {e.strerror or e}") from None
    if not found:
        raise StyleError(f"schedule file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise StyleError(f"cannot read schedule {path}: {e}") from None
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            data: Any = tomllib.loads(text)
        elif suffix == ".json":
            data = json.loads(text)
        else:
            raise StyleError(f"schedule {path}: unsupported extension {suffix!r}; use .toml or .json")
    except tomllib.TOMLDecodeError as e:
        raise StyleError(f"schedule {path}: invalid TOML: {e}") from None
    except json.JSONDecodeError as e:
        raise StyleError(f"schedule {path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    except RecursionError:
        raise StyleError(f"schedule {path}: nested too deeply to be a schedule") from None
    except ValueError:  # the decode errors are caught above: this is an integer beyond Python's digit limit
        raise StyleError(f"schedule {path}: a number has more than {sys.get_int_max_str_digits()} digits") from None
    return Schedule.from_dict(data, names, where=f"schedule {path}")


# --- live control ------------------------------------------------------------------------------------


class StyleController:
    """Thread-safe source of each frame's style weights.

    Without a manual change the stream follows the schedule (if any), else the initial weights. Any
    ``set``/``crossfade_to`` from another thread (game loop, window keys) takes over from then on;
    crossfades run on the wall clock so they look the same whatever the frame rate.
    """

    def __init__(
        self, names: Sequence[str], initial: WeightsLike | None = None, schedule: Schedule | None = None
    ) -> None:
        self.names = list(names)
        self._lock = threading.Lock()
        start = resolve_weights(initial, self.names) if initial is not None else one_hot(0, len(self.names))
        self._from = self._to = start
        self._fade_start = 0.0
        self._fade_seconds = 0.0
        self._schedule = schedule
        self._manual = False

    @property
    def num_styles(self) -> int:
        return len(self.names)

    def set(self, weights: WeightsLike) -> None:
        w = resolve_weights(weights, self.names)
        with self._lock:
            self._from = self._to = w
            self._fade_seconds = 0.0
            self._manual = True

    def follow(self, schedule: Schedule | None) -> None:
        """Let frames follow ``schedule`` again (until the next manual change)."""
        with self._lock:
            self._schedule = schedule
            self._manual = False

    def crossfade_to(self, weights: WeightsLike, seconds: float = 1.0) -> None:
        w = resolve_weights(weights, self.names)
        if not math.isfinite(seconds) or seconds < 0:
            raise StyleError(f"crossfade duration must be >= 0 seconds, got {seconds}")
        now = time.perf_counter()
        with self._lock:
            self._from = self._current(now)
            self._to = w
            self._fade_start, self._fade_seconds = now, seconds
            self._manual = True

    def next_style(self) -> int:
        """Index of the style after the dominant one (for cycling)."""
        with self._lock:
            return (int(np.argmax(self._to)) + 1) % self.num_styles

    def handle_key(self, key: int) -> bool:
        """Window keys: 1-9 switch style, n cycles, c crossfades to the next. True if the key was used."""
        if ord("1") <= key <= ord("9") and key - ord("1") < self.num_styles:
            self.set(one_hot(key - ord("1"), self.num_styles))
        elif key in (ord("n"), ord("N")):
            self.set(one_hot(self.next_style(), self.num_styles))
        elif key in (ord("c"), ord("C")):
            self.crossfade_to(one_hot(self.next_style(), self.num_styles), 1.0)
        else:
            return False
        return True

    def _current(self, now: float) -> np.ndarray:
        if self._fade_seconds <= 0:
            return self._to
        return blend(self._from, self._to, (now - self._fade_start) / self._fade_seconds, "smooth")

    def weights_for(self, index: int, seconds: float) -> np.ndarray:
        """The weights for frame ``index`` at stream time ``seconds``."""
        with self._lock:
            if self._schedule is not None and not self._manual:
                return self._schedule.weights_at(index, seconds)
            return self._current(time.perf_counter())

    def describe(self, weights: np.ndarray) -> str:
        parts = [f"{n}:{w:.2f}" for n, w in zip(self.names, weights, strict=True) if w > 0.005]
        return ",".join(parts)


# --- output mixing -----------------------------------------------------------------------------------


def validate_strength(strength: float) -> float:
    if not math.isfinite(strength) or not 0.0 <= strength <= 1.0:
        raise StyleError(f"--strength must be between 0 and 1, got {strength}")
    return float(strength)


def preserve_color(original: np.ndarray, stylized: np.ndarray) -> np.ndarray:
    """Keep the stylized luminance and the original's chroma (YCrCb), so colours stay the input's."""
    out = cv2.cvtColor(stylized, cv2.COLOR_RGB2YCrCb)
    out[..., 1:] = cv2.cvtColor(original, cv2.COLOR_RGB2YCrCb)[..., 1:]
    return cv2.cvtColor(out, cv2.COLOR_YCrCb2RGB)


def mix_output(
    original: np.ndarray, stylized: np.ndarray, strength: float = 1.0, keep_color: bool = False
) -> np.ndarray:
    """Apply ``--preserve-color`` then ``--strength`` to one uint8 RGB frame."""
    out = preserve_color(original, stylized) if keep_color else stylized
    if strength < 1.0:
        out = cv2.addWeighted(out, strength, original, 1.0 - strength, 0.0)
    return out
