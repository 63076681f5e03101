"""The tasks of Mnih et al. (2014) and the one generator of their canvases.

A task is the canvas recipe (size, clutter, the sensor, glimpses); a dataset (``envs.datasets``: MNIST by default)
fills it. A canvas is a square uint8 image, grey (C, C) or RGB (C, C, 3) as its dataset: one object (a digit of
MNIST) pasted at a uniformly random position, plus ``n_clutter`` pieces of clutter (random ``clutter_size`` square
crops of *other* images of the same split) at uniformly random positions; overlaps keep the brighter pixel (per
channel). Generation is vectorised over the batch: the only Python loop runs over the clutter pieces.

Splits: ``train`` draws fresh canvases every episode from the dataset's training pool (MNIST: digits 0..54,999);
``val`` is a fixed set of canvases, one per validation image (MNIST: 5,000, train digits 55,000..59,999); ``test`` a
fixed set, one per test image (MNIST: 10,000). Fixed sets are generated in blocks of ``BLOCK`` canvases, each from its
own seed derived from ``PUBLISHED_SEED``, the split and the geometry, with the PCG64 bit stream only (its output is
fixed by numpy's stability promise), so they are bit-identical on every machine and run. A task whose
``object_size`` is not its dataset's resizes its objects with torch's bilinear interpolation too: its sets depend on
that kernel as well (their checksums are pinned in the tests, so a change shows).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np
import torch

from envs.datasets import PUBLISHED_SEED, Dataset, as_dataset

BLOCK = 1000
SPLITS = ("train", "val", "test")
DIGIT = 28
CATCH_MIN = 4  # the smallest screen of catch: a ball and a 2-pixel paddle with room to move


class KindRules(NamedTuple):
    """What the world asks of the tasks of one kind (``Task.kind``); the agent's side of a kind (its loss, evaluation,
    pictures) is ``ram.kinds``. A new kind of task adds one entry to ``KIND_RULES``."""

    # Its episodes are canvases of a dataset's images: the fixed sets, the ClutteredMNIST env and the device canvases
    # serve it, and its canvas must hold an object; False: its env makes its own screens (a game).
    canvases: bool = True
    # The episode's length as the world fixes it from the screen's side (a game: the ball falls a row a step); None:
    # the number of glimpses is the agent's choice.
    length: Callable[[int], int] | None = None
    smallest: int = 1  # the smallest canvas side (a dataset's objects must fit it too: ``fit``)
    # How many objects its canvas may hold: the fewest and the most (None: any).
    objects: tuple[int, int | None] = (1, 1)
    # What its episode names: "each" object's class in reading order, one label after each object's glimpses
    # (one object: the paper's classification); "sum": the sum of the objects' classes, after the last glimpse.
    names: str = "each"


KIND_RULES: dict[str, KindRules] = {
    "classify": KindRules(),
    "catch": KindRules(canvases=False, length=lambda size: size - 1, smallest=CATCH_MIN),
    # Several objects (Ba et al. 2015): read them in reading order, a label per object ...
    "sequence": KindRules(objects=(2, None)),
    # ... or name the sum of their classes (two digits: 0..18).
    "sum": KindRules(objects=(2, None), names="sum"),
}


def rules_of(kind: str) -> KindRules:
    if kind not in KIND_RULES:
        raise ValueError(f"kind must be one of {tuple(KIND_RULES)}, got {kind!r}")
    return KIND_RULES[kind]


def _count(objects: tuple[int, int | None]) -> str:
    low, high = objects
    return str(low) if low == high else f"{low} or more" if high is None else f"{low} to {high}"


@dataclass(frozen=True)
class Task:
    """One task: the canvas it draws and the paper's sensor for it. ``kind="catch"`` is the game of Catch
    (``envs.catch``): the canvas is its screen, and an episode lasts as long as the ball falls, ``canvas_size - 1``
    steps, one glimpse and one game action each."""

    name: str
    canvas_size: int
    n_clutter: int = 0
    clutter_size: int = 8
    glimpse_size: int = 12
    n_scales: int = 3
    scale: int = 2
    n_glimpses: int = 6
    kind: str = "classify"
    # The object's side in pixels: an image is resized to it (bilinear, antialiased) before it is placed; the clutter
    # is cut from images as they are. None: the dataset's own (28 for MNIST).
    object_size: int | None = None
    # Training canvases draw their number of clutter pieces uniformly from n_clutter - spread .. n_clutter + spread
    # (at least 0), a lever for robustness to clutter; the fixed validation and test sets keep n_clutter.
    clutter_spread: int = 0
    # Objects per canvas (the kinds "sequence" and "sum"), never overlapping, read left to right (then top to
    # bottom); n_glimpses is then the glimpses per object, so an episode lasts n_objects * n_glimpses steps.
    n_objects: int = 1

    def __post_init__(self) -> None:
        rules = rules_of(self.kind)
        digits = rules.canvases
        checks = (
            (self.canvas_size >= rules.smallest, f"canvas_size must be >= {rules.smallest}, got {self.canvas_size}"),
            (not digits or self.object_size is None or 1 <= self.object_size <= self.canvas_size,
             f"object_size must be in 1..canvas_size ({self.canvas_size}), got {self.object_size}"),
            (self.clutter_spread >= 0, f"clutter_spread must be >= 0, got {self.clutter_spread}"),
            (self.n_clutter >= 0, f"n_clutter must be >= 0, got {self.n_clutter}"),
            (not digits or self.clutter_size >= 1, f"clutter_size must be >= 1, got {self.clutter_size}"),
            (not digits or self.clutter_size <= self.canvas_size, "clutter_size must not exceed canvas_size"),
            (self.glimpse_size >= 1, f"glimpse_size must be >= 1, got {self.glimpse_size}"),
            (not digits or self.glimpse_size <= self.canvas_size,  # a game's small screen may be smaller: zeros beyond
             f"glimpse_size {self.glimpse_size} is larger than the {self.canvas_size}x{self.canvas_size} canvas"),
            (self.n_scales >= 1, f"n_scales must be >= 1, got {self.n_scales}"),
            (self.scale >= 1, f"scale must be >= 1, got {self.scale}"),
            (self.n_glimpses >= 1, f"n_glimpses must be >= 1, got {self.n_glimpses}"),
            (rules.objects[0] <= self.n_objects <= (rules.objects[1] or self.n_objects),
             f"a {self.kind} task holds {_count(rules.objects)} object(s) per canvas, got n_objects={self.n_objects}"),
            (digits or self.n_clutter == self.clutter_spread == 0, f"{self.kind} has no clutter"),
            (rules.length is None or self.n_glimpses == rules.length(self.canvas_size),
             f"a game of {self.kind} on a {self.canvas_size}-pixel screen lasts "
             f"{rules.length and rules.length(self.canvas_size)} steps (the ball falls a row a step), not "
             f"{self.n_glimpses}"),
        )
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    @property
    def steps(self) -> int:
        """The length of an episode: its glimpses, ``n_glimpses`` per object."""
        return self.n_glimpses * self.n_objects

    @property
    def label_steps(self) -> tuple[int, ...]:
        """The steps (1-based) whose label is scored: the last of each object's glimpses, or the last step alone."""
        if rules_of(self.kind).names == "sum":
            return (self.steps,)
        return tuple(self.n_glimpses * (k + 1) for k in range(self.n_objects))

    def n_classes(self, dataset_classes: int) -> int:
        """The values a label takes: the dataset's classes, or for a sum every sum of n_objects classes."""
        if rules_of(self.kind).names == "sum":
            return self.n_objects * (dataset_classes - 1) + 1
        return dataset_classes

    def targets(self, labels):
        """What the episode must name, (N, len(label_steps)), from the objects' classes in reading order (N, K)
        (or (N,) for one object): the classes themselves, or their sum."""
        labels = labels.reshape(len(labels), self.n_objects)
        if rules_of(self.kind).names == "sum":
            return labels.sum(1, keepdims=True) if isinstance(labels, np.ndarray) else labels.sum(1, keepdim=True)
        return labels

    def with_(self, **changes) -> Task:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)


