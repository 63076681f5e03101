"""What a run shows while it trains: TensorBoard (``train/``, ``val/``, ``perf/`` on the one clock of samples seen)
and the progress bar. Rank 0 alone logs: the other ranks get ``parallel.Silent`` and a disabled bar."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

from ram import checkpoint, parallel, pictures


def open_log(run_dir: Path, args, config, *, main: bool, resumed: bool, start_samples: int, data: dict | None = None):
    """The run's TensorBoard writer, after writing its config.json (rank 0; the others get ``parallel.Silent``)."""
    from torch.utils.tensorboard import SummaryWriter

    if not main:
        return parallel.Silent()
    run_dir.mkdir(parents=True, exist_ok=True)
    checkpoint.write_text(json.dumps({"args": asdict(args), "model_config": asdict(config),
                                      **({"dataset": data} if data is not None else {})}, indent=2),
                          run_dir / "config.json")
    # On resume, drop what a stopped run logged after its last checkpoint, so no point is logged twice.
    writer = SummaryWriter(str(run_dir / "tb"), purge_step=start_samples + 1 if resumed else None)
    if not resumed:
        writer.add_text("config", "```\n" + json.dumps(asdict(args), indent=2) + "\n```")
    return writer


def progress_bar(total_steps: int, step: int, *, show: bool, description: str):
    """tqdm over the run's steps; in a log (stderr not a terminal) it updates at most every 30 s instead of several
    times a second."""
    from tqdm import tqdm

    return tqdm(total=total_steps, initial=step, disable=not show, unit="step", dynamic_ncols=True,
                mininterval=0.1 if sys.stderr.isatty() else 30, desc=description)


def log_steps(writer, bar, losses, samples: int, speed: float, *, lr: float, std: float | None,
              best_val: float | None) -> None:
    """The training scalars, every 50 steps, and the progress bar's figures."""
    for name in ("total", "classification", "reinforce", "baseline", "accuracy"):
        writer.add_scalar(f"train/{name}", getattr(losses, name).item(), samples)
    writer.add_scalar("train/lr", lr, samples)
    if std is not None:
        writer.add_scalar("train/std", std, samples)
    writer.add_scalar("perf/samples_per_s", speed, samples)
    bar.set_postfix(loss=f"{losses.total.item():.3f}", acc=f"{losses.accuracy.item():.3f}", sps=f"{speed:,.0f}",
                    best_val="-" if best_val is None else f"{best_val:.2f}%", refresh=False)  # the bar's own pace


def log_validation(writer, point: dict, picture: pictures.Picture | None) -> None:
    """A validation's scalars and, for a model that attends, where it attends on the first validation episodes."""
    writer.add_scalar("val/error", point["val_error"], point["samples"])
    writer.add_scalar("val/accuracy", 100.0 - point["val_error"], point["samples"])
    writer.add_scalar("perf/minutes", point["minutes"], point["samples"])
    if picture is not None:
        pictures.log(writer, picture, point["samples"])
