"""Throughput of one full training step of the agent on cluttered60, optionally beside the common public
implementation (kevinzakka/recurrent-visual-attention) run in the same process.

Run from the repository root (MNIST must be cached; ``make data`` fetches it):

    python benchmarks/bench_train.py                              # ours only
    python benchmarks/bench_train.py --reference /tmp/rva         # ours and theirs, interleaved
    python benchmarks/bench_train.py --quick --threads 1          # smoke run
    python benchmarks/bench_train.py --recipe --batch-size 1024   # the agent `python train.py` trains by default
    python benchmarks/bench_train.py --json out.json              # also write the numbers as JSON
    python benchmarks/bench_train.py --dataset rgb.npz            # ours on another dataset (e.g. RGB canvases)

``--reference PATH`` is a local checkout of https://github.com/kevinzakka/recurrent-visual-attention (obtained with
``git clone``; never copied into this repository). Its ``model.py`` is imported from PATH.

One step, ours, is what ``train.py`` does per batch: ``ram.kinds.play`` through the batched vector env made by
``ram.kinds.make_env`` (fresh canvases made a batch ahead on a worker thread, their integral images; T retina
reads), the hybrid loss, backward, gradient clipping, Adam and the scheduler. Theirs is what its
``Trainer.train_one_epoch`` does per batch, fed the same fresh canvases from ``envs.tasks.sample`` as float
(B, 1, 60, 60) tensors: T calls of its ``RecurrentAttention.forward`` (its retina loops over the batch in Python),
NLL + baseline MSE + 0.01 REINFORCE, backward and Adam. Both: T = 6 glimpses, 3 scales of 12 x 12 (scale 2), hidden
256, batch 128, the same torch threads.

Each side runs ``--warmup`` untimed steps, then ``--repeats`` timed repeats of ``--steps`` steps, interleaved
(ours, theirs, ours, ...) so that a change of machine load hits both alike; the ratio ours / theirs is the median of
the per-repeat ratios. A final, separately timed pass splits a step into its parts (wall time around each part:
torch runs CPU ops synchronously).

A benchmark, not a test: it asserts nothing about speed, and the numbers depend on the machine and its load. Each
row shows its spread, (slowest - fastest) / median, and the run ends with the load average.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import os
import platform
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from bench_foundation import SPREAD, print_table, write_json  # this script's folder is on sys.path
from torch.nn import functional as F

from envs import cluttered_mnist
from envs.retina import Retina
from envs.tasks import sample
from ram.config import Args, resolve, task_of
from ram.errors import UsageError
from ram.kinds import channels_of, make_env, n_actions
from ram.kinds import play as episode
from ram.losses import hybrid_loss
from ram.parallel import resolve_device, train_data_of
from ram.registry import spec
from ram.system import keep_freed_memory, seed_everything

SEED = 0
TASK = "cluttered60"
REFERENCE_URL = "https://github.com/kevinzakka/recurrent-visual-attention"
REFERENCE_LR = 3e-4  # its config.py default; the learning rate does not change the cost of a step
REFERENCE_REINFORCE_WEIGHT = 0.01  # its trainer's weight of the REINFORCE term


class Stopwatch:
    """Wall time accumulated per label; a disabled one times nothing (the throughput repeats)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.seconds: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def _timed(self, label: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[label] += time.perf_counter() - start

    def __call__(self, label: str) -> contextlib.AbstractContextManager:
        return self._timed(label) if self.enabled else contextlib.nullcontext()

    def wrap(self, fn: Callable, label: str) -> Callable:
        def timed(*args, **kwargs):
            with self._timed(label):
                return fn(*args, **kwargs)

        return timed


@contextlib.contextmanager
def patched(owner: Any, name: str, value: Any) -> Iterator[None]:
    """Replace ``owner.name`` for the breakdown pass only, restoring it (or the class attribute it shadowed)."""
    had_own = name in vars(owner)
    old = vars(owner).get(name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        if had_own:
            setattr(owner, name, old)
        else:
            delattr(owner, name)


class Ours:
    """The agent of train.py with its defaults on cluttered60, stepped exactly as train.py's loop steps it."""

    name = "ours"

    def __init__(self, batch_size: int = 128, device: torch.device | None = None, train_data: str = "auto", *,
                 recipe: bool = False, dataset: str = "mnist"):
        device = device or torch.device("cpu")
        # The paper's agent (RNN core) unless ``recipe``: the step the reference implementation is timed beside. With
        # ``recipe``, the agent `python train.py` trains by default (LSTM core, a hidden layer in the policy).
        args = resolve(Args(task=TASK, recipe=recipe, progress=False, batch_size=batch_size, device=str(device),
                            train_data=train_data, dataset=dataset))
        keep_freed_memory()
        task = task_of(args)
        args = dataclasses.replace(args, train_data=train_data_of(train_data, device, task))
        assert (task.n_glimpses, task.glimpse_size, task.n_scales, task.scale) == (6, 12, 3, 2), task
        assert recipe or (args.hidden_size, args.core) == (256, "rnn"), args
        self.args, self.task, self.device = args, task, device
        self.env = make_env(spec("ram"), args, task, "train", args.batch_size)
        self.env.reset(seed=SEED)
        # The model train.py builds (the registry's RAM entry): with ``recipe``, its glimpse widths and gradient routes.
        model, _ = spec("ram").build(args, task, n_actions(self.env), channels_of(args, task))
        self.model = model.to(device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=args.lr, fused=True)  # as train.py
        # train.py's factor is a cosine of the step; a constant one costs the same.
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda step: 1.0)

    @property
    def mnist(self):
        from envs import load_mnist

        return load_mnist()

    def step(self, watch: Stopwatch) -> None:
        args, model, optimizer = self.args, self.model, self.optimizer
        with watch("rollout"):
            ep = episode(spec("ram"), model, self.env, greedy=False)
        with watch("loss"):
            losses = hybrid_loss(ep.logits, ep.labels, ep.log_pi, ep.b, reinforce_weight=args.reinforce_weight,
                                 credit=args.reward)
        with watch("backward"):
            optimizer.zero_grad(set_to_none=True)
            losses.total.backward()
        with watch("clip"):
            if args.clip_grad > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip_grad)
        with watch("optimizer"):
            optimizer.step()
            self.scheduler.step()

    @contextlib.contextmanager
    def instrumented(self, watch: Stopwatch) -> Iterator[None]:
        """Time the env's parts too: waiting for fresh canvases, their integral images, retina reads, reset and
        step calls, and (apart) the canvases the worker thread makes meanwhile."""
        env = self.env
        Stream = cluttered_mnist._CanvasStream
        with contextlib.ExitStack() as stack:
            stack.enter_context(patched(Stream, "take", watch.wrap(Stream.take, "take")))
            stack.enter_context(patched(Stream, "_make", watch.wrap(Stream._make, "make")))
            stack.enter_context(patched(Retina, "read", watch.wrap(Retina.read, "retina")))
            integral = watch.wrap(cluttered_mnist.integral_image, "integral")
            stack.enter_context(patched(cluttered_mnist, "integral_image", integral))
            stack.enter_context(patched(env, "reset", watch.wrap(env.reset, "env")))
            stack.enter_context(patched(env, "step", watch.wrap(env.step, "env")))
            yield

    @staticmethod
    def parts(s: dict[str, float]) -> list[tuple[str, float]]:
        return [
            ("waiting for fresh canvases (made a batch ahead)", s["take"]),
            ("integral images (one per canvas)", s["integral"]),
            ("retina reads (T per episode)", s["retina"]),
            ("rest of the env (gymnasium, action checks, copies)",
             s["env"] - s["take"] - s["integral"] - s["retina"]),
            ("model forward (T glimpse steps, classifier, log_pi, b)", s["rollout"] - s["env"]),
            ("hybrid loss", s["loss"]),
            ("zero_grad + backward", s["backward"]),
            ("clip_grad_norm_", s["clip"]),
            ("Adam step + scheduler", s["optimizer"]),
        ]

    @staticmethod
    def overlapped(s: dict[str, float]) -> list[tuple[str, float]]:
        """Work on other threads during the step: not part of its wall time."""
        return [("canvases, on the worker thread", s["make"])]


