"""Self-attention beside hard attention: a Vision Transformer (Dosovitskiy et al. 2021) over canvas patches.

    z_0     = [x_cls; E p_1; ...; E p_N] + E_pos        patch embedding, class token, learned positions
    z'_l    = z_{l-1} + MSA(LN(z_{l-1}))                 pre-norm multi-head self-attention
    z_l     = z'_l + MLP(LN(z'_l))                       and MLP, L blocks
    logits  = Linear(LN(z_L)[cls])

The canvas (B, C, C) is cut into (C / p)^2 patches of p x p pixels (zero-padded to a multiple of p), a colour one
(B, C, C, in_channels) into patches of p x p pixels of every channel (channel-major, as a stride-p convolution's
kernel reads them); every token attends to every other, so the attention's cost grows with the square of the number
of patches, the canvas's area. The attention is written out (softmax(Q K^T / sqrt(d_head)) V) rather than fused, so
that its weights can be drawn and torch's FLOP counter counts its two products. A pure module: canvases in [0, 1] in,
``SoftOutput`` out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ram.soft import SoftOutput, planes


@dataclass(frozen=True)
class ViTConfig:
    canvas_size: int = 60
    patch_size: int = 10  # p: each token is a p x p patch
    d_model: int = 128  # token width d
    layers: int = 3  # L blocks
    heads: int = 4
    mlp_ratio: int = 2  # the MLP's hidden layer has mlp_ratio * d units
    position: bool = True  # learned position embeddings (off: the model cannot tell where a patch was)
    n_classes: int = 10
    in_channels: int = 1  # of the canvas: 1 grey (B, C, C), 3 colour (B, C, C, 3); a token reads p * p * in_channels

    def __post_init__(self) -> None:
        for name in ("canvas_size", "patch_size", "d_model", "layers", "heads", "mlp_ratio", "n_classes",
                     "in_channels"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.d_model % self.heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by {self.heads} heads")
        if self.patch_size > self.canvas_size:
            raise ValueError(f"patch_size {self.patch_size} is larger than the {self.canvas_size}-pixel canvas")

    @property
    def grid(self) -> int:
        """Patches along each side of the (padded) canvas."""
        return math.ceil(self.canvas_size / self.patch_size)


class SelfAttention(nn.Module):
    """MSA(z) = W_O [softmax(Q_h K_h^T / sqrt(d_head)) V_h]_h, with Q, K, V = z W_Q, z W_K, z W_V."""

    def __init__(self, *, d: int, heads: int):
        super().__init__()
        self.heads, self.d_head = heads, d // heads
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """z (B, n, d) -> (B, n, d) and the weights (B, heads, n, n): each query's row sums to 1 over the keys."""
        B, n, d = z.shape
        q, k, v = self.qkv(z).view(B, n, 3, self.heads, self.d_head).permute(2, 0, 3, 1, 4)  # (B, heads, n, d_h)
        a = (q @ k.transpose(-2, -1) / math.sqrt(self.d_head)).softmax(-1)
        return self.out((a @ v).transpose(1, 2).reshape(B, n, d)), a


class Block(nn.Module):
    """A pre-norm Transformer encoder block: z + MSA(LN(z)), then + MLP(LN(.)) with a GELU."""

    def __init__(self, *, d: int, heads: int, mlp: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attention = SelfAttention(d=d, heads=heads)
        self.fc1, self.fc2 = nn.Linear(d, mlp), nn.Linear(mlp, d)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        attended, a = self.attention(self.norm1(z))
        z = z + attended
        return z + self.fc2(F.gelu(self.fc1(self.norm2(z)))), a


class VisionTransformer(nn.Module):
    """Patch embedding, class token and positions, L pre-norm blocks, a linear head on the class token."""

    def __init__(self, config: ViTConfig):
        super().__init__()
        c = self.config = config
        self.embed = nn.Linear(c.in_channels * c.patch_size**2, c.d_model)  # E: a patch's pixels to a token
        self.cls = nn.Parameter(torch.zeros(1, 1, c.d_model))
        self.pos = nn.Parameter(0.02 * torch.randn(1, c.grid**2 + 1, c.d_model)) if c.position else None
        self.blocks = nn.ModuleList(Block(d=c.d_model, heads=c.heads, mlp=c.mlp_ratio * c.d_model)
                                    for _ in range(c.layers))
        self.norm = nn.LayerNorm(c.d_model)
        self.head = nn.Linear(c.d_model, c.n_classes)

    def patches(self, x: Tensor) -> Tensor:
        """x (B, C, C) or (B, C, C, ch) -> (B, N, ch * p * p): the patches in row-major order, each channel-major, the
        canvas zero-padded to grid * p."""
        p, G = self.config.patch_size, self.config.grid
        x = planes(x, self.config.in_channels)  # (B, ch, C, C)
        x = F.pad(x, (0, G * p - x.shape[-1], 0, G * p - x.shape[-2]))
        B, ch = x.shape[:2]
        return x.reshape(B, ch, G, p, G, p).permute(0, 2, 4, 1, 3, 5).reshape(B, G * G, ch * p * p)

    def forward(self, x: Tensor) -> SoftOutput:
        """Canvases (B, C, C) (or (B, C, C, in_channels)) in [0, 1] -> logits and the attention weights (B, L, heads,
        N + 1, N + 1), token 0 the class token, then the patches in row-major order."""
        tokens = self.embed(self.patches(x))
        z = torch.cat([self.cls.expand(len(tokens), -1, -1), tokens], 1)
        if self.pos is not None:
            z = z + self.pos
        weights = []
        for block in self.blocks:
            z, a = block(z)
            weights.append(a)
        return SoftOutput(self.head(self.norm(z[:, 0])), torch.stack(weights, 1), None)
