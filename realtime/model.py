"""The multi-style generator: one network, N styles, blended per frame.

Style conditioning is conditional instance normalization (Dumoulin et al., 2017): every norm layer
holds one (gamma, beta) row per style, and a frame's style-weight vector w blends them as
``gamma = w @ Gamma``. Blending and switching styles therefore cost nothing at inference, and an
exported engine takes the weights as an ordinary input.

Two architectures share the conditioning:

* ``fast``: sized for real time on a 2-core CPU at 640x360. A space-to-depth stem moves the frame to
  1/4 resolution at once, all residual work happens there, a sub-pixel convolution returns to full
  resolution and a thin full-resolution refinement removes the 4x4 block structure. Measured on the
  project's CPU, full-resolution layers and norm reductions, not MACs, decide latency, so the design
  keeps both few (see benchmarks and the README).
* ``quality``: Johnson et al. (2016): 9x9 stem, two strided convs, residual blocks, resize-convolution
  upsampling (nearest + conv) instead of transposed convs to avoid checkerboard artifacts.

The runtime, the exporter and the trainer all import this module; it is the only definition.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

Arch = Literal["fast", "quality"]

#: Smallest side the generator runs at; smaller frames are edge-padded up to it and cropped back.
MIN_SIDE = 16


@dataclass(frozen=True)
class GeneratorConfig:
    """Everything needed to rebuild a generator; stored in every model file."""

    arch: Arch = "fast"
    num_styles: int = 7
    channels: int = 32
    res_blocks: int = 4
    refine_channels: int = 4
    #: fast only: width of an optional 1/2-resolution stage between the 1/4-resolution body and the
    #: full-resolution refinement (0: none)
    half_channels: int = 0
    #: fast only: how the 1/4-resolution body returns to full resolution. ``refine``: a sub-pixel
    #: convolution to ``refine_channels`` planes, then two thin full-resolution convolutions that also
    #: see the input. ``skip``: the sub-pixel convolution writes the RGB output itself, plus a linear
    #: 12x12 stride-4 view of the input for the fine edges; nothing runs at full resolution. ``head``:
    #: the refinement's two nonlinear layers moved to the 1/4-resolution grid (the sub-pixel planes
    #: mixed per 4x4 block with an 8x8 view of the input, then the block's 48 output sub-pixels), so
    #: only the final pixel shuffle touches full resolution.
    tail: str = "refine"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GeneratorConfig:
        """The config a model file records; a value out of type or range is a ValueError naming it."""
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        for key, (low, high) in _INT_RANGES.items():
            value = known.get(key, getattr(cls, key))
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise ValueError(f"config {key} = {value!r} is not a whole number in {low}..{high}")
        if known.get("arch", cls.arch) not in ("fast", "quality"):
            raise ValueError(f"config arch = {known['arch']!r} is not fast or quality")
        if known.get("tail", cls.tail) not in TAILS:
            raise ValueError(f"config tail = {known['tail']!r} is not one of {', '.join(TAILS)}")
        return cls(**known)

    @property
    def multiple(self) -> int:
        """Input sides are padded to a multiple of this (the total downsampling factor)."""
        return 4


TAILS = ("refine", "skip", "head")
#: what a model file's config may hold: far beyond any trained model, small enough that a hostile file
#: cannot make the loader allocate gigabytes
_INT_RANGES = {
    "num_styles": (0, 4096),  # 0: load_model says the file holds no styles
    "channels": (1, 1024),
    "res_blocks": (0, 64),
    "refine_channels": (0, 256),
    "half_channels": (0, 256),
}

PRESETS: dict[str, GeneratorConfig] = {
    "fast": GeneratorConfig(arch="fast", channels=32, res_blocks=4, refine_channels=4),
    "quality": GeneratorConfig(arch="quality", channels=128, res_blocks=5, refine_channels=0),
}


class CondInstanceNorm(nn.Module):
    """Instance norm whose affine parameters are a per-sample blend of N per-style rows."""

    def __init__(self, channels: int, num_styles: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(num_styles, channels))
        self.beta = nn.Parameter(torch.zeros(num_styles, channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        # fp32 even under autocast, where a matmul would return bf16/fp16 rows
        gamma = (w.float() @ self.gamma.float()).float()
        beta = (w.float() @ self.beta.float()).float()
        if torch.onnx.is_in_onnx_export():
            # A plain InstanceNormalization, then the style's affine: TensorRT's parser takes the norm
            # only with constant scale and bias, the INT8 calibration finds the norms by that op type,
            # and ONNX Runtime gets the fused form by a rewrite (realtime.ort_session).
            y = F.instance_norm(x.float(), eps=1e-5)
            return (y * gamma[:, :, None, None] + beta[:, :, None, None]).to(x.dtype)
        if x.is_cuda:
            return affine_instance_norm(x, gamma[:, :, None, None], beta[:, :, None, None])
        # On the CPU one norm over all samples' planes ([B,C,H,W] as [1,B*C,H,W]) applies each sample's
        # gamma and beta inside the norm's own pass: 0.9 ms instead of 2.2 ms per norm at 32x90x160 on
        # 2 cores, and the stage-7 fast model's 640x360 frame in 41 ms instead of 45 ms.
        b, c, h, wd = x.shape
        gamma, beta = gamma.expand(b, c).reshape(-1), beta.expand(b, c).reshape(-1)
        y = F.instance_norm(x.float().reshape(1, b * c, h, wd), weight=gamma, bias=beta, eps=1e-5)
        return y.reshape(b, c, h, wd).to(x.dtype)


def affine_instance_norm(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """``instance_norm(x) * gamma + beta`` folded into one multiply-add pass over ``x``.

    The per-channel scale and shift are computed from fp32 statistics (an fp16 variance over a 1080p
    plane overflows), and the only full-size pass runs in ``x``'s own dtype. Measured on an H100 with
    the quality model at 1080p fp16, the unfolded form (fp32 copy, norm, cast back, multiply, add)
    spent more time in these memory-bound passes than in all the convolutions.
    """
    var, mean = torch.var_mean(x.float(), dim=(2, 3), keepdim=True, correction=0)
    scale = gamma * torch.rsqrt(var + eps)
    return torch.addcmul((beta - mean * scale).to(x.dtype), x, scale.to(x.dtype))


class ConvNormAct(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, num_styles: int, stride: int = 1, act: bool = True) -> None:
        super().__init__()
        # Reflection padding keeps borders free of the dark frame zero padding paints into styles.
        self.pad = nn.ReflectionPad2d(k // 2)
        self.conv = nn.Conv2d(cin, cout, k, stride=stride)
        self.norm = CondInstanceNorm(cout, num_styles)
        self.act = act

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.conv(self.pad(x)), w)
        return F.relu(x) if self.act else x


class ResBlock(nn.Module):
    def __init__(self, channels: int, num_styles: int) -> None:
        super().__init__()
        self.a = ConvNormAct(channels, channels, 3, num_styles)
        self.b = ConvNormAct(channels, channels, 3, num_styles, act=False)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return x + self.b(self.a(x, w), w)


class UpConv(nn.Module):
    """Nearest-neighbour x2 then conv: no checkerboard, unlike a transposed conv."""

    def __init__(self, cin: int, cout: int, num_styles: int) -> None:
        super().__init__()
        self.conv = ConvNormAct(cin, cout, 3, num_styles)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"), w)


class FastBody(nn.Module):
    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        c, n, r, hc = cfg.channels, cfg.num_styles, cfg.refine_channels, cfg.half_channels
        if cfg.tail not in TAILS:
            raise ValueError(f"unknown fast tail {cfg.tail!r}; choose from {', '.join(TAILS)}")
        if cfg.tail != "refine" and hc:
            raise ValueError(f"the {cfg.tail} tail has no 1/2-resolution stage (half_channels must be 0)")
        self.has_half = hc > 0
        self.has_refine = cfg.tail == "refine"
        self.has_head = cfg.tail == "head"
        # A kxk stride-k conv is space-to-depth followed by a 1x1 conv, without the full-resolution
        # transpose that a separate PixelUnshuffle costs.
        if hc:
            # The optional 1/2-resolution stage gives the body a scale between its 1/4-resolution
            # planes and the thin full-resolution refinement: brush marks a few pixels wide live there.
            self.half_stem = nn.Conv2d(3, hc, 2, stride=2)
            self.half_stem_norm = CondInstanceNorm(hc, n)
            self.stem = nn.Conv2d(hc, c, 2, stride=2)
            self.to_half = nn.Conv2d(c, 4 * hc, 3, padding=1)
            self.half_conv = ConvNormAct(hc, hc, 3, n)
            self.to_sub = nn.Conv2d(hc, 4 * r, 3, padding=1)
            self.up = nn.PixelShuffle(2)
        else:
            self.stem = nn.Conv2d(3, c, 4, stride=4)
            self.to_sub = nn.Conv2d(c, 16 * (3 if cfg.tail == "skip" else r), 3, padding=1)
            self.up = nn.PixelShuffle(4)
        self.stem_norm = CondInstanceNorm(c, n)
        self.blocks = nn.ModuleList(ResBlock(c, n) for _ in range(cfg.res_blocks))
        if self.has_refine:
            # The refinement sees the input too, so fine edges survive the 1/4-resolution bottleneck.
            # Zero padding here: a separate reflect-pad pass over full-resolution planes cost more than
            # the convolution itself on the CPU, and the 1-pixel border it affects is invisible.
            self.refine1 = nn.Conv2d(r + 3, r, 3, padding=1)
            self.refine2 = nn.Conv2d(r, 3, 3, padding=1)
        elif self.has_head:
            # The refinement's work per 4x4 block, on the 1/4-resolution grid where convolutions are
            # wide enough to run efficiently: its first layer as a 1x1 mix of the block's sub-pixel
            # planes plus the input around the block (2 pixels beyond it, as far as the refinement's two
            # 3x3 layers reach), its second as a 1x1 convolution to the block's 48 output sub-pixels.
            self.head_mix = nn.Conv2d(16 * r, 16 * r, 1)
            self.head_view = nn.Conv2d(3, 16 * r, 8, stride=4, padding=2)
            self.head_out = nn.Conv2d(16 * r, 48, 1)
        else:
            # Each output pixel's skip term is a linear filter of the input around it (up to 4 pixels
            # beyond its 4x4 block): the same role as the refinement's view of the input, computed
            # on the 1/4-resolution grid. Measured on the 2-core Xeon without AMX (ONNX Runtime, INT8,
            # 640x360): 21.6 ms per frame against the refine tail's 29.2 ms.
            self.skip = nn.Conv2d(3, 48, 12, stride=4, padding=4)

    def features(self, x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The 1/4-resolution body's output, and what the stem saw (``x`` or the 1/2-resolution planes)."""
        skip = F.relu(self.half_stem_norm(self.half_stem(x), w)) if self.has_half else x
        h = F.relu(self.stem_norm(self.stem(skip), w))
        for block in self.blocks:
            h = block(h, w)
        return h, skip

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        h, skip = self.features(x, w)
        if self.has_head:
            planes = F.relu(self.to_sub(h))
            return self.up(self.head_out(F.relu(self.head_mix(planes) + self.head_view(x))))
        if not self.has_refine:
            return self.up(self.to_sub(h) + self.skip(x))
        if self.has_half:
            h = self.half_conv(F.pixel_shuffle(self.to_half(h), 2) + skip, w)
        h = F.relu(self.up(self.to_sub(h)))
        h = F.relu(self.refine1(torch.cat([h, x], dim=1)))
        return self.refine2(h)


