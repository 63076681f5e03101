"""End to end: tiny runs of train.py into a temporary folder (real MNIST, a few steps)."""

import json
import shutil

import numpy as np
import pytest
import torch

import train
from envs.tasks import fixed, get_task
from ram import checkpoint
from ram.agent import Agent
from ram.config import Args, parse_args, resolve, task_of
from ram.errors import UsageError
from ram.kinds import make_env
from ram.kinds import play as episode
from ram.registry import MODELS, spec
from ram.runs import default_run_dir

TINY = ["--task", "mnist28", "--glimpses", "3", "--batch-size", "16", "--hidden-size", "32", "--eval-batch", "1000",
        "--mc-samples", "2", "--threads", "1", "--no-progress"]


def run(tmp_path, name, *extra):
    return train.main([*TINY, "--run-dir", str(tmp_path / name), *extra])


def test_tiny_run_writes_config_checkpoints_tensorboard_and_results(mnist, tmp_path):
    assert run(tmp_path, "a", "--samples", "64", "--eval-every", "32") == 0
    folder = tmp_path / "a"
    assert {"config.json", "last.pt", "best.pt", "agent.pt", "results.json", "tb", "glimpses.png", "glimpses.gif"} <= {
        p.name for p in folder.iterdir()}
    results = json.loads((folder / "results.json").read_text())
    assert 0 <= results["test"]["greedy_error"] <= 100 and 0 <= results["test"]["mc_error"] <= 100
    assert results["test"]["n"] == 10000 and results["samples"] in (32, 64)
    assert [h["samples"] for h in results["history"]][0] == 32
    state = checkpoint.load(folder / "last.pt")
    assert state["step"] == 4 and state["samples"] == 64 and state["args"]["glimpses"] == 3
    assert not list(folder.glob("*.tmp"))  # atomic writes leave no temporaries
    tags = set()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder / "tb")).Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"train/classification", "train/reinforce", "train/baseline", "val/error", "perf/samples_per_s"} <= tags


@pytest.mark.parametrize("ema", ["0", "0.5"])
def test_resume_continues_exactly_where_it_stopped(mnist, tmp_path, ema):
    assert run(tmp_path, "full", "--samples", "96", "--eval-every", "32", "--ema", ema) == 0
    assert run(tmp_path, "split", "--samples", "96", "--eval-every", "32", "--stop-after", "32", "--ema", ema) == 0
    stopped = checkpoint.load(tmp_path / "split" / "last.pt")
    assert stopped["samples"] == 32 and not (tmp_path / "split" / "results.json").exists()
    resume = ["--run-dir", str(tmp_path / "split"), "--resume", "--no-progress", "--threads", "1"]
    assert train.main([*resume, "--stop-after", "32"]) == 0  # counts this invocation's samples
    assert checkpoint.load(tmp_path / "split" / "last.pt")["samples"] == 64
    assert train.main(resume) == 0
    a = checkpoint.load(tmp_path / "full" / "last.pt")
    b = checkpoint.load(tmp_path / "split" / "last.pt")
    assert a["step"] == b["step"] == 6
    assert ("trained" in a) == (ema != "0")  # with --ema, the weights themselves beside their average
    for key in ("model", "trained") if ema != "0" else ("model",):
        for name in a[key]:
            torch.testing.assert_close(a[key][name], b[key][name], rtol=0, atol=0)
    # Including the Monte-Carlo error: evaluation seeds its own RNG.
    assert json.loads((tmp_path / "split" / "results.json").read_text())["test"] == \
        json.loads((tmp_path / "full" / "results.json").read_text())["test"]