def load_reference(path: Path) -> tuple[type, Any]:
    """Its ``model.RecurrentAttention`` and its ``modules`` module, imported from the checkout at ``path``."""
    path = path.resolve()
    for name in ("model.py", "modules.py"):
        if not (path / name).is_file():
            raise SystemExit(f"bench_train.py: --reference {path} has no {name}; pass a checkout of {REFERENCE_URL}")
    for name in ("model", "modules"):  # its top-level module names; refuse to reuse others of the same name
        if name in sys.modules:
            raise SystemExit(f"bench_train.py: a module named {name!r} is already imported")
    sys.path.insert(0, str(path))
    try:
        model = importlib.import_module("model")
        modules = importlib.import_module("modules")
    finally:
        sys.path.remove(str(path))
    if Path(model.__file__).resolve().parent != path:
        raise SystemExit(f"bench_train.py: imported {model.__file__}, not {path / 'model.py'}")
    return model.RecurrentAttention, modules


def reference_commit(path: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


class Theirs:
    """kevinzakka/recurrent-visual-attention's RecurrentAttention, stepped as its Trainer.train_one_epoch steps it,
    on fresh cluttered60 canvases from our generator (its data loader would read MNIST images instead)."""

    name = "theirs"

    def __init__(self, path: Path, ours: Ours):
        RecurrentAttentionRef, self.modules = load_reference(path)
        task, args = ours.task, ours.args
        self.task, self.mnist, self.batch_size, self.device = task, ours.mnist, args.batch_size, ours.device
        self.hidden_size, self.T = args.hidden_size, task.n_glimpses
        # Its Trainer passes (patch_size, num_patches, glimpse_scale, channels, loc_hidden, glimpse_hidden, std,
        # hidden_size, classes); both hidden sizes are 128 here, so their order does not matter.
        self.model = RecurrentAttentionRef(g=task.glimpse_size, k=task.n_scales, s=task.scale, c=1, h_g=128, h_l=128,
                                           std=args.std, hidden_size=args.hidden_size, num_classes=10).to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=REFERENCE_LR)  # its Trainer's: default Adam
        self.bitgen = np.random.PCG64(SEED)

    def step(self, watch: Stopwatch) -> None:
        B, model = self.batch_size, self.model
        with watch("sample"):
            canvases = sample(self.mnist, self.task, self.bitgen, B)
            x = torch.from_numpy(canvases.images).to(self.device).unsqueeze(1).float().div_(255.0)  # (B, 1, 60, 60)
            y = torch.from_numpy(canvases.labels).to(self.device)
        with watch("rollout"):
            self.optimizer.zero_grad()
            # Its Trainer.reset: h_0 zeros and l_0 uniform in [-1, 1], both leaves that require grad.
            h_t = torch.zeros(B, self.hidden_size, requires_grad=True, device=self.device)
            l_t = torch.empty(B, 2, device=self.device).uniform_(-1, 1).requires_grad_(True)
            log_pi, baselines = [], []
            for t in range(self.T):
                if t < self.T - 1:
                    h_t, l_t, b_t, p = model(x, l_t, h_t)
                else:
                    h_t, l_t, b_t, log_probas, p = model(x, l_t, h_t, last=True)
                log_pi.append(p)
                baselines.append(b_t)
        with watch("loss"):
            # Its hybrid loss: log_pi and baselines of all T steps, reward repeated over them.
            log_pi, baselines = torch.stack(log_pi, 1), torch.stack(baselines, 1)
            R = (log_probas.detach().argmax(1) == y).float()[:, None].expand(-1, self.T)
            reinforce = (-log_pi * (R - baselines.detach())).sum(1).mean()
            loss = F.nll_loss(log_probas, y) + F.mse_loss(baselines, R) + REFERENCE_REINFORCE_WEIGHT * reinforce
            loss.item()  # its trainer logs loss.item() and acc.item() every step
        with watch("backward"):
            loss.backward()
        with watch("optimizer"):
            self.optimizer.step()

    @contextlib.contextmanager
    def instrumented(self, watch: Stopwatch) -> Iterator[None]:
        """Time its retina (``modules.Retina.foveate``, the per-sample loop) inside its forward."""
        Retina_ = self.modules.Retina
        with patched(Retina_, "foveate", watch.wrap(Retina_.foveate, "retina")):
            yield

    @staticmethod
    def parts(s: dict[str, float]) -> list[tuple[str, float]]:
        return [
            ("canvas generation (envs.tasks.sample, to float)", s["sample"]),
            ("retina (its foveate: pad, per-sample loop, pool)", s["retina"]),
            ("model forward (rest of T forward calls, zero_grad)", s["rollout"] - s["retina"]),
            ("loss (NLL + MSE + REINFORCE, .item())", s["loss"]),
            ("backward", s["backward"]),
            ("Adam step", s["optimizer"]),
        ]


