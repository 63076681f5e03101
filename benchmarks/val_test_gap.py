"""Why an agent's validation error reads below its test error, and what its test errors are made of.

A report on a shipped glimpse agent of a single-object task (nothing is trained): greedy errors of

- the fixed validation and test sets (as ``train.py evaluate`` gives them: agents that start at the centre);
- N other canvas sets of the same validation digits (the same rules, other seeds): where the fixed set's canvases
  fall in the spread that the canvases alone make, for this agent;
- canvas sets of training digits, which the agent has seen: an error there near validation's means it does not
  overfit its digits, so it misreads from too little fit, not from too little data;
- on test: the errors whose digit some glimpse found (the smallest patch's centre within R pixels of the digit's
  centre) and misread, against those whose digit no glimpse came near.

    python benchmarks/val_test_gap.py results/cluttered60-6g-10m-s0
    python benchmarks/val_test_gap.py results/cluttered60-4g-s0 --sets 10 --threads 2

docs/results.md ("The validation-test gap") has its readings.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from envs.mnist import DataError  # noqa: E402
from envs.tasks import BLOCK, Canvases, compose, fixed, pool  # noqa: E402
from ram import checkpoint  # noqa: E402
from ram.agent import GLIMPSE_MODELS, Agent  # noqa: E402
from ram.episodes import data_of  # noqa: E402
from ram.errors import UsageError  # noqa: E402
from ram.runs import load_run  # noqa: E402


def canvas_set(digits: np.ndarray, labels: np.ndarray, index: np.ndarray, task, seed: int) -> Canvases:
    """Canvases of ``digits[index]`` made by the fixed sets' rules (clutter cut from ``digits``), block b drawn from
    PCG64(seed, b): another draw of canvases than any fixed set's."""
    parts = [compose(digits, labels, index[lo:lo + BLOCK], task, np.random.PCG64([seed, lo // BLOCK]))
             for lo in range(0, len(index), BLOCK)]
    return Canvases(*(np.concatenate(x) for x in zip(*parts)))


def percent(wrong: np.ndarray) -> float:
    return 100.0 * float(np.mean(wrong))


def found(centres: np.ndarray, corners: np.ndarray, side: float, radius: float) -> np.ndarray:
    """Whether some glimpse found each canvas's object: ``centres`` (N, T, 2) the glimpses' pixel grid lines
    (``Retina.centre``), ``corners`` (N, 2) the objects' top-left pixels (x, y), ``side`` their side in pixels; found
    when a glimpse's centre lies within ``radius`` pixels of the object's centre, the grid line corner + side / 2."""
    distance = np.sqrt(((centres - (corners + side / 2)[:, None]) ** 2).sum(-1))  # (N, T)
    return distance.min(1) <= radius


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="a run folder holding agent.pt (a glimpse agent of a one-object task)")
    parser.add_argument("--sets", type=int, default=10, help="other canvas sets of the validation digits (default 10)")
    parser.add_argument("--radius", type=float, default=6.0, help="pixels from the digit's centre that count as found")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-dir", default=None, help="where the run's dataset lies, if not in the cache")
    args = parser.parse_args(argv)
    if args.sets < 2 or args.threads < 1 or args.radius <= 0:
        parser.error("--sets must be >= 2, --threads >= 1 and --radius > 0")
    torch.set_num_threads(args.threads)

    def refuse(reason: str) -> int:
        print(f"val_test_gap.py: {reason}", file=sys.stderr)
        return 1

    try:
        _, state, run, task = load_run(args.run, args.data_dir)
    except (checkpoint.CheckpointError, UsageError, DataError, OSError) as error:
        return refuse(f"cannot load a run from {args.run}: {error}")
    if run.model not in GLIMPSE_MODELS or task.kind != "classify" or task.n_objects != 1:
        return refuse(f"{args.run} is a {run.model} run of {task.name}: this report reads a glimpse agent of one "
                      "object per canvas")
    if run.start != "center":
        # Agent.predict draws a random first glimpse from its own stream, not the env's: its errors would not be
        # train.py evaluate's.
        return refuse(f"{args.run} starts at a random location: this report reads agents that start at the centre")
    try:
        data = data_of(run, task)
    except (UsageError, DataError) as error:
        return refuse(str(error))
    agent = Agent.from_state(state)

    def error(canvases: Canvases) -> tuple[np.ndarray, np.ndarray]:
        prediction = agent.predict(canvases.images)
        return prediction.labels != canvases.labels, prediction.locations

    val = percent(error(fixed(data, task, "val"))[0])
    wrong, locations = error(test_set := fixed(data, task, "test"))
    print(f"{args.run}: greedy error, fixed validation set {val:.2f}%, fixed test set {percent(wrong):.2f}%")

    digits, labels = pool(data, "val")
    others = np.array([percent(error(canvas_set(digits, labels, np.arange(len(labels)), task, seed))[0])
                       for seed in range(1, args.sets + 1)])
    sd = others.std(ddof=1)
    where = f"; the fixed set at z = {(val - others.mean()) / sd:+.1f}" if sd > 0 else ""
    print(f"the validation digits on {args.sets} other canvas sets: mean {others.mean():.2f}%, sd {sd:.2f}, "
          f"{others.min():.2f} to {others.max():.2f}{where}")

    digits, labels = pool(data, "train")
    seen = [percent(error(canvas_set(digits, labels, np.arange(i, len(labels), 11)[:5000], task, 100 + i))[0])
            for i in range(3)]
    print("5,000 training digits (seen in training) on fresh canvases, three sets: "
          + ", ".join(f"{e:.2f}%" for e in seen))

    centres = agent.retina.centre(torch.from_numpy(locations), task.canvas_size).numpy()  # (N, T, 2) grid lines
    near = found(centres, test_set.positions, task.object_size or data.side, args.radius)
    n = int(wrong.sum())
    print(f"test errors: {n}; the digit found (a glimpse within {args.radius:g} px of its centre) and misread: "
          f"{int((wrong & near).sum())} ({100 * (wrong & near).sum() / max(n, 1):.1f}%), never found: "
          f"{int((wrong & ~near).sum())}; canvases whose digit no glimpse found: {int((~near).sum())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
