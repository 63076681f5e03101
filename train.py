"""Train the Recurrent Attention Model (Mnih et al. 2014) with REINFORCE, from the command line.

    python train.py --task cluttered60 --glimpses 6           # train; writes runs/cluttered60-6g-s0/
    python train.py --run-dir runs/cluttered60-6g-s0 --resume # continue a stopped run
    python train.py evaluate RUN                              # test error of RUN's best checkpoint
    python train.py visualize RUN                             # glimpse trajectories: PNG grid + GIF

Reads top to bottom: seed -> envs -> model and optimiser -> writer -> loop {rollout, loss, step, log,
evaluate, checkpoint} -> test. Episodes are collected through the batched gymnasium environment.
"""

from __future__ import annotations

import argparse
import copy
import ctypes
import dataclasses
import io
import json
import math
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch

from envs.tasks import TASKS

# Learning rates that differ from 1e-3, measured on cluttered60: at 1e-3 the differentiable glimpse went NaN or
# stalled at 75% validation error; at 3e-4 it reached 5.8% after 1M images.
DEFAULT_LR = {"soft-glimpse": 3e-4}

# Bookkeeping flags: how a run is executed, not what it learns. Only these may change on --resume.
BOOKKEEPING = ("resume", "run_dir", "progress", "data_dir", "threads", "stop_after", "snapshots")


