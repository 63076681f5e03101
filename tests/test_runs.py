"""Run folders: the one checkpoint look-up (run folder, shipped folder, file), on every shipped agent too."""

import dataclasses
import json
from pathlib import Path

import pytest
import torch

import train
from envs.tasks import fixed
from ram import checkpoint
from ram.agent import Agent
from ram.config import Args, resolve
from ram.registry import spec
from ram.runs import load_model, load_run, recorded

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted(p.parent for p in (ROOT / "results").glob("*/agent.pt"))


def test_the_look_up_takes_a_run_folder_a_shipped_folder_or_a_file(mnist, tmp_path):
    argv = ["--task", "mnist28", "--glimpses", "2", "--batch-size", "16", "--hidden-size", "16", "--samples", "16",
            "--eval-every", "16", "--mc-samples", "1", "--threads", "1", "--no-progress"]
    assert train.main([*argv, "--run-dir", str(tmp_path / "run")]) == 0
    run = tmp_path / "run"
    assert checkpoint.find(run) == run / "best.pt"  # a run folder: the full training checkpoint
    assert checkpoint.find(run / "last.pt") == run / "last.pt"  # a file: as given
    (run / "best.pt").unlink()
    (run / "last.pt").unlink()
    assert checkpoint.find(run) == run / "agent.pt"  # as shipped: the agent alone
    for where in (run, run / "agent.pt"):
        assert Agent.from_checkpoint(where).n_glimpses == 2
        assert load_run(str(where), None)[0] == run / "agent.pt"
    with pytest.raises(checkpoint.CheckpointError, match="no checkpoint at"):
        checkpoint.load(tmp_path / "nothing")


@pytest.mark.parametrize("folder", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_shipped_folder_loads_through_the_look_up(mnist, folder):
    path, state, args, task = load_run(str(folder), None)
    assert path == folder / "agent.pt"
    results = json.loads((folder / "results.json").read_text())
    assert results["task"] == json.loads(json.dumps(state["task"])) and results["samples"] == state["samples"]
    model = load_model(state, args, task)
    assert sum(p.numel() for p in model.parameters()) == results["params"]
    if task.kind == "catch":  # the game's agent plays through the API, from the folder as it is
        from envs.catch import CatchVectorEnv
        from ram.games import play

        with torch.no_grad():
            ep = play(spec("ram"), Agent.from_checkpoint(folder).model, CatchVectorEnv(4, split="test"), greedy=True)
        assert ep.locations.shape == (4, task.n_glimpses, 2) and ep.log_pi_a.shape == (4, task.n_glimpses)
    elif spec(args.model).reads == "glimpses":  # a RAM agent: the API takes the folder as it is
        canvases = fixed(mnist, task, "test", 0, 4)
        assert Agent.from_checkpoint(folder).predict(canvases.images).locations.shape == (4, task.n_glimpses, 2)


def test_no_shipped_file_holds_a_path_of_the_machine_it_was_made_on():
    def strings(x):
        if isinstance(x, dict):
            return [s for v in x.values() for s in strings(v)]
        if isinstance(x, (list, tuple)):
            return [s for v in x for s in strings(v)]
        return [x] if isinstance(x, str) else []

    for path in (ROOT / "results").rglob("*"):
        if path.suffix in (".json", ".md"):
            text = path.read_text()
            assert '"/' not in text and "/work/" not in text and "/root/" not in text, path
        elif path.suffix == ".pt":
            assert not [s for s in strings(checkpoint.load(path)) if s.startswith("/")], path


def test_a_run_records_paths_inside_the_working_directory_relative_to_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert recorded(str(tmp_path / "results" / "a" / "agent.pt")) == "results/a/agent.pt"
    assert recorded("runs/b") == "runs/b"
    assert recorded("/elsewhere/c.pt") == "/elsewhere/c.pt"  # outside it: as given


def test_random_glimpses_evaluate_to_the_same_greedy_error_every_time(mnist):
    from ram.config import Args, resolve, task_of
    from ram.episodes import evaluate
    from ram.kinds import make_env

    args = resolve(Args(task="mnist28", glimpses=2, hidden_size=16, policy="random"))
    task, s = task_of(args), spec("ram")
    model, _ = s.build(args, task, 10)
    env = make_env(s, args, task, "val", 500)
    errors = [evaluate(s, model, env, 1000, mc_samples=2, seed=0) for _ in range(2)]
    env.close()
    assert errors[0] == errors[1] and 0 < errors[0]["greedy_error"] < 100


def test_a_run_saved_before_its_task_had_a_recipe_keeps_its_own_settings():
    from ram.runs import saved_args

    old = dataclasses.asdict(resolve(Args(recipe=False)))  # cluttered60, 6 glimpses, as the paper's agent trained
    for name in ("recipe", "reward", "lr_warmup", "device", "train_data", "autocast"):  # newer than that run
        del old[name]
    args = resolve(Args(**saved_args(old)))
    assert (args.core, args.batch_size, args.lr, args.std_final, args.lr_warmup, args.reward, args.device) == (
        "rnn", 128, 1e-3, None, 0, "env", "cpu")
    assert resolve(Args()).core == "lstm"  # while a new run of the same task takes the recipe
