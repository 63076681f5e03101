"""Pictures of where a model attends: what a task kind draws (``Picture``), written to files or to TensorBoard.

A ``Picture`` is a short animation, one frame per step of the episodes drawn (its last frame is the whole episode);
``write`` makes it a PNG of the last frame and a GIF of them all, ``log`` an image in TensorBoard. The frames come
from the model's registry entry (``ram.registry.ModelSpec.draw``) on canvases of a classification task, or from the
env's own rendering of a game (``ram.games``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from envs.tasks import fixed, split_size
from ram import checkpoint
from ram.episodes import data_of
from ram.errors import UsageError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ram.config import Args
    from ram.registry import ModelSpec


class Picture(NamedTuple):
    name: str  # names the files (RUN/NAME.png, .gif) and the TensorBoard tag
    frame: Callable[[int], np.ndarray]  # RGB (H, W, 3) uint8 after the first i of n_steps steps (1-based)
    n_steps: int
    extras: dict[str, Callable[[], Figure]] = {}  # further figures of the same episodes: NAME-KEY.png
    duration: int = 600  # milliseconds per GIF frame
    hold: int = 3  # the last frame shows this many times longer
    note: str = ""  # what to say after the files written
    # The whole episodes as a matplotlib figure, for a PNG at the files' resolution; None: the last frame is the PNG.
    figure: Callable[[], Figure] | None = None


def check_range(first: int, n: int, size: int) -> None:
    if not 0 <= first <= size - n:
        raise UsageError(f"--first must be in 0..{size - n} for --n {n}")


def draw_canvases(spec: ModelSpec, model, args: Args, task, split: str, first: int, n: int) -> Picture | None:
    """Where a classifier attends on the fixed canvases first..first+n of ``split``, as its registry entry draws it
    (None: it has nothing to draw); the titles name what each episode must name: its class, the sum, or each object's
    class in reading order."""
    from ram.plots import figure_to_array  # matplotlib, loaded when a picture is drawn

    if spec.draw is None:
        return None
    data = data_of(args, task)
    check_range(first, n, split_size(data, split))
    canvases = fixed(data, task, split, first, first + n)
    targets = task.targets(canvases.labels)  # (n, L): one label an episode, or one per object
    drawing = spec.draw(model, args, task, canvases.images, targets[:, 0] if targets.shape[1] == 1 else targets)
    model.train()  # the entry drew in eval mode
    return Picture(drawing.name, lambda steps: figure_to_array(drawing.figure(steps)), drawing.n_steps,
                   drawing.extras, figure=lambda: drawing.figure(drawing.n_steps))


def write(picture: Picture, where: Path) -> list[Path]:
    """``where``.png (the whole episodes), ``where``.gif (every frame) and WHERE-KEY.png for each extra, atomically."""
    from PIL import Image

    frames = [Image.fromarray(picture.frame(i)) for i in range(1, picture.n_steps + 1)]
    if picture.figure is None:
        checkpoint.write_image(frames[-1], where.with_suffix(".png"))
    else:
        checkpoint.write_figure(picture.figure(), where.with_suffix(".png"))
    checkpoint.write_gif(frames, where.with_suffix(".gif"), duration=picture.duration, hold=picture.hold)
    written = [where.with_suffix(".png"), where.with_suffix(".gif")]
    for key, figure in picture.extras.items():
        written.append(where.with_name(f"{where.name}-{key}.png"))
        checkpoint.write_figure(figure(), written[-1])
    return written


def log(writer, picture: Picture, step: int) -> None:
    """The whole episodes (the last frame) and the extras in TensorBoard, under val/NAME."""
    writer.add_image(f"val/{picture.name}", picture.frame(picture.n_steps), step, dataformats="HWC")
    for key, figure in picture.extras.items():
        writer.add_figure(f"val/{picture.name}-{key}", figure(), step)
