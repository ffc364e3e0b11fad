"""The multi-style GAN training loop, single process or DistributedDataParallel under torchrun.

Read top to bottom: set-up (distributed, data, networks, Gram targets), one step (critic update with
gradient penalty, then the generator's fused objective), bookkeeping (CSV log, sample grids,
checkpoints that resume bit-for-bit in the optimizer state, and the final ``.stylecast`` model).
"""

from __future__ import annotations

import copy
import csv
import io
import logging
import math
import os
import signal
import tempfile
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from PIL import Image
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm import tqdm

from realtime.errors import StylecastError
from realtime.machine import describe_machine, fast_cpu_bf16, resolve_device
from realtime.model import PRESETS, TAILS, FastBody, Generator, GeneratorConfig, remap_styles
from realtime.modelfile import StyleInfo, atomic_write_bytes, load_model, load_plain, save_model
from train import losses
from train.config import TrainConfig
from train.data import (
    CropSampler,
    folder_digest,
    load_styles,
    read_rgb,
    sample_style_weights,
    split_content,
    video_frames,
)
from train.discriminator import PatchCritic
from train.vgg import VGGFeatures, find_vgg

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
MODEL = "model.stylecast"
#: TrainConfig fields that hold paths; model files record only their last component.
PATH_FIELDS = ("styles", "content", "content_video", "init", "vgg_weights", "out")


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str) -> DistInfo:
    """torchrun sets WORLD_SIZE/RANK/LOCAL_RANK; NCCL on GPUs, gloo on CPUs."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    use_cuda = device != "cpu" and torch.cuda.is_available()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return info


def uses_bf16(device: torch.device) -> bool:
    """Whether training on ``device`` runs in bf16 autocast: on CUDA, and on CPUs where bf16 is faster (AMX)."""
    return device.type == "cuda" or fast_cpu_bf16()


def bf16_autocast(enabled: bool, device: torch.device) -> AbstractContextManager[Any]:
    return torch.autocast(device.type, dtype=torch.bfloat16) if enabled else nullcontext()


def pick_device(name: str, dinfo: DistInfo) -> torch.device:
    name = resolve_device(name)
    if name.startswith("cuda"):
        if dinfo.world > 1:
            name = f"cuda:{dinfo.local_rank}"
        elif name == "cuda":
            name = f"cuda:{torch.cuda.current_device()}"
        torch.cuda.set_device(torch.device(name))
    return torch.device(name)


def average_gradients(module: torch.nn.Module, dinfo: DistInfo) -> None:
    """All-reduce gradients by hand for the critic.

    The critic is not wrapped in DDP because its gradient penalty differentiates through the critic
    twice (create_graph=True), which DDP's reducer does not support.
    """
    if dinfo.world == 1:
        return
    for p in module.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad /= dinfo.world


def broadcast_parameters(module: torch.nn.Module, dinfo: DistInfo) -> None:
    if dinfo.world > 1:
        for t in module.state_dict().values():
            dist.broadcast(t, src=0)


def path_names(record: dict[str, Any]) -> dict[str, Any]:
    """A training record with file and folder names in place of paths, its lineage included.

    A model file is shared; the paths of the machine that made it (its folders, its user name) are not.
    """
    out = {k: Path(v).name if k in PATH_FIELDS and isinstance(v, str) and v else v for k, v in record.items()}
    parent = out.get("init_from")
    if isinstance(parent, dict):
        out["init_from"] = path_names(parent)
    return out


def cosine_lr_factor(progress: float) -> float:
    """The learning rate's factor at ``progress`` (0..1) of a run: cosine decay from 1 to 5 %."""
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


class RunClock:
    """How far a run of ``steps`` steps and an optional time limit has got, started when created.

    Progress is the larger of the step and time fractions, so the learning rate anneals fully on
    whichever limit comes first (a slower machine ends on time, a faster one on steps).
    """

    def __init__(self, steps: int, max_minutes: float) -> None:
        self.steps, self.limit_s, self.t0 = steps, max_minutes * 60, time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def progress(self, step: int) -> float:
        done = step / self.steps
        return max(done, self.elapsed() / self.limit_s) if self.limit_s else done

    def out_of_time(self) -> bool:
        return bool(self.limit_s) and self.elapsed() >= self.limit_s

    def time_left(self) -> dict[str, str]:
        """A progress-bar entry; the bar's own ETA counts the steps, which the time limit may cut short."""
        return {"time_left": f"{max(self.limit_s - self.elapsed(), 0) / 60:.1f}min"} if self.limit_s else {}


