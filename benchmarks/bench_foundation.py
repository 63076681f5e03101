"""Throughput of the foundation: canvas generation, the glimpse sensor and the batched environment.

Run from the repository root (MNIST must be cached; ``make data`` fetches it):

    python benchmarks/bench_foundation.py                 # or: make bench
    python benchmarks/bench_foundation.py --quick         # smoke run, fewer repeats
    python benchmarks/bench_foundation.py --json out.json # also write the numbers as JSON

Three parts, each reported as the median over ``--repeats`` timed repeats after one untimed warm-up:

1. Generation: images/s of ``envs.tasks.sample`` on one core (``torch.set_num_threads(1)``; the numpy ops it
   uses, fancy indexing, ``maximum`` and ``random_raw``, are single-threaded anyway), in calls of 128 and 1024.
2. Retina: glimpses/s at B=128 with 2 torch threads, (a) ``Retina(...)(images, l)``, which builds the integral
   image every call, and (b) ``retina.read(S, l)`` from a precomputed table, as the env does (one table per
   episode, T reads).
3. Vector env: ``ClutteredMNISTVectorEnv(num_envs=128)`` stepped with random actions, resets included, 2 threads.

A benchmark, not a test: it asserts nothing and numbers depend on the machine and its load. Each row also shows
its spread, (slowest - fastest) / median, and the run ends with the load average: a large spread or a load above
what this script uses (about 1-2) means other processes shared the CPU and the figures are low.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from gymnasium.vector import AutoresetMode

from envs import ClutteredMNISTVectorEnv, get_task, load_mnist
from envs.mnist import MNIST
from envs.retina import Retina, integral_image
from envs.tasks import sample
from ram.checkpoint import write_text

SEED = 0
GEN_TASKS = ("translated60", "cluttered60", "cluttered100")
GEN_BATCHES = (128, 1024)
RETINA_BATCH = 128
RETINA_THREADS = 2
ENV_THREADS = 2
NUM_ENVS = 128
SPREAD = ("spread", "spread", ".0%")  # the table column of Timing.spread


class Timing(NamedTuple):
    seconds: float  # median wall time of one repeat
    spread: float  # (slowest - fastest) / median: large when something else shared the CPU


def time_repeats(fn: Callable[[], Any], repeats: int) -> Timing:
    """Wall time of ``fn()`` over ``repeats`` calls, after one untimed warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return Timing(median, (max(times) - min(times)) / median)


