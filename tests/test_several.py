"""Several objects on a canvas (Ba et al. 2015): the tasks (pairs100, addition100), their envs, the sequence loss
and its "up to the first wrong label" rule, the model's labels at each object's last glimpse, and tiny runs."""

import hashlib
import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch.nn import functional as F

import envs  # noqa: F401 - registers the ram/ environments
import train
from envs.cluttered_mnist import ClutteredMNISTEnv, ClutteredMNISTVectorEnv
from envs.datasets import as_dataset
from envs.tasks import PRESETS, SEVERAL, Task, fit, fixed, get_task, place, reading_order, sample
from ram import checkpoint
from ram.config import Args, task_of
from ram.losses import sequence_loss
from ram.model import RAMConfig, RecurrentAttention


def digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


# The fixed sets of the two-digit canvas (pairs100 and addition100 share them: the geometry decides the set).
PAIRS_SHA256 = {"test": "ce1871b32a70641e", "val": "ff13a8101ed37e68"}


def test_the_objects_never_overlap_and_are_in_reading_order(tiny_mnist):
    canvases = sample(tiny_mnist, get_task("pairs100", n_clutter=0, n_objects=3), np.random.PCG64(0), 500)
    assert canvases.labels.shape == (500, 3) and canvases.positions.shape == (500, 3, 2)
    x, y = canvases.positions[..., 0], canvases.positions[..., 1]
    for i, j in ((0, 1), (0, 2), (1, 2)):  # 28-pixel squares: apart along x or along y
        assert ((abs(x[:, i] - x[:, j]) >= 28) | (abs(y[:, i] - y[:, j]) >= 28)).all()
    assert ((x[:, 0] < x[:, 1]) | ((x[:, 0] == x[:, 1]) & (y[:, 0] < y[:, 1]))).all()  # left to right, then down
    assert (np.diff(x, axis=1) >= 0).all()
    # Each object is pasted whole where its position says (no clutter, no overlap: the canvas holds it as it is).
    images, labels = tiny_mnist.train_images, tiny_mnist.train_labels
    for n in range(5):
        for k in range(3):
            px, py = canvases.positions[n, k]
            patch = canvases.images[n, py : py + 28, px : px + 28]
            match = [i for i in range(len(images)) if np.array_equal(images[i], patch)]
            assert match and canvases.labels[n, k] in labels[match]


def test_placement_is_rejection_sampling_and_sorting_keeps_pairs_together():
    pos = place(np.random.PCG64(1), 1000, 2, 60, 28)  # a tight canvas: most draws overlap and are drawn again
    apart = (abs(pos[:, 0] - pos[:, 1]) >= 28).any(1)
    assert apart.all()
    objects = np.array([[10, 20], [30, 40]])
    corners = np.array([[[50, 0], [0, 0]], [[0, 5], [0, 1]]])
    ordered, where = reading_order(objects, corners)
    np.testing.assert_array_equal(ordered, [[20, 10], [40, 30]])
    np.testing.assert_array_equal(where, [[[0, 0], [50, 0]], [[0, 1], [0, 5]]])
    # The same rules on torch tensors with a torch.Generator (canvases made on a device).
    pos = place(torch.Generator().manual_seed(0), 64, 2, 60, 28)
    assert isinstance(pos, torch.Tensor) and ((pos[:, 0] - pos[:, 1]).abs() >= 28).any(1).all()


@pytest.mark.parametrize("split", ["test", "val"])
def test_the_fixed_sets_of_two_digits_are_pinned_and_shared_by_both_tasks(mnist, split):
    pairs = fixed(mnist, SEVERAL["pairs100"], split)
    assert pairs.labels.shape == (len(pairs.images), 2)
    first = mnist.test_labels if split == "test" else mnist.train_labels[55000:]
    left_first = pairs.positions[:, 0, 0] <= pairs.positions[:, 1, 0]
    # Canvas i shows image i of the split and another one, in reading order.
    assert ((pairs.labels[:, 0] == first) | (pairs.labels[:, 1] == first)).all() and left_first.all()
    assert digest(pairs.images, pairs.labels) == PAIRS_SHA256[split]
    summed = fixed(mnist, SEVERAL["addition100"], split, 0, 100)
    np.testing.assert_array_equal(summed.images, pairs.images[:100])