def check_tail(arch: str, tail: str) -> None:
    if tail and arch != "fast":
        raise StylecastError(f"--tail is an option of the fast architecture, not of {arch}")
    if tail and tail not in TAILS:
        raise StylecastError(f"unknown tail {tail!r}; choose from {', '.join(TAILS)}")


def generator_config(cfg: TrainConfig, num_styles: int) -> GeneratorConfig:
    if cfg.arch not in PRESETS:
        raise StylecastError(f"unknown architecture {cfg.arch!r}; choose from {', '.join(PRESETS)}")
    check_tail(cfg.arch, cfg.tail)
    base = PRESETS[cfg.arch]
    return replace(
        base,
        num_styles=num_styles,
        channels=cfg.channels or base.channels,
        res_blocks=cfg.res_blocks or base.res_blocks,
        refine_channels=cfg.refine_channels or base.refine_channels,
        half_channels=base.half_channels if cfg.half_channels < 0 else cfg.half_channels,
        tail=cfg.tail or base.tail,
    )


@torch.no_grad()
def fit_skip_tail(student: Generator, teacher: Generator, x: torch.Tensor, w: torch.Tensor, ridge: float = 1e-2) -> float:
    """Set the skip tail's two convolutions to the least-squares map from the student's body features
    and the input to the teacher's output logits on crops ``x`` (sides multiples of 4) with styles ``w``.

    The skip tail is linear in those two inputs, so distillation can start from the best linear
    reproduction of the teacher instead of from random sub-pixel patterns, which the grid penalty
    then fights for hundreds of steps. Returns the fit's mean absolute error on the [0,1] output.
    """
    body = student.body
    if not isinstance(body, FastBody) or body.has_refine:
        raise StylecastError("only the fast architecture's skip tail can be fitted by least squares")
    x = x[..., : x.shape[-2] // 4 * 4, : x.shape[-1] // 4 * 4]
    xin = x * 2.0 - 1.0  # the generator centres its input
    h, _ = body.features(xin, w)
    target = teacher(x, w).float()
    logits = F.pixel_unshuffle(torch.logit(target.clamp(0.01, 0.99)), 4)  # [B, 48, H/4, W/4]
    # Both unfolds give one row per 1/4-resolution position, in the order the convolutions' weights flatten.
    fh, fx = F.unfold(h, 3, padding=1), F.unfold(xin, 12, padding=4, stride=4)
    # Solved in float64 on the CPU (MPS has no float64); the ridge leaves the bias column alone.
    a = torch.cat([fh, fx, torch.ones_like(fh[:, :1])], dim=1).transpose(1, 2)
    a = a.reshape(-1, a.shape[-1]).double().cpu()
    z = logits.flatten(2).transpose(1, 2).reshape(-1, logits.shape[1]).double().cpu()
    gram = a.T @ a
    damping = torch.full((gram.shape[0],), ridge * float(gram.diagonal().mean()), dtype=gram.dtype)
    damping[-1] = 0.0
    sol = torch.linalg.solve(gram + torch.diag(damping), a.T @ z).float().to(x.device)  # [features, 48]
    n_h = fh.shape[1]
    body.to_sub.weight.copy_(sol[:n_h].T.reshape(body.to_sub.weight.shape))
    body.skip.weight.copy_(sol[n_h:-1].T.reshape(body.skip.weight.shape))
    for conv, bias in ((body.to_sub, sol[-1]), (body.skip, torch.zeros_like(sol[-1]))):
        if conv.bias is not None:
            conv.bias.copy_(bias)
    error = float((student(x, w) - target).abs().mean())
    log.info("skip tail fitted to the teacher by least squares: mean |error| %.4f", error)
    return error


def thumbnail(img: torch.Tensor, side: int = 64) -> torch.Tensor:
    x = F.interpolate(img[None].float(), size=(side, side), mode="area")[0]
    return x.round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).contiguous()