TASKS = {
    "mnist28": Task("mnist28", canvas_size=28, glimpse_size=8, n_scales=1),
    "translated60": Task("translated60", canvas_size=60, glimpse_size=12, n_scales=3),
    "cluttered60": Task("cluttered60", canvas_size=60, n_clutter=4, glimpse_size=12, n_scales=3),
    "cluttered100": Task("cluttered100", canvas_size=100, n_clutter=8, glimpse_size=12, n_scales=4, n_glimpses=8),
}
# Several objects on one canvas, after Ba, Mnih and Kavukcuoglu (2015), section 5.1 (their text leaves the clutter,
# the sensor and the glimpses open: ours are cluttered100's, with 4 glimpses per object): two digits on a 100 x 100
# canvas with 8 pieces of clutter, read in reading order (pairs100), or summed (addition100, 19 classes).
SEVERAL = {
    "pairs100": Task("pairs100", canvas_size=100, n_clutter=8, glimpse_size=12, n_scales=4, n_glimpses=4,
                     kind="sequence", n_objects=2),
    "addition100": Task("addition100", canvas_size=100, n_clutter=8, glimpse_size=12, n_scales=4, n_glimpses=4,
                        kind="sum", n_objects=2),
}
# The paper's game (section 4.2, envs.catch): a 24 x 24 screen seen through 3 scales of 6 x 6.
GAMES = {"catch": Task("catch", canvas_size=24, glimpse_size=6, n_scales=3, n_glimpses=23, kind="catch")}
PRESETS = {**TASKS, **SEVERAL, **GAMES}  # every name --task takes


