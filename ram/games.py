"""A game (Catch, ``envs.catch``) as the agent plays it: its episodes, loss, evaluation, rival players and pictures.

A game is a glimpse episode whose every step also moves the paddle (the model's ``act_every_step``): the same loop
as a classification's (``ram.episodes.glimpse_rollout``), with no labels and the moves' log-probabilities in place of
the class. Its error is the share of balls missed, so that model selection minimises the same figure on every task.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

import envs  # noqa: F401 - registers the ram/ environments
from envs.catch import N_MOVES, follow_ball
from ram.episodes import batches, forked_rng, glimpse_rollout
from ram.losses import game_loss
from ram.pictures import Picture, check_range

if TYPE_CHECKING:
    from ram.config import Args
    from ram.registry import ModelSpec


class GameEpisode(NamedTuple):
    """A batch of games."""

    locations: Tensor  # (B, T, 2) where each glimpse was taken
    log_pi: Tensor  # (B, T - 1) log-densities of the locations chosen
    b: Tensor  # (B, T) baselines of every step (the last step moves too)
    reward: Tensor  # (B,) what the env paid: 1 for a caught ball
    log_pi_a: Tensor  # (B, T) log-probabilities of the moves
    entropy: Tensor  # (B, T) entropies of the moves' distributions


def make_env(spec: ModelSpec, args: Args, task, split: str, num_envs: int, *, device=None, **kw):
    """The batched game of ``split`` (autoreset off: every batch is one game each); ``kw`` go to the env."""
    return gym.make_vec("ram/Catch-v0", num_envs=num_envs, size=task.canvas_size, glimpse_size=task.glimpse_size,
                        n_scales=task.n_scales, scale=task.scale, split=split, start=args.start,
                        autoreset_mode="DISABLED", **kw)


def play(spec: ModelSpec, model, env, *, greedy: bool, index=None, seed=None, watch=None) -> GameEpisode:
    """One batch of games: a glimpse and a move at every step (``watch``: see ``glimpse_rollout``)."""
    roll, reward, _ = glimpse_rollout(model, env, "paddle", greedy=greedy, index=index, seed=seed, watch=watch)
    return GameEpisode(roll.locations, roll.log_pi, roll.b, reward, roll.log_pi_a, roll.entropy)


def loss(ep: GameEpisode, *, reinforce_weight: float, baseline_weight: float, entropy_weight: float = 0.0,
         gae_lambda: float = 1.0, **_):
    """A game's loss (``ram.losses.game_loss``: REINFORCE alone, no labels to learn from). A classification's
    settings (``**_``) do not apply."""
    # In float32 even when the episode ran under bf16 autocast (a no-op for float32 tensors).
    return game_loss(ep.log_pi.float(), ep.log_pi_a.float(), ep.b.float(), ep.reward, entropy=ep.entropy.float(),
                     entropy_weight=entropy_weight, gae_lambda=gae_lambda, reinforce_weight=reinforce_weight,
                     baseline_weight=baseline_weight)


@torch.no_grad()
def evaluate(spec: ModelSpec, model, env, n: int, *, mc_samples: int = 0, seed: int = 0) -> dict[str, float]:
    """A game on the first n fixed starts of env's split: the share of balls missed and caught, greedy (the most
    probable move, the mean location) and, if mc_samples > 0, sampled (moves and locations drawn, one game per
    start: a game has no class to average over rollouts)."""
    model.eval()
    out = {}
    for name, greedy, offset in (("greedy", True, 0), ("sampled", False, 1))[: 2 if mc_samples > 0 else 1]:
        caught = 0
        with forked_rng(model):  # seeded, and training's RNG stream untouched (as in evaluate)
            torch.manual_seed(seed + offset)
            env.reset(seed=seed + offset)
            for index, count in batches(n, env.num_envs):
                caught += play(spec, model, env, greedy=greedy, index=index).reward[:count].sum().item()
        out[f"{name}_error"] = 100.0 * (n - caught) / n
        out[f"{name}_catch_rate"] = 100.0 * caught / n
    model.train()
    return out


@torch.no_grad()
def watch_games(spec: ModelSpec, model, env, index: np.ndarray, *, seed: int = 0) -> tuple[list[np.ndarray], Tensor]:
    """The greedy agent playing the fixed starts ``index`` (one per sub-env of env, made with
    ``render_mode="rgb_array"``): every step's screens side by side, as RGB frames (T + 1 of them: the start and
    each step, the last one framed green for a caught ball, red for a missed one), and which balls it caught (B,)."""
    from ram.plots import tile

    pictures: list[list[np.ndarray]] = []
    model.eval()
    with forked_rng(model):
        torch.manual_seed(seed)
        env.reset(seed=seed)
        ep = play(spec, model, env, greedy=True, index=index, watch=lambda: pictures.append(env.render()))
    model.train()
    outcome = [(52, 168, 83) if caught else (234, 67, 53) for caught in ep.reward.tolist()]
    return [tile(p) for p in pictures[:-1]] + [tile(pictures[-1], frames=outcome)], ep.reward


def play_baselines(env, n: int, *, seed: int = 0) -> dict[str, float]:
    """Catch rates (%) on the first n fixed starts of env's split of two players without a retina: one that moves
    at random, and one that sees the whole screen and follows the ball (``envs.catch.follow_ball``: the ceiling)."""
    rng = np.random.default_rng(seed)
    B, out = env.num_envs, {}
    look = np.zeros((B, 2), np.float32)
    for name in ("random", "follow"):
        caught = 0
        env.reset(seed=seed)
        for index, count in batches(n, B):
            env.reset(options={"index": index})
            for _ in range(env.task.n_glimpses):
                move = rng.integers(0, N_MOVES, B) if name == "random" else follow_ball(env.unwrapped.games)
                _, reward, *_ = env.step({"location": look, "paddle": move})
            caught += reward[:count].sum()
        out[f"{name}_catch_rate"] = 100.0 * float(caught) / n
    return out


def draw(spec: ModelSpec, model, args: Args, task, split: str, first: int, n: int) -> Picture:
    """The greedy agent playing the fixed starts first..first+n of ``split``: every step of the games side by side."""
    env = make_env(spec, args, task, split, n, render_mode="rgb_array")
    check_range(first, n, env.split_size)
    frames, caught = watch_games(spec, model, env, np.arange(first, first + n), seed=args.seed)
    env.close()
    return Picture("games", lambda i: frames[i - 1], len(frames), duration=250, hold=6,
                   note=f": {int(caught.sum())} of {n} caught")