def _flag(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class Args:
    """Every hyperparameter of a run; saved with it (config.json) and with every checkpoint."""

    task: str = _flag("cluttered60", "task preset (sets the canvas, clutter and the paper's sensor)",
                      choices=tuple(TASKS))
    model: str = _flag("ram", "ram (hard attention, REINFORCE), or a model that sees the whole canvas, trained by "
                       "backpropagation: soft (soft spatial attention), soft-glimpse (RAM with a differentiable "
                       "Gaussian glimpse), fc, cnn (no attention)",
                       choices=("ram", "soft", "soft-glimpse", "fc", "cnn"))
    score: str = _flag("scaled_dot", "soft attention's score function", choices=("additive", "dot", "scaled_dot",
                                                                                "general"))
    heads: int = _flag(1, "soft attention's heads")
    glimpses: int | None = _flag(None, "glimpses per image, T (default: the task's, 6 or 8)")
    glimpse_size: int | None = _flag(None, "side g of the smallest glimpse patch in pixels (default: the task's)")
    scales: int | None = _flag(None, "number of scales k of the retina (default: the task's)")
    canvas_size: int | None = _flag(None, "canvas side in pixels (default: the task's)")
    clutter: int | None = _flag(None, "pieces of clutter per canvas (default: the task's)")
    clutter_size: int | None = _flag(None, "side of each clutter piece in pixels (default: 8)")
    scale: int | None = _flag(None, "each retina scale is this many times wider than the previous one (default: 2)")
    start: str = _flag("random", "first glimpse: at a random location (the paper) or the centre",
                       choices=("random", "center"))
    core: str = _flag("rnn", "core network: the paper's ReLU RNN, or an LSTM", choices=("rnn", "lstm"))
    policy: str = _flag("learned", "locations: learned by REINFORCE, or uniformly random (the paper's ablation)",
                        choices=("learned", "random"))
    hidden_size: int = _flag(256, "units of the core network h_t")
    glimpse_hidden: int = _flag(128, "units of each glimpse-network pathway, h_g (what) and h_l (where)")
    g_size: int = _flag(256, "units of the glimpse representation g_t")
    loc_hidden: int = _flag(0, "units of a ReLU hidden layer in the location policy (0: the paper's linear map)")
    std: float = _flag(0.2, "standard deviation of the Gaussian location policy (canvas spans [-1, 1])")
    std_final: float | None = _flag(None, "anneal the policy's std from --std to this by the end of the run (cosine, "
                                    "like the learning rate); Monte-Carlo tests use it (default: --std throughout)")
    init: str | None = _flag(None, "start from the weights of this checkpoint (a run folder, best.pt or agent.pt) "
                             "of the same architecture, e.g. to fine-tune a trained agent with a smaller --std")
    batch_size: int = _flag(128, "episodes per training step")
    samples: int = _flag(3_000_000, "training budget in images (episodes) seen")
    lr: float | None = _flag(None, "Adam learning rate, decayed to lr * lr_final by a cosine schedule (default: "
                             "0.001; 0.0003 for soft-glimpse, whose Gaussian read diverges at 0.001)")
    lr_final: float = _flag(0.02, "final learning rate as a fraction of --lr")
    reinforce_weight: float = _flag(1.0, "weight of the REINFORCE term in the hybrid loss")
    baseline_weight: float = _flag(1.0, "weight of the baseline's regression term in the hybrid loss")
    clip_grad: float = _flag(5.0, "clip the gradient norm to this (0: off)")
    ema: float = _flag(0.0, "evaluate, select and ship an exponential moving average of the weights with this decay "
                       "per step, e.g. 0.999 (0: off, the trained weights themselves)")
    eval_every: int = _flag(300_000, "evaluate on the validation set every this many samples")
    eval_batch: int = _flag(1000, "episodes per batch when evaluating")
    snapshots: bool = _flag(False, "keep the weights of every validation in RUN/snapshots/ (the agent alone: 1-3 MB "
                            "for RAM), for `train.py curve RUN`: test error against training minutes; a resumed "
                            "run keeps it unless given")
    mc_samples: int = _flag(10, "rollouts averaged for the Monte-Carlo test error")
    seed: int = _flag(0, "random seed")
    threads: int = _flag(2, "torch CPU threads")
    run_dir: str | None = _flag(None, "run folder (default: runs/TASK-Tg-sSEED for RAM, runs/TASK-MODEL-sSEED for "
                                "the others)")
    resume: bool = _flag(False, "continue the run in --run-dir from its last checkpoint, with its own settings")
    data_dir: str | None = _flag(None, "MNIST cache folder (default: $RAM_DATA_DIR, else $XDG_CACHE_HOME/ram/mnist, "
                                 "else ~/.cache/ram/mnist)")
    progress: bool = _flag(True, "show a progress bar (--no-progress for logs)")
    stop_after: int | None = _flag(None, "end this invocation after it has seen this many samples (checkpointed; "
                                   "--resume continues), e.g. to fit a job into a time slot")

    def __post_init__(self) -> None:
        if self.lr is None:
            self.lr = DEFAULT_LR.get(self.model, 1e-3)


class UsageError(Exception):
    """A mistake in the command line: reported in one line, exit code 2."""


class TrainingError(Exception):
    """A run that cannot go on (e.g. a non-finite loss): reported in one line, exit code 1."""


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line (no usage dump), raised as UsageError."""

    def __init__(self, **kw):
        super().__init__(allow_abbrev=False, **kw)  # whole flag names only, so given_flags can see them

    def error(self, message: str):
        raise UsageError(f"{message} (see {self.prog} --help)")


def given_flags(argv: list[str]) -> set[str]:
    """Names of the Args fields set explicitly on the command line (to check them against a resumed run)."""
    given = set()
    for f in dataclasses.fields(Args):
        flag = "--" + f.name.replace("_", "-")
        names = (flag, "--no-" + flag[2:])
        if any(token in names or token.startswith(flag + "=") for token in argv):
            given.add(f.name)
    return given


def parse_args(argv: list[str]) -> Args:
    parser = Parser(
        prog="train.py",
        description="Train the Recurrent Attention Model (Mnih et al. 2014) on a cluttered-MNIST task. "
        "Subcommands: `train.py evaluate RUN`, `train.py visualize RUN`, `train.py curve RUN`, "
        "`train.py compare RUN...` (each has --help).",
    )
    for f in dataclasses.fields(Args):
        name = "--" + f.name.replace("_", "-")
        help = f.metadata["help"] + ("" if f.default is None else f" (default: {f.default})")
        if f.type in ("bool", bool):
            parser.add_argument(name, action=argparse.BooleanOptionalAction, default=f.default, help=help)
            continue
        kind = {"int": int, "int | None": int, "float": float, "float | None": float}.get(str(f.type), str)
        metavar = None if "choices" in f.metadata else {int: "N", float: "X"}.get(kind, f.name.split("_")[-1].upper())
        parser.add_argument(name, type=kind, default=f.default, help=help, choices=f.metadata.get("choices"),
                            metavar=metavar)
    args = Args(**vars(parser.parse_args(argv)))
    positive = ("heads", "glimpses", "glimpse_size", "scales", "canvas_size", "clutter_size", "scale", "batch_size",
                "samples", "eval_every", "eval_batch", "mc_samples", "threads", "hidden_size", "glimpse_hidden",
                "g_size", "stop_after")
    for name in positive:
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    if args.loc_hidden < 0:
        raise UsageError(f"--loc-hidden must be >= 0, got {args.loc_hidden}")
    if args.clutter is not None and args.clutter < 0:
        raise UsageError(f"--clutter must be >= 0, got {args.clutter}")
    if not args.std > 0 or not args.lr > 0 or not (args.std_final is None or args.std_final > 0):
        raise UsageError("--std, --std-final and --lr must be > 0")
    if args.std_final is not None and args.model != "ram":
        raise UsageError(f"--std-final is for --model ram (a {args.model} model has no location policy)")
    if not 0 <= args.lr_final <= 1:
        raise UsageError(f"--lr-final must be in [0, 1], got {args.lr_final}")
    if not 0 <= args.ema < 1:
        raise UsageError(f"--ema must be in [0, 1), got {args.ema}")
    if args.resume and args.run_dir is None:
        raise UsageError("--resume needs --run-dir RUN (the run to continue)")
    return args


def task_of(args: Args):
    from envs import get_task

    try:
        return get_task(args.task, n_glimpses=args.glimpses, glimpse_size=args.glimpse_size, n_scales=args.scales,
                        canvas_size=args.canvas_size, n_clutter=args.clutter, clutter_size=args.clutter_size,
                        scale=args.scale)
    except ValueError as e:
        raise UsageError(str(e)) from None


def default_run_dir(args: Args, task) -> str:
    """runs/TASK-Tg-sSEED for RAM (TASK-Tg-random-sSEED with random glimpses), runs/TASK-MODEL-sSEED otherwise."""
    if args.model != "ram":
        return f"runs/{args.task}-{args.model}-s{args.seed}"
    return f"runs/{args.task}-{task.n_glimpses}g{'-random' if args.policy == 'random' else ''}-s{args.seed}"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run_episodes(model, env, *, greedy: bool, index=None, seed=None):
    """One batch of episodes through a vector env (autoreset disabled): returns the classifier's logits, the
    labels, the glimpse locations (B, T, 2), log_pi and b (B, T - 1), and the env's rewards (B,)."""
    T = env.task.n_glimpses
    options = None if index is None else {"index": index}
    obs, _ = env.reset(seed=seed, options=options)
    state = None  # the zero state h_0 = c_0 = 0 (CoreNetwork)
    steps, locations = [], []
    no_label = np.zeros(env.num_envs, np.int64)
    for t in range(T):
        l = torch.from_numpy(obs["location"])
        locations.append(l)
        step = model.step(torch.from_numpy(obs["glimpse"]), l, state, greedy=greedy)
        state = step.state
        if t < T - 1:
            steps.append(step)
            obs, _, _, _, infos = env.step({"location": step.l_t.numpy(), "label": no_label})
        else:
            logits = model.classifier(step.h_t)
            # Detached: the label sent to the env is an action, not a path for gradients.
            _, reward, terminated, _, infos = env.step(
                {"location": np.zeros((env.num_envs, 2), np.float32), "label": logits.detach().argmax(-1).numpy()})
    assert terminated.all()
    log_pi, b = model.stacked_terms(steps, env.num_envs)
    return logits, torch.from_numpy(infos["label"]), torch.stack(locations, 1), log_pi, b, torch.from_numpy(reward)


@torch.no_grad()
def evaluate(model, env, n: int, *, mc_samples: int = 0, seed: int = 0) -> dict[str, float]:
    """Error on the first n canvases of env's fixed split: greedy (mean locations, one pass) and, if mc_samples
    (stochastic models only), Monte-Carlo (class probabilities averaged over mc_samples sampled rollouts)."""
    from ram.model import RecurrentAttention

    mc_samples = mc_samples if isinstance(model, RecurrentAttention) else 0
    model.eval()
    greedy_errors = mc_errors = 0
    B = env.num_envs
    batches = [((start + np.arange(B)) % n, min(B, n - start)) for start in range(0, n, B)]
    env.reset(seed=seed)  # rewinds the fixed split and seeds the random first glimpses
    for index, count in batches:
        logits, labels = predict(model, env, greedy=True, index=index)
        greedy_errors += (logits.argmax(-1) != labels)[:count].sum().item()
    # After the greedy pass, so the greedy error does not depend on mc_samples; the policy's noise comes from a
    # forked, seeded torch RNG, so the Monte-Carlo error is reproducible and training's RNG stream is untouched.
    with torch.random.fork_rng():
        torch.manual_seed(seed + 1)
        env.reset(seed=seed + 1)
        for index, count in batches if mc_samples else []:
            rollouts = [predict(model, env, greedy=False, index=index) for _ in range(mc_samples)]
            probs = sum(r[0].softmax(-1) for r in rollouts)
            mc_errors += (probs.argmax(-1) != rollouts[0][1])[:count].sum().item()
    model.train()
    out = {"greedy_error": 100.0 * greedy_errors / n}
    if mc_samples:
        out["mc_error"] = 100.0 * mc_errors / n
    return out


@torch.no_grad()
def glimpse_figure(model, env, n: int, seed: int = 0):
    """Greedy glimpse trajectories on the first n canvases of env's fixed split."""
    from ram.plots import trajectory_figure

    model.eval()
    env.reset(seed=seed)
    index = np.arange(env.num_envs)
    logits, labels, locations, *_ = run_episodes(model, env, greedy=True, index=index)
    model.train()
    return trajectory_figure(env.canvases(index[:n]).images, locations[:n].numpy(), logits[:n].argmax(-1).numpy(),
                             labels[:n].numpy(), env.retina)


def make_env(args: Args, task, split: str, num_envs: int):
    import gymnasium as gym

    import envs  # noqa: F401 - registers the ram/ environments

    if args.model == "ram":
        return gym.make_vec("ram/ClutteredMNIST-v0", num_envs=num_envs, task=task, split=split, start=args.start,
                            data_dir=args.data_dir, autoreset_mode="DISABLED")
    # Whole-canvas models: the same tasks and splits, one step per episode (see the image, name the digit); their
    # T attention steps happen inside the model.
    return gym.make_vec("ram/ClutteredMNIST-v0", num_envs=num_envs, task=task, split=split, observation="image",
                        n_glimpses=1, data_dir=args.data_dir, autoreset_mode="DISABLED")


def build_model(args: Args, task, env):
    """The model named by --model, sized from the env's spaces and the task; returns (model, its config)."""
    from ram.model import RAMConfig, RecurrentAttention
    from ram.soft import IMAGE_MODELS

    n_classes = int(env.single_action_space["label"].n)
    if args.model == "ram":
        config = RAMConfig(glimpse_shape=env.single_observation_space["glimpse"].shape, n_classes=n_classes,
                           hg_size=args.glimpse_hidden, hl_size=args.glimpse_hidden, g_size=args.g_size,
                           hidden_size=args.hidden_size, core=args.core, policy=args.policy,
                           loc_hidden=args.loc_hidden,
                           # the std the trained agent keeps (train() anneals towards it while training)
                           std=args.std if args.std_final is None else args.std_final)
        return RecurrentAttention(config), config
    cls, config_cls = IMAGE_MODELS[args.model]
    wanted = {"n_classes": n_classes, "n_steps": task.n_glimpses, "score": args.score, "heads": args.heads,
              "hidden_size": args.hidden_size, "canvas_size": task.canvas_size, "glimpse_size": task.glimpse_size,
              "n_scales": task.n_scales, "scale": task.scale, "hg_size": args.glimpse_hidden,
              "hl_size": args.glimpse_hidden, "g_size": args.g_size, "core": args.core}
    names = {f.name for f in dataclasses.fields(config_cls)}
    try:
        config = config_cls(**{k: v for k, v in wanted.items() if k in names})
        return cls(config), config
    except ValueError as e:
        raise UsageError(str(e)) from None


def load_init(model, config, args: Args) -> int:
    """Load --init's weights into ``model``; returns the samples they were trained on. The architecture must match
    (the policy's std may differ: that is what fine-tuning usually changes)."""
    from ram.checkpoint import load

    path = checkpoint_path(args.init)
    if not path.exists():
        raise UsageError(f"--init {args.init}: no such checkpoint")
    state = load(path)
    # Fields a checkpoint predates take their defaults; JSON makes tuples and lists compare equal.
    defaults = {f.name: f.default for f in dataclasses.fields(config) if f.default is not dataclasses.MISSING}
    theirs = json.loads(json.dumps({**defaults, **state.get("model_config", {})}))
    ours = json.loads(json.dumps(asdict(config)))
    theirs.pop("std", None), ours.pop("std", None)
    if state.get("args", {}).get("model", "ram") != args.model or theirs != ours:
        diff = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k)) or ["model"]
        raise UsageError(f"--init {path} is a different architecture ({', '.join(diff)} differ from this run's)")
    model.load_state_dict(state["model"])
    return int(state.get("samples", 0)) + int(state.get("init_samples", 0))


