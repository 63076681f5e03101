"""The reports of ``train.py compare`` (trained models side by side) and ``train.py curve`` (a run's test error
against its training minutes). Each function measures and returns data and text; the CLI writes the files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from envs.retina import Retina
from envs.tasks import Task, fit, fixed, paper_error, shifts, split_size
from ram import compare
from ram.agent import Agent
from ram.checkpoint import load
from ram.config import Args
from ram.episodes import data_of
from ram.errors import UsageError
from ram.kinds import channels_of, kind_of
from ram.registry import ModelSpec, spec
from ram.runs import lineage, load_model, load_run, read_results

# -- compare


def model_name(args: Args, task: Task) -> str:
    """How a report names a run's model: its kind and task, with T for the models that attend in steps."""
    kind = "ram, random glimpses" if spec(args.model).policy and args.policy == "random" else args.model
    return f"{kind} {task.name}" + (f" T={task.n_glimpses}" if spec(args.model).steps else "")


def _retina(s: ModelSpec, task: Task):
    return Retina(g=task.glimpse_size, k=task.n_scales, s=task.scale) if s.reads == "glimpses" else None


def cost_row(s: ModelSpec, model, args: Args, task: Task, images: torch.Tensor, *, repeats: int) -> dict:
    """Parameters, MACs, latency at batch 1 and 256, values read and pixels covered of a trained model on test
    canvases ``images`` (256, C, C) uint8."""
    retina = _retina(s, task)
    fn = compare.forward_fn(model, retina=retina, n_glimpses=task.steps, label_steps=task.label_steps)
    if retina is not None:  # the union of its glimpses on these test canvases (greedy paths)
        agent = Agent.on_task(model, task, start=args.start)
        pixels = compare.pixels_covered(torch.from_numpy(agent.predict(images.cpu().numpy()).locations), retina,
                                        task.canvas_size)
    else:  # the others see every pixel
        pixels = float(task.canvas_size**2)
    return {"params": sum(p.numel() for p in model.parameters()), "macs": compare.count_macs(fn, images[:1]),
            "latency_1": compare.latency(fn, images[:1], repeats=repeats) * 1e3,
            "latency_256": compare.latency(fn, images, repeats=repeats) * 1e3 / len(images),
            "values": compare.values_read(canvas_size=task.canvas_size, retina=retina, n_glimpses=task.steps,
                                          channels=channels_of(args, task)),
            "pixels": pixels}


def scaling_rows(s: ModelSpec, model, task: Task, data, name: str, canvases: list[int], *, repeats: int) -> list:
    """MACs and latency at batch 1 on canvases of each side in ``canvases``, clutter density held constant; the
    weights carry over (or ``s.resize`` makes a model of the right size)."""
    rows = []
    for C in canvases:
        try:
            bigger = task.with_(canvas_size=C, n_clutter=round(task.n_clutter * C * C / task.canvas_size**2))
            fit(bigger, data)
        except ValueError:
            continue  # its objects do not fit such a canvas
        device = next(model.parameters()).device
        x = torch.from_numpy(fixed(data, bigger, "test", 0, 1).images).to(device)
        sized = model if s.resize is None else s.resize(model, C).to(device)
        fn = compare.forward_fn(sized, retina=_retina(s, task), n_glimpses=task.steps,
                                label_steps=task.label_steps)
        rows.append({"name": name, "canvas": C, "macs": compare.count_macs(fn, x),
                     "latency_ms": compare.latency(fn, x, repeats=repeats) * 1e3})
    return rows


