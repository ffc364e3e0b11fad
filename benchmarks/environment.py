"""What a benchmark ran on: hardware, drivers, library versions and thread counts.

Recorded in every result file so that numbers from two machines are compared knowing what differs.
Every probe is best-effort: a missing tool or library is recorded as absent, never an error.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

from realtime.machine import cpu_isa, cpu_model


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _run(cmd: list[str]) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out or None


def _git_commit() -> str | None:
    root = Path(__file__).resolve().parent.parent
    return _run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"])


def _gpu() -> dict[str, Any] | None:
    import torch

    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(0)
    smi = _run(["nvidia-smi", "--query-gpu=driver_version,clocks.max.sm,power.limit", "--format=csv,noheader,nounits"])
    fields: list[str | None] = [s.strip() for s in smi.splitlines()[0].split(",")] if smi else []
    driver, max_clock, power = (fields + [None, None, None])[:3]
    return {
        "name": props.name,
        "compute_capability": f"{props.major}.{props.minor}",
        "memory_gib": round(props.total_memory / 2**30, 1),
        "count": torch.cuda.device_count(),
        "driver": driver,
        "max_sm_clock_mhz": max_clock,
        "power_limit_w": power,
        "cuda_runtime": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
    }


def _tensorrt_version() -> str | None:
    try:
        import tensorrt
    except ImportError:
        return None
    return str(tensorrt.__version__)


def collect_environment() -> dict[str, Any]:
    import onnxruntime as ort
    import torch

    return {
        "timestamp": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cpu_isa": cpu_isa(),
        "cpu_count": os.cpu_count(),
        # What this process may actually use (containers and taskset limit it below cpu_count).
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        # Other processes compete for the cores: a busy machine explains slow or noisy figures.
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "onnxruntime": ort.__version__,
        "onnxruntime_providers": ort.get_available_providers(),
        "opencv": _version("opencv-python-headless") or _version("opencv-python"),
        "numpy": _version("numpy"),
        "av": _version("av"),
        "tensorrt": _tensorrt_version(),
        "gpu": _gpu(),
        "stylecast": _version("stylecast"),
        "git_commit": _git_commit(),
    }
