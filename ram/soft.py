"""Soft attention beside hard attention: the models every RAM result is compared with.

- ``SoftAttention``: the general attention model. A feature model (a small CNN over the whole canvas) gives one
  feature vector f_i per spatial cell; a query model (a recurrent state h_t) gives q_t; the attention model
  scores q_t against keys W_K f_i, normalises the scores with a softmax into weights a_t and averages the values
  W_V f_i into a context c_t; the output model classifies from h_T. T attention steps, trained end to end by
  backpropagation. Score functions: additive (Bahdanau), dot, scaled dot, general (bilinear); multi-head.
- ``SoftGlimpseRAM``: RAM's architecture with the hard crop replaced by a differentiable Gaussian-filterbank read
  (DRAW) whose centre, stride, width and intensity come from the state: hard versus soft at the glimpse itself.
- ``FullyConnected`` and ``Convolutional``: the paper's no-attention rows, two layers each, on the whole canvas.

Every model maps a batch of canvases in [0, 1] to a ``SoftOutput``; all are pure modules. A canvas is (B, C, C) when
its config's ``in_channels`` is 1 (grey), or (B, C, C, in_channels) channels last, as gymnasium image observations
(colour): only the first layer grows with the channels (``planes``), and attention weights and glimpse locations stay
per place on the canvas, not per channel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from envs.retina import gaussian_read
from ram.model import CoreNetwork, GlimpseNetwork

SCORES = ("additive", "dot", "scaled_dot", "general")
LOG4 = math.log(4.0)


def planes(x: Tensor, channels: int) -> Tensor:
    """Canvases (B, C, C) when ``channels`` is 1, (B, C, C, channels) otherwise -> (B, channels, C, C), the layout of
    the first layers (convolutions, patches, the Gaussian reads of one channel each); a ValueError for the other."""
    grey = channels == 1
    if x.dim() != (3 if grey else 4) or (not grey and x.shape[-1] != channels):
        want = "(B, H, W)" if grey else f"(B, H, W, {channels})"
        raise ValueError(f"a model of {channels} channel{'s' * (not grey)} reads canvases {want}, got {tuple(x.shape)}")
    return x[:, None] if grey else x.movedim(-1, 1)


def check_channels(config) -> None:
    """The ``in_channels`` of a whole-canvas model's config: 1 (grey) or more."""
    if config.in_channels < 1:
        raise ValueError(f"in_channels must be >= 1, got {config.in_channels}")


class SoftOutput(NamedTuple):
    logits: Tensor  # (B, n_classes)
    weights: Tensor | None  # attention weights: (B, T, heads, n) over the feature cells for SoftAttention, (B, L,
    # heads, N + 1, N + 1) between the tokens for the VisionTransformer (ram.transformer); else None
    locations: Tensor | None  # glimpse centres (B, T, 2) in [-1, 1] for the soft glimpse, else None
    strides: Tensor | None = None  # the soft glimpse's read strides (B, T) in pixels at its finest scale


