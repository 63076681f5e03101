"""Train the Recurrent Attention Model (Mnih et al. 2014) with REINFORCE, from the command line.

    python train.py --task cluttered60 --glimpses 6           # train; writes runs/cluttered60-6g-s0/
    python train.py --run-dir runs/cluttered60-6g-s0 --resume # continue a stopped run
    python train.py evaluate RUN                              # test error of RUN's best checkpoint
    python train.py visualize RUN                             # glimpse trajectories: PNG grid + GIF
    python train.py curve RUN                                 # test error of every snapshot against minutes
    python train.py compare RUN...                            # models side by side: errors, costs, scaling

Reads top to bottom: seed -> envs -> model and optimiser -> writer -> loop {rollout, loss, step, log,
evaluate, checkpoint} -> test. The library is in ram/: the config and its flags (ram.config), the models
(ram.registry), episodes and evaluation (ram.episodes), schedules, run folders (ram.runs), files (ram.checkpoint),
reports (ram.reports).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import signal
import sys
import threading
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from ram import checkpoint, parallel
from ram.config import Args, Parser, TrainingError, UsageError, given_flags, parse_args
from ram.episodes import evaluate, loss, make_env, n_actions, play_baselines, watch_games
from ram.parallel import resolve_device, train_data_of
from ram.registry import spec
from ram.runs import Progress, init_record, load_init, load_model, load_run, open_run, restore, save_validated
from ram.schedules import lr_factor, policy_std
from ram.system import keep_freed_memory, seed_everything


def build_model(args: Args, task, env):
    """The model of --model, sized from the task and the env's labels: (model, its config)."""
    return spec(args.model).build(args, task, n_actions(env))


