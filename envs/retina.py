"""The glimpse sensor rho(x, l) of Mnih et al. (2014): the one owner of glimpse geometry.

Coordinate convention (used everywhere in the project, written down only here):
a location l = (x, y) lies in [-1, 1]^2; (-1, -1) is the top-left corner of the image, (1, 1) the
bottom-right corner and (0, 0) its centre. x runs along image columns, y along image rows. Locations
outside [-1, 1] are clipped to it (``clip_location``). A location maps to the pixel grid line
``c = round((l + 1) / 2 * size)``; the patch of side p at that location covers pixels
``[c - p // 2, c - p // 2 + p)``, so all scales share one centre.

Scale i (0-based) is a square of side ``g * s**i`` average-pooled down to ``g x g`` (cells of
``s**i x s**i`` pixels). Pixels outside the image count as zero.

Pooling is computed from an integral image (summed-area table): every pooled cell is four look-ups,
so a glimpse costs ``k * (g + 1)**2`` gathers whatever the scale, and a whole batch is one ``index_select``
call. For uint8 images the table is integer, so the pooled values are exact means.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from torch import Tensor


def clip_location(l: Tensor) -> Tensor:
    """Clip locations to [-1, 1]^2, the one clipping rule of the project (environments, model, plots)."""
    return l.clamp(-1.0, 1.0)


def integral_image(images: Tensor) -> Tensor:
    """Summed-area table S of (B, H, W) images, shape (B, H + 1, W + 1), S[:, i, j] = sum of images[:, :i, :j]; of
    (B, H, W, C) colour images, one table per channel, channels last as the images: (B, H + 1, W + 1, C).

    uint8 images give an exact integer table (int32 up to 2,896 x 2,896 pixels, where 255 * H * W < 2**31; int64
    beyond), read back as pixel / 255; floating images a float64 one.
    The table is on the images' device (the retina reads it there) and is not detached from autograd.
    """
    if images.dim() not in (3, 4):
        raise ValueError(f"images must have shape (B, H, W) or (B, H, W, C), got {tuple(images.shape)}")
    H, W = images.shape[1:3]
    wide = torch.int32 if 255 * H * W < 2**31 else torch.int64
    dtype = wide if images.dtype == torch.uint8 else torch.float64
    # The images copied into a zero table behind a zero row and column (converted as they are copied: no widened copy
    # to pad), then running sums along rows and down columns, in place (faster than cumsums into a slice of a zero
    # table). On the calling thread's torch threads: call it from the thread that trains. On another thread, an op
    # big enough to run in parallel starts a second OpenMP thread team, and that team, even idle, halved the training
    # step's speed (both measured in docs/speed.md).
    # Colour: the channels stay last, so that the retina gathers a corner's C values together.
    S = images.new_zeros((images.shape[0], H + 1, W + 1, *images.shape[3:]), dtype=dtype)
    S[:, 1:, 1:] = images
    return S.cumsum_(2).cumsum_(1)


@dataclass(frozen=True, kw_only=True)
class Retina:
    """rho(x, l): k concentric square patches, the first g x g, each next s times wider, all pooled to g x g."""

    g: int = 8
    """Side of the smallest patch and of every pooled patch, in pixels."""
    k: int = 1
    """Number of scales."""
    s: int = 2
    """Each scale is s times wider than the previous one."""

    def __post_init__(self) -> None:
        for name, value, low in (("g", self.g, 1), ("k", self.k, 1), ("s", self.s, 1)):
            if not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"retina {name} must be an integer >= {low}, got {value!r}")

    @property
    def shape(self) -> tuple[int, int, int]:
        """Shape of one glimpse of a grey image: (k, g, g)."""
        return (self.k, self.g, self.g)

    def glimpse_shape(self, channels: int = 1) -> tuple[int, ...]:
        """Shape of one glimpse of an image of ``channels`` channels: (k, g, g) grey, (k, C, g, g) colour."""
        return self.shape if channels == 1 else (self.k, channels, self.g, self.g)

    @property
    def widest(self) -> int:
        """Side in pixels of the largest patch."""
        return self.g * self.s ** (self.k - 1)

    @cached_property
    def _geometry(self) -> tuple[Tensor, Tensor, Tensor]:
        """Constants of every read: patch sides (k,), cell edges relative to the centre (k, g + 1), cell areas (k,),
        on the CPU (``_read_constants`` keeps a copy on each device it reads on)."""
        cell = torch.tensor([self.s**i for i in range(self.k)], dtype=torch.int64)
        sides = cell * self.g
        edges = cell[:, None] * torch.arange(self.g + 1, dtype=torch.int64) - (sides // 2)[:, None]
        return sides, edges, (cell * cell).double()

    @cached_property
    def _constants(self) -> dict[tuple, tuple[Tensor, Tensor]]:
        """Constants of the reads of one kind of table, by (table side, index dtype, table dtype): the cell edges
        (k, g + 1) in the index dtype and the divisor of the sums."""
        return {}

    def _read_constants(self, H1: int, index: torch.dtype, table: torch.dtype,
                        device: torch.device) -> tuple[Tensor, Tensor]:
        key = (H1, index, table, device)
        if key not in self._constants:
            _, edges, area = self._geometry
            size = H1 - 1
            # A uint8 image's table is integer, so the sums are exact, and so is their conversion to float32 (sums
            # below 2**24) or float64: the division by the cell area times 255 rounds once (float32) or to within
            # float32's precision (float64, then cast). A floating image's table is float64, differenced in float64.
            exact = torch.float32 if not table.is_floating_point and 255 * size * size < 2**24 else torch.float64
            divisor = area * 255.0 if not table.is_floating_point else area
            # Edges beyond the image clamp to it anyway (in read): clamped first, they fit the index dtype.
            self._constants[key] = (edges.clamp(-size, size).to(device, index),
                                    divisor.to(device, exact)[None, :, None, None])
        return self._constants[key]

    def centre(self, l: Tensor, size: int, dtype: torch.dtype = torch.int64) -> Tensor:
        """Integer pixel grid line of each coordinate of clipped locations l: (..., 2) -> (..., 2) of ``dtype`` (x, y),
        the nearest grid line to (l + 1) / 2 * size (ties to even)."""
        # Halving l + 1 or size is exact in float64, so (l + 1) * (size / 2) is the same float as (l + 1) / 2 * size.
        return torch.round((clip_location(l).double() + 1.0) * (size / 2)).to(dtype)

    def boxes(self, l: Tensor, size: int) -> Tensor:
        """Pixel boxes (x0, y0, x1, y1), end exclusive, of every scale: l (..., 2) -> (..., k, 4) int64.

        Boxes may reach outside the image; that part of a glimpse reads as zero.
        """
        sides = self._geometry[0].to(l.device)
        x0y0 = self.centre(l, size)[..., None, :] - (sides // 2)[:, None]  # (..., k, 2)
        return torch.cat([x0y0, x0y0 + sides[:, None]], dim=-1)

    def read(self, S: Tensor, l: Tensor) -> Tensor:
        """Glimpses from a summed-area table S (B, H+1, W+1) at locations l (B, 2): (B, k, g, g) float32 in [0, 1]; from
        the tables of colour images (B, H+1, W+1, C), each channel pooled as a grey image's: (B, k, C, g, g)."""
        B, H1, W1 = S.shape[:3]
        C = S.shape[3] if S.dim() == 4 else None  # colour: a corner's C values side by side
        if H1 != W1:
            raise ValueError(f"the retina reads square images, got {H1 - 1}x{W1 - 1}")
        if l.shape != (B, 2):
            raise ValueError(f"locations must have shape ({B}, 2), got {tuple(l.shape)}")
        size = H1 - 1
        # int32 offsets when the flat table allows: half the bytes to add (with the constants kept between reads,
        # about a fifth faster a read: docs/speed.md). The largest flat index formed is S.numel() - 1.
        index_dtype = torch.int32 if S.numel() < 2**31 else torch.int64
        edges, divisor = self._read_constants(H1, index_dtype, S.dtype, S.device)
        # each table's flat offset
        offsets = torch.arange(0, B * H1 * W1, H1 * W1, dtype=index_dtype, device=S.device)[:, None, None]
        # Cell edges of every scale, clamped to the image: clamping the corners of a box gives the sum of its
        # part inside the image, i.e. zero padding outside it.
        edges = (self.centre(l, size, index_dtype)[:, None, :, None] + edges[None, :, None, :]).clamp_(0, size)
        cols, rows = edges[:, :, 0], edges[:, :, 1]  # (B, k, g+1) each
        rows = rows * W1 + offsets  # flat offset of each row in S
        # index_select on the flat table, and integer differences below: faster than take and float differences.
        index = (rows[..., None] + cols[:, :, None, :]).view(-1)
        if C is None:
            corners = S.reshape(-1).index_select(0, index).view(B, self.k, self.g + 1, self.g + 1)
        else:  # one gather of each corner's C values, then the channels beside the scales: (B, k, C, g+1, g+1)
            corners = S.reshape(-1, C).index_select(0, index).view(B, self.k, self.g + 1, self.g + 1, C).movedim(-1, 2)
            divisor = divisor[..., None]
        d = corners[..., 1:] - corners[..., :-1]  # column differences
        sums = d[..., 1:, :] - d[..., :-1, :]  # then row differences: the sum of each cell
        out = sums.to(divisor.dtype).div_(divisor).float()
        return out if C is None else out.contiguous()

    def __call__(self, images: Tensor, l: Tensor) -> Tensor:
        """Glimpses of (B, H, W) images (uint8 in 0..255, or float in [0, 1]) at l (B, 2): (B, k, g, g) float32; of
        (B, H, W, C) colour images, (B, k, C, g, g)."""
        return self.read(integral_image(images), l)


