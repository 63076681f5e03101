"""The one typed config of a run (``Args``) and its command line.

Every field is a flag of the same name (``hidden_size`` is ``--hidden-size``); its ``help`` becomes ``--help``.
The task's fields are the one exception, and ``TASK_FLAGS`` is the table that maps them: ``--glimpses`` sets the
task's ``n_glimpses``, ``--clutter`` its ``n_clutter``, ``--scales`` its ``n_scales``. ``Args`` is saved with every
run (config.json) and every checkpoint.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import dataclass, field

from envs.tasks import PRESETS, Task, get_task
from ram.errors import UsageError
from ram.kinds import kind_named
from ram.losses import REWARDS
from ram.parallel import resolve_device, train_data_of
from ram.registry import MODELS, spec

# Bookkeeping flags: how a run is executed, not what it learns. Only these may change on --resume.
# --dataset: where the run's data lie now (``ram.runs.check_data`` makes sure they are the run's own).
BOOKKEEPING = ("resume", "run_dir", "progress", "data_dir", "dataset", "threads", "stop_after", "snapshots")

# Flags that override a field of the task preset (envs.tasks.Task): flag field -> Task field.
TASK_FLAGS = {"glimpses": "n_glimpses", "glimpse_size": "glimpse_size", "scales": "n_scales",
              "canvas_size": "canvas_size", "clutter": "n_clutter", "clutter_size": "clutter_size", "scale": "scale",
              "object_size": "object_size", "clutter_spread": "clutter_spread", "objects": "n_objects"}


def _flag(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


def _default(value, help: str, **kw):
    """A field whose default may be the task's recipe's (``RECIPES``) or the model's (``ram.registry``): None until
    ``resolve`` fills it, so that a value given explicitly always wins."""
    return field(default=None, metadata={"help": help, "default": value, **kw})


# The recipes of the agents trained by REINFORCE (RAM and DRAM): the values their flags take when the command line
# leaves them unset, so that `python train.py --task T` trains a good agent for T with its default number of
# glimpses (measured in docs/results.md, docs/catch.md and docs/several-objects.md). Keyed by (task, glimpses,
# model), None meaning every count or every model: a run takes its task's entry, then its glimpse count's, then its
# model's, then its model's with its glimpse count, the later winning (``recipe_of``).
# The cluttered tasks' agent: the LSTM core, a hidden layer in the location policy, the first glimpse at the centre,
# the std annealed from 0.15 to 0.04, batches of 1,024 with the learning rate scaled by sqrt(1024 / 128) after a
# 200k-image warm-up, REINFORCE paid p(y | h_T), and its gradient reaching the core through the policy's input (the
# Torch7 route; docs/results.md and docs/scaling.md have the A/Bs behind each choice).
_ATTEND = {"core": "lstm", "loc_hidden": 128, "start": "center", "std": 0.15, "std_final": 0.04, "batch_size": 1024,
           "lr": 2.83e-3, "lr_warmup": 200_000, "reward": "prob", "policy_core": True, "eval_every": 500_000}
RECIPES: dict[tuple[str, int | None, str | None], dict] = {
    # A small LSTM agent trained by REINFORCE; its baseline shapes its state too (as an actor-critic's critic); a
    # little entropy keeps the moves from settling on one move early (docs/catch.md has the runs behind each choice).
    ("catch", None, None): {"core": "lstm", "hidden_size": 64, "g_size": 64, "glimpse_hidden": 32,
                            "baseline_core": True, "entropy": 0.01, "lr": 2e-3, "samples": 5_000_000,
                            "eval_every": 100_000},
    # 10M images (40 to 61 minutes on 2 cores with 6 glimpses, two seeds; measured with 6 and 4).
    ("cluttered60", None, None): {**_ATTEND, "samples": 10_000_000},
    # With the task's 6 glimpses: half the images, each canvas played twice with the leave-one-out baseline
    # (`--rollouts 2`); below the paper's 4.08% greedily on 5M images with two seeds, where one rollout missed it.
    # Glimpse-network pathways of 256 units, not the paper's 128: the reader, not the search, makes most errors
    # (benchmarks/val_test_gap.py), and the wider one was ahead at every validation with two seeds.
    ("cluttered60", 6, None): {"samples": 5_000_000, "rollouts": 2, "glimpse_hidden": 256},
    # With 8: the 10M images, each canvas played twice (3.34% greedy where 8M with one rollout gave 3.56%).
    ("cluttered60", 8, None): {"rollouts": 2},
    # The same agent on the larger canvas: 10M images, each canvas played twice (4.64% greedy where one rollout gave
    # 5.33%; about 92 minutes with one thread beside other runs, 95 alone with one rollout). 8 glimpses measured.
    ("cluttered100", None, None): {**_ATTEND, "samples": 10_000_000, "rollouts": 2},
    # Two digits on the cluttered 100 x 100 canvas (Ba et al. 2015), read in order or summed: the same agent, each
    # canvas played twice (docs/several-objects.md has the runs). pairs100 on 5M images; addition100 on 3M, started
    # from a pairs100 agent (--init runs/pairs100-4g-s0): from scratch it learned nothing in 2.5M images.
    ("pairs100", None, None): {**_ATTEND, "samples": 5_000_000, "rollouts": 2},
    ("addition100", None, None): {**_ATTEND, "samples": 3_000_000, "rollouts": 2},
    # The same agent on the uncluttered 60 x 60 canvas: 8M images, about 33 minutes on 2 cores.
    ("translated60", None, None): {**_ATTEND, "samples": 8_000_000},
    # One 8 x 8 scale on 28 pixels: the paper's RNN agent with a random first glimpse at batch 128 (the cluttered
    # agent does worse here), with the std annealed, a hidden layer in the policy, p(y | h_T) and the Torch7 route,
    # on 10M images (about 35 minutes on one core beside another run; 6M left greedy error above the paper's).
    ("mnist28", None, None): {"loc_hidden": 128, "std": 0.2, "std_final": 0.05, "reward": "prob",
                              "policy_core": True, "samples": 10_000_000, "eval_every": 500_000},
    # What DRAM changes in its task's entry: on pairs, a what-and-where product of 512 units, not 256 (its LSTM
    # layers stay 256): ahead at every validation on two seeds of 2M images and on the 5M budget. 10M images with a
    # pull on the location policy's pre-tanh output back to +-2 (--loc-limit): without it seed 0 of the 10M budget
    # stalled, its glimpses stuck at a corner; with it, 8.43% greedy (seed 1 without it: 8.30%), against 11.08% on 5M
    # images. docs/several-objects.md has the A/Bs.
    ("pairs100", None, "dram"): {"g_size": 512, "samples": 10_000_000, "loc_limit": 2.0},
    # addition100 starts from a pairs agent (--init), whose sizes win anyway; unmeasured from scratch (at 256 it learned
    # nothing), this keeps the two tasks' DRAM alike. No --loc-limit: the measured fine-tune ran without it.
    ("addition100", None, "dram"): {"g_size": 512},
}


def recipe_of(task: str, glimpses: int | None, model: str = "ram") -> dict:
    """The recipe of ``task`` with ``glimpses`` glimpses (None: the task's own count) for ``model``; {} if it has
    none."""
    T = PRESETS[task].n_glimpses if glimpses is None else glimpses
    keys = ((task, None, None), (task, T, None), (task, None, model), (task, T, model))
    return {k: v for key in keys for k, v in RECIPES.get(key, {}).items()}


@dataclass
class Args:
    """Every hyperparameter of a run; saved with it (config.json) and with every checkpoint."""

    task: str = _flag("cluttered60", "task preset (sets the canvas, clutter and the paper's sensor; catch: the game)")
    dataset: str = _flag("mnist", "the images that fill the task's canvases: mnist, fashion-mnist, a folder of class "
                         "folders (PNG/JPEG, grey or RGB) or an .npz of images and labels (docs/datasets.md)")
    recipe: bool = _flag(True, "fill the flags left unset from the task's recipe for its glimpse count and model "
                         "(RECIPES in ram/config.py; --no-recipe: the plain defaults, as commands "
                         "written before the recipe)")
    model: str = _flag("ram", "the model, an entry of the registry (ram.registry): ram is hard attention trained "
                       "by REINFORCE; the others see the whole canvas and learn by backpropagation (docs/training.md)")
    score: str = _flag("scaled_dot", "soft attention's score function", choices=("additive", "dot", "scaled_dot",
                                                                                "general"))
    heads: int | None = _default(1, "attention heads (vit's default: 4)")
    glimpses: int | None = _flag(None, "glimpses per image, T (default: the task's, 6 or 8)")
    glimpse_size: int | None = _flag(None, "side g of the smallest glimpse patch in pixels (default: the task's)")
    scales: int | None = _flag(None, "number of scales k of the retina (default: the task's)")
    canvas_size: int | None = _flag(None, "canvas side in pixels (default: the task's)")
    clutter: int | None = _flag(None, "pieces of clutter per canvas (default: the task's)")
    clutter_size: int | None = _flag(None, "side of each clutter piece in pixels (default: 8)")
    scale: int | None = _flag(None, "each retina scale is this many times wider than the previous one (default: 2)")
    object_size: int | None = _flag(None, "side of the object in pixels: each image is resized to it (default: the "
                                    "dataset's own, 28 for MNIST; a folder's or .npz's images of mixed sizes are "
                                    "resized to it when read)")
    clutter_spread: int | None = _flag(None, "training canvases draw their number of clutter pieces uniformly from "
                                       "--clutter minus to plus this (at least 0); validation and test keep --clutter "
                                       "(default: 0)")
    objects: int | None = _flag(None, "objects per canvas of a task of several (--task pairs100, addition100; "
                                "default: the task's, 2); --glimpses then counts each object's glimpses")
    start: str | None = _default("random", "first glimpse: at a random location (the paper) or the centre",
                       choices=("random", "center"))
    core: str | None = _default("rnn", "core network: the paper's ReLU RNN, or an LSTM", choices=("rnn", "lstm"))
    policy: str = _flag("learned", "locations: learned by REINFORCE, or uniformly random (the paper's ablation)",
                        choices=("learned", "random"))
    patch_size: int | None = _flag(None, "vit: side p of the square patches that are its tokens, the canvas "
                                   "zero-padded to a multiple of p (default: a fifth of the canvas, rounded up: 12 on "
                                   "60 pixels, 20 on 100)")
    d_model: int = _flag(128, "vit: width d of its tokens")
    layers: int = _flag(3, "vit: Transformer blocks L")
    hidden_size: int | None = _default(256, "units of the core network h_t")
    glimpse_hidden: int | None = _default(128, "units of each glimpse-network pathway: sets both h_g (what) and h_l "
                                          "(where)")
    g_size: int | None = _default(256, "units of the glimpse representation g_t")
    loc_hidden: int | None = _default(0, "units of a ReLU hidden layer in the location policy (0: the paper's "
                                      "linear map)")
    std: float | None = _default(0.2, "standard deviation of the Gaussian location policy (canvas spans [-1, 1])")
    loc_limit: float | None = _default(0.0, "a restoring gradient on the location policy's pre-tanh output beyond "
                                       "+-this, where tanh passes none and a mean stuck at the canvas's edge stays "
                                       "there (e.g. 2; 0: none, the paper's; docs/several-objects.md)")
    std_final: float | None = _default(None, "anneal the policy's std from --std to this by the end of the run "
                                       "(cosine, like the learning rate); Monte-Carlo tests use it (default: --std "
                                       "throughout; under a recipe that anneals, give --std-final equal to --std)")
    init: str | None = _flag(None, "start from the weights of this checkpoint (a run folder, best.pt or agent.pt) "
                             "of the same architecture, e.g. to fine-tune a trained agent with a smaller --std; its "
                             "output layer starts fresh where the classes differ (addition100 from a pairs100 agent)")
    batch_size: int | None = _default(128, "episodes per training step")
    samples: int | None = _default(3_000_000, "training budget in images (episodes) seen")
    lr: float | None = _default(1e-3, "Adam learning rate, decayed to lr * lr_final by a cosine schedule (the "
                                "model's registry entry may set another default)")
    lr_final: float = _flag(0.02, "final learning rate as a fraction of --lr")
    lr_warmup: int | None = _default(0, "samples over which the learning rate rises linearly to --lr, under its "
                                     "cosine (for large batches: docs/scaling.md; 0: none)")
    reward: str | None = _default("env", "the return R that REINFORCE and its baseline see: env, the reward paid "
                                  "(1 for the right class; the paper); prob, the classifier's probability of the true "
                                  "class, p(y | h_T); log_prob, log p(y | h_T) (docs/results.md has the A/B)",
                                  choices=REWARDS)
    reinforce_weight: float = _flag(1.0, "weight of the REINFORCE term in the hybrid loss")
    baseline_weight: float = _flag(1.0, "weight of the baseline's regression term in the hybrid loss")
    context: bool = _flag(True, "--model dram: the upper layer starts from a coarse view of the whole canvas (the "
                          "first observation's widest scale); --no-context: the paper's 'DRAM w/o context'")
    policy_core: bool | None = _default(False, "REINFORCE's gradient also trains the core and glimpse networks, "
                                        "through the location policy's input h_t (the Torch7 implementation's route); "
                                        "off: the location policy alone")
    rollouts: int | None = _default(1, "rollouts per training canvas, K: each fresh canvas is played by K episodes "
                                    "of the batch (--batch-size counts episodes, so B / K canvases a step), and "
                                    "REINFORCE's baseline for each is the mean return of the canvas's other K - 1 "
                                    "(leave-one-out) instead of the learned b_t; 1: the learned baseline")
    glimpse_loss: float = _flag(0.0, "weight of the cross-entropy of the class named at every glimpse before the "
                                "last (their mean), beside the paper's at the last glimpse; it trains what that one "
                                "trains (0: off, the paper)")
    baseline_core: bool | None = _default(False, "the baseline's regression also trains the core and glimpse networks "
                                          "(an actor-critic's shared state); off: the baseline alone")
    entropy: float | None = _default(0.0, "weight of a bonus on the entropy of a game's moves (catch), which keeps the "
                                     "move policy from settling on one move before it has learned (0: off)")
    gae_lambda: float | None = _default(1.0, "a game's advantages: 1 is REINFORCE's R - b_t; below 1, generalised "
                                        "advantage estimation, which also trusts the baseline's later predictions")
    clip_grad: float = _flag(5.0, "clip the gradient norm to this (0: off)")
    ema: float = _flag(0.0, "evaluate, select and ship an exponential moving average of the weights with this decay "
                       "per step, e.g. 0.999 (0: off, the trained weights themselves)")
    eval_every: int | None = _default(300_000, "evaluate on the validation set every this many samples")
    eval_batch: int = _flag(1000, "episodes per batch when evaluating")
    snapshots: bool = _flag(False, "keep the weights of every validation in RUN/snapshots/ (the agent alone: 1-3 MB "
                            "for RAM), for `train.py curve RUN`: test error against training minutes; a resumed "
                            "run keeps it unless given")
    mc_samples: int = _flag(10, "rollouts averaged for the Monte-Carlo test error")
    seed: int = _flag(0, "random seed")
    device: str = _flag("auto", "where to train and evaluate: auto (cuda where torch sees a GPU, else cpu), cpu, "
                        "cuda or cuda:N")
    train_data: str = _flag("auto", "where training canvases are made: env (the gymnasium env, numpy on the CPU: the "
                            "canvases of every CPU run, bit for bit) or device (torch on --device: no host-device copy "
                            "per step); auto: device on a GPU, else env", choices=("auto", "env", "device"))
    autocast: str = _flag("off", "run the episodes under torch.autocast in bf16 (for GPUs; the loss stays float32)",
                          choices=("off", "bf16"))
    threads: int = _flag(2, "torch CPU threads")
    run_dir: str | None = _flag(None, "run folder (default: runs/TASK-Tg-sSEED for RAM, runs/TASK-MODEL-sSEED for "
                                "the others)")
    resume: bool = _flag(False, "continue the run in --run-dir from its last checkpoint, with its own settings")
    data_dir: str | None = _flag(None, "cache folder of --dataset mnist or fashion-mnist (default: MNIST's "
                                 "$RAM_DATA_DIR, else $XDG_CACHE_HOME/ram/NAME, else ~/.cache/ram/NAME)")
    progress: bool = _flag(True, "show a progress bar (--no-progress for logs)")
    stop_after: int | None = _flag(None, "end this invocation after it has seen this many samples (checkpointed; "
                                   "--resume continues), e.g. to fit a job into a time slot")


def resolve(args: Args) -> Args:
    """``args`` with the fields left unset (None) filled: from the task's recipe (for RAM and DRAM, unless
    ``recipe`` is off), else the model's defaults (``ram.registry``), else their own. The one place defaults are
    applied: the command line, a resumed run and a loaded checkpoint all come through here."""
    # RAM's recipes serve DRAM too (the fields it has no use for, such as --core, it ignores).
    recipe = recipe_of(args.task, args.glimpses, args.model) if args.model in ("ram", "dram") and args.recipe else {}
    if args.policy != "learned":
        recipe.pop("policy_core", None)  # random locations have no policy for REINFORCE to route through
        recipe.pop("rollouts", None)  # nor a REINFORCE for the rollouts' baseline to serve
        recipe.pop("loc_limit", None)  # nor a policy's output to bound
    defaults = spec(args.model).defaults
    filled = {f.name: recipe.get(f.name, defaults.get(f.name, f.metadata["default"]))
              for f in dataclasses.fields(args) if getattr(args, f.name) is None and "default" in f.metadata}
    return dataclasses.replace(args, **filled)


def loss_settings(args: Args, spec) -> dict:
    """The settings of a task kind's loss (``ram.kinds.TaskKind.loss``) from the run's flags; each kind uses those
    that apply to it. Random locations leave nothing for REINFORCE to train: its weight is 0 then."""
    return {"reinforce_weight": args.reinforce_weight if spec.policy and args.policy == "learned" else 0.0,
            "baseline_weight": args.baseline_weight, "entropy_weight": args.entropy, "gae_lambda": args.gae_lambda,
            "credit": args.reward, "rollouts": args.rollouts, "glimpse_loss": args.glimpse_loss}


def task_of(args: Args) -> Task:
    """The task preset named by --task with the flags of ``TASK_FLAGS`` that were given applied to it."""
    overrides = {task_field: getattr(args, flag) for flag, task_field in TASK_FLAGS.items()}
    try:
        return get_task(args.task, **overrides)
    except ValueError as e:
        raise UsageError(str(e)) from None


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


def add_fields(parser: argparse.ArgumentParser) -> None:
    """One flag per Args field: its name, type, default and help."""
    for f in dataclasses.fields(Args):
        name = "--" + f.name.replace("_", "-")
        default = f.metadata.get("default", f.default)
        recipes = "".join(f", --task {task}{'' if T is None else f' --glimpses {T}'}"
                          f"{'' if model is None else f' --model {model}'}: {recipe[f.name]}"
                          for (task, T, model), recipe in RECIPES.items() if f.name in recipe)
        help = f.metadata["help"] + ("" if default is None else f" (default: {default}{recipes})")
        if f.type in ("bool", bool, "bool | None"):
            parser.add_argument(name, action=argparse.BooleanOptionalAction, default=f.default, help=help)
            continue
        kind = {"int": int, "int | None": int, "float": float, "float | None": float}.get(str(f.type), str)
        # The models and tasks are the registries' at the time of parsing, so one registered later is a valid choice.
        choices = {"model": tuple(MODELS), "task": tuple(PRESETS)}.get(f.name, f.metadata.get("choices"))
        metavar = None if choices else {int: "N", float: "X"}.get(kind, f.name.split("_")[-1].upper())
        parser.add_argument(name, type=kind, default=f.default, help=help, choices=choices, metavar=metavar)


POSITIVE = ("heads", "patch_size", "d_model", "layers", "glimpses", "glimpse_size", "scales", "canvas_size",
            "clutter_size", "scale", "object_size", "batch_size", "samples", "eval_every", "eval_batch", "mc_samples",
            "threads", "hidden_size", "glimpse_hidden", "g_size", "stop_after", "rollouts", "objects")


def check(args: Args) -> Args:
    """The checks argparse cannot make, each a one-line UsageError (those of the task's kind: ``ram.kinds``)."""
    if not args.context and args.model != "dram":
        raise UsageError(f"--no-context removes DRAM's context network: it applies to --model dram, not {args.model}")
    if args.model == "dram":
        if args.policy != "learned":
            raise UsageError("DRAM's locations are learned: --policy random applies to --model ram")
        if args.context and args.start != "center":
            raise UsageError("DRAM's context is the view from the canvas's centre: pass --start center, or "
                             "--no-context")
        if args.context and task_of(args).n_glimpses < 2:
            raise UsageError("with its context DRAM's first step is the coarse view, so it needs --glimpses 2 or "
                             "more per object (or --no-context)")
    for name in POSITIVE:
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    if args.loc_hidden < 0:
        raise UsageError(f"--loc-hidden must be >= 0, got {args.loc_hidden}")
    if args.clutter is not None and args.clutter < 0:
        raise UsageError(f"--clutter must be >= 0, got {args.clutter}")
    if args.clutter_spread is not None and args.clutter_spread < 0:
        raise UsageError(f"--clutter-spread must be >= 0, got {args.clutter_spread}")
    if not args.std > 0 or not args.lr > 0 or not (args.std_final is None or args.std_final > 0):
        raise UsageError("--std, --std-final and --lr must be > 0")
    if not (args.loc_limit >= 0 and math.isfinite(args.loc_limit)):
        raise UsageError(f"--loc-limit must be a finite number >= 0, got {args.loc_limit}")
    if args.loc_limit and (not spec(args.model).policy or args.policy != "learned"):
        raise UsageError("--loc-limit bounds a learned location policy (--model ram or dram, not --policy random)")
    if args.std_final is not None and not spec(args.model).policy:
        raise UsageError(f"--std-final anneals a location policy's std: a {args.model} model has no location policy")
    if args.lr_warmup < 0:
        raise UsageError(f"--lr-warmup must be >= 0 samples, got {args.lr_warmup}")
    if not 0 <= args.lr_final <= 1:
        raise UsageError(f"--lr-final must be in [0, 1], got {args.lr_final}")
    if not 0 <= args.gae_lambda <= 1 or not args.entropy >= 0:
        raise UsageError(f"--gae-lambda must be in [0, 1] and --entropy >= 0, got {args.gae_lambda} and {args.entropy}")
    kind_named(PRESETS[args.task].kind).check(args, spec(args.model))  # the flags that do not apply to the kind
    if args.baseline_core and not spec(args.model).policy:
        raise UsageError(f"--baseline-core routes the baseline's gradient: a {args.model} model has no baseline")
    if args.policy_core and (not spec(args.model).policy or args.policy != "learned"):
        raise UsageError("--policy-core routes REINFORCE's gradient: it needs a learned location policy (--model ram "
                         "or dram)")
    if args.batch_size % args.rollouts:
        raise UsageError(f"--batch-size {args.batch_size} must be a multiple of --rollouts {args.rollouts}")
    if not args.glimpse_loss >= 0:
        raise UsageError(f"--glimpse-loss must be >= 0, got {args.glimpse_loss}")
    if not 0 <= args.ema < 1:
        raise UsageError(f"--ema must be in [0, 1), got {args.ema}")
    train_data_of(args.train_data, resolve_device(args.device), task_of(args))  # one-line errors, before any work
    if args.resume and args.run_dir is None:
        raise UsageError("--resume needs --run-dir RUN (the run to continue)")
    return args


def parse_args(argv: list[str]) -> Args:
    """Args from train.py's command line, checked."""
    parser = Parser(prog="train.py", description="Train the Recurrent Attention Model (Mnih et al. 2014) on a "
                    "cluttered-MNIST task. Subcommands: `train.py evaluate RUN`, `train.py visualize RUN`, "
                    "`train.py curve RUN`, `train.py compare RUN...` (each has --help).")
    add_fields(parser)
    return check(resolve(Args(**vars(parser.parse_args(argv)))))
