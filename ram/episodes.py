"""Episodes through the gymnasium environments, for every model, and the error on a fixed split.

A model either reads glimpses (RAM: the env takes one glimpse per step, at the location the policy chose) or the
whole canvas (the soft-attention and no-attention models: one step per episode, see the image, name the digit;
their T attention steps happen inside the model). ``episode`` runs a batch of either kind and returns the same
``Episode``, so the training loop and the evaluation need not know which. The kind is the registry's
(``ram.registry.ModelSpec.reads``).

A game (Catch, ``envs.catch``) is a glimpse episode whose every step also moves the paddle: the same loop, the same
``Episode`` (with no labels and the game actions' log-probabilities), and ``loss`` picks the game's loss for it. Its
error is the share of balls missed, so that model selection minimises the same figure on every task.
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
    b: Tensor  # (B, T - 1) baselines at the steps that chose them ((B, T) in a game); (B, 0) likewise
    reward: Tensor  # (B,) what the env paid: 1 for a correct label (or a caught ball)
    log_pi_a: Tensor | None = None  # (B, T) log-probabilities of a game's actions; None when classifying
    entropy: Tensor | None = None  # (B, T) entropies of a game's action distributions; None when classifying


def make_env(spec: ModelSpec, args: Args, task, split: str, num_envs: int, *, device=None, **kw):
    """The batched env of ``split`` for the model of ``spec`` (autoreset off: every batch is one episode each);
    ``kw`` go to the env (e.g. ``render_mode``). Training with ``--train-data device`` gets canvases made on
    ``device`` instead (default ``--device``; under torchrun, the rank's GPU): ``envs.device.DeviceCanvases``, which
    ``episode`` plays as the env would."""
    import gymnasium as gym

    import envs  # noqa: F401 - registers the ram/ environments

    if split == "train" and args.train_data == "device":
        from envs import load_mnist
        from envs.device import DeviceCanvases

        return DeviceCanvases(load_mnist(args.data_dir), task, num_envs, device or args.device, start=args.start,
                              repeats=args.rollouts)

    if task.kind == "catch":
        return gym.make_vec("ram/Catch-v0", num_envs=num_envs, size=task.canvas_size, glimpse_size=task.glimpse_size,
                            n_scales=task.n_scales, scale=task.scale, split=split, start=args.start,
                            autoreset_mode="DISABLED", **kw)
    if spec.reads == "glimpses":
        # --rollouts K: each training canvas is played K times (K consecutive episodes), for the leave-one-out baseline.
        repeats = args.rollouts if split == "train" else 1
        return gym.make_vec("ram/ClutteredMNIST-v0", num_envs=num_envs, task=task, split=split, start=args.start,
                            data_dir=args.data_dir, autoreset_mode="DISABLED", repeats=repeats, **kw)
    return gym.make_vec("ram/ClutteredMNIST-v0", num_envs=num_envs, task=task, split=split, observation="image",
                        n_glimpses=1, data_dir=args.data_dir, autoreset_mode="DISABLED", **kw)


def is_game(env) -> bool:
    """Whether env is a game (its actions move a paddle at every step) rather than a classification."""
    return env.task.kind == "catch"


def n_actions(env) -> int:
    """The size of the action network's output: the game's moves, or the classes."""
    return int(env.single_action_space["paddle" if is_game(env) else "label"].n)


def device_of(model) -> torch.device:
    """Where the model's parameters are: the env's numpy observations go there, its actions come back."""
    return next(model.parameters()).device


def forked_rng(model):
    """A fork of torch's RNG streams that an evaluation may reseed: the CPU's and, for a model on a GPU, that GPU's."""
    device = device_of(model)
    return torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])


