"""Gymnasium environments for the tasks of Mnih et al. (2014): a single env and a natively batched vector env."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode

from envs.datasets import Dataset, as_dataset, load_dataset
from envs.mnist import MNIST
from envs.retina import Retina, integral_image
from envs.tasks import BLOCK, Canvases, Task, fit, fixed, get_task, require_canvases, sample, split_size
from envs.vector import BatchedVectorEnv

N_CLASSES = 10  # MNIST's; an env's own is its dataset's (the action space's label)
OBSERVATIONS = ("glimpse", "image")
STARTS = ("random", "center")


def uniform_locations(bitgen: np.random.BitGenerator, n: int) -> np.ndarray:
    """n locations uniform in [-1, 1)^2 from the raw 64-bit stream (53-bit floats)."""
    return ((bitgen.random_raw((n, 2)) >> np.uint64(11)) * 2.0**-53 * 2.0 - 1.0).astype(np.float32)


def check_location(location: Any, n: int) -> np.ndarray:
    """Actions' locations as a float32 (n, 2) array clipped to [-1, 1]; ValueError for a wrong shape or NaN."""
    location = np.asarray(location, dtype=np.float32)
    expected = (2,) if n == 1 else (n, 2)
    if location.shape != expected and not (n == 1 and location.shape == (1, 2)):
        raise ValueError(f"action 'location' must have shape {expected}, got {location.shape}")
    location = location.reshape(n, 2)
    if not np.isfinite(location).all():
        raise ValueError(f"action 'location' must be finite, got {location.tolist()}")
    # The same rule as envs.retina.clip_location, which the model and the plots use.
    return np.clip(location, -1.0, 1.0)


def check_label(label: Any, n: int, n_classes: int = N_CLASSES) -> np.ndarray:
    label = np.asarray(label)
    if label.size != n or not np.issubdtype(label.dtype, np.integer) or ((label < 0) | (label >= n_classes)).any():
        raise ValueError(f"action 'label' must be {n} integer(s) in 0..{n_classes - 1}, got {label.tolist()}")
    return label.reshape(n).astype(np.int64)


class _CanvasStream:
    """Fresh training canvases in a fixed order, optionally made one chunk ahead on a worker thread (so the next
    batch is drawn while the model trains on this one). Their integral images are made by ``_Episodes.new`` on the
    calling thread: made here, they kept the worker busy several times longer (numpy's cumsum), and that worker
    competed with the training step for the second core (measured in docs/speed.md).

    Canvases are made ``chunk`` at a time from one generator and handed out in order, whatever sizes are asked
    for, so the sequence depends on the seed and the chunk size alone; ``state`` (the generator's state before the
    chunk in hand and how many of its canvases are used) restores it exactly. Only one thread draws from the
    generator at a time.
    """

    def __init__(self, data: Dataset, task: Task, chunk: int, *, prefetch: bool):
        self.data, self.task, self.chunk = data, task, chunk
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="canvases") if prefetch else None
        self._bitgen = np.random.PCG64()
        self._hand: tuple[dict, Canvases] | None = None
        self._used = 0
        self._next: Future | None = None

    @property
    def seeded(self) -> bool:
        return self._hand is not None

    @property
    def state(self) -> dict:
        return {"bitgen": self._hand[0], "used": self._used}

    @state.setter
    def state(self, state: dict) -> None:
        self.unseed()
        self._bitgen.state = state["bitgen"]
        self._hand, self._used = self._make(), state["used"]
        self._ahead()

    def unseed(self) -> None:
        """Forget the canvases in hand and ahead (the env seeds the stream again at its next reset)."""
        if self._next is not None:
            wait([self._next])  # let a running draw finish before the generator is touched; its result is dropped
        self._hand, self._used, self._next = None, 0, None

    def seed(self, seed: int) -> None:
        self.state = {"bitgen": np.random.PCG64(seed).state, "used": 0}

    def _make(self) -> tuple[dict, Canvases]:
        before = self._bitgen.state
        return before, sample(self.data, self.task, self._bitgen, self.chunk)

    def _ahead(self) -> None:
        self._next = self._worker.submit(self._make) if self._worker else None

    def take(self, n: int) -> Canvases:
        """The next n canvases."""
        parts = []
        while n > 0 or not parts:  # n = 0 takes one empty slice of the chunk in hand
            if self._used == self.chunk and n > 0:
                self._hand, self._used = (self._next.result() if self._next else self._make()), 0
                self._ahead()
            _, canvases = self._hand
            a, b = self._used, min(self.chunk, self._used + n)
            parts.append(Canvases(*(x[a:b] for x in canvases)))
            self._used, n = b, n - (b - a)
        if len(parts) == 1:
            return parts[0]
        return Canvases(*(np.concatenate(x) for x in zip(*parts)))

    def close(self) -> None:
        if self._worker is not None:
            self._worker.shutdown(wait=True)