# Test errors (%) of Mnih et al. (2014), Tables 1-2, for a preset's sensor with T glimpses: (task name, T) -> error.
PAPER_ERRORS = {("mnist28", 6): 1.12, ("translated60", 6): 1.22, ("cluttered60", 4): 4.96, ("cluttered60", 6): 4.08,
                ("cluttered60", 8): 4.04, ("cluttered100", 8): 8.11}


def task_from(fields: dict) -> Task:
    """A Task from its saved fields (a checkpoint's). One saved before datasets named the object's side digit_size,
    28 for MNIST's own: that is the default now (None, the dataset's own)."""
    fields = dict(fields)
    if "digit_size" in fields:
        side = fields.pop("digit_size")
        fields["object_size"] = None if side == DIGIT else side
    return Task(**fields)


def require_canvases(task: Task) -> None:
    """ValueError unless ``task``'s episodes are canvases of digits (a game makes its own screens, in its env)."""
    if not rules_of(task.kind).canvases:
        raise ValueError(f"task {task.name!r} is a game: it makes its own screens, in its env (envs.CatchEnv), "
                         "not canvases of digits")


def fit(task: Task, dataset: Dataset) -> None:
    """ValueError (one line) unless ``dataset``'s objects fit ``task``'s canvas and its clutter can be cut from them."""
    require_canvases(task)
    side = task.object_size or dataset.side
    if side > task.canvas_size:
        raise ValueError(f"the objects of {dataset.name} ({side} pixels) do not fit the {task.canvas_size}-pixel "
                         "canvas: pass a larger --canvas-size or a smaller --object-size")
    if (task.canvas_size // side) ** 2 < task.n_objects:
        raise ValueError(f"{task.n_objects} objects of {side} pixels do not fit side by side on the "
                         f"{task.canvas_size}-pixel canvas: pass a larger --canvas-size or a smaller --object-size")
    if task.n_objects > 1:  # room in principle, but too little for random placement to find it: one line now
        place(np.random.PCG64(0), 256, task.n_objects, task.canvas_size, side)
    if (task.n_clutter or task.clutter_spread) and task.clutter_size > dataset.side:
        raise ValueError(f"clutter pieces of {task.clutter_size} pixels cannot be cut from the {dataset.side}-pixel "
                         f"images of {dataset.name}: pass a smaller --clutter-size")


def shifts(task: Task, side: int = DIGIT) -> dict[str, Task]:
    """The test sets of ``task`` off its training distribution, each a task of its own (so a fixed, seeded set, as
    every other): twice and three times the clutter, a canvas 5/3 as wide with the clutter's density held (60 -> 100
    pixels), and objects at 0.75 and 1.5 times their side (``side``: the dataset's images' where the task keeps them
    as they are). Shifts that change nothing (no clutter to multiply) or do not fit (an object wider than the canvas)
    are left out."""
    C, N, D = task.canvas_size, task.n_clutter, task.object_size or side
    wide = round(C * 5 / 3)
    candidates = {"clutter x2": {"n_clutter": 2 * N}, "clutter x3": {"n_clutter": 3 * N},
                  f"canvas {wide}": {"canvas_size": wide, "n_clutter": round(N * wide**2 / C**2)},
                  "digits x0.75": {"object_size": round(D * 0.75)}, "digits x1.5": {"object_size": round(D * 1.5)}}
    out = {}
    for name, changes in candidates.items():
        try:
            shifted = task.with_(**changes, clutter_spread=0)
        except ValueError:
            continue  # does not fit
        if shifted != task.with_(clutter_spread=0):
            out[name] = shifted
    return out


def paper_error(task: Task) -> float | None:
    """The paper's test error for this task, if it is a preset with only the number of glimpses changed."""
    if task.name not in TASKS or task != TASKS[task.name].with_(n_glimpses=task.n_glimpses):
        return None
    return PAPER_ERRORS.get((task.name, task.n_glimpses))


def get_task(name: str, **overrides) -> Task:
    """A preset (a task or a game) by name with fields overridden (``None`` values are ignored). Raises ValueError
    for unknown names."""
    if name not in PRESETS:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(PRESETS)}")
    changes = {k: v for k, v in overrides.items() if v is not None}
    length = rules_of(PRESETS[name].kind).length
    if length is not None and "canvas_size" in changes:  # a game lasts as long as its screen says
        changes.setdefault("n_glimpses", length(changes["canvas_size"]))
    return PRESETS[name].with_(**changes) if changes else PRESETS[name]


