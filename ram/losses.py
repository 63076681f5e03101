"""The losses that train RAM, apart from the model they train (as Stable-Baselines3 keeps algorithms apart from
policies): the paper's hybrid loss for a class named after the last glimpse, and a game's REINFORCE loss for an
action at every step. The gradient routing inside the model (which ``.detach()`` blocks which loss) is written down
in ``ram.model``; the detaches here keep the return and the baseline from training what they score.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor
from torch.nn import functional as F


class Losses(NamedTuple):
    total: Tensor
    classification: Tensor  # cross-entropy of the final prediction
    reinforce: Tensor  # -E[sum_t log_pi_t (R - b_t)]
    baseline: Tensor  # E[sum_t (b_t - R)^2] / (T - 1)
    reward: Tensor  # (B,) 1 for a correct final prediction
    accuracy: Tensor


REWARDS = ("env", "prob", "log_prob")


def _advantage(G: Tensor, b: Tensor, rollouts: int) -> Tensor:
    """REINFORCE's advantage of the returns G (B, T - 1) (detached: they score the locations) at each step that chose
    a location: G - b with the learned baseline b detached (REINFORCE must not train the Baseline; its regression
    does), or, ``rollouts`` K > 1, G less the mean return of the canvas's other K - 1 rollouts (leave-one-out, step
    by step; the K rollouts of a canvas are consecutive rows): they score its difficulty independently of this
    rollout's locations, so the estimator stays unbiased."""
    if rollouts == 1:
        return G - b.detach()
    group = G.view(G.shape[0] // rollouts, rollouts, G.shape[1])  # sized, not -1: T - 1 may be 0
    return (group - (group.sum(1, keepdim=True) - group) / (rollouts - 1)).reshape_as(G)


def hybrid_loss(logits: Tensor, labels: Tensor, log_pi: Tensor, b: Tensor, *, reward: Tensor | None = None,
                reinforce_weight: float = 1.0, baseline_weight: float = 1.0, credit: str = "env",
                rollouts: int = 1, step_logits: Tensor | None = None, glimpse_loss: float = 0.0) -> Losses:
    """The paper's hybrid loss: supervised cross-entropy + REINFORCE with a learned baseline + its regression.

    logits (B, C), labels (B,), log_pi and b (B, T - 1) over the steps that chose a location; reward (B,) as the
    environment paid it (default: 1 where the argmax of logits is the label, which is what the envs pay).
    ``credit`` is the return R that REINFORCE and the baseline see: "env", the reward paid (the paper); "prob", the
    classifier's probability of the true class, p(y | h_T), a graded 0-to-1 version of it; "log_prob", log p(y | h_T)
    (as Ba et al. 2015 weight their locations). ``Losses.reward`` and ``accuracy`` stay the env's 0/1 either way.
    ``rollouts`` K > 1: the batch is B / K canvases, each played by K consecutive episodes, and REINFORCE's baseline
    for each episode is the mean return of its canvas's other K - 1 (leave-one-out, the same at every step) instead
    of b_t; the Baseline's regression still trains it (a diagnostic then, and the state it reads is detached).
    ``glimpse_loss`` w > 0 adds w times the mean cross-entropy of ``step_logits`` (B, T - 1, C), the classifier at
    the glimpses before the last: every glimpse is asked to say what it has seen so far (``Losses.classification``
    stays the last glimpse's).
    """
    if credit not in REWARDS:
        raise ValueError(f"credit must be one of {REWARDS}, got {credit!r}")
    if rollouts < 1 or len(labels) % rollouts:
        raise ValueError(f"rollouts must be a positive divisor of the batch {len(labels)}, got {rollouts}")
    log_probs = logits.float().log_softmax(-1)
    classification = F.nll_loss(log_probs, labels)  # the cross-entropy
    if reward is None:
        # The reward is a count, not a function of any parameter: no gradient through the argmax.
        reward = (logits.detach().argmax(-1) == labels).float()
    reward = reward.float()
    # Detached: R scores the locations chosen; it must not train the classifier through REINFORCE's weight (the
    # cross-entropy above trains it).
    if credit == "env":
        R = reward
    else:
        log_p = log_probs.detach().gather(1, labels[:, None]).squeeze(1)  # log p(y | h_T)
        R = log_p.exp() if credit == "prob" else log_p
    reinforce = -(log_pi * _advantage(R[:, None].expand_as(log_pi), b, rollouts)).sum(1).mean()
    baseline = F.mse_loss(b, R[:, None].expand_as(b)) if b.numel() else b.sum()
    total = classification + reinforce_weight * reinforce + baseline_weight * baseline
    if glimpse_loss and step_logits is not None and step_logits.shape[1]:
        T1 = step_logits.shape[1]
        earlier = F.cross_entropy(step_logits.reshape(-1, step_logits.shape[-1]), labels.repeat_interleave(T1))
        total = total + glimpse_loss * earlier
    return Losses(total, classification, reinforce, baseline, reward, reward.mean())


def sequence_loss(logits: Tensor, labels: Tensor, log_pi: Tensor, b: Tensor, label_steps: tuple[int, ...], *,
                  reinforce_weight: float = 1.0, baseline_weight: float = 1.0, credit: str = "env",
                  rollouts: int = 1, first_wrong: bool = True) -> Losses:
    """The loss of a sequence of L labels (several objects read in order, Ba et al. 2015): the cross-entropy of each
    label, REINFORCE for the locations paid 1 per right label (``credit`` "prob": p(y_k), "log_prob": log p(y_k)),
    with a learned baseline (or, ``rollouts`` K > 1, the leave-one-out mean of the canvas's other rollouts), and the
    paper's rule: the episode counts **up to the first wrong label**. A label after a wrong one adds no
    cross-entropy and pays nothing; a location chosen after a wrong label gets no REINFORCE gradient and its
    baseline no regression.

    logits (B, L, C) and labels (B, L) at the label steps ``label_steps`` (L, 1-based, increasing); log_pi and b
    (B, T - 1) of the locations chosen at steps 1..T-1. The location chosen at step s is paid the labels named after
    it, at steps > s (its return to go). ``Losses.reward`` is 1 where the whole sequence is right. ``first_wrong``
    False: every label's cross-entropy counts (a model that sees the whole canvas names all labels at once, and has
    no locations: log_pi and b (B, 0)).
    """
    if credit not in REWARDS:
        raise ValueError(f"credit must be one of {REWARDS}, got {credit!r}")
    if credit == "log_prob" and first_wrong:
        # log p <= 0: cutting the return at the first wrong label would pay a mistake more than later right labels.
        raise ValueError("credit log_prob pays every label a negative amount: it cannot be cut at the first wrong one")
    B, L = labels.shape
    if rollouts < 1 or B % rollouts:
        raise ValueError(f"rollouts must be a positive divisor of the batch {B}, got {rollouts}")
    if len(label_steps) != L:
        raise ValueError(f"{len(label_steps)} label steps for {L} labels")
    log_p = logits.float().log_softmax(-1).gather(-1, labels[..., None]).squeeze(-1)  # (B, L): log p(y_k)
    # A count, not a function of any parameter: no gradient through the argmax.
    correct = (logits.detach().argmax(-1) == labels).float()
    # Label k counts while labels 1..k-1 were right: the first wrong one counts (its mistake is what to learn).
    counted = torch.cat([correct.new_ones(B, 1), correct.cumprod(1)[:, :-1]], 1)
    if not first_wrong:
        counted = torch.ones_like(correct)
    classification = -(counted * log_p).sum(1).mean()
    # Detached: the return scores the locations; it must not train the classifier through REINFORCE's weight.
    paid = {"env": correct, "prob": log_p.detach().exp(), "log_prob": log_p.detach()}[credit] * counted
    at = torch.as_tensor(label_steps, device=labels.device)
    s = torch.arange(1, log_pi.shape[1] + 1, device=labels.device)  # the steps that chose a location
    G = paid @ (at[None, :] > s[:, None]).float().T  # (B, T - 1): the labels named after step s
    # A location chosen once a label named at or before its step was wrong leads to nothing paid: no gradient.
    live = ((1 - correct) @ (at[None, :] <= s[:, None]).float().T == 0).float()
    reinforce = -(live * log_pi * _advantage(G, b, rollouts)).sum(1).mean()
    baseline = ((b - G) ** 2 * live).sum() / live.sum().clamp(min=1)
    total = classification + reinforce_weight * reinforce + baseline_weight * baseline
    reward = correct.prod(1)
    return Losses(total, classification, reinforce, baseline, reward, reward.mean())


def lambda_advantage(b: Tensor, reward: Tensor, gae_lambda: float = 1.0) -> Tensor:
    """Advantages (B, T) of the T steps of an episode paid ``reward`` (B,) at its end, from the baselines b (B, T) of
    its steps: sum_k lambda^k delta_{t+k}, delta_t = b_{t+1} - b_t and delta_T = R - b_T (Schulman et al.'s GAE
    without discount). lambda = 1 telescopes to R - b_t, REINFORCE with a baseline; lambda < 1 trusts the baseline's
    prediction of the next steps, for less variance and some bias."""
    if gae_lambda == 1.0:
        return reward[:, None] - b  # the same sum, without its rounding
    delta = torch.cat([b[:, 1:], reward[:, None]], 1) - b
    advantage, running = torch.empty_like(delta), torch.zeros_like(reward)
    for t in range(delta.shape[1] - 1, -1, -1):
        running = delta[:, t] + gae_lambda * running
        advantage[:, t] = running
    return advantage


def game_loss(log_pi: Tensor, log_pi_a: Tensor, b: Tensor, reward: Tensor, *, entropy: Tensor | None = None,
              reinforce_weight: float = 1.0, baseline_weight: float = 1.0, entropy_weight: float = 0.0,
              gae_lambda: float = 1.0) -> Losses:
    """A game's loss (Catch): REINFORCE with a learned baseline for the locations and the game actions together, the
    baseline's regression and, if ``entropy_weight``, a bonus on the actions' entropy; no supervised term
    (``classification`` is 0).

    log_pi (B, T - 1) of the locations chosen at steps 1..T-1, log_pi_a (B, T) of the actions of steps 1..T, b (B, T)
    the baselines of steps 1..T, reward (B,) the episode's, entropy (B, T) of each step's action distribution. Both
    choices of step t share its advantage: R - b_t (``gae_lambda`` 1), or ``lambda_advantage``'s.
    """
    reward = reward.float()
    # Detached baseline: the REINFORCE term must not train the Baseline (its own regression does).
    advantage = lambda_advantage(b.detach(), reward, gae_lambda)
    # The last step chooses no location: its log-density is 0.
    log_pi = F.pad(log_pi, (0, log_pi_a.shape[1] - log_pi.shape[1]))
    reinforce = -((log_pi + log_pi_a) * advantage).sum(1).mean()
    baseline = F.mse_loss(b, reward[:, None].expand_as(b))
    total = reinforce_weight * reinforce + baseline_weight * baseline
    if entropy_weight:
        # Summed over the steps like the REINFORCE term: it trains what the actions' REINFORCE trains.
        total = total - entropy_weight * entropy.sum(1).mean()
    return Losses(total, total.new_zeros(()), reinforce, baseline, reward, reward.mean())
