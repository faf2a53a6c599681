"""The time-conditioned U-Net score network (28 -> 14 -> 7 pixels)."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class FourierEmbedding(nn.Module):
    """Sines and cosines of the noise level at frequencies spread over 1/4 .. 16 cycles.

    The noise input c_noise = ln(sigma) / 4 spans about [-1.2, 1.1] for sigma in
    [0.01, 80]; these frequencies give every noise level a clearly different code,
    unlike a transformer position embedding built for inputs in the hundreds.
    """

    def __init__(self, dim: int, min_freq: float = 0.25, max_freq: float = 16.0):
        super().__init__()
        freqs = torch.logspace(math.log10(min_freq), math.log10(max_freq), dim // 2)
        self.register_buffer("freqs", 2 * math.pi * freqs, persistent=False)

    def forward(self, c_noise: torch.Tensor) -> torch.Tensor:
        angles = c_noise.reshape(-1, 1).float() * self.freqs
        return torch.cat([angles.cos(), angles.sin()], dim=1)


class ResBlock(nn.Module):
    """GroupNorm, SiLU, 3x3 conv, twice; the time embedding scales and shifts in between."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(min(groups, in_ch), in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.scale_shift = nn.Linear(emb_dim, 2 * out_ch)
        self.norm2 = nn.GroupNorm(min(groups, out_ch), out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()
        # Start each block as the identity on its skip path, so deep stacks train from step 1.
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.scale_shift(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(F.silu(h))
        return self.skip(x) + h


class ScoreUNet(nn.Module):
    """U-Net F(x, c_noise) at three resolutions with one residual block per level and side.

    With `channels` = (32, 64, 128) it has about 1.5 M parameters, the size of the
    reference study's network. The raw output is turned into a denoiser by the
    preconditioning in `mclcore.diffusion`.
    """

    def __init__(self, channels=(32, 64, 128), emb_dim: int = 128, groups: int = 8):
        super().__init__()
        c0, c1, c2 = channels
        self.embed = nn.Sequential(
            FourierEmbedding(emb_dim),
            nn.Linear(emb_dim, emb_dim),
            nn.SiLU(),
            nn.Linear(emb_dim, emb_dim),
        )
        self.conv_in = nn.Conv2d(1, c0, 3, padding=1)
        self.enc0 = ResBlock(c0, c0, emb_dim, groups)
        self.down1 = nn.Conv2d(c0, c0, 3, stride=2, padding=1)
        self.enc1 = ResBlock(c0, c1, emb_dim, groups)
        self.down2 = nn.Conv2d(c1, c1, 3, stride=2, padding=1)
        self.enc2 = ResBlock(c1, c2, emb_dim, groups)
        self.mid = ResBlock(c2, c2, emb_dim, groups)
        self.dec2 = ResBlock(c2 + c2, c2, emb_dim, groups)
        self.dec1 = ResBlock(c2 + c1, c1, emb_dim, groups)
        self.dec0 = ResBlock(c1 + c0, c0, emb_dim, groups)
        self.norm_out = nn.GroupNorm(min(groups, c0), c0)
        self.conv_out = nn.Conv2d(c0, 1, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        emb = F.silu(self.embed(c_noise))
        h0 = self.enc0(self.conv_in(x), emb)  # 28 x 28
        h1 = self.enc1(self.down1(h0), emb)  # 14 x 14
        h2 = self.enc2(self.down2(h1), emb)  # 7 x 7
        h = self.mid(h2, emb)
        h = self.dec2(torch.cat([h, h2], dim=1), emb)
        h = F.interpolate(h, scale_factor=2.0, mode="nearest")
        h = self.dec1(torch.cat([h, h1], dim=1), emb)
        h = F.interpolate(h, scale_factor=2.0, mode="nearest")
        h = self.dec0(torch.cat([h, h0], dim=1), emb)
        return self.conv_out(F.silu(self.norm_out(h)))


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
