"""Export: ONNX parity with torch (odd sizes included), metadata, the export command and its formats."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from realtime.cli import main
from realtime.errors import ModelError
from realtime.export import (
    OPSET,
    PARITY_SHAPES,
    PARITY_TOLERANCE,
    export_onnx,
    export_torchscript,
    verify_onnx,
    verify_torchscript,
)
from realtime.modelfile import load_model

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def exported(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    generator, info = load_model(tiny_model)
    return export_onnx(generator, info, tmp_path_factory.mktemp("export") / "tiny.onnx")


def test_onnx_matches_torch_on_odd_sizes_and_batches(tiny_model: Path, exported: Path) -> None:
    assert any(h % 2 and w % 2 for _, h, w in PARITY_SHAPES) and any(b > 1 for b, _, _ in PARITY_SHAPES)
    err = verify_onnx(load_model(tiny_model)[0], exported)
    assert 0 <= err <= PARITY_TOLERANCE


def test_onnx_has_dynamic_axes_metadata_and_opset(tiny_model: Path, exported: Path) -> None:
    _, info = load_model(tiny_model)
    proto = onnx.load(str(exported))
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= OPSET >= 17
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["stylecast_model_sha256"] == info.sha256
    assert json.loads(meta["stylecast_styles"]) == info.style_names
    inputs = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in proto.graph.input}
    assert inputs["frames"] == ["batch", 3, "height", "width"]
    assert inputs["style_weights"] == ["batch", info.config.num_styles]


def test_a_wrong_graph_fails_the_parity_check(tiny_model: Path, exported: Path, tmp_path: Path) -> None:
    proto = onnx.load(str(exported))
    # The last conv: an instance norm after any other would normalize a scaled weight away.
    conv = [n for n in proto.graph.node if n.op_type == "Conv"][-1]
    weight = next(t for t in proto.graph.initializer if t.name == conv.input[1])
    arr = onnx.numpy_helper.to_array(weight).copy()
    arr *= 1.05
    weight.CopyFrom(onnx.numpy_helper.from_array(arr, weight.name))
    bad = tmp_path / "bad.onnx"
    onnx.save(proto, str(bad))
    with pytest.raises(ModelError, match="differs from torch"):
        verify_onnx(load_model(tiny_model)[0], bad)


def test_an_unreadable_onnx_file_is_a_model_error(tiny_model: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not onnx")
    with pytest.raises(ModelError, match="cannot load"):
        verify_onnx(load_model(tiny_model)[0], junk)


def test_torchscript_export_matches_torch(tiny_model: Path, tmp_path: Path) -> None:
    generator, info = load_model(tiny_model)
    path = export_torchscript(generator, info, tmp_path / "tiny.pt")
    assert verify_torchscript(generator, path) <= PARITY_TOLERANCE
    files = {"stylecast_styles": ""}
    torch.jit.load(str(path), _extra_files=files)
    assert json.loads(files["stylecast_styles"]) == info.style_names


def test_export_command_writes_a_verified_onnx(tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.onnx"
    assert main(["export", "--model", str(tiny_model), "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(out)
    assert out.exists() and not list(tmp_path.glob(".*.part"))


def test_export_command_default_name(tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["export", "--model", str(tiny_model), "--format", "torchscript"]) == 0
    assert (tmp_path / "tiny.torchscript.pt").exists()


def test_export_int8_writes_a_gated_qdq_graph(tiny_model: Path, tmp_path: Path, frame_folder: Path) -> None:
    out = tmp_path / "m.int8.onnx"
    code = main(["export", "--model", str(tiny_model), "--int8", "--frames", str(frame_folder), "-o", str(out)])
    assert code == 0
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert json.loads(out.with_suffix(".onnx.json").read_text())["passed"] is True


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--half"], "--half applies to TensorRT engines"),
        (["--opset", "13"], "--opset must be >= 17"),
        (["-o", "/nonexistent-folder/m.onnx"], "output folder does not exist"),
        (["--opset", "999"], "--opset must be >= 17 and <= 20"),
        (["-o", "/proc/stylecast-export.onnx"], "not writable"),
    ],
)
def test_export_user_errors_are_one_line(tiny_model: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    assert main(["export", "--model", str(tiny_model), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_export_of_a_missing_model_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--model", str(tmp_path / "none.stylecast")]) == 2
    assert "model file not found" in capsys.readouterr().err


def test_parity_inputs_cover_every_style(tiny_model: Path) -> None:
    from realtime.export import _parity_inputs

    weights = torch.cat([w for _, w in _parity_inputs(3)])
    assert torch.allclose(weights.sum(1), torch.ones(len(weights)))
    assert (weights.argmax(1).unique().numel() > 1) and np.all(weights.numpy() > 0)


# --- outputs: never an input, never replaced unasked, a failed export replaces nothing ----------------------


def test_export_never_overwrites_its_model_or_an_unnamed_file(tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "m.stylecast"
    model.write_bytes(tiny_model.read_bytes())
    before = model.read_bytes()
    for extra in ([], ["--overwrite"]):
        assert main(["export", "--model", str(model), "-o", str(model), *extra]) == 2
        assert "is the input" in capsys.readouterr().err
    assert model.read_bytes() == before
    out = tmp_path / "m.onnx"
    out.write_bytes(b"the user's file")
    assert main(["export", "--model", str(model), "-o", str(out), "--no-verify"]) == 2
    assert "pass --overwrite" in capsys.readouterr().err and out.read_bytes() == b"the user's file"
    assert main(["export", "--model", str(model), "-o", str(out), "--no-verify", "--overwrite"]) == 0
    assert onnx.load(str(out)).producer_name == "stylecast"


def test_a_failed_check_keeps_the_old_output(tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from realtime import artifact_commands

    def differs(generator: object, path: Path) -> float:
        raise ModelError(f"ONNX export {path} differs from torch")

    monkeypatch.setattr(artifact_commands, "verify_onnx", differs)
    out = tmp_path / "m.onnx"
    out.write_bytes(b"an earlier export")
    assert main(["export", "--model", str(tiny_model), "-o", str(out), "--overwrite"]) == 2
    assert "differs from torch" in capsys.readouterr().err
    assert out.read_bytes() == b"an earlier export" and sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]
