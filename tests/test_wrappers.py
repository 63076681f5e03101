"""envs.wrappers.FlattenActions: the ram/ envs with one flat action space, as standard RL libraries take them."""

import json
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from envs.wrappers import FlattenActions

IDS = ["ram/MNIST28-v0", envs.CATCH_ID]


@pytest.mark.parametrize("env_id", IDS)
@pytest.mark.parametrize("mode", ["grid", "box"])
def test_the_flattened_envs_pass_gymnasium_s_checker(env_id, mode):
    env = FlattenActions(gym.make(env_id), mode=mode)
    check_env(env.unwrapped)
    check_env(env, skip_render_check=True)
    assert env.observation_space == gym.make(env_id).observation_space  # observations as they were


def test_a_grid_action_is_a_cell_centre_and_the_discrete_action():
    env = FlattenActions(gym.make("ram/MNIST28-v0"), grid=4)
    assert env.action_space == gym.spaces.MultiDiscrete([4, 4, 10])
    out = env.action(np.array([0, 3, 7]))
    np.testing.assert_allclose(out["location"], [-0.75, 0.75])
    assert out["label"] == 7
    catch = FlattenActions(gym.make(envs.CATCH_ID), grid=1)  # one cell: always the centre
    out = catch.action(np.array([0, 0, 2]))
    np.testing.assert_allclose(out["location"], [0.0, 0.0])
    assert out["paddle"] == 2


def test_a_box_action_is_the_location_clipped_and_the_argmax():
    env = FlattenActions(gym.make("ram/MNIST28-v0"), mode="box")
    assert env.action_space.shape == (12,)
    out = env.action(np.array([0.5, -2.0, *np.eye(10)[3]], np.float32))
    np.testing.assert_allclose(out["location"], [0.5, -1.0])
    assert out["label"] == 3


def test_the_label_sent_at_the_last_step_is_scored_through_the_wrapper(mnist):
    env = FlattenActions(gym.make("ram/MNIST28-v0", mnist=mnist, split="test"), grid=4)
    env.reset(seed=0)
    T, label = env.unwrapped.task.n_glimpses, int(mnist.test_labels[0])
    for _ in range(T):
        _, reward, terminated, truncated, info = env.step(np.array([1, 2, label]))
    assert terminated and not truncated and reward == 1.0 and info["label"] == label


def test_what_is_not_a_ram_action_is_refused():
    with pytest.raises(ValueError, match="Dict of 'location'"):
        FlattenActions(gym.make("CartPole-v1"))
    with pytest.raises(ValueError, match="mode must be"):
        FlattenActions(gym.make(envs.CATCH_ID), mode="flat")


@pytest.mark.parametrize("env_id", IDS)
def test_stable_baselines3_takes_the_flattened_envs_without_a_warning(env_id):
    sb3 = pytest.importorskip("stable_baselines3")  # the optional extra: pip install -e ".[sb3]"
    from stable_baselines3.common.env_checker import check_env as sb3_check

    def action_warnings(env) -> list[str]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            sb3_check(env)
        return [str(w.message) for w in caught if "action" in str(w.message).lower()]

    assert any("not supported" in w for w in action_warnings(gym.make(env_id)))  # what the wrapper is for
    assert action_warnings(FlattenActions(gym.make(env_id))) == []
    model = sb3.PPO("MultiInputPolicy", FlattenActions(gym.make(env_id)), n_steps=64, batch_size=32, n_epochs=1,
                    device="cpu", seed=0)
    model.learn(128)  # two updates run: the library drives the env end to end
    assert model.num_timesteps >= 128


def test_a_batch_of_flat_actions_maps_row_by_row():
    from envs.wrappers import unflatten

    for mode, batch in (("grid", np.array([[0, 3, 7], [2, 1, 4]])),
                        ("box", np.array([[0.5, -2.0, *np.eye(10)[3]], [0.1, 0.2, *np.eye(10)[9]]], np.float32))):
        env = FlattenActions(gym.make("ram/MNIST28-v0"), mode=mode, grid=4)
        out = unflatten(batch, "label", mode=mode, grid=4)
        assert out["location"].shape == (2, 2) and out["label"].dtype == np.int64
        for i, row in enumerate(batch):
            one = env.action(row)
            np.testing.assert_array_equal(out["location"][i], one["location"])
            assert out["label"][i] == one["label"]