def train(args: Args, given: set[str] = frozenset()) -> dict:
    """Train (or, with args.resume, continue) a run; ``given`` names the flags set explicitly. Under torchrun, each
    process is one rank of a data-parallel run (ram.parallel); rank 0 alone validates, logs and writes files."""
    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

    args, task, run_dir, resumed = open_run(args, given)
    s = spec(args.model)
    device = resolve_device(args.device)
    # The run records where it trained (auto resolved), so that --resume continues there.
    args = replace(args, device=str(device), train_data=train_data_of(args.train_data, device, task))
    ranks, device = parallel.start(device)
    if resumed is not None and resumed.get("world", 1) != ranks.world:
        raise UsageError(f"{run_dir} trained on {resumed.get('world', 1)} process(es): resume it with as many "
                         f"(torchrun --nproc_per_node={resumed.get('world', 1)}), not {ranks.world}")
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    seed = ranks.seed(args.seed)  # rank 0's seed is the run's: one process trains as it always did
    seed_everything(seed)

    # envs: fresh canvases for training (each rank its own stream), the fixed validation set for model selection
    env = make_env(s, args, task, "train", args.batch_size, device=device)
    env.reset(seed=seed)
    val_env = make_env(s, args, task, "val", args.eval_batch) if ranks.main else None

    model, config = build_model(args, task, env)
    model.to(device)
    # fused: one kernel over all parameters, faster than foreach on these small models (the same update rule)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, fused=True)
    batch = args.batch_size * ranks.world  # the global batch: every rank's episodes make one step
    total_steps = math.ceil(args.samples / batch)
    warmup_steps = math.ceil(args.lr_warmup / batch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, total_steps, args.lr_final,
                                                                                    warmup_steps))
    run = restore(resumed, model, optimizer, scheduler, env, rank=ranks.rank) if resumed else Progress()
    if args.init is not None and resumed is None:
        run.init_samples = load_init(model, config, args)
    start_samples = run.step * batch
    # Polyak averaging: a copy whose weights trail the trained ones; it is what validation selects and what ships.
    # Adam trains only `model`: the average has no gradients, it is updated in place after every step. Parameters are
    # the whole state: no model here has buffers (no batch norm), which a test checks.
    average = copy.deepcopy(model).requires_grad_(False) if args.ema else None
    if average is not None and resumed is not None:
        average.load_state_dict(resumed["model"])
    evaluated = model if average is None else average
    # What plays the training episodes: with several ranks, DDP around them, which averages the gradients in backward.
    trainer = parallel.wrap(s, model, ranks, device, every_parameter=task.n_glimpses > 1)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.autocast == "bf16")

    writer = parallel.Silent()
    if ranks.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        checkpoint.write_text(json.dumps({"args": asdict(args), "model_config": asdict(config)}, indent=2),
                              run_dir / "config.json")
        # On resume, drop what a stopped run logged after its last checkpoint, so no point is logged twice.
        writer = SummaryWriter(str(run_dir / "tb"), purge_step=start_samples + 1 if resumed else None)
        if resumed is None:
            writer.add_text("config", "```\n" + json.dumps(asdict(args), indent=2) + "\n```")

    def rng_state() -> dict:
        state = {"torch": torch.get_rng_state(), "env": env.get_rng_state()}
        if device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(device)
        return state

    def state_dict(val_error: float, ranks_state: dict) -> dict:
        """The checkpoint (``ranks_state``: ``gathered()`` at this step)."""
        return {"args": asdict(args), "task": asdict(task), "model_config": asdict(config),
                "model": evaluated.state_dict(), **({"trained": model.state_dict()} if average is not None else {}),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "step": run.step,
                "samples": run.step * batch, "elapsed": run.elapsed, "best_val_error": run.best_val,
                "val_error": val_error, "history": run.history, "init_samples": run.init_samples,
                **ranks_state}

    def gathered() -> dict:
        """Every rank's random state and a hash of its weights, for the checkpoint (a collective: all ranks call it
        at the same steps), after checking that the weights are finite and the same on every rank."""
        check_finite()
        if not ranks.distributed:
            return {"rng": rng_state(), "world": 1}
        rngs, replicas = zip(*parallel.gather((rng_state(), parallel.fingerprint(model)), ranks))
        if len(set(replicas)) > 1:
            raise TrainingError(f"the ranks' weights differ at {run.step * batch:,} samples (a data-parallel bug)")
        return {"rng": rngs[0], "world": ranks.world, "ranks": list(rngs), "replicas": list(replicas)}

    finite = torch.ones((), dtype=torch.bool, device=device)  # every loss so far finite (kept on the device)

    def check_finite() -> None:
        # In one process on the CPU every step, before the step; on a GPU (where reading the flag waits for the
        # device) and across ranks (where all of them must stop together: the flag is all-reduced) when the loop reads
        # scalars anyway. Either way no checkpoint is written after a non-finite loss: last.pt and best.pt hold the
        # last good state.
        if not parallel.everywhere(finite, ranks):
            raise TrainingError(f"the loss became non-finite by {run.step * batch:,} samples; "
                                f"{run_dir / 'last.pt'} holds the last evaluated state (try a smaller --lr)")

    # In a log (stderr not a terminal), the bar updates at most every 30 s instead of several times a second.
    bar = tqdm(total=total_steps, initial=run.step, disable=not (args.progress and ranks.main), unit="step",
               dynamic_ncols=True, mininterval=0.1 if sys.stderr.isatty() else 30,
               desc=f"{args.task} T={task.n_glimpses}")
    eval_steps = max(1, args.eval_every // batch)
    # Random locations leave nothing for REINFORCE to train.
    reinforce_weight = args.reinforce_weight if s.policy and args.policy == "learned" else 0.0
    tic, window, window_samples = time.perf_counter(), time.perf_counter(), 0
    while run.step < total_steps:
        if s.policy:
            model.location.std = policy_std(run.step, total_steps, args.std, args.std_final)
        with autocast:
            ep = trainer(env)
        losses = loss(ep, reinforce_weight=reinforce_weight, baseline_weight=args.baseline_weight,
                      entropy_weight=args.entropy, gae_lambda=args.gae_lambda, credit=args.reward,
                      rollouts=args.rollouts)
        finite &= torch.isfinite(losses.total)
        if device.type == "cpu" and not ranks.distributed:
            check_finite()  # before the optimiser spreads NaN into the weights
        update(losses.total, model, optimizer, scheduler, average, clip_grad=args.clip_grad, ema=args.ema)
        run.step += 1
        window_samples += batch
        bar.update(1)

        samples = run.step * batch  # the one clock of every log
        if run.step % 50 == 0 or run.step == total_steps:
            check_finite()
            now = time.perf_counter()
            speed, window, window_samples = window_samples / (now - window), now, 0
            log_steps(writer, bar, losses, samples, speed, lr=scheduler.get_last_lr()[0],
                      std=model.location.std if s.policy else None, best_val=run.best_val if run.history else None)
        stopping = args.stop_after is not None and samples - start_samples >= args.stop_after
        # The last step evaluates too, unless a scheduled evaluation came less than half a period before it.
        last_eval = run.history[-1]["samples"] // batch if run.history else 0
        if run.history and run.step == total_steps and run.step - last_eval < eval_steps // 2 and not stopping:
            now = time.perf_counter()
            run.elapsed, tic = run.elapsed + now - tic, now
            ranks_state = gathered()
            if ranks.main:
                checkpoint.save(state_dict(run.history[-1]["val_error"], ranks_state), run_dir / "last.pt")
        elif run.step % eval_steps == 0 or run.step == total_steps or stopping:
            run.elapsed += time.perf_counter() - tic
            ranks_state = gathered()
            val_error = float("nan")  # known to rank 0 only
            if ranks.main:
                val_error = evaluate(s, evaluated, val_env, val_env.split_size, seed=args.seed)["greedy_error"]
            tic = time.perf_counter()
            run.history.append({"samples": samples, "minutes": run.elapsed / 60, "val_error": val_error})
            if ranks.main:
                log_validation(writer, s, evaluated, args, task, val_env, run.history[-1])
                improved, run.best_val = val_error < run.best_val, min(run.best_val, val_error)
                save_validated(state_dict(val_error, ranks_state), run_dir, best=improved, snapshot=args.snapshots)
                bar.write(f"samples {samples:,}  val error {val_error:.2f}%  best {run.best_val:.2f}%  "
                          f"{run.elapsed / 60:.1f} min")
            if stopping and run.step < total_steps:
                break
    for closing in (bar, env, val_env):  # the train env's canvas worker thread ends here
        if closing is not None:
            closing.close()
    parallel.stop(ranks)  # no collective follows: rank 0 tests alone
    if not ranks.main:  # rank 0 tests and writes the results
        return {"rank": ranks.rank}
    if run.step < total_steps:
        writer.close()
        return {"stopped": True, "samples": run.step * batch, "val_error": run.history[-1]["val_error"],
                "run_dir": str(run_dir), "world": ranks.world}
    run.elapsed += time.perf_counter() - tic
    return finish(model, config, args, task, run_dir, writer, run)


def update(loss, model, optimizer, scheduler, average, *, clip_grad: float, ema: float) -> None:
    """One optimiser step on ``loss`` (gradient norm clipped), the schedule's step, and the average's."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip_grad > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
    optimizer.step()
    scheduler.step()
    if average is not None:
        with torch.no_grad():
            for a, p in zip(average.parameters(), model.parameters()):
                a.lerp_(p, 1.0 - ema)


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


def log_validation(writer, s, model, args: Args, task, val_env, point: dict) -> None:
    """A validation's scalars and, for a model that attends, where it attends on four validation canvases."""
    writer.add_scalar("val/error", point["val_error"], point["samples"])
    writer.add_scalar("val/accuracy", 100.0 - point["val_error"], point["samples"])
    writer.add_scalar("perf/minutes", point["minutes"], point["samples"])
    if task.kind == "catch":  # four validation games, animated (TensorBoard shows a GIF image as it plays)
        from PIL import Image

        games = make_env(s, args, task, "val", 4, render_mode="rgb_array")
        frames, _ = watch_games(s, model, games, np.arange(4), seed=args.seed)
        games.close()
        add_gif(writer, "val/games", [Image.fromarray(f) for f in frames], point["samples"])
    elif s.draw is not None:
        canvases = val_env.canvases(np.arange(4))
        drawing = s.draw(model, args, task, canvases.images, canvases.labels)
        writer.add_figure(f"val/{drawing.name}", drawing.figure(None), point["samples"])
        for key, figure in drawing.extras.items():
            writer.add_figure(f"val/{drawing.name}-{key}", figure(), point["samples"])
        model.train()


def add_gif(writer, tag: str, frames: list, step: int) -> None:
    """An animated GIF in TensorBoard, as an image summary (``SummaryWriter.add_video`` needs moviepy 1)."""
    from tensorboard.compat.proto.summary_pb2 import Summary

    width, height = frames[0].size
    image = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=checkpoint.gif_bytes(
        frames, duration=250))
    writer._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)