def robustness_row(s: ModelSpec, model, args: Args, task: Task, name: str, results: dict, *, n: int,
                   mc_samples: int) -> dict:
    """A model's test error on the first n canvases of each shifted test set of its task (``envs.tasks.shifts``),
    greedy and, for a stochastic policy, Monte-Carlo, beside its in-distribution error (results.json's, the whole
    test set).
    A shift the model cannot read (a canvas of another size for a model whose weights are sized to its own) is None,
    with the reason in "why"."""
    kind = kind_of(task)
    row = {"name": name, "in_distribution": {"greedy": results["test"]["greedy_error"],
                                              "mc": results["test"].get("mc_error")}, "shifts": {}, "why": {}}
    data = data_of(args, task)
    for shift, shifted in shifts(task, data.side).items():
        if shifted.canvas_size != task.canvas_size and s.fixed_canvas:
            row["shifts"][shift], row["why"][shift] = None, "its weights are sized to its training canvas"
            continue
        env = kind.make_env(s, args, shifted, "test", min(args.eval_batch, n, env_size := split_size(data, "test")))
        errors = kind.evaluate(s, model, env, min(n, env_size), mc_samples=mc_samples, seed=args.seed)  # MC: policies
        env.close()
        row["shifts"][shift] = {"greedy": errors["greedy_error"], "mc": errors.get("mc_error")}
    model.eval()
    return row


def comparison(runs: list[str], *, canvases: list[int], repeats: int, threads: int,
               data_dir: str | None, device: torch.device | str = "cpu", shift_n: int = 0,
               mc_samples: int = 10, dataset: str | None = None) -> tuple[str, dict, dict]:
    """Measure trained runs side by side, their models on ``device``: (report.md's text, report.json's data,
    {file name: Figure}). ``shift_n`` > 0: also their errors on that many canvases of each shifted test set
    (``robustness_row``), Monte-Carlo over ``mc_samples`` rollouts."""
    from ram.plots import curves_figure, robustness_figure, scaling_figure, shifts_figure

    loaded = [load_run(run, data_dir, dataset) for run in runs]
    for run, (_, _, _, task) in zip(runs, loaded):
        if not kind_of(task).comparable:
            raise UsageError(f"{run} plays {task.kind}: compare measures classifiers (see train.py evaluate and curve)")
    datas = [data_of(args, task) for _, _, args, task in loaded]
    if len({d.fingerprint for d in datas}) > 1:
        raise UsageError("compare measures runs on the same data: "
                         + ", ".join(f"{run} trained on {d.name}" for run, d in zip(runs, datas)))
    names = [model_name(args, task) for _, _, args, task in loaded]
    rows, scaling, curves, notes, robust = [], [], {}, [], []
    for run, (_, state, args, task), name in zip(runs, loaded, names):
        name = f"{name} ({Path(run).name})" if names.count(name) > 1 else name  # several runs of one model
        results = read_results(Path(run) / "results.json")
        curves[name], minutes, chain = lineage(results)
        if chain:
            notes.append(f"- {name} was fine-tuned from {' <- '.join(chain)}: its minutes and learning curve "
                         "include those of the runs it started from that were found, up to the checkpoint it "
                         "started from (a run of another task: its minutes and images, not its errors).")
        s = spec(args.model)
        model = load_model(state, args, task).eval().to(device)
        data = data_of(args, task)
        images = torch.from_numpy(fixed(data, task, "test", 0, min(256, split_size(data, "test"))).images).to(device)
        costs = cost_row(s, model, args, task, images, repeats=repeats)
        rows.append({"name": name, "greedy": results["test"]["greedy_error"], "mc": results["test"].get("mc_error"),
                     "params": costs.pop("params"), "minutes": minutes, **costs})
        if "object_error" in results["test"]:  # several objects: greedy and MC are sequence errors
            rows[-1]["object"] = results["test"]["object_error"]
        scaling += scaling_rows(s, model, task, data, name, canvases, repeats=repeats)
        if shift_n:
            robust.append(robustness_row(s, model, args, task, name, results, n=shift_n, mc_samples=mc_samples))
    if any("object" in r for r in rows):
        notes.append("- Several objects per canvas: the test errors are sequence errors (any label wrong); the "
                     "greedy per-object errors are " + ", ".join(f"{r['name']} {r['object']:.2f}%" for r in rows
                                                               if "object" in r) + ".")
    report = comparison_markdown(rows, scaling, notes, threads=threads, repeats=repeats, device=str(device))
    figures = {"scaling.png": scaling_figure(scaling), "curves.png": curves_figure(curves)}
    if robust:
        report += robustness_markdown(robust, n=shift_n, mc_samples=mc_samples)
        args, task, data = loaded[0][2], loaded[0][3], datas[0]
        figures["robustness.png"] = robustness_figure(robust)
        figures["shifts.png"] = shifts_figure({"in distribution": fixed(data, task, "test", 0, 4).images,
                                               **{k: fixed(data_of(args, t), t, "test", 0, 4).images
                                                  for k, t in shifts(task, data.side).items()}})
    return report, {"models": rows, "scaling": scaling, "robustness": robust}, figures