def glimpse_episode(model, env, *, greedy: bool, index=None, seed=None, watch=None) -> Episode:
    """One batch of RAM episodes: the env takes each glimpse; the label is sent at the last step, or, in a game, a
    move at every step. ``watch()``, if given, is called after the reset and after every step (e.g. to render).
    With the model on a GPU, each step's glimpses are copied there and its actions back (evaluation does this;
    training there uses ``canvas_episode``, with no copy)."""
    obs, _ = env.reset(seed=seed, options=None if index is None else {"index": index})
    game, device = is_game(env), device_of(model)
    no_label = np.zeros(env.num_envs, np.int64)  # a label is read at the last step only
    watch = watch or (lambda: None)
    watch()

    def act(l_t: Tensor, a_t: Tensor | None) -> dict:
        return {"location": l_t.cpu().numpy(), **({"paddle": a_t.cpu().numpy()} if game else {"label": no_label})}

    def tensors(obs: dict) -> tuple[Tensor, Tensor]:
        return torch.from_numpy(obs["glimpse"]).to(device), torch.from_numpy(obs["location"]).to(device)

    def look(l_t: Tensor, a_t: Tensor | None) -> tuple[Tensor, Tensor]:
        obs, *_ = env.step(act(l_t, a_t))
        watch()
        return tensors(obs)

    roll = model.episode(*tensors(obs), look, env.task.n_glimpses, greedy=greedy)
    # Detached: the label sent to the env is an action, not a path for gradients (a game's moves are drawn samples).
    last = roll.actions[:, -1] if game else roll.logits.detach().argmax(-1)
    _, reward, terminated, _, infos = env.step({"location": np.zeros((env.num_envs, 2), np.float32),
                                                ("paddle" if game else "label"): last.cpu().numpy()})
    watch()
    assert terminated.all()
    labels = None if game else torch.from_numpy(infos["label"]).to(device)
    return Episode(roll.logits, labels, roll.locations, roll.log_pi, roll.b, torch.from_numpy(reward).to(device),
                   *((roll.log_pi_a, roll.entropy) if game else (None, None)))


def image_episode(model, env, *, greedy: bool, index=None, seed=None) -> Episode:
    """One batch of one-step episodes for a whole-canvas model (deterministic: ``greedy`` changes nothing)."""
    obs, _ = env.reset(seed=seed, options=None if index is None else {"index": index})
    device = device_of(model)
    logits = model(torch.from_numpy(obs["image"]).to(device)).logits
    # Detached: the label sent to the env is an action, not a path for gradients.
    _, reward, terminated, _, infos = env.step({"location": np.zeros((env.num_envs, 2), np.float32),
                                                "label": logits.detach().argmax(-1).cpu().numpy()})
    assert terminated.all()
    none = torch.zeros(env.num_envs, 0, device=device)
    return Episode(logits, torch.from_numpy(infos["label"]).to(device), None, none, none,
                   torch.from_numpy(reward).to(device))


def canvas_episode(spec: ModelSpec, model, source, *, greedy: bool) -> Episode:
    """One batch of training episodes on canvases made on the model's device (``envs.device.DeviceCanvases``),
    with no host-device copy: the same episode as the env's (the retina reads the clipped locations the policy
    chose; the reward is 1 for the right class after the last glimpse), played by ``model.rollout`` there."""
    canvases, l_0 = source.take()  # each canvas for K = source.repeats consecutive episodes
    K = source.repeats
    labels = canvases.labels.repeat_interleave(K) if K > 1 else canvases.labels
    if spec.reads == "glimpses":
        roll = model.rollout(canvases.images, l_0, source.retina, source.task.n_glimpses, greedy=greedy, repeats=K)
        logits, locations, log_pi, b = roll.logits, roll.locations, roll.log_pi, roll.b
    else:
        images = canvases.images.repeat_interleave(K, 0) if K > 1 else canvases.images
        logits = model(images.float() / 255.0).logits  # the env's image observation: pixel / 255
        locations, log_pi = None, logits.new_zeros(len(logits), 0)
        b = log_pi
    # The env's reward: a count of the label sent (the argmax), no path for gradients.
    reward = (logits.detach().argmax(-1) == labels).float()
    return Episode(logits, labels, locations, log_pi, b, reward)


def episode(spec: ModelSpec, model, env, *, greedy: bool, index=None, seed=None, watch=None) -> Episode:
    """One batch of episodes of the model of ``spec``, whichever kind it is (``watch``: see glimpse_episode)."""
    from envs.device import DeviceCanvases

    if isinstance(env, DeviceCanvases):  # training canvases made on the device
        return canvas_episode(spec, model, env, greedy=greedy)
    if spec.reads == "glimpses":
        return glimpse_episode(model, env, greedy=greedy, index=index, seed=seed, watch=watch)
    return image_episode(model, env, greedy=greedy, index=index, seed=seed)


