"""What a model costs: multiply-accumulates counted by torch's FLOP counter, measured latency, pixels examined.

Pure measurements on a model and a batch of canvases; ``ram.reports`` turns them into a report.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode

from envs.retina import Retina


def forward_fn(model: torch.nn.Module, *, retina: Retina | None = None, n_glimpses: int = 0,
               label_steps: tuple[int, ...] = ()) -> Callable:
    """images (B, C, C) uint8 -> logits, the whole inference of either kind of model: with a retina, a glimpse
    model's (RAM: greedy, from the centre, integral image and retina included; a label at each of ``label_steps``,
    for several objects); without, a whole-canvas model's."""
    if retina is not None:
        if n_glimpses < 1:
            raise ValueError("a glimpse model needs its number of glimpses")
        return lambda images: model.rollout(images, images.new_zeros(images.shape[0], 2, dtype=torch.float32),
                                            retina, n_glimpses, greedy=True, label_steps=label_steps).label_logits
    return lambda images: model(images.float() / 255.0).logits


@torch.no_grad()
def count_macs(fn: Callable, images: Tensor) -> int:
    """Multiply-accumulates per image of fn(images), as torch's FLOP counter sees them (matmuls and convolutions;
    the retina's gathers and the pooling sums are not multiply-accumulates and count zero)."""
    with FlopCounterMode(display=False) as counter:
        fn(images)
    return counter.get_total_flops() // 2 // images.shape[0]


@torch.no_grad()
def latency(fn: Callable, images: Tensor, *, repeats: int = 7, min_seconds: float = 0.05) -> float:
    """Median wall-clock seconds of one call fn(images), after a warm-up; each repeat loops for >= min_seconds. On a
    GPU, each repeat waits for the device's work to finish before it reads the clock."""
    cuda = images.is_cuda
    fn(images)
    times = []
    for _ in range(repeats):
        n, start = 0, time.perf_counter()
        while True:
            fn(images)
            n += 1
            if cuda:
                torch.cuda.synchronize(images.device)
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds:
                break
        times.append(elapsed / n)
    return statistics.median(times)


def values_read(*, canvas_size: int, retina: Retina | None = None, n_glimpses: int = 0, channels: int = 1) -> int:
    """Numbers that enter the model per image: RAM's sensor gives T glimpses of k patches of g x g values (each an
    average of the pixels under it) per channel; a whole-canvas model reads every pixel's channels."""
    if retina is None:
        return canvas_size * canvas_size * channels
    return n_glimpses * retina.k * retina.g * retina.g * channels


def pixels_covered(locations: Tensor, retina: Retina, canvas_size: int) -> float:
    """Mean number of canvas pixels under at least one of a trajectory's glimpse patches (the union of every scale
    of every glimpse, clipped to the canvas): locations (N, T, 2) in [-1, 1] -> pixels per image."""
    boxes = retina.boxes(locations, canvas_size).clamp(0, canvas_size)  # (N, T, k, 4)
    grid = torch.arange(canvas_size)
    inside_x = (grid >= boxes[..., 0, None]) & (grid < boxes[..., 2, None])  # (N, T, k, C)
    inside_y = (grid >= boxes[..., 1, None]) & (grid < boxes[..., 3, None])
    covered = (inside_y[..., :, None] & inside_x[..., None, :]).flatten(1, 2).any(1)  # (N, C, C)
    return covered.float().sum((1, 2)).mean().item()

