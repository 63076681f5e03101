"""Figures of where an agent looked. Functions return matplotlib Figures; saving them is the caller's business.

Canvases are uint8, (N, C, C) grey or (N, C, C, 3) RGB: grey ones are drawn in a grey colour map, RGB ones in their
own colours; what is drawn over them (glimpses, paths, attention) is the same for both."""

from __future__ import annotations

import matplotlib
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from envs.retina import Retina

CMAP = matplotlib.colormaps["plasma"]
OBJECTS = matplotlib.colormaps["tab10"]  # one colour per object being read, when a canvas holds several


def show_canvas(ax, image: np.ndarray, **kwargs) -> None:
    """``ax.imshow`` of one uint8 canvas: (C, C) in grey (0 black, 255 white), (C, C, 3) in its colours."""
    if image.ndim == 2:
        kwargs.update(cmap="gray", vmin=0, vmax=255)
    elif image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"a canvas is (C, C) grey or (C, C, 3) RGB, got {image.shape}")
    ax.imshow(image, **kwargs)


def trajectory_figure(images: np.ndarray, locations: np.ndarray, predictions: np.ndarray, labels: np.ndarray,
                      retina: Retina | None, *, sides: np.ndarray | None = None, steps: int | None = None,
                      columns: int = 4, panel: float = 2.2, per_object: int | None = None) -> Figure:
    """A grid of canvases (N, C, C) or (N, C, C, 3) with glimpses (N, T, 2): a box per scale for every glimpse,
    coloured from the first (dark) to the last (bright), numbered in order and joined by the path; the title gives
    prediction and label (red when wrong). The boxes are the retina's patches, or squares of ``sides`` (N, T, k)
    pixels centred on the locations (a soft glimpse's read, whose extent varies). ``steps`` draws only the first
    steps glimpses (frames of an animation). ``per_object`` T: the canvases hold several objects read T glimpses
    each, and each object's glimpses take one colour (tab10's first, second, ...)."""
    N, T = locations.shape[:2]
    steps = T if steps is None else steps
    C = images.shape[2]
    rows = -(-N // columns)
    fig = Figure(figsize=(panel * min(columns, N), panel * rows + 0.3), layout="constrained")
    if sides is None:
        boxes = retina.boxes(torch.as_tensor(np.asarray(locations, np.float32)), C).numpy()  # (N, T, k, 4)
    else:
        centre = (np.clip(locations, -1, 1) + 1) / 2 * C  # (N, T, 2) in pixels, the retina's convention
        half = np.asarray(sides, np.float64)[..., None] / 2  # (N, T, k, 1)
        boxes = np.concatenate([centre[:, :, None] - half, centre[:, :, None] + half], -1)  # (N, T, k, 4)
    for i in range(N):
        ax = fig.add_subplot(rows, min(columns, N), i + 1)
        show_canvas(ax, images[i], extent=(0, C, C, 0))
        centres = (boxes[i, :steps, 0, :2] + boxes[i, :steps, 0, 2:]) / 2
        ax.plot(centres[:, 0], centres[:, 1], "-", color="white", lw=0.8, alpha=0.7)
        for t in range(steps):
            colour = CMAP(0.15 + 0.8 * t / max(T - 1, 1)) if per_object is None else OBJECTS(t // per_object)
            last = t == steps - 1
            for x0, y0, x1, y1 in boxes[i, t]:
                # Earlier glimpses faint, the latest one bold: every scale of every glimpse stays visible.
                ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec=colour, lw=1.6 if last else 0.6,
                                       alpha=1.0 if last else 0.45))
            ax.text(*centres[t], str(t + 1), color=colour, fontsize=7, ha="center", va="center", weight="bold")
        ax.set_xlim(0, C)
        ax.set_ylim(C, 0)
        ax.set_xticks([])
        ax.set_yticks([])
        done = steps == T
        wrong = done and predictions[i] != labels[i]
        title = f"pred {predictions[i]} / true {labels[i]}" if done else f"glimpse {steps}/{T}, true {labels[i]}"
        ax.set_title(title, fontsize=8, color="red" if wrong else "black")
    return fig


