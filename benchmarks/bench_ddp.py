"""Data-parallel training on one machine's CPU: train.py under torchrun with 1 and 2 processes against one process
with the same cores as threads. It shows what DDP costs (gradient all-reduce over gloo, a process each) and what it
buys, on the real training loop.

Run from the repository root (MNIST must be cached; ``make data`` fetches it):

    python benchmarks/bench_ddp.py                     # 3 interleaved repeats of every setting, 100k samples each
    python benchmarks/bench_ddp.py --quick             # smoke run
    python benchmarks/bench_ddp.py --json out.json

Each setting trains the cluttered60 default agent (train.py's defaults: RNN core, T = 6) for ``--samples`` samples
into a temporary run folder with ``--stop-after``, then reads the throughput from its checkpoint: samples over the
seconds of training it recorded (validation excluded). The settings run one after another, interleaved over the
repeats, so that a change of machine load hits them alike; the figures are medians over the repeats.

A benchmark, not a test: it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from bench_foundation import SPREAD, print_table, write_json  # this script's folder is on sys.path

from ram import checkpoint

ROOT = Path(__file__).resolve().parent.parent
# (name, processes, threads per process, episodes per process and step): the first is the reference.
# Processes 0: plain python; -2: two plain runs side by side, no communication (what DDP could reach at most).
SETTINGS = [
    ("1 process, 2 threads, B=128", 0, 2, 128),
    ("torchrun 1 process, 2 threads, B=128", 1, 2, 128),
    ("torchrun 2 processes x 1 thread, B=64 each (global 128)", 2, 1, 64),
    ("2 plain processes x 1 thread, B=64 each, no DDP (ceiling)", -2, 1, 64),
    ("1 process, 2 threads, B=256", 0, 2, 256),
    ("torchrun 2 processes x 1 thread, B=128 each (global 256)", 2, 1, 128),
]


def train_once(processes: int, threads: int, batch: int, samples: int, folder: Path) -> float:
    """Samples per second of training (from last.pt: validation excluded) of one run of train.py; of two plain runs
    side by side (processes -2), the sum of theirs."""
    def flags(run_dir: Path) -> list[str]:
        return ["train.py", "--no-recipe", "--run-dir", str(run_dir), "--threads", str(threads),
                "--batch-size", str(batch), "--samples", "100000000", "--stop-after", str(samples),
                "--eval-every", "100000000", "--no-progress"]

    launcher = [sys.executable] if processes <= 0 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    folders = [folder / str(i) for i in range(2 if processes < 0 else 1)]
    jobs = [subprocess.Popen([*launcher, *flags(f)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True) for f in folders]
    for job in jobs:
        _, err = job.communicate()
        if job.returncode != 0:
            raise SystemExit(f"bench_ddp.py: train.py failed ({job.returncode}): {err.strip()[-600:]}")
    states = [checkpoint.load(f / "last.pt") for f in folders]
    return sum(state["samples"] / state["elapsed"] for state in states)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=None, help="interleaved repeats of every setting (default 3)")
    parser.add_argument("--samples", type=int, default=None, help="samples each run trains on (default 100,000)")
    parser.add_argument("--quick", action="store_true", help="1 repeat of 6,400 samples (smoke run)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args()
    repeats = args.repeats or (1 if args.quick else 3)
    samples = args.samples or (6_400 if args.quick else 100_000)
    if repeats < 1 or samples < 256:
        parser.error("--repeats must be >= 1 and --samples >= 256")
    meta = {"torch": torch.__version__, "cpus": os.cpu_count(), "repeats": repeats, "samples": samples,
            "load_1min_before": round(os.getloadavg()[0], 2)}
    print("bench_ddp: " + ", ".join(f"{k} {v}" for k, v in meta.items()))
    rates: dict[str, list[float]] = {name: [] for name, *_ in SETTINGS}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            for i, (name, processes, threads, batch) in enumerate(SETTINGS):
                rates[name].append(train_once(processes, threads, batch, samples, Path(tmp) / f"{r}-{i}"))
                print(f"  repeat {r + 1}: {name}: {rates[name][-1]:,.0f} samples/s", flush=True)
    # Each setting against one plain process with 2 threads and the same global batch (episodes per step).
    plain = {batch: statistics.median(rates[name]) for name, processes, _, batch in SETTINGS if processes == 0}
    rows = []
    for name, processes, threads, batch in SETTINGS:
        median = statistics.median(rates[name])
        reference = plain.get(batch * max(processes, 1), plain[128])
        rows.append({"setting": name, "processes": max(abs(processes), 1), "threads": threads, "batch": batch,
                     "samples_per_s": median, "vs_one_process": median / reference,
                     "spread": (max(rates[name]) - min(rates[name])) / median,
                     "samples_per_s_repeats": [round(x, 1) for x in rates[name]]})
    print_table(f"Training throughput of train.py (cluttered60, its defaults) over {samples:,} samples, medians of "
                f"{repeats}", rows, [("setting", "setting", "s"), ("samples_per_s", "samples/s", ",.0f"),
                                     ("vs_one_process", "vs 1 process, same global batch", ".2f"), SPREAD])
    meta["load_1min_after"] = round(os.getloadavg()[0], 2)
    print(f"\nload average (1 min): {meta['load_1min_before']} before, {meta['load_1min_after']} after "
          f"on {meta['cpus']} cpus")
    if args.json is not None:
        write_json(args.json, {"meta": meta, "throughput": rows})
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
