"""A trained agent as a Python object: load a checkpoint, classify your own canvases, see where it looked.

    from ram.agent import Agent
    agent = Agent.from_checkpoint("results/cluttered60-6g-s0")   # a folder or a .pt file
    pred = agent.predict(images)          # images: (N, 60, 60) uint8, or float in [0, 1]
    pred.labels, pred.locations, pred.probs   # (N,), (N, T, 2) in [-1, 1], (N, 10)

An agent of a task of several objects read in order (pairs100) names one label per object: labels (N, K) and probs
(N, K, 10), after T glimpses per object.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from envs.retina import Retina
from envs.tasks import Task, task_from
from ram import checkpoint
from ram.dram import DeepRecurrentAttention, DRAMConfig
from ram.model import RAMConfig, RecurrentAttention

# The models an Agent can hold (those that read glimpses), by their --model name: their class and config class.
GLIMPSE_MODELS = {"ram": (RecurrentAttention, RAMConfig), "dram": (DeepRecurrentAttention, DRAMConfig)}


class Prediction(NamedTuple):
    labels: np.ndarray  # (N,) int64; (N, K) for K objects read in order
    locations: np.ndarray  # (N, T, 2) float32: where each glimpse was taken, (x, y) in [-1, 1]
    probs: np.ndarray  # (N, n_classes) float32 (averaged over rollouts for samples > 1); (N, K, n_classes)


class Agent:
    """A glimpse model (RAM, or DRAM) with the sensor and episode length it was trained with."""

    def __init__(self, model: RecurrentAttention, *, canvas_size: int, retina: Retina, n_glimpses: int, start: str,
                 label_steps: tuple[int, ...] = ()):
        self.model = model.eval()
        self.canvas_size, self.retina, self.n_glimpses, self.start = canvas_size, retina, n_glimpses, start
        self.label_steps = label_steps  # the steps that name a label (1-based), if more than the last

    @classmethod
    def from_checkpoint(cls, path: str | Path, *, device: str | torch.device = "cpu") -> Agent:
        """Load ``path``: a .pt file, a run folder (its best.pt) or a shipped folder (its agent.pt), onto ``device``
        (e.g. "cuda"; ``predict`` takes and returns numpy arrays wherever the model runs)."""
        return cls.from_state(checkpoint.load(path), device=device)

    @classmethod
    def from_state(cls, state: dict, *, device: str | torch.device = "cpu") -> Agent:
        """An agent from the contents of a checkpoint (training checkpoint or agent.pt), on ``device``."""
        model_cls, config_cls = GLIMPSE_MODELS[state["args"].get("model", "ram")]
        model = model_cls(config_cls(**{**state["model_config"],
                                        "glimpse_shape": tuple(state["model_config"]["glimpse_shape"])}))
        model.load_state_dict(state["model"])
        return cls.on_task(model.to(device), task_from(state["task"]), start=state["args"]["start"])

    @classmethod
    def on_task(cls, model: RecurrentAttention, task: Task, *, start: str) -> Agent:
        """A model with the sensor, canvas and number of glimpses of ``task``, its first glimpse at ``start``."""
        retina = Retina(g=task.glimpse_size, k=task.n_scales, s=task.scale)
        return cls(model, canvas_size=task.canvas_size, retina=retina, n_glimpses=task.steps, start=start,
                   label_steps=task.label_steps)

    @property
    def canvas_shape(self) -> tuple[int, ...]:
        """The shape of one canvas this agent reads: (C, C) grey, (C, C, channels) colour."""
        glimpse = self.model.config.glimpse_shape  # (k, g, g), or (k, channels, g, g)
        C = self.canvas_size
        return (C, C) if len(glimpse) == 3 else (C, C, glimpse[1])

    @torch.no_grad()
    def predict(self, images: np.ndarray, *, samples: int = 1, seed: int = 0, batch_size: int = 1000) -> Prediction:
        """Classify (N, C, C) canvases, or (N, C, C, 3) RGB ones for an agent trained on colour images.
        ``samples=1``: the greedy policy (mean locations); ``samples=M > 1``: M sampled rollouts, probabilities
        averaged (locations are those of the first). The first glimpse is where the agent was trained to start: the
        centre, or a random location drawn from ``seed``."""
        if getattr(self.model.config, "act_every_step", False):
            raise ValueError("this agent plays catch, it does not classify: play it in envs.CatchEnv (docs/catch.md)")
        images = np.asarray(images)
        shape = self.canvas_shape
        if images.ndim == len(shape):
            images = images[None]
        if images.shape[1:] != shape:
            raise ValueError(f"images must have shape (N, {', '.join(map(str, shape))}) for this agent, got "
                             f"{images.shape}")
        is_float = np.issubdtype(images.dtype, np.floating)
        if images.dtype != np.uint8 and not (is_float and images.min(initial=0) >= 0 and images.max(initial=0) <= 1):
            raise ValueError("images must be uint8 in 0..255 or floats in [0, 1]")
        device = next(self.model.parameters()).device  # the inputs go where the model is, the outputs come back
        generator = torch.Generator().manual_seed(seed)
        rng = np.random.default_rng(seed)
        labels, locations, probs = [], [], []
        for lo in range(0, len(images), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(images[lo : lo + batch_size])).to(device)
            n = x.shape[0]
            l_0 = (torch.zeros(n, 2) if self.start == "center"
                   else torch.from_numpy(rng.uniform(-1, 1, (n, 2)).astype(np.float32))).to(device)
            p, where = 0, None
            for m in range(samples):
                # Seeded, and the caller's RNG streams untouched (the CPU's and, on a GPU, the GPU's: training draws
                # its policy noise there, and validation draws pictures through here).
                with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                    torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
                    roll = self.model.rollout(x, l_0, self.retina, self.n_glimpses, greedy=samples == 1,
                                              label_steps=self.label_steps)
                logits = roll.label_logits if len(self.label_steps) > 1 else roll.logits
                p = p + logits.softmax(-1)
                where = roll.locations if m == 0 else where
            p = p / samples
            labels.append(p.argmax(-1).cpu().numpy())
            locations.append(where.cpu().numpy())
            probs.append(p.cpu().numpy())
        return Prediction(np.concatenate(labels), np.concatenate(locations).astype(np.float32),
                          np.concatenate(probs).astype(np.float32))