def run_images(model, env, *, index=None, seed=None):
    """One batch of one-step episodes for a whole-canvas model: (logits, labels, env rewards)."""
    options = None if index is None else {"index": index}
    obs, _ = env.reset(seed=seed, options=options)
    logits = model(torch.from_numpy(obs["image"])).logits
    # Detached: the label sent to the env is an action, not a path for gradients.
    _, reward, terminated, _, infos = env.step({"location": np.zeros((env.num_envs, 2), np.float32),
                                                "label": logits.detach().argmax(-1).numpy()})
    assert terminated.all()
    return logits, torch.from_numpy(infos["label"]), torch.from_numpy(reward)


def predict(model, env, *, greedy: bool, index=None, seed=None):
    """(logits, labels) of one batch of episodes, whichever kind the model is."""
    from ram.model import RecurrentAttention

    if isinstance(model, RecurrentAttention):
        return run_episodes(model, env, greedy=greedy, index=index, seed=seed)[:2]
    return run_images(model, env, index=index, seed=seed)[:2]


def keep_freed_memory() -> None:
    """Let glibc keep the memory a training step frees, for the next step to reuse.

    By default glibc returns freed memory at the top of its heap to the system (and serves large blocks with mmap,
    under a threshold it only raises as large blocks are freed), so each step faults its activations' pages back
    in. Fixing the mmap threshold at glibc's maximum (32 MiB) and raising the trim threshold removes that: measured
    +7 to +17% samples/s on this project's training step. A no-op where the C library is not glibc.
    """
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3  # from glibc's malloc.h
    mallopt(M_MMAP_THRESHOLD, 32 << 20)
    mallopt(M_TRIM_THRESHOLD, 512 << 20)
    mallopt(M_TOP_PAD, 64 << 20)


