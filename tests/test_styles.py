from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from realtime.errors import StyleError
from realtime.styles import (
    Schedule,
    StyleController,
    load_schedule,
    mix_output,
    parse_style_spec,
    preserve_color,
    validate_strength,
    validate_weights,
)

NAMES = ["composition_vii", "great_wave", "shipwreck", "starry_night"]


def test_single_name_and_blend() -> None:
    np.testing.assert_allclose(parse_style_spec("starry_night", NAMES), [0, 0, 0, 1])
    np.testing.assert_allclose(parse_style_spec("starry_night:0.6,great_wave:0.4", NAMES), [0, 0.4, 0, 0.6], atol=1e-6)
    # Weights are normalized to a blend whatever scale the user writes.
    np.testing.assert_allclose(parse_style_spec("great_wave:3, shipwreck:1", NAMES), [0, 0.75, 0.25, 0], atol=1e-6)
    np.testing.assert_allclose(parse_style_spec("2", NAMES), [0, 0, 1, 0])


def test_unknown_name_suggests_the_nearest() -> None:
    with pytest.raises(StyleError, match="did you mean starry_night"):
        parse_style_spec("stary_night", NAMES)
    with pytest.raises(StyleError, match="available: composition_vii"):
        parse_style_spec("xyz", NAMES)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty style"),
        ("great_wave:-1", ">= 0"),
        ("great_wave:nan", "finite"),
        ("great_wave:inf", "finite"),
        ("great_wave:abc", "not a number"),
        ("great_wave:0", "all zero"),
        ("great_wave:0.5,,shipwreck", "empty style name"),
        ("9", "out of range"),
        ("great_wave:0.5,great_wave:0.5", "named twice"),
        ("1,great_wave", "named twice"),  # index 1 is great_wave
    ],
)
def test_bad_specs(spec: str, message: str) -> None:
    with pytest.raises(StyleError, match=message):
        parse_style_spec(spec, NAMES)


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ([1, 0], "expected 4"),
        ([1, 0, float("nan"), 0], "finite"),
        ([1, -1, 0, 0], "negative"),
        ([0, 0, 0, 0], "all zero"),
    ],
)
def test_bad_weight_vectors(weights: list[float], message: str) -> None:
    with pytest.raises(StyleError, match=message):
        validate_weights(weights, 4)


@given(st.lists(st.floats(min_value=0, max_value=1e6), min_size=4, max_size=4).filter(lambda w: sum(w) > 1e-3))
def test_valid_weights_are_a_blend(weights: list[float]) -> None:
    w = validate_weights(weights, 4)
    assert w.dtype == np.float32 and abs(float(w.sum()) - 1.0) < 1e-5 and (w >= 0).all()


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_toml_schedule_in_seconds_linear_and_smooth(tmp_path: Path) -> None:
    text = """
interpolation = "{mode}"
[[keyframes]]
time = 1.0
style = "great_wave"
[[keyframes]]
time = 3.0
weights = {{ starry_night = 1.0 }}
"""
    linear = load_schedule(_write(tmp_path, "a.toml", text.format(mode="linear")), NAMES)
    np.testing.assert_allclose(linear.weights_at(0, 0.0), [0, 1, 0, 0])  # holds before the first keyframe
    np.testing.assert_allclose(linear.weights_at(0, 1.5), [0, 0.75, 0, 0.25], atol=1e-6)
    np.testing.assert_allclose(linear.weights_at(0, 9.0), [0, 0, 0, 1])
    smooth = load_schedule(_write(tmp_path, "b.toml", text.format(mode="smooth")), NAMES)
    # smoothstep(0.25) = 0.15625: slower at the ends than linear, equal in the middle.
    np.testing.assert_allclose(smooth.weights_at(0, 1.5)[3], 0.15625, atol=1e-6)
    np.testing.assert_allclose(smooth.weights_at(0, 2.0), linear.weights_at(0, 2.0), atol=1e-6)


