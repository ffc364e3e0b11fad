"""mypy over the whole package, the TensorRT code included against the vendored, patched tensorrt
stubs (typings/).

TensorRT cannot be installed on CPU machines, so this is what keeps that code honest there: the
stubs catch API misuse such as TensorRT 8's ``ICudaEngine.num_bindings``, removed in TensorRT 10.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["realtime", "train", "calibration", "benchmarks"]


def test_mypy_package_and_tensorrt_code_against_stubs() -> None:
    proc = subprocess.run([sys.executable, "-m", "mypy", *PACKAGES], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_mypy_catches_removed_tensorrt_api(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("import tensorrt as trt\n\ndef f(e: trt.ICudaEngine) -> int:\n    return e.num_bindings\n")
    proc = subprocess.run([sys.executable, "-m", "mypy", "--follow-imports=silent", str(probe)],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 1 and "num_bindings" in proc.stdout
