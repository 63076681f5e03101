"""The model registry: everything the CLI needs to know about a model, in one entry per model.

Adding a model is adding one ``ModelSpec`` with ``register``: how to build it from the run's ``Args`` and task,
whether it reads glimpses (through the env, one per step, as RAM) or the whole canvas (one step per episode), and
how to draw where it attends. Training, evaluation, ``visualize``, ``compare`` and ``curve`` read the entry; none
of them names a model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch
from torch import nn

from envs.retina import Retina
from envs.tasks import rules_of
from ram import soft
from ram.agent import Agent
from ram.dram import DeepRecurrentAttention, DRAMConfig
from ram.episodes import data_of
from ram.errors import UsageError
from ram.kinds import kind_of
from ram.model import RAMConfig, RecurrentAttention
from ram.transformer import VisionTransformer, ViTConfig

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from envs.tasks import Task
    from ram.config import Args


class Drawing(NamedTuple):
    """Where a model attends on some canvases: ``figure(steps)`` after its first ``steps`` of ``n_steps`` steps
    (frames of an animation). ``name`` names the files and the TensorBoard tag; ``extras`` are
    further figures of the same canvases, by a name that is added to it (NAME-KEY.png)."""

    name: str
    figure: Callable[[int | None], Figure]
    n_steps: int
    extras: dict[str, Callable[[], Figure]] = {}


@dataclass(frozen=True)
class ModelSpec:
    name: str
    # (args, task, n_classes, channels=1) -> (model, its config dataclass), for images of ``channels`` channels (1
    # grey, 3 RGB). May raise ValueError for sizes that do not fit.
    build: Callable[..., tuple[nn.Module, Any]]
    # "glimpses": the env takes one glimpse per step at the model's location (RAM); "image": one step per episode,
    # the whole canvas as the observation.
    reads: str = "image"
    # Defaults of Args fields that the command line leaves unset (None), e.g. {"lr": 3e-4}; otherwise Args's own.
    defaults: dict = field(default_factory=dict)
    # The model takes the task's T steps (glimpses, or attention steps over the canvas): reports name it with T.
    steps: bool = False
    # A stochastic location policy: its std is scheduled, REINFORCE trains it, Monte-Carlo evaluation samples it.
    policy: bool = False
    # (model, args, task, images (N, C, C) uint8, labels (N,), or (N, L) for L labels an episode) -> Drawing; None:
    # nothing to draw.
    draw: Callable[..., Drawing] | None = None
    # (model, canvas_size) -> a model of the same kind for canvases of another size (for `compare`'s scaling
    # measurement); None: the model itself, whose weights do not depend on the canvas size.
    resize: Callable[[nn.Module, int], nn.Module] | None = None
    # Its weights are sized to its training canvas (a first layer as wide as the canvas, a position embedding per
    # patch): the trained model cannot read a canvas of another size (`compare --shifts` says n/a).
    fixed_canvas: bool = False
    # The Args fields that size its layers: a run started from --init takes the checkpoint's values of those its
    # command line leaves unset (ram.runs.adopt_architecture).
    architecture: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.reads not in ("glimpses", "image"):
            raise ValueError(f"reads must be 'glimpses' or 'image', got {self.reads!r}")


MODELS: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    MODELS[spec.name] = spec
    return spec


def spec(name: str) -> ModelSpec:
    if name not in MODELS:
        raise UsageError(f"unknown model {name!r} (registered: {', '.join(MODELS)})")
    return MODELS[name]


def configured(cls: type, config_cls: type, **sizes) -> tuple[nn.Module, Any]:
    """``cls(config_cls(...))`` from the sizes the config has fields for, and the config: a one-line UsageError for
    sizes that do not fit, whether the config or the model finds them."""
    names = {f.name for f in dataclasses.fields(config_cls)}
    try:
        config = config_cls(**{k: v for k, v in sizes.items() if k in names})
        return cls(config), config
    except ValueError as e:
        raise UsageError(str(e)) from None


# -- RAM: hard attention, its locations trained by REINFORCE.

def _build_ram(args: Args, task: Task, n_classes: int, channels: int = 1):
    shape = Retina(g=task.glimpse_size, k=task.n_scales, s=task.scale).glimpse_shape(channels)
    return configured(RecurrentAttention, RAMConfig, glimpse_shape=shape, n_classes=n_classes,
                      hg_size=args.glimpse_hidden, hl_size=args.glimpse_hidden, g_size=args.g_size,
                      hidden_size=args.hidden_size, core=args.core, policy=args.policy, loc_hidden=args.loc_hidden,
                      act_every_step=kind_of(task).acts_every_step, baseline_core=args.baseline_core,
                      policy_core=args.policy_core, classify_every_glimpse=args.glimpse_loss > 0,
                      loc_limit=args.loc_limit,
                      # the std the trained agent keeps (the training loop anneals towards it)
                      std=args.std if args.std_final is None else args.std_final)


def named(args: Args, task: Task, *labels: np.ndarray) -> list[np.ndarray]:
    """Class indices as the dataset names them (MNIST's "0".."9", Fashion-MNIST's "Dress", a folder's), for titles:
    (N,) labels give (N,) names; (N, L) labels, one per object in reading order, give (N,) rows of L names ("3 7")."""
    if rules_of(task.kind).names == "sum":  # a sum of several objects' classes: its number itself
        return [np.asarray(x).astype(str) for x in labels]
    classes = np.array(data_of(args, task).classes)
    names = [classes[np.asarray(x)] for x in labels]
    return [x if x.ndim == 1 else np.array([" ".join(row) for row in x]) for x in names]


def predicted(logits: torch.Tensor, task: Task) -> np.ndarray:
    """A whole-canvas model's labels from its logits: (N,) for one label; (N, L) for L labels, its output being L
    heads of n classes side by side (``TaskKind.outputs``)."""
    L = len(task.label_steps)
    labels = logits.view(len(logits), L, -1).argmax(-1).cpu().numpy()
    return labels[:, 0] if L == 1 else labels


@torch.no_grad()
def _draw_glimpses(model, args: Args, task: Task, images: np.ndarray, labels: np.ndarray) -> Drawing:
    from ram.plots import trajectory_figure

    agent = Agent.on_task(model, task, start=args.start)
    pred = agent.predict(images)
    locations, (predictions, labels) = pred.locations, named(args, task, pred.labels, labels)
    per_object = task.n_glimpses if task.n_objects > 1 else None  # glimpses 1..T in one colour, T+1..2T in the next
    return Drawing("glimpses", lambda steps: trajectory_figure(images, locations, predictions, labels, agent.retina,
                                                               steps=steps, per_object=per_object), task.steps)


register(ModelSpec("ram", _build_ram, reads="glimpses", policy=True, steps=True, draw=_draw_glimpses,
                   architecture=("core", "hidden_size", "glimpse_hidden", "g_size", "loc_hidden")))


# -- DRAM (Ba et al. 2015): two recurrent layers, the lower one names the objects, the upper one looks (ram.dram).

def _build_dram(args: Args, task: Task, n_classes: int, channels: int = 1):
    shape = Retina(g=task.glimpse_size, k=task.n_scales, s=task.scale).glimpse_shape(channels)
    return configured(DeepRecurrentAttention, DRAMConfig, glimpse_shape=shape, n_classes=n_classes,
                      g_size=args.g_size, hidden_size=args.hidden_size, loc_hidden=args.loc_hidden,
                      policy=args.policy, policy_core=args.policy_core, baseline_core=args.baseline_core,
                      context=args.context, loc_limit=args.loc_limit,
                      std=args.std if args.std_final is None else args.std_final)


register(ModelSpec("dram", _build_dram, reads="glimpses", policy=True, steps=True, draw=_draw_glimpses,
                   architecture=("hidden_size", "g_size", "loc_hidden", "context")))


# -- The models that see the whole canvas, trained by backpropagation (ram.soft).

# The flags _sizes passes on (each model's config keeps those it has fields for).
IMAGE_SIZES = ("score", "heads", "hidden_size", "glimpse_hidden", "g_size", "core")


def _sizes(args: Args, task: Task, n_classes: int, channels: int) -> dict:
    return {"n_classes": n_classes, "in_channels": channels, "n_steps": task.steps, "score": args.score,
            "heads": args.heads,
            "hidden_size": args.hidden_size, "canvas_size": task.canvas_size, "glimpse_size": task.glimpse_size,
            "n_scales": task.n_scales, "scale": task.scale, "hg_size": args.glimpse_hidden,
            "hl_size": args.glimpse_hidden, "g_size": args.g_size, "core": args.core}


def _image_model(cls: type, config_cls: type) -> Callable:
    def build(args: Args, task: Task, n_classes: int, channels: int = 1):
        return configured(cls, config_cls, **_sizes(args, task, n_classes, channels))

    return build


def _read(model, images: np.ndarray):
    """A whole-canvas model's output on uint8 canvases, in eval mode (the caller puts it back in train mode)."""
    device = next(model.parameters()).device  # the model's, and the output back on the CPU for the figures
    out = model.eval()(torch.from_numpy(images).to(device).float() / 255.0)
    return type(out)(*(None if x is None else x.cpu() for x in out))


@torch.no_grad()
def _draw_attention(model, args: Args, task: Task, images: np.ndarray, labels: np.ndarray) -> Drawing:
    from ram.plots import attention_figure

    out = _read(model, images)
    (predictions, labels), weights = named(args, task, predicted(out.logits, task), labels), out.weights.numpy()
    return Drawing("attention", lambda steps: attention_figure(images, weights, predictions, labels, steps=steps),
                   task.steps)


@torch.no_grad()
def _draw_soft_glimpses(model, args: Args, task: Task, images: np.ndarray, labels: np.ndarray) -> Drawing:
    from ram.plots import trajectory_figure

    out = _read(model, images)
    (predictions, labels), locations = named(args, task, predicted(out.logits, task), labels), out.locations.numpy()
    c = model.config  # each scale's read spans N filters at its stride: N * stride * s**i pixels
    sides = out.strides.numpy()[..., None] * c.glimpse_size * c.scale ** np.arange(c.n_scales)
    return Drawing("glimpses", lambda steps: trajectory_figure(images, locations, predictions, labels, None,
                                                               sides=sides, steps=steps), task.steps)


def _resize_fc(model, canvas_size: int):
    # The FC net's first layer is as wide as the canvas: its weights cannot carry over, a fresh one measures the cost.
    return soft.FullyConnected(dataclasses.replace(model.config, canvas_size=canvas_size)).eval()


register(ModelSpec("soft", _image_model(soft.SoftAttention, soft.SoftConfig), steps=True, draw=_draw_attention,
                   architecture=IMAGE_SIZES))
# At 1e-3 the differentiable glimpse went NaN or stalled on cluttered60 (docs/comparison.md); 3e-4 trains.
register(ModelSpec("soft-glimpse", _image_model(soft.SoftGlimpseRAM, soft.SoftGlimpseConfig), steps=True,
                   defaults={"lr": 3e-4}, draw=_draw_soft_glimpses, architecture=IMAGE_SIZES))
register(ModelSpec("fc", _image_model(soft.FullyConnected, soft.FCConfig), resize=_resize_fc, fixed_canvas=True,
                   architecture=IMAGE_SIZES))


# -- Self-attention over patches (ram.transformer).

def _build_vit(args: Args, task: Task, n_classes: int, channels: int = 1):
    patch_size = args.patch_size or -(-task.canvas_size // 5)  # default: 5 x 5 patches
    return configured(VisionTransformer, ViTConfig, canvas_size=task.canvas_size, patch_size=patch_size,
                      d_model=args.d_model, layers=args.layers, heads=args.heads, n_classes=n_classes,
                      in_channels=channels)


@torch.no_grad()
def _draw_self_attention(model, args: Args, task: Task, images: np.ndarray, labels: np.ndarray) -> Drawing:
    """The class token's attention over the patches: every layer (heads averaged; one frame a layer), every head of
    every layer, and the queries-by-keys matrix of the last layer for the first canvas."""
    from ram.plots import attention_figure, matrix_figure

    out = _read(model, images)
    predictions, labels = named(args, task, predicted(out.logits, task), labels)
    a = out.weights.numpy()  # (N, L, heads, n, n), token 0 the class token
    cls = a[:, :, :, 0, 1:]  # (N, L, heads, patches): what the class token reads
    L, H = cls.shape[1:3]
    per_head = cls.reshape(len(images), L * H, 1, -1)
    titles = [f"layer {i + 1} head {h + 1}" for i in range(L) for h in range(H)]
    tokens = ["cls", *(str(i + 1) for i in range(a.shape[-1] - 1))] if a.shape[-1] <= 40 else None  # legible
    return Drawing("attention", lambda steps: attention_figure(images, cls.mean(2, keepdims=True), predictions,
                                                               labels, steps=steps, column="layer"), L,
                   extras={"heads": lambda: attention_figure(images[:2], per_head[:2], predictions[:2], labels[:2],
                                                             titles=titles),
                           "matrix": lambda: matrix_figure(a[0, -1].mean(0), query_labels=tokens, key_labels=tokens)})


def _resize_vit(model, canvas_size: int):
    # Its position embeddings are one per patch of the canvas: a fresh one of the right size measures the cost.
    return VisionTransformer(dataclasses.replace(model.config, canvas_size=canvas_size)).eval()


# Adam at 1e-3 without a warm-up trains it (pre-norm blocks, clipped gradients): docs/comparison.md.
register(ModelSpec("vit", _build_vit, defaults={"heads": 4}, draw=_draw_self_attention, resize=_resize_vit,
                   fixed_canvas=True, architecture=("patch_size", "d_model", "layers", "heads")))
register(ModelSpec("cnn", _image_model(soft.Convolutional, soft.CNNConfig), architecture=IMAGE_SIZES))
