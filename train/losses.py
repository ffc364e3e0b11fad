"""The training objective, one function per term.

``L = sum_i alpha_i * L_style_i + L_content + lambda * L_gan + w_tv * L_tv + w_t * L_temporal``

The style term is *fused*: each sample's output is pulled towards the Gram statistics of every style,
weighted by that sample's style-weight vector alpha, so the optimum of a blend is the blend of the
styles' Gram matrices and blends are trained rather than hoped for.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from realtime import metrics

#: The eval's Gram matrix (``F Fᵀ / (C·H·W)``): one definition for training and measuring.
gram = metrics.gram


def content_loss(out_feats: torch.Tensor, content_feats: torch.Tensor, relative: bool = False) -> torch.Tensor:
    """Feature MSE; ``relative`` divides it by the photo features' energy (the ``stylecast eval`` measure),
    which makes the weight mean the same for perceptual networks whose activations differ 100x in scale."""
    loss = F.mse_loss(out_feats.float(), content_feats.float())
    return loss / content_feats.float().pow(2).mean() if relative else loss


def style_distance(out_grams: dict[str, torch.Tensor], style_grams: dict[str, torch.Tensor],
                   relative: bool = False) -> torch.Tensor:
    """``[B, N]``: squared Gram distance of each output to each style, summed over layers.

    ``relative`` divides each layer's distance by the squared norm of the style's Gram matrix, which is
    the ``stylecast eval`` measure: every layer then counts alike, where the raw distance of relu4_3
    is orders of magnitude above relu1_2's.
    """
    if relative:
        return metrics.style_distance(out_grams, style_grams)
    total: torch.Tensor | None = None
    for layer, g in out_grams.items():
        target = style_grams[layer]  # [N, C, C]
        d = ((g[:, None] - target[None]) ** 2).mean(dim=(2, 3))
        total = d if total is None else total + d
    assert total is not None
    return total


def fused_style_loss(distance: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """``sum_i alpha_i * L_style_i``, averaged over the batch."""
    return (distance * alpha).sum(dim=1).mean()


def tv_loss(x: torch.Tensor) -> torch.Tensor:
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()


def grid_loss(x: torch.Tensor, period: int = 4, window: int = 32) -> torch.Tensor:
    """The 4-pixel grid penalty: the periodic-artifact energy that ``stylecast eval`` reports (one definition)."""
    return metrics.grid_energy(x, period, window)


def random_motion(batch: int, device: torch.device, max_shift: float = 0.04, max_rot_deg: float = 3.0,
                  max_zoom: float = 0.03, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random small affine warps ``[B,2,3]`` (normalized coordinates) standing in for optical flow."""
    u = torch.rand(batch, 4, generator=generator, device="cpu") * 2 - 1
    angle = u[:, 0] * math.radians(max_rot_deg)
    zoom = 1 + u[:, 1] * max_zoom
    cos, sin = torch.cos(angle) * zoom, torch.sin(angle) * zoom
    theta = torch.stack([
        torch.stack([cos, -sin, u[:, 2] * max_shift * 2], dim=1),
        torch.stack([sin, cos, u[:, 3] * max_shift * 2], dim=1),
    ], dim=1)
    return theta.to(device)


def warp(x: torch.Tensor, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Warp ``x`` by ``theta``; also return the mask of pixels that came from inside the frame."""
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    warped = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    inside = (grid.abs() <= 1).all(dim=-1, keepdim=True).permute(0, 3, 1, 2).to(x.dtype)
    return warped, inside


def temporal_loss(out_of_warped: torch.Tensor, warped_out: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Output of the moved frame must equal the moved output, where the motion is defined."""
    diff = (out_of_warped.float() - warped_out.float()) ** 2 * mask
    return diff.sum() / (mask.sum() * out_of_warped.shape[1]).clamp_min(1.0)


def gradient_penalty(critic: torch.nn.Module, real: torch.Tensor, fake: torch.Tensor,
                     w_real: torch.Tensor, w_fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al., 2017): unit gradient norm on random real/fake interpolates.

    The condition is interpolated with the same factor as the image, so the penalty is taken on the
    line between two (image, style) pairs, matching the critic's conditional input space.
    """
    eps = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    x = (eps * real + (1 - eps) * fake).requires_grad_(True)
    w = eps.view(-1, 1) * w_real + (1 - eps.view(-1, 1)) * w_fake
    score = critic(x, w)
    (grad,) = torch.autograd.grad(score.sum(), x, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
