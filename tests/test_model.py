import math

import pytest
import torch

from envs.retina import Retina
from ram.losses import hybrid_loss
from ram.model import LocationPolicy, RAMConfig, RecurrentAttention, log_normal


def make(core="rnn", glimpse_shape=(2, 6, 6), loc_hidden=0):
    torch.manual_seed(0)
    return RecurrentAttention(RAMConfig(glimpse_shape=glimpse_shape, hg_size=8, hl_size=8, g_size=16,
                                        hidden_size=16, core=core, std=0.2, loc_hidden=loc_hidden))


def roll(model, B=5, T=4, size=30):
    torch.manual_seed(1)
    images = torch.randint(0, 256, (B, size, size), dtype=torch.uint8)
    retina = Retina(g=6, k=2)
    out = model.rollout(images, torch.zeros(B, 2), retina, T)
    labels = torch.arange(B) % 10
    return out, labels


def grads(model, loss):
    model.zero_grad(set_to_none=True)
    loss.backward(retain_graph=True)
    return {name: p.grad for name, p in model.named_parameters()}


def touched(g, prefix):
    return any(v is not None and v.abs().sum() > 0 for k, v in g.items() if k.startswith(prefix))


@pytest.mark.parametrize("core", ["rnn", "lstm"])
def test_shapes(core):
    model = make(core)
    out, _ = roll(model, B=5, T=4)
    assert out.logits.shape == (5, 10) and out.locations.shape == (5, 4, 2)
    assert out.log_pi.shape == (5, 3) and out.b.shape == (5, 3)
    assert (out.locations.abs() <= 1).all()  # what the sensor saw is clipped


@pytest.mark.parametrize("core", ["rnn", "lstm"])
def test_the_none_state_is_the_zero_state(core):
    # The first step skips the product with h_0 = 0; it must give the state and the gradients of explicit zeros.
    model = make(core)
    g_t = torch.randn(5, 16)
    zeros = torch.zeros(5, 16)
    out = {}
    for name, state in (("none", None), ("zeros", (zeros, zeros))):
        model.zero_grad(set_to_none=True)
        h, c = model.core(g_t, state)
        (h.square().sum() + c.sum()).backward()
        # No gradient at all (the skipped product's weight) is the zero gradient.
        out[name] = (h.detach(), c.detach(), {k: torch.zeros_like(p) if p.grad is None else p.grad.clone()
                                              for k, p in model.core.named_parameters()})
    torch.testing.assert_close(out["none"][:2], out["zeros"][:2], rtol=0, atol=0)  # bit-identical
    for name, grad in out["zeros"][2].items():
        assert grad.abs().sum() > 0 or name in ("cell.weight_hh", "fc_h.weight"), name
        torch.testing.assert_close(out["none"][2][name], grad, msg=name)


@pytest.mark.parametrize("core,loc_hidden", [("rnn", 0), ("lstm", 0), ("rnn", 8)])
def test_gradient_routing(core, loc_hidden):
    model = make(core, loc_hidden=loc_hidden)
    assert (model.location.hidden is not None) == bool(loc_hidden)
    out, labels = roll(model)
    losses = hybrid_loss(out.logits, labels, out.log_pi, out.b)
    # Cross-entropy: classifier, core and glimpse networks; never the location policy or the baseline.
    g = grads(model, losses.classification)
    assert touched(g, "classifier") and touched(g, "core") and touched(g, "glimpse")
    assert not touched(g, "location") and not touched(g, "baseline")
    # REINFORCE: the location policy only; in particular nothing into the classifier.
    g = grads(model, losses.reinforce)
    assert touched(g, "location")
    assert not touched(g, "classifier") and not touched(g, "core") and not touched(g, "glimpse")
    assert not touched(g, "baseline")
    # Baseline regression: the baseline only.
    g = grads(model, losses.baseline)
    assert touched(g, "baseline")
    assert not any(touched(g, p) for p in ("classifier", "core", "glimpse", "location"))


