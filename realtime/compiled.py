"""The compiled torch path: exact rewrites of the generator, ``torch.compile`` and its on-disk cache.

* ``PhaseUpConv``: the quality model's nearest-x2 upsample, reflection pad and 3x3 conv, computed as
  four 2x2 "phase" convolutions on the low-resolution input, interleaved. Output pixel
  ``(2a+p, 2b+q)`` of the upsampled conv sees only input rows ``a-1..a`` (p=0) or ``a..a+1`` (p=1)
  and the same for columns, so the 3x3 taps that land on one input pixel add up into one 2x2 tap.
  Reflect-padding a nearest-upsampled plane by one pixel repeats its edge pixel, which is the
  upsampled replicate-pad of the input, so the rewrite is exact at the borders too. It does 16/36 of
  the MACs and never materialises the upsampled tensor.
* ``FrameModel``: the whole step a backend runs, uint8 NHWC frames in, uint8 NHWC frames out, so that
  the compiler sees (and fuses) the dtype conversions with the first and last layers. Activations run
  in fp16/bf16; norm statistics stay fp32 (``CondInstanceNorm``/``affine_instance_norm``).
* ``compile_generator``: ``torch.compile`` (inductor) with static shapes, one compilation per input
  shape, each run with inductor's caches (FX graphs, autotuning, Triton kernels) in a folder of its
  own, keyed like the engine cache: model, shape, dtype, mode, GPU, torch and Triton versions.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.metadata
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from realtime.machine import cpu_model
from realtime.model import CondInstanceNorm, Generator, UpConv

log = logging.getLogger(__name__)

#: bump when a compiled entry's meaning changes (a new rewrite, another FrameModel), so old ones go unused
COMPILE_FORMAT = 1

DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}

#: ``(batch, height, width)`` of the uint8 frames a compiled model is specialised for
FrameShape = tuple[int, int, int]


class PhaseUpConv(nn.Module):
    """``UpConv`` (nearest x2, reflect pad 1, 3x3 conv, norm, ReLU) as four 2x2 convs on the input."""

    def __init__(self, up: UpConv) -> None:
        super().__init__()
        conv = up.conv.conv
        w = conv.weight.detach()  # [Cout, Cin, 3, 3]
        # Per phase, the 3 taps of one axis fold into 2: p=0 reads rows (a-1, a) with (w0, w1+w2),
        # p=1 reads rows (a, a+1) with (w0+w1, w2); in the replicate-padded input both windows start
        # at padded row a+p, so one 2x2 conv over the padded input serves all four phases.
        fold = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]], [[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]], dtype=w.dtype)
        # phases [p, q, Cout, Cin, 2, 2]; output channels ordered (Cout, p, q), as the interleave reads them
        phases = torch.einsum("pik,qjl,ockl->pqocij", fold, fold, w)
        cout, cin = w.shape[0], w.shape[1]
        weight = phases.permute(2, 0, 1, 3, 4, 5).reshape(4 * cout, cin, 2, 2)
        self.conv = nn.Conv2d(cin, 4 * cout, 2, bias=conv.bias is not None)
        with torch.no_grad():
            self.conv.weight.copy_(weight)
            if self.conv.bias is not None and conv.bias is not None:
                self.conv.bias.copy_(conv.bias.repeat_interleave(4))
        self.norm: CondInstanceNorm = up.conv.norm
        self.act = up.conv.act

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        h, wd = x.shape[-2], x.shape[-1]
        y = self.conv(F.pad(x, (1, 1, 1, 1), mode="replicate"))  # [B, 4*Cout, h+1, w+1]
        b, c4 = y.shape[0], y.shape[1]
        y = y.view(b, c4 // 4, 2, 2, h + 1, wd + 1)
        # Phase (p, q) is the window starting at padded pixel (p, q); the 2x2 conv computed one row
        # and column more than each phase needs (0.6 % of this layer's MACs at 1080p).
        rows = [torch.stack([y[:, :, p, q, p : p + h, q : q + wd] for q in (0, 1)], dim=-1) for p in (0, 1)]
        # [B, Cout, h, 2 (p), w, 2 (q)] is the interleaved [B, Cout, 2h, 2w]. Not pixel_shuffle: fused
        # with the norm's reduction it hit an inductor assertion ("vr must not be None", torch 2.13).
        y = torch.stack(rows, dim=3).reshape(b, c4 // 4, 2 * h, 2 * wd)
        y = self.norm(y, w)
        return F.relu(y) if self.act else y


def rewrite_upsampling(generator: Generator) -> Generator:
    """A copy of ``generator`` with every ``UpConv`` replaced by its exact ``PhaseUpConv``."""
    out = copy.deepcopy(generator)
    for module in list(out.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, UpConv):
                setattr(module, name, PhaseUpConv(child))
    return out


class FrameModel(nn.Module):
    """uint8 ``[B,H,W,3]`` frames and fp32 ``[B,N]`` style weights -> stylized uint8 ``[B,H,W,3]``."""

    def __init__(self, generator: Generator, dtype: torch.dtype, channels_last: bool = False) -> None:
        super().__init__()
        if channels_last:
            # Weights in the activations' layout, so that cuDNN does not convert them on every call.
            generator = generator.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # stubs lack it
        self.generator = generator
        self.dtype = dtype
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def forward(self, frames: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        x = frames.permute(0, 3, 1, 2).to(self.dtype).div_(255.0).contiguous(memory_format=self.memory_format)
        y = self.generator(x, weights.to(self.dtype))
        return y.mul(255.0).add_(0.5).clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


@dataclass(frozen=True)
class CompileKey:
    """Everything a compiled model depends on; its digest names the folder holding inductor's caches."""

    model_sha256: str
    #: "BxHxW" of the uint8 frames
    shape: str
    dtype: str
    mode: str
    channels_last: bool
    #: inductor's ``max_autotune_conv_backends``: "ATEN" (cuDNN only) or "ATEN,TRITON"
    conv_backends: str
    device_name: str
    compute_capability: str
    torch_version: str
    triton_version: str
    format: int = COMPILE_FORMAT

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()


