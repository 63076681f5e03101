"""Episodes through the gymnasium environments, for every model, and the error on a fixed split.

A model either reads glimpses (RAM: the env takes one glimpse per step, at the location the policy chose) or the
whole canvas (the soft-attention and no-attention models: one step per episode, see the image, name the digit;
their T attention steps happen inside the model). ``glimpse_rollout`` plays the glimpses of any task kind through
its env; ``classify`` turns either kind of model's batch into the same ``Episode``, so the training loop and the
evaluation need not know which (``ram.registry.ModelSpec.reads``). A game's episode is ``ram.games``'s; which of
the two a task plays is its kind's (``ram.kinds``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

import envs  # noqa: F401 - registers the ram/ environments
from envs.cluttered_mnist import paid
from envs.datasets import Dataset, load_dataset
from envs.device import DeviceCanvases
from envs.mnist import SOURCES, DataError
from envs.tasks import fit
from ram.errors import UsageError
from ram.losses import hybrid_loss

if TYPE_CHECKING:
    from ram.config import Args
    from ram.model import Rollout
    from ram.registry import ModelSpec


class Episode(NamedTuple):
    """A batch of classification episodes."""

    logits: Tensor  # (B, n_classes) of the classifier at the end of the episode
    labels: Tensor  # (B,) the true digits, as the env reports them
    locations: Tensor | None  # (B, T, 2) where each glimpse was taken (glimpse models), else None
    log_pi: Tensor  # (B, T - 1) log-densities of the locations chosen; (B, 0) for whole-canvas models
    b: Tensor  # (B, T - 1) baselines at the steps that chose them; (B, 0) likewise
    reward: Tensor  # (B,) what the env paid: 1 for a correct label
    step_logits: Tensor  # (B, T - 1, n_classes) of the classifier at the glimpses before the last; (B, 0, n) else


def data_of(args: Args, task) -> Dataset:
    """The run's dataset (--dataset, --data-dir; a folder's images of mixed sizes resized to --object-size), checked
    to fit its task. A mistake in the user's data or flags is a UsageError (one line, exit 2); a registered dataset
    that cannot be fetched stays a DataError."""
    try:
        data = load_dataset(args.dataset, data_dir=args.data_dir, object_size=task.object_size)
        fit(task, data)
    except DataError as e:
        if args.dataset in SOURCES:
            raise
        raise UsageError(str(e)) from None
    except ValueError as e:
        raise UsageError(str(e)) from None
    return data


def make_env(spec: ModelSpec, args: Args, task, split: str, num_envs: int, *, device=None, **kw):
    """The batched classification env of ``split`` for the model of ``spec`` (autoreset off: every batch is one
    episode each); ``kw`` go to the env (e.g. ``render_mode``). Training with ``--train-data device`` gets canvases
    made on ``device`` instead (default ``--device``; under torchrun, the rank's GPU): ``envs.device.DeviceCanvases``,
    which ``classify`` plays as the env would."""
    if split == "train" and args.train_data == "device":
        return DeviceCanvases(data_of(args, task), task, num_envs, device or args.device, start=args.start,
                              repeats=args.rollouts)
    if spec.reads == "glimpses":
        # --rollouts K: each training canvas is played K times (K consecutive episodes), for the leave-one-out baseline.
        repeats = args.rollouts if split == "train" else 1
        return gym.make_vec("ram/ClutteredMNIST-v0", num_envs=num_envs, task=task, split=split, start=args.start,
                            dataset=data_of(args, task), autoreset_mode="DISABLED", repeats=repeats, **kw)
    return gym.make_vec("ram/ClutteredMNIST-v0", num_envs=num_envs, task=task, split=split, observation="image",
                        n_glimpses=1, dataset=data_of(args, task), autoreset_mode="DISABLED", **kw)


def device_of(model) -> torch.device:
    """Where the model's parameters are: the env's numpy observations go there, its actions come back."""
    return next(model.parameters()).device


def forked_rng(model):
    """A fork of torch's RNG streams that an evaluation may reseed: the CPU's and, for a model on a GPU, that GPU's."""
    device = device_of(model)
    return torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])


