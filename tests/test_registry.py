"""The model registry: a model added in one entry trains, evaluates and draws through the whole CLI."""

import json
from dataclasses import dataclass
from typing import NamedTuple

import torch
from matplotlib.figure import Figure
from torch import nn

import train
from ram import registry
from ram.registry import Drawing, ModelSpec


class Out(NamedTuple):
    logits: torch.Tensor


@dataclass(frozen=True)
class ToyConfig:
    canvas_size: int
    n_classes: int


class Toy(nn.Module):
    """A linear classifier of the whole canvas, the smallest model the CLI can train."""

    def __init__(self, config: ToyConfig):
        super().__init__()
        self.config = config
        self.fc = nn.Linear(config.canvas_size**2, config.n_classes)

    def forward(self, x: torch.Tensor) -> Out:
        return Out(self.fc(x.flatten(1)))


def build(args, task, n_classes, channels=1):
    config = ToyConfig(canvas_size=task.canvas_size, n_classes=n_classes)
    return Toy(config), config


def draw(model, args, task, images, labels):
    def figure(steps):
        fig = Figure(figsize=(2, 2))
        fig.add_subplot().imshow(model.fc.weight[0].detach().view(task.canvas_size, -1).numpy())
        return fig

    return Drawing("weights", figure, 1)


def test_a_model_registered_in_one_entry_trains_evaluates_and_draws(mnist, tmp_path, monkeypatch, capsys):
    toy = ModelSpec("toy", build, reads="image", defaults={"lr": 0.01}, draw=draw)
    monkeypatch.setitem(registry.MODELS, "toy", toy)
    run = tmp_path / "toy"
    assert train.main(["--task", "mnist28", "--model", "toy", "--batch-size", "32", "--samples", "640",
                       "--eval-every", "320", "--threads", "1", "--no-progress", "--run-dir", str(run)]) == 0
    results = json.loads((run / "results.json").read_text())
    assert results["params"] == 28 * 28 * 10 + 10 and "mc_error" not in results["test"]
    assert results["test"]["greedy_error"] < 50  # 640 images of a linear classifier: well above chance
    assert json.loads((run / "config.json").read_text())["args"]["lr"] == 0.01  # the entry's learning rate
    assert (run / "weights.png").exists() and (run / "weights.gif").exists()  # drawn at the end of training
    capsys.readouterr()
    assert train.main(["evaluate", str(run), "--threads", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["greedy_error"] == results["test"]["greedy_error"]


def test_an_unregistered_model_is_a_one_line_error(capsys):
    assert train.main(["--model", "toy"]) == 2
    err = capsys.readouterr().err.strip()
    assert "invalid choice: 'toy'" in err and "\n" not in err