def run_steps(side: Ours | Theirs, steps: int, watch: Stopwatch | None = None) -> float:
    """Wall time of ``steps`` training steps of ``side``."""
    watch = watch or Stopwatch(enabled=False)
    start = time.perf_counter()
    for _ in range(steps):
        side.step(watch)
    if side.device.type == "cuda":
        torch.cuda.synchronize(side.device)  # the clock stops when the device's work is done
    return time.perf_counter() - start


def breakdown(side: Ours | Theirs, steps: int) -> list[dict[str, Any]]:
    """Per-part ms per step over ``steps`` instrumented steps, and the whole step (instrumented) for reference."""
    watch = Stopwatch(enabled=True)
    with side.instrumented(watch):
        seconds = run_steps(side, steps, watch)
    rows = [{"part": part, "ms_per_step": t / steps * 1e3, "share": t / seconds}
            for part, t in side.parts(watch.seconds)]
    accounted = sum(r["ms_per_step"] for r in rows)
    rows.append({"part": "unaccounted (loop, timers)", "ms_per_step": seconds / steps * 1e3 - accounted,
                 "share": 1 - accounted * steps / 1e3 / seconds})
    rows.append({"part": "whole step (instrumented)", "ms_per_step": seconds / steps * 1e3, "share": 1.0})
    rows += [{"part": f"meanwhile: {part}", "ms_per_step": t / steps * 1e3, "share": t / seconds}
             for part, t in getattr(side, "overlapped", lambda s: [])(watch.seconds)]
    return rows