def bench_generation(mnist: MNIST, repeats: int, images_per_repeat: int) -> list[dict[str, Any]]:
    """images/s of ``sample`` per task and call size; each repeat draws ``images_per_repeat`` canvases."""
    torch.set_num_threads(1)
    rows = []
    for name in GEN_TASKS:
        task = get_task(name)
        for batch in GEN_BATCHES:
            bitgen = np.random.PCG64(SEED)
            calls = max(1, images_per_repeat // batch)

            def run(task=task, batch=batch, bitgen=bitgen, calls=calls) -> None:
                for _ in range(calls):
                    sample(mnist, task, bitgen, batch)

            seconds, spread = time_repeats(run, repeats)
            rows.append({"task": name, "batch": batch, "images_per_s": calls * batch / seconds,
                         "us_per_image": seconds / (calls * batch) * 1e6, "spread": spread})
    return rows


def bench_retina(mnist: MNIST, repeats: int, calls_per_repeat: int) -> list[dict[str, Any]]:
    """glimpses/s at B=128: with the integral image built every call, and read from a precomputed one."""
    torch.set_num_threads(RETINA_THREADS)
    rows = []
    for name in ("cluttered60", "cluttered100"):
        task = get_task(name)
        retina = Retina(g=task.glimpse_size, k=task.n_scales, s=task.scale)
        images = torch.from_numpy(sample(mnist, task, np.random.PCG64(SEED), RETINA_BATCH).images)
        l = torch.from_numpy(np.random.default_rng(SEED).uniform(-1, 1, (RETINA_BATCH, 2)).astype(np.float32))
        S = integral_image(images)
        cases: dict[str, Callable[[], Any]] = {
            "retina(images, l)": lambda retina=retina, images=images, l=l: retina(images, l),
            "retina.read(S, l)": lambda retina=retina, S=S, l=l: retina.read(S, l),
            "integral_image only": lambda images=images: integral_image(images),
        }
        for case, fn in cases.items():

            def run(fn=fn) -> None:
                for _ in range(calls_per_repeat):
                    fn()

            seconds, spread = time_repeats(run, repeats)
            seconds /= calls_per_repeat
            rows.append({"canvas": task.canvas_size, "scales": task.n_scales, "glimpse": task.glimpse_size,
                         "case": case, "us_per_call": seconds * 1e6, "glimpses_per_s": RETINA_BATCH / seconds,
                         "spread": spread})
    return rows


def bench_env(mnist: MNIST, repeats: int, episodes_per_repeat: int) -> list[dict[str, Any]]:
    """Random-action rollouts of the vector env on cluttered60, resets included, for two autoreset modes."""
    torch.set_num_threads(ENV_THREADS)
    rows = []
    for mode in (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP):
        env = ClutteredMNISTVectorEnv(num_envs=NUM_ENVS, task="cluttered60", mnist=mnist, autoreset_mode=mode)
        T = env.task.n_glimpses
        # Actions drawn up front: action_space.sample() on a batched Dict would be timed instead of the env.
        rng = np.random.default_rng(SEED)
        pool = [{"location": rng.uniform(-1, 1, (NUM_ENVS, 2)).astype(np.float32),
                 "label": rng.integers(0, 10, NUM_ENVS)} for _ in range(64)]
        # NEXT_STEP spends one extra step per episode on the reset (its actions are ignored): T + 1 steps.
        steps_per_episode = T + 1 if mode == AutoresetMode.NEXT_STEP else T
        n_steps = episodes_per_repeat * steps_per_episode
        env.reset(seed=SEED)
        completed: list[int] = []  # episodes ended per repeat: one per sub-env every steps_per_episode calls

        def run(env=env, pool=pool, n_steps=n_steps, completed=completed) -> None:
            episodes = 0
            for i in range(n_steps):
                _, _, terminated, _, _ = env.step(pool[i % len(pool)])
                episodes += int(terminated.sum())
            completed.append(episodes)

        seconds, spread = time_repeats(run, repeats)
        episodes = statistics.median(completed)
        rows.append({"autoreset": mode.value, "num_envs": NUM_ENVS, "steps_per_episode": steps_per_episode,
                     "step_calls_per_s": n_steps / seconds,
                     "env_steps_per_s": n_steps * NUM_ENVS / seconds,
                     "glimpses_per_s": episodes * T / seconds,
                     "episodes_per_s": episodes / seconds,
                     "ms_per_step_call": seconds / n_steps * 1e3, "spread": spread})
        env.close()
    return rows


def print_table(title: str, rows: list[dict[str, Any]], columns: list[tuple[str, str, str]]) -> None:
    """A plain fixed-width table; ``columns`` are (key, header, format)."""
    cells = [[format(row[key], fmt) for key, _, fmt in columns] for row in rows]
    widths = [max(len(header), *(len(c[i]) for c in cells)) for i, (_, header, _) in enumerate(columns)]
    print(f"\n{title}")
    print("  ".join(h.rjust(w) for (_, h, _), w in zip(columns, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for c in cells:
        print("  ".join(v.rjust(w) for v, w in zip(c, widths, strict=True)))


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` as JSON atomically (the project's one atomic writer)."""
    write_text(json.dumps(payload, indent=2) + "\n", path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per measurement (default 7, 3 quick)")
    parser.add_argument("--quick", action="store_true", help="fewer repeats and less work per repeat (smoke run)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args()
    repeats = args.repeats or (3 if args.quick else 7)
    if repeats < 1:
        parser.error("--repeats must be >= 1")
    scale = 4 if args.quick else 1

    mnist = load_mnist()
    meta = {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
            "machine": platform.machine(), "cpus": os.cpu_count(), "repeats": repeats, "quick": args.quick,
            "load_1min_before": round(os.getloadavg()[0], 2)}
    print("bench_foundation: " + ", ".join(f"{k} {v}" for k, v in meta.items()))
    print(f"medians of {repeats} timed repeats after one warm-up; spread = (slowest - fastest) / median")

    images_per_repeat, calls_per_repeat, episodes_per_repeat = 8192 // scale, 200 // scale, 20 // scale

    generation = bench_generation(mnist, repeats, images_per_repeat)
    print_table(f"1. Generation, envs.tasks.sample, 1 torch thread (numpy single-threaded), "
                f"{images_per_repeat} images per repeat", generation,
                [("task", "task", "s"), ("batch", "batch", "d"),
                 ("images_per_s", "images/s", ",.0f"), ("us_per_image", "us/image", ".1f"), SPREAD])

    retina = bench_retina(mnist, repeats, calls_per_repeat)
    print_table(f"2. Retina, B={RETINA_BATCH} uint8 canvases, {RETINA_THREADS} torch threads, "
                f"{calls_per_repeat} calls per repeat", retina,
                [("canvas", "canvas", "d"), ("scales", "k", "d"), ("glimpse", "g", "d"), ("case", "case", "s"),
                 ("us_per_call", "us/call", ",.0f"), ("glimpses_per_s", "glimpses/s", ",.0f"), SPREAD])
    print("(a) retina(images, l) builds the integral image every call; (b) retina.read(S, l) reuses one, as the env")

    env = bench_env(mnist, repeats, episodes_per_repeat)
    print_table(f"3. ClutteredMNISTVectorEnv(num_envs={NUM_ENVS}, task='cluttered60'), random actions, resets "
                f"included, {ENV_THREADS} torch threads, {episodes_per_repeat} episodes per repeat", env,
                [("autoreset", "autoreset", "s"), ("steps_per_episode", "steps/ep", "d"),
                 ("step_calls_per_s", "step calls/s", ",.0f"), ("ms_per_step_call", "ms/call", ".2f"),
                 ("env_steps_per_s", "env steps/s", ",.0f"), ("glimpses_per_s", "glimpses/s", ",.0f"),
                 ("episodes_per_s", "episodes/s", ",.0f"), SPREAD])
    print("env steps/s = step calls/s x num_envs; glimpses/s counts the T glimpses of each completed episode; "
          "episodes/s = samples/s")

    # Other processes on the machine skew every figure: the load average tells whether the numbers can be trusted.
    meta["load_1min_after"] = round(os.getloadavg()[0], 2)
    print(f"\nload average (1 min): {meta['load_1min_before']} before, {meta['load_1min_after']} after "
          f"on {meta['cpus']} cpus")

    if args.json is not None:
        write_json(args.json, {"meta": meta, "generation": generation, "retina": retina, "env": env})
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