def robustness_markdown(rows: list[dict], *, n: int, mc_samples: int) -> str:
    names = list(dict.fromkeys(k for r in rows for k in r["shifts"]))

    def cell(e: dict | None) -> str:
        if e is None:
            return "n/a"
        return f"{e['greedy']:.2f}%" + ("" if e.get("mc") is None else f" / {e['mc']:.2f}%")

    lines = ["", "## Off the training distribution", "",
             f"Test error (greedy, and / Monte-Carlo over {mc_samples} rollouts for a stochastic policy) on the first "
             f"{n:,} canvases of each shifted test set (`envs.tasks.shifts`: fixed and seeded as the others), beside "
             "the in-distribution error on the whole test set (results.json's, Monte-Carlo over the run's own "
             "--mc-samples). "
             "n/a: the model cannot read that canvas.", "",
             "| model | in distribution | " + " | ".join(names) + " |", "|---" * (len(names) + 2) + "|"]
    for r in rows:
        lines.append(f"| {r['name']} | {cell(r['in_distribution'])} | "
                     + " | ".join(cell(r["shifts"].get(k)) for k in names) + " |")
    whys = sorted({f"{r['name']}, {k}: {why}" for r in rows for k, why in r["why"].items()})
    lines += ["", *(f"- n/a: {w}." for w in whys)] if whys else []
    lines += ["", "![robustness](robustness.png)", "", "![the shifted test sets](shifts.png)", ""]
    return "\n".join(lines)


