"""Checkpoints and every other file a run writes (JSON, figures, GIFs): the only module of ``ram`` that writes
files. Atomic writes; checkpoints hold tensors and plain types only, so ``torch.load(weights_only=True)`` reads
them."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

import torch


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable or not a RAM checkpoint."""


def _temporary(path: Path) -> str:
    """A temporary file beside ``path``, with the permissions a plain ``open`` would give (mkstemp gives 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    return tmp


def save(obj: dict[str, Any], path: str | Path) -> None:
    """Write ``obj`` to ``path`` atomically: a temporary file in the same folder, then ``os.replace``."""
    tmp = _temporary(Path(path))
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())  # on disk before the rename, so a crash never leaves an empty last.pt
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def find(run: str | Path) -> Path:
    """The one checkpoint look-up: a file as given; a run folder's best.pt; a shipped folder's agent.pt (a finished
    run keeps both, and best.pt, the full training checkpoint, wins)."""
    path = Path(run)
    if not path.is_dir():
        return path
    shipped = (path / "agent.pt").exists() and not (path / "best.pt").exists()
    return path / ("agent.pt" if shipped else "best.pt")


def load(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by ``save`` (a file, or a folder: see ``find``); CheckpointError with a one-line
    reason otherwise."""
    path = find(path)
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(e).__name__}: {str(e)[:120]})") from None
    if not isinstance(obj, dict) or "model" not in obj or "model_config" not in obj:
        raise CheckpointError(f"{path} is not a RAM checkpoint")
    return obj


AGENT_KEYS = ("args", "task", "model_config", "model", "samples", "val_error", "init_samples", "dataset")


def agent_only(state: dict[str, Any]) -> dict[str, Any]:
    """The part of a training checkpoint that a trained agent needs (no optimiser, RNG or history)."""
    return {k: state[k] for k in AGENT_KEYS if k in state}


def write_bytes(data: bytes, path: str | Path) -> None:
    """Write a file atomically (figures, GIFs)."""
    tmp = _temporary(Path(path))
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(text: str, path: str | Path) -> None:
    """Write a text file atomically (configs, results JSON)."""
    write_bytes(text.encode(), path)


def write_figure(fig, path: str | Path, *, dpi: int = 110) -> None:
    """Write a matplotlib Figure as a PNG of at most 256 colours, atomically: a palette by median cut takes a third of
    the bytes of full RGB, which keeps results/ small. Plots and grey canvases look the same; the shades of colour
    canvases in a figure come out coarser (``write_image`` keeps every colour)."""
    from PIL import Image

    from ram.plots import figure_to_array  # matplotlib, loaded when a figure is written

    png = io.BytesIO()
    # The figure's pixels straight from the renderer (as savefig's at this dpi), not a PNG encoded and read back.
    palette = Image.fromarray(figure_to_array(fig, dpi)).quantize(256, method=Image.Quantize.MEDIANCUT)
    palette.save(png, format="PNG", optimize=True)
    write_bytes(png.getvalue(), path)


def write_image(image, path: str | Path) -> None:
    """Write a PIL image as a PNG, atomically."""
    png = io.BytesIO()
    image.save(png, format="PNG")
    write_bytes(png.getvalue(), path)


def gif_bytes(frames: list, *, duration: int = 600, hold: int = 3) -> bytes:
    """PIL images as an animated GIF (the file's bytes); the last frame is held ``hold`` times longer."""
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:] + [frames[-1]] * hold,
                   duration=duration, loop=0)
    return gif.getvalue()


def write_gif(frames: list, path: str | Path, *, duration: int = 600, hold: int = 3) -> None:
    """Write PIL images as an animated GIF, atomically; the last frame is held ``hold`` times longer."""
    write_bytes(gif_bytes(frames, duration=duration, hold=hold), path)