@pytest.mark.parametrize("core,recurrent", [("rnn", "core.fc_h.weight"), ("lstm", "core.cell.weight_hh")])
def test_policy_core_routes_reinforce_into_the_core_back_through_time(core, recurrent):
    torch.manual_seed(0)
    model = RecurrentAttention(RAMConfig(glimpse_shape=(2, 6, 6), hg_size=8, hl_size=8, g_size=16, hidden_size=16,
                                         core=core, policy_core=True))
    out, labels = roll(model)
    losses = hybrid_loss(out.logits, labels, out.log_pi, out.b)
    # REINFORCE now trains the location policy, the core and the glimpse network; still never the classifier or the
    # baseline.
    g = grads(model, losses.reinforce)
    assert touched(g, "location") and touched(g, "core") and touched(g, "glimpse")
    assert not touched(g, "classifier") and not touched(g, "baseline")
    # Back through time: mu_1 reads h_1, which the recurrent weight never touched (h_0 = 0), so only a later
    # location's log-probability reaches that weight, through h_1 -> h_2.
    first, second = grads(model, out.log_pi[:, 0].sum()), grads(model, out.log_pi[:, 1].sum())
    assert first[recurrent] is None or first[recurrent].abs().sum() == 0
    assert second[recurrent].abs().sum() > 0
    # The cross-entropy and the baseline are routed as before.
    g = grads(model, losses.classification)
    assert not touched(g, "location") and not touched(g, "baseline")
    g = grads(model, losses.baseline)
    assert not any(touched(g, p) for p in ("classifier", "core", "glimpse", "location"))


def test_log_pi_is_the_exact_gaussian_density():
    mu = torch.tensor([[0.1, -0.3]])
    x = torch.tensor([[1.3, -0.2]])  # outside [-1, 1]: still the unclipped draw's density
    expected = sum(-0.5 * ((a - m) / 0.2) ** 2 - math.log(0.2 * math.sqrt(2 * math.pi))
                   for a, m in zip(x[0].tolist(), mu[0].tolist()))
    assert log_normal(x, mu, 0.2).item() == pytest.approx(expected, rel=1e-6)
    dist = torch.distributions.Normal(mu, 0.2)
    assert log_normal(x, mu, 0.2).item() == pytest.approx(dist.log_prob(x).sum().item(), rel=1e-6)


def test_policy_samples_around_the_mean_and_greedy_is_the_mean():
    model = make()
    h = torch.randn(20000, 16)
    mu, l = model.location(h)
    assert (l - mu).std().item() == pytest.approx(0.2, rel=0.03)
    mu_g, l_g = model.location(h, greedy=True)
    torch.testing.assert_close(l_g, mu_g.detach())
    assert not l.requires_grad and model.location.log_prob(l, mu).requires_grad


def test_sizes_come_from_the_glimpse_shape():
    model = RecurrentAttention(RAMConfig(glimpse_shape=(4, 12, 12), n_classes=7))
    assert model.glimpse.fc_rho.in_features == 4 * 12 * 12 and model.classifier.fc.out_features == 7
    with pytest.raises(ValueError, match="core"):
        RAMConfig(core="gru")


def test_random_policy_looks_anywhere_even_when_greedy():
    torch.manual_seed(0)
    model = RecurrentAttention(RAMConfig(glimpse_shape=(2, 6, 6), hidden_size=16, policy="random"))
    images = torch.zeros(2000, 30, 30, dtype=torch.uint8)
    out = model.rollout(images, torch.zeros(2000, 2), Retina(g=6, k=2), 3, greedy=True)
    later = out.locations[:, 1:]  # the first location is given; the rest are uniform on [-1, 1]^2
    assert later.min() < -0.99 and later.max() > 0.99 and abs(later.mean().item()) < 0.02
    assert later.std().item() == pytest.approx(1 / math.sqrt(3), rel=0.03)