def device_identity(device: str) -> tuple[str, str]:
    """(device name, compute capability) for CUDA; the CPU's model name and "" for the CPU."""
    if device == "cuda":
        major, minor = torch.cuda.get_device_capability()
        return torch.cuda.get_device_name(), f"{major}.{minor}"
    return cpu_model(), ""


def triton_version() -> str:
    try:
        return importlib.metadata.version("triton")
    except importlib.metadata.PackageNotFoundError:
        return ""


def compile_key(
    model_sha256: str,
    shape: FrameShape,
    dtype: torch.dtype,
    mode: str,
    channels_last: bool,
    device: str,
    conv_backends: str = "ATEN",
) -> CompileKey:
    name, capability = device_identity(device)
    dtype_name = next(k for k, v in DTYPES.items() if v == dtype)
    return CompileKey(
        model_sha256,
        "x".join(map(str, shape)),
        dtype_name,
        mode,
        channels_last,
        conv_backends,
        name,
        capability,
        torch.__version__,
        triton_version(),
    )


def compile_cache_folder(key: CompileKey) -> Path:
    """``<stylecast cache>/inductor/<key digest>``: one folder per key, safe to delete like the rest."""
    # Imported here: the artifact chain pulls in calibration and ONNX, which a compiled run never needs.
    from realtime.artifacts import cache_dir

    return cache_dir("inductor") / key.digest()[:32]


_ENV_LOCK = threading.Lock()


@contextmanager
def inductor_cache(folder: Path) -> Iterator[None]:
    """Inductor's caches (FX graphs, AOT autograd, autotuning, Triton kernels) under ``folder``.

    ``torch._inductor.config`` has no option for the folder (only fbcode's ``global_cache_dir``):
    inductor reads ``TORCHINDUCTOR_CACHE_DIR`` on every cache access, and Triton's kernel cache
    follows it unless ``TRITON_CACHE_DIR`` is set.
    """
    folder.mkdir(parents=True, exist_ok=True)
    with _ENV_LOCK:
        saved = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder)
        try:
            yield
        finally:
            if saved is None:
                os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
            else:
                os.environ["TORCHINDUCTOR_CACHE_DIR"] = saved


def default_mode(device: str) -> str:
    """``max-autotune`` (with CUDA graphs) on CUDA; on the CPU autotuning and CUDA graphs do not apply."""
    return "max-autotune" if device == "cuda" else "default"


