"""The temporal-loss ablation: its variants differ in the temporal weight only; its table; bad input.
(The chain trains two models and runs the eval four times: it is a benchmark, run by hand.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import temporal_ablation
from benchmarks.arch_study import budget_command
from benchmarks.temporal_ablation import VARIANTS, AblationConfig, bundled_clips, report


def test_variants_differ_only_in_the_temporal_weight(tmp_path: Path) -> None:
    with_it, without = (budget_command(tmp_path, tmp_path / "out", name, flags) for name, flags in VARIANTS.items())
    extra = [a for a in without if a not in with_it and not a.endswith("no-temporal")]
    assert extra == ["--temporal-weight=0.0"]
    assert all(c.is_file() for c in bundled_clips())


def _flicker(error: float, peer: float | None) -> dict[str, object]:
    f: dict[str, object] = {"stylecast": {"warping_error": error, "ratio_to_input": error / 0.005}}
    if peer:
        f["ratio_to_peer"] = error / peer
    return f


def test_report_has_a_row_per_variant_and_clip(tmp_path: Path) -> None:
    row = {"nearest_style_accuracy": 0.9, "style_distance": 1.0, "content_distance": 0.9, "steps": 1200}
    rows = {
        "temporal": {**row, "temporal_weight": 80.0, "flicker": {"a.mp4": _flicker(0.008, 0.016), "b.mp4": _flicker(0.01, None)}},
        "no-temporal": {**row, "temporal_weight": 0.0, "flicker": {"a.mp4": _flicker(0.012, 0.016), "b.mp4": _flicker(0.02, None)}},
    }
    env = {"cpu": "test cpu", "cpu_isa": ["avx2"], "cpu_count": 2}
    table = report(rows, env, AblationConfig(tmp_path, tmp_path, (Path("a.mp4"), Path("b.mp4"))))
    assert "test cpu (avx2)" in table and "| temporal | 80 | a.mp4 | 0.0080 | 1.60 | 0.50x |" in table
    assert "| no-temporal | 0 | b.mp4 | 0.0200 | 4.00 | - |" in table


@pytest.mark.parametrize(("args", "message"), [
    (["--photos", "{tmp}/missing"], "photo folder not found"),
    (["--photos", "{tmp}", "--clips", "{tmp}/nope.mp4"], "clip not found"),
])
def test_bad_arguments_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args] + ["--out", str(tmp_path / "o")]
    assert temporal_ablation.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