def finish(model, config, args: Args, task, run_dir: Path, writer, run: Progress) -> dict:
    """Test the checkpoint validation chose, once (never used for selection); write results.json and agent.pt."""
    s = spec(args.model)
    best = checkpoint.load(run_dir / "best.pt")
    model.load_state_dict(best["model"])
    if s.policy:
        model.location.std = config.std  # Monte-Carlo rollouts draw with the std the agent keeps
    test_env = make_env(s, args, task, "test", args.eval_batch)
    tic = time.perf_counter()
    errors = evaluate(s, model, test_env, test_env.split_size, mc_samples=args.mc_samples, seed=args.seed)
    results = {
        "task": asdict(task), "checkpoint": "best.pt", "samples": best["samples"], "val_error": best["val_error"],
        "test": {**errors, **({"mc_samples": args.mc_samples} if "mc_error" in errors else {}),
                 "n": test_env.split_size},
        "train_minutes": run.elapsed / 60, "test_minutes": (time.perf_counter() - tic) / 60,
        "params": sum(p.numel() for p in model.parameters()),
    }
    if task.kind == "catch":  # the players without a retina, on the same test games
        results["baselines"] = play_baselines(test_env, test_env.split_size, seed=args.seed)
    if args.init is not None:  # a fine-tuned agent: what it had seen before this run
        results["init"] = init_record(args.init, run.init_samples)
    test_env.close()
    results["history"] = run.history  # every evaluation, also those after the best one
    checkpoint.write_text(json.dumps(results, indent=2), run_dir / "results.json")
    # The trained agent alone (no optimiser state): small enough to ship, loadable by ram.agent.Agent.
    checkpoint.save(checkpoint.agent_only(best), run_dir / "agent.pt")
    # Validation error only: the test error stays out of the place where hyperparameters are compared.
    writer.add_hparams({k: v for k, v in asdict(args).items() if isinstance(v, (int, float, str, bool))},
                       {"hparam/best_val_error": best["val_error"]}, run_name="hparams")
    writer.close()
    if s.draw is not None or task.kind == "catch":
        visualize(str(run_dir), data_dir=args.data_dir)
    return results