def loss(ep: Episode, *, reinforce_weight: float, baseline_weight: float, entropy_weight: float = 0.0,
         gae_lambda: float = 1.0, credit: str = "env", rollouts: int = 1):
    """The training loss of a batch of episodes: the paper's hybrid loss when classifying (``credit``: the return
    its REINFORCE sees; ``rollouts``: episodes per canvas, see ``hybrid_loss``), a game's (REINFORCE alone, no
    labels to learn from) when playing."""
    from ram.model import game_loss, hybrid_loss

    weights = {"reinforce_weight": reinforce_weight, "baseline_weight": baseline_weight}
    # In float32 even when the episode ran under bf16 autocast (a no-op for float32 tensors).
    ep = ep._replace(**{k: getattr(ep, k).float() for k in ("logits", "log_pi", "b", "log_pi_a", "entropy")
                        if getattr(ep, k) is not None})
    if ep.labels is None:
        return game_loss(ep.log_pi, ep.log_pi_a, ep.b, ep.reward, entropy=ep.entropy, entropy_weight=entropy_weight,
                         gae_lambda=gae_lambda, **weights)
    return hybrid_loss(ep.logits, ep.labels, ep.log_pi, ep.b, reward=ep.reward, credit=credit, rollouts=rollouts,
                       **weights)


def batches(n: int, B: int) -> list[tuple[np.ndarray, int]]:
    """The first n episodes of a fixed split in batches of B: (the B indices, wrapping around; how many count)."""
    return [((start + np.arange(B)) % n, min(B, n - start)) for start in range(0, n, B)]


@torch.no_grad()
def evaluate_game(spec: ModelSpec, model, env, n: int, *, sampled: bool = True, seed: int = 0) -> dict[str, float]:
    """A game on the first n fixed starts of env's split: the share of balls missed and caught, greedy (the most
    probable move, the mean location) and, if ``sampled``, sampled (moves and locations drawn, one game per start)."""
    model.eval()
    out = {}
    for name, greedy, offset in (("greedy", True, 0), ("sampled", False, 1))[: 2 if sampled else 1]:
        caught = 0
        with forked_rng(model):  # seeded, and training's RNG stream untouched (as in evaluate)
            torch.manual_seed(seed + offset)
            env.reset(seed=seed + offset)
            for index, count in batches(n, env.num_envs):
                caught += episode(spec, model, env, greedy=greedy, index=index).reward[:count].sum().item()
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
        ep = episode(spec, model, env, greedy=True, index=index, watch=lambda: pictures.append(env.render()))
    model.train()
    outcome = [(52, 168, 83) if caught else (234, 67, 53) for caught in ep.reward.tolist()]
    return [tile(p) for p in pictures[:-1]] + [tile(pictures[-1], frames=outcome)], ep.reward


def play_baselines(env, n: int, *, seed: int = 0) -> dict[str, float]:
    """Catch rates (%) on the first n fixed starts of env's split of two players without a retina: one that moves
    at random, and one that sees the whole screen and follows the ball (``envs.catch.follow_ball``: the ceiling)."""
    from envs.catch import N_MOVES, follow_ball

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


@torch.no_grad()
def evaluate(spec: ModelSpec, model, env, n: int, *, mc_samples: int = 0, seed: int = 0) -> dict[str, float]:
    """Error on the first n canvases of env's fixed split: greedy (mean locations, one pass) and, if mc_samples
    (stochastic models only), Monte-Carlo (class probabilities averaged over mc_samples sampled rollouts). A game's
    error is ``evaluate_game``'s, its sampled pass played if mc_samples > 0."""
    if is_game(env):  # mc_samples > 0 adds the sampled pass (one game per start: a game has no class to average)
        return evaluate_game(spec, model, env, n, sampled=mc_samples > 0, seed=seed)
    mc_samples = mc_samples if spec.policy else 0
    model.eval()
    greedy_errors = mc_errors = 0
    split = batches(n, env.num_envs)
    # Each pass draws from a forked, seeded torch RNG, so its error is reproducible and training's RNG stream is
    # untouched: the greedy pass draws nothing unless the locations are random (the paper's ablation, whose greedy
    # path is one random path); the Monte-Carlo pass draws the policy's noise.
    with forked_rng(model):
        torch.manual_seed(seed)
        env.reset(seed=seed)  # rewinds the fixed split and seeds the random first glimpses
        for index, count in split:
            out = episode(spec, model, env, greedy=True, index=index)
            greedy_errors += (out.logits.argmax(-1) != out.labels)[:count].sum().item()
    # After the greedy pass, so the greedy error does not depend on mc_samples.
    with forked_rng(model):
        torch.manual_seed(seed + 1)
        env.reset(seed=seed + 1)
        for index, count in split if mc_samples else []:
            rollouts = [episode(spec, model, env, greedy=False, index=index) for _ in range(mc_samples)]
            probs = sum(r.logits.softmax(-1) for r in rollouts)
            mc_errors += (probs.argmax(-1) != rollouts[0].labels)[:count].sum().item()
    model.train()
    out = {"greedy_error": 100.0 * greedy_errors / n}
    if mc_samples:
        out["mc_error"] = 100.0 * mc_errors / n
    return out
