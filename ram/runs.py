"""Run folders: their names, what they hold, and how runs that were fine-tuned from one another join up.

A run folder holds config.json, last.pt and best.pt (training checkpoints), results.json and agent.pt (written
when it finishes), tb/ (TensorBoard), and the figures. A shipped folder (results/NAME) keeps the finished run's
agent.pt, config.json, results.json and figures. Checkpoints are found by ``ram.checkpoint.find``, the one look-up.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from envs.mnist import SOURCES
from envs.tasks import Task, task_from
from ram import checkpoint
from ram.config import BOOKKEEPING, Args, resolve, task_of
from ram.errors import UsageError
from ram.kinds import data_record, kind_of
from ram.registry import spec


def default_run_dir(args: Args, task: Task) -> str:
    """runs/ and the run's name, as its task's kind names it (``ram.kinds``: e.g. runs/cluttered60-6g-s0)."""
    return f"runs/{kind_of(task).run_name(args, task, spec(args.model))}"


def open_run(args: Args, given: set[str]) -> tuple[Args, object, Path, dict | None]:
    """(args, task, run folder, the checkpoint to resume or None). A resumed run keeps its own hyperparameters: a
    flag given now that contradicts them is a mistake; bookkeeping comes from this command line, except
    --snapshots, which the run keeps unless it is given."""
    args = resolve(args)  # a run started from Python with fields left unset gets its defaults, as from the CLI
    task = task_of(args)
    run_dir = Path(args.run_dir or default_run_dir(args, task))
    # Paths as the run records them: relative to the working directory (the repository) where they lie inside it.
    args = replace(args, run_dir=recorded(str(run_dir)), init=args.init and recorded(args.init),
                   dataset=recorded_dataset(args.dataset))
    if not args.resume:
        if (run_dir / "last.pt").exists():
            raise UsageError(f"{run_dir} already holds a run: pass --resume to continue it, or another --run-dir")
        data_record(args, task)  # the data read and checked before anything is written: a mistake is one line
        return args, task, run_dir, None
    if not (run_dir / "last.pt").exists():
        raise UsageError(f"nothing to resume: {run_dir / 'last.pt'} does not exist")
    resumed = checkpoint.load(run_dir / "last.pt")
    saved = saved_args(resumed["args"])
    for name in sorted(set(given) - set(BOOKKEEPING)):
        own = saved.get(name, getattr(resolve(Args(model=saved["model"], recipe=False)), name))  # newer: default
        if getattr(args, name) != own:
            raise UsageError(f"--{name.replace('_', '-')} {getattr(args, name)} differs from the run's {own}: a "
                             "resumed run keeps its own settings (start a new run with another --run-dir)")
    # --snapshots and --dataset: the run's own unless given.
    now = {name: getattr(args, name) for name in BOOKKEEPING if name not in ("snapshots", "dataset") or name in given}
    args = resolve(Args(**{**saved, **now}))
    check_data(resumed, data_record(args, task_of(args)), str(run_dir))
    return args, task_of(args), run_dir, resumed


def adopt_architecture(args: Args, given: set[str]) -> tuple[Args, str]:
    """``args`` with --init's layer sizes (the model's ``architecture`` fields) for those left unset, e.g. the 256-unit
    glimpse pathways of an agent fine-tuned under a task's recipe of 128, and a note naming what it took ("" if
    nothing). Unset: not on the command line (``given``) and, from Python, at the value ``resolve`` fills in. A
    checkpoint of another model is left to ``load_init``, which says so."""
    path = checkpoint.find(args.init)
    if not path.exists():
        raise UsageError(f"--init {args.init}: no such checkpoint")
    try:
        saved = saved_args(checkpoint.load(path)["args"])
    except (checkpoint.CheckpointError, KeyError, TypeError) as e:
        raise UsageError(f"--init {args.init}: not a training checkpoint ({e})") from None
    if saved["model"] != args.model:
        return args, ""
    names = spec(args.model).architecture
    fields = {f.name: f for f in dataclasses.fields(Args)}
    filled = resolve(replace(args, **{n: None for n in names if "default" in fields[n].metadata}))

    def unset(name: str) -> bool:
        default = getattr(filled, name) if "default" in fields[name].metadata else fields[name].default
        return name not in given and getattr(args, name) == default

    taken = {n: saved[n] for n in names if n in saved and unset(n) and saved[n] != getattr(args, n)}
    flags = ", ".join(f"--{n.replace('_', '-')} {v}" for n, v in taken.items())
    return replace(args, **taken), flags and f"--init {args.init}: {flags}, as its run"


@dataclass
class Progress:
    """Where a run stands, besides its weights and optimiser: saved in every checkpoint."""

    step: int = 0
    best_val: float = float("inf")
    elapsed: float = 0.0  # seconds of training, evaluation excluded
    history: list = field(default_factory=list)  # every evaluation: samples, minutes, val_error
    init_samples: int = 0  # what the weights --init loaded had seen


def restore(resumed: dict, model, optimizer, scheduler, env, *, rank: int = 0) -> Progress:
    """Continue exactly where a checkpoint stopped: weights, optimiser, schedule, both RNGs (those of ``rank`` in a
    data-parallel run's checkpoint, which holds every rank's; and the GPU's, where it trained on one)."""
    # With --ema, "model" holds the average (what is evaluated and shipped), "trained" the weights themselves.
    model.load_state_dict(resumed.get("trained", resumed["model"]))
    optimizer.load_state_dict(resumed["optimizer"])
    scheduler.load_state_dict(resumed["scheduler"])
    rng = resumed["ranks"][rank] if "ranks" in resumed else resumed["rng"]
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and next(model.parameters()).is_cuda:
        torch.cuda.set_rng_state(rng["cuda"], next(model.parameters()).device)
    env.set_rng_state(rng["env"])
    return Progress(resumed["step"], resumed["best_val_error"], resumed["elapsed"], resumed["history"],
                    resumed["init_samples"])


def training_state(args: Args, task: Task, config, model, average, optimizer, scheduler, run: Progress, *,
                   batch: int, val_error: float, ranks: dict) -> dict:
    """A training checkpoint: everything ``restore`` needs to continue exactly, and what ``finish`` and ``Agent``
    read (``ranks``: ``parallel.rank_states`` at this step). With --ema, "model" is the average (what is evaluated
    and shipped) and "trained" the weights themselves."""
    evaluated = model if average is None else average
    return {"args": dataclasses.asdict(args), "task": dataclasses.asdict(task), "dataset": data_record(args, task),
            "model_config": dataclasses.asdict(config), "model": evaluated.state_dict(),
            **({"trained": model.state_dict()} if average is not None else {}),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "step": run.step,
            "samples": run.step * batch, "elapsed": run.elapsed, "best_val_error": run.best_val,
            "val_error": val_error, "history": run.history, "init_samples": run.init_samples, **ranks}


def save_validated(state: dict, run_dir: Path, *, best: bool, snapshot: bool) -> None:
    """The checkpoints of a validation: best.pt if it is the best so far, last.pt, and with --snapshots the agent as
    validation saw it, with its minutes (`train.py curve` tests them afterwards)."""
    if best:
        checkpoint.save(state, run_dir / "best.pt")
    checkpoint.save(state, run_dir / "last.pt")
    if snapshot:
        checkpoint.save({**checkpoint.agent_only(state), "minutes": state["elapsed"] / 60},
                        run_dir / "snapshots" / f"{state['samples']:012d}.pt")


def recorded(path: str) -> str:
    """How a run records a path it was given (--run-dir, --init): relative to the working directory when inside it, so
    that no path of the machine a run trained on ends up in its files; as given otherwise."""
    absolute = Path(path).resolve()
    try:
        return str(absolute.relative_to(Path.cwd().resolve()))
    except ValueError:
        return path


def recorded_dataset(dataset: str) -> str:
    """--dataset as a run records it: a registered name as it is, a path as ``recorded`` records it (kept apart from
    the names: a local folder named fashion-mnist is ./fashion-mnist)."""
    if dataset in SOURCES:
        return dataset
    path = recorded(dataset)
    return f"./{path}" if path in SOURCES else path


def saved_args(args: dict) -> dict:
    """A checkpoint's args with the fields it predates: a run saved before --model was RAM; before --device, it
    trained on the CPU, on the env's canvases; before --reward, on the env's reward; before --lr-warmup, without one;
    before --dataset, on MNIST. Its values are the run's own, so no recipe may fill them (not even a None, such as a
    --std-final it did not anneal to): recipe off."""
    args = {"model": "ram", "device": "cpu", "train_data": "env", "reward": "env", "lr_warmup": 0, "dataset": "mnist",
            **args, "recipe": False}
    if "digit_size" in args:  # before datasets: the object's side was digit_size
        args["object_size"] = args.pop("digit_size")
    return args


def check_data(state: dict, data: dict | None, run: str) -> None:
    """UsageError (one line) unless ``data`` (``data_record``) are the data the checkpoint ``state`` trained on: the
    same classes in the same order, and the same images (their fingerprint). A checkpoint saved before datasets
    trained on MNIST."""
    if data is None:  # a game: no dataset
        return
    saved = state.get("dataset")
    if saved is None:  # saved before datasets: trained on MNIST, whose files are verified by their checksums
        if data["name"] == "mnist":
            return
        saved = {"name": "mnist", "classes": list(SOURCES["mnist"].classes), "fingerprint": "MNIST's"}
    if saved["classes"] != data["classes"]:
        raise UsageError(f"{run} was trained on the classes {_few(saved['classes'])} of {saved['name']}; "
                         f"{data['name']} has {_few(data['classes'])}: a model names only the classes it learned")
    if saved["fingerprint"] != data["fingerprint"]:
        raise UsageError(f"{data['name']} holds other images than {run} was trained on (fingerprint "
                         f"{data['fingerprint'][:12]}, the run's {saved['fingerprint'][:12]}): its splits and errors "
                         "would not be the run's; pass --dataset with the run's own data")


def _few(classes: list[str]) -> str:
    return "[" + ", ".join(classes[:4]) + (f", ... ({len(classes)})" if len(classes) > 4 else "") + "]"


def load_run(run: str, data_dir: str | None, dataset: str | None = None) -> tuple[Path, dict, Args, Task]:
    """(checkpoint path, its contents, Args, Task) of RUN: a run folder, a shipped folder or a checkpoint file.
    ``dataset``: where the run's data lie here, if not where it recorded them (checked to be the same data)."""
    path = checkpoint.find(run)
    state = checkpoint.load(path)
    args = resolve(Args(**{**saved_args(state["args"]), "data_dir": data_dir}))
    args = replace(args, dataset=dataset) if dataset is not None else args
    task = task_from(state["task"])
    check_data(state, data_record(args, task), run)
    return path, state, args, task


def load_model(state: dict, args: Args, task: Task):
    """The trained model of a checkpoint's contents, built by its registry entry."""
    channels = (state.get("dataset") or {}).get("channels", 1)  # saved before datasets: grey
    model, _ = spec(args.model).build(args, task, state["model_config"]["n_classes"], channels)
    model.load_state_dict(state["model"])
    return model


def load_init(model, config, args: Args) -> tuple[int, str]:
    """Load --init's weights into ``model``; returns the samples they were trained on and what the caller should say
    of the load ("" when every tensor loaded). The architecture must match (the policy's std may differ: that is
    what fine-tuning usually changes; so may the gradient routes ``baseline_core``, ``policy_core`` and
    ``loc_limit``), except for the classifier's width ``n_classes``: a checkpoint of another task's labels
    (pairs100's digits for addition100's sums, another dataset's classes) starts this run with every layer but its
    output layer, which starts fresh (the note names those tensors)."""
    path = checkpoint.find(args.init)
    if not path.exists():
        raise UsageError(f"--init {args.init}: no such checkpoint")
    state = checkpoint.load(path)
    # Through JSON, so that tuples and lists compare equal; a config saved before a field existed has its default.
    theirs = json.loads(json.dumps({**dataclasses.asdict(type(config)()), **state["model_config"]}))
    ours = json.loads(json.dumps(dataclasses.asdict(config)))
    # Noise and gradient routes, not architecture.
    for routing in ("std", "baseline_core", "policy_core", "loc_limit"):
        theirs.pop(routing, None), ours.pop(routing, None)
    if state["args"]["model"] != args.model:
        raise UsageError(f"--init {path} is a {state['args']['model']} model; this run's is {args.model}")
    classes = theirs.pop("n_classes", None), ours.pop("n_classes", None)
    if theirs != ours:
        diff = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
        raise UsageError(f"--init {path} is a different architecture ({', '.join(diff)} differ from this run's)")
    weights, own = state["model"], model.state_dict()
    samples, note = int(state["samples"]) + int(state.get("init_samples", 0)), ""
    if classes[0] == classes[1]:
        model.load_state_dict(weights)
    else:  # every tensor but the output layer's: those whose first dimension is the outputs, as in the checkpoint
        fresh = sorted(k for k in own if k in weights and weights[k].shape != own[k].shape)

        def output(k: str) -> bool:  # (outputs, ...) here and (their outputs, ...) there
            return (weights[k].shape[0], own[k].shape[0]) == classes and weights[k].shape[1:] == own[k].shape[1:]

        wrong = sorted({*own} ^ {*weights}) + [k for k in fresh if not output(k)]
        if wrong:
            raise UsageError(f"--init {path}: weights beyond the outputs do not fit this model ({', '.join(wrong)})")
        model.load_state_dict({k: v for k, v in weights.items() if k not in fresh}, strict=False)
        note = f"--init {path}: {classes[0]} outputs there, {classes[1]} here; {', '.join(fresh)} start fresh"
    return samples, note


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
            or (init is not None and not (numbers(init, "samples") and isinstance(init.get("checkpoint"), str)
                                          and isinstance(init.get("minutes", 0.0), (int, float))))):
        raise UsageError(f"{path}: not a results.json written by train.py (no test, history or train_minutes)")
    return results