# -- the subcommands: each parses its flags and hands over to the library


def subcommand(prog: str, description: str, *, mc: bool = True) -> Parser:
    """A subcommand's parser with the flags they share: --data-dir, --threads and (evaluating ones) --mc-samples."""
    parser = Parser(prog=f"train.py {prog}", description=description)
    parser.add_argument("--data-dir", default=None, help="MNIST cache folder")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--device", default="auto", help="where the model runs: auto (cuda where torch sees a GPU, "
                        "else cpu), cpu, cuda or cuda:N")
    if mc:
        parser.add_argument("--mc-samples", type=int, default=10, help="rollouts averaged for the Monte-Carlo error "
                            "(0: greedy only)")
    return parser


def parse(parser: Parser, argv: list[str]) -> argparse.Namespace:
    opts = parser.parse_args(argv)
    if opts.threads < 1:
        raise UsageError(f"--threads must be >= 1, got {opts.threads}")
    if getattr(opts, "mc_samples", 0) < 0:
        raise UsageError(f"--mc-samples must be >= 0, got {opts.mc_samples}")
    torch.set_num_threads(opts.threads)
    opts.device = resolve_device(opts.device)
    return opts


def evaluate_command(argv: list[str]) -> int:
    parser = subcommand("evaluate", "Test error of a trained agent, greedy and Monte-Carlo, on the fixed test (or "
                        "validation) set.")
    parser.add_argument("run", help="run folder (its best.pt), shipped folder (its agent.pt) or checkpoint file")
    parser.add_argument("--split", default="test", choices=("test", "val"), help="fixed set to evaluate on")
    opts = parse(parser, argv)
    path, state, args, task = load_run(opts.run, opts.data_dir)
    env = make_env(spec(args.model), args, task, opts.split, args.eval_batch)
    model = load_model(state, args, task).to(opts.device)
    errors = evaluate(spec(args.model), model, env, env.split_size, mc_samples=opts.mc_samples, seed=args.seed)
    mc = {"mc_samples": opts.mc_samples} if "mc_error" in errors else {}
    if task.kind == "catch":  # the players without a retina, on the same games
        mc = {"baselines": play_baselines(env, env.split_size, seed=args.seed)}
    print(json.dumps({"checkpoint": str(path), "split": opts.split, "n": env.split_size, **errors, **mc}, indent=2))
    return 0


