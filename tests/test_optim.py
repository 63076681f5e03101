"""How the weights move (ram.optim, ram.schedules): Adam's step with the Polyak average trailing it, and the learning
rate's warm-up under its cosine."""

import pytest
import torch

from ram.optim import average_of, optimiser, update
from ram.schedules import lr_factor


def test_the_average_trails_the_weights_by_its_decay_and_there_is_none_without_ema():
    model = torch.nn.Linear(2, 1, bias=False)
    assert average_of(model, 0.0) is None
    with torch.no_grad():
        model.weight.fill_(1.0)
    average = average_of(model, 0.5)
    optimizer, scheduler = optimiser(model, lr=0.1, lr_final=1.0, lr_warmup=0, total_steps=10, batch=1)
    update(model(torch.ones(1, 2)).sum(), model, optimizer, scheduler, average, clip_grad=0, ema=0.5)
    # Adam's first step moves each weight by lr against the sign of its gradient (1 each): 1 -> 0.9; the average
    # goes half of the way (decay 0.5): 0.95. It has no gradient of its own.
    torch.testing.assert_close(model.weight, torch.full((1, 2), 0.9))
    torch.testing.assert_close(average.weight, torch.full((1, 2), 0.95))
    assert not average.weight.requires_grad and average.weight.grad is None


def test_a_resumed_average_is_the_checkpoint_s_model():
    model = torch.nn.Linear(2, 1)
    saved = {"model": {k: torch.zeros_like(v) for k, v in model.state_dict().items()}}
    average = average_of(model, 0.9, saved)
    assert all((p == 0).all() for p in average.parameters()) and not all((p == 0).all() for p in model.parameters())


def test_lr_warmup_rises_linearly_under_the_cosine():
    rise = [lr_factor(s, 100, 0.0, 4) / lr_factor(s, 100, 0.0) for s in range(6)]
    assert rise == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 1.0], abs=1e-15)
    assert lr_factor(50, 100, 0.0, 4) == lr_factor(50, 100, 0.0) == 0.5
    assert lr_factor(7, 100, 0.1, 0) == lr_factor(7, 100, 0.1)  # 0: no warm-up, the runs before it