@torch.no_grad()
def sample_grid(generator: Generator, photos: list[torch.Tensor], names: list[str], side: int = 192,
                blend: tuple[int, int] = (0, 1)) -> np.ndarray:
    """Rows of [photo | one column per style], then a blend row between two styles. uint8 HxWx3."""
    generator.eval()
    device = next(generator.parameters()).device
    n = len(names)
    rows = []

    def fit(im: torch.Tensor) -> torch.Tensor:
        x = im.float()[None].to(device) / 255.0
        return F.interpolate(x, size=(side, side), mode="area")

    for photo in photos:
        x = fit(photo)
        outs = [generator(x, F.one_hot(torch.tensor([i], device=device), n).float()) for i in range(n)]
        rows.append(torch.cat([x, *outs], dim=3))
    if photos and n > 1:
        x = fit(photos[0])
        a, b = blend
        cols = [x]
        for t in np.linspace(0, 1, n):
            w = torch.zeros(1, n, device=device)
            w[0, a], w[0, b] = 1 - t, t
            cols.append(generator(x, w))
        rows.append(torch.cat(cols, dim=3))
    grid = torch.cat(rows, dim=2)[0].clamp(0, 1)
    return (grid.permute(1, 2, 0) * 255).round().byte().cpu().numpy()


def save_png(path: Path, image: np.ndarray) -> None:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a scheduler ending the job) takes the same save-and-stop path as Ctrl-C."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Trainer:
    def __init__(self, cfg: TrainConfig) -> None:
        if cfg.distill_weight and not cfg.init:
            raise StylecastError("distill_weight needs init: the model to distill")
        self.cfg = cfg
        self.dinfo = init_distributed(cfg.device)
        self.device = pick_device(cfg.device, self.dinfo)
        self.out = Path(cfg.out)
        torch.manual_seed(cfg.seed)  # identical initial weights on every rank
        self.rng = np.random.default_rng(cfg.seed + self.dinfo.rank)
        self.amp = cfg.amp and uses_bf16(self.device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True

        self.styles = load_styles(cfg.styles, cfg.style_crop)
        train_files, held_files = split_content(cfg.content, cfg.holdout, cfg.holdout_fraction)
        # Recorded in the model by file name only: a shared model file must not leak the trainer's paths.
        self.data_record = {
            "content": Path(cfg.content).name,
            "content_digest": folder_digest(cfg.content),
            "train_files": len(train_files),
            "heldout": [f.name for f in held_files],
            "styles_digest": folder_digest(cfg.styles),
        }
        log.info("content: %d training photos, %d held out", len(train_files), len(held_files))
        content = [read_rgb(f, 640) for f in tqdm(train_files, desc="photos", unit="img", leave=False,
                                                    disable=len(train_files) < 100 or not self.dinfo.main)]
        if cfg.content_video:
            content += video_frames(cfg.content_video)
        # Sample grids only: four photos spread over the held-out list (crops of one wallpaper sit together).
        self.held = [read_rgb(f, 512) for f in held_files[:: max(1, len(held_files) // 4)][:4]]
        self.content = CropSampler(content, cfg.crop, self.device, cfg.seed + self.dinfo.rank)
        self.style_crops = CropSampler(self.styles.images, min(cfg.crop, cfg.style_crop), self.device,
                                       cfg.seed + 1000 + self.dinfo.rank)
        n = len(self.styles.names)
        vgg_src = find_vgg(cfg.vgg_weights or None)
        self.perceptual = vgg_src.description
        layers = tuple(dict.fromkeys((*cfg.style_layers, cfg.content_layer)))
        self.vgg = VGGFeatures(vgg_src, layers).to(self.device)
        self.style_grams = self._style_grams()

        self.parent: dict[str, Any] = {}
        self.teacher: Generator | None = None
        if cfg.init:
            self.generator, self.g_cfg = self._init_from(Path(cfg.init))
        else:
            self.g_cfg = generator_config(cfg, n)
            self.generator = Generator(self.g_cfg)
        self.generator.to(self.device)
        self.critic = PatchCritic(n).to(self.device)

        if cfg.train_only:
            self.generator.requires_grad_(False)
            for name in cfg.train_only:
                try:
                    self.generator.get_submodule(name).requires_grad_(True)
                except AttributeError:
                    convs = ", ".join(k for k, m in self.generator.named_modules() if isinstance(m, torch.nn.Conv2d))
                    raise StylecastError(f"train_only: the generator has no layer {name!r} (its convolutions: {convs})") from None
        trainable = [p for p in self.generator.parameters() if p.requires_grad]
        self.opt_g = torch.optim.Adam(trainable, lr=cfg.lr)
        self.opt_d = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr, betas=(0.0, 0.9))
        self.step = 0
        self.train_seconds = 0.0
        # --style-focus: a running mean of each style's own style loss on one-hot samples, kept on the
        # device (no sync per step); the sampling probabilities are refreshed from it on logging steps.
        self.style_loss_ema = torch.full((n,), math.nan, device=self.device)  # NaN: not seen yet
        self.style_probs: np.ndarray | None = None

    def _init_from(self, path: Path) -> tuple[Generator, GeneratorConfig]:
        """Fine-tune an existing model; styles it lacks start from its nearest style's norm rows."""
        generator, info = load_model(path)
        old, new = info.style_names, self.styles.names
        missing = [name for name in old if name not in new]
        if missing:
            raise StylecastError(f"{path} holds styles {missing} that --styles lacks; add their paintings")
        known = [new.index(name) for name in old]
        rows = []
        for j, name in enumerate(new):
            if name in old:
                rows.append(old.index(name))
                continue
            d = losses.style_distance({k: g[j : j + 1] for k, g in self.style_grams.items()},
                                      {k: g[known] for k, g in self.style_grams.items()}, relative=True)[0]
            rows.append(int(d.argmin()))
            log.info("new style %s starts from %s", name, old[rows[-1]])
        if rows != list(range(len(old))):
            generator = remap_styles(generator, rows)
        # The fine-tuned model records where it started, so its lineage (and total steps) survive.
        self.parent = {"sha256": info.sha256, **path_names(info.train_config)}
        if self.cfg.distill_weight:
            if old != new:
                # the teacher would pull a new style towards the old style its rows came from
                raise StylecastError(f"distillation needs --styles to hold exactly {path}'s styles, in its order")
            # a frozen copy: without a tail change the student starts as this very generator
            self.teacher = copy.deepcopy(generator).eval().requires_grad_(False).to(self.device)
        if self.cfg.tail and self.cfg.tail != generator.cfg.tail:
            generator = self._with_tail(generator, self.cfg.tail)
            if self.teacher is not None and generator.cfg.tail == "skip":
                x = self.content.sample(16)
                w = F.one_hot(torch.arange(16) % len(new), len(new)).float().to(self.device)
                fit_skip_tail(generator.to(self.device), self.teacher, x, w)
        return generator, generator.cfg

    @staticmethod
    def _with_tail(generator: Generator, tail: str) -> Generator:
        """A generator of another tail that keeps every layer of ``generator`` whose name and shape it shares."""
        check_tail(generator.cfg.arch, tail)
        try:
            student = Generator(replace(generator.cfg, tail=tail))
        except ValueError as e:
            raise StylecastError(str(e)) from None
        own = student.state_dict()
        shared = {k: v for k, v in generator.state_dict().items() if k in own and own[k].shape == v.shape}
        student.load_state_dict(shared, strict=False)
        fresh = sorted({k.rsplit(".", 1)[0] for k in own if k not in shared})
        log.info("tail %s: %s start fresh", tail, ", ".join(fresh) or "no layers")
        return student

    @torch.no_grad()
    def _style_grams(self) -> dict[str, torch.Tensor]:
        grams: dict[str, list[torch.Tensor]] = {layer: [] for layer in self.cfg.style_layers}
        for img in self.styles.images:
            feats = self.vgg(img[None].float().to(self.device) / 255.0)
            for layer in self.cfg.style_layers:
                grams[layer].append(losses.gram(feats[layer])[0])
        return {layer: torch.stack(g) for layer, g in grams.items()}

    # -- checkpoints ---------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        if not self.dinfo.main:
            return
        state = {
            "step": self.step,
            "config": self.cfg.to_dict(),
            "generator": self.generator.state_dict(),
            "critic": self.critic.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "np_rng": self.rng.bit_generator.state,
            "style_loss_ema": self.style_loss_ema,
        }
        buf = io.BytesIO()
        torch.save(state, buf)
        try:
            atomic_write_bytes(self.out / CHECKPOINT, buf.getvalue())
        except OSError as e:
            raise StylecastError(f"writing {self.out / CHECKPOINT} failed: {e.strerror or e}") from None

    def load_checkpoint(self, path: Path) -> None:
        if not path.is_file():
            raise StylecastError(f"no checkpoint to resume from at {path}")
        # Tensors and plain data only (what save_checkpoint writes): a crafted checkpoint cannot run code.
        state = load_plain(path, "checkpoint", map_location=self.device)
        try:
            self.generator.load_state_dict(state["generator"])
            self.critic.load_state_dict(state["critic"])
            self.opt_g.load_state_dict(state["opt_g"])
            self.opt_d.load_state_dict(state["opt_d"])
            step = state["step"]
            if isinstance(step, bool) or not isinstance(step, int) or step < 0:
                raise ValueError(f"step is {step!r}")
            torch.set_rng_state(state["torch_rng"].cpu())
            if "style_loss_ema" in state:  # checkpoints from before --style-focus lack it
                self.style_loss_ema.copy_(state["style_loss_ema"])
                self.refresh_style_probs()
            if self.dinfo.world == 1:
                self.rng.bit_generator.state = state["np_rng"]
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError) as e:
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise StylecastError(f"cannot resume from {path} (damaged, or from another model): {reason}") from e
        self.step = step
        log.info("resumed from %s at step %d", path, self.step)

    def save_model(self, path: Path) -> None:
        if not self.dinfo.main:
            return
        infos = [StyleInfo(name, sha, thumbnail(img))
                 for name, sha, img in zip(self.styles.names, self.styles.sha256, self.styles.images, strict=True)]
        record = {
            **path_names(self.cfg.to_dict()),
            "steps_done": self.step,
            "data": self.data_record,
            "train_seconds": round(self.train_seconds, 1),
            "machine": describe_machine(),
        }
        if self.parent:
            record["init_from"] = self.parent
        save_model(path, self.generator, infos, record, self.perceptual)

    def save_samples(self, name: str) -> None:
        photos = self.held or self.content.images[:2]
        save_png(self.out / "samples" / name, sample_grid(self.generator, photos, self.styles.names))

    # -- one step ------------------------------------------------------------------------------
    def autocast(self) -> AbstractContextManager[Any]:
        return bf16_autocast(self.amp, self.device)

    def critic_step(self, fake: torch.Tensor, alpha: torch.Tensor, alpha_cpu: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        # Real patches: paintings of the styles each fake sample was asked for (drawn from alpha).
        styles_idx = torch.multinomial(alpha_cpu, 1).squeeze(1).tolist()
        real = self.style_crops.sample(len(styles_idx), styles_idx)
        w_real = F.one_hot(torch.tensor(styles_idx, device=self.device), alpha.shape[1]).float()
        self.critic.requires_grad_(True)
        self.opt_d.zero_grad(set_to_none=True)
        with self.autocast():
            wdist = self.critic(real, w_real).mean() - self.critic(fake, alpha).mean()
        wdist = wdist.float()
        gp = losses.gradient_penalty(self.critic, real, fake, w_real, alpha)
        loss = -wdist + cfg.gp_weight * gp
        loss.backward()
        average_gradients(self.critic, self.dinfo)
        self.opt_d.step()
        return wdist.detach(), gp.detach()

    @torch.no_grad()
    def track_style_losses(self, distances: torch.Tensor, alpha: torch.Tensor) -> None:
        """Fold each one-hot sample's distance to its own painting into that style's running mean."""
        one_hot = (alpha == 1).float()  # mixtures have no entry equal to 1
        own = (distances.detach().float() * one_hot).sum(dim=1)
        count = one_hot.sum(dim=0)
        mean = (one_hot * own[:, None]).sum(dim=0) / count.clamp_min(1)
        ema = self.style_loss_ema
        updated = torch.where(ema.isnan(), mean, 0.98 * ema + 0.02 * mean)
        self.style_loss_ema = torch.where(count > 0, updated, ema)

    def refresh_style_probs(self) -> None:
        """One-hot sampling probabilities proportional to running loss ** style_focus (all ranks alike)."""
        if not self.cfg.style_focus:
            return
        if self.dinfo.world > 1:
            dist.all_reduce(self.style_loss_ema, op=dist.ReduceOp.SUM)
            self.style_loss_ema /= self.dinfo.world
        loss = self.style_loss_ema.double().cpu().numpy()
        if np.isnan(loss).all():
            return
        # A style not drawn yet counts as an average one.
        loss = np.where(np.isnan(loss), np.nanmean(loss), loss).clip(1e-8)
        weight = loss**self.cfg.style_focus
        self.style_probs = weight / weight.sum()

    def set_lr(self, progress: float) -> None:
        """Cosine decay to 5% over the run; progress counts steps or, with --max-minutes, time."""
        factor = cosine_lr_factor(progress)  # a float: checkpoints hold plain data
        for group in self.opt_g.param_groups:
            group["lr"] = self.cfg.lr * factor

    def train_step(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """One critic update (once the GAN is on) and one generator update.

        Returns the loss terms as device tensors: reading them as floats forces a GPU sync, so the
        loop does that only on logging steps.
        """
        cfg = self.cfg
        b = cfg.batch_size
        x = self.content.sample(b)
        alpha_cpu = sample_style_weights(b, self.g_cfg.num_styles, cfg.mix_prob, self.rng, self.style_probs)
        alpha = alpha_cpu.to(self.device)
        theta = losses.random_motion(b, self.device)
        x_moved, mask = losses.warp(x, theta)
        x_moved = (x_moved + 0.02 * torch.randn_like(x_moved)).clamp(0, 1)
        gan_on = cfg.gan_weight > 0 and self.step >= cfg.gan_start
        critic_now = gan_on and self.step % cfg.critic_every == 0

        # One generator call for both frames: DDP allows a single forward per backward.
        with self.autocast():
            if cfg.temporal_weight:
                y_both = model(torch.cat([x, x_moved]), torch.cat([alpha, alpha]))
                y, y_moved = y_both[:b], y_both[b:]
            else:
                y = model(x, alpha)

        stats: dict[str, torch.Tensor] = {}
        if critic_now:
            for _ in range(cfg.n_critic):
                stats["wdist"], stats["gp"] = self.critic_step(y.detach().float(), alpha, alpha_cpu)

        self.critic.requires_grad_(False)
        zero = torch.zeros((), device=self.device)
        l_content = l_style = l_distill = l_gan = zero
        distances: torch.Tensor | None = None
        with self.autocast():
            if cfg.content_weight or cfg.style_weight:
                feats_y = self.vgg(y)
                with torch.no_grad():
                    feats_x = self.vgg(x, until=cfg.content_layer)
                l_content = losses.content_loss(feats_y[cfg.content_layer], feats_x[cfg.content_layer], cfg.content_relative)
                grams = {layer: losses.gram(feats_y[layer]) for layer in cfg.style_layers}
                distances = losses.style_distance(grams, self.style_grams, cfg.style_relative)
                l_style = losses.fused_style_loss(distances, alpha)
            if self.teacher is not None:
                with torch.no_grad():
                    target = self.teacher(x, alpha)
                l_distill = F.l1_loss(y.float(), target.float())
            l_temporal = zero
            if cfg.temporal_weight:
                y_warped, _ = losses.warp(y.float(), theta)
                l_temporal = losses.temporal_loss(y_moved, y_warped, mask)
            l_tv = losses.tv_loss(y)
            l_grid = losses.grid_loss(y) if cfg.grid_weight else zero
            if gan_on:
                l_gan = -self.critic(y, alpha).mean()
        total = (cfg.content_weight * l_content + cfg.style_weight * l_style + cfg.gan_weight * l_gan
                 + cfg.temporal_weight * l_temporal + cfg.tv_weight * l_tv + cfg.grid_weight * l_grid
                 + cfg.distill_weight * l_distill)
        self.opt_g.zero_grad(set_to_none=True)
        total.backward()
        self.opt_g.step()
        if cfg.style_focus and distances is not None:
            self.track_style_losses(distances, alpha)
        stats.update(content=l_content, style=l_style, gan=l_gan, temporal=l_temporal, tv=l_tv, grid=l_grid,
                     distill=l_distill, total=total)
        return {k: v.detach() for k, v in stats.items()}

    # -- the loop ------------------------------------------------------------------------------
    def _claim_out(self, resuming: bool, overwrite: bool) -> None:
        """Refuse to train over an earlier run unless resuming it or told to; fail now if OUT is unwritable."""
        earlier = [name for name in (CHECKPOINT, MODEL) if (self.out / name).exists()]
        if earlier and not resuming and not overwrite:
            raise StylecastError(
                f"{self.out} holds an earlier run ({earlier[0]}); pass --resume to continue it or --overwrite to replace it"
            )
        if not self.dinfo.main:
            return
        try:
            (self.out / "samples").mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.out):
                pass
        except OSError as e:
            raise StylecastError(f"cannot write the run folder {self.out}: {e.strerror or e}") from None
        if overwrite and not resuming:
            (self.out / "log.csv").unlink(missing_ok=True)  # a fresh run's log starts empty

    def fit(self, resume: Path | None = None, overwrite: bool = False) -> Path:
        cfg = self.cfg
        self._claim_out(resume is not None, overwrite)
        if resume is not None:
            self.load_checkpoint(resume)
        broadcast_parameters(self.critic, self.dinfo)
        model: torch.nn.Module = self.generator
        if self.dinfo.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            model = DDP(self.generator, device_ids=ids)
        log_file = self.out / "log.csv"
        start, clock = self.step, RunClock(cfg.steps, cfg.max_minutes)
        bar = tqdm(total=cfg.steps, initial=self.step, disable=not self.dinfo.main, desc="train", unit="step")
        writer = None
        fh = open(log_file, "a", newline="") if self.dinfo.main else None  # noqa: SIM115 - closed in finally
        try:
            with sigterm_as_interrupt():
                while self.step < cfg.steps:
                    self.generator.train()
                    self.set_lr(clock.progress(self.step))
                    step_stats = self.train_step(model)
                    self.step += 1
                    bar.update(1)
                    if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                        stats = {k: float(v) for k, v in step_stats.items()}
                        self.refresh_style_probs()
                        if not np.isfinite(stats["total"]):
                            raise StylecastError(f"training diverged at step {self.step} (loss {stats['total']}); lower --lr")
                        stats["it_s"] = (self.step - start) / max(clock.elapsed(), 1e-9)
                        postfix = {k: f"{v:.3g}" for k, v in stats.items() if k in ("content", "style", "temporal", "gan", "distill", "it_s")}
                        bar.set_postfix({**postfix, **clock.time_left()})
                        if fh is not None:
                            row = {"step": self.step, **stats}
                            if writer is None:
                                writer = csv.DictWriter(fh, fieldnames=["step", "content", "style", "gan", "wdist", "gp", "temporal", "tv", "grid", "total", "it_s", "distill"], extrasaction="ignore")
                                if fh.tell() == 0:
                                    writer.writeheader()
                            writer.writerow(row)
                            fh.flush()
                    if self.dinfo.main and self.step % cfg.sample_every == 0:
                        self.save_samples(f"step_{self.step:06d}.png")
                        if self.style_probs is not None:
                            top = np.argsort(self.style_probs)[::-1][:3]
                            log.info("style focus: %s", ", ".join(f"{self.styles.names[i]} {self.style_probs[i]:.0%}" for i in top))
                    if self.step % cfg.checkpoint_every == 0:
                        self.save_checkpoint()
                    if clock.out_of_time():
                        log.info("time limit of %.1f min reached at step %d", cfg.max_minutes, self.step)
                        break
        except KeyboardInterrupt:
            self.save_checkpoint()
            log.warning("interrupted at step %d; checkpoint saved to %s (continue with --resume)", self.step, self.out / CHECKPOINT)
            raise
        finally:
            bar.close()
            if fh is not None:
                fh.close()
        self.train_seconds = clock.elapsed()
        self.save_checkpoint()
        self.save_model(self.out / MODEL)
        if self.dinfo.main:
            self.save_samples("final.png")
        if self.dinfo.world > 1:
            dist.barrier()
        return self.out / MODEL


def train(cfg: TrainConfig, resume: str | Path | None = None, overwrite: bool = False) -> Path:
    """Train (or resume) and return the path of the written ``.stylecast`` model.

    An OUT folder that holds an earlier run is refused unless ``resume`` or ``overwrite`` is given.
    """
    trainer = Trainer(cfg)
    try:
        return trainer.fit(Path(resume) if resume else None, overwrite)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
