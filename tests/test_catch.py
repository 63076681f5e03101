"""Catch (envs.catch): the env contract, its physics on hand-made cases, the game's loss and its routing, and a tiny
training run of the agent through train.py."""

import hashlib
import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode
from test_model import grads, touched  # the routing helpers of the classification agent's tests

import envs
import train
from envs.catch import CatchEnv, CatchVectorEnv, fall, fixed_starts
from ram import checkpoint
from ram.games import play_baselines
from ram.kinds import KINDS, make_env, n_actions
from ram.kinds import play as episode
from ram.losses import game_loss
from ram.model import RAMConfig, RecurrentAttention
from ram.registry import spec


def moves(T, seed=0):
    rng = np.random.default_rng(seed)
    return [{"location": rng.uniform(-1.2, 1.2, 2).astype(np.float32), "paddle": int(rng.integers(3))}
            for _ in range(T)]


def place(env, ball, direction, paddle, row=0):
    """Put a game in a hand-made state: the ball at column ``ball`` of ``row``, moving ``direction``."""
    g = env.unwrapped._games
    g.ball[0] = (ball, row)
    g.direction[0], g.paddle[0] = direction, paddle
    g.t[0] = row + 1  # the glimpses a game has taken by the time its ball is on that row


def test_check_env_and_the_vector_env_of_the_id():
    env = gym.make(envs.CATCH_ID, render_mode="rgb_array")
    check_env(env.unwrapped, skip_render_check=False)
    vec = gym.make_vec(envs.CATCH_ID, num_envs=3)
    assert isinstance(vec, CatchVectorEnv) and vec.num_envs == 3
    obs, _ = vec.reset(seed=0)
    assert vec.observation_space.contains(obs) and obs["glimpse"].shape == (3, 3, 6, 6)


def test_vector_env_matches_single_env_on_the_same_seed():
    single, vec = CatchEnv(), CatchVectorEnv(1)
    obs, _ = single.reset(seed=5)
    vobs, _ = vec.reset(seed=5)
    np.testing.assert_array_equal(vobs["glimpse"][0], obs["glimpse"])
    for a in moves(23, seed=3):
        obs, reward, terminated, truncated, info = single.step(a)
        vobs, vreward, vterminated, _, infos = vec.step({"location": a["location"][None], "paddle": [a["paddle"]]})
        np.testing.assert_array_equal(vobs["glimpse"][0], obs["glimpse"])
        assert (vreward[0], vterminated[0]) == (reward, terminated)
    assert terminated and infos["_caught"][0] and infos["caught"][0] == info["caught"]


def test_same_seed_same_game_different_seed_different_and_fixed_starts_are_pinned():
    a, b, c = CatchEnv(), CatchEnv(), CatchEnv()
    a.reset(seed=1), b.reset(seed=1), c.reset(seed=2)
    state = [(g._games.ball.copy(), g._games.direction.copy(), g._games.paddle.copy()) for g in (a, b, c)]
    assert all(np.array_equal(x, y) for x, y in zip(state[0], state[1]))
    assert not all(np.array_equal(x, y) for x, y in zip(state[0], state[2]))
    test = fixed_starts("test", 24)
    assert test.shape == (10000, 3) and fixed_starts("val", 24).shape == (5000, 3)
    assert not np.array_equal(test[:5000], fixed_starts("val", 24))
    assert set(test[:, 1]) == {-1, 0, 1} and test[:, 0].max() == 23 and test[:, 2].max() == 22
    # The same games on every machine: the raw PCG64 stream of a published seed.
    assert hashlib.sha256(test.astype("<i8").tobytes()).hexdigest()[:16] == "5a7ed2e57289e555"


def test_the_ball_bounces_off_both_walls_and_falls_a_row_a_step():
    x, dx = fall(np.array([0, 23, 5, 22, 10]), np.array([-1, 1, -1, 1, 0]), 24)
    assert x.tolist() == [1, 22, 4, 23, 10] and dx.tolist() == [1, -1, -1, 1, 0]
    env = CatchEnv(start="center")
    env.reset(seed=0)
    place(env, ball=1, direction=-1, paddle=10)
    stay = {"location": np.zeros(2, np.float32), "paddle": 1}
    for want in [(0, 1), (1, 2), (2, 3)]:  # to the wall, off it, away from it
        env.step(stay)
        assert tuple(env._games.ball[0]) == want
    assert env._games.direction[0] == 1


