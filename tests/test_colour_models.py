"""Colour canvases (B, C, C, 3), channels last: every model reads them through a wider first layer, and the figures
draw them in colour; grey models and figures stay as they were."""

from pathlib import Path

import numpy as np
import pytest
import torch

from envs.render import draw_glimpses
from envs.retina import Retina
from ram.model import RAMConfig, RecurrentAttention
from ram.plots import attention_figure, figure_to_array, shifts_figure, trajectory_figure
from ram.soft import (
    CNNConfig,
    Convolutional,
    FCConfig,
    FullyConnected,
    SoftAttention,
    SoftConfig,
    SoftGlimpseConfig,
    SoftGlimpseRAM,
)
from ram.transformer import VisionTransformer, ViTConfig

SIDE = 16  # canvas side of the small models


def small(name: str, in_channels: int):
    """A small whole-canvas model of each kind, reading canvases of SIDE pixels and ``in_channels`` channels."""
    return {
        "soft": lambda: SoftAttention(SoftConfig(n_steps=2, channels=8, d=16, hidden_size=16, in_channels=in_channels)),
        "soft_additive": lambda: SoftAttention(SoftConfig(n_steps=2, score="additive", heads=2, channels=8, d=16,
                                                          hidden_size=16, in_channels=in_channels)),
        "soft_glimpse": lambda: SoftGlimpseRAM(SoftGlimpseConfig(n_steps=2, glimpse_size=4, n_scales=2, hg_size=8,
                                                                 hl_size=8, g_size=16, hidden_size=16,
                                                                 in_channels=in_channels)),
        "fc": lambda: FullyConnected(FCConfig(canvas_size=SIDE, hidden=16, in_channels=in_channels)),
        "cnn": lambda: Convolutional(CNNConfig(channels=8, in_channels=in_channels)),
        # 6-pixel patches: a 3 x 3 grid over the zero-padded 18-pixel canvas
        "vit": lambda: VisionTransformer(ViTConfig(canvas_size=SIDE, patch_size=6, d_model=16, layers=1, heads=2,
                                                   n_classes=10, in_channels=in_channels)),
    }[name]()


MODELS = ["soft", "soft_additive", "soft_glimpse", "fc", "cnn", "vit"]


def first_layer_inputs(name: str, model) -> int:
    return {"soft": lambda m: m.features.conv1.in_channels, "soft_additive": lambda m: m.features.conv1.in_channels,
            "cnn": lambda m: m.features.conv1.in_channels, "fc": lambda m: m.fc1.in_features,
            "vit": lambda m: m.embed.in_features, "soft_glimpse": lambda m: m.glimpse.fc_rho.in_features}[name](model)


