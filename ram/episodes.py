"""Episodes through the gymnasium environments, for every model, and the error on a fixed split.

A model either reads glimpses (RAM: the env takes one glimpse per step, at the location the policy chose) or the
whole canvas (the soft-attention and no-attention models: one step per episode, see the image, name the digit;
their T attention steps happen inside the model). ``episode`` runs a batch of either kind and returns the same
``Episode``, so the training loop and the evaluation need not know which. The kind is the registry's
(``ram.registry.ModelSpec.reads``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch
from torch import Tensor

if TYPE_CHECKING:
    from ram.config import Args
    from ram.registry import ModelSpec


class Episode(NamedTuple):
    logits: Tensor  # (B, n_classes) of the classifier at the end of the episode
    labels: Tensor  # (B,) the true digits, as the env reports them
    locations: Tensor | None  # (B, T, 2) where each glimpse was taken (glimpse models), else None
    log_pi: Tensor  # (B, T - 1) log-densities of the locations chosen; (B, 0) for whole-canvas models
    b: Tensor  # (B, T - 1) baselines at the steps that chose them; (B, 0) likewise
    reward: Tensor  # (B,) what the env paid: 1 for a correct label


def make_env(spec: ModelSpec, args: Args, task, split: str, num_envs: int):
    """The batched env of ``split`` for the model of ``spec`` (autoreset off: every batch is one episode each)."""
    import gymnasium as gym

    import envs  # noqa: F401 - registers the ram/ environments

    if spec.reads == "glimpses":
        return gym.make_vec("ram/ClutteredMNIST-v0", num_envs=num_envs, task=task, split=split, start=args.start,
                            data_dir=args.data_dir, autoreset_mode="DISABLED")
    return gym.make_vec("ram/ClutteredMNIST-v0", num_envs=num_envs, task=task, split=split, observation="image",
                        n_glimpses=1, data_dir=args.data_dir, autoreset_mode="DISABLED")


def glimpse_episode(model, env, *, greedy: bool, index=None, seed=None) -> Episode:
    """One batch of RAM episodes: the env takes each glimpse; the label is sent at the last step."""
    obs, _ = env.reset(seed=seed, options=None if index is None else {"index": index})
    no_label = np.zeros(env.num_envs, np.int64)  # a label is read at the last step only

    def look(l_t: Tensor) -> tuple[Tensor, Tensor]:
        obs, *_ = env.step({"location": l_t.numpy(), "label": no_label})
        return torch.from_numpy(obs["glimpse"]), torch.from_numpy(obs["location"])

    roll = model.episode(torch.from_numpy(obs["glimpse"]), torch.from_numpy(obs["location"]), look,
                         env.task.n_glimpses, greedy=greedy)
    # Detached: the label sent to the env is an action, not a path for gradients.
    _, reward, terminated, _, infos = env.step({"location": np.zeros((env.num_envs, 2), np.float32),
                                                "label": roll.logits.detach().argmax(-1).numpy()})
    assert terminated.all()
    return Episode(roll.logits, torch.from_numpy(infos["label"]), roll.locations, roll.log_pi, roll.b,
                   torch.from_numpy(reward))


def image_episode(model, env, *, greedy: bool, index=None, seed=None) -> Episode:
    """One batch of one-step episodes for a whole-canvas model (deterministic: ``greedy`` changes nothing)."""
    obs, _ = env.reset(seed=seed, options=None if index is None else {"index": index})
    logits = model(torch.from_numpy(obs["image"])).logits
    # Detached: the label sent to the env is an action, not a path for gradients.
    _, reward, terminated, _, infos = env.step({"location": np.zeros((env.num_envs, 2), np.float32),
                                                "label": logits.detach().argmax(-1).numpy()})
    assert terminated.all()
    none = torch.zeros(env.num_envs, 0)
    return Episode(logits, torch.from_numpy(infos["label"]), None, none, none, torch.from_numpy(reward))


def episode(spec: ModelSpec, model, env, *, greedy: bool, index=None, seed=None) -> Episode:
    """One batch of episodes of the model of ``spec``, whichever kind it is."""
    run = glimpse_episode if spec.reads == "glimpses" else image_episode
    return run(model, env, greedy=greedy, index=index, seed=seed)


@torch.no_grad()
def evaluate(spec: ModelSpec, model, env, n: int, *, mc_samples: int = 0, seed: int = 0) -> dict[str, float]:
    """Error on the first n canvases of env's fixed split: greedy (mean locations, one pass) and, if mc_samples
    (stochastic models only), Monte-Carlo (class probabilities averaged over mc_samples sampled rollouts)."""
    mc_samples = mc_samples if spec.policy else 0
    model.eval()
    greedy_errors = mc_errors = 0
    B = env.num_envs
    batches = [((start + np.arange(B)) % n, min(B, n - start)) for start in range(0, n, B)]
    # Each pass draws from a forked, seeded torch RNG, so its error is reproducible and training's RNG stream is
    # untouched: the greedy pass draws nothing unless the locations are random (the paper's ablation, whose greedy
    # path is one random path); the Monte-Carlo pass draws the policy's noise.
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        env.reset(seed=seed)  # rewinds the fixed split and seeds the random first glimpses
        for index, count in batches:
            out = episode(spec, model, env, greedy=True, index=index)
            greedy_errors += (out.logits.argmax(-1) != out.labels)[:count].sum().item()
    # After the greedy pass, so the greedy error does not depend on mc_samples.
    with torch.random.fork_rng():
        torch.manual_seed(seed + 1)
        env.reset(seed=seed + 1)
        for index, count in batches if mc_samples else []:
            rollouts = [episode(spec, model, env, greedy=False, index=index) for _ in range(mc_samples)]
            probs = sum(r.logits.softmax(-1) for r in rollouts)
            mc_errors += (probs.argmax(-1) != rollouts[0].labels)[:count].sum().item()
    model.train()
    out = {"greedy_error": 100.0 * greedy_errors / n}
    if mc_samples:
        out["mc_error"] = 100.0 * mc_errors / n
    return out