def integers(bitgen: np.random.BitGenerator | torch.Generator, high: int, size: int | tuple[int, ...]):
    """Integers in [0, high): numpy's from the raw 64-bit stream (stable across numpy versions; bias < high / 2**64),
    or, from a ``torch.Generator``, torch's, as an int64 tensor on the generator's device."""
    if isinstance(bitgen, torch.Generator):
        size = (size,) if isinstance(size, int) else size
        return torch.randint(high, size, generator=bitgen, device=bitgen.device)
    return (bitgen.random_raw(size) % np.uint64(high)).astype(np.int64)


class Canvases(NamedTuple):
    images: np.ndarray  # (N, C, C) uint8, or (N, C, C, 3) for an RGB dataset
    labels: np.ndarray  # (N,) int64; (N, K) in reading order for K objects per canvas
    positions: np.ndarray  # (N, 2) int64: (x, y) of the object's top-left pixel; (N, K, 2) for K objects


def _arange(like, n: int):
    """0..n-1 as ``like`` is: a torch tensor on its device, or a numpy array."""
    return torch.arange(n, device=like.device) if isinstance(like, torch.Tensor) else np.arange(n)


def _squares(images, w: int):
    """A writable view (N, side - w + 1, side - w + 1, w, w, *rest) of every w x w square of ``images`` (N, side,
    side, *rest), numpy or torch: ``view[i, y, x]`` is the square of image i with top-left pixel (x, y). Reading
    n squares this way and writing them back is faster than through flat pixel indices (docs/speed.md).

    The squares overlap in memory: write through the view with indexing (one square per image per write), never
    with an op that makes it contiguous first (torch's deterministic CUDA ``index_put_`` would)."""
    N, side = images.shape[:2]
    shape = (N, side - w + 1, side - w + 1, w, w, *images.shape[3:])
    if isinstance(images, torch.Tensor):
        s = images.stride()
        return images.as_strided(shape, (s[0], s[1], s[2], s[1], s[2], *s[3:]))
    s = images.strides
    return np.lib.stride_tricks.as_strided(images, shape, (s[0], s[1], s[2], s[1], s[2], *s[3:]))


