"""The Deep Recurrent Attention Model (DRAM) of Ba, Mnih and Kavukcuoglu, "Multiple Object Recognition with Visual
Attention" (ICLR 2015), on this project's retina, with the paper's names:

    I_0    = the first observation: the retina at the centre, its coarsest scale a view of the whole canvas
    r2_0   = ContextNetwork(I_0)                         the upper layer starts from the context, ...
    l_1    ~ N(EmissionNetwork(r2_0), std^2)             ... and chooses the first glimpse
    g_t    = G_image(rho(x, l_{t-1})) * G_loc(l_{t-1})   GlimpseNetwork: what times where (element-wise)
    r1_t   = LSTM_1(g_t, r1_{t-1})                       the lower layer: what has been seen
    r2_t   = LSTM_2(r1_t, r2_{t-1})                      the upper layer: where to look next
    l_t    ~ N(EmissionNetwork(r2_t), std^2)
    b_t    = Baseline(r2_t)
    y_k    = Classifier(r1_t) at the last glimpse of object k (a label per object, in reading order)

Gradient routing (tests pin it, tests/test_dram.py):
- each label's cross-entropy trains the Classifier, LSTM_1 and the GlimpseNetwork; it cannot reach LSTM_2, the
  EmissionNetwork or the ContextNetwork, which only choose where the next glimpse is taken (a draw: no gradient);
- REINFORCE trains the EmissionNetwork, LSTM_2 and the ContextNetwork; with ``policy_core`` (the recipe's choice for
  RAM) it also reaches LSTM_1 and the GlimpseNetwork through LSTM_2's input r1_t; without it that input is detached;
- the Baseline's regression trains the Baseline alone (its input r2_t is detached), unless ``baseline_core``;
- with ``loc_limit``, the EmissionNetwork's pre-tanh output beyond +-loc_limit is pulled back along REINFORCE's
  route (``ram.model.LocationPolicy``): the one gradient a mean saturated at the canvas's edge still gets.
The context never reaches the lower layer, so the labels cannot be read off the coarse view (the paper keeps it
away from the classifier for that reason). Without ``context`` (the paper's "DRAM w/o context"), the first
observation is a glimpse like the others and the upper layer starts from zero.

Where the paper's text was not at hand (docs/several-objects.md), this module chooses: fully connected layers in
the glimpse network (the paper's convolutional G_image is for Street View houses), and as the context the first
observation's coarsest scale (a glimpse at the centre: at cluttered100's 4 scales, 96 of its 100 pixels, pooled to
12 x 12), not a separately downsampled image.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ram.model import Baseline, Classifier, LocationPolicy, Rollout, retina_rollout


@dataclass(frozen=True)
class DRAMConfig:
    """Sizes of DRAM. The sensor's sizes come from the environment's observation space."""

    glimpse_shape: tuple[int, ...] = (4, 12, 12)  # (k, g, g), or (k, C, g, g) for colour
    n_classes: int = 10
    g_size: int = 256  # g_t: the product of what and where
    hidden_size: int = 256  # r1_t and r2_t
    std: float = 0.15
    loc_hidden: int = 128  # a ReLU hidden layer in the EmissionNetwork (0: linear)
    context: bool = True  # the upper layer starts from the ContextNetwork's reading of the first observation
    policy_core: bool = True  # REINFORCE reaches LSTM_1 and the GlimpseNetwork through r1_t
    baseline_core: bool = False  # the baseline's regression trains LSTM_2 and the context too (and, with
    # policy_core, what lies below)
    policy: str = "learned"  # only learned: the paper's model chooses where it looks
    loc_limit: float = 0.0  # a restoring gradient on the EmissionNetwork's pre-tanh output beyond +-this (0: none)

    def __post_init__(self) -> None:
        if len(tuple(self.glimpse_shape)) not in (3, 4):
            raise ValueError(f"glimpse_shape must be (k, g, g) or (k, C, g, g), got {self.glimpse_shape}")
        if not self.std > 0:
            raise ValueError(f"std must be > 0, got {self.std}")
        if self.policy != "learned":
            raise ValueError("DRAM's locations are learned: --policy random applies to --model ram")
        for name in ("n_classes", "g_size", "hidden_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


class WhatWhereGlimpse(nn.Module):
    """g_t = ReLU(Linear(ReLU(Linear(rho)))) * ReLU(Linear(l)): what was seen, gated by where."""

    def __init__(self, *, glimpse_size: int, g_size: int):
        super().__init__()
        self.what_hidden = nn.Linear(glimpse_size, g_size)
        self.what = nn.Linear(g_size, g_size)
        self.where = nn.Linear(2, g_size)

    def forward(self, rho: Tensor, l: Tensor) -> Tensor:
        what = F.relu(self.what(F.relu(self.what_hidden(rho.flatten(1)))))
        return what * F.relu(self.where(l))


class ContextNetwork(nn.Module):
    """r2_0 = (tanh(Linear(ReLU(Linear(I_0)))), 0): the upper layer's first state from the coarse view I_0 (g x g)."""

    def __init__(self, *, view_size: int, hidden_size: int):
        super().__init__()
        self.hidden = nn.Linear(view_size, hidden_size)
        self.out = nn.Linear(hidden_size, hidden_size)

    def forward(self, view: Tensor) -> tuple[Tensor, Tensor]:
        h = torch.tanh(self.out(F.relu(self.hidden(view.flatten(1)))))
        return h, torch.zeros_like(h)