def test_ema_evaluates_and_ships_the_average_of_the_weights(mnist, tmp_path):
    # A little trained (so that errors depend on the weights), from the centre (so Agent.predict is the env's path).
    assert run(tmp_path, "base", "--samples", "10000", "--eval-every", "10000", "--batch-size", "100",
               "--start", "center") == 0
    w_0 = checkpoint.load(tmp_path / "base" / "last.pt")["model"]
    # One step from known weights: the average is 0.25 w_0 + 0.75 w_1, w_1 the weights after the step.
    assert run(tmp_path, "ema", "--samples", "16", "--eval-every", "16", "--ema", "0.25", "--start", "center",
               "--init", str(tmp_path / "base" / "last.pt")) == 0
    last = checkpoint.load(tmp_path / "ema" / "last.pt")
    assert last["step"] == 1
    for name, w_1 in last["trained"].items():
        torch.testing.assert_close(last["model"][name], 0.25 * w_0[name] + 0.75 * w_1)
    assert not torch.equal(last["trained"]["classifier.fc.weight"], w_0["classifier.fc.weight"])
    # Averaging parameters only is complete because no model has buffers (a batch norm's statistics would go stale).
    for model in MODELS:
        args = resolve(Args(task="mnist28", model=model, progress=False))
        assert not list(spec(model).build(args, task_of(args), 10)[0].buffers()), model
    # Validation measured the average, not the trained weights, and the average is the agent that ships.
    val = fixed(mnist, get_task("mnist28"), "val")
    average, trained = Agent.from_state(last), Agent.from_state({**last, "model": last["trained"]})
    assert not np.array_equal(average.predict(val.images).probs, trained.predict(val.images).probs)
    errors = [(agent.predict(val.images).labels != val.labels).sum() for agent in (average, trained)]
    assert errors[0] != errors[1] and 100.0 * errors[0] / len(val.labels) == last["history"][-1]["val_error"]
    best, agent = checkpoint.load(tmp_path / "ema" / "best.pt"), checkpoint.load(tmp_path / "ema" / "agent.pt")
    assert all(torch.equal(agent["model"][k], best["model"][k]) for k in best["model"]) and "trained" not in agent
    assert all(torch.equal(best["model"][k], last["model"][k]) for k in best["model"])


def test_resume_refuses_contradicting_settings(mnist, tmp_path, capsys):
    assert run(tmp_path, "r", "--samples", "32", "--eval-every", "32") == 0
    capsys.readouterr()
    code = train.main(["--run-dir", str(tmp_path / "r"), "--resume", "--task", "cluttered60", "--no-progress"])
    assert code == 2 and "--task cluttered60 differs from the run's mnist28" in capsys.readouterr().err


