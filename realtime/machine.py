"""What machine this is, in the words every result file and model file records."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def usable_cores() -> int:
    """The cores this process may run on (its affinity, which containers and ``taskset`` narrow)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


#: CPU features that decide what INT8 and FP16 can gain: 8-bit dot products (VNNI), AMX tiles, AVX-512.
ISA_FLAGS = (
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
)


def cpu_isa() -> list[str] | None:
    """Which of ``ISA_FLAGS`` the CPU reports (Linux only; None elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                present = set(line.split(":", 1)[1].split())
                return [f for f in ISA_FLAGS if f in present]
    except OSError:
        pass
    return None


def fast_cpu_bf16() -> bool:
    """Whether bf16 autocast pays on this CPU: AMX tiles, not the AVX-512 BF16 dot products alone.

    A 2-core Sapphire Rapids with AMX ran a training step of the fast model with VGG16 2x faster under
    bf16 autocast. A 2-core Emerald Rapids guest with AVX-512 BF16 but no AMX exposed ran the VGG
    passes 1.7x slower under it (2.23 s against 1.30 s per step's VGG forward and backward at 4x160
    px), and CPUs without either emulate bf16 and are slower still.
    """
    return "amx_bf16" in (cpu_isa() or [])


def resolve_device(name: str) -> str:
    """``auto`` -> ``cuda`` where torch sees a GPU, else ``cpu``; a CUDA device where it sees none is refused."""
    import torch

    from realtime.errors import BackendUnavailable

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise BackendUnavailable(f"--device {name}: no CUDA GPU is available here (torch sees none); use --device cpu")
    return name


def describe_machine() -> str:
    """One line naming the CPU and its instruction-set features, and the GPU when torch sees one."""
    import torch

    text = f"{cpu_model()} ({', '.join(cpu_isa() or [])}; {torch.get_num_threads()} threads)"
    if torch.cuda.is_available():
        text += f"; GPU {torch.cuda.get_device_name()}"
    return text