def test_the_earlier_glimpses_classify_through_the_core_and_never_the_policy():
    assert roll(make())[0].step_logits.shape == (5, 0, 10)  # the paper's model names a class once
    torch.manual_seed(0)
    model = RecurrentAttention(RAMConfig(glimpse_shape=(2, 6, 6), hg_size=8, hl_size=8, g_size=16, hidden_size=16,
                                         classify_every_glimpse=True))
    out, labels = roll(model, B=5, T=4)
    assert out.step_logits.shape == (5, 3, 10)
    # The last glimpse's logits are the classifier of the last state; the earlier ones, of theirs.
    losses = hybrid_loss(out.logits, labels, out.log_pi, out.b, step_logits=out.step_logits, glimpse_loss=1.0)
    plain = hybrid_loss(out.logits, labels, out.log_pi, out.b)
    g = grads(model, losses.total - plain.total)  # the glimpse loss alone
    assert touched(g, "classifier") and touched(g, "core") and touched(g, "glimpse")
    assert not touched(g, "location") and not touched(g, "baseline")
    # A game names no class at the earlier glimpses.
    game = RecurrentAttention(RAMConfig(glimpse_shape=(2, 6, 6), hg_size=8, hl_size=8, g_size=16, hidden_size=16,
                                        n_classes=3, act_every_step=True, classify_every_glimpse=True))
    assert roll(game)[0].step_logits.shape == (5, 0, 3)


def policy_of(limit):
    """A LocationPolicy whose pre-tanh output z is its input h_t (identity weights, no bias, no hidden layer)."""
    policy = LocationPolicy(hidden_size=2, std=0.1, limit=limit)
    with torch.no_grad():
        policy.fc.weight.copy_(torch.eye(2))
        policy.fc.bias.zero_()
    return policy


def test_loc_limit_pulls_z_back_beyond_the_limit_and_changes_nothing_else():
    h = torch.tensor([[0.5, 5.0], [-3.0, 1.0]])
    values, gradients = {}, {}
    for limit in (0.0, 2.0):
        x = h.clone().requires_grad_()
        mu, _ = policy_of(limit)(x, greedy=True)
        mu.sum().backward()
        values[limit], gradients[limit] = mu.detach(), x.grad
    torch.testing.assert_close(values[2.0], torch.tanh(h), rtol=0, atol=0)  # forward: the paper's mean
    torch.testing.assert_close(values[0.0], values[2.0], rtol=0, atol=0)
    tanh_grad = 1 - torch.tanh(h) ** 2
    torch.testing.assert_close(gradients[0.0], tanh_grad)
    # Known answer: tanh' plus (z - clamp(z, -2, 2)) / B, B = 2: +1.5 at z = 5, -0.5 at z = -3, nothing inside.
    torch.testing.assert_close(gradients[2.0], tanh_grad + torch.tensor([[0.0, 1.5], [-0.5, 0.0]]))


def test_loc_limit_brings_a_mean_stuck_at_the_edge_back_where_tanh_has_a_gradient():
    """A saturated mean (z = 20: tanh' ~ 1e-17) gets no gradient from any loss of mu; with the limit, even a loss
    that says nothing moves z back towards +-limit, and not past it."""
    for limit, expected in ((0.0, 20.0), (2.0, 2.0)):
        policy = policy_of(limit)
        optimiser = torch.optim.SGD(policy.parameters(), lr=1e-3)  # each step: z - 2 shrinks by 80%
        h = torch.tensor([[20.0, -20.0]])
        for _ in range(200):
            optimiser.zero_grad()
            mu, _ = policy(h, greedy=True)
            (0.0 * mu).sum().backward()
            optimiser.step()
        z = policy.fc(h).detach()
        torch.testing.assert_close(z.abs(), torch.full_like(z, expected), atol=1e-3, rtol=0)


def test_loc_limit_s_pull_stops_at_the_location_policy_without_policy_core():
    """The pull follows REINFORCE's route: without policy_core h_t is detached, so it trains the LocationPolicy
    alone; with it, the core and the glimpse network too."""
    for policy_core, reached in ((False, {"location"}), (True, {"location", "core", "glimpse"})):
        torch.manual_seed(0)
        model = RecurrentAttention(RAMConfig(glimpse_shape=(2, 6, 6), hg_size=8, hl_size=8, g_size=16, hidden_size=16,
                                             std=0.2, loc_limit=2.0, policy_core=policy_core))
        with torch.no_grad():
            model.location.fc.bias.fill_(50.0)  # every mean saturated at the corner: z about 50
        out, _ = roll(model)
        g = grads(model, 0.0 * out.log_pi.sum())  # no REINFORCE signal at all: the pull alone
        assert {name.split(".")[0] for name, v in g.items() if v is not None and v.abs().sum() > 0} == reached