class QualityBody(nn.Module):
    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        c, n = cfg.channels, cfg.num_styles
        c1, c2 = c // 4, c // 2
        self.down = nn.ModuleList([
            ConvNormAct(3, c1, 9, n),
            ConvNormAct(c1, c2, 3, n, stride=2),
            ConvNormAct(c2, c, 3, n, stride=2),
        ])
        self.blocks = nn.ModuleList(ResBlock(c, n) for _ in range(cfg.res_blocks))
        self.up = nn.ModuleList([UpConv(c, c2, n), UpConv(c2, c1, n)])
        self.out = nn.Conv2d(c1, 3, 9, padding=4, padding_mode="reflect")

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        h = x
        for layer in self.down:
            h = layer(h, w)
        for block in self.blocks:
            h = block(h, w)
        for layer in self.up:
            h = layer(h, w)
        return self.out(h)


class Generator(nn.Module):
    """``frames [B,3,H,W] in [0,1]``, ``style_weights [B,N]`` -> stylized ``[B,3,H,W]`` in [0,1].

    Any H and W are accepted: the frame is reflect-padded to a multiple of the downsampling factor
    and the output cropped back, so odd sizes round-trip exactly.
    """

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.body: nn.Module = FastBody(cfg) if cfg.arch == "fast" else QualityBody(cfg)

    def forward(self, frames: torch.Tensor, style_weights: torch.Tensor) -> torch.Tensor:
        h, w = frames.shape[-2], frames.shape[-1]
        m = self.cfg.multiple
        # Edge padding works for any size (reflect needs pad < side). The floor of MIN_SIDE keeps the
        # 1/4-resolution planes large enough for 3x3 reflect convs; it applies in eager mode, while an
        # exported graph records only the multiple-of-m padding, so runtimes feed it frames >= MIN_SIDE.
        pad_h = max(h + (-h) % m, MIN_SIDE) - h
        pad_w = max(w + (-w) % m, MIN_SIDE) - w
        x = F.pad(frames, (0, pad_w, 0, pad_h), mode="replicate")
        # Centre the input so the first convs see zero-mean data without a separate normalization layer.
        y = torch.sigmoid(self.body(x * 2.0 - 1.0, style_weights.to(x.dtype)))
        return y[..., :h, :w]