def test_a_catch_a_miss_and_a_paddle_stopped_by_the_wall():
    stay = {"location": np.zeros(2, np.float32), "paddle": 1}
    env = CatchEnv()
    for paddle, caught in [(6, True), (7, True), (5, False), (8, False)]:  # the paddle covers columns p and p + 1
        env.reset(seed=0)
        place(env, ball=7, direction=0, paddle=paddle, row=21)
        _, reward, terminated, _, info = env.step(stay)
        assert (reward, terminated, info) == (0.0, False, {})
        _, reward, terminated, truncated, info = env.step(stay)
        assert (reward, terminated, truncated, info) == (float(caught), True, False, {"caught": caught})
        assert type(reward) is float and type(terminated) is bool
    with pytest.raises(RuntimeError, match="reset"):
        env.step(stay)
    env.reset(seed=0)
    place(env, ball=7, direction=0, paddle=0)
    env.step({**stay, "paddle": 0})
    assert env._games.paddle[0] == 0  # a move into the wall stays
    place(env, ball=7, direction=0, paddle=22)
    env.step({**stay, "paddle": 2})
    assert env._games.paddle[0] == 22
    env.step({**stay, "paddle": 0})
    assert env._games.paddle[0] == 21


def test_an_episode_lasts_as_long_as_the_ball_falls_and_the_screen_shows_ball_and_paddle():
    env = CatchEnv(16)
    obs, _ = env.reset(seed=3)
    assert env.task.n_glimpses == 15
    screen = env._games.screens()[0]
    assert screen.sum() == 3 * 255 and screen[0].sum() == 255 and screen[15].sum() == 2 * 255
    steps = 0
    terminated = False
    while not terminated:
        obs, _, terminated, _, _ = env.step({"location": np.zeros(2, np.float32), "paddle": 1})
        steps += 1
    assert steps == 15 and env._games.ball[0, 1] == 15


def test_bad_actions_raise_value_errors():
    env = CatchEnv()
    env.reset(seed=0)
    for bad in [{"location": np.array([np.nan, 0], np.float32), "paddle": 1},
                {"location": np.zeros(3, np.float32), "paddle": 1},
                {"location": np.zeros(2, np.float32), "paddle": 3},
                {"location": np.zeros(2, np.float32), "paddle": -1},
                {"location": np.zeros(2, np.float32), "paddle": 1.0}]:
        with pytest.raises(ValueError, match="location|paddle"):
            env.step(bad)
    with pytest.raises(ValueError, match="split"):
        CatchEnv(split="holdout")
    with pytest.raises(ValueError, match="canvas_size"):
        CatchEnv(3)


def test_the_glimpse_is_the_retina_on_the_screen():
    env = CatchEnv(start="center")
    obs, _ = env.reset(seed=0)
    screen = torch.from_numpy(env._games.screens())
    np.testing.assert_array_equal(obs["glimpse"], env.retina(screen, torch.zeros(1, 2))[0].numpy())
    # The widest scale spans the 24-pixel screen from the centre: it sees the ball and the paddle, 4 x 4 pooled.
    assert obs["glimpse"][2].sum() == pytest.approx(3 / 16)


@pytest.mark.parametrize("mode", ["NEXT_STEP", "SAME_STEP", "DISABLED"])
def test_vector_env_autoreset(mode):
    vec = CatchVectorEnv(4, 8, autoreset_mode=mode)
    assert vec.metadata["autoreset_mode"] == AutoresetMode[mode]
    vec.reset(seed=0)
    actions = {"location": np.zeros((4, 2), np.float32), "paddle": np.ones(4, np.int64)}
    for _ in range(6):
        assert not vec.step(actions)[2].any()
    obs, reward, terminated, _, infos = vec.step(actions)
    assert terminated.all() and set(reward.tolist()) <= {0.0, 1.0}
    if mode == "NEXT_STEP":
        obs, reward, terminated, _, infos = vec.step(actions)  # the reset step: actions ignored, reward 0
        assert not terminated.any() and (reward == 0).all() and infos == {} and (vec.games.t == 1).all()
    elif mode == "SAME_STEP":
        assert infos["_final_obs"].all() and (vec.games.t == 1).all()
        np.testing.assert_array_equal(infos["final_info"]["caught"], reward > 0)
    else:
        with pytest.raises(RuntimeError, match="reset"):
            vec.step(actions)


