"""Style-conditioned PatchGAN critic for WGAN-GP.

Conditioning by projection (Miyato & Koyama, 2018): the score of each patch is
``psi(h) + <embed(w), h>``, where ``embed(w) = w @ E`` blends one embedding row per style, so a single
critic judges "does this patch look like style w". No batch norm: the gradient penalty is defined per
sample, and batch statistics would couple samples (Gulrajani et al. use layer norm or none).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PatchCritic(nn.Module):
    def __init__(self, num_styles: int, channels: int = 64, layers: int = 3) -> None:
        super().__init__()
        convs: list[nn.Module] = []
        cin = 3
        for i in range(layers):
            cout = channels * 2**i
            convs.append(nn.Conv2d(cin, cout, 4, stride=2, padding=1))
            cin = cout
        self.convs = nn.ModuleList(convs)
        self.psi = nn.Conv2d(cin, 1, 3, padding=1)
        self.embed = nn.Parameter(torch.zeros(num_styles, cin))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """``x [B,3,H,W]`` in [0,1], ``w [B,N]`` -> one score per image, the mean of its patch scores."""
        h = x * 2 - 1
        for conv in self.convs:
            h = F.leaky_relu(conv(h), 0.2)
        proj = (h * (w.to(h.dtype) @ self.embed.to(h.dtype))[:, :, None, None]).sum(dim=1, keepdim=True)
        return (self.psi(h) + proj).flatten(1).mean(dim=1)