def test_tasks_of_several_objects_say_what_their_episode_names():
    pairs, addition = SEVERAL["pairs100"], SEVERAL["addition100"]
    assert (pairs.steps, pairs.label_steps, pairs.n_classes(10)) == (8, (4, 8), 10)
    assert (addition.steps, addition.label_steps, addition.n_classes(10)) == (8, (8,), 19)
    labels = np.array([[3, 9], [0, 0]])
    np.testing.assert_array_equal(pairs.targets(labels), labels)
    np.testing.assert_array_equal(addition.targets(labels), [[12], [0]])
    assert PRESETS["cluttered60"].label_steps == (6,) and PRESETS["cluttered60"].steps == 6


@pytest.mark.parametrize("changes, match", [
    ({"kind": "classify", "n_objects": 2}, "classify task holds 1 object"),
    ({"kind": "sum", "n_objects": 1}, "sum task holds 2 or more"),
    ({"n_objects": 1}, "sequence task holds 2 or more"),
])
def test_bad_object_counts_are_refused(changes, match):
    with pytest.raises(ValueError, match=match):
        Task("t", canvas_size=100, kind=changes.pop("kind", "sequence"), **changes)


def test_objects_that_cannot_fit_side_by_side_are_refused_in_one_line(tiny_mnist):
    with pytest.raises(ValueError, match="5 objects of 28 pixels do not fit"):
        fit(get_task("pairs100", canvas_size=60, n_objects=5), as_dataset(tiny_mnist))


def test_a_sequence_pays_each_right_label_after_its_object_s_glimpses(tiny_mnist):
    env = ClutteredMNISTEnv("pairs100", split="test", mnist=tiny_mnist)
    env.reset(seed=0, options={"index": 3})
    truth = env.unwrapped._episodes.labels[0]
    rewards, info = [], {}
    for t in range(1, 9):  # the first label right, the second wrong
        label = truth[0] if t == 4 else (truth[1] + 1) % 10 if t == 8 else (truth[0] + 1) % 10
        _, reward, terminated, _, info = env.step({"location": np.zeros(2, np.float32), "label": label})
        rewards.append(reward)
        assert terminated == (t == 8)
    assert rewards == [0, 0, 0, 1, 0, 0, 0, 0]
    np.testing.assert_array_equal(info["labels"], truth)
    assert info["correct"] is False


def test_a_sum_pays_the_sum_at_the_last_step(tiny_mnist):
    env = ClutteredMNISTEnv("addition100", split="test", mnist=tiny_mnist)
    env.reset(seed=0)
    total = int(env._episodes.labels[0].sum())
    assert env.action_space["label"].n == 19
    for _ in range(8):
        _, reward, terminated, _, info = env.step({"location": np.zeros(2, np.float32), "label": total})
    assert (reward, terminated, info) == (1.0, True, {"label": total, "correct": True})


def test_the_vector_env_matches_the_single_env_on_one_seed(tiny_mnist):
    single = ClutteredMNISTEnv("pairs100", mnist=tiny_mnist)
    vec = ClutteredMNISTVectorEnv(1, "pairs100", mnist=tiny_mnist)
    rng = np.random.default_rng(3)
    obs, _ = single.reset(seed=5)
    vobs, _ = vec.reset(seed=5)
    np.testing.assert_array_equal(obs["glimpse"], vobs["glimpse"][0])
    for _ in range(8):
        action = {"location": rng.uniform(-1, 1, 2).astype(np.float32), "label": int(rng.integers(10))}
        obs, reward, terminated, _, info = single.step(action)
        vobs, vreward, vterminated, _, vinfo = vec.step({"location": action["location"][None],
                                                         "label": np.array([action["label"]])})
        np.testing.assert_array_equal(obs["glimpse"], vobs["glimpse"][0])
        assert (reward, terminated) == (vreward[0], vterminated[0])
    np.testing.assert_array_equal(info["labels"], vinfo["labels"][0])
    assert vinfo["_labels"][0] and info["correct"] == vinfo["correct"][0]
    assert gym.make_vec("ram/Pairs100-v0", num_envs=2, mnist=tiny_mnist).single_action_space["label"].n == 10