def glimpse_rollout(model, env, action: str, *, greedy: bool, index=None, seed=None,
                    watch=None) -> tuple[Rollout, Tensor, dict]:
    """One batch of RAM episodes in ``env``, whatever its task: the env takes each glimpse, and the model's action
    goes to the env under the key ``action`` (the task kind's: a label at the last step, or a game's move at every
    step, for a model that acts every step). ``watch()``, if given, is called after the reset and after every step
    (e.g. to render). Returns (the model's rollout, the reward the env paid (B,), the env's last infos). With the
    model on a GPU, each step's glimpses are copied there and its actions back (evaluation does this; training there
    uses ``canvas_episode``, with no copy)."""
    obs, _ = env.reset(seed=seed, options=None if index is None else {"index": index})
    device = device_of(model)
    idle = np.zeros(env.num_envs, np.int64)  # the action of a step that acts not (a class is named at the last)
    watch = watch or (lambda: None)
    watch()

    def tensors(obs: dict) -> tuple[Tensor, Tensor]:
        return torch.from_numpy(obs["glimpse"]).to(device), torch.from_numpy(obs["location"]).to(device)

    def look(l_t: Tensor, a_t: Tensor | None) -> tuple[Tensor, Tensor]:
        obs, *_ = env.step({"location": l_t.cpu().numpy(), action: idle if a_t is None else a_t.cpu().numpy()})
        watch()
        return tensors(obs)

    roll = model.episode(*tensors(obs), look, env.task.steps, greedy=greedy, label_steps=env.task.label_steps)
    _, reward, terminated, _, infos = env.step({"location": np.zeros((env.num_envs, 2), np.float32),
                                                action: roll.action.cpu().numpy()})
    watch()
    assert terminated.all()
    return roll, torch.from_numpy(reward).to(device), infos


def image_episode(model, env, *, greedy: bool, index=None, seed=None) -> Episode:
    """One batch of episodes for a whole-canvas model, one step per object (one for one object; the label counts at
    the last: a sum of several), deterministic (``greedy`` changes nothing)."""
    obs, _ = env.reset(seed=seed, options=None if index is None else {"index": index})
    device = device_of(model)
    logits = model(torch.from_numpy(obs["image"]).to(device)).logits
    # Detached: the label sent to the env is an action, not a path for gradients.
    action = {"location": np.zeros((env.num_envs, 2), np.float32), "label": logits.detach().argmax(-1).cpu().numpy()}
    for _ in range(env.task.steps):
        _, reward, terminated, _, infos = env.step(action)
    assert terminated.all()
    none = torch.zeros(env.num_envs, 0, device=device)
    return Episode(logits, torch.from_numpy(infos["label"]).to(device), None, none, none,
                   torch.from_numpy(reward).to(device), logits.new_zeros(env.num_envs, 0, logits.shape[-1]))


def canvas_episode(spec: ModelSpec, model, source, *, greedy: bool) -> Episode:
    """One batch of training episodes on canvases made on the model's device (``envs.device.DeviceCanvases``),
    with no host-device copy: the same episode as the env's (the retina reads the clipped locations the policy
    chose; the reward is 1 for the right class after the last glimpse), played by ``model.rollout`` there."""
    canvases, l_0 = source.take()  # each canvas for K = source.repeats consecutive episodes
    K = source.repeats
    labels = source.task.targets(canvases.labels)[:, 0]  # the class, or a sum of several objects' classes
    labels = labels.repeat_interleave(K) if K > 1 else labels
    if spec.reads == "glimpses":
        roll = model.rollout(canvases.images, l_0, source.retina, source.task.steps, greedy=greedy, repeats=K)
        logits, locations, log_pi, b = roll.logits, roll.locations, roll.log_pi, roll.b
        step_logits = roll.step_logits
    else:
        images = canvases.images.repeat_interleave(K, 0) if K > 1 else canvases.images
        logits = model(images.float() / 255.0).logits  # the env's image observation: pixel / 255
        locations, log_pi = None, logits.new_zeros(len(logits), 0)
        b, step_logits = log_pi, logits.new_zeros(len(logits), 0, logits.shape[-1])
    # The env's reward for the label sent (the argmax): a count, no path for gradients.
    reward = paid(labels, logits.detach().argmax(-1))
    return Episode(logits, labels, locations, log_pi, b, reward, step_logits)


def classify(spec: ModelSpec, model, env, *, greedy: bool, index=None, seed=None, watch=None) -> Episode:
    """One batch of classification episodes of the model of ``spec``, whichever kind it is (``watch``: see
    ``glimpse_rollout``)."""
    if isinstance(env, DeviceCanvases):  # training canvases made on the device
        return canvas_episode(spec, model, env, greedy=greedy)
    if spec.reads == "glimpses":
        roll, reward, infos = glimpse_rollout(model, env, "label", greedy=greedy, index=index, seed=seed, watch=watch)
        labels = torch.from_numpy(infos["label"]).to(reward.device)
        return Episode(roll.logits, labels, roll.locations, roll.log_pi, roll.b, reward, roll.step_logits)
    return image_episode(model, env, greedy=greedy, index=index, seed=seed)