def train(args: Args, given: set[str] = frozenset()) -> dict:
    """Train (or, with args.resume, continue) a run; ``given`` names the flags set explicitly."""
    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

    from ram import checkpoint
    from ram.model import hybrid_loss

    task = task_of(args)
    run_dir = Path(args.run_dir or default_run_dir(args, task))
    resumed = None
    if args.resume:
        if not (run_dir / "last.pt").exists():
            raise UsageError(f"nothing to resume: {run_dir / 'last.pt'} does not exist")
        resumed = checkpoint.load(run_dir / "last.pt")
        saved = resumed["args"]
        # A resumed run keeps its own hyperparameters; a flag given now that contradicts them is a mistake.
        for name in sorted(set(given) - set(BOOKKEEPING)):
            own = saved.get(name, getattr(Args(), name))
            if getattr(args, name) != own:
                raise UsageError(f"--{name.replace('_', '-')} {getattr(args, name)} differs from the run's {own}: a "
                                 f"resumed run keeps its own settings (start a new run with another --run-dir)")
        # Bookkeeping comes from this command line, except --snapshots, which the run keeps unless it is given.
        now = {name: getattr(args, name) for name in BOOKKEEPING if name != "snapshots" or name in given}
        args = Args(**{**saved, **now, "run_dir": str(run_dir)})
        task = task_of(args)
    elif (run_dir / "last.pt").exists():
        raise UsageError(f"{run_dir} already holds a run: pass --resume to continue it, or another --run-dir")

    torch.set_num_threads(args.threads)
    keep_freed_memory()
    seed_everything(args.seed)

    # envs: fresh canvases for training, the fixed validation set for model selection
    env = make_env(args, task, "train", args.batch_size)
    env.reset(seed=args.seed)
    val_env = make_env(args, task, "val", args.eval_batch)

    model, config = build_model(args, task, env)
    # fused: one kernel over all parameters, about 4x faster than foreach on this model (the same update rule)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, fused=True)
    total_steps = math.ceil(args.samples / args.batch_size)

    def cosine(step: int, start: float, end: float) -> float:  # from start at step 0 to end at the last step
        return end + (start - end) * 0.5 * (1 + math.cos(math.pi * min(step / total_steps, 1.0)))

    def lr_factor(step: int) -> float:
        return cosine(step, 1.0, args.lr_final)

    def std_at(step: int) -> float:  # the policy's std: --std, or annealed to --std-final on the lr's cosine
        return args.std if args.std_final is None else cosine(step, args.std, args.std_final)

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    step, best_val, elapsed, history = 0, float("inf"), 0.0, []
    init_samples = 0
    if args.init is not None and resumed is None:
        init_samples = load_init(model, config, args)
    if resumed is not None:
        # With --ema, "model" holds the average (what is evaluated and shipped), "trained" the weights themselves.
        model.load_state_dict(resumed.get("trained", resumed["model"]))
        optimizer.load_state_dict(resumed["optimizer"])
        scheduler.load_state_dict(resumed["scheduler"])
        step, best_val, elapsed = resumed["step"], resumed["best_val_error"], resumed["elapsed"]
        history, init_samples = resumed["history"], resumed.get("init_samples", 0)
        torch.set_rng_state(resumed["rng"]["torch"])
        rng = resumed["rng"]["env"]
        # Checkpoints from before the canvas stream saved np_random's state alone: the stream is then seeded from it.
        env.set_rng_state(rng if "np_random" in rng else {"np_random": rng, "canvases": None})
    n_params = sum(p.numel() for p in model.parameters())
    start_samples = step * args.batch_size
    # Polyak averaging: a copy whose weights trail the trained ones; it is what validation selects and what ships.
    # Adam trains only `model`: the average has no gradients, it is updated in place after every step. Parameters are
    # the whole state: no model here has buffers (no batch norm), which a test checks.
    average = None
    if args.ema:
        average = copy.deepcopy(model).requires_grad_(False)
        if resumed is not None:
            average.load_state_dict(resumed["model"])
    evaluated = model if average is None else average

    run_dir.mkdir(parents=True, exist_ok=True)
    checkpoint.write_text(json.dumps({"args": asdict(args), "model_config": asdict(config)}, indent=2),
                          run_dir / "config.json")
    # On resume, drop what a stopped run logged after its last checkpoint, so no point is logged twice.
    writer = SummaryWriter(str(run_dir / "tb"), purge_step=start_samples + 1 if resumed else None)
    if resumed is None:
        writer.add_text("config", "```\n" + json.dumps(asdict(args), indent=2) + "\n```")

    def state_dict(val_error: float) -> dict:
        return {"args": asdict(args), "task": asdict(task), "model_config": asdict(config),
                "model": evaluated.state_dict(), **({"trained": model.state_dict()} if average is not None else {}),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "step": step,
                "samples": step * args.batch_size, "elapsed": elapsed, "best_val_error": best_val,
                "val_error": val_error, "history": history, "init_samples": init_samples,
                "rng": {"torch": torch.get_rng_state(), "env": env.get_rng_state()}}

    bar = tqdm(total=total_steps, initial=step, disable=not args.progress, unit="step", dynamic_ncols=True,
               desc=f"{args.task} T={task.n_glimpses}")
    eval_steps = max(1, args.eval_every // args.batch_size)
    tic, window, window_samples = time.perf_counter(), time.perf_counter(), 0
    while step < total_steps:
        if args.model == "ram":
            model.location.std = std_at(step)
            logits, labels, _, log_pi, b, reward = run_episodes(model, env, greedy=False)
            # Random locations leave nothing for REINFORCE to train.
            reinforce_weight = args.reinforce_weight if args.policy == "learned" else 0.0
        else:  # backpropagation alone: the hybrid loss with no location choices is the cross-entropy
            logits, labels, reward = run_images(model, env)
            log_pi = b = torch.zeros(len(labels), 0)
            reinforce_weight = 0.0
        losses = hybrid_loss(logits, labels, log_pi, b, reward=reward, reinforce_weight=reinforce_weight,
                             baseline_weight=args.baseline_weight)
        if not torch.isfinite(losses.total):
            # Stop before the optimiser spreads NaN into the weights: last.pt and best.pt hold the last good state.
            raise TrainingError(f"the loss became {losses.total.item()} at {step * args.batch_size:,} samples; "
                                f"{run_dir / 'last.pt'} holds the last evaluated state (try a smaller --lr)")
        optimizer.zero_grad(set_to_none=True)
        losses.total.backward()
        if args.clip_grad > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip_grad)
        optimizer.step()
        scheduler.step()
        if average is not None:
            with torch.no_grad():
                for a, p in zip(average.parameters(), model.parameters()):
                    a.lerp_(p, 1.0 - args.ema)
        step += 1
        window_samples += args.batch_size
        bar.update(1)

        # log, on the clock of samples seen
        samples = step * args.batch_size
        if step % 50 == 0 or step == total_steps:
            now = time.perf_counter()
            speed = window_samples / (now - window)
            window, window_samples = now, 0
            for name in ("total", "classification", "reinforce", "baseline", "accuracy"):
                writer.add_scalar(f"train/{name}", getattr(losses, name).item(), samples)
            writer.add_scalar("train/lr", scheduler.get_last_lr()[0], samples)
            if args.model == "ram":
                writer.add_scalar("train/std", model.location.std, samples)
            writer.add_scalar("perf/samples_per_s", speed, samples)
            bar.set_postfix(loss=f"{losses.total.item():.3f}", acc=f"{losses.accuracy.item():.3f}",
                            sps=f"{speed:,.0f}", best_val=f"{best_val:.2f}%" if history else "-")

        stopping = args.stop_after is not None and samples - start_samples >= args.stop_after
        # The last step evaluates too, unless a scheduled evaluation came less than half a period before it.
        last_eval = history[-1]["samples"] // args.batch_size if history else 0
        if history and step == total_steps and step - last_eval < eval_steps // 2 and not stopping:
            now = time.perf_counter()
            elapsed, tic = elapsed + now - tic, now
            checkpoint.save(state_dict(history[-1]["val_error"]), run_dir / "last.pt")
        elif step % eval_steps == 0 or step == total_steps or stopping:
            elapsed += time.perf_counter() - tic
            val = evaluate(evaluated, val_env, val_env.split_size, seed=args.seed)
            tic = time.perf_counter()
            val_error = val["greedy_error"]
            writer.add_scalar("val/error", val_error, samples)
            writer.add_scalar("val/accuracy", 100.0 - val_error, samples)
            writer.add_scalar("perf/minutes", elapsed / 60, samples)
            history.append({"samples": samples, "minutes": elapsed / 60, "val_error": val_error})
            if args.model == "ram":
                writer.add_figure("val/glimpses", glimpse_figure(evaluated, val_env, 8), samples)
            elif args.model in ("soft", "soft-glimpse"):
                canvases = val_env.canvases(np.arange(4))
                name, figure_for, _ = attention_frames(evaluated, args, task, {}, canvases.images, canvases.labels)
                writer.add_figure(f"val/{name}", figure_for(None), samples)
                evaluated.train()
            improved = val_error < best_val
            best_val = min(best_val, val_error)
            state = state_dict(val_error)
            if improved:
                checkpoint.save(state, run_dir / "best.pt")
            checkpoint.save(state, run_dir / "last.pt")
            if args.snapshots:  # the agent as validation saw it, and when; `train.py curve` tests them afterwards
                checkpoint.save({**checkpoint.agent_only(state), "minutes": elapsed / 60},
                                run_dir / "snapshots" / f"{samples:012d}.pt")
            bar.write(f"samples {samples:,}  val error {val_error:.2f}%  best {best_val:.2f}%  "
                      f"{elapsed / 60:.1f} min")
            if stopping and step < total_steps:
                bar.close()
                writer.close()
                env.close()
                val_env.close()
                return {"stopped": True, "samples": samples, "val_error": val_error, "run_dir": str(run_dir)}
    bar.close()
    env.close()  # its canvas worker thread ends here
    val_env.close()
    elapsed += time.perf_counter() - tic

    # test: the best checkpoint by validation error, measured once, never used for selection
    best = checkpoint.load(run_dir / "best.pt")
    model.load_state_dict(best["model"])
    if args.model == "ram":
        model.location.std = config.std  # Monte-Carlo rollouts draw with the std the agent keeps
    results = test(model, args, task, best, elapsed)
    results["params"] = n_params
    if args.init is not None:  # a fine-tuned agent: what it had seen before this run
        results["init"] = {"checkpoint": args.init, "samples": init_samples}
    results["history"] = history  # every evaluation, also those after the best one
    checkpoint.write_text(json.dumps(results, indent=2), run_dir / "results.json")
    # The trained agent alone (no optimiser state): small enough to ship, loadable by ram.agent.Agent.
    checkpoint.save(checkpoint.agent_only(best), run_dir / "agent.pt")
    # Validation error only: the test error stays out of the place where hyperparameters are compared.
    writer.add_hparams({k: v for k, v in asdict(args).items() if isinstance(v, (int, float, str, bool))},
                       {"hparam/best_val_error": best["val_error"]}, run_name="hparams")
    writer.close()
    if args.model in ("ram", "soft", "soft-glimpse"):  # the FC and CNN nets have no attention to draw
        visualize_command([str(run_dir), *(["--data-dir", args.data_dir] if args.data_dir else [])])
    return results


