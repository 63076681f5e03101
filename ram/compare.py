"""What a model costs: multiply-accumulates counted by torch's FLOP counter, measured latency, pixels examined.

Pure measurements on a model and a batch of canvases; ``train.py compare`` turns them into a report.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode

from ram.model import RecurrentAttention
from ram.retina import Retina


def forward_fn(model: torch.nn.Module, *, retina: Retina | None = None, n_glimpses: int = 0) -> Callable:
    """images (B, C, C) uint8 -> logits, the whole inference of either kind of model (RAM: greedy, from the centre,
    integral image and retina included)."""
    if isinstance(model, RecurrentAttention):
        if retina is None or n_glimpses < 1:
            raise ValueError("a RAM model needs its retina and its number of glimpses")
        return lambda images: model.rollout(images, torch.zeros(images.shape[0], 2), retina, n_glimpses,
                                            greedy=True).logits
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
    """Median wall-clock seconds of one call fn(images), after a warm-up; each repeat loops for >= min_seconds."""
    fn(images)
    times = []
    for _ in range(repeats):
        n, start = 0, time.perf_counter()
        while True:
            fn(images)
            n += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds:
                break
        times.append(elapsed / n)
    return statistics.median(times)


def pixels_examined(*, canvas_size: int, retina: Retina | None = None, n_glimpses: int = 0) -> int:
    """Canvas pixels that enter the model per image: RAM reads T glimpses of k patches (their footprint inside the
    canvas at most, counted with overlaps); a whole-canvas model reads every pixel."""
    if retina is None:
        return canvas_size * canvas_size
    per_glimpse = sum(min(retina.g * retina.s**i, canvas_size) ** 2 for i in range(retina.k))
    return n_glimpses * per_glimpse
