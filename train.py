"""Train the Recurrent Attention Model (Mnih et al. 2014) with REINFORCE, from the command line.

    python train.py --task cluttered60 --glimpses 6           # train; writes runs/cluttered60-6g-s0/
    python train.py --run-dir runs/cluttered60-6g-s0 --resume # continue a stopped run
    python train.py evaluate RUN                              # test error of RUN's best checkpoint
    python train.py visualize RUN                             # glimpse trajectories: PNG grid + GIF
    python train.py curve RUN                                 # test error of every snapshot against minutes
    python train.py compare RUN...                            # models side by side: errors, costs, scaling

Reads top to bottom: seed -> envs -> model and optimiser -> writer -> loop {rollout, loss, step, log,
evaluate, checkpoint} -> test. The library is in ram/: the config and its flags (ram.config), the models
(ram.registry), the kinds of task (ram.kinds: what the loop, evaluation and pictures ask of a task), the optimiser
and the weight average (ram.optim), processes (ram.parallel), run folders and checkpoints (ram.runs,
ram.checkpoint), the test and pictures of a finished run (ram.results), reports (ram.reports).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from envs.mnist import DataError
from ram import checkpoint, optim, parallel
from ram.checkpoint import CheckpointError
from ram.config import Args, Parser, given_flags, loss_settings, parse_args, resolve
from ram.errors import TrainingError, UsageError
from ram.kinds import channels_of, data_record, kind_of, n_actions
from ram.logs import log_steps, log_validation, open_log, progress_bar
from ram.parallel import resolve_device, train_data_of
from ram.registry import spec
from ram.results import evaluate_run, finish, visualize
from ram.runs import Progress, adopt_architecture, load_init, open_run, restore, save_validated, training_state
from ram.schedules import policy_std
from ram.signals import Terminated, terminate_as_interrupt
from ram.system import keep_freed_memory, seed_everything


def train(args: Args, given: set[str] = frozenset()) -> dict:
    """Train (or, with args.resume, continue) a run; ``given`` names the flags set explicitly. Under torchrun, each
    process is one rank of a data-parallel run (ram.parallel); rank 0 alone validates, logs and writes files."""
    note = ""
    if args.init is not None and not args.resume:  # the layer sizes left unset: the checkpoint's (and its run's name)
        args, note = adopt_architecture(resolve(args), given)
    args, task, run_dir, resumed = open_run(args, given)
    s, kind = spec(args.model), kind_of(task)
    device = resolve_device(args.device)
    # The run records where it trained (auto resolved), so that --resume continues there.
    args = replace(args, device=str(device), train_data=train_data_of(args.train_data, device, task))
    ranks, device = parallel.start(device)
    parallel.check_world(resumed, ranks, run_dir)
    if note and ranks.main:
        print(f"train.py: note: {note}", file=sys.stderr)
    if (advice := kind.advice(args, s)) and ranks.main:
        print(f"train.py: note: {advice}", file=sys.stderr)
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    seed = ranks.seed(args.seed)  # rank 0's seed is the run's: one process trains as it always did
    seed_everything(seed)

    # envs: fresh canvases for training (each rank its own stream), the fixed validation set for model selection
    env = kind.make_env(s, args, task, "train", args.batch_size, device=device)
    env.reset(seed=seed)
    val_env = kind.make_env(s, args, task, "val", args.eval_batch) if ranks.main else None

    model, config = s.build(args, task, n_actions(env, s), channels_of(args, task))
    model.to(device)
    batch = args.batch_size * ranks.world  # the global batch: every rank's episodes make one step
    total_steps = math.ceil(args.samples / batch)
    optimizer, scheduler = optim.optimiser(model, lr=args.lr, lr_final=args.lr_final, lr_warmup=args.lr_warmup,
                                           total_steps=total_steps, batch=batch)
    run = restore(resumed, model, optimizer, scheduler, env, rank=ranks.rank) if resumed else Progress()
    if args.init is not None and resumed is None:
        run.init_samples, note = load_init(model, config, args)
        if note and ranks.main:
            print(note)
    start_samples = run.step * batch
    average = optim.average_of(model, args.ema, resumed)  # with --ema, what validation selects and what ships
    evaluated = model if average is None else average
    # What plays the training episodes: with several ranks, DDP around them, which averages the gradients in backward.
    trainer = parallel.wrap(model, lambda m, e: kind.play(s, m, e, greedy=False), ranks, device,
                            every_parameter=task.steps > 1)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.autocast == "bf16")

    writer = open_log(run_dir, args, config, main=ranks.main, resumed=resumed is not None, start_samples=start_samples,
                      data=data_record(args, task))
    bar = progress_bar(total_steps, run.step, show=args.progress and ranks.main,
                       description=f"{args.task} T={task.n_glimpses}")
    eval_steps = max(1, args.eval_every // batch)
    settings = loss_settings(args, s)  # what the kind's loss weighs and how
    finite = torch.ones((), dtype=torch.bool, device=device)  # every loss so far finite (kept on the device)
    tic, window, window_samples = time.perf_counter(), time.perf_counter(), 0
    while run.step < total_steps:
        if s.policy:
            model.location.std = policy_std(run.step, total_steps, args.std, args.std_final)
        with autocast:
            ep = trainer(env)
        losses = kind.loss(ep, **settings)
        finite &= torch.isfinite(losses.total)
        # In one process on the CPU, checked before every step (before the optimiser spreads NaN into the weights); on
        # a GPU (where reading the flag waits for the device) and across ranks (where all of them must stop
        # together), when the loop reads scalars anyway.
        if device.type == "cpu" and not ranks.distributed:
            parallel.check_finite(finite, ranks, run.step * batch, run_dir / "last.pt")
        optim.update(losses.total, model, optimizer, scheduler, average, clip_grad=args.clip_grad, ema=args.ema)
        run.step += 1
        window_samples += batch
        bar.update(1)

        samples = run.step * batch  # the one clock of every log
        if run.step % 50 == 0 or run.step == total_steps:
            parallel.check_finite(finite, ranks, samples, run_dir / "last.pt")
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
            ranks_state = parallel.rank_states(ranks, env, model, device, finite, samples, run_dir / "last.pt")
            if ranks.main:
                checkpoint.save(training_state(args, task, config, model, average, optimizer, scheduler, run,
                                               batch=batch, val_error=run.history[-1]["val_error"], ranks=ranks_state),
                                run_dir / "last.pt")
        elif run.step % eval_steps == 0 or run.step == total_steps or stopping:
            run.elapsed += time.perf_counter() - tic
            ranks_state = parallel.rank_states(ranks, env, model, device, finite, samples, run_dir / "last.pt")
            val_error = float("nan")  # known to rank 0 only
            if ranks.main:
                val_error = kind.evaluate(s, evaluated, val_env, val_env.split_size, seed=args.seed)["greedy_error"]
            tic = time.perf_counter()
            run.history.append({"samples": samples, "minutes": run.elapsed / 60, "val_error": val_error})
            if ranks.main:
                picture = kind.draw(s, evaluated, args, task, "val", 0, min(4, val_env.split_size))
                log_validation(writer, run.history[-1], picture)
                improved, run.best_val = val_error < run.best_val, min(run.best_val, val_error)
                save_validated(training_state(args, task, config, model, average, optimizer, scheduler, run,
                                              batch=batch, val_error=val_error, ranks=ranks_state),
                               run_dir, best=improved, snapshot=args.snapshots)
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


# -- the subcommands: each parses its flags and hands over to the library


def subcommand(prog: str, description: str, *, mc: bool = True) -> Parser:
    """A subcommand's parser with the flags they share: --dataset, --data-dir, --threads and (evaluating ones)
    --mc-samples."""
    parser = Parser(prog=f"train.py {prog}", description=description)
    parser.add_argument("--dataset", default=None, help="where the run's dataset (a folder or .npz) lies here, if not "
                        "where it was when the run trained (checked to hold the same images)")
    parser.add_argument("--data-dir", default=None, help="cache folder of the run's dataset (mnist or fashion-mnist)")
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
    print(json.dumps(evaluate_run(opts.run, split=opts.split, mc_samples=opts.mc_samples, data_dir=opts.data_dir,
                                  device=opts.device, dataset=opts.dataset), indent=2))
    return 0


def wrote(written: list[str], note: str) -> str:
    """The line that names the pictures written: PNG and GIF, the extras by their names, and the picture's note."""
    return f"wrote {written[0]} and {written[1]}{''.join(f', {Path(w).name}' for w in written[2:])}{note}"


