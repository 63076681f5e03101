"""The task-kind registry: a kind of task added in one entry (and the world's rules for it) trains, evaluates, draws
and reports through the whole CLI, and nothing outside the entry names it."""

import json

import numpy as np
import pytest

import train
from envs import tasks
from envs.tasks import KindRules, Task
from ram import episodes, kinds
from ram.errors import UsageError
from ram.kinds import Metric, TaskKind
from ram.pictures import Picture

calls: list[str] = []


def supervised_only(ep, *, reinforce_weight, baseline_weight, **_):
    """The toy kind's loss: the cross-entropy alone (its locations are never trained)."""
    calls.append("loss")
    return episodes.classification_loss(ep, reinforce_weight=0.0, baseline_weight=baseline_weight)


def evaluate(spec, model, env, n, *, mc_samples=0, seed=0):
    calls.append("evaluate")
    return {**episodes.evaluate(spec, model, env, n, mc_samples=0, seed=seed), "toy_evaluated": 1}


def draw(spec, model, args, task, split, first, n):
    calls.append(f"draw {split}")
    return Picture("toy", lambda step: np.full((8, 8 * step, 3), 40 * step, np.uint8), 2, note=" (a toy)")


def chance(env, n, *, seed=0):
    return {"chance_rate": 10.0}


def check(args, spec):
    if args.rollouts > 1:
        raise UsageError("the toy kind takes no --rollouts")


TOY = TaskKind("toy", action="label", make_env=episodes.make_env, play=episodes.classify, loss=supervised_only,
               evaluate=evaluate, draw=draw, check=check, opponents=chance, metric=Metric(rate="accuracy"),
               comparable=False, device_canvases=False)


def test_a_task_kind_registered_in_one_entry_trains_evaluates_draws_and_reports(mnist, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(tasks.KIND_RULES, "toy", KindRules())  # the world: canvases of digits, glimpses a choice
    monkeypatch.setitem(tasks.PRESETS, "toy28", Task("toy28", canvas_size=28, glimpse_size=8, n_scales=1,
                                                     n_glimpses=2, kind="toy"))
    monkeypatch.setitem(kinds.KINDS, "toy", TOY)
    calls.clear()
    run = tmp_path / "toy"
    common = ["--threads", "1", "--no-progress"]
    assert train.main(["--task", "toy28", "--hidden-size", "16", "--g-size", "16", "--glimpse-hidden", "8",
                       "--batch-size", "32", "--samples", "128", "--eval-every", "64", "--snapshots",
                       "--run-dir", str(run), *common]) == 0
    assert calls.count("loss") == 4 and calls.count("draw val") == 2 and calls[-1] == "draw test"
    results = json.loads((run / "results.json").read_text())
    assert results["test"]["toy_evaluated"] == 1 and results["baselines"] == {"chance_rate": 10.0}
    assert results["task"]["kind"] == "toy" and (run / "toy.png").exists() and (run / "toy.gif").exists()
    assert results["test"]["greedy_error"] < 90  # 128 images with a supervised classifier: better than chance

    capsys.readouterr()
    assert train.main(["evaluate", str(run), *common[:2]]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["toy_evaluated"] == 1 and out["baselines"] == {"chance_rate": 10.0}
    assert out["greedy_error"] == results["test"]["greedy_error"]
    assert train.main(["visualize", str(run), "--out", str(tmp_path / "pic"), *common[:2]]) == 0
    assert capsys.readouterr().out.strip().endswith("(a toy)") and (tmp_path / "pic.gif").exists()
    assert train.main(["curve", str(run), "--target", "50", *common[:2]]) == 0
    assert len(json.loads((run / "test_curve.json").read_text())["points"]) == 2
    capsys.readouterr()
    assert train.main(["compare", str(run), "--out", str(tmp_path / "cmp"), *common[:2]]) == 2
    assert "plays toy: compare measures classifiers" in capsys.readouterr().err
    assert train.main(["--task", "toy28", "--rollouts", "2", "--samples", "16", *common]) == 2  # the entry's check
    assert "the toy kind takes no --rollouts" in capsys.readouterr().err


def test_a_task_of_an_unregistered_kind_is_refused_by_the_world():
    with pytest.raises(ValueError, match="kind must be one of"):
        Task("nothing", canvas_size=28, kind="nothing")
