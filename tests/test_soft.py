import math

import pytest
import torch

from envs.retina import gaussian_read
from ram.soft import (
    SCORES,
    Attention,
    CNNConfig,
    Convolutional,
    FCConfig,
    FullyConnected,
    SoftAttention,
    SoftConfig,
    SoftGlimpseConfig,
    SoftGlimpseRAM,
)


def test_attention_weights_sum_to_one_over_cells():
    torch.manual_seed(0)
    for score in SCORES:
        for heads in (1, 4):
            attention = Attention(score=score, d=16, heads=heads)
            q, k, v = torch.randn(3, 16), torch.randn(3, 7, 16), torch.randn(3, 7, 16)
            c, a = attention(q, k, v)
            assert c.shape == (3, 16) and a.shape == (3, heads, 7)
            torch.testing.assert_close(a.sum(-1), torch.ones(3, heads))


def test_score_functions_on_a_hand_computed_case():
    q = torch.tensor([[1.0, 2.0]])
    k = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])
    v = torch.tensor([[[10.0, 0.0], [0.0, 10.0], [5.0, 5.0]]])
    dot = Attention(score="dot", d=2)
    assert dot.scores(q[:, None], k[:, None]).tolist() == [[[1.0, 2.0, 3.0]]]
    c, a = dot(q, k, v)
    e = [math.exp(1), math.exp(2), math.exp(3)]
    expected = [x / sum(e) for x in e]
    torch.testing.assert_close(a[0, 0], torch.tensor(expected))
    want = [10 * expected[0] + 5 * expected[2], 10 * expected[1] + 5 * expected[2]]
    torch.testing.assert_close(c[0], torch.tensor(want))
    scaled = Attention(score="scaled_dot", d=2)
    want = torch.tensor([[[1.0, 2.0, 3.0]]]) / math.sqrt(2)
    torch.testing.assert_close(scaled.scores(q[:, None], k[:, None]), want)
    general = Attention(score="general", d=2)
    with torch.no_grad():
        general.W.copy_(torch.tensor([[0.0, 1.0], [1.0, 0.0]]))  # q^T W k swaps k's coordinates
    torch.testing.assert_close(general.scores(q[:, None], k[:, None]), torch.tensor([[[2.0, 1.0, 3.0]]]))
    additive = Attention(score="additive", d=2)
    with torch.no_grad():
        additive.w_q.weight.copy_(torch.eye(2))
        additive.w_k.weight.copy_(torch.eye(2))
        additive.w_k.bias.zero_()
        additive.w.weight.copy_(torch.tensor([[1.0, -1.0]]))
    want = [math.tanh(1 + kx) - math.tanh(2 + ky) for kx, ky in k[0].tolist()]
    torch.testing.assert_close(additive.scores(q[:, None], k[:, None])[0, 0], torch.tensor(want))


def test_attention_over_features_equals_attention_over_keys_and_values():
    # The fast path of the linear scores never makes the keys and values; it must give what they would give.
    torch.manual_seed(0)
    f, q = torch.randn(3, 7, 6, dtype=torch.float64), torch.randn(3, 16, dtype=torch.float64)
    w_k, w_v = torch.nn.Linear(6, 16).double(), torch.nn.Linear(6, 16).double()
    for score in ("dot", "scaled_dot", "general"):
        for heads in (1, 4):
            attention = Attention(score=score, d=16, heads=heads).double()
            c, a = attention.over_features(q, f, w_k, w_v)
            c_want, a_want = attention(q, w_k(f), w_v(f))
            torch.testing.assert_close(a, a_want)
            torch.testing.assert_close(c, c_want)
    with pytest.raises(ValueError, match="additive"):
        Attention(score="additive", d=16).over_features(q, f, w_k, w_v)


def test_gaussian_read_of_a_known_image():
    # A constant image reads as gamma * value well inside the canvas, and about half of it on the border.
    image = torch.full((1, 60, 60), 0.5)
    one = torch.ones(1)
    inside = gaussian_read(image, torch.zeros(1, 2), one, one, 2 * one, n=4, k=2)
    torch.testing.assert_close(inside, torch.full((1, 2, 4, 4), 1.0), atol=1e-3, rtol=0)
    corner = gaussian_read(image, torch.tensor([[-1.0, -1.0]]), 0.01 * one, 3 * one, one, n=1)
    assert corner.item() == pytest.approx(0.5 / 4, rel=0.05)  # a quarter of the Gaussian lies inside
    # A bright pixel responds most at the filter centred on it, with the Gaussian's profile across filters.
    spot = torch.zeros(1, 60, 60)
    spot[0, 30, 33] = 1.0  # its centre is at pixel coordinates (33.5, 30.5)
    read = gaussian_read(spot, torch.tensor([[1 / 60, 1 / 60]]), one, one, one, n=8)[0, 0]  # read centre (30.5, 30.5)
    # Filter j is centred at 30.5 + (j - 3.5): the spot lies between filters 6 and 7 in x, 3 and 4 in y.
    row, col = divmod(read.argmax().item(), 8)
    assert row in (3, 4) and col in (6, 7)
    g = lambda d: math.exp(-0.5 * d * d) / math.sqrt(2 * math.pi)  # noqa: E731
    assert read[3, 6].item() == pytest.approx(g(0.5) * g(0.5), rel=1e-4)


@pytest.mark.parametrize("model", ["soft", "soft_heads", "glimpse", "fc", "cnn"])
def test_gradients_flow_end_to_end(model):
    torch.manual_seed(0)
    x = torch.rand(4, 60, 60)
    net = {
        "soft": lambda: SoftAttention(SoftConfig(n_steps=3, score="additive")),
        "soft_heads": lambda: SoftAttention(SoftConfig(n_steps=2, heads=4, score="general")),
        "glimpse": lambda: SoftGlimpseRAM(SoftGlimpseConfig(n_steps=3)),
        "fc": lambda: FullyConnected(FCConfig(canvas_size=60)),
        "cnn": lambda: Convolutional(CNNConfig()),
    }[model]()
    out = net(x)
    assert out.logits.shape == (4, 10)
    torch.nn.functional.cross_entropy(out.logits, torch.arange(4)).backward()
    # Under a dot-product score the keys' bias adds the same q . b_K to every cell's score, which the softmax
    # cancels: it has no gradient by design (the additive score has a bias of its own and uses it).
    exempt = {"w_k.bias"} if model == "soft_heads" else set()
    missing = [name for name, p in net.named_parameters()
               if name not in exempt and (p.grad is None or p.grad.abs().sum() == 0)]
    assert not missing, f"no gradient reaches {missing}"
    if model.startswith("soft"):
        assert out.weights.shape == ((4, 3, 1, 15 * 15) if model == "soft" else (4, 2, 4, 15 * 15))
        torch.testing.assert_close(out.weights.sum(-1), torch.ones(out.weights.shape[:-1]))
    if model == "glimpse":
        assert out.locations.shape == (4, 3, 2) and out.locations.abs().max() <= 1
        assert out.strides.shape == (4, 3) and (out.strides > 0).all()
