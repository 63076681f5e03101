"""Catch, the game of Mnih et al. (2014, section 4.2), seen through the retina: a single env and a native vector env.

A ball falls from the top row of a square binary screen, one row a step, moving a column left or right or straight
down, and bounces off the side walls; a 2-pixel paddle on the bottom row moves left, stays or moves right. The
episode ends when the ball reaches the bottom row: reward 1 if the paddle is under it, else 0. The paper gives the
screen, the paddle's width, the retina and the reward; where it is silent this module takes the common reading: the
ball's three directions (-1, 0, +1 column a row, drawn at the start), reflection off the walls, the paddle's start at
a uniformly random column, and in each step the paddle's move before the ball's fall. The agent never sees
the screen whole: each step it receives one glimpse of the retina where it chose to look, and it chooses where to
look next and how to move the paddle.

Fixed splits, as for the canvases of ``envs.tasks``: ``train`` draws fresh games from the env's ``np_random``;
``val`` (5,000 games) and ``test`` (10,000) are fixed starting states (ball column, its direction, paddle column)
drawn from the PCG64 bit stream of a seed derived from ``PUBLISHED_SEED``, the split and the screen size, so they
are the same on every machine and run. The game itself is deterministic: a fixed start and the agent's actions
decide an episode. The screen has few starts (24 columns x 3 directions x 23 paddle columns = 1,656 on 24 x 24
pixels), so the sets repeat starts and share them with training: they measure a policy, not generalisation.
"""

from __future__ import annotations

import zlib
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode

from envs.cluttered_mnist import STARTS, check_location, uniform_locations
from envs.retina import Retina, integral_image
from envs.tasks import GAMES, PUBLISHED_SEED, Task, integers
from envs.vector import BatchedVectorEnv

PADDLE = 2  # the paddle's width in pixels
MOVES = np.array([-1, 0, 1])  # the game actions: 0 left, 1 stay, 2 right (the paddle's step in columns)
N_MOVES = len(MOVES)
SPLIT_SIZES = {"val": 5000, "test": 10000}
SPLITS = ("train", *SPLIT_SIZES)


def catch_task(size: int = 24, *, glimpse_size: int = 6, n_scales: int = 3, scale: int = 2) -> Task:
    """The task of a game on a ``size``-pixel screen: ``size - 1`` steps, the retina's sizes."""
    return GAMES["catch"].with_(canvas_size=size, n_glimpses=size - 1, glimpse_size=glimpse_size, n_scales=n_scales,
                                scale=scale)


def draw_starts(bitgen: np.random.BitGenerator, size: int, n: int) -> np.ndarray:
    """n starting states (n, 3) int64, columns (ball x, ball direction -1/0/1, paddle x of its left pixel), from the
    raw 64-bit stream (stable across numpy versions)."""
    ball = integers(bitgen, size, n)
    direction = integers(bitgen, 3, n) - 1
    paddle = integers(bitgen, size - PADDLE + 1, n)
    return np.stack([ball, direction, paddle], 1)


def fixed_starts(split: str, size: int) -> np.ndarray:
    """The starting states of the fixed split ``val`` or ``test`` on a ``size``-pixel screen."""
    if split not in SPLIT_SIZES:
        raise ValueError(f"only val and test are fixed sets, got {split!r}")
    seed = np.random.SeedSequence([PUBLISHED_SEED, zlib.crc32(f"catch:{split}:{size}".encode())])
    return draw_starts(np.random.PCG64(seed), size, SPLIT_SIZES[split])


