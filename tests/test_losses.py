"""The losses (ram.losses): known answers of the paper's hybrid loss, its returns and the leave-one-out baseline,
and of a game's REINFORCE loss and its advantages."""

import math

import pytest
import torch

from ram.losses import game_loss, hybrid_loss, lambda_advantage


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
    # One glimpse: no location is chosen (T - 1 = 0), so REINFORCE has nothing to weigh, with or without rollouts.
    for K in (1, 3):
        none = hybrid_loss(logits, labels, torch.zeros(3, 0), torch.zeros(3, 0), rollouts=K, credit="prob")
        assert none.reinforce.item() == 0 and none.baseline.item() == 0
        assert none.total.item() == pytest.approx(none.classification.item())


def test_game_loss_known_answer():
    # B=2 games, T=2 steps: one location (step 1), two moves. Game 0 caught (R=1), game 1 missed (R=0).
    log_pi = torch.tensor([[-1.0], [-0.5]], requires_grad=True)
    log_pi_a = torch.tensor([[-0.2, -0.4], [-1.0, -0.1]], requires_grad=True)
    b = torch.tensor([[0.5, 0.25], [0.25, 0.5]], requires_grad=True)
    losses = game_loss(log_pi, log_pi_a, b, torch.tensor([1.0, 0.0]))
    # -(1/B) sum_i sum_t (log_pi_it + log_pi_a_it) (R_i - b_it), the last step without a location:
    # i=0: (-1 - .2)(1 - .5) + (-.4)(1 - .25) = -0.6 - 0.3 = -0.9; i=1: (-.5 - 1)(0 - .25) + (-.1)(0 - .5) = 0.425
    assert losses.reinforce.item() == pytest.approx(-(-0.9 + 0.425) / 2)
    assert losses.classification.item() == 0 and losses.accuracy.item() == 0.5
    assert losses.baseline.item() == pytest.approx((0.25 + 0.5625 + 0.0625 + 0.25) / 4)
    losses.reinforce.backward()
    torch.testing.assert_close(log_pi_a.grad, torch.tensor([[-0.25, -0.375], [0.125, 0.25]]))
    torch.testing.assert_close(log_pi.grad, torch.tensor([[-0.25], [0.125]]))
    assert b.grad is None


def test_lambda_advantage_known_answers():
    b, reward = torch.tensor([[0.2, 0.4, 0.8]]), torch.tensor([1.0])
    # delta = (b_2 - b_1, b_3 - b_2, R - b_3) = (0.2, 0.4, 0.2); lambda 0.5: A_3 = 0.2, A_2 = 0.4 + 0.5 * 0.2, A_1 = ...
    torch.testing.assert_close(lambda_advantage(b, reward, 0.5), torch.tensor([[0.45, 0.5, 0.2]]))
    torch.testing.assert_close(lambda_advantage(b, reward, 0.0), torch.tensor([[0.2, 0.4, 0.2]]))
    torch.testing.assert_close(lambda_advantage(b, reward, 1.0), reward[:, None] - b)  # REINFORCE's R - b_t
    torch.testing.assert_close(lambda_advantage(b, reward, 0.999999), reward[:, None] - b, atol=1e-5, rtol=0)


def test_the_glimpse_loss_adds_the_mean_cross_entropy_of_the_earlier_glimpses():
    # B=2, T-1=2 earlier glimpses, 2 classes. Their logits give the true class probability 1/2, 3/4, 1/4 and 1/2.
    logits = torch.tensor([[5.0, 0.0], [0.0, 5.0]])
    labels = torch.tensor([0, 1])
    log_pi, b = torch.zeros(2, 2), torch.zeros(2, 2)
    step_logits = torch.tensor([[[0.0, 0.0], [math.log(3.0), 0.0]], [[math.log(3.0), 0.0], [0.0, 0.0]]],
                               requires_grad=True)
    plain = hybrid_loss(logits, labels, log_pi, b)
    weighted = hybrid_loss(logits, labels, log_pi, b, step_logits=step_logits, glimpse_loss=0.5)
    earlier = -(math.log(0.5) + math.log(0.75) + math.log(0.25) + math.log(0.5)) / 4
    assert weighted.total.item() == pytest.approx(plain.total.item() + 0.5 * earlier)
    assert weighted.classification.item() == plain.classification.item()  # still the last glimpse's
    assert hybrid_loss(logits, labels, log_pi, b, step_logits=step_logits).total.item() == plain.total.item()  # off
    weighted.total.backward()
    # d/dz of 0.5 * mean CE: 0.5 / 4 * (softmax - onehot); glimpse 1 of sample 0: softmax (1/2, 1/2), label 0.
    torch.testing.assert_close(step_logits.grad[0, 0], torch.tensor([-0.0625, 0.0625]))