def test_the_sequence_loss_counts_up_to_the_first_wrong_label():
    # Two episodes of T = 4 glimpses naming labels at steps 2 and 4: the first right twice, the second wrong first.
    logits = torch.tensor([[[3.0, 0, 0], [0, 2.0, 0]], [[0, 0, 1.0], [0, 0, 4.0]]])
    labels = torch.tensor([[0, 1], [1, 2]])
    log_pi = torch.tensor([[-1.0, -2.0, -3.0], [-4.0, -5.0, -6.0]])
    b = torch.zeros(2, 3)
    out = sequence_loss(logits, labels, log_pi, b, (2, 4))
    # Returns to go at steps 1..3: [2, 1, 1] and 0 (nothing is paid once a label is wrong); the second episode's
    # locations after its wrong label (steps 2 and 3) are masked: -(-1*2 - 2*1 - 3*1 + -4*0) / 2.
    assert out.reinforce.item() == pytest.approx(3.5)
    log_p = F.log_softmax(logits, -1)
    # Cross-entropy: both labels of the first episode, only the (wrong) first label of the second.
    expected = -(log_p[0, 0, 0] + log_p[0, 1, 1] + log_p[1, 0, 1]) / 2
    assert out.classification.item() == pytest.approx(expected.item())
    np.testing.assert_array_equal(out.reward.numpy(), [1.0, 0.0])
    # A baseline of 0.5 everywhere: regressed on the 4 live steps, (1.5^2 + 0.5^2 + 0.5^2 + 0.5^2) / 4.
    half = sequence_loss(logits, labels, log_pi, torch.full((2, 3), 0.5), (2, 4))
    assert half.baseline.item() == pytest.approx(0.75)
    assert half.reinforce.item() == pytest.approx(-(-1 * 1.5 - 2 * 0.5 - 3 * 0.5 - 4 * -0.5) / 2)
    # Two rollouts of one canvas: the leave-one-out baseline, step by step: [2, 1, 1] - [0, 0, 0] and its negative.
    loo = sequence_loss(logits, labels, log_pi, b, (2, 4), rollouts=2)
    assert loo.reinforce.item() == pytest.approx(-((-1 * 2 - 2 * 1 - 3 * 1) + (-4 * -2)) / 2)
    # credit "prob": each counted label pays its probability instead of 0/1, the first wrong one too (graded).
    prob = sequence_loss(logits, labels, log_pi, b, (2, 4), credit="prob")
    p = log_p.exp()
    G1 = p[0, 0, 0] + p[0, 1, 1]
    expected = -(-1 * G1 - 2 * p[0, 1, 1] - 3 * p[0, 1, 1] - 4 * p[1, 0, 1]) / 2
    assert prob.reinforce.item() == pytest.approx(expected.item())
    # A whole-canvas model names both labels at once: every label's cross-entropy counts.
    every = sequence_loss(logits, labels, log_pi[:, :0], b[:, :0], (1, 2), first_wrong=False)
    assert every.classification.item() == pytest.approx(-(log_p[0, :, :].gather(1, labels[0, :, None]).sum()
                                                          + log_p[1].gather(1, labels[1, :, None]).sum()).item() / 2)
    assert every.reinforce.item() == every.baseline.item() == 0
    with pytest.raises(ValueError, match="label steps"):
        sequence_loss(logits, labels, log_pi, b, (4,))


def test_sequence_object_and_unordered_errors_count_what_they_say():
    from ram.episodes import miscounts

    predicted = torch.tensor([[1, 2], [2, 1], [3, 3], [5, 5]])
    labels = torch.tensor([[1, 2], [1, 2], [3, 4], [5, 5]])
    # wrong sequences: rows 1 and 2; wrong labels: 2 + 1; wrong as sets: row 2 only (row 1 is the right pair swapped).
    assert miscounts(predicted, labels) == (2, 3, 1)


