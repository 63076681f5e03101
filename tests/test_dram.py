"""DRAM (ram.dram): its gradient routing, its context, and a tiny run through train, evaluate and the Agent."""

import json
import sys
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

import train
from envs.retina import Retina
from envs.tasks import SEVERAL, fixed
from ram.agent import Agent
from ram.dram import DeepRecurrentAttention, DRAMConfig

RETINA = Retina(g=8, k=3, s=2)


def model_and_rollout(**config):
    torch.manual_seed(0)
    model = DeepRecurrentAttention(DRAMConfig(glimpse_shape=(3, 8, 8), hidden_size=16, g_size=16, loc_hidden=8,
                                              **config))
    roll = model.rollout(torch.rand(4, 40, 40), torch.zeros(4, 2), RETINA, 6, label_steps=(3, 6))
    return model, roll


def trained_by(model, loss) -> set[str]:
    """The modules (first name of each parameter) that ``loss`` gives a non-zero gradient."""
    model.zero_grad()
    loss.backward()
    return {n.split(".")[0] for n, p in model.named_parameters() if p.grad is not None and p.grad.any()}


def test_a_rollout_names_a_label_per_object_and_chooses_every_location_but_the_last():
    model, roll = model_and_rollout()
    assert roll.label_logits.shape == (4, 2, 10) and roll.locations.shape == (4, 6, 2)
    assert roll.log_pi.shape == roll.b.shape == (4, 5)
    torch.testing.assert_close(roll.label_logits[:, -1], roll.logits)


def test_the_labels_train_the_lower_layer_and_the_glimpses_never_the_upper_layer_or_the_context():
    model, roll = model_and_rollout()
    labels = torch.zeros(4, 2, dtype=torch.long)
    ce = F.cross_entropy(roll.label_logits.reshape(-1, 10), labels.reshape(-1))
    assert trained_by(model, ce) == {"classifier", "lower", "glimpse"}


@pytest.mark.parametrize("policy_core", [True, False])
def test_reinforce_trains_the_emission_upper_layer_and_context_and_with_policy_core_what_lies_below(policy_core):
    model, roll = model_and_rollout(policy_core=policy_core)
    below = {"lower", "glimpse"} if policy_core else set()
    assert trained_by(model, -roll.log_pi.sum()) == {"location", "upper", "context"} | below


def test_the_baseline_s_regression_trains_the_baseline_alone_unless_baseline_core():
    model, roll = model_and_rollout()
    assert trained_by(model, (roll.b - 1).pow(2).mean()) == {"baseline"}
    model, roll = model_and_rollout(baseline_core=True, policy_core=False)
    assert trained_by(model, (roll.b - 1).pow(2).mean()) == {"baseline", "upper", "context"}


def test_without_the_context_the_first_observation_is_a_glimpse_like_the_others():
    model, roll = model_and_rollout(context=False)
    assert model.context is None
    torch.manual_seed(1)
    images = torch.rand(2, 40, 40)
    a = model.rollout(images, torch.zeros(2, 2), RETINA, 1, greedy=True)
    b = model.rollout(images.flip(1), torch.zeros(2, 2), RETINA, 1, greedy=True)
    assert not torch.equal(a.logits, b.logits)  # one step: the label reads the first observation
    model, _ = model_and_rollout(context=True)
    a = model.rollout(images, torch.zeros(2, 2), RETINA, 1, greedy=True)
    b = model.rollout(images.flip(1), torch.zeros(2, 2), RETINA, 1, greedy=True)
    torch.testing.assert_close(a.logits, b.logits)  # the context never reaches the labels


def test_random_locations_are_refused():
    with pytest.raises(ValueError, match="learned"):
        DRAMConfig(policy="random")


def test_a_tiny_dram_run_on_pairs_trains_evaluates_and_reloads(mnist, tmp_path, capsys):
    folder = tmp_path / "dram"
    argv = ["--task", "pairs100", "--model", "dram", "--glimpses", "2", "--batch-size", "16", "--hidden-size", "32",
            "--g-size", "32", "--eval-batch", "500", "--mc-samples", "2", "--threads", "1", "--no-progress",
            "--samples", "32", "--eval-every", "32", "--loc-limit", "2", "--run-dir", str(folder)]
    assert train.main(argv) == 0
    assert json.loads((folder / "config.json").read_text())["model_config"]["loc_limit"] == 2.0
    results = json.loads((folder / "results.json").read_text())
    assert 0 <= results["test"]["object_error"] <= results["test"]["sequence_error"] <= 100
    assert {"glimpses.png", "glimpses.gif"} <= {p.name for p in folder.iterdir()}
    agent = Agent.from_checkpoint(folder)
    assert isinstance(agent.model, DeepRecurrentAttention) and agent.model.config.context
    assert agent.model.location.limit == 2.0
    pred = agent.predict(fixed(mnist, SEVERAL["pairs100"], "test", 0, 2).images)
    assert pred.labels.shape == (2, 2) and pred.locations.shape == (2, 4, 2)
    # benchmarks/emission_saturation.py reads its policy: one row per location chosen (2 x 2 steps, the last none).
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    from emission_saturation import main, saturation

    samples, rows = saturation(str(folder), 50)
    assert samples == 32 and len(rows) == 3
    assert all(0 <= median <= largest and 0 <= edge <= 1 for median, largest, edge in rows)
    capsys.readouterr()
    assert main([str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("emission_saturation.py: error: no checkpoint") and err.count("\n") == 1
    assert train.main(["--no-context", "--samples", "16"]) == 2
    assert "--no-context removes DRAM's context network" in capsys.readouterr().err
