"""How a run's weights move: Adam on the cosine schedule (``ram.schedules``), gradient clipping, and the Polyak
average of the weights (``--ema``) that validation selects and the run ships."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from ram.schedules import lr_factor


def optimiser(model: nn.Module, *, lr: float, lr_final: float, lr_warmup: int, total_steps: int, batch: int):
    """Adam and its schedule: the learning rate's cosine from ``lr`` to ``lr * lr_final`` over ``total_steps``, under
    a linear warm-up over ``lr_warmup`` samples (steps of ``batch`` episodes)."""
    # fused: one kernel over all parameters, faster than foreach on these small models (the same update rule)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, fused=True)
    warmup_steps = math.ceil(lr_warmup / batch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, total_steps, lr_final,
                                                                                    warmup_steps))
    return optimizer, scheduler


def average_of(model: nn.Module, ema: float, resumed: dict | None = None) -> nn.Module | None:
    """The Polyak average of ``model``'s weights (None without ``ema``): a copy whose weights trail the trained ones,
    what validation selects and what ships. Adam trains only ``model``: the average has no gradients, ``update``
    moves it in place after every step. Parameters are the whole state: no model here has buffers (no batch norm),
    which a test checks. A resumed run's average is its checkpoint's "model"."""
    if not ema:
        return None
    average = copy.deepcopy(model).requires_grad_(False)
    if resumed is not None:
        average.load_state_dict(resumed["model"])
    return average


def update(loss, model, optimizer, scheduler, average, *, clip_grad: float, ema: float) -> None:
    """One optimiser step on ``loss`` (gradient norm clipped), the schedule's step, and the average's."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip_grad > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
    optimizer.step()
    scheduler.step()
    if average is not None:
        with torch.no_grad():
            for a, p in zip(average.parameters(), model.parameters()):
                a.lerp_(p, 1.0 - ema)