class Attention(nn.Module):
    """c = sum_i a_i v_i, a = softmax_i score(q, k_i): one of four score functions, ``heads`` heads.

    additive: w^T tanh(W_q q + W_k k_i); dot: q . k_i; scaled_dot: q . k_i / sqrt(d); general: q^T W k_i.
    Per head the query, keys and values have ``d // heads`` dimensions.
    """

    def __init__(self, *, score: str, d: int, heads: int = 1):
        super().__init__()
        if score not in SCORES:
            raise ValueError(f"score must be one of {SCORES}, got {score!r}")
        if d % heads:
            raise ValueError(f"attention size {d} is not divisible by {heads} heads")
        self.score, self.heads, self.d_head = score, heads, d // heads
        if score == "additive":
            self.w_q = nn.Linear(self.d_head, self.d_head, bias=False)
            self.w_k = nn.Linear(self.d_head, self.d_head, bias=True)
            self.w = nn.Linear(self.d_head, 1, bias=False)
        elif score == "general":
            self.W = nn.Parameter(torch.eye(self.d_head) + 0.01 * torch.randn(self.d_head, self.d_head))

    def scores(self, q: Tensor, k: Tensor) -> Tensor:
        """q (B, heads, d_head), k (B, heads, n, d_head) -> scores (B, heads, n)."""
        if self.score == "additive":
            return self.w(torch.tanh(self.w_q(q)[:, :, None, :] + self.w_k(k))).squeeze(-1)
        if self.score == "general":
            q = q @ self.W
        s = (k @ q[..., None]).squeeze(-1)
        return s / math.sqrt(self.d_head) if self.score == "scaled_dot" else s

    def forward(self, q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """q (B, d), k and v (B, n, d) -> context (B, d), weights (B, heads, n) summing to 1 over n."""
        B, n, _ = k.shape
        split = (lambda x: x.view(B, n, self.heads, self.d_head).transpose(1, 2))  # noqa: E731
        a = self.scores(q.view(B, self.heads, self.d_head), split(k)).softmax(-1)
        c = (a[..., None, :] @ split(v)).squeeze(-2)  # (B, heads, d_head)
        return c.reshape(B, -1), a

    def over_features(self, q: Tensor, f: Tensor, w_k: nn.Linear, w_v: nn.Linear) -> tuple[Tensor, Tensor]:
        """``forward(q, w_k(f), w_v(f))`` for the scores linear in the key (dot, scaled dot, general), without
        making the keys and values: f (B, n, F) -> context (B, d), weights (B, heads, n).

        Per head, q . (W_K f_i + b_K) = (W_K^T q) . f_i + q . b_K, and the last term, the same for every cell,
        cancels in the softmax; sum_i a_i (W_V f_i + b_V) = W_V (sum_i a_i f_i) + b_V, as the weights sum to 1.
        So a step reads the n feature vectors of F numbers twice instead of making n keys and n values of d: on a
        100x100 canvas (625 cells, F = 66, d = 128) that is what made soft attention's training step slow.
        """
        if self.score == "additive":
            raise ValueError("additive scores need every key: use forward(q, w_k(f), w_v(f))")
        B, H, dh = q.shape[0], self.heads, self.d_head
        q = q.view(B, H, dh)
        if self.score == "general":
            q = q @ self.W
        u = torch.einsum("bhd,hdf->bhf", q, w_k.weight.view(H, dh, -1))  # W_K^T q per head
        s = (f @ u.transpose(1, 2)).transpose(1, 2)  # (B, heads, n)
        a = (s / math.sqrt(dh) if self.score == "scaled_dot" else s).softmax(-1)
        c = torch.einsum("bhf,hdf->bhd", a @ f, w_v.weight.view(H, dh, -1)) + w_v.bias.view(H, dh)
        return c.reshape(B, -1), a


class FeatureCNN(nn.Module):
    """The feature model: two stride-2 convolutions, so an (C, C) canvas gives (C/4)^2 cells of ``channels``
    features, plus the cell's (x, y) centre in [-1, 1] so that values can say where they were."""

    def __init__(self, *, channels: int = 64, in_channels: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels // 2, 5, stride=2, padding=2)
        self.conv2 = nn.Conv2d(channels // 2, channels, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """x (B, in_channels, C, C) (``planes``) -> features (B, n, channels + 2), grid (H', W')."""
        f = F.relu(self.conv2(F.relu(self.conv1(x))))  # (B, ch, H', W')
        B, _, H, W = f.shape
        ys = (torch.arange(H, dtype=f.dtype, device=f.device) + 0.5) / H * 2 - 1
        xs = (torch.arange(W, dtype=f.dtype, device=f.device) + 0.5) / W * 2 - 1
        coords = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), 0).expand(B, 2, H, W)
        return torch.cat([f, coords], 1).flatten(2).transpose(1, 2), (H, W)


@dataclass(frozen=True)
class SoftConfig:
    n_classes: int = 10
    n_steps: int = 6  # T attention steps
    score: str = "scaled_dot"
    heads: int = 1
    channels: int = 64  # feature model
    d: int = 128  # query, key and value size
    hidden_size: int = 256  # query model state h_t
    in_channels: int = 1  # of the canvas: 1 grey (B, C, C), 3 colour (B, C, C, 3)

    def __post_init__(self) -> None:
        check_channels(self)


class SoftAttention(nn.Module):
    """h_t = GRU(c_t, h_{t-1}), c_t = Attention(W_Q h_{t-1}, W_K f, W_V f); logits = Linear(h_T)."""

    def __init__(self, config: SoftConfig):
        super().__init__()
        c = config
        self.config = c
        self.features = FeatureCNN(channels=c.channels, in_channels=c.in_channels)
        self.w_q = nn.Linear(c.hidden_size, c.d)
        self.w_k = nn.Linear(c.channels + 2, c.d)
        self.w_v = nn.Linear(c.channels + 2, c.d)
        self.attention = Attention(score=c.score, d=c.d, heads=c.heads)
        self.query = nn.GRUCell(c.d, c.hidden_size)
        self.output = nn.Linear(c.hidden_size, c.n_classes)

    def forward(self, x: Tensor) -> SoftOutput:
        f, _ = self.features(planes(x, self.config.in_channels))
        additive = self.config.score == "additive"
        if additive:  # the only score that needs every key and value made; the others read f directly
            k, v = self.w_k(f), self.w_v(f)
        h = x.new_zeros(x.shape[0], self.config.hidden_size)
        weights = []
        for _ in range(self.config.n_steps):
            q = self.w_q(h)
            c_t, a_t = self.attention(q, k, v) if additive else self.attention.over_features(q, f, self.w_k, self.w_v)
            h = self.query(c_t, h)
            weights.append(a_t)
        return SoftOutput(self.output(h), torch.stack(weights, 1), None)

    def grid(self, canvas_size: int) -> tuple[int, int]:
        """The (H', W') grid of feature cells the weights of a canvas are laid out on."""
        return self.features(torch.zeros(1, self.config.in_channels, canvas_size, canvas_size))[1]


@dataclass(frozen=True)
class SoftGlimpseConfig:
    n_classes: int = 10
    n_steps: int = 6
    glimpse_size: int = 12  # N x N filterbank outputs per scale, as RAM's g
    n_scales: int = 3
    scale: int = 2
    hg_size: int = 128
    hl_size: int = 128
    g_size: int = 256
    hidden_size: int = 256
    core: str = "rnn"
    in_channels: int = 1  # of the canvas: each channel is read through the same filterbank

    def __post_init__(self) -> None:
        check_channels(self)


class SoftGlimpseRAM(nn.Module):
    """RAM with a differentiable glimpse: rho = gaussian_read(x, centre, stride, sigma, gamma), read parameters
    = bounded maps of Linear(h_{t-1}); the same glimpse, core and classifier networks, all trained by
    backpropagation. A colour glimpse reads every channel at the same place, scale-major (k, in_channels, N, N), as
    the hard retina's (``envs.retina.Retina.read``)."""

    def __init__(self, config: SoftGlimpseConfig):
        super().__init__()
        c = config
        self.config = c
        self.glimpse = GlimpseNetwork(glimpse_size=c.n_scales * c.in_channels * c.glimpse_size**2,
                                      hg_size=c.hg_size, hl_size=c.hl_size, g_size=c.g_size)
        self.core = CoreNetwork(g_size=c.g_size, hidden_size=c.hidden_size, core=c.core)
        self.read_params = nn.Linear(c.hidden_size, 5)  # centre (x, y), log stride, log sigma, log gamma
        # Zero bias: the first read (h_0 = 0) is centred and, at its coarsest scale, spans the whole canvas.
        nn.init.zeros_(self.read_params.bias)
        self.classifier = nn.Linear(c.hidden_size, c.n_classes)

    def forward(self, x: Tensor) -> SoftOutput:
        x = planes(x, self.config.in_channels)
        B, ch, C, _ = x.shape
        images = x.flatten(0, 1)  # (B * ch, C, C): gaussian_read reads one channel an image, at its image's read

        def per_channel(t: Tensor) -> Tensor:
            return t if ch == 1 else t.repeat_interleave(ch, 0)

        state = None  # the zero state h_0 = c_0 = 0 (CoreNetwork)
        locations, strides = [], []
        for _ in range(self.config.n_steps):
            # From h_0 = 0 the read parameters are the bias alone: the first read is the same for every canvas.
            p = self.read_params.bias.expand(B, -1) if state is None else self.read_params(state[0])
            centre = torch.tanh(p[:, :2])
            # Stride and width are relative to the canvas: a zero parameter makes the coarsest scale span the whole
            # canvas. Each factor is bounded (exp of a tanh): unbounded exps let one large step blow the ReLU core
            # up to inf (a 60x60 run went NaN within 80k images).
            widest = self.config.glimpse_size * self.config.scale ** (self.config.n_scales - 1)
            stride = torch.exp(LOG4 * torch.tanh(p[:, 2])) * C / widest  # 1/4 to 4 times that
            sigma = torch.exp(LOG4 * torch.tanh(p[:, 3])) * stride / 2
            gamma = torch.exp(torch.tanh(p[:, 4]))  # intensity in [1/e, e]
            n, k = self.config.glimpse_size, self.config.n_scales
            rho = gaussian_read(images, *map(per_channel, (centre, stride, sigma, gamma)), n=n, k=k,
                                s=self.config.scale).view(B, ch, k, n, n).transpose(1, 2)  # (B, k, ch, n, n)
            state = self.core(self.glimpse(rho, centre), state)
            locations.append(centre)
            strides.append(stride)
        return SoftOutput(self.classifier(state[0]), None, torch.stack(locations, 1), torch.stack(strides, 1))


@dataclass(frozen=True)
class FCConfig:
    canvas_size: int = 60
    hidden: int = 256
    n_classes: int = 10
    in_channels: int = 1  # of the canvas: the first layer reads canvas_size**2 * in_channels numbers

    def __post_init__(self) -> None:
        check_channels(self)


class FullyConnected(nn.Module):
    """The paper's FC baseline: two ReLU hidden layers on the flattened canvas (channel-major: every pixel of the
    first channel, then of the next)."""

    def __init__(self, config: FCConfig):
        super().__init__()
        self.config = config
        self.fc1 = nn.Linear(config.in_channels * config.canvas_size**2, config.hidden)
        self.fc2 = nn.Linear(config.hidden, config.hidden)
        self.out = nn.Linear(config.hidden, config.n_classes)

    def forward(self, x: Tensor) -> SoftOutput:
        x = planes(x, self.config.in_channels).flatten(1)
        return SoftOutput(self.out(F.relu(self.fc2(F.relu(self.fc1(x))))), None, None)


@dataclass(frozen=True)
class CNNConfig:
    channels: int = 64  # feature model
    n_classes: int = 10
    in_channels: int = 1  # of the canvas: 1 grey (B, C, C), 3 colour (B, C, C, 3)

    def __post_init__(self) -> None:
        check_channels(self)


class Convolutional(nn.Module):
    """A two-layer convolutional baseline on the whole canvas: the feature model of ``SoftAttention`` (two
    stride-2 convolutions), global max pooling over the cells, and a linear classifier."""

    def __init__(self, config: CNNConfig):
        super().__init__()
        self.config = config
        self.features = FeatureCNN(channels=config.channels, in_channels=config.in_channels)
        self.out = nn.Linear(config.channels, config.n_classes)

    def forward(self, x: Tensor) -> SoftOutput:
        f, _ = self.features(planes(x, self.config.in_channels))
        return SoftOutput(self.out(f[..., :-2].amax(1)), None, None)