def test_json_schedule_in_frames(tmp_path: Path) -> None:
    data = {"keyframes": [{"frame": 0, "style": "shipwreck"}, {"frame": 10, "weights": [1, 0, 0, 0]}]}
    sched = load_schedule(_write(tmp_path, "s.json", json.dumps(data)), NAMES)
    assert sched.unit == "frames"
    np.testing.assert_allclose(sched.weights_at(5, 123.0), [0.5, 0, 0.5, 0], atol=1e-6)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bad.toml", "[[keyframes]]\ntime = 1\nstyle = \n", "invalid TOML.*line 3"),
        ("bad.json", '{"keyframes": [\n  {"time": 0, "style": "great_wave"},\n]}', "invalid JSON at line 3"),
        ("e.toml", "interpolation = 'linear'\n", "non-empty list 'keyframes'"),
        ("i.toml", "interpolation = 'cubic'\n[[keyframes]]\ntime=0\nstyle='great_wave'\n", "'interpolation' must be"),
        ("n.toml", "[[keyframes]]\nstyle='great_wave'\n", "keyframe 1: give exactly one of 'time'"),
        ("t.toml", "[[keyframes]]\ntime='soon'\nstyle='great_wave'\n", "keyframe 1: field 'time' must be a number"),
        (
            "o.toml",
            "[[keyframes]]\ntime=2\nstyle='great_wave'\n[[keyframes]]\ntime=1\nstyle='shipwreck'\n",
            "keyframe 2: 'time' = 1 is not after",
        ),
        (
            "u.toml",
            "[[keyframes]]\ntime=0\nstyle='great_wav'\n",
            "keyframe 1: unknown style 'great_wav'; did you mean great_wave",
        ),
        (
            "m.toml",
            "[[keyframes]]\ntime=0\nstyle='great_wave'\n[[keyframes]]\nframe=9\nstyle='shipwreck'\n",
            "one unit",
        ),
        ("w.toml", "[[keyframes]]\ntime=0\nweights=[1, 0]\n", "keyframe 1: expected 4 style weights"),
        ("x.toml", "[[keyframes]]\ntime=0\nstyle='great_wave'\ncolour=1\n", "unknown field.*colour"),
        ("s.yaml", "keyframes: []\n", "use .toml or .json"),
    ],
)
def test_malformed_schedules_name_the_problem(tmp_path: Path, name: str, text: str, message: str) -> None:
    with pytest.raises(StyleError, match=message):
        load_schedule(_write(tmp_path, name, text), NAMES)


def test_missing_schedule_file(tmp_path: Path) -> None:
    with pytest.raises(StyleError, match="not found"):
        load_schedule(tmp_path / "nope.toml", NAMES)


def test_controller_follows_schedule_until_a_manual_change() -> None:
    sched = Schedule.from_dict(
        {"keyframes": [{"frame": 0, "style": "great_wave"}, {"frame": 4, "style": "shipwreck"}]}, NAMES
    )
    ctl = StyleController(NAMES, schedule=sched)
    np.testing.assert_allclose(ctl.weights_for(2, 0.0), [0, 0.5, 0.5, 0], atol=1e-6)
    ctl.set("starry_night")
    np.testing.assert_allclose(ctl.weights_for(2, 0.0), [0, 0, 0, 1])
    ctl.follow(sched)
    np.testing.assert_allclose(ctl.weights_for(4, 0.0), [0, 0, 1, 0])


def test_controller_keys_and_crossfade() -> None:
    ctl = StyleController(NAMES)
    np.testing.assert_allclose(ctl.weights_for(0, 0), [1, 0, 0, 0])  # default: the first style
    assert ctl.handle_key(ord("3"))
    np.testing.assert_allclose(ctl.weights_for(0, 0), [0, 0, 1, 0])
    assert ctl.handle_key(ord("n"))
    np.testing.assert_allclose(ctl.weights_for(0, 0), [0, 0, 0, 1])
    assert not ctl.handle_key(ord("9"))  # only 4 styles
    assert not ctl.handle_key(ord("x"))
    ctl.crossfade_to("great_wave", 60.0)
    mid = ctl.weights_for(0, 0)
    assert mid[3] > 0.99 and abs(mid.sum() - 1) < 1e-5  # a minute-long fade has barely started
    ctl.crossfade_to("great_wave", 0.0)
    np.testing.assert_allclose(ctl.weights_for(0, 0), [0, 1, 0, 0])
    with pytest.raises(StyleError):
        ctl.crossfade_to("great_wave", -1.0)


def test_controller_is_thread_safe() -> None:
    ctl = StyleController(NAMES)
    bad: list[np.ndarray] = []

    def writer() -> None:
        for i in range(500):
            ctl.set(np.eye(4)[i % 4])

    t = threading.Thread(target=writer)
    t.start()
    while t.is_alive():
        w = ctl.weights_for(0, 0)
        if abs(float(w.sum()) - 1.0) > 1e-5 or np.count_nonzero(w) != 1:
            bad.append(w)
    t.join()
    assert not bad


def test_strength_and_preserve_color() -> None:
    rng = np.random.default_rng(0)
    original = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    stylized = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    np.testing.assert_array_equal(mix_output(original, stylized, 0.0), original)
    np.testing.assert_array_equal(mix_output(original, stylized, 1.0), stylized)
    half = mix_output(original, stylized, 0.5).astype(int)
    assert np.abs(half - (original.astype(int) + stylized.astype(int)) / 2).max() <= 1
    # Preserve colour: a grey input stays grey whatever colours the style paints.
    grey = np.full((8, 8, 3), 128, np.uint8)
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 255
    out = preserve_color(grey, red).astype(int)
    assert np.abs(out - out[..., :1]).max() <= 2
    with pytest.raises(StyleError):
        validate_strength(1.5)