class DeepRecurrentAttention(nn.Module):
    """DRAM: WhatWhereGlimpse -> LSTM_1 -> LSTM_2 -> (EmissionNetwork, Baseline) each step; Classifier on LSTM_1 at
    each object's last glimpse; ContextNetwork -> LSTM_2's first state."""

    def __init__(self, config: DRAMConfig):
        super().__init__()
        self.config = c = config
        shape = tuple(c.glimpse_shape)
        self.glimpse = WhatWhereGlimpse(glimpse_size=math.prod(shape), g_size=c.g_size)
        self.lower = nn.LSTMCell(c.g_size, c.hidden_size)
        self.upper = nn.LSTMCell(c.hidden_size, c.hidden_size)
        # The name the training loop anneals the std through (model.location.std), as for RAM.
        self.location = LocationPolicy(hidden_size=c.hidden_size, std=c.std, loc_hidden=c.loc_hidden,
                                       limit=c.loc_limit)
        self.context = ContextNetwork(view_size=math.prod(shape[1:]), hidden_size=c.hidden_size) if c.context else None
        self.classifier = Classifier(hidden_size=c.hidden_size, n_classes=c.n_classes)
        self.baseline = Baseline(hidden_size=c.hidden_size)

    def value(self, r2: Tensor) -> Tensor:
        # Detached: the baseline's regression trains the Baseline alone (unless baseline_core).
        return self.baseline(r2 if self.config.baseline_core else r2.detach())

    def episode(self, rho: Tensor, l: Tensor, look: Callable[[Tensor, Tensor | None], tuple[Tensor, Tensor]],
                n_glimpses: int, *, greedy: bool = False, label_steps: tuple[int, ...] = ()) -> Rollout:
        """T steps, the first observation rho (B, *glimpse_shape) taken at l (B, 2), as ``RecurrentAttention.episode``
        (the same ``look`` and the same Rollout): with the context, step 1's observation is the coarse view that
        starts the upper layer, and the lower layer reads the glimpses of steps 2..T."""
        B = rho.shape[0]
        zero = rho.new_zeros(B, self.config.hidden_size)
        lower, upper = (zero, zero), (zero, zero)
        locations, mus, draws, values, named = [l], [], [], [], []
        for t in range(n_glimpses):
            if t == 0 and self.context is not None:
                upper = self.context(rho[:, -1])  # the coarsest scale: the widest view
            else:
                # l is data (where the env looked), never a path for gradients into an earlier emission.
                lower = self.lower(self.glimpse(rho, l.detach()), lower)
                # Detached unless policy_core: REINFORCE then trains the upper layer and what starts it alone.
                upper = self.upper(lower[0] if self.config.policy_core else lower[0].detach(), upper)
            a_t = None
            if t + 1 in label_steps and t < n_glimpses - 1:
                # An earlier object's class: its cross-entropy trains the classifier, the lower layer and the glimpses.
                named.append(self.classifier(lower[0]))
                a_t = named[-1].detach().argmax(-1)  # an action sent to the env, not a path for gradients
            if t == n_glimpses - 1:
                break
            mu, l_t = self.location(upper[0], greedy=greedy)
            mus.append(mu)
            draws.append(l_t)
            values.append(self.value(upper[0]))
            rho, l = look(l_t, a_t)
            locations.append(l)
        logits = self.classifier(lower[0])
        none = rho.new_zeros(B, 0)
        if mus:
            mu, l_t = torch.stack(mus, 1), torch.stack(draws, 1)
            log_pi, b = self.location.log_prob(l_t, mu), torch.stack(values, 1)
        else:
            log_pi, b = none, none
        # Detached: the class named is an action sent to the env, not a path for gradients.
        action = logits.detach().argmax(-1)
        return Rollout(logits, torch.stack(locations, 1), log_pi, b, none.long(), none, none, action,
                       logits.new_zeros(B, 0, logits.shape[-1]),
                       torch.stack([*named, logits], 1))

    rollout = retina_rollout
