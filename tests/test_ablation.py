"""The ablations: each study's variants differ from the baseline in one trainer flag; the table; bad input.
(A study trains two models and runs the eval twice: it is a benchmark, run by hand.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import ablation
from benchmarks.ablation import STUDIES, AblationConfig, report
from benchmarks.arch_study import budget_command
from benchmarks.evaluate import bundled_clips
from train.config import TrainConfig


@pytest.mark.parametrize("name", sorted(STUDIES))
def test_each_variant_differs_from_the_baseline_in_its_study_field_only(tmp_path: Path, name: str) -> None:
    study = STUDIES[name]
    assert study.field in TrainConfig.__dataclass_fields__ and study.variants["baseline"] == {}
    baseline = budget_command(tmp_path, tmp_path / "out", "baseline", {})
    for variant, flags in study.variants.items():
        if variant == "baseline":
            continue
        cmd = budget_command(tmp_path, tmp_path / "out", variant, flags)
        assert list(flags) == [study.field]
        assert [a for a in cmd if a not in baseline and not a.endswith(variant)] == [f"--{study.field.replace('_', '-')}={flags[study.field]}"]
    assert all(c.is_file() for c in bundled_clips())


def _flicker(error: float, peer: float | None) -> dict[str, object]:
    f: dict[str, object] = {"stylecast": {"warping_error": error, "ratio_to_input": error / 0.005}}
    if peer:
        f["ratio_to_peer"] = error / peer
    return f


def test_report_has_a_row_per_variant_and_clip(tmp_path: Path) -> None:
    row = {"nearest_style_accuracy": 0.9, "style_distance": 1.0, "content_distance": 0.9, "steps": 1200}
    rows = {
        "baseline": {**row, "varied": 80.0, "flicker": {"a.mp4": _flicker(0.008, 0.016), "b.mp4": _flicker(0.01, None)}},
        "no-temporal": {**row, "varied": 0.0, "flicker": {"a.mp4": _flicker(0.012, 0.016), "b.mp4": _flicker(0.02, None)}},
    }
    env = {"cpu": "test cpu", "cpu_isa": ["avx2"], "cpu_count": 2}
    table = report(rows, env, AblationConfig("temporal", tmp_path, tmp_path, (Path("a.mp4"), Path("b.mp4"))))
    assert "test cpu (avx2)" in table and "| temporal_weight |" in table
    assert "| baseline | 80 | a.mp4 | 0.0080 | 1.60 | 0.50x |" in table
    assert "| no-temporal | 0 | b.mp4 | 0.0200 | 4.00 | - |" in table
    rows = {"baseline": {**rows["baseline"], "varied": "relu2_2"}}
    assert "| baseline | relu2_2 | a.mp4 |" in report(rows, env, AblationConfig("content-layer", tmp_path, tmp_path, ()))


@pytest.mark.parametrize(("args", "message"), [
    (["temporal", "--photos", "{tmp}/missing"], "photo folder not found"),
    (["content-layer", "--photos", "{tmp}", "--clips", "{tmp}/nope.mp4"], "clip not found"),
])
def test_bad_arguments_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args] + ["--out", str(tmp_path / "o")]
    assert ablation.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