def tile(pictures: list[np.ndarray], *, columns: int = 4, gap: int = 4, frames: list | None = None) -> np.ndarray:
    """RGB pictures (H, W, 3) of one size in a grid, ``columns`` wide, separated by ``gap`` grey pixels; ``frames``
    (one RGB colour per picture) draws a border of that colour inside each."""
    if frames is not None:
        pictures = [p.copy() for p in pictures]
        for p, colour in zip(pictures, frames):
            p[:gap], p[-gap:], p[:, :gap], p[:, -gap:] = colour, colour, colour, colour
    H, W, _ = pictures[0].shape
    columns = min(columns, len(pictures))
    rows = -(-len(pictures) // columns)
    grid = np.full((rows * (H + gap) - gap, columns * (W + gap) - gap, 3), 96, np.uint8)
    for i, picture in enumerate(pictures):
        r, c = divmod(i, columns)
        grid[r * (H + gap) : r * (H + gap) + H, c * (W + gap) : c * (W + gap) + W] = picture
    return grid


def figure_to_array(fig: Figure, dpi: float | None = None) -> np.ndarray:
    """RGB uint8 pixels of a figure (for GIF frames, TensorBoard images and PNGs), at its own dpi or ``dpi`` (the
    pixels ``fig.savefig(dpi=dpi)`` would write)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    own = fig.get_dpi()
    fig.set_dpi(own if dpi is None else dpi)
    try:
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        return np.asarray(canvas.buffer_rgba())[..., :3].copy()
    finally:
        fig.set_dpi(own)  # as savefig(dpi=...) does: the figure keeps its own


def scaling_figure(rows: list[dict]) -> Figure:
    """Cost against canvas size, one line per model: rows of {"name", "canvas", "macs", "latency_ms"}."""
    fig = Figure(figsize=(10, 4), layout="constrained")
    for ax, key, label in ((fig.add_subplot(1, 2, 1), "macs", "multiply-accumulates per image"),
                           (fig.add_subplot(1, 2, 2), "latency_ms", "latency at batch 1 (ms)")):
        for name in dict.fromkeys(r["name"] for r in rows):
            points = sorted((r["canvas"], r[key]) for r in rows if r["name"] == name)
            ax.plot(*zip(*points), "o-", label=name)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("canvas side (pixels)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def robustness_figure(rows: list[dict]) -> Figure:
    """Test error on each shifted test set, one line per model (greedy solid, Monte-Carlo dotted in its colour), from
    ``ram.reports.robustness_row``'s rows; a shift a model cannot read is a gap in its line."""
    shifts = ["in distribution", *dict.fromkeys(k for r in rows for k in r["shifts"])]
    fig = Figure(figsize=(12, 4.5), layout="constrained")
    ax = fig.add_subplot()
    for r in rows:
        errors = [r["in_distribution"], *(r["shifts"].get(k) for k in shifts[1:])]
        greedy = [np.nan if e is None else e["greedy"] for e in errors]
        line, = ax.plot(range(len(shifts)), greedy, "o-", label=r["name"])
        if r["in_distribution"].get("mc") is not None:
            mc = [np.nan if e is None or e.get("mc") is None else e["mc"] for e in errors]
            ax.plot(range(len(shifts)), mc, "o:", color=line.get_color(), label=f"{r['name']}, Monte-Carlo")
    ax.set_xticks(range(len(shifts)), shifts, rotation=20)
    ax.set_yscale("log")
    plain_log_labels(ax, x=False)
    ax.set_ylabel("test error (%)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))  # beside the lines, never over them
    return fig


def shifts_figure(sets: dict[str, np.ndarray]) -> Figure:
    """A few canvases (n, C, C) or (n, C, C, 3) uint8 of each test set, a row per set."""
    n = max(len(images) for images in sets.values())
    fig = Figure(figsize=(1.6 * n, 1.6 * len(sets)), layout="constrained")
    for i, (name, images) in enumerate(sets.items()):
        for j, image in enumerate(images):
            ax = fig.add_subplot(len(sets), n, i * n + j + 1)
            show_canvas(ax, image)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(f"{name}\n{image.shape[0]} px", fontsize=8)
    return fig


def curves_figure(histories: dict[str, list[dict]]) -> Figure:
    """Validation error against samples seen and against training minutes, one line per run."""
    fig = Figure(figsize=(10, 4), layout="constrained")
    for i, (key, label) in enumerate((("samples", "samples seen"), ("minutes", "training minutes"))):
        ax = fig.add_subplot(1, 2, i + 1)
        for name, history in histories.items():
            ax.plot([h[key] for h in history], [h["val_error"] for h in history], label=name)
        ax.set_xlabel(label)
        ax.set_ylabel("validation error (%)")
        ax.set_xscale("log")  # runs of 1M and of 20M images on one axis
        ax.set_yscale("log")
        plain_log_labels(ax)
        ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def plain_log_labels(ax, *, x: bool = True) -> None:
    """Log axes labelled in plain numbers (3, 10, 30, 1M rather than 3x10^0, 10^6): the y axis's majors and minors
    (a few decades at most); with ``x``, the x axis's majors, its minors unlabelled where they crowd each other."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    def plain(v: float, _) -> str:
        return f"{v / 1e6:g}M" if v >= 1e6 else f"{v / 1e3:g}k" if v >= 1e4 else f"{v:g}"

    if x:
        ax.xaxis.set_major_formatter(FuncFormatter(plain))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_formatter(FuncFormatter(plain))
    ax.yaxis.set_minor_formatter(FuncFormatter(plain))


def attention_figure(images: np.ndarray, weights: np.ndarray, predictions: np.ndarray, labels: np.ndarray, *,
                     steps: int | None = None, column: str = "step", titles: list[str] | None = None,
                     panel: float = 1.9) -> Figure:
    """Soft attention over the canvas: rows are canvases (N, C, C) or (N, C, C, 3), columns the attention steps (or
    the layers, or any ``titles``); the weights (N, T, heads, H' * W') of each column (summed over heads) drawn as a
    heatmap over the image, one colour bar per row. ``steps`` shows only the first steps columns (frames of an
    animation)."""
    N, T = weights.shape[:2]
    steps = T if steps is None else steps
    C = images.shape[2]
    cells = weights.shape[-1]
    side = int(round(cells**0.5))
    if side * side != cells:
        raise ValueError(f"weights over {cells} cells are not a square grid")
    fig = Figure(figsize=(panel * T + 0.8, panel * N + 0.3), layout="constrained")
    axes = fig.subplots(N, T, squeeze=False)
    for i in range(N):
        heat = weights[i].sum(1).reshape(T, side, side)  # (T, H', W'), heads summed
        vmax = float(heat.max()) or 1.0
        for t in range(T):
            ax = axes[i, t]
            show_canvas(ax, images[i], extent=(0, C, C, 0))
            ax.set_xticks([])
            ax.set_yticks([])
            if t < steps:
                im = ax.imshow(heat[t], cmap="inferno", alpha=0.6, vmin=0, vmax=vmax, extent=(0, C, C, 0),
                               interpolation="nearest")
            if i == 0:
                ax.set_title(titles[t] if titles else f"{column} {t + 1}", fontsize=8)
        axes[i, 0].set_ylabel(f"pred {predictions[i]} / true {labels[i]}", fontsize=8,
                              color="red" if predictions[i] != labels[i] else "black")
        if steps:
            fig.colorbar(im, ax=axes[i, :], shrink=0.8, label="attention weight")
    return fig


def matrix_figure(weights: np.ndarray, *, query_labels: list[str] | None = None,
                  key_labels: list[str] | None = None) -> Figure:
    """A queries x keys matrix of attention weights (Q, K) as a heatmap with a colour bar."""
    fig = Figure(figsize=(min(10, max(3, 0.25 * weights.shape[1] + 2)), min(9, max(2, 0.3 * weights.shape[0] + 1))),
                 layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(weights, cmap="viridis", aspect="auto", interpolation="nearest")
    ax.set_xlabel("keys")
    ax.set_ylabel("queries")
    if query_labels is not None:
        ax.set_yticks(range(len(query_labels)), query_labels)
    if key_labels is not None:
        ax.set_xticks(range(len(key_labels)), key_labels, rotation=90)
    fig.colorbar(im, ax=ax, label="attention weight")
    return fig


def test_curve_figure(points: list[dict], target: float, *, rate: str | None = None,
                      per_episode: bool = False) -> Figure:
    """Error against training minutes of one run's snapshots: validation, test greedy and (if measured) test
    Monte-Carlo or sampled, with the target error as a dashed line. ``rate`` (e.g. a game's "catch rate"): 100 minus
    the error, under that name; ``per_episode``: against episodes seen too."""
    fig = Figure(figsize=(10 if per_episode else 6, 4), layout="constrained")
    curves = (("val_error", "validation (greedy)"), ("greedy_error", "test, greedy"),
              ("mc_error", "test, Monte-Carlo"), ("sampled_error", "test, sampled"))
    clocks = ((("samples", "episodes"),) if per_episode else ()) + (("minutes", "training minutes"),)

    def shown(error: float) -> float:
        return error if rate is None else 100 - error

    for i, (clock, xlabel) in enumerate(clocks):
        ax = fig.add_subplot(1, len(clocks), i + 1)
        x = [p[clock] for p in points]
        for key, label in curves:
            if all(key in p for p in points):
                ax.plot(x, [shown(p[key]) for p in points], "o-", markersize=3, label=label)
        ax.axhline(shown(target), color="k", linestyle="--", linewidth=1, label=f"target {shown(target):g}%")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"{rate or 'error'} (%)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    return fig


def recipe_curves_figure(panels: dict[str, tuple[dict[str, list[dict]], float]]) -> Figure:
    """Test error against training minutes, one panel per task: ``panels`` maps a title to (the test curves of its
    runs, {label: test_curve.json's points}, and the paper's error, drawn dashed). Greedy solid, Monte-Carlo dotted;
    the error axis ends at three times the paper's."""
    fig = Figure(figsize=(5 * len(panels), 4), layout="constrained")
    for i, (title, (runs, paper)) in enumerate(panels.items()):
        ax = fig.add_subplot(1, len(panels), i + 1)
        for j, (label, points) in enumerate(runs.items()):
            color = f"C{j}"
            x = [p["minutes"] for p in points]
            ax.plot(x, [p["greedy_error"] for p in points], "o-", color=color, markersize=3, label=f"{label}, greedy")
            if all("mc_error" in p for p in points):
                ax.plot(x, [p["mc_error"] for p in points], ":", color=color, label=f"{label}, Monte-Carlo")
        ax.axhline(paper, color="k", linestyle="--", linewidth=1, label=f"paper {paper:g}%")
        ax.set_title(title)
        ax.set_xlabel("training minutes (2 cores)")
        ax.set_ylabel("test error (%)")
        ax.set_ylim(0, 3 * paper)  # up to three times the paper's error: the first minutes' points lie above it
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    return fig