def test_an_earlier_object_s_label_trains_the_classifier_core_and_glimpses_never_the_policy():
    torch.manual_seed(0)
    model = RecurrentAttention(RAMConfig(glimpse_shape=(2, 8, 8), hidden_size=16, g_size=16, hg_size=8, hl_size=8,
                                         loc_hidden=8))
    from envs.retina import Retina

    roll = model.rollout(torch.rand(4, 40, 40), torch.zeros(4, 2), Retina(g=8, k=2, s=2), 4, label_steps=(2, 4))
    assert roll.label_logits.shape == (4, 2, 10)
    torch.testing.assert_close(roll.label_logits[:, 1], roll.logits)
    F.cross_entropy(roll.label_logits[:, 0], torch.zeros(4, dtype=torch.long)).backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    assert all(grads[n] is None or not grads[n].any() for n in grads if n.startswith(("location", "baseline")))
    assert all(grads[n] is not None and grads[n].any() for n in ("classifier.fc.weight", "glimpse.fc_rho.weight"))
    assert any(grads[n] is not None and grads[n].any() for n in grads if n.startswith("core"))


TINY = ["--batch-size", "16", "--hidden-size", "32", "--g-size", "32", "--glimpse-hidden", "16", "--eval-batch", "500",
        "--mc-samples", "2", "--threads", "1", "--no-progress", "--samples", "32", "--eval-every", "32"]