def visualize_command(argv: list[str]) -> int:
    parser = subcommand("visualize", "Draw where a trained model looks: a PNG grid and an animated GIF, on test "
                        "canvases: glimpse trajectories (ram, soft-glimpse) or attention heatmaps (soft, vit); in a "
                        "game, the agent playing test games.", mc=False)
    parser.add_argument("run", help="run folder (its best.pt), shipped folder (its agent.pt) or checkpoint file")
    parser.add_argument("--n", type=int, default=8, help="number of canvases")
    parser.add_argument("--first", type=int, default=0, help="index of the first test canvas shown")
    parser.add_argument("--out", default=None, help="output path without extension (default: RUN/glimpses or "
                        "RUN/attention for a run folder, NAME-glimpses beside any other checkpoint NAME.pt, e.g. "
                        "RUN/agent-glimpses for a shipped folder)")
    opts = parse(parser, argv)
    if not 1 <= opts.n <= 64:
        raise UsageError("--n must be in 1..64")
    written, note = visualize(opts.run, n=opts.n, first=opts.first, out=opts.out, data_dir=opts.data_dir,
                              device=opts.device, dataset=opts.dataset)
    print(wrote([str(w) for w in written], note))
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
                                log=print, device=opts.device, dataset=opts.dataset)
    checkpoint.write_text(json.dumps(report, indent=2), run_dir / "test_curve.json")
    checkpoint.write_figure(figure, run_dir / "test_curve.png")
    print(f"wrote {run_dir / 'test_curve.json'} and {run_dir / 'test_curve.png'}")
    return 0