def comparison_markdown(rows: list[dict], scaling: list[dict], notes: list[str], *, threads: int,
                        repeats: int, device: str = "cpu") -> str:
    threads_text = f"{threads} thread" + ("s" if threads > 1 else "")
    if device != "cpu":
        threads_text += f", the models on {device}"
        if torch.cuda.is_available():
            threads_text += f" ({torch.cuda.get_device_name(device)})"
    lines = ["# Comparison", "", f"Measured on this machine with {threads_text}; latencies are medians of {repeats} "
             "repeats. Errors are on every fixed test canvas (greedy: mean locations, or one random path for "
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
    return "\n".join(lines)


# -- curve


def first_reached(points: list[dict], key: str, target: float) -> dict | None:
    """The first point (in training order) whose ``key`` error is at or below ``target``, with the minutes of the
    point before it ("after_minutes", None for the first): the two bracket the moment. None if none is."""
    for i, p in enumerate(points):
        if p.get(key) is not None and p[key] <= target:
            return {**p, "after_minutes": points[i - 1]["minutes"] if i else None}
    return None


def test_curve(run_dir: Path, *, target: float | None, mc_samples: int, data_dir: str | None,
               log: Callable[[str], None], device: torch.device | str = "cpu",
               dataset: str | None = None) -> tuple[dict, object]:
    """Test every snapshot of a run (the model on ``device``), handing ``log`` a line for each and, at the end, when
    each error reached the target: (test_curve.json's report, its Figure)."""
    from ram.plots import test_curve_figure

    snapshots = sorted((run_dir / "snapshots").glob("*.pt"))
    if not snapshots:
        raise UsageError(f"{run_dir} has no snapshots: train it with --snapshots")
    _, first, args, task = load_run(str(snapshots[0]), data_dir, dataset)
    target = target if target is not None else paper_error(task)
    if target is None:
        raise UsageError(f"the paper has no number for this task ({task.name}, T={task.n_glimpses}): pass --target")
    offset, note = curve_offset(run_dir, first)
    s, kind = spec(args.model), kind_of(task)
    env = kind.make_env(s, args, task, "test", args.eval_batch)
    model, _ = s.build(args, task, first["model_config"]["n_classes"], channels_of(args, task))
    model.to(device)
    points = []
    for path in snapshots:
        points.append(snapshot_point(kind.evaluate, s, model, env, path, offset, mc_samples=mc_samples,
                                     seed=args.seed))
        log(point_line(points[-1]))
    env.close()
    reached = {key: first_reached(points, key, target) for key in ("greedy_error", "mc_error", "sampled_error")
               if key in points[0]}
    for line in reached_lines(reached, target):
        log(line)
    report = {"note": "test error of every snapshot (reporting only: checkpoints are chosen by validation); " + note,
              "split": "test", "n": env.split_size, "mc_samples": mc_samples, "target": target, "reached": reached,
              "points": points}
    return report, test_curve_figure(points, target, rate=kind.metric.rate, per_episode=kind.metric.per_episode)


def curve_offset(run_dir: Path, first: dict) -> tuple[dict, str]:
    """Where a run's clock starts: for a fine-tuned run, where its starting runs stopped, as in `compare` (their
    minutes are counted once the run has finished and its results.json names them; until then, its own minutes
    only). Returns ({"samples", "minutes"} to add to its snapshots', a note saying which minutes are counted)."""
    offset, note = {"samples": first.get("init_samples", 0), "minutes": 0.0}, "minutes of this run alone"
    if (run_dir / "results.json").exists():
        results = read_results(run_dir / "results.json")
        curve, _, chain = lineage(results)
        own = curve[len(curve) - len(results["history"])]
        offset = {k: own[k] - results["history"][0][k] for k in ("samples", "minutes")}
        note = ("minutes include those of the runs it started from that were found: " + " <- ".join(chain)
                if chain else note)
    return offset, note


def snapshot_point(evaluate: Callable, s: ModelSpec, model, env, path: Path, offset: dict, *, mc_samples: int,
                   seed: int) -> dict:
    """The test errors of one snapshot (``evaluate``: its task kind's), on the run's clock."""
    state = load(path)
    try:
        model.load_state_dict(state["model"])
        minutes = state["minutes"]
    except (RuntimeError, KeyError):
        raise UsageError(f"{path} is not a snapshot of this run (another architecture, or no minutes)") from None
    errors = evaluate(s, model, env, env.split_size, mc_samples=mc_samples, seed=seed)
    return {"samples": state["samples"] + offset["samples"], "minutes": minutes + offset["minutes"],
            "val_error": state["val_error"], **errors}


def reached_lines(reached: dict, target: float) -> list[str]:
    lines = []
    for key, point in reached.items():
        after = point and point["after_minutes"]
        when = ("never" if point is None else f"by {point['minutes']:.1f} min and {point['samples']:,} samples, "
                + (f"after {after:.1f} min" if after is not None else "at the first snapshot"))
        lines.append(f"{key.split('_')[0]} reached {target}%: {when}")
    return lines


def point_line(p: dict) -> str:
    mc = f"  MC {p['mc_error']:.2f}%" if "mc_error" in p else ""
    mc += f"  sampled {p['sampled_error']:.2f}%" if "sampled_error" in p else ""
    return (f"{p['samples']:>12,} samples {p['minutes']:7.1f} min  val {p['val_error']:.2f}%  "
            f"test greedy {p['greedy_error']:.2f}%{mc}")