def compose(
    digits: np.ndarray,
    labels: np.ndarray,
    index: np.ndarray,
    task: Task,
    bitgen: np.random.BitGenerator | torch.Generator,
    *,
    spread: bool = False,
) -> Canvases:
    """Canvases of ``task`` for the objects ``digits[index]`` ((N, S, S) or (N, S, S, channels) uint8), with clutter
    cut from other objects of ``digits``.

    With K = ``task.n_objects`` > 1, ``digits[index]`` is each canvas's first object and K - 1 others are drawn
    (never the same image as the first), placed without overlap (``place``) and put in reading order; labels and
    positions are then (N, K) and (N, K, 2).

    Draws, in this order: (K > 1: the other objects,) object positions (x then y), then (with ``spread``, for
    training canvases of a task with a ``clutter_spread``) each canvas's number of pieces, then per clutter piece
    its source object, crop corner (x, y) and canvas position (x, y). numpy arrays and a numpy bit generator make
    the canvases of every fixed set and of CPU training; torch tensors and a ``torch.Generator`` on their device
    make them there (``envs.device``, for training on a GPU): the same rules, another random stream.
    """
    n, C, c = len(index), task.canvas_size, task.clutter_size
    S = digits.shape[1]
    D = task.object_size or S
    shape = (n, C, C, *digits.shape[3:])  # a channel axis for RGB
    if isinstance(digits, torch.Tensor):
        canvas, maximum = torch.zeros(shape, dtype=torch.uint8, device=digits.device), torch.maximum
        images = torch.arange(n, device=digits.device)
    else:
        canvas, maximum, images = np.zeros(shape, dtype=np.uint8), np.maximum, np.arange(n)
    K = task.n_objects
    if K == 1:
        objects, pos = index[:, None], integers(bitgen, C - D + 1, (n, 2))[:, None]
    else:
        # Shifted by 1..N-1 from the first object, as the clutter below: never the first object's image again.
        others = (index[:, None] + 1 + integers(bitgen, max(len(digits) - 1, 1), (n, K - 1))) % len(digits)
        joined = torch.cat if isinstance(others, torch.Tensor) else np.concatenate
        objects, pos = reading_order(joined([index[:, None], others], 1), place(bitgen, n, K, C, D))
    pieces, counts = task.n_clutter, None
    if spread and task.clutter_spread:
        low = task.n_clutter - task.clutter_spread
        counts = low + integers(bitgen, 2 * task.clutter_spread + 1, n)  # below 0: no clutter
        pieces = task.n_clutter + task.clutter_spread
    # Squares of the canvases (read, maxed with what is pasted, written back: one square per canvas per paste, so no
    # pixel is written twice at once) and of the objects (the clutter's sources); none without clutter, whose size
    # may then exceed the objects'.
    cut, paste = (_squares(digits, c), _squares(canvas, c)) if pieces > 0 else (None, None)
    for j in range(pieces):
        # A different object: shift by 1..N-1 so the piece never comes from the object being classified.
        source = (index + 1 + integers(bitgen, max(len(digits) - 1, 1), n)) % len(digits)
        corner = integers(bitgen, S - c + 1, (n, 2))
        at = integers(bitgen, C - c + 1, (n, 2))
        on, piece = images, cut[source, corner[:, 1], corner[:, 0]]
        if counts is not None:  # this piece only on the canvases that draw more than j pieces
            keep = counts > j
            on, at, piece = on[keep], at[keep], piece[keep]
        paste[on, at[:, 1], at[:, 0]] = maximum(paste[on, at[:, 1], at[:, 0]], piece)

    paste = _squares(canvas, D)
    for k in range(K):
        y, x = pos[:, k, 1], pos[:, k, 0]
        paste[images, y, x] = maximum(paste[images, y, x], resized(digits[objects[:, k]], D))
    named = labels[objects].astype(np.int64) if isinstance(labels, np.ndarray) else labels[objects]
    return Canvases(canvas, named[:, 0], pos[:, 0]) if K == 1 else Canvases(canvas, named, pos)


def place(bitgen: np.random.BitGenerator | torch.Generator, n: int, K: int, C: int, D: int, tries: int = 1000):
    """Top-left corners (n, K, 2) of K non-overlapping D x D squares on each of n C x C canvases: every canvas's K
    corners are drawn uniformly (x then y, object by object) and drawn again, all K, while two squares overlap
    (rejection: uniform over the placements without overlap). ValueError if a canvas fails ``tries`` times."""
    pos = integers(bitgen, C - D + 1, (n, K, 2))
    step = _arange(pos, K)
    pair = step[:, None] < step[None, :]  # each pair once
    for _ in range(tries):
        apart = abs(pos[:, :, None] - pos[:, None, :]) >= D  # (n, K, K, 2): apart along x, along y
        clash = ((~(apart[..., 0] | apart[..., 1])) & pair).reshape(n, -1).any(1)
        if not clash.any():
            return pos
        pos[clash] = integers(bitgen, C - D + 1, (int(clash.sum()), K, 2))
    raise ValueError(f"could not place {K} objects of {D} pixels without overlap on a {C}-pixel canvas in {tries} "
                     "tries: pass a larger --canvas-size or a smaller --object-size")