def starting_run(init: str) -> dict | None:
    """results.json of the run that wrote a --init checkpoint (a .pt file or a run folder, as the run recorded it:
    relative to the working directory, which for the shipped runs is the repository); None if it has none."""
    folder = Path(init).parent if Path(init).suffix == ".pt" else Path(init)
    found = folder / "results.json"
    return read_results(found) if found.is_file() else None


def init_record(init: str, samples: int) -> dict:
    """How a fine-tuned run records where it started (results.json's "init"): the checkpoint, the samples behind
    it and, when the starting run's results.json is at hand, the minutes of training behind it, so that the run's
    own results.json keeps the whole chain's minutes after its starting runs are gone."""
    record = {"checkpoint": init, "samples": samples}
    parent = starting_run(init)
    if parent is not None:
        before = [h for h in lineage(parent)[0] if h["samples"] <= samples]
        record["minutes"] = before[-1]["minutes"] if before else 0.0
    return record


def lineage(results: dict, parent_of: Callable[[str], dict | None] = starting_run,
            _seen: frozenset[str] = frozenset()) -> tuple[list[dict], float, list[str]]:
    """The validation curve and training minutes of a run together with the runs it was fine-tuned from.

    ``results`` is a run's results.json; ``parent_of(checkpoint)`` returns the results.json of the run that wrote
    the checkpoint a run started from (``--init``), or None if it is not at hand. The curve holds the starting
    run's evaluations up to that checkpoint, then the run's own, shifted by the checkpoint's samples and minutes;
    the minutes are those of the whole chain. Returns (curve, minutes, the checkpoints of the chain, nearest first);
    where a starting run is missing (or would repeat a checkpoint of the chain), the curve is shifted by its samples
    and by the minutes the run recorded for its start (``init_record``; none: they are not counted). A starting
    run of another task (its name or kind differs) counts its images and minutes but leaves its errors off the curve.
    """
    init = results.get("init")
    if init is None:
        return results["history"], results["train_minutes"], []
    parent = parent_of(init["checkpoint"]) if init["checkpoint"] not in _seen else None
    if parent is None:
        start = init.get("minutes", 0.0)
        curve = [{**h, "samples": h["samples"] + init["samples"], "minutes": h["minutes"] + start}
                 for h in results["history"]]
        seen = " (not at hand; the minutes it recorded)" if "minutes" in init else " (not at hand)"
        return curve, start + results["train_minutes"], [init["checkpoint"] + seen]
    before, _, chain = lineage(parent, parent_of, _seen | {init["checkpoint"]})
    before = [h for h in before if h["samples"] <= init["samples"]]
    start = before[-1]["minutes"] if before else 0.0
    own = [{**h, "samples": h["samples"] + init["samples"], "minutes": h["minutes"] + start}
           for h in results["history"]]
    if not _same_task(parent, results):
        # Another task's errors (a pairs100 agent started an addition100 run) measure something else: its images and
        # minutes count, its curve is not this one's.
        other = (parent.get("task") or {}).get("name")
        return own, start + results["train_minutes"], [f"{init['checkpoint']} ({other}: not drawn)", *chain]
    return before + own, start + results["train_minutes"], [init["checkpoint"], *chain]


def _same_task(a: dict, b: dict) -> bool:
    """Whether two runs' results.json name the same task (its name and kind; a run that records no task, or no kind,
    written before those existed, counts as the same and as a classification). The dataset and the canvas overrides
    are not compared: a fine-tune on Fashion-MNIST from an MNIST agent still draws the MNIST errors."""
    if not a.get("task") or not b.get("task"):
        return True
    return all(a["task"].get(k, d) == b["task"].get(k, d) for k, d in (("name", None), ("kind", "classify")))

