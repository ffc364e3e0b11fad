"""The TensorRT compiler: an ONNX graph (or the generator itself) -> serialized engine bytes, plus the
key that identifies an engine on this machine. ``realtime.artifacts`` caches what this builds and
serves it to ``stylecast compile`` and the TensorRT backend; nothing here knows the cache folder.

Two routes build the engine:

* ``tensorrt`` (default): the TensorRT Python API on the exported ONNX graph (the calibrated Q/DQ
  graph for ``int8``/``best``), one optimization profile from ``--shapes``, a persistent timing cache
  and a workspace limit. The runtime's TensorRT backend runs these engines.
* ``torch-tensorrt``: torch-tensorrt's dynamo path (``torch.export`` then ``torch_tensorrt.dynamo.compile``),
  saved as an ExportedProgram (``torch.export.load`` + call) for hosts that stay in PyTorch. FP32/FP16
  only; it takes frames whose sides are multiples of 4 (>= 16), so such hosts pad frames themselves.

Precisions: ``fp32``; ``fp16``; ``int8`` (explicit Q/DQ INT8, other layers FP32); ``best`` (Q/DQ INT8
plus FP16 elsewhere).
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from realtime.engine_cache import EngineKey
from realtime.errors import BackendUnavailable, InputError
from realtime.model import MIN_SIDE, Generator
from realtime.modelfile import ModelInfo, file_sha256

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8", "best")
ROUTES = ("tensorrt", "torch-tensorrt")
#: from one frame at the generator's smallest side to a batch of four 4K frames, tuned for one 720p frame
DEFAULT_SHAPES = "1x3x16x16:1x3x720x1280:4x3x2160x3840"
DEFAULT_WORKSPACE_GB = 4.0
INSTALL_HINT = (
    "install the tensorrt extra on a machine with an NVIDIA GPU: pip install 'stylecast[tensorrt]' "
    "(TensorRT >= 10, torch-tensorrt, cuda-python; needs a CUDA build of torch and a recent NVIDIA driver)"
)

Shape = tuple[int, int, int, int]


@dataclass(frozen=True)
class ShapeProfile:
    """min/opt/max ``frames`` shapes ``(B, 3, H, W)`` of a TensorRT optimization profile."""

    min: Shape
    opt: Shape
    max: Shape

    def spec(self) -> str:
        return ",".join(f"{k}={'x'.join(map(str, getattr(self, k)))}" for k in ("min", "opt", "max"))

    def accepts(self, batch: int, height: int, width: int) -> bool:
        return all(lo <= v <= hi for lo, v, hi in zip(self.min, (batch, 3, height, width), self.max, strict=True))


def _parse_shape(text: str) -> Shape:
    parts = text.strip().lower().split("x")
    if len(parts) != 4 or not all(p.isdigit() for p in parts):
        raise ValueError(f"shape must look like 1x3x720x1280 (BxCxHxW), got {text!r}")
    b, c, h, w = (int(p) for p in parts)
    if c != 3:
        raise ValueError(f"frames have 3 channels, got {text!r}")
    if b < 1:
        raise ValueError(f"batch must be >= 1, got {text!r}")
    if h < MIN_SIDE or w < MIN_SIDE:
        raise ValueError(f"height and width must be >= {MIN_SIDE} (smaller frames are padded by the runtime), got {text!r}")
    return b, c, h, w


def parse_shapes(text: str) -> ShapeProfile:
    """``MIN:OPT:MAX``, ``min=MIN,opt=OPT,max=MAX`` or one static shape; each shape ``BxCxHxW``."""
    text = text.strip()
    if "=" in text:
        named: dict[str, str] = {}
        for item in text.split(","):
            k, sep, v = item.partition("=")
            k = k.strip().lower()
            if not sep or k not in ("min", "opt", "max") or k in named:
                raise ValueError(f"expected min=...,opt=...,max=..., got {text!r}")
            named[k] = v
        if len(named) != 3:
            raise ValueError(f"expected all of min, opt and max, got {text!r}")
        shapes = [named["min"], named["opt"], named["max"]]
    else:
        shapes = text.split(":")
        if len(shapes) == 1:
            shapes *= 3
        if len(shapes) != 3:
            raise ValueError(f"expected MIN:OPT:MAX or one shape, got {text!r}")
    lo, opt, hi = (_parse_shape(s) for s in shapes)
    if not all(a <= b <= c for a, b, c in zip(lo, opt, hi, strict=True)):
        raise ValueError(f"need min <= opt <= max in every dimension, got {text!r}")
    return ShapeProfile(lo, opt, hi)


def require_tensorrt(route: str = "tensorrt") -> str:
    """The TensorRT version, or BackendUnavailable saying what is missing and how to install it."""
    try:
        import tensorrt
    except ImportError as e:
        raise BackendUnavailable(f"TensorRT is not installed ({e}); {INSTALL_HINT}") from None
    version = str(tensorrt.__version__)
    if int(version.split(".")[0]) < 10:
        raise BackendUnavailable(f"TensorRT {version} is too old: stylecast needs TensorRT >= 10; {INSTALL_HINT}")
    if route == "torch-tensorrt":
        try:
            import torch_tensorrt  # noqa: F401
        except ImportError as e:
            raise BackendUnavailable(f"torch-tensorrt is not installed ({e}); {INSTALL_HINT}") from None
    return version


def gpu_identity() -> tuple[str, str]:
    """(GPU name, compute capability "major.minor") of the current CUDA device."""
    import torch

    if not torch.cuda.is_available():
        raise BackendUnavailable(f"TensorRT needs an NVIDIA GPU, and torch sees no CUDA device here; {INSTALL_HINT}")
    major, minor = torch.cuda.get_device_capability()
    return torch.cuda.get_device_name(), f"{major}.{minor}"


def engine_key(info: ModelInfo, precision: str, profile: ShapeProfile, route: str = "tensorrt", graph: Path | None = None) -> EngineKey:
    """The cache key for this model (and source ONNX ``graph``) on this machine (needs TensorRT and a GPU)."""
    version = require_tensorrt(route)
    gpu, capability = gpu_identity()
    graph_sha = file_sha256(graph) if graph is not None else ""
    frontend = _frontend_versions() if route == "torch-tensorrt" else ""
    return EngineKey(info.sha256, precision, profile.spec(), gpu, capability, version, route, graph_sha, frontend)


def _frontend_versions() -> str:
    import torch
    import torch_tensorrt

    return f"torch {torch.__version__}, torch-tensorrt {torch_tensorrt.__version__}"


def build_tensorrt(graph: Path, info: ModelInfo, precision: str, profile: ShapeProfile, workspace_gb: float, timing_cache: Path) -> bytes:
    """A TensorRT engine from the ONNX ``graph`` (the TensorRT Python API route); minutes."""
    from realtime.tensorrt_engine import BuildSpec, build_engine

    spec = BuildSpec(
        onnx_path=graph,
        precision=precision,
        min_shape=profile.min,
        opt_shape=profile.opt,
        max_shape=profile.max,
        num_styles=info.config.num_styles,
        workspace_bytes=int(workspace_gb * (1 << 30)),
        timing_cache=timing_cache,
    )
    return build_engine(spec)


def export_for_dynamo(generator: Generator, profile: ShapeProfile, device: str = "cuda") -> Any:
    """``torch.export`` of the generator for the dynamo route, dynamic over the profile's range.

    The generator's own padding arithmetic (``max(MIN_SIDE, multiple of 4)``) produces guards that
    torch.export cannot prove for a whole strict range, so the sizes are exported as ``Dim.AUTO`` from
    an example of the profile's opt shape; the program then serves every side that is a multiple of 4
    and >= MIN_SIDE (``parse_shapes`` plus the check in ``build_torch_tensorrt`` guarantee that).
    """
    import torch

    n = generator.cfg.num_styles
    auto = torch.export.Dim.AUTO
    # A batch of 1 in the example would be specialized to a constant; use 2 when the profile lets batch vary.
    b = profile.opt[0] if profile.min[0] == profile.max[0] else max(2, profile.opt[0])
    example = (torch.rand(b, 3, *profile.opt[2:], device=device), torch.full((b, n), 1.0 / n, device=device))
    return torch.export.export(generator.eval().to(device), example, dynamic_shapes=({0: auto, 2: auto, 3: auto}, {0: auto}))


def build_torch_tensorrt(generator: Generator, info: ModelInfo, precision: str, profile: ShapeProfile, workspace_gb: float) -> bytes:
    import tempfile

    import torch
    import torch_tensorrt

    if precision not in ("fp32", "fp16"):
        raise BackendUnavailable("the torch-tensorrt route builds fp32/fp16 engines; use --route tensorrt for int8/best")
    if any(side % 4 for shape in (profile.min, profile.opt, profile.max) for side in shape[2:]):
        raise InputError(f"the torch-tensorrt route needs heights and widths that are multiples of 4, got {profile.spec()}")
    n = info.config.num_styles
    inputs = [
        torch_tensorrt.Input(min_shape=profile.min, opt_shape=profile.opt, max_shape=profile.max, dtype=torch.float32),
        torch_tensorrt.Input(min_shape=(profile.min[0], n), opt_shape=(profile.opt[0], n), max_shape=(profile.max[0], n), dtype=torch.float32),
    ]
    compiled = torch_tensorrt.dynamo.compile(
        export_for_dynamo(generator, profile),
        inputs=inputs,
        workspace_size=int(workspace_gb * (1 << 30)),
        min_block_size=1,
        **_precision_options(torch_tensorrt.dynamo.compile, precision),
    )
    example = [torch.rand(*profile.opt, device="cuda"), torch.full((profile.opt[0], n), 1.0 / n, device="cuda")]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "engine.ep"
        # retrace=False serializes the compiled graph with its symbolic shapes. Newer torch-tensorrt
        # defaults to retrace=True (pytorch/TensorRT#3875), which re-exports from the example alone and
        # so pins the program to the opt shape: every other frame size would fail its guards on load.
        torch_tensorrt.save(compiled, str(path), output_format="exported_program", inputs=example, retrace=False)
        return path.read_bytes()


def _precision_options(compile_fn: Any, precision: str) -> dict[str, Any]:
    """``torch_tensorrt.dynamo.compile`` keywords that make an fp32 or fp16 engine on this torch-tensorrt.

    ``enabled_precisions`` only works with weak typing. torch-tensorrt 2.10 made strong typing
    (``use_explicit_typing=True``) the default and then rejects ``enabled_precisions={torch.float16}``
    with an AssertionError, so weak typing is asked for explicitly (TensorRT 10 still has it). Releases
    without ``enabled_precisions`` are strongly typed only: FP16 comes from their rule-based autocast.
    """
    import torch

    params = inspect.signature(compile_fn).parameters
    fp16 = precision == "fp16"
    if "enabled_precisions" not in params:
        return {"enable_autocast": True, "autocast_low_precision_type": torch.float16} if fp16 else {}
    options: dict[str, Any] = {"enabled_precisions": {torch.float16} if fp16 else {torch.float32}}
    if "use_explicit_typing" in params:
        options["use_explicit_typing"] = False
    return options
