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


def values_read(*, canvas_size: int, retina: Retina | None = None, n_glimpses: int = 0) -> int:
    """Numbers that enter the model per image: RAM's sensor gives T glimpses of k patches of g x g values (each an
    average of the pixels under it); a whole-canvas model reads every pixel."""
    if retina is None:
        return canvas_size * canvas_size
    return n_glimpses * retina.k * retina.g * retina.g


def pixels_covered(locations: Tensor, retina: Retina, canvas_size: int) -> float:
    """Mean number of canvas pixels under at least one of a trajectory's glimpse patches (the union of every scale
    of every glimpse, clipped to the canvas): locations (N, T, 2) in [-1, 1] -> pixels per image."""
    boxes = retina.boxes(locations, canvas_size).clamp(0, canvas_size)  # (N, T, k, 4)
    grid = torch.arange(canvas_size)
    inside_x = (grid >= boxes[..., 0, None]) & (grid < boxes[..., 2, None])  # (N, T, k, C)
    inside_y = (grid >= boxes[..., 1, None]) & (grid < boxes[..., 3, None])
    covered = (inside_y[..., :, None] & inside_x[..., None, :]).flatten(1, 2).any(1)  # (N, C, C)
    return covered.float().sum((1, 2)).mean().item()


def lineage(results: dict, parent_of: Callable[[str], dict | None],
            _seen: frozenset[str] = frozenset()) -> tuple[list[dict], float, list[str]]:
    """The validation curve and training minutes of a run together with the runs it was fine-tuned from.

    ``results`` is a run's results.json; ``parent_of(checkpoint)`` returns the results.json of the run that wrote
    the checkpoint a run started from (``--init``), or None if it is not at hand. The curve holds the starting
    run's evaluations up to that checkpoint, then the run's own, shifted by the checkpoint's samples and minutes;
    the minutes are those of the whole chain. Returns (curve, minutes, the checkpoints of the chain, nearest first);
    where a starting run is missing (or would repeat a checkpoint of the chain), the curve is shifted by its samples
    alone and its minutes are not counted.
    """
    init = results.get("init")
    if init is None:
        return results["history"], results["train_minutes"], []
    parent = parent_of(init["checkpoint"]) if init["checkpoint"] not in _seen else None
    if parent is None:
        curve = [{**h, "samples": h["samples"] + init["samples"]} for h in results["history"]]
        return curve, results["train_minutes"], [init["checkpoint"] + " (not at hand)"]
    before, _, chain = lineage(parent, parent_of, _seen | {init["checkpoint"]})
    before = [h for h in before if h["samples"] <= init["samples"]]
    start = before[-1]["minutes"] if before else 0.0
    curve = before + [{**h, "samples": h["samples"] + init["samples"], "minutes": h["minutes"] + start}
                      for h in results["history"]]
    return curve, start + results["train_minutes"], [init["checkpoint"], *chain]