def remap_styles(generator: Generator, source_rows: list[int]) -> Generator:
    """A copy of ``generator`` whose style j uses the (gamma, beta) rows of its style ``source_rows[j]``.

    Everything but the norm rows is shared by all styles, so this is how a model gains styles: new
    ones start from the rows of an existing (e.g. the nearest) style and are then trained, while the
    rows that are copied unchanged keep the old styles' outputs bit-identical.
    """
    n = generator.cfg.num_styles
    if not source_rows or any(not 0 <= r < n for r in source_rows):
        raise ValueError(f"style rows must lie in 0..{n - 1}, got {source_rows}")
    out = Generator(replace(generator.cfg, num_styles=len(source_rows)))
    index = torch.tensor(source_rows)
    state = {
        k: v[index].clone() if k.endswith((".gamma", ".beta")) else v.clone()
        for k, v in generator.state_dict().items()
    }
    out.load_state_dict(state)
    return out.to(next(generator.parameters()).device)


def build_generator(cfg: GeneratorConfig) -> Generator:
    return Generator(cfg)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def conv_gmacs(model: Generator, height: int = 360, width: int = 640) -> float:
    """Multiply-accumulates of all convolutions for one frame, in billions (norms/activations excluded)."""
    total = 0

    def hook(mod: nn.Module, _inp: Any, out: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(mod, nn.Conv2d)
        k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
        total += out.numel() * k

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            n = model.cfg.num_styles
            model(torch.zeros(1, 3, height, width), torch.full((1, n), 1.0 / n))
    finally:
        for handle in handles:
            handle.remove()
    return total / 1e9
