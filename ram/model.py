"""The Recurrent Attention Model (RAM) of Mnih, Heess, Graves and Kavukcuoglu, NIPS 2014.

One step t of the model, written with the paper's names:

    g_t   = GlimpseNetwork(rho(x, l_{t-1}), l_{t-1})     what was seen, and where
    h_t   = CoreNetwork(h_{t-1}, g_t)                     the recurrent state
    l_t   ~ N(mu(h_t), std^2)                             LocationPolicy: where to look next
    b_t   = Baseline(h_t)                                 expected reward, for variance reduction
    a_T   = Classifier(h_T)                               the class, after the last glimpse (and Classifier(h_t)
                                                          at the glimpses before, for an optional loss there; with
                                                          several objects, after each object's glimpses)
    a_t   ~ softmax(Classifier(h_t))                      or, in a game (Catch), an action at every step

Gradient routing (the design; tests pin it, see tests/test_model.py):
- the cross-entropy of a_T trains Classifier, CoreNetwork and GlimpseNetwork, never the LocationPolicy; so does
  the optional cross-entropy of Classifier(h_t) at the glimpses before the last (``Rollout.step_logits``);
- REINFORCE trains the LocationPolicy only (its input h_t is detached), unless ``policy_core``: then its gradient
  also reaches CoreNetwork and GlimpseNetwork through h_t, back through time (the Torch7 implementation's route);
- the baseline's regression trains the Baseline only (its input h_t is detached too), unless ``baseline_core``:
  then it trains CoreNetwork and GlimpseNetwork as well, as the critic of an actor-critic shares their state.
- with ``loc_limit`` X > 0, the LocationPolicy's pre-tanh output z gets, beside the gradients above, a pull back to
  +-X where it lies beyond (the gradient of 0.5 * (|z| - X)^2, a batch mean): it trains the LocationPolicy, and
  under ``policy_core`` what lies below it, and is there only because a saturated tanh passes nothing else.
In a game (``act_every_step``) there are no labels and no cross-entropy: the REINFORCE term of the game actions
takes its place and trains Classifier, CoreNetwork and GlimpseNetwork (through time), never the LocationPolicy; the
locations' REINFORCE and the baseline are routed as above (``ram.losses.game_loss``).

The sensor rho lives in ``envs.retina``; the model takes glimpses as input, so it runs as well behind the
gymnasium environments (which call the retina) as on raw images (``RecurrentAttention.rollout``), through one
glimpse loop (``RecurrentAttention.episode``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from envs.retina import Retina, clip_location, integral_image

CORES = ("rnn", "lstm")
POLICIES = ("learned", "random")


@dataclass(frozen=True)
class RAMConfig:
    """Sizes of the model. Sensor sizes come from the environment's observation space."""

    # (k, g, g) of a grey glimpse, (k, C, g, g) of a colour one (C channels, scale-major: envs.retina.Retina.read)
    glimpse_shape: tuple[int, ...] = (3, 12, 12)
    n_classes: int = 10
    hg_size: int = 128  # h_g: what-pathway of the glimpse network
    hl_size: int = 128  # h_l: where-pathway of the glimpse network
    g_size: int = 256  # g_t
    hidden_size: int = 256  # h_t
    core: str = "rnn"  # "rnn" (the paper's ReLU RNN) or "lstm"
    std: float = 0.2  # fixed standard deviation of the location policy, in units of the [-1, 1] canvas
    loc_hidden: int = 0  # a ReLU hidden layer of this size in the location policy (0: the paper's linear mean)
    policy: str = "learned"  # "random": uniform random locations, the paper's ablation (no REINFORCE to do)
    # A game (Catch): an action of n_classes at every step, drawn from the Classifier's softmax and trained by
    # REINFORCE; False: one class after the last glimpse, trained by cross-entropy.
    act_every_step: bool = False
    # The baseline's regression trains the core and the glimpse network too (an actor-critic's shared body: predicting
    # the reward shapes the state); False: it trains the Baseline alone.
    baseline_core: bool = False
    # REINFORCE's gradient reaches the core and the glimpse network through the location policy's input h_t (as
    # Element-Research/rnn's RecurrentAttention routes it); False: it trains the LocationPolicy alone.
    policy_core: bool = False
    # A restoring gradient on the location policy's pre-tanh output beyond +-loc_limit (0: none; LocationPolicy).
    loc_limit: float = 0.0
    # The Classifier also names the class at every glimpse before the last (``Rollout.step_logits``), for a loss
    # there (``--glimpse-loss``); False: only after the last, as the paper (and no compute spent on the others).
    classify_every_glimpse: bool = False

    def __post_init__(self) -> None:
        shape = tuple(self.glimpse_shape)
        if len(shape) not in (3, 4) or not all(n >= 1 for n in shape):
            raise ValueError(f"glimpse_shape must be (k, g, g) or (k, C, g, g) of sizes >= 1, got {shape}")
        if self.core not in CORES:
            raise ValueError(f"core must be one of {CORES}, got {self.core!r}")
        if self.policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {self.policy!r}")
        if not self.std > 0:
            raise ValueError(f"std must be > 0, got {self.std}")
        if self.loc_hidden < 0:
            raise ValueError(f"loc_hidden must be >= 0, got {self.loc_hidden}")
        for name in ("n_classes", "hg_size", "hl_size", "g_size", "hidden_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


class GlimpseNetwork(nn.Module):
    """g_t = ReLU(Linear(h_g) + Linear(h_l)), h_g = ReLU(Linear(rho(x, l))), h_l = ReLU(Linear(l))."""

    def __init__(self, *, glimpse_size: int, hg_size: int, hl_size: int, g_size: int):
        super().__init__()
        self.fc_rho = nn.Linear(glimpse_size, hg_size)
        self.fc_l = nn.Linear(2, hl_size)
        self.fc_hg = nn.Linear(hg_size, g_size)
        self.fc_hl = nn.Linear(hl_size, g_size)

    def forward(self, rho: Tensor, l: Tensor) -> Tensor:
        # rho: (B, *glimpse_shape), l: (B, 2) -> g_t: (B, g_size)
        h_g = F.relu(self.fc_rho(rho.flatten(1)))
        h_l = F.relu(self.fc_l(l))
        return F.relu(self.fc_hg(h_g) + self.fc_hl(h_l))


class CoreNetwork(nn.Module):
    """h_t = ReLU(Linear(h_{t-1}) + Linear(g_t)) (the paper), or an LSTM cell. The state is (h, c) for both;
    the ReLU core carries c = h. A state of None is the zero state h_0 = c_0 = 0."""

    def __init__(self, *, g_size: int, hidden_size: int, core: str):
        super().__init__()
        self.core = core
        if core == "lstm":
            self.cell = nn.LSTMCell(g_size, hidden_size)
        else:
            self.fc_h = nn.Linear(hidden_size, hidden_size)
            self.fc_g = nn.Linear(g_size, hidden_size)

    def forward(self, g_t: Tensor, state: tuple[Tensor, Tensor] | None) -> tuple[Tensor, Tensor]:
        # From the zero state, Linear(h_0) is its bias: no product to compute forward, no weight gradient backward.
        if self.core == "lstm":
            if state is not None:
                return self.cell(g_t, state)
            cell = self.cell  # its gates in PyTorch's order: input, forget, cell, output; c_0 = 0 drops the forget gate
            # (x W_ih + b_ih) + b_hh: the sum in nn.LSTMCell's order, so the result is bit-identical to the cell's
            i, _, g, o = (F.linear(g_t, cell.weight_ih, cell.bias_ih) + cell.bias_hh).chunk(4, 1)
            c_t = torch.sigmoid(i) * torch.tanh(g)
            return torch.sigmoid(o) * torch.tanh(c_t), c_t
        recurrent = self.fc_h.bias if state is None else self.fc_h(state[0])
        h_t = F.relu(recurrent + self.fc_g(g_t))
        return h_t, h_t


class _Wall(torch.autograd.Function):
    """Identity forward; backward adds to z's gradient that of 0.5 * mean over the batch of sum (|z| - limit)^2 over
    the elements beyond +-limit: a pull back towards the range, nothing inside it."""

    @staticmethod
    def forward(ctx, z: Tensor, limit: float) -> Tensor:
        ctx.save_for_backward(z)
        ctx.limit = limit
        return z.clone()

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        (z,) = ctx.saved_tensors
        return grad + (z - z.clamp(-ctx.limit, ctx.limit)) / z.shape[0], None


class LocationPolicy(nn.Module):
    """l_t ~ N(mu, std^2 I), mu = tanh(Linear(h_t)) (or tanh(Linear(ReLU(Linear(h_t)))) with a hidden layer): a
    Gaussian policy with fixed std over [-1, 1]^2. ``limit`` > 0: a restoring gradient on the pre-tanh output z
    beyond +-limit (``_Wall``); 0: none, the paper's."""

    def __init__(self, *, hidden_size: int, std: float, loc_hidden: int = 0, limit: float = 0.0):
        super().__init__()
        self.hidden = nn.Linear(hidden_size, loc_hidden) if loc_hidden else None
        self.fc = nn.Linear(loc_hidden or hidden_size, 2)
        self.std = std
        self.limit = limit

    def forward(self, h_t: Tensor, *, greedy: bool = False) -> tuple[Tensor, Tensor]:
        """(mu, l_t): the mean and the location drawn (mu itself if greedy)."""
        # float32 even under bf16 autocast: l_t - mu is the policy's noise, which bf16's 8 bits would round away.
        z = self.fc(h_t if self.hidden is None else F.relu(self.hidden(h_t))).float()
        # A saturated tanh passes no gradient: a mean driven to the canvas's edge (|z| of 7 to 30, seen in a DRAM
        # run that stopped learning) stays there whatever REINFORCE says. With a limit, the backward pass adds a
        # pull on z back to +-limit (tanh(2) = 0.96 is still the edge); forward values are unchanged.
        mu = torch.tanh(_Wall.apply(z, self.limit) if self.limit > 0 and z.requires_grad else z)
        # The draw itself carries no gradient: REINFORCE reaches mu through log_prob alone.
        l_t = mu.detach() if greedy else (mu.detach() + self.std * torch.randn_like(mu))
        return mu, l_t

    def log_prob(self, l: Tensor, mu: Tensor) -> Tensor:
        """log pi(l | mu): the exact log-density of the unclipped draws (the env and the retina clip what they
        receive). Shapes (..., 2) -> (...); called once on all steps stacked, for a smaller autograd graph."""
        return log_normal(l, mu, self.std)


def log_normal(x: Tensor, mu: Tensor, std: float) -> Tensor:
    """Sum over the last dimension of log N(x; mu, std^2)."""
    return (-0.5 * ((x - mu) / std) ** 2 - math.log(std) - 0.5 * math.log(2 * math.pi)).sum(-1)


class Classifier(nn.Module):
    """a_T = softmax(Linear(h_T)): the action network (the class, or a game's action at every step); returns
    logits."""

    def __init__(self, *, hidden_size: int, n_classes: int):
        super().__init__()
        self.fc = nn.Linear(hidden_size, n_classes)

    def forward(self, h_t: Tensor) -> Tensor:
        return self.fc(h_t)


class Baseline(nn.Module):
    """b_t = Linear(h_t): the expected reward, regressed on the reward."""

    def __init__(self, *, hidden_size: int):
        super().__init__()
        self.fc = nn.Linear(hidden_size, 1)

    def forward(self, h_t: Tensor) -> Tensor:
        return self.fc(h_t).squeeze(-1)


class Step(NamedTuple):
    state: tuple[Tensor, Tensor]  # recurrent state to pass to the next step
    h_t: Tensor  # (B, hidden)
    mu: Tensor  # (B, 2) mean of the next location, differentiable w.r.t. the LocationPolicy only
    l_t: Tensor  # (B, 2) the next location drawn, unclipped, no gradient


class Rollout(NamedTuple):
    logits: Tensor  # (B, n_classes) of the classifier after the last glimpse
    locations: Tensor  # (B, T, 2) where each glimpse was taken (clipped)
    log_pi: Tensor  # (B, T - 1) log-densities of the chosen locations 2..T
    b: Tensor  # (B, T - 1) baselines at the steps that chose them; (B, T) in a game, whose last step acts too
    actions: Tensor  # (B, T) int64: a game's action at every step; (B, 0) when classifying
    log_pi_a: Tensor  # (B, T) log-probabilities of those actions; (B, 0) when classifying
    entropy: Tensor  # (B, T) entropy of each step's action distribution; (B, 0) when classifying
    action: Tensor  # (B,) int64: what the last step sends the env: the class named, or a game's last move
    # (B, T - 1, n_classes) of the classifier at the glimpses before the last (classify_every_glimpse), else (B, 0, n)
    step_logits: Tensor
    # (B, L, n_classes) of the classifier at the L label steps (a task of several objects names one after each
    # object's glimpses: ``label_steps``); (B, 1, n) of the last step's, logits, when classifying one object
    label_logits: Tensor


def retina_rollout(model, images: Tensor, l_0: Tensor, retina: Retina, n_glimpses: int, *, greedy: bool = False,
                   repeats: int = 1, label_steps: tuple[int, ...] = ()) -> Rollout:
    """T glimpses of raw (B, H, W) images (or (B, H, W, C) colour ones, whose retina reads every channel) starting
    at l_0 (B * repeats, 2), outside any environment; ``repeats`` K: each image is played by K consecutive episodes,
    which share its integral image (made once, then repeated).

    Sees exactly what the environments would: same retina, same clipping. A method of every glimpse model
    (``RecurrentAttention``, ``ram.dram.DeepRecurrentAttention``), over its own ``episode``."""
    if len(l_0) != len(images) * repeats:
        raise ValueError(f"l_0 has {len(l_0)} rows for {len(images)} images played {repeats} times each")
    S = integral_image(images)
    if repeats > 1:
        S = S.repeat_interleave(repeats, 0)

    def look(l: Tensor, a_t: Tensor | None = None) -> tuple[Tensor, Tensor]:
        l = clip_location(l)
        return retina.read(S, l).to(l.dtype), l

    return model.episode(*look(l_0), look, n_glimpses, greedy=greedy, label_steps=label_steps)


class RecurrentAttention(nn.Module):
    """RAM: GlimpseNetwork -> CoreNetwork -> (LocationPolicy, Baseline) each step; Classifier at the end."""

    def __init__(self, config: RAMConfig):
        super().__init__()
        self.config = config
        c = config
        self.glimpse = GlimpseNetwork(glimpse_size=math.prod(c.glimpse_shape), hg_size=c.hg_size, hl_size=c.hl_size,
                                      g_size=c.g_size)
        self.core = CoreNetwork(g_size=c.g_size, hidden_size=c.hidden_size, core=c.core)
        self.location = LocationPolicy(hidden_size=c.hidden_size, std=c.std, loc_hidden=c.loc_hidden,
                                       limit=c.loc_limit)
        self.classifier = Classifier(hidden_size=c.hidden_size, n_classes=c.n_classes)
        self.baseline = Baseline(hidden_size=c.hidden_size)

    def step(self, rho: Tensor, l: Tensor, state: tuple[Tensor, Tensor] | None, *, greedy: bool = False) -> Step:
        """One glimpse: rho (B, *glimpse_shape) taken at l (B, 2) -> the new state and the next location."""
        # l is data (where the env looked), never a path for gradients back into an earlier LocationPolicy step.
        g_t = self.glimpse(rho, l.detach())
        state = self.core(g_t, state)
        h_t = state[0]
        # Detached: REINFORCE trains the LocationPolicy alone, not the core or the glimpse network (unless
        # policy_core: then them too, through h_t and back through time).
        mu, l_t = self.location(h_t if self.config.policy_core else h_t.detach(), greedy=greedy)
        if self.config.policy == "random":  # the ablation: look anywhere, greedy or not
            l_t = torch.rand_like(l_t) * 2 - 1
        return Step(state, h_t, mu, l_t)

    def reinforce_terms(self, h: Tensor, mu: Tensor, l: Tensor) -> tuple[Tensor, Tensor]:
        """(log_pi, b), each (B, T - 1), from the stacked h_t (B, T - 1, hidden), mu_t and l_t (B, T - 1, 2) of the
        steps that chose a location."""
        return self.location.log_prob(l, mu), self.value(h)

    def value(self, h: Tensor) -> Tensor:
        """b_t of h_t (..., hidden) -> (...)."""
        # Detached: the baseline's regression trains the Baseline alone (unless baseline_core: then the core too).
        return self.baseline(h if self.config.baseline_core else h.detach())

    def act(self, h_t: Tensor, *, greedy: bool = False) -> tuple[Tensor, Tensor]:
        """A game's action at one step: (logits (B, A), a_t (B,)), a_t drawn from their softmax (argmax if greedy).
        h_t is not detached: in a game the actions' REINFORCE is what trains the core and the glimpse network."""
        logits = self.classifier(h_t)
        # The draw carries no gradient: REINFORCE reaches the logits through log_softmax alone (ram.losses.game_loss).
        a_t = logits.argmax(-1) if greedy else torch.multinomial(logits.detach().softmax(-1), 1).squeeze(-1)
        return logits, a_t

    def episode(self, rho: Tensor, l: Tensor, look: Callable[[Tensor, Tensor | None], tuple[Tensor, Tensor]],
                n_glimpses: int, *, greedy: bool = False, label_steps: tuple[int, ...] = ()) -> Rollout:
        """The one glimpse loop: T glimpses, the first rho (B, *glimpse_shape) taken at l (B, 2); ``look(l_t, a_t)``
        takes the next one where the policy chose (a_t: the game action of the step, or the class named at one of
        ``label_steps`` before the last (1-based: a sequence's objects), else None), returning (rho, the location it
        was taken at, clipped). Behind the gymnasium envs ``look`` is ``env.step``; on raw images it is the retina
        (``rollout``). The caller sends the last step's action (the class, or the game's last move)."""
        state = None  # h_0 = c_0 = 0
        locations, steps, moves, named = [l], [], [], []
        for t in range(n_glimpses):
            step = self.step(rho, l, state, greedy=greedy)
            state = step.state
            a_t = None
            if self.config.act_every_step:
                moves.append(self.act(step.h_t, greedy=greedy))
                a_t = moves[-1][1]
            elif t + 1 in label_steps and t < n_glimpses - 1:
                # An earlier object's class: h_t not detached, so its cross-entropy trains what a_T's does.
                named.append(self.classifier(step.h_t))
                a_t = named[-1].detach().argmax(-1)  # an action sent to the env, not a path for gradients
            if t == n_glimpses - 1:
                break
            steps.append(step)
            rho, l = look(step.l_t, a_t)
            locations.append(l)
        B = rho.shape[0]
        h, log_pi, b = self.stacked_terms(steps, B, rho.device)
        none = rho.new_zeros(B, 0)
        actions, log_pi_a, entropy = none.long(), none, none
        logits = self.classifier(state[0])
        # Detached: the class named is an action sent to the env, not a path for gradients.
        action = logits.detach().argmax(-1)
        # The class as each earlier glimpse would name it: h_t not detached, so a loss on it trains what a_T's does.
        step_logits = logits.new_zeros(B, 0, logits.shape[-1])
        if steps and self.config.classify_every_glimpse and not moves:
            step_logits = self.classifier(h)
        if moves:
            move_logits, actions = (torch.stack(x, 1) for x in zip(*moves))  # (B, T, A), (B, T)
            log_p = move_logits.log_softmax(-1)
            log_pi_a = log_p.gather(-1, actions[..., None]).squeeze(-1)
            entropy = -(log_p.exp() * log_p).sum(-1)
            b = torch.cat([b, self.value(state[0])[:, None]], 1)  # the last step acts too: its baseline joins
            action = actions[:, -1]  # the last move, drawn already
        label_logits = torch.stack([*named, logits], 1)
        return Rollout(logits, torch.stack(locations, 1), log_pi, b, actions, log_pi_a, entropy, action, step_logits,
                       label_logits)

    rollout = retina_rollout  # (images, l_0, retina, T, ...) -> Rollout, outside any environment

    def stacked_terms(self, steps: list[Step], batch_size: int, device=None) -> tuple[Tensor, Tensor, Tensor]:
        """(h, log_pi, b) of the steps that chose a location: their states stacked (B, T - 1, hidden) and their
        ``reinforce_terms`` ((B, 0, hidden) and (B, 0) each when there are none)."""
        if not steps:
            empty = torch.zeros(batch_size, 0, device=device)
            return empty[..., None].expand(-1, -1, self.config.hidden_size), empty, empty
        h, mu, l = (torch.stack(x, 1) for x in zip(*[(s.h_t, s.mu, s.l_t) for s in steps]))
        return h, *self.reinforce_terms(h, mu, l)