def compare_command(argv: list[str]) -> int:
    from ram.reports import comparison

    parser = subcommand("compare", "Compare trained runs: test error, parameters, training time, "
                        "multiply-accumulates and latency per image, pixels examined, cost against canvas size, "
                        "learning curves and (--shifts N) test error off the training distribution. Writes "
                        "OUT/report.md, report.json, scaling.png and curves.png.")
    parser.add_argument("runs", nargs="+", help="run folders (each with results.json and best.pt or agent.pt), "
                        "e.g. results/cluttered60-6g-s0")
    parser.add_argument("--out", default="comparison", help="output folder")
    parser.add_argument("--canvases", default="60,100,200,400", help="canvas sides for the scaling measurement")
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats per latency (median)")
    parser.add_argument("--shifts", type=int, default=0, metavar="N", help="also measure test error on the first N "
                        "canvases of each test set off the training distribution (more clutter, a larger canvas, "
                        "smaller and larger digits: envs.tasks.shifts), greedy and Monte-Carlo (--mc-samples); "
                        "writes robustness.png and shifts.png too (0: not measured)")
    opts = parse(parser, argv)
    try:
        canvases = [int(c) for c in opts.canvases.split(",")]
    except ValueError:
        raise UsageError(f"--canvases must be comma-separated integers, got {opts.canvases!r}") from None
    if opts.repeats < 1 or min(canvases) < 28 or not 0 <= opts.shifts <= 10_000:
        raise UsageError("--repeats must be >= 1, every canvas >= 28 and --shifts in 0..10000")
    resolved = [Path(run).resolve() for run in opts.runs]
    for run, where in zip(opts.runs, resolved):
        if not (Path(run) / "results.json").exists():
            raise UsageError(f"{run} has no results.json (an unfinished run?)")
        if resolved.count(where) > 1:
            raise UsageError(f"{run} is given twice")
    report, data, figures = comparison(opts.runs, canvases=canvases, repeats=opts.repeats, threads=opts.threads,
                                       data_dir=opts.data_dir, device=opts.device, shift_n=opts.shifts,
                                       mc_samples=opts.mc_samples, dataset=opts.dataset)
    out = Path(opts.out)
    for name, figure in figures.items():
        checkpoint.write_figure(figure, out / name)
    checkpoint.write_text(report, out / "report.md")
    checkpoint.write_text(json.dumps(data, indent=2), out / "report.json")
    print(f"wrote {out / 'report.md'}, report.json, {', '.join(figures)}")
    return 0


COMMANDS = {"evaluate": evaluate_command, "visualize": visualize_command, "compare": compare_command,
            "curve": curve_command}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        with terminate_as_interrupt():  # SIGTERM stops a run as Ctrl-C does
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
        if "pictures" in results:
            print(wrote(*results["pictures"]))
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


if __name__ == "__main__":
    sys.exit(main())