def summary(side: Ours | Theirs, times: list[float], steps: int, batch: int) -> dict[str, Any]:
    """Median samples/s over repeats of ``steps`` steps of ``batch`` episodes, and its spread."""
    rates = [steps * batch / t for t in times]
    median = statistics.median(rates)
    params = sum(p.numel() for p in side.model.parameters())
    return {"implementation": side.name, "params": params, "samples_per_s": median,
            "ms_per_step": statistics.median(times) / steps * 1e3,
            "spread": (max(rates) - min(rates)) / median, "samples_per_s_repeats": [round(r, 1) for r in rates]}


def batch_sizes(text: str) -> list[int]:
    try:
        sizes = [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"comma-separated integers, got {text!r}") from None
    if min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"batch sizes must be >= 1, got {text!r}")
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per side (default 5, 1 quick)")
    parser.add_argument("--steps", type=int, default=None, help="training steps per repeat (default 40, 3 quick)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps per side first (default 5, 1 quick)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (both implementations)")
    parser.add_argument("--device", default="cpu", help="where both implementations run: cpu, cuda, cuda:N, auto")
    parser.add_argument("--batch-size", type=batch_sizes, default=[128], metavar="B[,B...]",
                        help="episodes per step; several (e.g. 128,1024,16384) measure each in turn (default 128)")
    parser.add_argument("--train-data", default="auto", choices=("auto", "env", "device"),
                        help="where our canvases are made, as train.py's flag (auto: device on a GPU, else env)")
    parser.add_argument("--reference", type=Path, default=None, metavar="PATH",
                        help=f"local checkout of {REFERENCE_URL} to measure side by side")
    parser.add_argument("--recipe", action="store_true", help="time the agent of the task's recipe (what `python "
                        "train.py` trains: LSTM core, a hidden layer in the policy, centre start) instead of the "
                        "paper's; not with --reference")
    parser.add_argument("--dataset", default="mnist", help="our canvases' dataset, as train.py's flag (e.g. an .npz "
                        "of RGB images, to time the colour path); not with --reference")
    parser.add_argument("--no-breakdown", dest="breakdown", action="store_false", help="skip the per-part timing pass")
    parser.add_argument("--quick", action="store_true", help="1 repeat of 3 steps (smoke run)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args()
    repeats = args.repeats or (1 if args.quick else 5)
    steps = args.steps or (3 if args.quick else 40)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 5)
    if repeats < 1 or steps < 1 or warmup < 0 or args.threads < 1:
        parser.error("--repeats, --steps and --threads must be >= 1, --warmup >= 0")
    if (args.recipe or args.dataset != "mnist") and args.reference is not None:
        parser.error("--reference times the paper's agent on MNIST beside theirs: leave out --recipe and --dataset")
    try:
        device = resolve_device(args.device)
    except UsageError as e:
        parser.error(str(e))
    cuda = device.type == "cuda"

    torch.set_num_threads(args.threads)
    meta = {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
            "machine": platform.machine(), "cpus": os.cpu_count(), "threads": args.threads, "task": TASK,
            "device": str(device), "gpu": torch.cuda.get_device_name(device) if cuda else None,
            "batch_sizes": args.batch_size, "repeats": repeats, "steps_per_repeat": steps, "warmup_steps": warmup,
            "quick": args.quick, "recipe": args.recipe, "dataset": args.dataset,
            "reference": None if args.reference is None else str(args.reference.resolve()),
            "reference_commit": None if args.reference is None else reference_commit(args.reference),
            "load_1min_before": round(os.getloadavg()[0], 2)}
    print("bench_train: " + ", ".join(f"{k} {v}" for k, v in meta.items()))
    print(f"medians of {repeats} timed repeats of {steps} steps after {warmup} warm-up steps, sides interleaved; "
          "spread = (slowest - fastest) / median")

    results, ratios, parts = [], {}, {}
    for B in args.batch_size:
        seed_everything(SEED)
        ours = Ours(B, device, args.train_data, recipe=args.recipe, dataset=args.dataset)
        meta["train_data"] = ours.args.train_data
        sides: list[Ours | Theirs] = [ours]
        if args.reference is not None:
            sides.append(Theirs(args.reference, ours))
        times: dict[str, list[float]] = {side.name: [] for side in sides}
        memory: dict[str, float | None] = {}
        for side in sides:
            if cuda:
                torch.cuda.reset_peak_memory_stats(device)
            run_steps(side, warmup)
            memory[side.name] = torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None
        for _ in range(repeats):
            for side in sides:
                times[side.name].append(run_steps(side, steps))
        results += [{**summary(side, times[side.name], steps, B), "batch": B, "gpu_mib": memory[side.name]}
                    for side in sides]
        if len(sides) == 2:
            # time theirs / time ours = speed ours / theirs
            per_pair = [a / b for a, b in zip(times["theirs"], times["ours"])]
            ratios[B] = {"median": statistics.median(per_pair), "min": min(per_pair), "max": max(per_pair),
                         "of_medians": results[-2]["samples_per_s"] / results[-1]["samples_per_s"]}
        # On a GPU the parts run asynchronously; the breakdown times the env's parts, which device canvases skip.
        if args.breakdown and args.batch_size[0] == B and not cuda and ours.args.train_data == "env":
            for side in sides:
                parts[side.name] = breakdown(side, steps)
        ours.env.close()
        del ours, sides
        if cuda:
            torch.cuda.empty_cache()

    task = task_of(resolve(Args(task=TASK)))
    columns = [("batch", "B", ",d"), ("implementation", "implementation", "s"), ("params", "params", ",d"),
               ("samples_per_s", "samples/s", ",.0f"), ("ms_per_step", "ms/step", ".1f"), SPREAD]
    if cuda:
        columns.append(("gpu_mib", "peak GPU MiB", ",.0f"))
    where = f"{meta['gpu']} ({device})" if cuda else f"{args.threads} torch threads"
    print_table(f"1. One training step on {TASK}: T={task.n_glimpses}, {task.n_scales} scales of "
                f"{task.glimpse_size}x{task.glimpse_size}, {'the recipe' if args.recipe else 'hidden 256'}, {where}, "
                f"our canvases made by the {meta['train_data']}, data generation included", results, columns)
    for B, ratio in ratios.items():
        print(f"B={B}: ratio ours / theirs: {ratio['median']:.2f}x (median of {repeats} interleaved pairs; "
              f"range {ratio['min']:.2f}-{ratio['max']:.2f}; ratio of medians {ratio['of_medians']:.2f}x)")
    for i, (name, rows) in enumerate(parts.items()):
        print_table(f"{2 + i}. Where a step goes, {name}: {steps} instrumented steps at B={args.batch_size[0]}, wall "
                    "time per part", rows, [("part", "part", "s"), ("ms_per_step", "ms/step", ".2f"),
                                            ("share", "share", ".0%")])

    # Other processes on the machine skew every figure: the load average tells whether the numbers can be trusted.
    meta["load_1min_after"] = round(os.getloadavg()[0], 2)
    print(f"\nload average (1 min): {meta['load_1min_before']} before, {meta['load_1min_after']} after "
          f"on {meta['cpus']} cpus")

    if args.json is not None:
        write_json(args.json, {"meta": meta, "throughput": results,
                               "ratio_ours_over_theirs": {str(B): r for B, r in ratios.items()}, "breakdown": parts})
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
