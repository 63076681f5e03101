"""A task of several objects read in order (kind ``sequence``: ``pairs100``, after Ba, Mnih and Kavukcuoglu 2015):
its episode names one label after each object's glimpses, in reading order. Its episodes, its loss (the paper's:
a 0/1 reward per right label, counted up to the first wrong one: ``ram.losses.sequence_loss``), its evaluation (the
sequence error, any label wrong, and the per-object error, greedy and Monte-Carlo); its pictures are the
classifiers' (``ram.pictures.draw_canvases``: a glimpse model's glimpses in a colour per object, titles in reading
order). The sum of several objects (kind ``sum``) names one label: it is played as a classification
(``ram.episodes``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch
from torch import Tensor

from ram.episodes import device_of, error_passes, glimpse_rollout
from ram.losses import sequence_loss

if TYPE_CHECKING:
    from ram.registry import ModelSpec


class Sequence(NamedTuple):
    """A batch of episodes that name L labels each."""

    logits: Tensor  # (B, L, n_classes) of the classifier at the label steps
    labels: Tensor  # (B, L) the objects' classes in reading order, as the env reports them
    locations: Tensor | None  # (B, T, 2) where each glimpse was taken; None for a whole-canvas model
    log_pi: Tensor  # (B, T - 1) log-densities of the locations chosen; (B, 0) for a whole-canvas model
    b: Tensor  # (B, T - 1) baselines at the steps that chose them; (B, 0) likewise
    label_steps: tuple[int, ...]  # the steps (1-based) that named the labels


def play(spec: ModelSpec, model, env, *, greedy: bool, index=None, seed=None, watch=None) -> Sequence:
    """One batch of episodes: a glimpse model names a label after each object's glimpses; a whole-canvas model
    names them all from one look (``image_play``). The env scores each label."""
    if spec.reads != "glimpses":
        return image_play(model, env, index=index, seed=seed)
    roll, reward, infos = glimpse_rollout(model, env, "label", greedy=greedy, index=index, seed=seed, watch=watch)
    labels = torch.from_numpy(infos["labels"]).to(reward.device)
    return Sequence(roll.label_logits, labels, roll.locations, roll.log_pi, roll.b, env.task.label_steps)


def image_play(model, env, *, index=None, seed=None) -> Sequence:
    """A whole-canvas model's batch: its output (B, L n) is L heads of n classes, one per object in reading order;
    its env episode (one step per object) takes label k at step k."""
    obs, _ = env.reset(seed=seed, options=None if index is None else {"index": index})
    logits = model(torch.from_numpy(obs["image"]).to(device_of(model))).logits
    B, L = len(logits), len(env.task.label_steps)
    logits = logits.view(B, L, -1)
    # Detached: the labels sent to the env are actions, not a path for gradients.
    named = logits.detach().argmax(-1).cpu().numpy()
    zeros = np.zeros((B, 2), np.float32)
    for k in range(env.task.steps):  # one glimpse per object: step k names object k
        _, _, terminated, _, infos = env.step({"location": zeros, "label": named[:, k]})
    assert terminated.all()
    none = logits.new_zeros(B, 0)
    return Sequence(logits, torch.from_numpy(infos["labels"]).to(logits.device), None, none, none,
                    env.task.label_steps)


def loss(ep: Sequence, *, reinforce_weight: float, baseline_weight: float, credit: str = "env", rollouts: int = 1,
         **_):
    """``ram.losses.sequence_loss`` of a batch (in float32 even when it ran under bf16 autocast): up to the first
    wrong label for a model that reads in order; every label for one that sees the whole canvas."""
    return sequence_loss(ep.logits.float(), ep.labels, ep.log_pi.float(), ep.b.float(), ep.label_steps,
                         reinforce_weight=reinforce_weight, baseline_weight=baseline_weight, credit=credit,
                         rollouts=rollouts, first_wrong=ep.locations is not None)


def evaluate(spec: ModelSpec, model, env, n: int, *, mc_samples: int = 0, seed: int = 0) -> dict[str, float]:
    """Errors (%) on the first n canvases of env's fixed split (``ram.episodes.error_passes``): ``greedy_error``
    (= ``sequence_error``: any label wrong; what validation selects on) and ``object_error`` (wrong labels among
    all), with the policy's mean locations; ``unordered_error``, the labels right as a set in any order (the paper's
    pairs task); ``mc_error``, ``mc_object_error`` and ``mc_unordered_error`` with each label's probabilities
    averaged over mc_samples sampled rollouts (models with a location policy)."""
    mc_samples = mc_samples if spec.policy else 0

    def play_batch(greedy: bool, index) -> tuple[Tensor, Tensor]:
        ep = play(spec, model, env, greedy=greedy, index=index)
        return ep.logits, ep.labels

    greedy, mc = error_passes(model, env, n, play_batch, mc_samples=mc_samples, seed=seed)
    L = len(env.task.label_steps)
    out = {"greedy_error": 100.0 * greedy[0] / n, "sequence_error": 100.0 * greedy[0] / n,
           "object_error": 100.0 * greedy[1] / (n * L), "unordered_error": 100.0 * greedy[2] / n}
    if mc_samples:
        out.update(mc_error=100.0 * mc[0] / n, mc_object_error=100.0 * mc[1] / (n * L),
                   mc_unordered_error=100.0 * mc[2] / n)
    return out

