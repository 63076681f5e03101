"""The env's ``render``: a canvas (grey or RGB) with the glimpses taken on it, as an RGB array (Pillow; no matplotlib).

The figures for people (grids, GIFs, TensorBoard) are ``ram.plots.trajectory_figure``; both take their boxes from
``envs.retina.Retina.boxes``."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw

from envs.retina import Retina

# One colour per glimpse, from early (blue) to late (yellow); the latest glimpse is drawn last, on top.
_PALETTE = [(66, 133, 244), (52, 168, 83), (0, 188, 212), (171, 71, 188), (255, 112, 67), (251, 192, 45)]


def glimpse_colour(t: int, n: int) -> tuple[int, int, int]:
    """Colour of glimpse t of n (RGB 0..255)."""
    if n <= 1:
        return _PALETTE[-1]
    return _PALETTE[round(t * (len(_PALETTE) - 1) / (n - 1))]


def draw_glimpses(image: np.ndarray, path: np.ndarray, retina: Retina, *, side: int = 240,
                  centres: bool = True) -> np.ndarray:
    """RGB uint8 picture of a (C, C) grey or (C, C, 3) RGB uint8 canvas with every glimpse of ``path`` (T, 2): a box
    per scale, the path between glimpse centres, and the latest glimpse in the brightest colour. About ``side`` pixels
    wide. ``centres=False`` leaves out the dots at the glimpse centres (on a sparse screen they hide what is there)."""
    if image.ndim != 2 and (image.ndim != 3 or image.shape[-1] != 3):
        raise ValueError(f"a canvas is (C, C) grey or (C, C, 3) RGB, got {image.shape}")
    C = image.shape[0]
    zoom = max(1, -(-side // C))
    picture = Image.fromarray(np.asarray(image, np.uint8)).resize((C * zoom, C * zoom), Image.NEAREST).convert("RGB")
    draw = ImageDraw.Draw(picture)
    T, dots = len(path), centres
    if T:
        boxes = retina.boxes(torch.as_tensor(np.asarray(path, np.float32)), C).numpy() * zoom  # (T, k, 4)
        centres = [tuple(((b[0, :2] + b[0, 2:]) / 2).tolist()) for b in boxes]
        if T > 1:
            draw.line(centres, fill=(255, 255, 255), width=max(1, zoom // 3))
        for t in range(T):
            colour = glimpse_colour(t, T)
            width = max(1, zoom // 2) if t == T - 1 else max(1, zoom // 4)
            for x0, y0, x1, y1 in boxes[t]:
                draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=colour, width=width)
            if dots:
                cx, cy = centres[t]
                r = max(2, zoom)
                draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
    return np.asarray(picture)
