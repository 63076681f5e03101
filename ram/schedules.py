"""Schedules over a run's steps: the learning rate's factor and the location policy's std, on one cosine."""

from __future__ import annotations

import math


def cosine(step: int, total_steps: int, start: float, end: float) -> float:
    """From ``start`` at step 0 to ``end`` at ``total_steps`` (and after), along half a cosine."""
    return end + (start - end) * 0.5 * (1 + math.cos(math.pi * min(step / total_steps, 1.0)))


def lr_factor(step: int, total_steps: int, lr_final: float, warmup_steps: int = 0) -> float:
    """The factor of the learning rate (for LambdaLR): 1 at the start, ``lr_final`` at the end; with
    ``warmup_steps``, the cosine multiplied by a linear rise over the first steps, (step + 1) / warmup_steps."""
    factor = cosine(step, total_steps, 1.0, lr_final)
    return factor * min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else factor


def policy_std(step: int, total_steps: int, std: float, std_final: float | None) -> float:
    """The policy's std at ``step``: ``std`` throughout, or annealed to ``std_final`` on the learning rate's cosine."""
    return std if std_final is None else cosine(step, total_steps, std, std_final)
