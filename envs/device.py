"""Training canvases made on a torch device, for training there without a host-device copy per step.

The gymnasium envs (``envs.cluttered_mnist``) make their canvases with numpy on the CPU and hand out numpy arrays:
right for a CPU, and what every fixed set is made of. To train on a GPU, ``DeviceCanvases`` keeps the train pool's
digits on the device as one uint8 tensor and composes each batch there (``envs.tasks.compose`` with a
``torch.Generator`` of the device: the same rules as the env's canvases, another random stream), with the first
glimpse's locations drawn there too. ``ram.episodes`` runs an episode on it through ``model.rollout``: the retina
reads the canvases' integral image on the device, and the reward is the env's, 1 for the right class at the end.

It is a training stream only (the train split, endless): validation and test go through the env, whose fixed,
SHA-pinned sets stay the ones every run is measured on. On the CPU it works too (``--train-data device``), so that
CI tests this path; a CPU run by default keeps the env's numpy canvases, bit for bit those of every earlier run.
"""

from __future__ import annotations

import numpy as np
import torch
from gymnasium import spaces

from envs.cluttered_mnist import STARTS
from envs.datasets import Dataset, as_dataset
from envs.retina import Retina
from envs.tasks import Canvases, Task, compose, integers, pool, require_canvases


class DeviceCanvases:
    """Endless batches of ``num_envs`` fresh training canvases of ``task`` on ``device`` (``take``), seeded by
    ``reset(seed=...)``; ``get_rng_state``/``set_rng_state`` continue a stream exactly (to resume a run).
    ``repeats`` K: each canvas is played by K consecutive episodes, as the env's ``repeats``; ``take`` hands out each
    canvas once (the retina's integral image is then made once per canvas) and K first locations for it."""

    def __init__(self, data: Dataset, task: Task, num_envs: int, device: torch.device | str, *, start: str = "random",
                 repeats: int = 1):
        if repeats < 1 or num_envs % repeats:
            raise ValueError(f"repeats must be a positive divisor of num_envs {num_envs}, got {repeats}")
        require_canvases(task)
        if start not in STARTS:
            raise ValueError(f"start must be one of {STARTS}, got {start!r}")
        data = as_dataset(data)  # MNIST's four arrays are the mnist dataset
        digits, labels = pool(data, "train")
        self.device = torch.device(device)
        self.digits = torch.tensor(digits, device=self.device)  # MNIST: (55000, 28, 28) uint8, 43 MB, copied once
        self.labels = torch.from_numpy(labels.astype(np.int64)).to(self.device)
        self.task, self.num_envs, self.start, self.repeats = task, int(num_envs), start, repeats
        self.retina = Retina(g=task.glimpse_size, k=task.n_scales, s=task.scale)
        # The env's action for the label, so that the model is sized as for the env (the agent reads its size).
        self.single_action_space = spaces.Dict({"label": spaces.Discrete(task.n_classes(data.n_classes))})
        self.split_size = None  # endless, as the env's train split
        self.generator = torch.Generator(self.device)
        self.generator.manual_seed(0)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> None:
        if options:
            raise ValueError("DeviceCanvases makes fresh training canvases only: no options")
        if seed is not None:
            self.generator.manual_seed(seed)

    def take(self, n: int | None = None) -> tuple[Canvases, torch.Tensor]:
        """The canvases of the next n (default ``num_envs``, a multiple of ``repeats`` K) episodes, on the device:
        n / K canvases, each for K consecutive episodes, and the episodes' first glimpses' locations (n, 2)."""
        n = self.num_envs if n is None else n
        if n % self.repeats:
            raise ValueError(f"{n} episodes do not split into groups of repeats={self.repeats}")
        index = integers(self.generator, len(self.digits), n // self.repeats)
        canvases = compose(self.digits, self.labels, index, self.task, self.generator, spread=True)
        if self.start == "random":
            l_0 = torch.rand((n, 2), generator=self.generator, device=self.device) * 2.0 - 1.0  # in [-1, 1)
        else:
            l_0 = torch.zeros((n, 2), device=self.device)
        return canvases, l_0

    def get_rng_state(self) -> dict:
        return {"device_canvases": self.generator.get_state()}  # a CPU uint8 tensor, whatever the device

    def set_rng_state(self, state: dict) -> None:
        if "device_canvases" not in state:
            raise ValueError("this random state is a gymnasium env's, not a DeviceCanvases stream's")
        self.generator.set_state(state["device_canvases"])

    def close(self) -> None:
        pass
