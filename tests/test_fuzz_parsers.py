"""Fuzzing the parsers users type into: style specs, weight vectors, schedules (data and files), shape,
size and bitrate strings. Each either parses to a valid value or raises its one documented error."""

from __future__ import annotations

import argparse
import json
import string
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from realtime.argtypes import size_wxh as _size
from realtime.compile import parse_shapes
from realtime.errors import OutputError, StyleError
from realtime.model import MIN_SIDE
from realtime.sinks import parse_bitrate
from realtime.styles import Schedule, load_schedule, parse_style_spec, resolve_weights

NAMES = ["candy", "mosaic", "wave", "1984"]  # a numeric-looking name must not be taken for an index
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Text built from the pieces the grammars use, plus anything else.
spec_pieces = st.sampled_from([*NAMES, ":", ",", " ", "0", "1", ".5", "-1", "nan", "inf", "1e999", "²", "١", "x"])
spec_text = st.one_of(st.lists(spec_pieces, max_size=12).map("".join), st.text(max_size=30))
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.booleans(),
)
json_values = st.recursive(
    st.one_of(st.none(), numbers, st.text(max_size=8), st.sampled_from(NAMES)),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
keyframe = st.dictionaries(
    st.sampled_from(["time", "at", "frame", "style", "weights", "other"]),
    st.one_of(numbers, st.sampled_from(NAMES), st.lists(numbers, max_size=5), spec_text, json_values),
    max_size=4,
)
schedule_data = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"keyframes": st.lists(keyframe, max_size=4)},
        optional={
            "interpolation": st.sampled_from(["linear", "smooth", "cubic", 3]),
            "unit": st.sampled_from(["seconds", "frames", "hours", None]),
        },
    ),
)


def _is_blend(w: np.ndarray) -> bool:
    return (
        w.shape == (len(NAMES),) and w.dtype == np.float32 and bool(np.all(w >= 0)) and abs(float(w.sum()) - 1) < 1e-5
    )


@FUZZ
@given(spec_text)
def test_style_specs(spec: str) -> None:
    try:
        w = parse_style_spec(spec, NAMES)
    except StyleError as e:
        assert "\n" not in str(e)
        return
    assert _is_blend(w)


@FUZZ
@given(
    st.one_of(
        st.lists(numbers, max_size=6), st.dictionaries(st.sampled_from([*NAMES, "other"]), json_values), json_values
    )
)
def test_weight_values(value: object) -> None:
    try:
        w = resolve_weights(value, NAMES)  # type: ignore[arg-type]
    except StyleError:
        return
    assert _is_blend(w)


@FUZZ
@given(schedule_data)
def test_schedule_data(data: object) -> None:
    try:
        schedule = Schedule.from_dict(data, NAMES)  # type: ignore[arg-type]
    except StyleError as e:
        assert str(e).startswith("schedule")
        return
    at = [k.at for k in schedule.keyframes]
    assert at == sorted(set(at)) and all(_is_blend(k.weights) for k in schedule.keyframes)
    for x in (0.0, at[-1] / 2, at[-1] + 1.0):
        assert _is_blend(schedule.weights_at(int(x), x))


@FUZZ
@given(
    text=st.one_of(st.text(max_size=80), schedule_data.map(lambda d: json.dumps(d, default=str))),
    suffix=st.sampled_from([".json", ".toml"]),
)
def test_schedule_files(tmp_path: Path, text: str, suffix: str) -> None:
    path = tmp_path / f"fuzz{suffix}"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    try:
        load_schedule(path, NAMES)
    except StyleError as e:
        assert path.name in str(e) and "\n" not in str(e).strip()


shape_text = st.one_of(
    st.text(max_size=40),
    st.lists(
        st.sampled_from(["1", "3", "16", "720", "x", ":", ",", "min=", "opt=", "max=", "0", "²", " "]), max_size=20
    ).map("".join),
)


@FUZZ
@given(shape_text)
def test_shape_profiles(text: str) -> None:
    try:
        profile = parse_shapes(text)
    except ValueError:
        return
    for lo, opt, hi in zip(profile.min, profile.opt, profile.max, strict=True):
        assert lo <= opt <= hi
    assert profile.min[1] == 3 and min(profile.min[2:]) >= MIN_SIDE and profile.min[0] >= 1


@FUZZ
@given(st.one_of(st.text(max_size=12), st.from_regex(r"\A[0-9²١]{0,5}[xX][0-9²١]{0,5}\Z")))
def test_size_strings(text: str) -> None:
    try:
        w, h = _size(text)
    except (argparse.ArgumentTypeError, ValueError):  # argparse turns both into a usage error
        return
    assert w >= 1 and h >= 1


@FUZZ
@given(st.one_of(st.text(alphabet=string.printable, max_size=10), st.from_regex(r"\A-?[0-9.e]{0,6}[kKmM]?\Z")))
def test_bitrates(text: str) -> None:
    try:
        bits = parse_bitrate(text)
    except OutputError:
        return
    assert bits >= 0


@pytest.mark.parametrize("spec", ["1984", "3", "١", "candy:1e999", "²"])
def test_found_by_fuzzing(spec: str) -> None:
    """Cases the fuzzers above turned up, kept as plain regression checks."""
    try:
        w = parse_style_spec(spec, NAMES)
    except StyleError:
        return
    assert _is_blend(w)
