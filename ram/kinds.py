"""The task-kind registry: everything training, evaluation and the reports need to know about a kind of task.

A task (``envs.tasks.Task``) is of one kind: today ``classify`` (name the object on a canvas after the last glimpse:
the paper's digits), ``catch`` (the paper's game: a move at every step), and two of several objects per canvas (Ba
et al. 2015): ``sequence`` (name each object, in reading order, after its glimpses) and ``sum`` (name the sum of
their classes after the last glimpse). Adding a kind is adding one ``TaskKind``
with ``register``, as a model is one entry of ``ram.registry``: how to make its envs, the action its model chooses,
its episodes and loss, how to evaluate it and the players it is measured against, how to draw it, what its curve
shows, and the flags that do not apply to it. The world's side of a kind (what its canvas must hold) is
``envs.tasks.KIND_RULES``. Training, evaluation, ``visualize``, ``curve`` and ``compare`` ask the entry; none of
them names a kind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envs.tasks import PRESETS
from ram import episodes, games, sequences
from ram.errors import UsageError
from ram.pictures import Picture, draw_canvases

if TYPE_CHECKING:
    from envs.tasks import Task
    from ram.config import Args
    from ram.registry import ModelSpec


@dataclass(frozen=True)
class Metric:
    """What a kind's curve shows: its error (%), or, with ``rate``, 100 minus it under that name (a game's catch
    rate), against training minutes and, with ``per_episode``, against episodes too."""

    rate: str | None = None
    per_episode: bool = False


@dataclass(frozen=True)
class TaskKind:
    name: str
    # The key of the env's action that the model's action network chooses: its size is the model's n_classes.
    action: str
    # (spec, args, task, split, num_envs, *, device=None, **env kwargs) -> the batched env of a split.
    make_env: Callable[..., Any]
    # (spec, model, env, *, greedy, index=None, seed=None, watch=None) -> a batch of the kind's episodes.
    play: Callable[..., Any]
    # (episode, *, reinforce_weight, baseline_weight, entropy_weight, gae_lambda, credit, rollouts) -> Losses; each
    # kind uses the settings that apply to it (``check`` refuses the others on the command line).
    loss: Callable[..., Any]
    # (spec, model, env, n, *, mc_samples, seed) -> {"greedy_error": %, ...}: the error on the first n of a fixed set.
    evaluate: Callable[..., dict]
    # (spec, model, args, task, split, first, n) -> Picture, or None when the model has nothing to draw.
    draw: Callable[..., Picture | None]
    # (args, spec) -> None: UsageError for flags that do not apply to this kind.
    check: Callable[[Args, ModelSpec], None]
    # (env, n, *, seed) -> {name: %}: players without a retina measured on the same fixed episodes; None: none.
    opponents: Callable[..., dict] | None = None
    metric: Metric = Metric()
    # (args, task, spec) -> the name of a run's default folder in runs/; the default counts the glimpses.
    run_name: Callable[..., str] = lambda args, task, spec: glimpse_run_name(args, task, spec)
    # The model acts at every step (a game's move) instead of naming a class after the last glimpse.
    acts_every_step: bool = False
    # `compare` measures it (classifiers, side by side on canvases).
    comparable: bool = True
    # Its training canvases can be made on the device (``envs.device``, --train-data device).
    device_canvases: bool = True
    # (args, task) -> the dataset that fills its canvases (``envs.datasets.Dataset``: checked to fit the task, a
    # UsageError otherwise), or None: its env draws its own screens.
    data: Callable[..., Any] = lambda args, task: None
    # (spec, task, n) -> the size of the model's output for a label of n values: n; or, for a model that sees the
    # whole canvas at once and names several labels, n per label (one head each).
    outputs: Callable[..., int] = lambda spec, task, n: n
    # (args, spec) -> a note for a run whose flags are allowed but were measured to fail (train.py prints it on
    # stderr), or "": nothing to say.
    advice: Callable[..., str] = lambda args, spec: ""


def glimpse_run_name(args: Args, task: Task, spec: ModelSpec) -> str:
    """TASK-Tg-sSEED for RAM (TASK-Tg-random-sSEED with random glimpses; TASK-Tg-dram-sSEED and
    -dram-nocontext- for DRAM), TASK-MODEL-sSEED for the others; -spreadS before the seed for training clutter
    drawn from a range (--clutter-spread S); DATA- in front for a dataset other than MNIST (its name, or its
    folder's or file's name: fashion-mnist-cluttered60-6g-s0)."""
    spread = f"-spread{task.clutter_spread}" if task.clutter_spread else ""
    data = "" if args.dataset == "mnist" else f"{Path(args.dataset).stem}-"
    if spec.reads != "glimpses":
        return f"{data}{args.task}-{args.model}{spread}-s{args.seed}"
    model = "" if args.model == "ram" else f"-{args.model}{'' if args.context else '-nocontext'}"
    return (f"{data}{args.task}-{task.n_glimpses}g{model}{'-random' if args.policy == 'random' else ''}{spread}"
            f"-s{args.seed}")


KINDS: dict[str, TaskKind] = {}


def register(kind: TaskKind) -> TaskKind:
    KINDS[kind.name] = kind
    return kind


def kind_named(name: str) -> TaskKind:
    if name not in KINDS:
        raise UsageError(f"unknown task kind {name!r} (registered: {', '.join(KINDS)})")
    return KINDS[name]


def kind_of(task: Task) -> TaskKind:
    return kind_named(task.kind)


def make_env(spec: ModelSpec, args: Args, task: Task, split: str, num_envs: int, **kw):
    """The batched env of ``split`` for ``task``, as its kind makes it."""
    return kind_of(task).make_env(spec, args, task, split, num_envs, **kw)


def data_record(args: Args, task: Task) -> dict | None:
    """What a run records of its dataset (config.json, checkpoints): ``Dataset.describe()``, or None (a game)."""
    data = kind_of(task).data(args, task)
    return None if data is None else data.describe()


def channels_of(args: Args, task: Task) -> int:
    """The channels of the run's images: 1 (grey; a game's screen), or 3 (an RGB dataset)."""
    data = kind_of(task).data(args, task)
    return 1 if data is None else data.channels


def n_actions(env, spec: ModelSpec | None = None) -> int:
    """The number of values of the kind's action (classes, or moves); with ``spec``, the size of that model's
    output (``TaskKind.outputs``)."""
    n = int(env.single_action_space[kind_of(env.task).action].n)
    return n if spec is None else kind_of(env.task).outputs(spec, env.task, n)


def play(spec: ModelSpec, model, env, **kw):
    """One batch of ``env``'s episodes, as its task's kind plays them."""
    return kind_of(env.task).play(spec, model, env, **kw)


ROLLOUTS = ("--rollouts is a baseline for REINFORCE's locations: it needs a glimpse model (--model ram or dram) with "
            "a learned policy on a classification task")


# -- classify: name the object on a canvas after the last glimpse (the paper's digits).

def _check_classify(args: Args, spec: ModelSpec) -> None:
    if args.entropy != 0 or args.gae_lambda != 1:
        raise UsageError("--entropy and --gae-lambda shape the loss of a game's moves: they apply to --task catch only")
    if args.rollouts > 1 and (not spec.policy or args.policy != "learned"):
        raise UsageError(ROLLOUTS)
    if args.glimpse_loss and args.model != "ram":
        raise UsageError(f"--glimpse-loss asks RAM's classifier at every glimpse: it applies to --model ram, not "
                         f"{args.model}")


register(TaskKind("classify", action="label", make_env=episodes.make_env, play=episodes.classify,
                  loss=episodes.classification_loss, evaluate=episodes.evaluate, draw=draw_canvases,
                  check=_check_classify, data=episodes.data_of))


# -- catch: the paper's game, a move at every step (envs.catch).

def _check_game(args: Args, spec: ModelSpec) -> None:
    if args.reward != "env":
        raise UsageError("--reward prob and log_prob score a class: a game (catch) is paid for its ball only")
    if args.rollouts > 1:
        raise UsageError(ROLLOUTS)
    if args.glimpse_loss:
        raise UsageError("--glimpse-loss asks every glimpse for a class: a game (catch) names none")
    if args.model != "ram" or args.policy != "learned":
        raise UsageError(f"--task {args.task} is played by the RAM agent: --model ram with --policy learned")
    if any(getattr(args, f) is not None for f in ("glimpses", "clutter", "clutter_size", "clutter_spread",
                                                   "object_size", "objects")) or args.dataset != "mnist":
        raise UsageError(f"--task {args.task} takes no --glimpses, --clutter, --clutter-size, --clutter-spread, "
                         "--object-size, --objects or --dataset: a game lasts as long as the ball falls "
                         "(--canvas-size - 1 steps) and its screen has no clutter and no images")


register(TaskKind("catch", action="paddle", make_env=games.make_env, play=games.play, loss=games.loss,
                  evaluate=games.evaluate, draw=games.draw, check=_check_game, opponents=games.play_baselines,
                  metric=Metric(rate="catch rate", per_episode=True),
                  # a game's length is its screen's, not a choice: TASK-sSEED
                  run_name=lambda args, task, spec: f"{args.task}-s{args.seed}",
                  acts_every_step=True, comparable=False, device_canvases=False))


# -- several objects on a canvas (Ba et al. 2015): read them in order, or sum them.

def _check_sequence(args: Args, spec: ModelSpec) -> None:
    if args.glimpse_loss:
        raise UsageError(f"--glimpse-loss applies to one object per canvas, not to --task {args.task}")
    if args.reward == "log_prob":
        raise UsageError("--reward log_prob pays every label a negative amount, which the sequence's cut at its first "
                         "wrong label would turn into a reward for mistakes: use prob or env")
    _check_classify(args, spec)


register(TaskKind("sequence", action="label", make_env=episodes.make_env, play=sequences.play, loss=sequences.loss,
                  evaluate=sequences.evaluate, draw=draw_canvases, check=_check_sequence, data=episodes.data_of,
                  device_canvases=False,
                  # a whole-canvas model names the K labels at once: one head of n classes per object
                  outputs=lambda spec, task, n: n if spec.reads == "glimpses" else n * len(task.label_steps)))


def _advise_sum(args: Args, spec: ModelSpec) -> str:
    if spec.policy and args.init is None and not args.resume:  # allowed, but measured to learn nothing: say so
        pairs = glimpse_run_name(replace(args, task="pairs100"), PRESETS["pairs100"], spec)  # its own model's
        return (f"a glimpse model learned no sums from scratch here (docs/several-objects.md); the {args.task} recipe "
                f"starts from a pairs100 agent: --init runs/{pairs}")
    return ""


# The sum is one label after every object's glimpses: a classification of K (classes - 1) + 1 values.
register(TaskKind("sum", action="label", make_env=episodes.make_env, play=episodes.classify,
                  loss=episodes.classification_loss, evaluate=episodes.evaluate, draw=draw_canvases,
                  check=_check_classify, data=episodes.data_of, advice=_advise_sum))