def test(model, args: Args, task, best: dict, elapsed: float) -> dict:
    test_env = make_env(args, task, "test", args.eval_batch)
    tic = time.perf_counter()
    errors = evaluate(model, test_env, test_env.split_size, mc_samples=args.mc_samples, seed=args.seed)
    test_env.close()
    return {
        "task": asdict(task), "checkpoint": "best.pt", "samples": best["samples"], "val_error": best["val_error"],
        "test": {**errors, **({"mc_samples": args.mc_samples} if "mc_error" in errors else {}),
                 "n": test_env.split_size},
        "train_minutes": elapsed / 60, "test_minutes": (time.perf_counter() - tic) / 60,
    }


def checkpoint_path(run: str) -> Path:
    """A checkpoint file as given, or a run folder's: its best.pt, else the agent.pt shipped in place of it."""
    path = Path(run)
    if not path.is_dir():
        return path
    shipped = (path / "agent.pt").exists() and not (path / "best.pt").exists()
    return path / ("agent.pt" if shipped else "best.pt")


def load_run(run: str, data_dir: str | None):
    """(checkpoint path, its contents, Args, Task) of RUN: a run folder (its best.pt) or a checkpoint file."""
    from envs.tasks import Task
    from ram.checkpoint import load

    path = checkpoint_path(run)
    state = load(path)
    return path, state, Args(**{**state["args"], "data_dir": data_dir}), Task(**state["task"])