def fall(x: np.ndarray, dx: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The ball's next column and direction: one column along dx, reflected off the walls at 0 and size - 1."""
    x = x + dx
    low, high = x < 0, x > size - 1
    x = np.where(low, -x, np.where(high, 2 * (size - 1) - x, x))
    return x, np.where(low | high, -dx, dx)


def check_paddle(paddle: Any, n: int) -> np.ndarray:
    paddle = np.asarray(paddle)
    if paddle.size != n or not np.issubdtype(paddle.dtype, np.integer) or ((paddle < 0) | (paddle >= N_MOVES)).any():
        raise ValueError(f"action 'paddle' must be {n} integer(s) in 0..{N_MOVES - 1} (left, stay, right), "
                         f"got {paddle.tolist()}")
    return paddle.reshape(n).astype(np.int64)


class _Games:
    """The batched state of n games (ball, its direction, paddle, where the agent looks, steps taken): the shared
    mechanics of the single and the vector env, so the two cannot drift apart."""

    def __init__(self, *, task: Task, split: str, start: str, n: int):
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        if start not in STARTS:
            raise ValueError(f"start must be one of {STARTS}, got {start!r}")
        self.task, self.split, self.start, self.n = task, split, start, n
        self.size = task.canvas_size
        self.retina = Retina(g=task.glimpse_size, k=task.n_scales, s=task.scale)
        self.ball = np.zeros((n, 2), np.int64)  # (x, y): column and row
        self.direction = np.zeros(n, np.int64)
        self.paddle = np.zeros(n, np.int64)  # column of the paddle's left pixel
        self.location = np.zeros((n, 2), np.float32)
        self.path = np.zeros((n, task.n_glimpses, 2), np.float32)  # locations glimpsed so far
        self.t = np.zeros(n, np.int64)  # glimpses taken in the current episode
        self.index = np.full(n, -1, np.int64)  # game index in a fixed split, -1 for train
        self.cursor = 0
        self.starts = fixed_starts(split, self.size) if split != "train" else None

    @property
    def split_size(self) -> int | None:
        """Number of games in the fixed split, None for train (endless)."""
        return None if self.starts is None else len(self.starts)

    def spaces(self) -> tuple[spaces.Dict, spaces.Dict]:
        obs = spaces.Dict({
            "glimpse": spaces.Box(0.0, 1.0, self.retina.shape, np.float32),
            "location": spaces.Box(-1.0, 1.0, (2,), np.float32),
        })
        act = spaces.Dict({
            "location": spaces.Box(-1.0, 1.0, (2,), np.float32),
            "paddle": spaces.Discrete(N_MOVES),
        })
        return obs, act

    def new(self, rows: np.ndarray, bitgen: np.random.BitGenerator, index: np.ndarray | None = None) -> None:
        """Start games in ``rows``: fresh ones on train, the next fixed ones (or ``index``) on val/test. ``bitgen``
        draws the fresh games and the first glimpses."""
        if self.starts is None:
            if index is not None:
                raise ValueError("option 'index' only applies to the fixed splits val and test")
            starts = draw_starts(bitgen, self.size, len(rows))
            self.index[rows] = -1
        else:
            size = len(self.starts)
            if index is None:
                index = (self.cursor + np.arange(len(rows))) % size
                self.cursor = int((self.cursor + len(rows)) % size)
            index = np.asarray(index, np.int64).reshape(len(rows))
            if ((index < 0) | (index >= size)).any():
                raise ValueError(f"option 'index' must be in 0..{size - 1}, got {index.tolist()}")
            starts = self.starts[index]
            self.index[rows] = index
        self.ball[rows, 0], self.ball[rows, 1] = starts[:, 0], 0
        self.direction[rows], self.paddle[rows] = starts[:, 1], starts[:, 2]
        self.location[rows] = uniform_locations(bitgen, len(rows)) if self.start == "random" else 0.0
        self.t[rows] = 1
        self.path[rows] = 0.0
        self.path[rows, 0] = self.location[rows]

    def screens(self) -> np.ndarray:
        """The screens (n, size, size) uint8: 255 at the ball and the paddle, 0 elsewhere."""
        n, size = self.n, self.size
        screen = np.zeros((n, size, size), np.uint8)
        rows = np.arange(n)
        screen[rows, size - 1, self.paddle] = 255
        screen[rows, size - 1, self.paddle + 1] = 255
        screen[rows, self.ball[:, 1], self.ball[:, 0]] = 255
        return screen

    def observe(self) -> dict[str, np.ndarray]:
        S = integral_image(torch.from_numpy(self.screens()))
        glimpse = self.retina.read(S, torch.from_numpy(self.location)).numpy()
        return {"glimpse": glimpse, "location": self.location.copy()}

    def act(self, rows: np.ndarray, location: np.ndarray, paddle: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Apply actions to ``rows``: move the paddle, let the ball fall a row, look at ``location``. Returns (reward,
        terminated): 1 where the ball reached the bottom row above the paddle."""
        self.paddle[rows] = np.clip(self.paddle[rows] + MOVES[paddle], 0, self.size - PADDLE)
        self.ball[rows, 0], self.direction[rows] = fall(self.ball[rows, 0], self.direction[rows], self.size)
        self.ball[rows, 1] += 1
        terminated = self.ball[rows, 1] >= self.size - 1
        x, p = self.ball[rows, 0], self.paddle[rows]
        reward = (terminated & (p <= x) & (x < p + PADDLE)).astype(np.float32)
        going = rows[~terminated]
        self.location[going] = location[~terminated]  # an ended game takes no further glimpse
        self.path[going, self.t[going]] = location[~terminated]
        self.t[rows] += 1
        return reward, terminated

    def render(self) -> list[np.ndarray]:
        """Every game's screen with its latest glimpse's boxes, as RGB arrays."""
        from envs.render import draw_glimpses

        t = np.minimum(self.t, self.task.n_glimpses)
        return [draw_glimpses(screen, self.path[i, t[i] - 1 : t[i]], self.retina, centres=False)
                for i, screen in enumerate(self.screens())]


def follow_ball(games: _Games) -> np.ndarray:
    """The game action of a player that sees the whole screen and moves the paddle under the ball's next column:
    the ceiling the agent is measured against (``ram.games.play_baselines``)."""
    target, _ = fall(games.ball[:, 0], games.direction, games.size)
    return np.where(target < games.paddle, 0, np.where(target > games.paddle + PADDLE - 1, 2, 1))


_DOC = """
    ## Description
    The game of Catch of Mnih et al. (2014), played through a multi-resolution retina. A ball falls from the top
    row of a ``size`` x ``size`` binary screen, one row a step, moving one column left, right or straight down (its
    direction drawn at the start) and bouncing off the side walls; a 2-pixel paddle on the bottom row is the
    player's. The agent sees one glimpse a step, where it chose to look.

    ## Action Space
    ``Dict(location=Box(-1, 1, (2,), float32), paddle=Discrete(3))``: where to take the next glimpse ((x, y),
    (-1, -1) top-left, see ``envs.retina``) and the paddle's move: 0 left, 1 stay, 2 right (a move into a wall
    stays). Locations outside [-1, 1] are clipped; NaN, a wrong shape or a move outside 0..2 raises ValueError.

    ## Observation Space
    ``Dict(glimpse=Box(0, 1, (k, g, g), float32), location=Box(-1, 1, (2,)))``: the retina's reading of the screen
    and where it was taken (default 3 scales of 6 x 6, the paper's).

    ## Rewards
    1 at the last step if the paddle is under the ball (the ball's column is one of the paddle's two), else 0; 0 at
    every other step.

    ## Starting State
    The ball on the top row at a uniformly random column with a uniformly random direction (-1, 0, 1), the paddle
    at a uniformly random column (fresh on ``split="train"``, the next fixed start on ``val``/``test``), and the
    first glimpse at a uniformly random location (``start="random"``) or the centre (``start="center"``).

    ## Episode End
    ``terminated`` when the ball reaches the bottom row: after ``size - 1`` steps, always. ``info["caught"]`` is set
    at that step. Never truncated.

    ## Arguments
    ``size`` (screen side, default 24), ``glimpse_size`` (6), ``n_scales`` (3), ``scale`` (2), ``split`` ("train",
    "val", "test"), ``start`` ("random" or "center"), ``render_mode`` ("rgb_array"). ``reset(options={"index": i})``
    plays start i of a fixed split; ``reset(seed=...)`` on a fixed split also rewinds it to start 0.

    ## Version History
    * v0: initial version.
"""


class CatchEnv(gym.Env):
    __doc__ = _DOC
    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(self, size: int = 24, *, glimpse_size: int = 6, n_scales: int = 3, scale: int = 2,
                 split: str = "train", start: str = "random", render_mode: str | None = None):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.render_mode = render_mode
        self.task = catch_task(size, glimpse_size=glimpse_size, n_scales=n_scales, scale=scale)
        self._games = _Games(task=self.task, split=split, start=start, n=1)
        self.split_size = self._games.split_size
        self.retina = self._games.retina
        self.observation_space, self.action_space = self._games.spaces()
        self._rows = np.zeros(1, np.int64)

    def _obs(self) -> dict[str, np.ndarray]:
        return {k: v[0] for k, v in self._games.observe().items()}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._games.cursor = 0
        index = None if not options or "index" not in options else [options["index"]]
        self._games.new(self._rows, self.np_random.bit_generator, index)
        return self._obs(), {}

    def step(self, action: dict):
        g = self._games
        if g.t[0] == 0:
            raise RuntimeError("call reset() before step()")
        if g.t[0] > self.task.n_glimpses:
            raise RuntimeError("the episode has ended: call reset()")
        reward, terminated = g.act(self._rows, check_location(action["location"], 1), check_paddle(action["paddle"], 1))
        info = {"caught": bool(reward[0] > 0)} if terminated[0] else {}
        return self._obs(), float(reward[0]), bool(terminated[0]), False, info

    def render(self):
        return self._games.render()[0] if self.render_mode == "rgb_array" else None


class CatchVectorEnv(BatchedVectorEnv):
    """``num_envs`` games of ``CatchEnv`` stepped as one batch (one retina call per step).

    Same arguments, spaces per sub-env, rewards and infos as the single env; infos follow the vector convention
    (``infos["caught"]`` with mask ``infos["_caught"]``). All games last exactly ``size - 1`` steps, so sub-envs
    start and end together. Autoreset (``autoreset_mode``): ``NEXT_STEP`` (default), ``SAME_STEP`` or ``DISABLED``,
    as ``envs.vector.BatchedVectorEnv`` describes. On ``val``/``test`` the sub-envs take consecutive fixed starts.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4, "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int = 1, size: int = 24, *, glimpse_size: int = 6, n_scales: int = 3,
                 scale: int = 2, split: str = "train", start: str = "random", render_mode: str | None = None,
                 autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP):
        num_envs = self.check_num_envs(num_envs)
        task = catch_task(size, glimpse_size=glimpse_size, n_scales=n_scales, scale=scale)
        self._games = _Games(task=task, split=split, start=start, n=num_envs)
        self._setup(self._games, num_envs, render_mode, autoreset_mode)

    @property
    def games(self) -> _Games:
        """The games' state (read it, e.g. for ``follow_ball``; do not change it)."""
        return self._games

    def _rewind(self) -> None:
        self._games.cursor = 0

    def _actions(self, actions: dict) -> tuple[np.ndarray, ...]:
        return check_location(actions["location"], self.num_envs), check_paddle(actions["paddle"], self.num_envs)

    def _infos(self, terminated: np.ndarray, reward: np.ndarray) -> dict:
        return {"caught": terminated & (reward > 0), "_caught": terminated.copy()}

    def get_rng_state(self) -> dict:
        """The random state of the env: what ``set_rng_state`` needs to continue exactly, e.g. to resume training."""
        return {"np_random": self.np_random.bit_generator.state}

    def set_rng_state(self, state: dict) -> None:
        self.np_random.bit_generator.state = state["np_random"]

    def render(self):
        return self._games.render() if self.render_mode == "rgb_array" else None
