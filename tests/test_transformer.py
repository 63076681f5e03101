"""The Vision Transformer baseline: its attention, its invariances, its gradients and its cost, by hand."""

import math

import numpy as np
import pytest
import torch

from ram import compare
from ram.transformer import SelfAttention, VisionTransformer, ViTConfig

TINY = ViTConfig(canvas_size=4, patch_size=2, d_model=4, layers=1, heads=2, mlp_ratio=2, n_classes=3)


def test_attention_rows_sum_to_one_over_the_keys():
    model = VisionTransformer(ViTConfig(canvas_size=28, patch_size=7, d_model=32, layers=2, heads=4))
    weights = model(torch.rand(5, 28, 28)).weights
    assert weights.shape == (5, 2, 4, 17, 17)  # canvases, layers, heads, 16 patches + the class token, twice
    torch.testing.assert_close(weights.sum(-1), torch.ones(5, 2, 4, 17))


def test_two_tokens_attend_as_computed_by_hand():
    attention = SelfAttention(d=2, heads=1)
    with torch.no_grad():  # Q = K = V = z, no output map
        attention.qkv.weight.copy_(torch.eye(2).repeat(3, 1))
        attention.qkv.bias.zero_()
        attention.out.weight.copy_(torch.eye(2))
        attention.out.bias.zero_()
    out, a = attention(torch.tensor([[[1.0, 0.0], [0.0, 2.0]]]))
    # scores z_i . z_j / sqrt(2): [[1, 0], [0, 4]] / sqrt(2); each row through a softmax
    s = 1 / math.sqrt(2)
    first = [math.exp(s) / (math.exp(s) + 1), 1 / (math.exp(s) + 1)]
    second = [1 / (1 + math.exp(4 * s)), math.exp(4 * s) / (1 + math.exp(4 * s))]
    torch.testing.assert_close(a[0, 0], torch.tensor([first, second]))
    torch.testing.assert_close(out[0], torch.tensor([[first[0], 2 * first[1]], [second[0], 2 * second[1]]]))


def test_without_position_embeddings_the_order_of_the_patches_does_not_matter():
    torch.manual_seed(0)
    x = torch.rand(3, 12, 12)
    # The same 3 x 3 patches of 4 x 4 pixels, put back in another order.
    blocks = x.view(3, 3, 4, 3, 4).transpose(2, 3).reshape(3, 9, 4, 4)
    order = torch.randperm(9)
    shuffled = blocks[:, order].view(3, 3, 3, 4, 4).transpose(2, 3).reshape(3, 12, 12)
    assert not torch.equal(shuffled, x)
    blind = VisionTransformer(ViTConfig(canvas_size=12, patch_size=4, d_model=16, heads=2, position=False))
    torch.testing.assert_close(blind(shuffled).logits, blind(x).logits)
    seeing = VisionTransformer(ViTConfig(canvas_size=12, patch_size=4, d_model=16, heads=2))
    assert not torch.allclose(seeing(shuffled).logits, seeing(x).logits, atol=1e-4)


def test_gradients_reach_every_parameter():
    model = VisionTransformer(ViTConfig(canvas_size=10, patch_size=5, d_model=8, layers=2, heads=2))
    model(torch.rand(4, 10, 10)).logits.logsumexp(-1).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_macs_match_a_hand_count_and_grow_with_the_canvas_area_and_its_square():
    # 4 patches of 2 x 2 pixels and a class token: 5 tokens of d = 4, two heads of 2, one block, an MLP of 8.
    embed, qkv, scores, mix, out = 4 * 4 * 4, 5 * 4 * 12, 2 * 5 * 5 * 2, 2 * 5 * 5 * 2, 5 * 4 * 4
    mlp, head = 5 * 4 * 8 + 5 * 8 * 4, 4 * 3
    fn = compare.forward_fn(VisionTransformer(TINY))
    total = embed + qkv + scores + mix + out + mlp + head
    assert compare.count_macs(fn, torch.zeros(2, 4, 4, dtype=torch.uint8)) == total
    # On a canvas twice as wide: 16 patches; the attention products grow with the square of the tokens (17^2 / 5^2).
    config = ViTConfig(canvas_size=8, patch_size=2, d_model=4, layers=1, heads=2, mlp_ratio=2, n_classes=3)
    wide = compare.count_macs(compare.forward_fn(VisionTransformer(config)), torch.zeros(1, 8, 8, dtype=torch.uint8))
    per_token = 4 * 12 + 4 * 4 + 4 * 8 + 8 * 4
    assert wide == 16 * 4 * 4 + 17 * per_token + 2 * (2 * 17 * 17 * 2) + head


def test_a_canvas_that_is_not_a_multiple_of_the_patch_is_zero_padded():
    model = VisionTransformer(ViTConfig(canvas_size=28, patch_size=6, d_model=8, heads=2))
    patches = model.patches(torch.ones(1, 28, 28))
    assert patches.shape == (1, 25, 36) and patches[0, -1].sum() == 16  # the corner patch: 4 x 4 pixels of canvas
    np.testing.assert_array_equal(patches[0, 0].numpy(), np.ones(36))


@pytest.mark.parametrize("bad", [{"d_model": 6, "heads": 4}, {"patch_size": 0}, {"patch_size": 61}])
def test_bad_sizes_are_refused(bad):
    with pytest.raises(ValueError):
        ViTConfig(**bad)