def visualize(run: str, *, n: int = 8, first: int = 0, out: str | None = None, data_dir: str | None = None,
              device: torch.device | str = "cpu") -> None:
    """Draw where RUN's model attends on test canvases first..first+n: a PNG of the whole episode and a GIF of
    its steps, beside the checkpoint unless ``out``: RUN/NAME for a run folder (its best.pt), FILE-NAME for another
    file (so RUN/agent-NAME for a shipped folder, which keeps the pictures it ships with)."""
    from PIL import Image

    from envs import load_mnist
    from envs.tasks import fixed, split_size
    from ram.plots import figure_to_array

    path, state, args, task = load_run(run, data_dir)
    s = spec(args.model)
    if task.kind == "catch":
        return visualize_games(path, state, args, task, n=n, first=first, out=out, device=device)
    if s.draw is None:
        raise UsageError(f"a {args.model} model has no attention to draw")
    mnist = load_mnist(data_dir)
    if not 0 <= first <= split_size(mnist, "test") - n:
        raise UsageError(f"--first must be in 0..{split_size(mnist, 'test') - n} for --n {n}")
    canvases = fixed(mnist, task, "test", first, first + n)
    model = load_model(state, args, task).to(device)
    drawing = s.draw(model, args, task, canvases.images, canvases.labels)
    where = path.parent / drawing.name if path.name == "best.pt" else path.with_name(f"{path.stem}-{drawing.name}")
    where = Path(out) if out else where
    figures = [drawing.figure(steps) for steps in range(1, drawing.n_steps + 1)]
    checkpoint.write_figure(figures[-1], where.with_suffix(".png"))
    checkpoint.write_gif([Image.fromarray(figure_to_array(fig)) for fig in figures], where.with_suffix(".gif"))
    for key, figure in drawing.extras.items():
        checkpoint.write_figure(figure(), where.with_name(f"{where.name}-{key}.png"))
    extras = "".join(f", {where.name}-{key}.png" for key in drawing.extras)
    print(f"wrote {where.with_suffix('.png')} and {where.with_suffix('.gif')}{extras}")


