"""The figure of docs/rl-libraries.md: Stable-Baselines3's validation score against environment steps and training
minutes, beside RAM's on the same task (a report over committed files: it measures nothing itself).

Reads each run's ``curve.json`` (``benchmarks/sb3_baselines.py``) and RAM's ``results.json`` history (validation
error every ``--eval-every`` episodes; an episode of Catch is 23 steps, of a glimpse task T steps):

    python benchmarks/sb3_curves.py --ram results/catch-s1 --runs results/ppo-catch-grid-s0 \
        results/rppo-catch-grid-s0 --out results/sb3_catch_curves.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from matplotlib.figure import Figure  # noqa: E402

from ram import checkpoint  # noqa: E402


def ram_points(run: Path) -> tuple[str, list[dict]]:
    """RAM's validation curve as (label, [{steps, train_minutes, val_score}]), the score 100 minus the error."""
    results = json.loads((run / "results.json").read_text())
    steps = results["task"]["n_glimpses"]  # steps per episode: one glimpse each
    points = [{"steps": h["samples"] * steps, "train_minutes": h["minutes"], "val_score": 100.0 - h["val_error"]}
              for h in results["history"]]
    return f"RAM ({run.name})", points


def sb3_points(run: Path) -> tuple[str, list[dict]]:
    config = json.loads((run / "config.json").read_text())
    args = config["args"]
    label = f"{config['algo']}, {args['mode']}"
    if args["mode"] == "grid":
        label += " (the centre)" if args["grid"] == 1 else f" {args['grid']}x{args['grid']}"
    if args.get("frame_stack", 1) > 1:
        label += f", {args['frame_stack']} stacked"
    return label, json.loads((run / "curve.json").read_text())["curve"]


def curves_figure(curves: dict[str, list[dict]], *, score: str, chance: float | None = None) -> Figure:
    """Two panels, the score against steps (log) and against training minutes, one line per run."""
    fig = Figure(figsize=(10, 4), layout="constrained")
    for i, (x, title) in enumerate((("steps", "environment steps"), ("train_minutes", "training minutes"))):
        ax = fig.add_subplot(1, 2, i + 1)
        for label, points in curves.items():
            ax.plot([p[x] for p in points], [p["val_score"] for p in points], "o-", markersize=2, label=label)
        if chance is not None:
            ax.axhline(chance, color="k", linestyle="--", linewidth=1, label=f"random, {chance:g}%")
        if x == "steps":
            ax.set_xscale("log")
        ax.set_xlabel(title)
        ax.set_ylabel(f"validation {score} (%)")
        ax.set_ylim(0, 100)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ram", nargs="*", default=[], help="RAM run folders (results.json, config.json)")
    parser.add_argument("--runs", nargs="+", required=True, help="sb3_baselines.py run folders (curve.json)")
    parser.add_argument("--score", default="catch rate", help="what the score is called on the axis")
    parser.add_argument("--chance", type=float, help="the random player's score, drawn dashed")
    parser.add_argument("--out", required=True, help="the PNG to write")
    opts = parser.parse_args(argv)
    curves = {}
    for folder, read in [(f, ram_points) for f in opts.ram] + [(f, sb3_points) for f in opts.runs]:
        try:
            label, points = read(Path(folder))
        except (OSError, KeyError, ValueError) as e:
            print(f"sb3_curves.py: error: {folder} is not a finished run with its curve ({e})", file=sys.stderr)
            return 2
        curves[label if label not in curves else f"{label} ({Path(folder).name})"] = points
    checkpoint.write_figure(curves_figure(curves, score=opts.score, chance=opts.chance), opts.out)
    print(f"wrote {opts.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