def test_the_native_vector_env_speaks_stable_baselines3_s_vecenv():
    pytest.importorskip("stable_baselines3")
    from envs.catch import follow_ball
    from envs.sb3 import NativeVecEnv

    venv = NativeVecEnv(envs.CATCH_ID, 4, seed=0, grid=1)  # one cell: always look at the centre
    assert venv.action_space == gym.spaces.MultiDiscrete([1, 1, 3])
    obs = venv.reset()
    assert obs["glimpse"].shape == (4, *venv.observation_space["glimpse"].shape)
    T = venv.venv.unwrapped.task.n_glimpses
    for t in range(T):  # the ball follower (it reads the games' state) catches every ball
        venv.step_async(np.stack([np.zeros(4), np.zeros(4), follow_ball(venv.venv.unwrapped.games)], 1))
        obs, reward, dones, infos = venv.step_wait()
        assert dones.all() == (t == T - 1)
    assert (reward == 1.0).all() and dones.dtype == bool
    assert all(set(info) == {"terminal_observation", "TimeLimit.truncated"} for info in infos)
    assert not any(info["TimeLimit.truncated"] for info in infos)
    assert venv.venv.unwrapped._state.t.max() == 1  # auto-reset: the next games have begun
    venv.seed(3)
    first = venv.reset()["glimpse"]
    venv.seed(3)
    np.testing.assert_array_equal(venv.reset()["glimpse"], first)  # a seed rewinds the games


def test_ppo_learns_through_the_native_vector_env():
    sb3 = pytest.importorskip("stable_baselines3")
    from stable_baselines3.common.vec_env import VecMonitor

    from envs.sb3 import NativeVecEnv

    venv = VecMonitor(NativeVecEnv(envs.CATCH_ID, 8, seed=0))
    model = sb3.PPO("MultiInputPolicy", venv, n_steps=32, batch_size=64, n_epochs=1, device="cpu", seed=0)
    model.learn(512)
    assert model.num_timesteps >= 512 and len(model.ep_info_buffer) >= 8  # whole games were played and logged


def test_the_baselines_script_trains_validates_resumes_and_tests(tmp_path, capsys):
    pytest.importorskip("stable_baselines3")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import sb3_baselines

    run = tmp_path / "ppo"
    common = ["--n-envs", "4", "--n-steps", "32", "--batch-size", "64", "--n-epochs", "1", "--eval-every", "128",
              "--val-n", "20", "--eval-n", "30", "--run-dir", str(run)]
    assert sb3_baselines.main(["--steps", "128", *common]) == 0
    curve = json.loads((run / "curve.json").read_text())
    assert [p["steps"] for p in curve["curve"]] == [128]
    (run / "results.json").unlink()  # as if it had stopped before testing
    assert sb3_baselines.main(["--steps", "256", *common]) == 2  # a run is there: --resume is asked for
    assert "--resume" in capsys.readouterr().err
    assert sb3_baselines.main(["--steps", "64", "--resume", *common]) == 0  # already past it: tested where it is
    assert json.loads((run / "results.json").read_text())["steps"] == 128
    (run / "results.json").unlink()
    assert sb3_baselines.main(["--steps", "256", "--resume", *common]) == 0
    results = json.loads((run / "results.json").read_text())
    assert results["steps"] == 256 and [p["steps"] for p in json.loads((run / "curve.json").read_text())["curve"]] \
        == [128, 256]
    assert results["test"]["n"] == 30 and results["test"]["greedy_catch_rate"] == pytest.approx(
        100.0 - results["test"]["greedy_error"])
    assert max(p["val_score"] for p in json.loads((run / "curve.json").read_text())["curve"]) == results["val_score"]
    assert sb3_baselines.main(["--steps", "256", "--resume", *common]) == 2  # finished: refused
    assert sb3_baselines.main(["--env", "CartPole-v1", "--run-dir", str(tmp_path / "x")]) == 2
    assert "not a ram/ env id" in capsys.readouterr().err
    assert sb3_baselines.main(["--lstm-hidden", "8", "--run-dir", str(tmp_path / "y")]) == 2
    assert "add --algo recurrent-ppo" in capsys.readouterr().err


def test_recurrent_ppo_remembers_through_the_script(tmp_path):
    pytest.importorskip("sb3_contrib")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import sb3_baselines

    run = tmp_path / "rppo"
    assert sb3_baselines.main(["--algo", "recurrent-ppo", "--steps", "64", "--n-envs", "2", "--n-steps", "32",
                               "--batch-size", "32", "--n-epochs", "1", "--eval-every", "64", "--val-n", "4",
                               "--eval-n", "4", "--frame-stack", "2", "--lstm-hidden", "8", "--shared-lstm",
                               "--run-dir", str(run)]) == 0
    results = json.loads((run / "results.json").read_text())
    assert results["algo"] == "RecurrentPPO" and results["steps"] == 64 and results["test"]["n"] == 4
