"""Training: a short run from scratch, resume, the CLI, DDP with gloo, losses."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
import torch

from realtime.model import Generator, GeneratorConfig
from realtime.modelfile import load_model
from train import losses, trainer
from train.config import TrainConfig, load_config
from train.data import sample_style_weights
from train.trainer import CHECKPOINT, MODEL, RunClock, Trainer, fit_skip_tail, train
from train.vgg import VGGFeatures, find_vgg

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(batch_size=1, crop=32, style_crop=64, channels=8, res_blocks=1, gan_start=1, device="cpu",
            log_every=1, sample_every=2, checkpoint_every=2)


def test_short_run_then_resume(tmp_path: Path) -> None:
    out = tmp_path / "run"
    model = train(TrainConfig(out=str(out), steps=2, **TINY))
    _, info = load_model(model)
    assert len(info.style_names) >= 6 and info.perceptual.startswith("vgg16:")
    assert info.train_config["steps_done"] == 2
    assert all(s.thumbnail is not None and s.source_sha256 for s in info.styles)
    first = torch.load(out / CHECKPOINT, weights_only=True)

    trainer = Trainer(TrainConfig(out=str(out), steps=4, **TINY))
    trainer.fit(out / CHECKPOINT)
    assert trainer.step == 4
    resumed = torch.load(out / CHECKPOINT, weights_only=True)
    assert resumed["step"] == 4
    assert any(not torch.equal(first["generator"][k], resumed["generator"][k]) for k in first["generator"])
    log_rows = (out / "log.csv").read_text().strip().splitlines()
    assert log_rows[0].startswith("step,") and len(log_rows) == 5  # header + 4 steps, one file across the resume
    assert (out / "samples" / "step_000004.png").exists() and (out / "samples" / "final.png").exists()
    assert (out / MODEL).exists()

    # Fine-tuning from that model, with the grid penalty on, records its lineage.
    _, tuned = load_model(train(TrainConfig(out=str(tmp_path / "tuned"), steps=1, init=str(model), grid_weight=1e6, **TINY)))
    parent = tuned.train_config["init_from"]
    assert parent["sha256"] == load_model(model)[1].sha256 and parent["steps_done"] == 4
    assert tuned.train_config["steps_done"] == 1 and tuned.train_config["grid_weight"] == 1e6


def test_distilling_into_the_skip_tail(tmp_path: Path) -> None:
    teacher_path = train(TrainConfig(out=str(tmp_path / "teacher"), steps=1, **TINY))
    teacher, _ = load_model(teacher_path)
    cfg = TrainConfig(out=str(tmp_path / "student"), steps=2, init=str(teacher_path), tail="skip", distill_weight=1.0,
                      style_weight=0.0, content_weight=0.0, **TINY)
    trainer = Trainer(cfg)
    student = trainer.generator.state_dict()
    # the least-squares fit ran: the student starts far closer to the teacher than an unfitted tail
    unfitted = Trainer._with_tail(teacher, "skip")
    x, w = torch.rand(4, 3, 32, 32), torch.eye(len(trainer.styles.names))[torch.arange(4) % len(trainer.styles.names)]
    with torch.no_grad():
        target = teacher(x, w)
        assert (trainer.generator(x, w) - target).abs().mean() < 0.5 * (unfitted(x, w) - target).abs().mean()
    # the body starts as the teacher's; the layers only the skip tail has start fresh
    for name, value in teacher.state_dict().items():
        if name in student and student[name].shape == value.shape:
            torch.testing.assert_close(student[name], value.float(), rtol=0, atol=0)
    assert "body.skip.weight" in student and "body.refine1.weight" not in student
    assert trainer.teacher is not None and not any(p.requires_grad for p in trainer.teacher.parameters())
    trainer.fit()
    generator, info = load_model(tmp_path / "student" / MODEL)
    assert generator.cfg.tail == "skip" and info.train_config["distill_weight"] == 1.0
    assert info.train_config["init_from"]["sha256"] == load_model(teacher_path)[1].sha256
    rows = (tmp_path / "student" / "log.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert all(float(r.split(",")[header.index("distill")]) > 0 for r in rows[1:])


HEAD = ("body.head_mix", "body.head_view", "body.head_out")


def test_distilling_only_the_layers_a_new_tail_adds(tmp_path: Path) -> None:
    teacher_path = train(TrainConfig(out=str(tmp_path / "teacher"), steps=1, **TINY))
    teacher, _ = load_model(teacher_path)
    cfg = TrainConfig(out=str(tmp_path / "student"), steps=3, init=str(teacher_path), tail="head", train_only=HEAD,
                      distill_weight=1.0, style_weight=0.0, content_weight=0.0, temporal_weight=0.0, lr=1e-2, **TINY)
    trainer = Trainer(cfg)
    before = {k: v.clone() for k, v in trainer.generator.state_dict().items()}
    trainer.fit()
    after, info = load_model(tmp_path / "student" / MODEL)
    assert after.cfg.tail == "head" and tuple(info.train_config["train_only"]) == HEAD
    changed = {k.rsplit(".", 1)[0] for k, v in after.state_dict().items() if not torch.equal(v, before[k].float())}
    assert changed == set(HEAD)  # the body and the sub-pixel convolution stay the teacher's
    torch.testing.assert_close(after.body.to_sub.weight, teacher.body.to_sub.weight, rtol=0, atol=0)
    rows = (tmp_path / "student" / "log.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert all(float(r.split(",")[header.index("temporal")]) == 0 for r in rows[1:])


def test_train_only_names_layers_the_generator_has(tmp_path: Path) -> None:
    from realtime.errors import StylecastError

    with pytest.raises(StylecastError, match="no layer 'body.nope'.*body.stem"):
        Trainer(TrainConfig(out=str(tmp_path / "x"), steps=1, train_only=("body.nope",), **TINY))


def test_skip_tail_least_squares_recovers_a_linear_tail() -> None:
    """The fit is exact where the teacher's own tail is a skip tail on the same body."""
    torch.manual_seed(0)
    teacher = Generator(GeneratorConfig(num_styles=2, channels=8, res_blocks=1, tail="skip")).eval()
    with torch.no_grad():
        for p in (teacher.body.to_sub.weight, teacher.body.skip.weight):
            p.mul_(0.3)  # keep the logits inside the clamp of the fit
    student = copy.deepcopy(teacher)
    with torch.no_grad():
        for p in (student.body.to_sub.weight, student.body.skip.weight, student.body.to_sub.bias):
            p.normal_()
    x, w = torch.rand(6, 3, 32, 48), torch.eye(2)[torch.arange(6) % 2]
    assert fit_skip_tail(student, teacher, x, w, ridge=1e-6) < 2e-3
    with torch.no_grad():
        torch.testing.assert_close(student(x, w), teacher(x, w), atol=1e-2, rtol=0)