def parse_evaluation_flags(parser: Parser, argv: list[str]) -> argparse.Namespace:
    """Parse argv with the flags every test-set evaluation shares (--mc-samples, --data-dir, --threads) added,
    checked, and the threads set."""
    parser.add_argument("--mc-samples", type=int, default=10, help="rollouts averaged for the Monte-Carlo error "
                        "(0: greedy only)")
    parser.add_argument("--data-dir", default=None, help="MNIST cache folder")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    opts = parser.parse_args(argv)
    if opts.mc_samples < 0 or opts.threads < 1:
        raise UsageError("--mc-samples must be >= 0 and --threads >= 1")
    torch.set_num_threads(opts.threads)
    return opts


def evaluate_command(argv: list[str]) -> int:
    parser = Parser(prog="train.py evaluate", description="Test error of a trained agent, "
                    "greedy and Monte-Carlo, on the fixed test (or validation) set.")
    parser.add_argument("run", help="run folder (its best.pt, else its agent.pt) or checkpoint file")
    parser.add_argument("--split", default="test", choices=("test", "val"), help="fixed set to evaluate on")
    opts = parse_evaluation_flags(parser, argv)
    path, state, args, task = load_run(opts.run, opts.data_dir)
    env = make_env(args, task, opts.split, args.eval_batch)
    model, _ = build_model(args, task, env)
    model.load_state_dict(state["model"])
    errors = evaluate(model, env, env.split_size, mc_samples=opts.mc_samples, seed=args.seed)
    print(json.dumps({"checkpoint": str(path), "split": opts.split, "n": env.split_size, **errors,
                      "mc_samples": opts.mc_samples}, indent=2))
    return 0


@torch.no_grad()
def attention_frames(model, args: Args, task, state: dict, images: np.ndarray, labels: np.ndarray):
    """(name, figure_for(steps), T) of a trained model on canvases: glimpse trajectories for RAM, the Gaussian
    reads (centre and extent per scale) for the soft glimpse, attention heatmaps for soft attention."""
    from ram.agent import Agent
    from ram.plots import attention_figure, trajectory_figure

    T = task.n_glimpses
    if args.model == "ram":
        agent = Agent.from_state(state)
        pred = agent.predict(images)
        return "glimpses", lambda steps: trajectory_figure(images, pred.locations, pred.labels, labels,
                                                           agent.retina, steps=steps), T
    model.eval()
    out = model(torch.from_numpy(images).float() / 255.0)
    predictions = out.logits.argmax(-1).numpy()
    if args.model == "soft":
        weights = out.weights.numpy()
        return "attention", lambda steps: attention_figure(images, weights, predictions, labels, steps=steps), T
    if args.model == "soft-glimpse":  # each scale's read spans N filters at its stride: N * stride * s**i pixels
        c = model.config
        sides = out.strides.numpy()[..., None] * c.glimpse_size * c.scale ** np.arange(c.n_scales)
        locations = out.locations.numpy()
        return "glimpses", lambda steps: trajectory_figure(images, locations, predictions, labels, None,
                                                           sides=sides, steps=steps), T
    raise UsageError(f"a {args.model} model has no attention to draw")


def visualize_command(argv: list[str]) -> int:
    parser = Parser(prog="train.py visualize", description="Draw where a trained model looks: a PNG grid and an "
                    "animated GIF, on test canvases: glimpse trajectories (ram, soft-glimpse) or attention heatmaps "
                    "(soft).")
    parser.add_argument("run", help="run folder (its best.pt, else its agent.pt) or checkpoint file")
    parser.add_argument("--n", type=int, default=8, help="number of canvases")
    parser.add_argument("--first", type=int, default=0, help="index of the first test canvas shown")
    parser.add_argument("--out", default=None, help="output path without extension (default: RUN/glimpses or "
                        "RUN/attention, or NAME-glimpses beside a checkpoint file NAME.pt)")
    parser.add_argument("--data-dir", default=None, help="MNIST cache folder")
    opts = parser.parse_args(argv)
    if not 1 <= opts.n <= 64:
        raise UsageError("--n must be in 1..64")
    from PIL import Image

    from envs import load_mnist
    from envs.tasks import fixed, split_size
    from ram.checkpoint import write_bytes
    from ram.plots import figure_to_array

    path, state, args, task = load_run(opts.run, opts.data_dir)
    mnist = load_mnist(opts.data_dir)
    if not 0 <= opts.first <= split_size(mnist, "test") - opts.n:
        raise UsageError(f"--first must be in 0..{split_size(mnist, 'test') - opts.n} for --n {opts.n}")
    canvases = fixed(mnist, task, "test", opts.first, opts.first + opts.n)
    model = None
    if args.model != "ram":
        env = make_env(args, task, "test", 1)
        model, _ = build_model(args, task, env)
        model.load_state_dict(state["model"])
    name, figure_for, T = attention_frames(model, args, task, state, canvases.images, canvases.labels)
    # Beside the checkpoint: RUN/NAME for a run folder's best.pt, FILE-NAME for another file.
    default = path.parent / name if path.name == "best.pt" else path.with_name(f"{path.stem}-{name}")
    out = Path(opts.out) if opts.out else default
    frames = []
    for steps in range(1, T + 1):
        fig = figure_for(steps)
        frames.append(Image.fromarray(figure_to_array(fig)))
        if steps == T:
            png = io.BytesIO()
            fig.savefig(png, format="png", dpi=110)
            write_bytes(png.getvalue(), out.with_suffix(".png"))
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:] + [frames[-1]] * 3, duration=600,
                   loop=0)
    write_bytes(gif.getvalue(), out.with_suffix(".gif"))
    print(f"wrote {out.with_suffix('.png')} and {out.with_suffix('.gif')}")
    return 0


def read_results(path: Path) -> dict:
    """A run's results.json, or a one-line UsageError if it cannot be read or lacks what `compare` and `curve` use."""
    try:
        results = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UsageError(f"{path}: not a readable results.json ({type(e).__name__})") from None

    def numbers(d, *keys) -> bool:
        return isinstance(d, dict) and all(isinstance(d.get(k), (int, float)) for k in keys)

    init = results.get("init") if isinstance(results, dict) else None
    if (not numbers(results, "train_minutes") or not numbers(results.get("test"), "greedy_error")
            or not isinstance(results.get("history"), list) or not results["history"]
            or not all(numbers(h, "samples", "minutes", "val_error") for h in results["history"])
            or (init is not None and not (numbers(init, "samples") and isinstance(init.get("checkpoint"), str)))):
        raise UsageError(f"{path}: not a results.json written by train.py (no test, history or train_minutes)")
    return results


