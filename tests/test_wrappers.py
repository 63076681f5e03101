"""envs.wrappers.FlattenActions: the ram/ envs with one flat action space, as standard RL libraries take them."""

import warnings

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