def visualize_games(path: Path, state: dict, args: Args, task, *, n: int, first: int, out: str | None,
                    device: torch.device | str = "cpu") -> None:
    """The agent playing test games first..first+n: every step of them side by side in a GIF, the last in a PNG."""
    from PIL import Image

    s = spec(args.model)
    env = make_env(s, args, task, "test", n, render_mode="rgb_array")
    if not 0 <= first <= env.split_size - n:
        raise UsageError(f"--first must be in 0..{env.split_size - n} for --n {n}")
    model = load_model(state, args, task).to(device)
    frames, caught = watch_games(s, model, env, np.arange(first, first + n), seed=args.seed)
    where = path.parent / "games" if path.name == "best.pt" else path.with_name(f"{path.stem}-games")
    where = Path(out) if out else where
    env.close()
    frames = [Image.fromarray(f) for f in frames]
    checkpoint.write_bytes(checkpoint.gif_bytes(frames, duration=250, hold=6), where.with_suffix(".gif"))
    checkpoint.write_image(frames[-1], where.with_suffix(".png"))
    print(f"wrote {where.with_suffix('.png')} and {where.with_suffix('.gif')}: {int(caught.sum())} of {n} caught")


def visualize_command(argv: list[str]) -> int:
    parser = subcommand("visualize", "Draw where a trained model looks: a PNG grid and an animated GIF, on test "
                        "canvases: glimpse trajectories (ram, soft-glimpse) or attention heatmaps (soft).", mc=False)
    parser.add_argument("run", help="run folder (its best.pt), shipped folder (its agent.pt) or checkpoint file")
    parser.add_argument("--n", type=int, default=8, help="number of canvases")
    parser.add_argument("--first", type=int, default=0, help="index of the first test canvas shown")
    parser.add_argument("--out", default=None, help="output path without extension (default: RUN/glimpses or "
                        "RUN/attention for a run folder, NAME-glimpses beside any other checkpoint NAME.pt, e.g. "
                        "RUN/agent-glimpses for a shipped folder)")
    opts = parse(parser, argv)
    if not 1 <= opts.n <= 64:
        raise UsageError("--n must be in 1..64")
    visualize(opts.run, n=opts.n, first=opts.first, out=opts.out, data_dir=opts.data_dir, device=opts.device)
    return 0


def curve_command(argv: list[str]) -> int:
    from ram.reports import test_curve

    parser = subcommand("curve", "Test error against training time: every snapshot of a run trained with "
                        "--snapshots, measured on the fixed test set (greedy and Monte-Carlo), and the training "
                        "minutes at which it first reached a target error. A report only: the run's checkpoint is "
                        "chosen by validation error, never by this curve. Writes RUN/test_curve.json and .png.")
    parser.add_argument("run", help="run folder trained with --snapshots")
    parser.add_argument("--target", type=float, default=None, help="test error (%%) to reach (default: the paper's "
                        "for the task and number of glimpses)")
    opts = parse(parser, argv)
    run_dir = Path(opts.run)
    if not run_dir.is_dir():
        raise UsageError(f"{run_dir} is not a run folder")
    report, figure = test_curve(run_dir, target=opts.target, mc_samples=opts.mc_samples, data_dir=opts.data_dir,
                                log=print, device=opts.device)
    checkpoint.write_text(json.dumps(report, indent=2), run_dir / "test_curve.json")
    checkpoint.write_figure(figure, run_dir / "test_curve.png")
    print(f"wrote {run_dir / 'test_curve.json'} and {run_dir / 'test_curve.png'}")
    return 0


