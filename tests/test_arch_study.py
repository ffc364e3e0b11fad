"""The fast-architecture study's pieces: candidate shapes, training commands, the Pareto front, bad input.
(The whole chain trains and calibrates five models, minutes even with --tiny: it is a benchmark.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import arch_study
from benchmarks.arch_study import CANDIDATES, StudyConfig, pareto, shape_of, train_command
from train.config import TrainConfig
from train.trainer import generator_config


def test_every_candidate_is_a_fast_shape_the_trainer_builds() -> None:
    for name, overrides in CANDIDATES.items():
        shape = shape_of(name)
        assert shape["params"] > 0 and shape["gmacs_640x360"] > 0
        cfg = TrainConfig(**overrides)  # the study passes the overrides as trainer flags
        built = generator_config(cfg, len(arch_study.STYLES)).to_dict()
        assert built == shape["generator"], name
    assert shape_of("shipped")["generator"]["half_channels"] == 0


def test_train_command_uses_the_study_config_and_the_candidate_flags(tmp_path: Path) -> None:
    cmd = train_command(StudyConfig(photos=tmp_path, out=tmp_path / "out"), "half16-b3")
    assert cmd[cmd.index("--config") + 1].endswith("arch-study.toml")
    assert "--half-channels=16" in cmd and "--res-blocks=3" in cmd
    styles = Path(cmd[cmd.index("--styles") + 1])
    assert sorted(p.stem for p in styles.iterdir()) == sorted(arch_study.STYLES)


def _row(ms: float, style: float, content: float) -> dict[str, float]:
    return {"fp32_ms": ms, "int8_ms": ms + 1, "style_distance": style, "content_distance": content}


def test_pareto_front_keeps_only_undominated_candidates() -> None:
    rows = {
        "fast-plain": _row(20, 1.5, 0.8),
        "slow-better": _row(30, 1.2, 0.7),
        "slow-worse": _row(31, 1.6, 0.9),  # beaten by fast-plain on everything
        "trade": _row(25, 1.1, 0.95),
    }
    assert pareto(rows) == {"fast-plain", "slow-better", "trade"}


@pytest.mark.parametrize(("args", "message"), [
    (["--candidates", "nope"], "unknown candidate"),
    (["--candidates", ","], "unknown candidate"),
])
def test_bad_arguments_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    assert arch_study.main(["--photos", str(tmp_path), "--out", str(tmp_path / "o"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_a_missing_photo_folder_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert arch_study.main(["--photos", str(tmp_path / "missing")]) == 2
    assert "photo folder not found" in capsys.readouterr().err


def test_report_only_rewrites_the_table_from_study_json(tmp_path: Path) -> None:
    import json

    rows = {name: {**shape_of(name), **_row(20 + i, 1.0 + i / 10, 0.8), "nearest_style_accuracy": 0.9, "grid_ratio": 0.5,
                   "int8_psnr_db": 45.0, "steps": 1200, "train_seconds": 600.0} for i, name in enumerate(CANDIDATES)}
    (tmp_path / "study.json").write_text(json.dumps({"environment": {"cpu": "test cpu", "cpu_isa": ["avx2"], "cpu_count": 2},
                                                    "candidates": rows}))
    assert arch_study.main(["--report-only", "--out", str(tmp_path)]) == 0
    table = (tmp_path / "study.md").read_text()
    assert "test cpu (avx2)" in table and table.count("| yes |") == 1  # the first is fastest and best
    assert json.loads((tmp_path / "study.json").read_text())["pareto"] == ["shipped"]
    (tmp_path / "study.json").write_text("{}")
    assert arch_study.main(["--report-only", "--out", str(tmp_path)]) == 2
