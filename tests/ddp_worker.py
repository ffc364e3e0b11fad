"""Run under torchrun by tests/test_train.py: a few DDP steps, then every rank dumps its weights."""

import sys
from pathlib import Path

import torch

from train.config import TrainConfig
from train.trainer import Trainer

out = Path(sys.argv[1])
torch.set_num_threads(1)
cfg = TrainConfig(out=str(out), steps=3, batch_size=1, crop=32, style_crop=64, channels=8, res_blocks=1,
                  gan_start=1, device="cpu", log_every=1, sample_every=1000, checkpoint_every=1000)
trainer = Trainer(cfg)
trainer.fit()
rank = trainer.dinfo.rank
torch.save({"generator": trainer.generator.state_dict(), "critic": trainer.critic.state_dict()}, out / f"rank{rank}.pt")
torch.distributed.destroy_process_group()