def compare_command(argv: list[str]) -> int:
    from ram.reports import comparison
    from ram.runs import read_results

    parser = subcommand("compare", "Compare trained runs: test error, parameters, training time, "
                        "multiply-accumulates and latency per image, pixels examined, cost against canvas size, "
                        "learning curves. Writes OUT/report.md, report.json, scaling.png and curves.png.", mc=False)
    parser.add_argument("runs", nargs="+", help="run folders (each with results.json and best.pt or agent.pt), "
                        "e.g. results/cluttered60-6g-lstm-center-restart")
    parser.add_argument("--out", default="comparison", help="output folder")
    parser.add_argument("--canvases", default="60,100,200,400", help="canvas sides for the scaling measurement")
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats per latency (median)")
    opts = parse(parser, argv)
    try:
        canvases = [int(c) for c in opts.canvases.split(",")]
    except ValueError:
        raise UsageError(f"--canvases must be comma-separated integers, got {opts.canvases!r}") from None
    if opts.repeats < 1 or min(canvases) < 28:
        raise UsageError("--repeats must be >= 1 and every canvas >= 28")
    resolved = [Path(run).resolve() for run in opts.runs]
    for run, where in zip(opts.runs, resolved):
        if not (Path(run) / "results.json").exists():
            raise UsageError(f"{run} has no results.json (an unfinished run?)")
        if read_results(Path(run) / "results.json").get("task", {}).get("kind") == "catch":
            raise UsageError(f"{run} plays catch: compare measures classifiers (see train.py evaluate and curve)")
        if resolved.count(where) > 1:
            raise UsageError(f"{run} is given twice")
    report, data, figures = comparison(opts.runs, canvases=canvases, repeats=opts.repeats, threads=opts.threads,
                                       data_dir=opts.data_dir, device=opts.device)
    out = Path(opts.out)
    for name, figure in figures.items():
        checkpoint.write_figure(figure, out / name)
    checkpoint.write_text(report, out / "report.md")
    checkpoint.write_text(json.dumps(data, indent=2), out / "report.json")
    print(f"wrote {out / 'report.md'}, scaling.png, curves.png, report.json")
    return 0


COMMANDS = {"evaluate": evaluate_command, "visualize": visualize_command, "compare": compare_command,
            "curve": curve_command}


def main(argv: list[str] | None = None) -> int:
    from envs.mnist import DataError
    from ram.checkpoint import CheckpointError

    argv = sys.argv[1:] if argv is None else argv
    # SIGTERM (a job scheduler, or torchrun ending the ranks when one has died) stops a run as Ctrl-C does.
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, stop_on_terminate) if main_thread else None
    try:
        if argv and argv[0] in COMMANDS:
            return COMMANDS[argv[0]](argv[1:])
        results = train(parse_args(argv), given_flags(argv))
        if "rank" in results:  # a rank other than 0 of a torchrun run: rank 0 reports
            return 0
        if results.get("stopped"):
            launcher = "python" if results["world"] == 1 else f"torchrun --nproc_per_node={results['world']}"
            print(f"stopped at {results['samples']:,} samples; continue with: "
                  f"{launcher} train.py --run-dir {results['run_dir']} --resume")
            return 0
        print(json.dumps({k: results[k] for k in ("test", "val_error", "train_minutes")}, indent=2))
        return 0
    except (UsageError, DataError, CheckpointError, TrainingError) as e:
        print(f"train.py: error: {e}", file=sys.stderr)
        return 2 if isinstance(e, UsageError) else 1
    except RuntimeError as e:
        if not parallel.lost_peer(e):
            raise
        print(f"train.py: error: rank {os.environ.get('RANK')} lost touch with the other ranks (one has died?); "
              f"continue with --resume (the last checkpoint is intact): {str(e).splitlines()[0][:160]}",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        how = "terminated" if isinstance(e, Terminated) else "interrupted"
        print(f"train.py: {how}; continue with --resume (the last checkpoint is intact)", file=sys.stderr)
        return 143 if isinstance(e, Terminated) else 130
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the run is, like Ctrl-C's KeyboardInterrupt (every file is written atomically)."""


def stop_on_terminate(signum, frame):
    raise Terminated


if __name__ == "__main__":
    sys.exit(main())