def test_a_tiny_pairs_run_trains_evaluates_and_draws_each_object_s_glimpses(mnist, tmp_path, capsys):
    folder = tmp_path / "pairs"
    assert train.main(["--task", "pairs100", "--glimpses", "2", *TINY, "--run-dir", str(folder)]) == 0
    results = json.loads((folder / "results.json").read_text())
    assert results["task"]["n_objects"] == 2 and results["task"]["kind"] == "sequence"
    test = results["test"]
    assert test["greedy_error"] == test["sequence_error"] and 0 <= test["object_error"] <= test["sequence_error"]
    assert 0 <= test["mc_object_error"] <= test["mc_error"] <= 100 and test["n"] == 10000
    assert test["unordered_error"] <= test["sequence_error"] and test["mc_unordered_error"] <= test["mc_error"]
    assert {"glimpses.png", "glimpses.gif", "agent.pt"} <= {p.name for p in folder.iterdir()}
    capsys.readouterr()
    assert train.main(["evaluate", str(folder), "--split", "val", "--mc-samples", "0", "--threads", "1"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["n"] == 5000 and "object_error" in evaluated and "mc_error" not in evaluated
    from ram.agent import Agent

    pred = Agent.from_checkpoint(folder).predict(fixed(mnist, SEVERAL["pairs100"], "test", 0, 3).images)
    assert pred.labels.shape == (3, 2) and pred.locations.shape == (3, 4, 2) and pred.probs.shape == (3, 2, 10)
    # The sum started from this pairs agent: train.py says which tensors start fresh (the classifier's 10 -> 19).
    assert train.main(["--task", "addition100", "--glimpses", "2", *TINY, "--init", str(folder),
                       "--run-dir", str(tmp_path / "sum")]) == 0
    said = capsys.readouterr().out
    assert "10 outputs there, 19 here; classifier.fc.bias, classifier.fc.weight start fresh" in said


def test_a_whole_canvas_model_reads_pairs_with_a_head_per_digit(mnist, tmp_path, capsys):
    folder = tmp_path / "cnn"
    assert train.main(["--task", "pairs100", "--model", "cnn", *TINY, "--run-dir", str(folder)]) == 0
    capsys.readouterr()
    assert train.main(["visualize", str(folder), "--threads", "1"]) == 2  # a user's request, refused in one line
    assert capsys.readouterr().err.strip() == "train.py: error: a cnn model has no attention to draw"
    results = json.loads((folder / "results.json").read_text())
    assert 0 <= results["test"]["object_error"] <= results["test"]["sequence_error"] <= 100
    assert "mc_error" not in results["test"]  # nothing stochastic to average
    from ram.runs import load_model

    state = checkpoint.load(folder / "best.pt")
    assert state["model_config"]["n_classes"] == 20  # two heads of 10
    args = Args(**{**state["args"]})
    model = load_model(state, args, task_of(args))
    assert model(torch.zeros(1, 100, 100)).logits.shape == (1, 20)


@pytest.mark.parametrize("model", ["ram", "cnn"])
def test_a_tiny_addition_run_names_sums(mnist, tmp_path, model):
    folder = tmp_path / model
    assert train.main(["--task", "addition100", "--glimpses", "2", "--model", model, *TINY,
                       "--run-dir", str(folder)]) == 0
    results = json.loads((folder / "results.json").read_text())
    assert (results["task"]["kind"], results["task"]["n_objects"]) == ("sum", 2)
    assert 0 <= results["test"]["greedy_error"] <= 100 and "object_error" not in results["test"]
    assert checkpoint.load(folder / "best.pt")["model_config"]["n_classes"] == 19  # the sums 0..18


@pytest.mark.parametrize("argv, message", [
    (["--task", "pairs100", "--glimpse-loss", "1"], "applies to one object per canvas"),
    (["--task", "catch", "--objects", "2"], "takes no --glimpses"),
    (["--task", "cluttered60", "--objects", "2"], "classify task holds 1 object"),
    (["--task", "pairs100", "--objects", "0"], "--objects must be"),
    (["--task", "pairs100", "--model", "dram", "--policy", "random"], "DRAM's locations are learned"),
    (["--task", "pairs100", "--model", "dram", "--start", "random"], "pass --start center"),
    (["--task", "pairs100", "--model", "dram", "--glimpses", "1"], "--glimpses 2 or more"),
    (["--task", "pairs100", "--reward", "log_prob"], "--reward log_prob pays every label"),
    (["--model", "dram", "--glimpse-loss", "1"], "applies to --model ram"),
    (["--task", "pairs100", "--train-data", "device"], "pairs100 is played in its env"),
])
def test_bad_flags_for_several_objects_are_one_line_errors(argv, message, capsys):
    assert train.main([*argv, "--samples", "16"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_objects_that_random_placement_cannot_fit_are_a_one_line_error(mnist, tmp_path, capsys):
    # 3 x 28 fits a 60-pixel canvas only in rare exact arrangements: refused before any training, in one line.
    argv = ["--task", "pairs100", "--objects", "3", "--canvas-size", "60", "--run-dir", str(tmp_path / "r")]
    assert train.main([*argv, "--samples", "16"]) == 2
    err = capsys.readouterr().err
    assert "could not place 3 objects of 28 pixels" in err and len(err.strip().splitlines()) == 1


def test_each_glimpse_model_gets_its_own_default_run_folder():
    from ram.config import parse_args, task_of
    from ram.runs import default_run_dir

    names = [default_run_dir(a, task_of(a)) for a in (parse_args(["--task", "pairs100"]),
                                                       parse_args(["--task", "pairs100", "--model", "dram"]),
                                                       parse_args(["--task", "pairs100", "--model", "dram",
                                                                   "--no-context"]))]
    assert names == ["runs/pairs100-4g-s0", "runs/pairs100-4g-dram-s0", "runs/pairs100-4g-dram-nocontext-s0"]


@pytest.mark.slow
def test_compare_measures_runs_of_pairs_side_by_side(mnist, tmp_path, capsys):
    for model in ("ram", "cnn"):
        assert train.main(["--task", "pairs100", "--glimpses", "1", "--model", model, *TINY,
                           "--run-dir", str(tmp_path / model)]) == 0
    out = tmp_path / "report"
    assert train.main(["compare", str(tmp_path / "ram"), str(tmp_path / "cnn"), "--out", str(out), "--canvases",
                       "100,200", "--repeats", "1", "--shifts", "50", "--threads", "1"]) == 0
    report = json.loads((out / "report.json").read_text())
    ram, cnn = report["models"]
    assert (ram["name"], cnn["name"]) == ("ram pairs100 T=1", "cnn pairs100")
    assert ram["macs"] < cnn["macs"] and ram["values"] == 2 * 4 * 144  # 2 glimpses of 4 scales of 12 x 12
    assert 0 <= ram["object"] <= ram["greedy"] and set(report["robustness"][0]["shifts"]) >= {"clutter x2"}
    assert "sequence errors" in (out / "report.md").read_text()


def test_a_sums_glimpses_are_coloured_in_blocks_of_one_objects_glimpses(mnist):
    """addition100 names one label after two objects' worth of glimpses (4 each): the picture colours glimpses 1-4
    in tab10's first colour and 5-8 in its second, as the pairs' picture does (which digit each block finds is the
    agent's choice)."""
    from matplotlib.colors import to_rgba

    from ram.config import resolve
    from ram.plots import OBJECTS
    from ram.registry import spec

    args = resolve(Args(task="addition100", hidden_size=16))
    task = task_of(args)
    model, _ = spec("ram").build(args, task, 19)
    canvases = fixed(as_dataset(mnist), task, "test", 0, 2)
    drawing = spec("ram").draw(model, args, task, canvases.images, task.targets(canvases.labels)[:, 0])
    ax = drawing.figure(task.steps).axes[0]
    colours = [to_rgba(t.get_color()) for t in ax.texts]  # the glimpse numbers 1..8, in order
    assert colours == [OBJECTS(0)] * 4 + [OBJECTS(1)] * 4


def test_a_glimpse_model_summing_from_scratch_is_told_of_the_pairs_start(mnist, tmp_path, capsys):
    from ram.config import parse_args
    from ram.kinds import kind_named
    from ram.registry import spec

    def advice(*argv):
        args = parse_args(["--task", "addition100", *argv])
        return kind_named("sum").advice(args, spec(args.model))

    assert advice().endswith("starts from a pairs100 agent: --init runs/pairs100-4g-s0")
    assert advice("--model", "dram").endswith("--init runs/pairs100-4g-dram-s0")  # the pairs agent of its own model
    for argv in (["--init", "runs/pairs100-4g-s0"], ["--model", "cnn"]):
        assert advice(*argv) == ""
    assert capsys.readouterr().err == ""  # checking the flags says nothing; train.py says it, once, on stderr
    assert train.main(["--task", "addition100", "--glimpses", "1", *TINY, "--run-dir", str(tmp_path / "sum")]) == 0
    err = capsys.readouterr().err
    assert err.count("train.py: note: a glimpse model learned no sums from scratch") == 1


def test_pictures_of_pairs_name_both_digits_in_reading_order_for_every_model_that_draws(mnist):
    """The sequence kind draws through the classifiers' path (``draw_canvases``): every model with a picture titles
    each canvas "pred A B / true C D", both digits in reading order, the prediction being what the model names (a
    glimpse model's greedy reading; a whole-canvas model's two heads), in a picture of all the task's steps; the
    CNN, which has no attention, has nothing to draw."""
    from ram.agent import Agent
    from ram.config import resolve
    from ram.kinds import kind_of
    from ram.registry import predicted, spec

    task = SEVERAL["pairs100"]
    canvases = fixed(as_dataset(mnist), task, "test", 0, 2)
    truth = [" ".join(map(str, row)) for row in canvases.labels]
    for name in ("ram", "dram", "vit", "soft", "soft-glimpse"):
        args = resolve(Args(task="pairs100", model=name, hidden_size=16, d_model=16, layers=1, heads=2))
        s = spec(name)
        model, _ = s.build(args, task_of(args), kind_of(task).outputs(s, task, 10))
        torch.manual_seed(0)
        picture = kind_of(task).draw(s, model, args, task_of(args), "test", 0, 2)
        if s.reads == "glimpses":
            named = Agent.on_task(model, task, start=args.start).predict(canvases.images).labels
        else:
            with torch.no_grad():  # two heads of 10 side by side: digit 1 from outputs 0-9, digit 2 from 10-19
                logits = model.eval()(torch.from_numpy(canvases.images).float() / 255.0).logits
            named = torch.stack([logits[:, :10].argmax(-1), logits[:, 10:].argmax(-1)], 1).numpy()
            assert (predicted(logits, task) == named).all()
        assert named.shape == (2, 2)
        fig = picture.figure()
        said = [t.get_text() for ax in fig.axes for t in (ax.title, ax.yaxis.label) if t.get_text()]
        for true, row in zip(truth, named):
            assert any(f"{' '.join(map(str, row))} / true {true}" in line for line in said), (name, said)
        n_steps = args.layers if name == "vit" else task.steps  # the ViT's frames are its layers
        assert picture.n_steps == n_steps, name
    args = resolve(Args(task="pairs100", model="cnn"))
    model, _ = spec("cnn").build(args, task_of(args), 20)
    assert kind_of(task).draw(spec("cnn"), model, args, task_of(args), "test", 0, 2) is None