def classification_loss(ep: Episode, *, reinforce_weight: float, baseline_weight: float, credit: str = "env",
                        rollouts: int = 1, glimpse_loss: float = 0.0, **_):
    """The paper's hybrid loss of a batch of classification episodes (``credit``: the return its REINFORCE sees;
    ``rollouts``: episodes per canvas; ``glimpse_loss``: the weight of the cross-entropy at the earlier glimpses; see
    ``ram.losses.hybrid_loss``). A game's settings (``**_``) do not apply."""
    # In float32 even when the episode ran under bf16 autocast (a no-op for float32 tensors).
    return hybrid_loss(ep.logits.float(), ep.labels, ep.log_pi.float(), ep.b.float(), reward=ep.reward,
                       credit=credit, rollouts=rollouts, reinforce_weight=reinforce_weight,
                       baseline_weight=baseline_weight, step_logits=ep.step_logits.float(), glimpse_loss=glimpse_loss)


def batches(n: int, B: int) -> list[tuple[np.ndarray, int]]:
    """The first n episodes of a fixed split in batches of B: (the B indices, wrapping around; how many count)."""
    return [((start + np.arange(B)) % n, min(B, n - start)) for start in range(0, n, B)]


def miscounts(predicted: Tensor, labels: Tensor) -> tuple[int, int, int]:
    """Of predicted and true labels (N, L): the episodes with a label wrong, the labels wrong, and the episodes
    wrong as multisets, in any order (Ba et al.'s pairs task: 55 unordered classes for two digits)."""
    miss = predicted != labels
    unordered = predicted.sort(1).values != labels.sort(1).values
    return int(miss.any(1).sum()), int(miss.sum()), int(unordered.any(1).sum())


@torch.no_grad()
def error_passes(model, env, n: int, play, *, mc_samples: int, seed: int) -> tuple[list[int], list[int]]:
    """The ``miscounts`` on the first n episodes of env's fixed split, summed: greedy (mean locations, one pass) and,
    if mc_samples, Monte-Carlo (each label's probabilities averaged over mc_samples sampled rollouts). ``play(greedy,
    index)`` plays one batch and returns its logits (B, L, C) and labels (B, L)."""
    model.eval()
    greedy, mc = [0, 0, 0], [0, 0, 0]
    split = batches(n, env.num_envs)
    # Each pass draws from a forked, seeded torch RNG, so its error is reproducible and training's RNG stream is
    # untouched: the greedy pass draws nothing unless the locations are random (the paper's ablation, whose greedy
    # path is one random path); the Monte-Carlo pass draws the policy's noise.
    with forked_rng(model):
        torch.manual_seed(seed)
        env.reset(seed=seed)  # rewinds the fixed split and seeds the random first glimpses
        for index, count in split:
            logits, labels = play(True, index)
            greedy = [a + b for a, b in zip(greedy, miscounts(logits.argmax(-1)[:count], labels[:count]))]
    # After the greedy pass, so the greedy error does not depend on mc_samples.
    with forked_rng(model):
        torch.manual_seed(seed + 1)
        env.reset(seed=seed + 1)
        for index, count in split if mc_samples else []:
            rollouts = [play(False, index) for _ in range(mc_samples)]
            probs = sum(logits.softmax(-1) for logits, _ in rollouts)
            mc = [a + b for a, b in zip(mc, miscounts(probs.argmax(-1)[:count], rollouts[0][1][:count]))]
    model.train()
    return greedy, mc


def evaluate(spec: ModelSpec, model, env, n: int, *, mc_samples: int = 0, seed: int = 0) -> dict[str, float]:
    """Error on the first n canvases of env's fixed split: greedy (mean locations, one pass) and, if mc_samples
    (stochastic models only), Monte-Carlo (class probabilities averaged over mc_samples sampled rollouts)."""
    mc_samples = mc_samples if spec.policy else 0

    def play(greedy: bool, index) -> tuple[Tensor, Tensor]:
        ep = classify(spec, model, env, greedy=greedy, index=index)
        return ep.logits[:, None], ep.labels[:, None]  # one label per episode

    greedy, mc = error_passes(model, env, n, play, mc_samples=mc_samples, seed=seed)
    out = {"greedy_error": 100.0 * greedy[0] / n}
    if mc_samples:
        out["mc_error"] = 100.0 * mc[0] / n
    return out