def test_distilling_needs_the_model_to_distill(tmp_path: Path) -> None:
    from realtime.errors import StylecastError

    with pytest.raises(StylecastError, match="distill_weight needs init"):
        Trainer(TrainConfig(out=str(tmp_path / "x"), steps=1, distill_weight=1.0, **TINY))


def test_cli_help_documents_every_option() -> None:
    proc = subprocess.run([sys.executable, "-m", "train", "--help"], capture_output=True, text=True, cwd=ROOT, check=True)
    for f in fields(TrainConfig):
        assert "--" + f.name.replace("_", "-") in proc.stdout
    assert "--resume" in proc.stdout and "--config" in proc.stdout


def test_config_file_and_overrides(tmp_path: Path) -> None:
    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text('[train]\nsteps = 7\nstyle_layers = ["relu2_2"]\n')
    cfg = load_config(cfg_file, {"steps": 9, "lr": None})
    assert cfg.steps == 9 and cfg.style_layers == ("relu2_2",) and cfg.lr == TrainConfig().lr
    cfg_file.write_text("steps = [\n")
    from realtime.errors import StylecastError

    with pytest.raises(StylecastError, match="c.toml"):
        load_config(cfg_file, {})
    cfg_file.write_text("stepz = 3\n")
    with pytest.raises(StylecastError, match="stepz"):
        load_config(cfg_file, {})


def test_shipped_configs_describe_the_default_model() -> None:
    """The configs in train/configs are what made the bundled fast model, stage by stage."""
    _, info = load_model(None)
    names = {f.name for f in fields(TrainConfig)}
    stages = []
    record = info.train_config
    while record:
        stages.append({k: v for k, v in record.items() if k in names})
        record = record.get("init_from", {})
    assert len(stages) == 10
    where = {"init", "out", "styles", "content", "vgg_weights", "device"}  # where it ran, not how
    configs = ("fast-cpu-head-tune.toml", "fast-cpu-head.toml", "fast-cpu-longer.toml", "fast-cpu-content.toml", "fast-cpu-texture.toml", "fast-cpu-focus.toml", "fast-cpu-continue.toml", "fast-cpu.toml",
               "default-grid.toml", "default.toml")
    for config, made in zip(configs, stages, strict=True):
        cfg = load_config(ROOT / "train" / "configs" / config, {}).to_dict()
        differ = {k: (cfg[k], made[k]) for k in made if k not in where and cfg[k] != _as_loaded(made[k])}
        assert not differ, f"{config}: {differ}"