def test_the_ball_follower_catches_every_test_ball_and_a_random_player_few():
    vec = CatchVectorEnv(1000, split="test", autoreset_mode="DISABLED")
    rates = play_baselines(vec, 10000)
    assert rates["follow_catch_rate"] == 100.0
    assert 4 < rates["random_catch_rate"] < 15  # about 2 paddle columns in 24


@pytest.mark.parametrize("baseline_core", [False, True])
def test_game_gradient_routing_moves_train_the_core_locations_the_policy_alone(baseline_core):
    torch.manual_seed(0)
    model = RecurrentAttention(RAMConfig(glimpse_shape=(3, 6, 6), n_classes=3, hg_size=8, hl_size=8, g_size=16,
                                         hidden_size=16, core="lstm", act_every_step=True, baseline_core=baseline_core))
    env = CatchVectorEnv(8, 8)
    env.reset(seed=0)
    ep = episode(spec("ram"), model, env, greedy=False)
    assert "labels" not in ep._fields  # a game has no labels
    assert ep.log_pi.shape == (8, 6) and ep.log_pi_a.shape == (8, 7) and ep.b.shape == (8, 7)
    ep.reward[:4] = 1.0  # a reward that varies, so every advantage is non-zero
    moves_only = game_loss(torch.zeros_like(ep.log_pi), ep.log_pi_a, ep.b, ep.reward)
    g = grads(model, moves_only.reinforce)
    assert touched(g, "classifier") and touched(g, "core") and touched(g, "glimpse")
    assert not touched(g, "location") and not touched(g, "baseline")
    locations_only = game_loss(ep.log_pi, torch.zeros_like(ep.log_pi_a), ep.b, ep.reward)
    g = grads(model, locations_only.reinforce)
    assert touched(g, "location") and not any(touched(g, p) for p in ("classifier", "core", "glimpse", "baseline"))
    # The baseline's regression: the Baseline alone, or with baseline_core the state it reads too (an actor-critic).
    g = grads(model, KINDS["catch"].loss(ep, reinforce_weight=1, baseline_weight=1).baseline)
    assert touched(g, "baseline") and not touched(g, "classifier") and not touched(g, "location")
    assert touched(g, "core") == touched(g, "glimpse") == baseline_core
    # The entropy bonus: what the moves' REINFORCE trains, nothing else.
    with_bonus = KINDS["catch"].loss(ep, reinforce_weight=0, baseline_weight=0, entropy_weight=1.0).total
    g = grads(model, with_bonus)
    assert touched(g, "classifier") and touched(g, "core") and not touched(g, "location") and not touched(g, "baseline")


TINY = ["--task", "catch", "--canvas-size", "8", "--batch-size", "16", "--hidden-size", "16", "--g-size", "16",
        "--glimpse-hidden", "8", "--eval-batch", "1000", "--threads", "1", "--no-progress"]