class CompiledGenerator:
    """A ``FrameModel`` under ``torch.compile``; the first call per shape compiles it, in its cache folder.

    When compilation fails (no C++ compiler or Triton, an unsupported op), it logs why and runs the
    same (rewritten) model eagerly, so a run never fails for want of a compiler.
    """

    def __init__(
        self,
        model: FrameModel,
        model_sha256: str,
        device: str,
        mode: str,
        backend: str = "inductor",
        conv_backends: str = "ATEN",
    ) -> None:
        self.model = model
        self.model_sha256 = model_sha256
        self.device = device
        self.mode = mode
        self.backend = backend
        self.conv_backends = conv_backends
        #: seconds the first call took, per compiled shape
        self.compile_seconds: dict[FrameShape, float] = {}
        self.fallback: str | None = None
        self.cudagraphs = device == "cuda" and mode in ("max-autotune", "reduce-overhead")
        options: dict[str, Any] = {"mode": mode} if backend == "inductor" else {}
        # Static shapes: each resolution and batch gets kernels specialised for it, and dynamo may
        # recompile once per shape a run meets, beyond its default limit of 8.
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
        self._compiled = torch.compile(model, backend=backend, dynamic=False, fullgraph=True, **options)
        self._lock = threading.Lock()

    def key(self, shape: FrameShape) -> CompileKey:
        channels_last = self.model.memory_format == torch.channels_last
        return compile_key(
            self.model_sha256, shape, self.model.dtype, self.mode, channels_last, self.device, self.conv_backends
        )

    def __call__(self, frames: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        if self.fallback is not None:
            return self.model(frames, weights)
        shape = (frames.shape[0], frames.shape[1], frames.shape[2])
        if self.cudagraphs:
            # Each call is a new step for inductor's CUDA graphs, and its output buffer is reused by the
            # next replay: the caller gets its own copy (a device copy of the uint8 frames).
            torch.compiler.cudagraph_mark_step_begin()
        if shape in self.compile_seconds:
            out = self._compiled(frames, weights)
        else:
            out = self._first_call(shape, frames, weights)
        return out.clone() if self.cudagraphs else out

    def _first_call(self, shape: FrameShape, frames: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        with self._lock:
            if shape in self.compile_seconds:  # another thread compiled it meanwhile
                return self._compiled(frames, weights)
            return self._compile_with_cache(shape, frames, weights)

    def _compile_with_cache(self, shape: FrameShape, frames: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        import torch._inductor.config as inductor_config

        key = self.key(shape)
        folder = compile_cache_folder(key)
        t0 = time.perf_counter()
        try:
            with inductor_cache(folder), inductor_config.patch(max_autotune_conv_backends=self.conv_backends):
                out = self._compiled(frames, weights)
        except Exception as e:  # inductor raises many types (BackendCompilerFailed, CalledProcessError, ...)
            self.fallback = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            log.warning("torch.compile failed (%s); running the model eagerly", self.fallback)
            return self.model(frames, weights)
        self.compile_seconds[shape] = time.perf_counter() - t0
        log.info("compiled for %s in %.1f s (cache %s)", key.shape, self.compile_seconds[shape], folder)
        return out


def compile_generator(
    generator: Generator,
    device: str,
    dtype: torch.dtype,
    shape: FrameShape | None = None,
    mode: str | None = None,
    channels_last: bool = False,
    model_sha256: str = "",
    backend: str = "inductor",
    conv_backends: str = "ATEN",
) -> CompiledGenerator:
    """The rewritten ``generator`` on ``device`` in ``dtype`` under ``torch.compile``, compiled for ``shape``.

    ``shape`` (batch, height, width) is compiled now, so the first frame does not wait; other shapes
    compile on first use. ``mode`` defaults to ``max-autotune`` on CUDA (autotuned kernels, CUDA
    graphs); a caller that captures its own CUDA graphs passes ``max-autotune-no-cudagraphs``.
    ``model_sha256`` keys the cache (the model file's hash); ``backend="eager"`` traces without inductor.
    ``conv_backends="ATEN"`` leaves the convolutions to cuDNN: autotuning Triton conv templates for
    every conv shape multiplies the compile time, which ``"ATEN,TRITON"`` pays to find out whether
    they win (benchmarks/gpu_check.sh measures both).
    """
    model = FrameModel(rewrite_upsampling(generator).eval().to(device=device, dtype=dtype), dtype, channels_last)
    compiled = CompiledGenerator(model, model_sha256, device, mode or default_mode(device), backend, conv_backends)
    if shape is not None:
        n = generator.cfg.num_styles
        frames = torch.zeros((*shape, 3), dtype=torch.uint8, device=device)
        weights = torch.full((shape[0], n), 1.0 / n, device=device)
        with torch.inference_mode():
            compiled(frames, weights)
    return compiled
