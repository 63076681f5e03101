import math

import pytest
import torch

from envs.retina import Retina
from ram.losses import hybrid_loss
from ram.model import RAMConfig, RecurrentAttention, log_normal


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


def test_reinforce_known_answer():
    # B=2, T-1=2 chosen locations. Sample 0 is correct (R=1), sample 1 wrong (R=0).
    logits = torch.tensor([[5.0, 0.0], [5.0, 0.0]], requires_grad=True)
    labels = torch.tensor([0, 1])
    log_pi = torch.tensor([[-1.0, -2.0], [-0.5, -1.5]], requires_grad=True)
    b = torch.tensor([[0.25, 0.5], [0.5, 0.25]], requires_grad=True)
    losses = hybrid_loss(logits, labels, log_pi, b)
    # -(1/B) sum_i sum_t log_pi (R_i - b_it)
    # i=0: -1*(1-.25) + -2*(1-.5) = -0.75 - 1.0 = -1.75; i=1: -0.5*(0-.5) + -1.5*(0-.25) = 0.25 + 0.375 = 0.625
    expected = -(-1.75 + 0.625) / 2
    assert losses.reinforce.item() == pytest.approx(expected)
    assert losses.reward.tolist() == [1.0, 0.0] and losses.accuracy.item() == 0.5
    # Baseline: mean of (b - R)^2 = ((.75)^2 + (.5)^2 + (.5)^2 + (.25)^2) / 4
    assert losses.baseline.item() == pytest.approx((0.5625 + 0.25 + 0.25 + 0.0625) / 4)
    losses.reinforce.backward()
    # d/dlog_pi = -(R - b) / B, and no gradient reaches the baseline through the advantage.
    torch.testing.assert_close(log_pi.grad, torch.tensor([[-0.375, -0.25], [0.25, 0.125]]))
    assert b.grad is None and logits.grad is None


@pytest.mark.parametrize("credit", ["prob", "log_prob"])
def test_reinforce_known_answer_with_the_true_class_probability_as_return(credit):
    # Softmax p(y): sample 0 gives its label 0 probability 3/4 (and is right), sample 1 gives its label 1 probability
    # 1/2 (a tie, which argmax breaks to class 0: wrong).
    logits = torch.tensor([[math.log(3.0), 0.0], [0.0, 0.0]], requires_grad=True)
    labels = torch.tensor([0, 1])
    log_pi = torch.tensor([[-1.0, -2.0], [-0.5, -1.5]], requires_grad=True)
    b = torch.tensor([[0.25, 0.5], [0.5, 0.25]], requires_grad=True)
    losses = hybrid_loss(logits, labels, log_pi, b, credit=credit)
    R = [0.75, 0.5] if credit == "prob" else [math.log(0.75), math.log(0.5)]
    # -(1/B) sum_i sum_t log_pi_it (R_i - b_it); prob: i=0: -1*.5 + -2*.25 = -1; i=1: -.5*0 + -1.5*.25 = -.375
    expected = -sum(lp * (R[i] - bb) for i in range(2) for lp, bb in zip(log_pi[i].tolist(), b[i].tolist())) / 2
    assert losses.reinforce.item() == pytest.approx(expected)
    if credit == "prob":
        assert expected == pytest.approx(0.6875)
    # The reward reported stays the env's 0/1; the baseline regresses on R.
    assert losses.reward.tolist() == [1.0, 0.0] and losses.accuracy.item() == 0.5
    residuals = [(bb - R[i]) ** 2 for i in range(2) for bb in b[i].tolist()]
    assert losses.baseline.item() == pytest.approx(sum(residuals) / 4)
    losses.reinforce.backward()
    # d/dlog_pi = -(R - b) / B; R is a score, not a path: nothing reaches the classifier or the baseline.
    want = torch.tensor([[-(R[i] - bb) / 2 for bb in b[i].tolist()] for i in range(2)])
    torch.testing.assert_close(log_pi.grad, want)
    assert b.grad is None and logits.grad is None
    with pytest.raises(ValueError, match="credit"):
        hybrid_loss(logits, labels, log_pi, b, credit="hit")


def test_leave_one_out_baseline_known_answer():
    # Two canvases, K = 2 rollouts each (rows 0-1 and 2-3), T-1 = 2. Returns (env): 1, 0 on the first canvas, 1, 1 on
    # the second. Each rollout's baseline is the other's return: advantages 1 - 0, 0 - 1, 1 - 1, 1 - 1 = 1, -1, 0, 0,
    # the same at both steps; the learned b does not enter REINFORCE (its regression still trains it).
    logits = torch.tensor([[5.0, 0.0], [5.0, 0.0], [0.0, 5.0], [0.0, 5.0]], requires_grad=True)
    labels = torch.tensor([0, 1, 1, 1])
    log_pi = torch.tensor([[-1.0, -2.0], [-0.5, -1.5], [-3.0, -1.0], [-2.0, -0.25]], requires_grad=True)
    b = torch.full((4, 2), 0.5, requires_grad=True)
    losses = hybrid_loss(logits, labels, log_pi, b, rollouts=2)
    # -(1/4) [(-1 - 2) * 1 + (-0.5 - 1.5) * -1 + 0 + 0] = -(1/4)(-3 + 2) = 0.25
    assert losses.reinforce.item() == pytest.approx(0.25)
    assert losses.baseline.item() == pytest.approx(0.25)  # (0.5 - R)^2 = 0.25 for R in {0, 1}
    losses.reinforce.backward()
    torch.testing.assert_close(log_pi.grad, torch.tensor([[-0.25, -0.25], [0.25, 0.25], [0.0, 0.0], [0.0, 0.0]]))
    assert b.grad is None and logits.grad is None
    # K = 3 with the probability as the return: the baseline is the mean of the two others.
    logits = torch.tensor([[math.log(3.0), 0.0], [0.0, 0.0], [0.0, math.log(3.0)]])
    labels = torch.tensor([0, 0, 0])  # p(y) = 3/4, 1/2, 1/4
    log_pi = torch.tensor([[1.0], [2.0], [4.0]])
    losses = hybrid_loss(logits, labels, log_pi, torch.zeros(3, 1), rollouts=3, credit="prob")
    advantages = [0.75 - 0.375, 0.5 - 0.5, 0.25 - 0.625]
    assert losses.reinforce.item() == pytest.approx(-(1.0 * advantages[0] + 4.0 * advantages[2]) / 3)
    with pytest.raises(ValueError, match="divisor"):
        hybrid_loss(logits, labels, log_pi, torch.zeros(3, 1), rollouts=2)


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