def gaussian_read(images: Tensor, centre: Tensor, stride: Tensor, sigma: Tensor, gamma: Tensor, *, n: int,
                  k: int = 1, s: int = 2) -> Tensor:
    """The differentiable glimpse of DRAW (Gregor et al. 2015), with the retina's scales and coordinates.

    images (B, H, W) float; centre (B, 2) in [-1, 1] (the convention above, not rounded); stride (B,) pixels between
    filter centres at scale 0; sigma (B,) filter width in pixels (clamped to >= 0.5); gamma (B,) intensity.
    Scale i multiplies stride and sigma by s**i. Filter j of a scale is centred at centre + (j - (n - 1) / 2) *
    stride; each filter is a Gaussian normalised to unit mass over the infinite pixel grid (to within 1.5% at sigma
    = 0.5, far less above), so pixels outside the image count as zero, as in the hard retina.
    Returns (B, k, n, n): gamma * F_Y x F_X^T per scale.
    """
    B, H, W = images.shape
    dtype, device = images.dtype, images.device
    scale = (s ** torch.arange(k, dtype=dtype, device=device))[None, :, None]  # (1, k, 1)
    size = torch.tensor([W, H], dtype=dtype, device=device)
    c = (clip_location(centre).to(dtype) + 1) / 2 * size  # (B, 2) in pixels
    offsets = torch.arange(n, dtype=dtype, device=device) - (n - 1) / 2  # (n,)
    sig = sigma.to(dtype).clamp(min=0.5)[:, None, None] * scale  # (B, k, 1)
    step = stride.to(dtype)[:, None, None] * scale  # (B, k, 1)

    def filterbank(axis: int, length: int) -> Tensor:  # (B, k, n, length)
        mu = c[:, axis, None, None] + step * offsets  # (B, k, n)
        pixels = torch.arange(length, dtype=dtype, device=device) + 0.5
        z = (pixels - mu[..., None]) / sig[..., None]
        return torch.exp(-0.5 * z * z) / (math.sqrt(2 * math.pi) * sig[..., None])

    F_x, F_y = filterbank(0, W), filterbank(1, H)
    return gamma.to(dtype)[:, None, None, None] * (F_y @ images[:, None] @ F_x.transpose(-1, -2))