def _as_loaded(value: object) -> object:
    return tuple(value) if isinstance(value, list) else value


def test_cli_bad_config_is_one_line_error(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "train", "--config", str(tmp_path / "nope.toml")],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and "config file not found" in proc.stderr


@pytest.mark.slow
def test_ddp_two_processes_gloo_keep_identical_weights(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533",
           str(ROOT / "tests" / "ddp_worker.py"), str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    initial = Trainer(TrainConfig(out=str(tmp_path / "x"), steps=0, **TINY)).generator.state_dict()
    moved = False
    for part in ("generator", "critic"):
        for k, v in r0[part].items():
            torch.testing.assert_close(v, r1[part][k], rtol=0, atol=0, msg=f"{part}.{k} differs between ranks")
    for k, v in r0["generator"].items():
        moved |= not torch.equal(v, initial[k])
    assert moved, "DDP run did not update the generator"


def test_fused_style_loss_is_alpha_weighted_sum() -> None:
    dist = torch.tensor([[1.0, 4.0], [9.0, 16.0]])
    alpha = torch.tensor([[1.0, 0.0], [0.25, 0.75]])
    assert losses.fused_style_loss(dist, alpha).item() == pytest.approx((1.0 + (0.25 * 9 + 0.75 * 16)) / 2)


def test_style_weight_sampler_mixes_and_one_hots() -> None:
    import numpy as np

    w = sample_style_weights(400, 5, 0.5, np.random.default_rng(0))
    torch.testing.assert_close(w.sum(1), torch.ones(400))
    one_hot = (w.max(1).values == 1).float().mean().item()
    assert 0.35 < one_hot < 0.65 and (w >= 0).all()


def test_style_weight_sampler_follows_one_hot_probabilities() -> None:
    import numpy as np

    w = sample_style_weights(2000, 4, 0.0, np.random.default_rng(0), np.array([0.7, 0.2, 0.1, 0.0]))
    share = w.mean(0)
    assert share[3] == 0 and 0.65 < share[0] < 0.75 and 0.07 < share[2] < 0.13


def test_style_focus_draws_the_worst_fitted_styles_most_and_survives_resume(tmp_path: Path) -> None:
    cfg = TrainConfig(out=str(tmp_path / "run"), steps=1, style_focus=2.0, **TINY)
    trainer = Trainer(cfg)
    n = trainer.g_cfg.num_styles
    distances = torch.ones(3, n)
    distances[0, 0], distances[1, 1] = 3.0, 0.5  # each row's own painting is the one its alpha asks for
    alpha = torch.zeros(3, n)
    alpha[0, 0] = alpha[1, 1] = 1.0
    alpha[2, :2] = 0.5  # a mixture says nothing about either style
    trainer.track_style_losses(distances, alpha)
    trainer.refresh_style_probs()
    probs = trainer.style_probs
    assert probs is not None and probs.sum() == pytest.approx(1.0)
    # Unseen styles count as the mean of the seen ones (1.75); weights go as loss squared.
    assert probs[0] / probs[1] == pytest.approx(36.0) and probs[2] / probs[1] == pytest.approx(1.75**2 / 0.25)
    trainer.track_style_losses(torch.full((3, n), 4.0), alpha)  # a running mean, not the last batch
    assert 3.0 < float(trainer.style_loss_ema[0]) < 4.0

    trainer.save_checkpoint()
    resumed = Trainer(cfg)
    resumed.load_checkpoint(tmp_path / "run" / CHECKPOINT)
    torch.testing.assert_close(resumed.style_loss_ema, trainer.style_loss_ema, equal_nan=True)
    assert resumed.style_probs is not None and resumed.style_probs[0] > resumed.style_probs[1]


def test_temporal_loss_zero_for_equivariant_map_and_positive_otherwise() -> None:
    x = torch.rand(2, 3, 32, 32)
    theta = losses.random_motion(2, torch.device("cpu"))
    moved, mask = losses.warp(x, theta)
    assert losses.temporal_loss(moved, losses.warp(x, theta)[0], mask).item() == 0
    assert losses.temporal_loss(moved + 0.1 * torch.rand_like(moved), moved, mask).item() > 1e-4
    assert 0 < mask.mean() <= 1


def test_grid_loss_sees_a_4_pixel_grid_not_texture() -> None:
    torch.manual_seed(0)
    smooth = torch.linspace(0, 1, 96)[None, None, :, None] * torch.linspace(0, 1, 160)[None, None, None, :]
    texture = (smooth + 0.1 * torch.rand(2, 3, 96, 160)).clamp(0, 1)
    pattern = 0.03 * torch.randn(1, 3, 4, 4).repeat(1, 1, 24, 40)  # one fixed 4x4 tile, repeated
    gridded = texture + pattern
    assert losses.grid_loss(texture) < 0.05 * losses.grid_loss(gridded)
    # Where the grid starts does not matter, nor a size that is not a multiple of the tile.
    torch.testing.assert_close(losses.grid_loss(gridded[..., 2:, 1:]), losses.grid_loss(gridded), rtol=0.3, atol=0)
    assert torch.isfinite(losses.grid_loss(gridded[..., :12, :20]))  # smaller than one tile
    # Its gradient pushes the pattern out.
    x = gridded.clone().requires_grad_(True)
    losses.grid_loss(x).backward()
    assert losses.grid_loss(gridded - 1e3 * x.grad) < losses.grid_loss(gridded)


def test_gradient_penalty_of_linear_critic() -> None:
    class Linear(torch.nn.Module):
        def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
            return 2.0 * x.flatten(1).sum(1) / x[0].numel() ** 0.5

    real, fake = torch.rand(3, 3, 4, 4), torch.rand(3, 3, 4, 4)
    w = torch.eye(3)
    # The gradient norm of this critic is exactly 2 everywhere, so the penalty is (2 - 1)^2.
    assert losses.gradient_penalty(Linear(), real, fake, w, w).item() == pytest.approx(1.0, rel=1e-5)


def test_vgg_loads_bundled_weights_and_gram_shapes() -> None:
    vgg = VGGFeatures(find_vgg(), ("relu1_2", "relu4_3"))
    feats = vgg(torch.rand(1, 3, 32, 32))
    assert feats["relu1_2"].shape == (1, 64, 32, 32) and feats["relu4_3"].shape == (1, 512, 4, 4)
    assert losses.gram(feats["relu1_2"]).shape == (1, 64, 64)
    assert not any(p.requires_grad for p in vgg.parameters())
    # A content target stops at its layer, with the same values the full pass gives there.
    x = torch.rand(1, 3, 32, 32)
    early = vgg(x, until="relu1_2")
    assert list(early) == ["relu1_2"] and torch.equal(early["relu1_2"], vgg(x)["relu1_2"])


def test_vgg_torchvision_state_dict(tmp_path: Path) -> None:
    """A torchvision-format vgg16 .pth (as in torchvision's cache) loads with torchvision preprocessing."""
    import numpy as np

    with np.load(find_vgg().path) as z:
        state = {k: torch.from_numpy(z[k].astype(np.float32)) for k in z.files}
    pth = tmp_path / "vgg16-397923af.pth"
    torch.save(state, pth)
    src = find_vgg(pth)
    assert src.family == "vgg16" and not src.caffe
    feats = VGGFeatures(src, ("relu2_2",))(torch.rand(1, 3, 16, 16))
    assert feats["relu2_2"].shape == (1, 128, 8, 8)


def test_sigterm_saves_checkpoint_and_run_resumes(tmp_path: Path) -> None:
    """SIGTERM is turned into the KeyboardInterrupt path, so this covers Ctrl-C as well."""
    import signal
    import time

    out = tmp_path / "run"
    args = [sys.executable, "-m", "train", "--out", str(out), "--steps", "100000", "--batch-size", "1",
            "--crop", "32", "--style-crop", "64", "--channels", "8", "--res-blocks", "1", "--device", "cpu",
            "--log-every", "1", "--sample-every", "100000", "--checkpoint-every", "100000"]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        log_file = out / "log.csv"
        if log_file.exists() and len(log_file.read_text().splitlines()) >= 3:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr and "--resume" in stderr
    step = torch.load(out / CHECKPOINT, weights_only=True)["step"]
    assert step >= 2

    resumed = subprocess.run([*args[:6], str(step + 1), *args[7:], "--resume"], cwd=ROOT, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert torch.load(out / CHECKPOINT, weights_only=True)["step"] == step + 1
    assert (out / MODEL).exists()


def test_the_run_clock_follows_whichever_limit_comes_first(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(trainer.time, "monotonic", lambda: now[0])
    clock = RunClock(steps=100, max_minutes=10.0)
    assert clock.progress(50) == 0.5 and not clock.out_of_time() and clock.time_left() == {"time_left": "10.0min"}
    now[0] += 450  # 75 % of the time, 50 % of the steps: time leads
    assert clock.progress(50) == pytest.approx(0.75) and clock.time_left() == {"time_left": "2.5min"}
    assert clock.progress(90) == 0.9  # then the steps
    now[0] += 150
    assert clock.out_of_time() and clock.time_left() == {"time_left": "0.0min"}
    untimed = RunClock(steps=100, max_minutes=0.0)
    now[0] += 1e6
    assert untimed.progress(10) == 0.1 and not untimed.out_of_time() and untimed.time_left() == {}
