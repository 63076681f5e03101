"""Wrappers that let standard RL libraries drive the ram/ environments.

Every ram/ env acts on a ``Dict`` of a continuous ``location`` (where to look next) and one discrete action (the
``label`` of a classification, the ``paddle`` move of a game). Stable-Baselines3 and most libraries take ``Box``,
``Discrete``, ``MultiDiscrete`` or ``MultiBinary`` actions, not a ``Dict``, and gymnasium ships no wrapper that
flattens one. ``FlattenActions`` does, in one of two ways:

- ``"grid"`` (the default): ``MultiDiscrete([G, G, n])``: the location as the centre of one of G x G equal cells of
  [-1, 1]^2 (column, then row), then the discrete action;
- ``"box"``: ``Box(-1, 1, (2 + n,))``: the location (x, y) itself, then n scores whose argmax is the discrete action.

Observations are unchanged (a one-level ``Dict``: Stable-Baselines3's ``MultiInputPolicy`` reads it).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

MODES = ("grid", "box")


def flat_space(space: spaces.Dict, *, mode: str = "grid", grid: int = 8) -> tuple[str, spaces.Space]:
    """The name of the discrete action of a ram/ env's ``Dict`` action space and the flat space that stands for it;
    raises ValueError for anything else."""
    others = [k for k in getattr(space, "spaces", {}) if k != "location"]
    if not isinstance(space, spaces.Dict) or "location" not in space.spaces or len(others) != 1:
        raise ValueError(f"FlattenActions takes a Dict of 'location' and one discrete action, got {space}")
    key = others[0]
    if not isinstance(space[key], spaces.Discrete):
        raise ValueError(f"the action {key!r} must be Discrete, got {space[key]}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if grid < 1:
        raise ValueError(f"grid must be >= 1, got {grid}")
    n = int(space[key].n)
    if mode == "grid":
        return key, spaces.MultiDiscrete([grid, grid, n])
    return key, spaces.Box(-1.0, 1.0, (2 + n,), np.float32)


def unflatten(action, key: str, *, mode: str = "grid", grid: int = 8) -> dict:
    """The ``Dict`` action that a flat action (``(d,)``, or ``(B, d)`` for a batch) stands for: ``location``
    float32 ``(..., 2)`` and ``key`` int64 (a Python int for one action)."""
    a = np.asarray(action)
    if mode == "grid":
        location = (2.0 * a[..., :2] + 1.0) / grid - 1.0  # the centres of the cells
        choice = a[..., 2].astype(np.int64)
    else:
        location = np.clip(a[..., :2], -1.0, 1.0)
        choice = np.argmax(a[..., 2:], axis=-1)
    return {"location": location.astype(np.float32), key: int(choice) if a.ndim == 1 else choice}


class FlattenActions(gym.ActionWrapper, gym.utils.RecordConstructorArgs):
    """A ram/ env whose ``Dict`` action is one ``MultiDiscrete`` (``mode="grid"``, ``grid`` cells a side) or one
    ``Box`` (``mode="box"``); see the module's docstring."""

    def __init__(self, env: gym.Env, *, mode: str = "grid", grid: int = 8):
        gym.utils.RecordConstructorArgs.__init__(self, mode=mode, grid=grid)  # so that its spec can rebuild it
        gym.ActionWrapper.__init__(self, env)
        self.key, self.action_space = flat_space(env.action_space, mode=mode, grid=grid)
        self.mode, self.grid = mode, grid

    def action(self, action) -> dict:
        return unflatten(action, self.key, mode=self.mode, grid=self.grid)