@pytest.mark.parametrize("name", MODELS)
def test_a_colour_model_reads_every_channel_of_a_channels_last_batch(name):
    torch.manual_seed(0)
    model = small(name, 3)
    grey_inputs = first_layer_inputs(name, small(name, 1))
    assert first_layer_inputs(name, model) == 3 * grey_inputs  # only the first layer grows, by the channels
    x = torch.rand(4, SIDE, SIDE, 3, requires_grad=True)
    out = model(x)
    assert out.logits.shape == (4, 10)
    torch.nn.functional.cross_entropy(out.logits, torch.arange(4)).backward()
    # Every channel of the canvas reaches the logits, and every parameter learns (the keys' bias of a dot-product
    # score cancels in the softmax: no gradient by design, as for grey canvases).
    assert all(x.grad[..., c].abs().sum() > 0 for c in range(3))
    exempt = {"w_k.bias"} if name == "soft" else set()
    missing = [n for n, p in model.named_parameters() if n not in exempt and (p.grad is None or not p.grad.any())]
    assert not missing, f"no gradient reaches {missing}"
    # The outputs are per place on the canvas, not per channel: the shapes of a grey model's.
    if name in ("soft", "soft_additive"):
        heads = 2 if name == "soft_additive" else 1
        assert out.weights.shape == (4, 2, heads, (SIDE // 4) ** 2)
        torch.testing.assert_close(out.weights.sum(-1), torch.ones(out.weights.shape[:-1]))
    if name == "soft_glimpse":
        assert out.locations.shape == (4, 2, 2) and out.strides.shape == (4, 2)
    if name == "vit":
        assert out.weights.shape == (4, 1, 2, 3 * 3 + 1, 3 * 3 + 1)


@pytest.mark.parametrize("name", MODELS)
def test_a_model_refuses_canvases_of_the_wrong_number_of_channels(name):
    with pytest.raises(ValueError, match=r"\(B, H, W, 3\)"):
        small(name, 3)(torch.rand(2, SIDE, SIDE))
    with pytest.raises(ValueError, match=r"\(B, H, W, 3\)"):
        small(name, 3)(torch.rand(2, SIDE, SIDE, 4))
    with pytest.raises(ValueError, match=r"\(B, H, W\)"):
        small(name, 1)(torch.rand(2, SIDE, SIDE, 3))


@pytest.mark.parametrize("config", [SoftConfig, SoftGlimpseConfig, FCConfig, CNNConfig, ViTConfig])
def test_configs_default_to_grey_and_refuse_no_channels(config):
    assert config().in_channels == 1
    with pytest.raises(ValueError, match="in_channels"):
        config(in_channels=0)


def test_ram_glimpse_shape_may_carry_channels():
    grey = RecurrentAttention(RAMConfig(glimpse_shape=(2, 6, 6)))
    colour = RecurrentAttention(RAMConfig(glimpse_shape=(2, 3, 6, 6)))
    assert grey.glimpse.fc_rho.in_features == 2 * 6 * 6 and colour.glimpse.fc_rho.in_features == 2 * 3 * 6 * 6
    for shape in ((2, 6), (2, 3, 6, 6, 1), (0, 6, 6)):
        with pytest.raises(ValueError, match="glimpse_shape"):
            RAMConfig(glimpse_shape=shape)


def test_ram_runs_and_learns_on_colour_glimpses():
    torch.manual_seed(0)
    model = RecurrentAttention(RAMConfig(glimpse_shape=(2, 3, 4, 4), hg_size=8, hl_size=8, g_size=16, hidden_size=16))
    rho = torch.rand(5, 2, 3, 4, 4, requires_grad=True)  # (B, k, C, g, g), as the retina reads colour

    def look(l, a_t=None):
        return rho, l.clamp(-1, 1)

    out = model.episode(rho, torch.zeros(5, 2), look, 3)
    assert out.logits.shape == (5, 10) and out.locations.shape == (5, 3, 2) and out.log_pi.shape == (5, 2)
    torch.nn.functional.cross_entropy(out.logits, torch.arange(5)).backward()
    assert all(rho.grad[:, :, c].abs().sum() > 0 for c in range(3))
    assert model.glimpse.fc_rho.weight.grad.any()


# -- A colour model whose first layer is a grey model's split equally over three channels reads a canvas whose three
# channels are the grey canvas as the grey model reads it: this pins each first layer's layout of the channels.

def split(name: str, weight: torch.Tensor) -> torch.Tensor:
    """A grey first layer's weight as the colour model's, a third on each of 3 channels."""
    if name in ("soft", "soft_additive", "cnn"):  # conv (out, 1, 5, 5) -> (out, 3, 5, 5)
        return weight.repeat(1, 3, 1, 1) / 3
    if name in ("fc", "vit"):  # every input of the first channel, then of the next: (out, n) -> (out, 3 n)
        return weight.repeat(1, 3) / 3
    # a glimpse, scale-major: (out, k * n * n) -> (out, k * 3 * n * n)
    out, k = weight.shape[0], 2
    return weight.view(out, k, 1, -1).repeat(1, 1, 3, 1).reshape(out, -1) / 3


FIRST = {"soft": "features.conv1.weight", "soft_additive": "features.conv1.weight", "cnn": "features.conv1.weight",
         "fc": "fc1.weight", "vit": "embed.weight", "soft_glimpse": "glimpse.fc_rho.weight"}


@pytest.mark.parametrize("name", MODELS)
def test_three_equal_channels_through_a_split_first_layer_give_the_grey_model(name):
    torch.manual_seed(0)
    grey, colour = small(name, 1).double(), small(name, 3).double()
    state = grey.state_dict()
    state[FIRST[name]] = split(name, state[FIRST[name]])
    colour.load_state_dict(state)
    x = torch.rand(3, SIDE, SIDE, dtype=torch.float64)
    want, got = grey(x), colour(x[..., None].expand(-1, -1, -1, 3))
    for a, b in zip(want, got):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(b, a)


def test_three_equal_channels_through_a_split_glimpse_layer_give_the_grey_ram():
    torch.manual_seed(0)
    sizes = dict(hg_size=8, hl_size=8, g_size=16, hidden_size=16)
    # float32: the location policy keeps its means in float32 whatever the model's dtype
    grey = RecurrentAttention(RAMConfig(glimpse_shape=(2, 4, 4), **sizes))
    colour = RecurrentAttention(RAMConfig(glimpse_shape=(2, 3, 4, 4), **sizes))
    state = grey.state_dict()
    state["glimpse.fc_rho.weight"] = split("glimpse", state["glimpse.fc_rho.weight"])
    colour.load_state_dict(state)
    rho, l = torch.rand(5, 2, 4, 4), torch.zeros(5, 2)
    want = grey.episode(rho, l, lambda l_t, a_t=None: (rho, l_t.clamp(-1, 1)), 3, greedy=True)
    rho3 = rho[:, :, None].expand(-1, -1, 3, -1, -1)  # (B, k, 3, g, g): the same grey glimpse in every channel
    got = colour.episode(rho3, l, lambda l_t, a_t=None: (rho3, l_t.clamp(-1, 1)), 3, greedy=True)
    torch.testing.assert_close(got.logits, want.logits)
    torch.testing.assert_close(got.locations, want.locations)


# -- Grey models are today's: the shipped checkpoints load into models built from their recorded configs, and the
# models without a shipped checkpoint keep their default parameters.

RESULTS = Path(__file__).resolve().parent.parent / "results"
BUILDERS = {"ram": (RecurrentAttention, RAMConfig), "soft": (SoftAttention, SoftConfig),
            "cnn": (Convolutional, CNNConfig), "vit": (VisionTransformer, ViTConfig)}


def test_shipped_checkpoints_load_into_models_built_from_their_configs():
    shipped = sorted(RESULTS.glob("*/agent.pt"))
    if not shipped:
        pytest.skip("no shipped checkpoints in results/")
    kinds = set()
    for path in shipped:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model_cls, config_cls = BUILDERS[state["args"]["model"]]
        config = config_cls(**state["model_config"])  # fields it predates (in_channels) at their defaults
        model = model_cls(config)
        ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        assert ours == {k: tuple(v.shape) for k, v in state["model"].items()}, path
        model.load_state_dict(state["model"])
        kinds.add(state["args"]["model"])
    assert kinds == set(BUILDERS)


def test_default_grey_models_keep_their_parameters():
    fc = {"fc1.weight": (256, 3600), "fc1.bias": (256,), "fc2.weight": (256, 256), "fc2.bias": (256,),
          "out.weight": (10, 256), "out.bias": (10,)}
    assert {k: tuple(v.shape) for k, v in FullyConnected(FCConfig()).state_dict().items()} == fc
    glimpse = {"glimpse.fc_rho.weight": (128, 3 * 12 * 12), "glimpse.fc_rho.bias": (128,),
               "glimpse.fc_l.weight": (128, 2), "glimpse.fc_l.bias": (128,), "glimpse.fc_hg.weight": (256, 128),
               "glimpse.fc_hg.bias": (256,), "glimpse.fc_hl.weight": (256, 128), "glimpse.fc_hl.bias": (256,),
               "core.fc_h.weight": (256, 256), "core.fc_h.bias": (256,), "core.fc_g.weight": (256, 256),
               "core.fc_g.bias": (256,), "read_params.weight": (5, 256), "read_params.bias": (5,),
               "classifier.weight": (10, 256), "classifier.bias": (10,)}
    assert {k: tuple(v.shape) for k, v in SoftGlimpseRAM(SoftGlimpseConfig()).state_dict().items()} == glimpse
    assert Convolutional(CNNConfig()).features.conv1.weight.shape == (32, 1, 5, 5)
    assert VisionTransformer(ViTConfig()).embed.weight.shape == (128, 10 * 10)
    assert RecurrentAttention(RAMConfig()).glimpse.fc_rho.weight.shape == (128, 3 * 12 * 12)


# -- Figures: RGB canvases in their colours, the glimpses and attention drawn over them as over grey ones.

RED = np.zeros((2, 20, 20, 3), np.uint8)
RED[..., 0] = 255


def test_trajectory_figure_draws_rgb_canvases_in_colour():
    locations = np.array([[[0, 0], [0.5, 0.5], [-0.5, 0.2]]] * 2, np.float32)
    fig = trajectory_figure(RED, locations, np.array([1, 2]), np.array([1, 3]), Retina(g=4, k=3))
    ax = fig.axes[0]
    assert len(ax.patches) == 3 * 3 and ax.images[0].get_array().shape == (20, 20, 3)
    assert ax.get_xlim() == (0, 20) and ax.get_ylim() == (20, 0)  # the canvas side, not its 3 channels
    pixels = figure_to_array(fig).reshape(-1, 3)
    assert (pixels == (255, 0, 0)).all(1).mean() > 0.1  # a good part of the figure is the canvas's red


def test_attention_and_shifts_figures_draw_rgb_canvases_in_colour():
    rng = np.random.default_rng(0)
    weights = rng.random((2, 3, 1, 16))
    weights /= weights.sum(-1, keepdims=True)
    fig = attention_figure(RED, weights, np.array([0, 1]), np.array([0, 0]))
    heatmaps = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert len(heatmaps) == 2 * 3 and all(len(ax.images) == 2 for ax in heatmaps)
    assert heatmaps[0].images[0].get_array().shape == (20, 20, 3) and heatmaps[0].get_xlim() == (0, 20)
    shifts = shifts_figure({"red": RED, "grey": RED[..., 0]})
    assert [ax.images[0].get_array().ndim for ax in shifts.axes] == [3, 3, 2, 2]
    assert (figure_to_array(shifts).reshape(-1, 3) == (255, 0, 0)).all(1).any()
    with pytest.raises(ValueError, match="RGB"):
        shifts_figure({"rgba": np.zeros((1, 20, 20, 4), np.uint8)})


def test_draw_glimpses_draws_an_rgb_canvas_in_colour():
    empty = draw_glimpses(RED[0], np.zeros((0, 2)), Retina(g=4, k=1), side=40)
    assert empty.shape == (40, 40, 3) and (empty == (255, 0, 0)).all()
    picture = draw_glimpses(RED[0], np.zeros((1, 2)), Retina(g=4, k=1), side=40, centres=False)
    assert (picture[0, 0] == (255, 0, 0)).all() and not (picture == (255, 0, 0)).all()  # a box on the red
    with pytest.raises(ValueError, match="RGB"):
        draw_glimpses(np.zeros((20, 20, 4), np.uint8), np.zeros((0, 2)), Retina(g=4, k=1))