def reading_order(objects, pos):
    """``objects`` (n, K) and their corners ``pos`` (n, K, 2) sorted left to right by x, then top to bottom by y."""
    order = (pos[..., 0] * (int(pos.max()) + 1) + pos[..., 1]).argsort(1)
    rows = _arange(pos, len(pos))
    return objects[rows[:, None], order], pos[rows[:, None], order]


def resized(digits, side: int | None):
    """(n, S, S) or (n, S, S, channels) uint8 objects at ``side`` x ``side`` pixels (bilinear, antialiased when
    shrinking; numpy or torch, as given); as they are at their own side (or ``side`` None)."""
    if side is None or side == digits.shape[1]:
        return digits
    x = torch.as_tensor(digits).float()
    x = x[:, None] if x.dim() == 3 else x.permute(0, 3, 1, 2)  # (n, channels, S, S)
    out = torch.nn.functional.interpolate(x, size=(side, side), mode="bilinear", align_corners=False,
                                          antialias=side < digits.shape[1])
    out = out.round().clamp(0, 255).to(torch.uint8)
    out = out[:, 0] if digits.ndim == 3 else out.permute(0, 2, 3, 1).contiguous()
    return out if isinstance(digits, torch.Tensor) else out.numpy()


def pool(data: Dataset, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The images and labels a split draws from (``data``: a Dataset, or MNIST's four arrays)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    return as_dataset(data).split(split)


def split_size(data: Dataset, split: str) -> int:
    """Number of canvases in a fixed split (the number of images in its pool)."""
    return len(pool(data, split)[1])


def sample(data: Dataset, task: Task, bitgen: np.random.BitGenerator, n: int) -> Canvases:
    """``n`` fresh training canvases: objects drawn uniformly with replacement from the train pool."""
    digits, labels = pool(data, "train")
    return compose(digits, labels, integers(bitgen, len(digits), n), task, bitgen, spread=True)


def _block_seed(task: Task, split: str, block: int) -> np.random.SeedSequence:
    # The geometry (not the sensor) decides the set: the same canvases serve every sensor and every model. A resized
    # object makes another set (the sets of MNIST-sized digits keep their seeds, so their checksums stand).
    geometry = f"{split}:{task.canvas_size}:{task.n_clutter}:{task.clutter_size}"
    geometry += f":{task.object_size}" if task.object_size not in (None, DIGIT) else ""
    geometry += f":objects{task.n_objects}" if task.n_objects > 1 else ""  # a sum and a sequence share their sets
    return np.random.SeedSequence([PUBLISHED_SEED, zlib.crc32(geometry.encode()), block])


def fixed(data: Dataset, task: Task, split: str, start: int = 0, stop: int | None = None) -> Canvases:
    """Canvases ``start:stop`` of the fixed ``val`` or ``test`` set: canvas i shows image i of the split's pool."""
    if split not in ("val", "test"):
        raise ValueError(f"only val and test are fixed sets, got {split!r}")
    require_canvases(task)
    digits, labels = pool(data, split)
    stop = len(digits) if stop is None else stop
    if not 0 <= start <= stop <= len(digits):
        raise ValueError(f"range {start}:{stop} outside the {len(digits)} canvases of {split}")
    parts = []
    for block in range(start // BLOCK, -(-stop // BLOCK)):
        lo, hi = block * BLOCK, min((block + 1) * BLOCK, len(digits))
        part = compose(digits, labels, np.arange(lo, hi), task, np.random.PCG64(_block_seed(task, split, block)))
        a, b = max(start, lo) - lo, min(stop, hi) - lo
        parts.append(Canvases(*(x[a:b] for x in part)))
    if not parts:
        C, K = task.canvas_size, (task.n_objects,) if task.n_objects > 1 else ()
        return Canvases(np.zeros((0, C, C, *digits.shape[3:]), np.uint8), np.zeros((0, *K), np.int64),
                        np.zeros((0, *K, 2), np.int64))
    return Canvases(*(np.concatenate(x) for x in zip(*parts)))