def starting_run(init: str, *, beside: Path) -> dict | None:
    """results.json of the run that wrote a --init checkpoint (a .pt file or a run folder): in its folder, else in a
    folder of the same name in ``beside`` (runs shipped together, e.g. in results/, after the paths they trained in
    are gone); None if neither has one."""
    folder = Path(init).parent if Path(init).suffix == ".pt" else Path(init)
    for found in (folder / "results.json", beside / folder.name / "results.json"):
        if found.is_file():
            return read_results(found)
    return None


def first_reached(points: list[dict], key: str, target: float) -> dict | None:
    """The first point (in training order) whose ``key`` error is at or below ``target``, with the minutes of the
    point before it ("after_minutes", None for the first): the two bracket the moment. None if none is."""
    for i, p in enumerate(points):
        if p.get(key) is not None and p[key] <= target:
            return {**p, "after_minutes": points[i - 1]["minutes"] if i else None}
    return None


def curve_command(argv: list[str]) -> int:
    parser = Parser(prog="train.py curve", description="Test error against training time: every snapshot of a run "
                    "trained with --snapshots, measured on the fixed test set (greedy and Monte-Carlo), and the "
                    "training minutes at which it first reached a target error. A report only: the run's checkpoint "
                    "is chosen by validation error, never by this curve. Writes RUN/test_curve.json and "
                    "RUN/test_curve.png.")
    parser.add_argument("run", help="run folder trained with --snapshots")
    parser.add_argument("--target", type=float, default=None, help="test error (%%) to reach (default: the paper's "
                        "for the task and number of glimpses)")
    opts = parse_evaluation_flags(parser, argv)
    run_dir = Path(opts.run)
    if not run_dir.is_dir():
        raise UsageError(f"{run_dir} is not a run folder")
    snapshots = sorted((run_dir / "snapshots").glob("*.pt"))
    if not snapshots:
        raise UsageError(f"{run_dir} has no snapshots: train it with --snapshots")
    from envs.tasks import Task, paper_error
    from ram import compare
    from ram.checkpoint import load, write_bytes, write_text
    from ram.plots import test_curve_figure

    first = load(snapshots[0])
    args, task = Args(**{**first["args"], "data_dir": opts.data_dir}), Task(**first["task"])
    target = opts.target if opts.target is not None else paper_error(task)
    if target is None:
        raise UsageError(f"the paper has no number for this task ({task.name}, T={task.n_glimpses}): pass --target")
    # A fine-tuned run's clock starts where its starting runs stopped, as in `compare` (their minutes are counted
    # once the run has finished and its results.json names them; until then, its own minutes only).
    offset, note = {"samples": first.get("init_samples", 0), "minutes": 0.0}, "minutes of this run alone"
    if (run_dir / "results.json").exists():
        results = read_results(run_dir / "results.json")
        curve, _, chain = compare.lineage(results, partial(starting_run, beside=run_dir.parent))
        own = curve[len(curve) - len(results["history"])]
        offset = {k: own[k] - results["history"][0][k] for k in ("samples", "minutes")}
        note = ("minutes include those of the runs it started from that were found: " + " <- ".join(chain)
                if chain else note)
    env = make_env(args, task, "test", args.eval_batch)
    model, _ = build_model(args, task, env)
    points = []
    for path in snapshots:
        state = load(path)
        try:
            model.load_state_dict(state["model"])
            minutes = state["minutes"]
        except (RuntimeError, KeyError):
            raise UsageError(f"{path} is not a snapshot of this run (another architecture, or no minutes)") from None
        errors = evaluate(model, env, env.split_size, mc_samples=opts.mc_samples, seed=args.seed)
        points.append({"samples": state["samples"] + offset["samples"], "minutes": minutes + offset["minutes"],
                       "val_error": state["val_error"], **errors})
        mc = f"  MC {errors['mc_error']:.2f}%" if "mc_error" in errors else ""
        print(f"{points[-1]['samples']:>12,} samples {points[-1]['minutes']:7.1f} min  val {state['val_error']:.2f}%  "
              f"test greedy {errors['greedy_error']:.2f}%{mc}")
    env.close()
    reached = {key: first_reached(points, key, target) for key in ("greedy_error", "mc_error") if key in points[0]}
    for key, point in reached.items():
        after = point and point["after_minutes"]
        when = ("never" if point is None else f"by {point['minutes']:.1f} min and {point['samples']:,} samples, "
                + (f"after {after:.1f} min" if after is not None else "at the first snapshot"))
        print(f"{key.split('_')[0]} reached {target}%: {when}")
    report = {"note": "test error of every snapshot (reporting only: checkpoints are chosen by validation); "
                      + note, "split": "test", "n": env.split_size, "mc_samples": opts.mc_samples,
              "target": target, "reached": reached, "points": points}
    write_text(json.dumps(report, indent=2), run_dir / "test_curve.json")
    png = io.BytesIO()
    test_curve_figure(points, target).savefig(png, format="png", dpi=110)
    write_bytes(png.getvalue(), run_dir / "test_curve.png")
    print(f"wrote {run_dir / 'test_curve.json'} and {run_dir / 'test_curve.png'}")
    return 0