def test_agent_api_round_trip(mnist, tmp_path):
    # Trained a little (so predictions depend on the image), starting at the centre (so both paths agree exactly).
    assert run(tmp_path, "api", "--samples", "20000", "--eval-every", "20000", "--batch-size", "100",
               "--start", "center", "--mc-samples", "1") == 0
    agent = Agent.from_checkpoint(tmp_path / "api")
    slim = Agent.from_checkpoint(tmp_path / "api" / "agent.pt")  # the shippable file gives the same agent
    assert all(torch.equal(a, b) for a, b in zip(agent.model.state_dict().values(),
                                                 slim.model.state_dict().values()))
    canvases = fixed(mnist, get_task("mnist28"), "test", 0, 50)
    pred = agent.predict(canvases.images)
    assert pred.labels.shape == (50,) and pred.locations.shape == (50, 3, 2) and pred.probs.shape == (50, 10)
    assert np.abs(pred.locations).max() <= 1 and np.allclose(pred.probs.sum(1), 1, atol=1e-5)
    # The same images as floats give the same answer; the API agrees with the environment-based evaluation.
    again = agent.predict(canvases.images.astype(np.float32) / 255)
    np.testing.assert_array_equal(again.labels, pred.labels)
    np.testing.assert_allclose(again.locations, pred.locations, atol=1e-6)
    full = agent.predict(fixed(mnist, get_task("mnist28"), "test").images)
    results = json.loads((tmp_path / "api" / "results.json").read_text())
    assert len(np.unique(full.labels)) > 3 and len(np.unique(full.locations[:, 1].round(3), axis=0)) > 10
    # The same arithmetic as ram.episodes.evaluate (errors / n, not a mean), so the floats agree exactly.
    assert 100.0 * (full.labels != mnist.test_labels).sum() / len(full.labels) == results["test"]["greedy_error"]
    with pytest.raises(ValueError, match="shape"):
        agent.predict(np.zeros((2, 60, 60), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        agent.predict(np.full((2, 28, 28), 3.0))


def test_visualize_and_evaluate_commands(mnist, tmp_path, capsys):
    assert run(tmp_path, "vis", "--samples", "32", "--eval-every", "32") == 0
    assert train.main(["visualize", str(tmp_path / "vis"), "--n", "4"]) == 0
    png, gif = tmp_path / "vis" / "glimpses.png", tmp_path / "vis" / "glimpses.gif"
    from PIL import Image

    assert Image.open(png).size[0] > 300
    with Image.open(gif) as im:
        assert im.n_frames >= 3
    capsys.readouterr()
    assert train.main(["evaluate", str(tmp_path / "vis"), "--mc-samples", "2", "--threads", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    saved = json.loads((tmp_path / "vis" / "results.json").read_text())
    assert (out["greedy_error"], out["mc_error"]) == (saved["test"]["greedy_error"], saved["test"]["mc_error"])
    assert out["n"] == 10000


@pytest.mark.parametrize(
    "argv,message",
    [(["--task", "cluttered61"], "invalid choice"), (["--glimpse-size", "80"], "larger than"),
     (["--glimpses", "-1"], "positive"), (["--batch-size", "0"], "positive"), (["--resume"], "--run-dir"),
     (["--lr", "abc"], "invalid float"), (["evaluate", "/no/such/run"], "no checkpoint"),
     (["visualize", "/no/such/run"], "no checkpoint"), (["--lr-final", "2"], "lr-final"),
     (["--ema", "1"], "--ema must be in"), (["--task", "catch", "--reward", "prob"], "score a class"),
     (["--reward", "hit"], "invalid choice"), (["--model", "cnn", "--policy-core"], "learned location policy"),
     (["--policy", "random", "--policy-core"], "learned location policy"),
     (["--rollouts", "3", "--batch-size", "128"], "multiple of --rollouts"), (["--rollouts", "0"], "positive"),
     (["--model", "cnn", "--rollouts", "2"], "learned policy"), (["--task", "catch", "--rollouts", "2"],
                                                                 "classification task"),
     (["evaluate", "x", "--threads", "0"], "threads"), (["evaluate", "x", "--split", "train"], "invalid choice"),
     (["--std-final", "0"], "must be > 0"), (["--model", "fc", "--std-final", "0.1"], "no location policy"),
     (["--init", "/no/such/run"], "no such checkpoint"), (["curve", "/no/such/run"], "not a run folder"),
     (["curve", "x", "--mc-samples", "-1"], "--mc-samples must be"),
     (["compare", "x", "--threads", "0"], "--threads must be >= 1"),
     (["visualize", "x", "--threads", "0"], "--threads must be >= 1"),
     (["--model", "soft", "--heads", "3"], "not divisible by 3 heads"),
     (["--model", "vit", "--heads", "3"], "not divisible by 3 heads"), (["--model", "vit", "--patch-size", "99"],
                                                                          "larger than the 60-pixel canvas")],
)
def test_cli_errors_are_one_line_and_non_zero(argv, message, capsys):
    code = train.main(argv)
    err = capsys.readouterr().err.strip()
    assert code != 0 and message in err and "\n" not in err and "Traceback" not in err


def test_refuses_to_overwrite_a_run(mnist, tmp_path, capsys):
    assert run(tmp_path, "once", "--samples", "16", "--eval-every", "16") == 0
    assert run(tmp_path, "once", "--samples", "16") == 2
    assert "already holds a run" in capsys.readouterr().err


def test_visualize_refuses_a_range_outside_the_test_set(mnist, tmp_path, capsys):
    assert run(tmp_path, "v", "--samples", "16", "--eval-every", "16") == 0
    capsys.readouterr()
    assert train.main(["visualize", str(tmp_path / "v"), "--first", "9999", "--n", "4"]) == 2
    assert "--first must be in 0..9996" in capsys.readouterr().err


def test_glimpse_episodes_rewards_match_the_loss(mnist):
    from ram.losses import hybrid_loss
    from ram.model import RAMConfig, RecurrentAttention

    args = resolve(Args(task="cluttered60", batch_size=32, recipe=False))
    env = make_env(spec("ram"), args, task_of(args), "train", 32)
    env.reset(seed=0)
    model = RecurrentAttention(RAMConfig(hidden_size=32, g_size=32, hg_size=16, hl_size=16))
    logits, labels, locations, log_pi, b, reward, step_logits = episode(spec("ram"), model, env, greedy=False)
    assert locations.shape == (32, 6, 2) and log_pi.shape == (32, 5) and b.shape == (32, 5)
    assert step_logits.shape == (32, 0, 10)  # the class is named after the last glimpse only
    assert torch.equal(hybrid_loss(logits, labels, log_pi, b).reward, reward)  # the env pays what the loss assumes


@pytest.mark.parametrize("model", ["soft", "soft-glimpse", pytest.param("vit", marks=pytest.mark.slow), "fc", "cnn"])
def test_whole_canvas_models_train_and_evaluate_through_the_same_cli(mnist, tmp_path, model, capsys):
    # Same task, splits, run folder, checkpoints and results as RAM; no Monte-Carlo error (nothing is sampled).
    argv = ["--task", "mnist28", "--model", model, "--glimpses", "2", "--batch-size", "16", "--hidden-size", "32",
            "--samples", "32", "--eval-every", "32", "--eval-batch", "1000", "--threads", "1", "--no-progress",
            "--snapshots", "--run-dir", str(tmp_path / model)]
    assert train.main(argv) == 0
    results = json.loads((tmp_path / model / "results.json").read_text())
    assert 0 <= results["test"]["greedy_error"] <= 100 and "mc_error" not in results["test"]
    capsys.readouterr()
    assert train.main(["evaluate", str(tmp_path / model), "--threads", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["greedy_error"] == results["test"]["greedy_error"]
    drawn = {"soft": "attention", "soft-glimpse": "glimpses", "vit": "attention"}.get(model)
    if drawn:  # written at the end of training, and again on demand
        assert (tmp_path / model / f"{drawn}.png").exists() and (tmp_path / model / f"{drawn}.gif").exists()
        assert train.main(["visualize", str(tmp_path / model), "--n", "2"]) == 0
    else:
        assert train.main(["visualize", str(tmp_path / model)]) == 2
    # The paper has no number for 2 glimpses: the curve needs a target, and has no Monte-Carlo line.
    assert train.main(["curve", str(tmp_path / model), "--threads", "1"]) == 2
    assert "pass --target" in capsys.readouterr().err
    assert train.main(["curve", str(tmp_path / model), "--target", "50", "--threads", "1"]) == 0
    report = json.loads((tmp_path / model / "test_curve.json").read_text())
    assert list(report["reached"]) == ["greedy_error"]
    assert report["points"][-1]["greedy_error"] == results["test"]["greedy_error"]


def test_std_anneals_to_std_final_and_the_agent_keeps_it(mnist, tmp_path):
    assert run(tmp_path, "anneal", "--samples", "64", "--eval-every", "64", "--std", "0.2", "--std-final",
               "0.05") == 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / "anneal" / "tb")).Reload()
    assert acc.Tags()["scalars"] and "train/std" in acc.Tags()["scalars"]
    # One logged point (step 4 of 4): the std used for that step, on the cosine between 0.2 and 0.05.
    (point,) = acc.Scalars("train/std")
    assert point.value == pytest.approx(0.05 + 0.15 * 0.5 * (1 + np.cos(np.pi * 3 / 4)), rel=1e-6)
    # The trained agent, and its Monte-Carlo rollouts, keep the final std.
    assert Agent.from_checkpoint(tmp_path / "anneal" / "agent.pt").model.location.std == 0.05


def test_init_starts_from_a_trained_agent_and_counts_its_samples(mnist, tmp_path, capsys):
    assert run(tmp_path, "base", "--samples", "64", "--eval-every", "64") == 0
    base = checkpoint.load(tmp_path / "base" / "agent.pt")
    # Zero learning rate: the fine-tuned weights are exactly the loaded ones.
    assert run(tmp_path, "tuned", "--samples", "32", "--eval-every", "32", "--lr", "1e-12", "--lr-final", "0",
               "--std", "0.05", "--init", str(tmp_path / "base" / "agent.pt")) == 0
    tuned = checkpoint.load(tmp_path / "tuned" / "agent.pt")
    for name in base["model"]:
        torch.testing.assert_close(tuned["model"][name], base["model"][name], rtol=0, atol=1e-9)
    results = json.loads((tmp_path / "tuned" / "results.json").read_text())
    assert results["init"]["samples"] == 64 and tuned["init_samples"] == 64
    # The minutes behind its start, from the starting run's results.json: what `compare` counts once that run is gone.
    base_results = json.loads((tmp_path / "base" / "results.json").read_text())
    assert results["init"]["minutes"] == base_results["history"][-1]["minutes"]
    capsys.readouterr()
    assert run(tmp_path, "other", "--samples", "32", "--hidden-size", "16", "--init", str(tmp_path / "base")) == 2
    err = capsys.readouterr().err
    assert "different architecture (hidden_size differ" in err and "\n" not in err.strip()
    assert run(tmp_path, "fc", "--samples", "32", "--model", "fc", "--init", str(tmp_path / "base")) == 2
    err = capsys.readouterr().err
    assert "is a ram model; this run's is fc" in err and "\n" not in err.strip()


def test_init_takes_the_checkpoints_architecture_for_the_flags_left_unset(mnist, tmp_path, capsys):
    assert run(tmp_path, "wide", "--samples", "32", "--eval-every", "32", "--glimpse-hidden", "24") == 0
    capsys.readouterr()
    # --glimpse-hidden left unset (the default is 128): the checkpoint's 24, said in one note; the weights load.
    assert run(tmp_path, "tuned", "--samples", "32", "--eval-every", "32", "--init", str(tmp_path / "wide")) == 0
    err = capsys.readouterr().err
    assert f"note: --init {tmp_path / 'wide'}: --glimpse-hidden 24, as its run" in err
    assert json.loads((tmp_path / "tuned" / "config.json").read_text())["args"]["glimpse_hidden"] == 24
    # Given explicitly, a width that does not fit is still the one-line mistake it was.
    assert run(tmp_path, "narrow", "--samples", "32", "--glimpse-hidden", "16", "--init", str(tmp_path / "wide")) == 2
    assert "different architecture (hg_size, hl_size differ" in capsys.readouterr().err
    # From Python (no command line), a value other than the default counts as set; a shipped agent.pt serves too.
    from ram.config import Args, resolve
    from ram.runs import adopt_architecture

    base = {"task": "mnist28", "glimpses": 3, "hidden_size": 32, "init": str(tmp_path / "wide" / "agent.pt")}
    args, note = adopt_architecture(resolve(Args(**base)), set())
    assert args.glimpse_hidden == 24 and "--glimpse-hidden 24" in note
    args, note = adopt_architecture(resolve(Args(**base, glimpse_hidden=16)), set())
    assert args.glimpse_hidden == 16 and note == ""


def test_snapshots_and_the_test_curve_of_a_fine_tuned_run(mnist, tmp_path, capsys):
    assert run(tmp_path, "base", "--samples", "64", "--eval-every", "64") == 0
    assert run(tmp_path, "tuned", "--samples", "64", "--eval-every", "32", "--snapshots",
               "--init", str(tmp_path / "base" / "agent.pt")) == 0
    folder = tmp_path / "tuned"
    snapshots = sorted((folder / "snapshots").glob("*.pt"))
    assert [checkpoint.load(p)["samples"] for p in snapshots] == [32, 64]
    results = json.loads((folder / "results.json").read_text())
    assert [checkpoint.load(p)["minutes"] for p in snapshots] == [h["minutes"] for h in results["history"]]
    capsys.readouterr()
    assert train.main(["curve", str(folder), "--target", "100", "--mc-samples", "2", "--threads", "1"]) == 0
    assert "greedy reached 100.0%: by " in capsys.readouterr().out
    report = json.loads((folder / "test_curve.json").read_text())
    base = json.loads((tmp_path / "base" / "results.json").read_text())
    # The fine-tuned run's clock starts where the run it started from stopped.
    assert [p["samples"] for p in report["points"]] == [64 + 32, 64 + 64]
    assert [p["minutes"] for p in report["points"]] == pytest.approx(
        [base["history"][-1]["minutes"] + h["minutes"] for h in results["history"]])
    # The snapshot validation chose measures what the run's own test measured.
    chosen = next(p for p in report["points"] if p["samples"] == 64 + results["samples"])
    assert (chosen["greedy_error"], chosen["mc_error"]) == (results["test"]["greedy_error"],
                                                            results["test"]["mc_error"])
    # A 100% target is met at once: by the first snapshot, after nothing.
    assert report["reached"]["greedy_error"] == {**report["points"][0], "after_minutes": None}
    assert (folder / "test_curve.png").stat().st_size > 1000
    assert train.main(["curve", str(tmp_path / "base")]) == 2
    assert "has no snapshots: train it with --snapshots" in capsys.readouterr().err


def test_a_resumed_run_keeps_its_snapshots_unless_told_otherwise(mnist, tmp_path):
    common = ["--samples", "96", "--eval-every", "32"]
    assert run(tmp_path, "snap", *common, "--snapshots", "--stop-after", "32") == 0
    assert run(tmp_path, "snap", "--resume", "--stop-after", "32") == 0  # no flag: the run's own setting
    assert run(tmp_path, "snap", "--resume", "--no-snapshots") == 0
    assert [checkpoint.load(p)["samples"] for p in sorted((tmp_path / "snap" / "snapshots").glob("*.pt"))] == [32, 64]


def test_curve_refuses_a_file_that_is_not_a_snapshot_of_the_run(mnist, tmp_path, capsys):
    assert run(tmp_path, "mixed", "--samples", "32", "--eval-every", "32", "--snapshots") == 0
    shutil.copy(tmp_path / "mixed" / "best.pt", tmp_path / "mixed" / "snapshots" / "x.pt")  # no "minutes"
    capsys.readouterr()
    assert train.main(["curve", str(tmp_path / "mixed"), "--target", "50", "--threads", "1"]) == 2
    err = capsys.readouterr().err
    assert "x.pt is not a snapshot of this run" in err and "Traceback" not in err


def test_compare_and_curve_refuse_an_unreadable_results_json_in_one_line(mnist, tmp_path, capsys):
    assert run(tmp_path, "base", "--samples", "32", "--eval-every", "32") == 0
    assert run(tmp_path, "tuned", "--samples", "32", "--eval-every", "32", "--snapshots",
               "--init", str(tmp_path / "base")) == 0
    for text, message in (("{not json", "not a readable results.json (JSONDecodeError)"),
                          ('{"history": []}', "not a results.json written by train.py"),
                          (json.dumps({"history": [{"samples": 1, "minutes": 1}], "train_minutes": 1,
                                       "test": {"greedy_error": 1}}), "not a results.json written by train.py")):
        (tmp_path / "base" / "results.json").write_text(text)  # the starting run's, read for the lineage
        for argv in (["curve", str(tmp_path / "tuned"), "--target", "50", "--threads", "1"],
                     ["compare", str(tmp_path / "tuned"), "--out", str(tmp_path / "cmp"), "--threads", "1"]):
            capsys.readouterr()
            assert train.main(argv) == 2, argv
            err = capsys.readouterr().err.strip()
            assert message in err and "results.json" in err and "\n" not in err and "Traceback" not in err, err


def test_snapshots_of_an_ema_run_hold_the_average(mnist, tmp_path):
    assert run(tmp_path, "ema", "--samples", "64", "--eval-every", "32", "--ema", "0.9", "--snapshots") == 0
    last = checkpoint.load(tmp_path / "ema" / "last.pt")
    snapshot = checkpoint.load(sorted((tmp_path / "ema" / "snapshots").glob("*.pt"))[-1])
    # What validation evaluated (and `curve` will test) is the average, not the weights the optimiser moved.
    assert snapshot["model"].keys() == last["model"].keys() and "trained" not in snapshot
    assert all(torch.equal(snapshot["model"][k], last["model"][k]) for k in last["model"])
    assert any(not torch.equal(last["model"][k], last["trained"][k]) for k in last["model"])


@pytest.mark.slow
def test_curve_of_an_unfinished_run_and_of_one_whose_starting_run_is_gone(mnist, tmp_path, capsys):
    assert run(tmp_path, "going", "--samples", "64", "--eval-every", "32", "--snapshots", "--stop-after", "32") == 0
    assert not (tmp_path / "going" / "results.json").exists()
    assert train.main(["curve", str(tmp_path / "going"), "--target", "100", "--threads", "1"]) == 0
    report = json.loads((tmp_path / "going" / "test_curve.json").read_text())
    assert [p["samples"] for p in report["points"]] == [32] and report["note"].endswith("minutes of this run alone")
    # A fine-tuned run whose starting run is not at hand: shifted by the samples and minutes it recorded for its start.
    assert run(tmp_path, "base", "--samples", "32", "--eval-every", "32") == 0
    assert run(tmp_path, "tuned", "--samples", "32", "--eval-every", "32", "--snapshots",
               "--init", str(tmp_path / "base" / "agent.pt")) == 0
    shutil.rmtree(tmp_path / "base")
    capsys.readouterr()
    assert train.main(["curve", str(tmp_path / "tuned"), "--target", "100", "--threads", "1"]) == 0
    report = json.loads((tmp_path / "tuned" / "test_curve.json").read_text())
    tuned = json.loads((tmp_path / "tuned" / "results.json").read_text())
    assert [p["samples"] for p in report["points"]] == [32 + 32]
    # its own minutes after those it recorded for its start, while the starting run was at hand
    start = tuned["init"]["minutes"]
    assert [p["minutes"] for p in report["points"]] == pytest.approx([start + h["minutes"] for h in tuned["history"]])
    assert "(not at hand; the minutes it recorded)" in report["note"]


def test_no_second_validation_pass_just_after_a_scheduled_one(mnist, tmp_path):
    # 5 steps of 16, evaluated every 4 steps: step 5 is a quarter period after step 4, so it is not evaluated again.
    assert run(tmp_path, "end", "--samples", "80", "--eval-every", "64", "--batch-size", "16") == 0
    results = json.loads((tmp_path / "end" / "results.json").read_text())
    assert [h["samples"] for h in results["history"]] == [64]
    assert checkpoint.load(tmp_path / "end" / "last.pt")["step"] == 5
    # Half a period or more after it, the end of the run is evaluated.
    assert run(tmp_path, "end2", "--samples", "96", "--eval-every", "64", "--batch-size", "16") == 0
    assert [h["samples"] for h in json.loads((tmp_path / "end2" / "results.json").read_text())["history"]] == [64, 96]


def test_a_non_finite_loss_stops_the_run_in_one_line_and_keeps_the_last_good_state(mnist, tmp_path, capsys,
                                                                                   monkeypatch):
    assert run(tmp_path, "nan", "--samples", "64", "--eval-every", "32", "--stop-after", "32") == 0
    good = checkpoint.load(tmp_path / "nan" / "last.pt")
    from ram import episodes as ram_episodes

    real = ram_episodes.hybrid_loss

    def poisoned(*a, **kw):
        losses = real(*a, **kw)
        return losses._replace(total=losses.total * float("nan"))

    monkeypatch.setattr(ram_episodes, "hybrid_loss", poisoned)
    capsys.readouterr()
    assert train.main(["--run-dir", str(tmp_path / "nan"), "--resume", "--no-progress", "--threads", "1"]) == 1
    err = capsys.readouterr().err.strip()
    assert "the loss became non-finite by 32 samples" in err and "\n" not in err
    kept = checkpoint.load(tmp_path / "nan" / "last.pt")
    assert kept["step"] == good["step"] and all(torch.equal(kept["model"][k], good["model"][k]) for k in good["model"])


def test_default_run_folders_differ_by_model_and_policy():
    folders = {default_run_dir(parse_args(argv), task_of(parse_args(argv))) for argv in (
        [], ["--model", "soft"], ["--model", "cnn"], ["--policy", "random", "--glimpses", "8"], ["--glimpses", "8"],
        ["--clutter-spread", "4"])}
    assert folders == {"runs/cluttered60-6g-s0", "runs/cluttered60-soft-s0", "runs/cluttered60-cnn-s0",
                       "runs/cluttered60-8g-random-s0", "runs/cluttered60-8g-s0", "runs/cluttered60-6g-spread4-s0"}


def test_in_a_log_the_progress_bar_updates_rarely(mnist, tmp_path, capsys):
    # stderr is captured, not a terminal: 200 steps within a minute draw the bar at its start, around the one
    # validation line (cleared and drawn again) and at its end, not after every few steps.
    argv = [a for a in TINY if a != "--no-progress"]
    assert train.main([*argv, "--samples", "3200", "--eval-every", "3200", "--run-dir", str(tmp_path / "log")]) == 0
    err = capsys.readouterr().err
    assert err.count("\r") <= 5 and "200/200" in err


@pytest.mark.parametrize("train_data", ["env", "device"])
def test_rollouts_play_each_canvas_k_times_and_train(mnist, tmp_path, train_data):
    # K = 4 rollouts of 4 canvases a step: the groups of the batch share canvas and label, each with its own path.
    args = resolve(Args(task="cluttered60", recipe=False, glimpses=3, batch_size=16, rollouts=4, hidden_size=16,
                        g_size=16, glimpse_hidden=8, train_data=train_data, device="cpu"))
    task, s = task_of(args), spec("ram")
    env = make_env(s, args, task, "train", 16)
    torch.manual_seed(0)
    model, _ = s.build(args, task, 10)
    if train_data == "env":
        env.reset(seed=3)
    ep = episode(s, model, env, greedy=False, seed=3 if train_data == "env" else None)
    groups = ep.labels.view(4, 4)
    assert (groups == groups[:, :1]).all() and len(set(groups[:, 0].tolist())) > 1
    paths = ep.locations[:, 1:].reshape(4, 4, -1)
    assert all(len({tuple(p.tolist()) for p in paths[g]}) == 4 for g in range(4))  # four different paths
    env.close()
    assert run(tmp_path, "loo", "--rollouts", "4", "--train-data", train_data, "--samples", "64",
               "--eval-every", "32") == 0
    saved = json.loads((tmp_path / "loo" / "config.json").read_text())["args"]
    assert saved["rollouts"] == 4


def test_a_run_with_the_glimpse_loss_trains_evaluates_and_reloads(mnist, tmp_path):
    assert run(tmp_path, "g", "--samples", "32", "--eval-every", "32", "--glimpse-loss", "0.5") == 0
    state = checkpoint.load(tmp_path / "g" / "agent.pt")
    assert state["model_config"]["classify_every_glimpse"] and state["args"]["glimpse_loss"] == 0.5
    assert train.main(["evaluate", str(tmp_path / "g"), "--mc-samples", "2", "--threads", "1"]) == 0


@pytest.mark.parametrize("model_name, output", [("ram", "classifier.fc"), ("dram", "classifier.fc"),
                                                 ("cnn", "out"), ("vit", "head")])
def test_init_from_another_tasks_labels_keeps_all_but_the_output_layer(tmp_path, model_name, output):
    """addition100's 19 sums started from a pairs100 agent (10 digits; a whole-canvas model's 2 heads of 10): every
    tensor but the output layer's comes from the checkpoint; the output layer keeps this model's fresh start. Any
    other difference is refused in one line."""
    import dataclasses

    from ram.kinds import kind_of
    from ram.runs import load_init

    def built(task_name, seed, **kw):
        args = resolve(Args(task=task_name, model=model_name, hidden_size=32, init=str(tmp_path / "pairs.pt"), **kw))
        task = task_of(args)
        n = kind_of(task).outputs(spec(model_name), task, task.n_classes(10))
        torch.manual_seed(seed)
        return (*spec(model_name).build(args, task, n), args)

    policy = spec(model_name).policy
    pairs, pairs_config, pairs_args = built("pairs100", 0, **({"loc_limit": 0.0} if policy else {}))
    checkpoint.save({"args": dataclasses.asdict(pairs_args), "task": {}, "model": pairs.state_dict(), "samples": 5,
                     "model_config": dataclasses.asdict(pairs_config)}, tmp_path / "pairs.pt")
    # A gradient route of its own (--loc-limit) is not architecture: the checkpoint, trained without, still loads.
    sums, sums_config, args = built("addition100", 1, **({"loc_limit": 2.0} if policy else {}))
    assert not policy or (sums.location.limit, pairs.location.limit) == (2.0, 0.0)
    before = {k: v.clone() for k, v in sums.state_dict().items()}
    samples, note = load_init(sums, sums_config, args)
    assert samples == 5
    fresh = sorted(k for k in before if k.startswith(output + "."))
    assert fresh and all(k.endswith((".weight", ".bias")) for k in fresh)
    for k, v in sums.state_dict().items():
        torch.testing.assert_close(v, before[k] if k in fresh else pairs.state_dict()[k], rtol=0, atol=0)
    n_pairs = pairs_config.n_classes
    assert note == f"--init {tmp_path / 'pairs.pt'}: {n_pairs} outputs there, 19 here; {', '.join(fresh)} start fresh"
    # A checkpoint that also differs elsewhere (a layer of another shape) is refused, not half loaded.
    broken = dict(pairs.state_dict())
    name = next(k for k in broken if not k.startswith(output + ".") and broken[k].dim() >= 2)
    broken[name] = torch.zeros(broken[name].shape[0] + 1, *broken[name].shape[1:])
    checkpoint.save({"args": dataclasses.asdict(pairs_args), "task": {}, "model": broken, "samples": 5,
                     "model_config": dataclasses.asdict(pairs_config)}, tmp_path / "pairs.pt")
    with pytest.raises(UsageError, match=f"beyond the outputs do not fit this model \\({name}\\)"):
        load_init(sums, sums_config, args)