def test_tiny_catch_run_trains_evaluates_draws_and_resumes(tmp_path, capsys):
    def run(name, *extra):
        return train.main([*TINY, "--run-dir", str(tmp_path / name), "--samples", "64", "--eval-every", "32", *extra])

    assert run("full", "--snapshots") == 0
    folder = tmp_path / "full"
    assert {"results.json", "agent.pt", "games.gif", "games.png", "tb"} <= {p.name for p in folder.iterdir()}
    results = json.loads((folder / "results.json").read_text())
    test = results["test"]
    assert test["n"] == 10000 and test["greedy_catch_rate"] + test["greedy_error"] == pytest.approx(100)
    assert 0 <= test["sampled_catch_rate"] <= 100
    assert results["baselines"]["follow_catch_rate"] == 100.0
    state = checkpoint.load(folder / "agent.pt")
    assert state["model_config"]["act_every_step"] and state["model_config"]["n_classes"] == 3
    assert state["task"]["kind"] == "catch" and state["task"]["n_glimpses"] == 7
    # Resume continues exactly, as for the classification tasks.
    assert run("split", "--stop-after", "32") == 0
    assert train.main(["--run-dir", str(tmp_path / "split"), "--resume", "--no-progress", "--threads", "1"]) == 0
    a, b = checkpoint.load(folder / "last.pt"), checkpoint.load(tmp_path / "split" / "last.pt")
    for name in a["model"]:
        torch.testing.assert_close(a["model"][name], b["model"][name], rtol=0, atol=0)
    capsys.readouterr()
    assert train.main(["evaluate", str(folder), "--threads", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["greedy_catch_rate"] == test["greedy_catch_rate"]
    assert train.main(["visualize", str(folder), "--n", "2", "--out", str(tmp_path / "two")]) == 0
    assert "of 2 caught" in capsys.readouterr().out and (tmp_path / "two.gif").exists()
    # The test curve: catch rates of every snapshot, greedy and sampled, against episodes and minutes.
    assert train.main(["curve", str(folder), "--target", "5", "--threads", "1"]) == 0
    curve = json.loads((folder / "test_curve.json").read_text())
    assert set(curve["reached"]) == {"greedy_error", "sampled_error"} and len(curve["points"]) == 2
    best = next(p for p in curve["points"] if p["samples"] == results["samples"])  # the snapshot best.pt holds
    assert best["greedy_catch_rate"] == test["greedy_catch_rate"] and best["val_error"] == results["val_error"]


@pytest.mark.parametrize("argv,message", [
    (["--task", "catch", "--model", "soft"], "played by the RAM agent"),
    (["--task", "catch", "--policy", "random"], "played by the RAM agent"),
    (["--task", "catch", "--glimpses", "5"], "no --glimpses"),
    (["--task", "catch", "--canvas-size", "3"], "canvas_size must be >= 4"),
    (["--task", "mnist28", "--entropy", "0.01"], "apply to --task catch only"),
    (["--task", "catch", "--entropy", "nan"], "--entropy >= 0"),
    (["--model", "cnn", "--baseline-core"], "has no baseline"),
])
def test_catch_usage_errors_are_one_line(argv, message, capsys):
    assert train.main([*argv, "--samples", "16"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_the_catch_env_of_the_training_code_has_three_moves():
    from ram.config import Args, resolve, task_of

    args = resolve(Args(task="catch"))
    env = make_env(spec("ram"), args, task_of(args), "val", 4)
    assert n_actions(env) == 3 and env.split_size == 5000


def test_small_screens_play_and_compare_refuses_a_game(tmp_path, capsys):
    env = gym.make(envs.CATCH_ID, size=5, render_mode="rgb_array")
    check_env(env.unwrapped, skip_render_check=False)
    assert env.unwrapped.task.n_glimpses == 4
    assert train.main([*TINY, "--run-dir", str(tmp_path / "g"), "--samples", "32", "--eval-every", "32"]) == 0
    capsys.readouterr()
    assert train.main(["compare", str(tmp_path / "g"), "--out", str(tmp_path / "c")]) == 2
    assert "compare measures classifiers" in capsys.readouterr().err


def test_init_from_a_checkpoint_saved_before_the_game_fields_existed(tmp_path):
    """A shipped classification agent (its model_config without act_every_step or baseline_core) still starts a
    fine-tune."""
    import dataclasses

    from ram.config import Args, resolve, task_of
    from ram.runs import load_init

    args = resolve(Args(task="mnist28", init=str(tmp_path / "old.pt")))
    model, config = spec("ram").build(args, task_of(args), 10)
    state = {"args": dataclasses.asdict(args), "task": {}, "model": model.state_dict(), "samples": 7,
             "model_config": {k: v for k, v in dataclasses.asdict(config).items()
                              if k not in ("act_every_step", "baseline_core")}}
    checkpoint.save(state, tmp_path / "old.pt")
    assert load_init(model, config, args) == (7, "")  # every tensor loaded: nothing to say


def test_a_game_has_no_canvases(tiny_mnist):
    from envs.tasks import GAMES, fixed

    with pytest.raises(ValueError, match="is a game"):
        fixed(tiny_mnist, GAMES["catch"], "test", 0, 4)
    with pytest.raises(ValueError, match="is a game"):
        envs.ClutteredMNISTEnv("catch", mnist=tiny_mnist)