def compare_command(argv: list[str]) -> int:
    parser = Parser(prog="train.py compare", description="Compare trained runs: test error, parameters, training "
                    "time, multiply-accumulates and latency per image, pixels examined, cost against canvas size, "
                    "learning curves. Writes OUT/report.md, OUT/scaling.png and OUT/curves.png.")
    parser.add_argument("runs", nargs="+", help="run folders (each with results.json and best.pt or agent.pt), "
                        "e.g. results/cluttered60-6g")
    parser.add_argument("--out", default="comparison", help="output folder")
    parser.add_argument("--canvases", default="60,100,200,400", help="canvas sides for the scaling measurement")
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats per latency (median)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--data-dir", default=None, help="MNIST cache folder")
    opts = parser.parse_args(argv)
    try:
        canvases = [int(c) for c in opts.canvases.split(",")]
    except ValueError:
        raise UsageError(f"--canvases must be comma-separated integers, got {opts.canvases!r}") from None
    if opts.repeats < 1 or opts.threads < 1 or min(canvases) < 28:
        raise UsageError("--repeats and --threads must be >= 1 and every canvas >= 28")
    resolved = [Path(run).resolve() for run in opts.runs]
    for run, where in zip(opts.runs, resolved):
        if not (Path(run) / "results.json").exists():
            raise UsageError(f"{run} has no results.json (an unfinished run?)")
        if resolved.count(where) > 1:
            raise UsageError(f"{run} is given twice")
    from envs import load_mnist
    from envs.tasks import fixed
    from ram import compare
    from ram.agent import Agent
    from ram.checkpoint import write_bytes, write_text
    from ram.plots import curves_figure, scaling_figure
    from ram.retina import Retina
    from ram.soft import FCConfig, FullyConnected

    torch.set_num_threads(opts.threads)
    mnist = load_mnist(opts.data_dir)
    rows, scaling, curves, notes = [], [], {}, []
    loaded = [load_run(run, opts.data_dir) for run in opts.runs]

    def model_name(args, task) -> str:
        kind = "ram, random glimpses" if args.model == "ram" and args.policy == "random" else args.model
        return f"{kind} {task.name}" + (f" T={task.n_glimpses}" if args.model in ("ram", "soft", "soft-glimpse")
                                        else "")

    names = [model_name(args, task) for _, _, args, task in loaded]
    for run, (_, state, args, task), name in zip(opts.runs, loaded, names):
        if names.count(name) > 1:  # several runs of one model: tell them apart by their folders
            name = f"{name} ({Path(run).name})"
        results = read_results(Path(run) / "results.json")
        curves[name], minutes, chain = compare.lineage(results, partial(starting_run, beside=Path(run).parent))
        if chain:
            notes.append(f"- {name} was fine-tuned from {' <- '.join(chain)}: its minutes and learning curve "
                         "include those of the runs it started from that were found, up to the checkpoint it "
                         "started from.")
        env = make_env(args, task, "test", 1)
        model, _ = build_model(args, task, env)
        model.load_state_dict(state["model"])
        model.eval()
        retina = Retina(g=task.glimpse_size, k=task.n_scales, s=task.scale) if args.model == "ram" else None
        fn = compare.forward_fn(model, retina=retina, n_glimpses=task.n_glimpses)
        images = torch.from_numpy(fixed(mnist, task, "test", 0, 256).images)
        rows.append({
            "name": name, "greedy": results["test"]["greedy_error"], "mc": results["test"].get("mc_error"),
            "params": sum(p.numel() for p in model.parameters()), "minutes": minutes,
            "macs": compare.count_macs(fn, images[:1]),
            "latency_1": compare.latency(fn, images[:1], repeats=opts.repeats) * 1e3,
            "latency_256": compare.latency(fn, images, repeats=opts.repeats) * 1e3 / 256,
            "values": compare.values_read(canvas_size=task.canvas_size, retina=retina, n_glimpses=task.n_glimpses),
            # RAM: the union of its glimpses on these test canvases (greedy paths); the others see every pixel.
            "pixels": (compare.pixels_covered(torch.from_numpy(Agent.from_state(state).predict(images.numpy())
                                                               .locations), retina, task.canvas_size)
                       if retina is not None else float(task.canvas_size**2)),
        })
        for C in canvases:
            # Clutter density held constant; the weights carry over (the FC net's input cannot: a fresh one of the
            # right size measures its cost).
            bigger = task.with_(canvas_size=C, n_clutter=round(task.n_clutter * C * C / task.canvas_size**2))
            x = torch.from_numpy(fixed(mnist, bigger, "test", 0, 1).images)
            sized = fn if args.model != "fc" else compare.forward_fn(FullyConnected(FCConfig(canvas_size=C)).eval())
            scaling.append({"name": name, "canvas": C, "macs": compare.count_macs(sized, x),
                            "latency_ms": compare.latency(sized, x, repeats=opts.repeats) * 1e3})
    out = Path(opts.out)
    threads = f"{opts.threads} thread" + ("s" if opts.threads > 1 else "")
    lines = ["# Comparison", "", f"Measured on this machine with {threads}; latencies are medians of {opts.repeats} "
             "repeats. Errors are on the 10,000 fixed test canvases (greedy: mean locations, or one random path for "
             "random glimpses; MC: 10 sampled rollouts averaged). Values read: the numbers that enter the model per "
             "image. Pixels covered: canvas pixels under at least one glimpse (greedy paths on 256 test canvases), "
             "or the whole canvas.", "",
             "| model | test error greedy | test error MC | params | train min | MACs/image | latency b=1 (ms) | "
             "latency b=256 (ms/image) | values read | pixels covered |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        mc = "-" if r["mc"] is None else f"{r['mc']:.2f}%"
        lines.append(f"| {r['name']} | {r['greedy']:.2f}% | {mc} | {r['params']:,} | {r['minutes']:.0f} | "
                     f"{r['macs']:,} | {r['latency_1']:.2f} | {r['latency_256']:.3f} | {r['values']:,} | "
                     f"{r['pixels']:,.0f} |")
    lines += ["", *notes] if notes else []
    lines += ["", "## Cost against canvas size (batch 1)", "", "| model | canvas | MACs/image | latency (ms) |",
              "|---|---|---|---|"]
    lines += [f"| {r['name']} | {r['canvas']} | {r['macs']:,} | {r['latency_ms']:.2f} |" for r in scaling]
    lines += ["", "![scaling](scaling.png)", "", "![learning curves](curves.png)", ""]
    for fig, file in ((scaling_figure(scaling), "scaling.png"), (curves_figure(curves), "curves.png")):
        png = io.BytesIO()
        fig.savefig(png, format="png", dpi=110)
        write_bytes(png.getvalue(), out / file)
    write_text("\n".join(lines), out / "report.md")
    json_rows = {"models": rows, "scaling": scaling}
    write_text(json.dumps(json_rows, indent=2), out / "report.json")
    print(f"wrote {out / 'report.md'}, scaling.png, curves.png, report.json")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    from envs.mnist import DataError
    from ram.checkpoint import CheckpointError

    try:
        if argv and argv[0] == "evaluate":
            return evaluate_command(argv[1:])
        if argv and argv[0] == "visualize":
            return visualize_command(argv[1:])
        if argv and argv[0] == "compare":
            return compare_command(argv[1:])
        if argv and argv[0] == "curve":
            return curve_command(argv[1:])
        args = parse_args(argv)
        results = train(args, given_flags(argv))
        if results.get("stopped"):
            print(f"stopped at {results['samples']:,} samples; continue with: "
                  f"python train.py --run-dir {results['run_dir']} --resume")
            return 0
        print(json.dumps({k: results[k] for k in ("test", "val_error", "train_minutes")}, indent=2))
        return 0
    except (UsageError, DataError, CheckpointError, TrainingError) as e:
        print(f"train.py: error: {e}", file=sys.stderr)
        return 2 if isinstance(e, UsageError) else 1
    except KeyboardInterrupt:
        print("train.py: interrupted; continue with --resume (the last checkpoint is intact)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