class _Episodes:
    """The batched state of n episodes (canvases, their integral images, locations, step counts): the shared
    mechanics of the single and the vector environment, so the two cannot drift apart."""

    def __init__(self, *, task: Task, split: str, data: Dataset, start: str, observation: str, n: int,
                 prefetch: bool = False, repeats: int = 1):
        if repeats < 1 or n % repeats:
            raise ValueError(f"repeats must be a positive divisor of num_envs {n}, got {repeats}")
        if repeats > 1 and split != "train":
            raise ValueError("repeats applies to the fresh canvases of the train split only")
        if start not in STARTS:
            raise ValueError(f"start must be one of {STARTS}, got {start!r}")
        if observation not in OBSERVATIONS:
            raise ValueError(f"observation must be one of {OBSERVATIONS}, got {observation!r}")
        if split != "train" and split_size(data, split) == 0:  # split_size validates the split name
            raise ValueError(f"the {split} split has no canvases: its image pool is empty")
        self.task, self.split, self.data, self.n, self.repeats = task, split, data, n, repeats
        self.start, self.observation = start, observation
        self.retina = Retina(g=task.glimpse_size, k=task.n_scales, s=task.scale)
        C = task.canvas_size
        self.images = np.zeros((n, C, C, *data.train_images.shape[3:]), np.uint8)  # a channel axis for RGB
        self.S = integral_image(torch.from_numpy(self.images))
        self.labels = np.zeros((n, task.n_objects), np.int64)  # the objects' classes, in reading order
        self.targets = np.zeros((n, len(task.label_steps)), np.int64)  # what the labels must name (Task.targets)
        self.right = np.zeros(n, np.int64)  # labels named correctly so far in the episode
        # Step t (1-based) scores target scoring[t]; -1: no label counts at that step.
        self.scoring = np.full(task.steps + 2, -1, np.int64)
        self.scoring[list(task.label_steps)] = np.arange(len(task.label_steps))
        self.n_classes = task.n_classes(data.n_classes)
        self.index = np.full(n, -1, np.int64)  # canvas index in a fixed split, -1 for train
        self.location = np.zeros((n, 2), np.float32)
        self.path = np.zeros((n, task.steps, 2), np.float32)  # locations glimpsed so far
        self.t = np.zeros(n, np.int64)  # glimpses taken in the current episode
        # The last glimpses read, while no episode has moved or started since: an ended episode's final observation
        # is the glimpse it already saw (it takes no further one), so the last step reads the retina no more.
        self._seen: np.ndarray | None = None
        self.cursor = 0
        self._blocks: dict[int, Canvases] = {}
        # A chunk is one step's canvases: with repeats K, the stream of an env of n / K sub-envs, canvas for canvas.
        self.stream = _CanvasStream(data, task, n // repeats, prefetch=prefetch) if split == "train" else None

    @property
    def split_size(self) -> int | None:
        """Number of canvases in the fixed split, None for train (endless)."""
        return None if self.split == "train" else split_size(self.data, self.split)

    def spaces(self) -> tuple[spaces.Dict, spaces.Dict]:
        if self.observation == "glimpse":
            obs = spaces.Dict({
                "glimpse": spaces.Box(0.0, 1.0, self.retina.glimpse_shape(self.data.channels), np.float32),
                "location": spaces.Box(-1.0, 1.0, (2,), np.float32),
            })
        else:
            obs = spaces.Dict({"image": spaces.Box(0.0, 1.0, self.images.shape[1:], np.float32)})
        act = spaces.Dict({
            "location": spaces.Box(-1.0, 1.0, (2,), np.float32),
            "label": spaces.Discrete(self.n_classes),
        })
        return obs, act

    def fixed(self, index: np.ndarray) -> Canvases:
        """Canvases ``index`` of the fixed split, generated a block at a time (at most two blocks kept)."""
        K = (self.task.n_objects,) if self.task.n_objects > 1 else ()
        out = Canvases(np.empty((len(index), *self.images.shape[1:]), np.uint8), np.empty((len(index), *K), np.int64),
                       np.empty((len(index), *K, 2), np.int64))
        blocks = index // BLOCK
        for block in np.unique(blocks):
            block = int(block)
            if block not in self._blocks:
                if len(self._blocks) >= 2:
                    self._blocks.pop(next(iter(self._blocks)))
                lo = block * BLOCK
                hi = min(lo + BLOCK, split_size(self.data, self.split))
                self._blocks[block] = fixed(self.data, self.task, self.split, lo, hi)
            rows = blocks == block
            for target, source in zip(out, self._blocks[block]):
                target[rows] = source[index[rows] - block * BLOCK]
        return out

    def reseed(self, bitgen: np.random.BitGenerator) -> None:
        """On ``reset(seed=...)``: rewind the fixed split, and seed the canvas stream from the env's generator."""
        self.cursor = 0
        if self.stream is not None:
            self.stream.seed(int(bitgen.random_raw()))

    def new(self, rows: np.ndarray, bitgen: np.random.BitGenerator, index: np.ndarray | None = None) -> None:
        """Start episodes in ``rows``: fresh canvases on train, the next fixed ones (or ``index``) on val/test.
        ``bitgen`` draws the first glimpses (and seeds the canvas stream the first time)."""
        if self.split == "train":
            if index is not None:
                raise ValueError("option 'index' only applies to the fixed splits val and test")
            if not self.stream.seeded:
                self.reseed(bitgen)
            if len(rows) % self.repeats:
                raise ValueError(f"{len(rows)} episodes do not split into groups of repeats={self.repeats}")
            canvases = self.stream.take(len(rows) // self.repeats)
            self.index[rows] = -1
        else:
            size = split_size(self.data, self.split)
            if index is None:
                index = (self.cursor + np.arange(len(rows))) % size
                self.cursor = int((self.cursor + len(rows)) % size)
            index = np.asarray(index, np.int64).reshape(len(rows))
            if ((index < 0) | (index >= size)).any():
                raise ValueError(f"option 'index' must be in 0..{size - 1}, got {index.tolist()}")
            canvases = self.fixed(index)
            self.index[rows] = index
        if self.observation == "glimpse":
            S = integral_image(torch.from_numpy(canvases.images))
            if self.repeats > 1:  # one integral image per canvas, shared by its rollouts
                S = S.repeat_interleave(self.repeats, 0)
            if len(rows) == self.n:  # the usual case, all episodes at once: no copy
                self.S = S if np.array_equal(rows, np.arange(self.n)) else S[np.argsort(rows)]
            else:
                self.S[rows] = S
        if self.repeats > 1:  # each canvas is the episode of `repeats` consecutive sub-envs
            canvases = Canvases(*(np.repeat(x, self.repeats, 0) for x in canvases))
        self.images[rows] = canvases.images
        self.labels[rows] = canvases.labels.reshape(len(rows), self.task.n_objects)
        self.targets[rows] = self.task.targets(canvases.labels)
        self.right[rows] = 0
        if self.start == "random":
            self.location[rows] = uniform_locations(bitgen, len(rows))
        else:
            self.location[rows] = 0.0
        self.t[rows] = 1
        self.path[rows] = 0.0
        self.path[rows, 0] = self.location[rows]
        self._seen = None

    def observe(self) -> dict[str, np.ndarray]:
        if self.observation == "image":
            return {"image": self.images.astype(np.float32) / 255.0}
        if self._seen is None:
            self._seen = self.retina.read(self.S, torch.from_numpy(self.location)).numpy()
        return {"glimpse": self._seen.copy(), "location": self.location.copy()}

    def act(self, rows: np.ndarray, location: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Apply actions to ``rows``: move there; at a label step (the last glimpse of an object, or of the episode)
        score the label. Returns (reward, terminated)."""
        t = self.t[rows]
        terminated = t >= self.task.steps
        which = self.scoring[t]
        scored = which >= 0
        reward = np.where(scored, paid(self.targets[rows, np.maximum(which, 0)], label), 0.0).astype(np.float32)
        self.right[rows] += reward.astype(np.int64)
        going = rows[~terminated]
        self.location[going] = location[~terminated]  # an ended episode takes no further glimpse
        if len(going):
            self._seen = None
        self.path[going, self.t[going]] = location[~terminated]
        self.t[rows] += 1
        return reward, terminated


def _ended(episodes: _Episodes, rows: np.ndarray, reward: np.ndarray) -> dict[str, np.ndarray]:
    """The infos of ended episodes ``rows`` (one row each): ``label``, the true class (or sum), and ``correct``
    (a bool) for one label; ``labels``, the K objects' classes in reading order, and ``correct``, every label right,
    for a sequence."""
    if episodes.targets.shape[1] == 1:
        return {"label": episodes.targets[rows, 0], "correct": reward[: len(rows)] > 0}
    return {"labels": episodes.targets[rows], "correct": episodes.right[rows] == episodes.targets.shape[1]}


def paid(labels, named):
    """The reward of a classification at its last step, the one rule of every place that pays it (this env, and
    training canvases made on a device): 1 where the label named is the true one, else 0; float32, for numpy arrays or
    torch tensors alike."""
    right = named == labels
    return right.float() if isinstance(right, torch.Tensor) else right.astype(np.float32)


def resolve_data(dataset: str | Dataset | MNIST | None, data_dir: str | None = None, task: Task | None = None,
                 mnist: MNIST | None = None) -> Dataset:
    """The Dataset an env's ``dataset=`` (a name, a path, a Dataset; default mnist) or ``mnist=`` (MNIST's arrays)
    argument stands for; a task's ``object_size`` resizes a folder's images of mixed sizes as they are read."""
    if mnist is not None:
        if dataset is not None:
            raise ValueError("pass dataset= or mnist=, not both")
        return as_dataset(mnist)
    if dataset is None or isinstance(dataset, str):
        return load_dataset(dataset or "mnist", data_dir=data_dir, object_size=task and task.object_size)
    return as_dataset(dataset)


def _make_episodes(task, split, dataset, mnist, data_dir, start, observation, n, prefetch, repeats=1,
                   **overrides) -> _Episodes:
    if isinstance(task, str):
        task = get_task(task, **overrides)
    elif any(v is not None for v in overrides.values()):
        task = task.with_(**{k: v for k, v in overrides.items() if v is not None})
    require_canvases(task)
    data = resolve_data(dataset, data_dir, task, mnist)
    fit(task, data)
    return _Episodes(task=task, split=split, data=data, start=start, observation=observation, n=n,
                     prefetch=prefetch, repeats=repeats)


class ClutteredMNISTEnv(gym.Env):
    """
    ## Description
    Classify the object (an MNIST digit, or an image of ``dataset``) on a (possibly cluttered) canvas by looking at it
    through T glimpses of a multi-resolution retina (Mnih et al. 2014). One episode is one canvas and T glimpses.
    A task of several objects (kind ``sequence``: ``pairs100``; ``sum``: ``addition100``; Ba et al. 2015) shows K
    objects that never overlap, read left to right (then top to bottom): its episode has T glimpses per object, and
    names each object's class after that object's T glimpses (``sequence``) or their sum after the last
    (``sum``).

    ## Action Space
    ``Dict(location=Box(-1, 1, (2,), float32), label=Discrete(n))``, n the dataset's classes (10 for MNIST): where
    to take the next glimpse
    ((x, y), (-1, -1) top-left, see ``envs.retina``) and the predicted class. Locations outside [-1, 1] are
    clipped; NaN or a wrong shape raises ValueError. The label counts only at the last step (of each object's
    glimpses, for a sequence); a sum's n is K (classes - 1) + 1 (19 for two digits).

    ## Observation Space
    ``observation="glimpse"`` (default): ``Dict(glimpse=Box(0, 1, (k, g, g), float32), location=Box(-1, 1, (2,)))``,
    the retina's reading and where it was taken. ``observation="image"``: ``Dict(image=Box(0, 1, (C, C)))``, the
    whole canvas, for models without a glimpse sensor (same tasks and splits). An RGB dataset adds a channel axis:
    glimpses ``(k, 3, g, g)`` (each channel pooled as a grey image), the image ``(C, C, 3)``.

    ## Rewards
    1 at the last step if ``label`` is the object's class, else 0; 0 at every other step. A sequence: 1 at the
    last step of object k's glimpses if ``label`` is object k's class (so up to K per episode); a sum: 1 at the
    last step for the right sum.

    ## Starting State
    A new canvas (fresh for ``split="train"``, the next one of the fixed set for ``val``/``test``) and the first
    glimpse at a uniformly random location (``start="random"``, the paper) or the centre (``start="center"``).

    ## Episode End
    ``terminated`` at the T-th step (K T-th, for K objects): the agent has seen T glimpses (the first from
    ``reset``, T - 1 from its location actions) and its T-th action's label is scored. ``info["label"]`` (true
    class, or sum) and ``info["correct"]`` are set at that step; a sequence sets ``info["labels"]`` (the K classes
    in reading order) and ``info["correct"]`` (every label right). Never truncated.

    ## Arguments
    ``task`` (a name from ``envs.PRESETS`` or a ``Task``), overrides ``canvas_size``, ``n_clutter``,
    ``clutter_size``, ``glimpse_size``, ``n_scales``, ``scale``, ``n_glimpses`` (per object), ``n_objects``;
    ``split`` ("train", "val", "test"); ``start``; ``observation``; ``dataset`` (``mnist``, ``fashion-mnist``, a
    folder or ``.npz`` path, or an ``envs.datasets.Dataset``; ``envs.datasets`` says how its splits are made) with
    ``data_dir`` (its cache), or ``mnist`` (MNIST's arrays); ``render_mode`` ("rgb_array").
    ``reset(options={"index": i})`` shows canvas i of a fixed split; ``reset(seed=...)`` on a fixed split also
    rewinds it to canvas 0.

    ## Version History
    * v0: initial version.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 2}

    def __init__(self, task: str | Task = "cluttered60", *, split: str = "train", start: str = "random",
                 observation: str = "glimpse", dataset: str | Dataset | None = None, data_dir: str | None = None,
                 mnist: MNIST | None = None, render_mode: str | None = None, canvas_size: int | None = None,
                 n_clutter: int | None = None, clutter_size: int | None = None, glimpse_size: int | None = None,
                 n_scales: int | None = None, scale: int | None = None, n_glimpses: int | None = None,
                 object_size: int | None = None, n_objects: int | None = None):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.render_mode = render_mode
        self._episodes = _make_episodes(task, split, dataset, mnist, data_dir, start, observation, 1, False,
                                        canvas_size=canvas_size, n_clutter=n_clutter, clutter_size=clutter_size,
                                        glimpse_size=glimpse_size, n_scales=n_scales, scale=scale,
                                        n_glimpses=n_glimpses, object_size=object_size, n_objects=n_objects)
        self.dataset = self._episodes.data
        self.task = self._episodes.task
        self.split_size = self._episodes.split_size  # canvases in the fixed split (None for train)
        self.retina = self._episodes.retina
        self.observation_space, self.action_space = self._episodes.spaces()
        self._rows = np.zeros(1, np.int64)

    def _obs(self) -> dict[str, np.ndarray]:
        return {k: v[0] for k, v in self._episodes.observe().items()}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._episodes.reseed(self.np_random.bit_generator)
        index = None if not options or "index" not in options else [options["index"]]
        self._episodes.new(self._rows, self.np_random.bit_generator, index)
        return self._obs(), {}

    def step(self, action: dict):
        if self._episodes.t[0] == 0:
            raise RuntimeError("call reset() before step()")
        if self._episodes.t[0] > self.task.steps:
            raise RuntimeError("the episode has ended: call reset()")
        location = check_location(action["location"], 1)
        label = check_label(action["label"], 1, self._episodes.n_classes)
        reward, terminated = self._episodes.act(self._rows, location, label)
        info = {}
        if terminated[0]:
            info = _ended(self._episodes, self._rows, reward)
            info = {k: v[0].item() if v[0].size == 1 else v[0] for k, v in info.items()}
        return self._obs(), float(reward[0]), bool(terminated[0]), False, info

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        e = self._episodes
        steps = int(min(e.t[0], self.task.steps))
        from envs.render import draw_glimpses

        return draw_glimpses(e.images[0], e.path[0, :steps], self.retina)


class ClutteredMNISTVectorEnv(BatchedVectorEnv):
    """``num_envs`` episodes of ``ClutteredMNISTEnv`` stepped as one batch (one retina call per step).

    Same arguments, spaces per sub-env, rewards and infos as the single env; infos follow the vector convention
    (``infos["label"]`` with mask ``infos["_label"]``). All episodes last exactly T steps, so sub-envs start and
    end together. Autoreset (``autoreset_mode``): ``NEXT_STEP`` (default), ``SAME_STEP`` or ``DISABLED``, as
    ``envs.vector.BatchedVectorEnv`` describes. On ``val``/``test`` the sub-envs take consecutive canvases of the
    fixed set, so ``ceil(N / num_envs)`` resets cover it in order; ``reset(seed=...)`` rewinds to canvas 0.
    ``repeats`` K (train only, dividing ``num_envs``): each fresh canvas is the episode of K consecutive sub-envs
    (sub-envs kK..kK+K-1 share one, each with its own first glimpse and path), for several rollouts per canvas.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 2, "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int = 1, task: str | Task = "cluttered60", *, split: str = "train",
                 start: str = "random", observation: str = "glimpse", dataset: str | Dataset | None = None,
                 data_dir: str | None = None, mnist: MNIST | None = None, render_mode: str | None = None,
                 autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP, canvas_size: int | None = None,
                 n_clutter: int | None = None, clutter_size: int | None = None, glimpse_size: int | None = None,
                 n_scales: int | None = None, scale: int | None = None, n_glimpses: int | None = None,
                 object_size: int | None = None, n_objects: int | None = None, repeats: int = 1):
        num_envs = self.check_num_envs(num_envs)
        self._episodes = _make_episodes(task, split, dataset, mnist, data_dir, start, observation, num_envs, True,
                                        repeats, canvas_size=canvas_size, n_clutter=n_clutter,
                                        clutter_size=clutter_size, glimpse_size=glimpse_size, n_scales=n_scales,
                                        scale=scale, n_glimpses=n_glimpses, object_size=object_size,
                                        n_objects=n_objects)
        self.dataset = self._episodes.data
        self._setup(self._episodes, num_envs, render_mode, autoreset_mode)

    def _rewind(self) -> None:
        self._episodes.reseed(self.np_random.bit_generator)

    def _actions(self, actions: dict) -> tuple[np.ndarray, ...]:
        return (check_location(actions["location"], self.num_envs),
                check_label(actions["label"], self.num_envs, self._episodes.n_classes))

    def _infos(self, terminated: np.ndarray, reward: np.ndarray) -> dict:
        info = _ended(self._episodes, self._all, reward)
        out = {}
        for key, value in info.items():
            mask = terminated.reshape(-1, *[1] * (value.ndim - 1))
            out[key], out[f"_{key}"] = np.where(mask, value, np.zeros_like(value)), terminated.copy()
        return out

    def get_rng_state(self) -> dict:
        """The random state of the env (its ``np_random`` and the stream of fresh canvases, which is made a batch
        ahead): what ``set_rng_state`` needs to continue exactly where it was, e.g. to resume training."""
        stream = self._episodes.stream
        return {"np_random": self.np_random.bit_generator.state,
                "canvases": stream.state if stream is not None and stream.seeded else None}

    def set_rng_state(self, state: dict) -> None:
        self.np_random.bit_generator.state = state["np_random"]
        stream = self._episodes.stream
        if stream is not None and state["canvases"] is not None:
            stream.state = state["canvases"]
        elif stream is not None:  # saved before the stream was seeded: it is seeded from np_random at the next reset
            stream.unseed()

    def close(self, **kwargs) -> None:
        if self._episodes.stream is not None:
            self._episodes.stream.close()
        super().close(**kwargs)

    def canvases(self, index) -> Canvases:
        """Canvases ``index`` of the fixed split (val/test): images, labels, digit positions."""
        if self.split_size is None:
            raise ValueError("canvases(index) needs a fixed split (val or test)")
        return self._episodes.fixed(np.asarray(index, np.int64))

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        from envs.render import draw_glimpses

        e = self._episodes
        steps = int(min(e.t.max(), self.task.steps))
        return [draw_glimpses(e.images[i], e.path[i, :steps], self.retina) for i in range(self.num_envs)]
