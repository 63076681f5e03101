import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode
from gymnasium.wrappers import RecordEpisodeStatistics

import envs
from envs.cluttered_mnist import ClutteredMNISTEnv, ClutteredMNISTVectorEnv


def rollout(env, seed, actions):
    obs, _ = env.reset(seed=seed)
    frames = [obs]
    for a in actions:
        obs, reward, terminated, truncated, info = env.step(a)
        frames.append((obs, reward, terminated, truncated, info))
        if terminated:
            break
    return frames


def fixed_actions(T, seed=0):
    rng = np.random.default_rng(seed)
    return [{"location": rng.uniform(-1.2, 1.2, 2).astype(np.float32), "label": int(rng.integers(10))}
            for _ in range(T)]


@pytest.mark.parametrize("env_id", list(envs.ENV_IDS))
def test_check_env_for_every_registered_id(mnist, env_id):
    env = gym.make(env_id, render_mode="rgb_array")
    check_env(env.unwrapped, skip_render_check=False)
    vec = gym.make_vec(env_id, num_envs=3)
    assert isinstance(vec, ClutteredMNISTVectorEnv) and vec.num_envs == 3
    obs, _ = vec.reset(seed=0)
    assert vec.observation_space.contains(obs)


@pytest.mark.parametrize("observation", ["glimpse", "image"])
def test_check_env_image_observation_and_custom_task(mnist, observation):
    env = gym.make("ram/ClutteredMNIST-v0", observation=observation, canvas_size=80, n_clutter=6, n_glimpses=3,
                   mnist=mnist)
    check_env(env.unwrapped)
    obs, _ = env.reset(seed=0)
    key = "glimpse" if observation == "glimpse" else "image"
    assert obs[key].shape == ((3, 12, 12) if key == "glimpse" else (80, 80))


def test_same_seed_same_episode_different_seed_different(tiny_mnist):
    env = ClutteredMNISTEnv("cluttered60", mnist=tiny_mnist)
    actions = fixed_actions(6)
    a, b, c = rollout(env, 3, actions), rollout(env, 3, actions), rollout(env, 4, actions)
    np.testing.assert_array_equal(a[0]["glimpse"], b[0]["glimpse"])
    for x, y in zip(a[1:], b[1:]):
        np.testing.assert_array_equal(x[0]["glimpse"], y[0]["glimpse"])
        assert x[1:] == y[1:]
    assert not np.array_equal(a[0]["glimpse"], c[0]["glimpse"])


def test_episode_structure_reward_and_info(tiny_mnist):
    env = ClutteredMNISTEnv("translated60", mnist=tiny_mnist, n_glimpses=4, start="center")
    obs, info = env.reset(seed=0)
    assert info == {} and np.array_equal(obs["location"], [0, 0])
    label = int(env.unwrapped._episodes.labels[0, 0])
    for _ in range(3):  # wrong labels before the last step do not count
        obs, reward, terminated, truncated, info = env.step({"location": np.array([0.5, -0.5], np.float32),
                                                             "label": (label + 1) % 10})
        assert (reward, terminated, truncated, info) == (0.0, False, False, {})
        np.testing.assert_array_equal(obs["location"], [0.5, -0.5])
    obs, reward, terminated, truncated, info = env.step({"location": np.zeros(2, np.float32), "label": label})
    assert (reward, terminated, truncated) == (1.0, True, False)
    np.testing.assert_array_equal(obs["location"], [0.5, -0.5])  # no (T+1)-th glimpse: the last one again
    assert info == {"label": label, "correct": True}
    assert type(terminated) is bool and type(truncated) is bool and type(reward) is float
    with pytest.raises(RuntimeError, match="reset"):
        env.step({"location": np.zeros(2, np.float32), "label": 0})


def test_bad_actions_raise_and_out_of_range_is_clipped(tiny_mnist):
    env = ClutteredMNISTEnv("cluttered60", mnist=tiny_mnist)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="finite"):
        env.step({"location": np.array([np.nan, 0], np.float32), "label": 0})
    with pytest.raises(ValueError, match="shape"):
        env.step({"location": np.zeros(3, np.float32), "label": 0})
    with pytest.raises(ValueError, match="label"):
        env.step({"location": np.zeros(2, np.float32), "label": 10})
    obs, *_ = env.step({"location": np.array([5.0, -7.0], np.float32), "label": 0})
    np.testing.assert_array_equal(obs["location"], [1.0, -1.0])


def test_record_episode_statistics(tiny_mnist):
    env = RecordEpisodeStatistics(ClutteredMNISTEnv("cluttered60", mnist=tiny_mnist, n_glimpses=5))
    env.reset(seed=0)
    for _ in range(5):
        _, _, terminated, _, info = env.step(env.action_space.sample())
    assert terminated and info["episode"]["l"] == 5 and info["episode"]["r"] in (0.0, 1.0)


def test_render_draws_canvas_and_glimpses(tiny_mnist):
    env = ClutteredMNISTEnv("cluttered60", mnist=tiny_mnist, render_mode="rgb_array", start="center")
    env.reset(seed=0)
    before = env.render()
    env.step({"location": np.array([0.5, 0.5], np.float32), "label": 0})
    after = env.render()
    assert before.shape == (240, 240, 3) and before.dtype == np.uint8
    coloured = (after[..., 0] != after[..., 1]) | (after[..., 1] != after[..., 2])  # boxes are coloured
    assert coloured.sum() > coloured.size * 0.01 and not np.array_equal(before, after)


def test_vector_env_matches_single_env_on_the_same_seed(tiny_mnist):
    single = ClutteredMNISTEnv("cluttered60", mnist=tiny_mnist)
    vec = ClutteredMNISTVectorEnv(1, "cluttered60", mnist=tiny_mnist)
    actions = fixed_actions(6, seed=9)
    frames = rollout(single, 11, actions)
    obs, _ = vec.reset(seed=11)
    np.testing.assert_array_equal(obs["glimpse"][0], frames[0]["glimpse"])
    for a, (s_obs, s_reward, s_term, _, _) in zip(actions, frames[1:]):
        batch = {"location": a["location"][None], "label": np.array([a["label"]])}
        obs, reward, terminated, truncated, infos = vec.step(batch)
        np.testing.assert_array_equal(obs["glimpse"][0], s_obs["glimpse"])
        assert (reward[0], terminated[0]) == (s_reward, s_term)
    assert infos["label"][0] == frames[-1][4]["label"] and infos["_label"][0]


def test_vector_env_walks_the_fixed_set_in_order(tiny_mnist):
    vec = ClutteredMNISTVectorEnv(16, "cluttered60", split="test", mnist=tiny_mnist, start="center",
                                  autoreset_mode="DISABLED")
    single = ClutteredMNISTEnv("cluttered60", split="test", mnist=tiny_mnist, start="center")
    obs, _ = vec.reset(seed=0)
    obs2, _ = vec.reset()  # the next 16 canvases
    single.reset(seed=0)
    for i in range(32):
        o, _ = single.reset() if i else single.reset(seed=0)
        want = obs if i < 16 else obs2
        np.testing.assert_array_equal(want["glimpse"][i % 16], o["glimpse"])
    o, _ = single.reset(options={"index": 20})
    np.testing.assert_array_equal(obs2["glimpse"][4], o["glimpse"])


@pytest.mark.parametrize("mode", ["NEXT_STEP", "SAME_STEP", "DISABLED"])
def test_vector_env_autoreset(tiny_mnist, mode):
    T = 3
    vec = ClutteredMNISTVectorEnv(4, "cluttered60", mnist=tiny_mnist, n_glimpses=T, autoreset_mode=mode)
    assert vec.metadata["autoreset_mode"] == AutoresetMode[mode]
    vec.reset(seed=0)
    labels_1 = vec._episodes.labels[:, 0].copy()  # (n, objects): one object here
    actions = vec.action_space.sample()
    for _ in range(T - 1):
        _, _, terminated, _, _ = vec.step(actions)
        assert not terminated.any()
    obs, reward, terminated, _, infos = vec.step(actions)
    assert terminated.all() and set(reward.tolist()) <= {0.0, 1.0}
    if mode != "SAME_STEP":
        np.testing.assert_array_equal(infos["label"], labels_1)
    if mode == "NEXT_STEP":
        obs, reward, terminated, _, infos = vec.step(actions)  # the reset step: actions ignored, reward 0
        assert not terminated.any() and (reward == 0).all() and infos == {}
        assert (vec._episodes.t == 1).all()
    elif mode == "SAME_STEP":  # gymnasium 1.x: per-env final observations, the ended infos under final_info
        assert infos["_final_obs"].all() and infos["_final_info"].all() and (vec._episodes.t == 1).all()
        assert infos["final_obs"].dtype == object and infos["final_obs"][0]["glimpse"].shape == (3, 12, 12)
        assert not np.array_equal(infos["final_obs"][0]["glimpse"], obs["glimpse"][0])
        np.testing.assert_array_equal(infos["final_info"]["label"], labels_1)
    else:
        with pytest.raises(RuntimeError, match="reset"):
            vec.step(actions)
        vec.reset(options={"reset_mask": np.array([True, False, True, False])})
        assert vec._episodes.t.tolist() == [1, T + 1, 1, T + 1]


def test_vector_record_episode_statistics(tiny_mnist):
    from gymnasium.wrappers.vector import RecordEpisodeStatistics as VecStats

    vec = VecStats(ClutteredMNISTVectorEnv(8, "cluttered60", mnist=tiny_mnist, n_glimpses=2))
    vec.reset(seed=0)
    vec.step(vec.action_space.sample())
    _, _, terminated, _, infos = vec.step(vec.action_space.sample())
    assert terminated.all() and (infos["episode"]["l"] == 2).all() and infos["_episode"].all()


def test_bad_constructor_arguments(tiny_mnist):
    with pytest.raises(ValueError, match="split"):
        ClutteredMNISTEnv("cluttered60", split="dev", mnist=tiny_mnist)
    with pytest.raises(ValueError, match="start"):
        ClutteredMNISTEnv("cluttered60", start="left", mnist=tiny_mnist)
    with pytest.raises(ValueError, match="larger than"):
        ClutteredMNISTEnv("mnist28", glimpse_size=40, mnist=tiny_mnist)
    with pytest.raises(ValueError, match="num_envs"):
        ClutteredMNISTVectorEnv(0, mnist=tiny_mnist)
    with pytest.raises(ValueError, match="index"):
        ClutteredMNISTEnv("cluttered60", mnist=tiny_mnist).reset(options={"index": 3})


def test_canvas_stream_order_does_not_depend_on_prefetch_or_take_sizes(tiny_mnist):
    from envs.cluttered_mnist import _CanvasStream
    from envs.tasks import get_task

    task = get_task("cluttered60")
    streams = [_CanvasStream(tiny_mnist, task, 8, prefetch=p) for p in (False, True)]
    for s in streams:
        s.seed(5)
    plain = streams[0].take(24)  # three chunks at once
    pieces = [streams[1].take(n) for n in (3, 8, 1, 12)]  # across chunk boundaries, on the worker thread
    np.testing.assert_array_equal(plain.images, np.concatenate([c.images for c in pieces]))
    np.testing.assert_array_equal(plain.labels, np.concatenate([c.labels for c in pieces]))
    # state, taken mid-chunk, restores the exact continuation; the images differ from canvas to canvas
    state = streams[1].state
    after = streams[1].take(10).images
    streams[0].state = state
    np.testing.assert_array_equal(streams[0].take(10).images, after)
    assert len({c.tobytes() for c in plain.images}) == 24
    for s in streams:
        s.close()


def test_vector_env_rng_state_continues_exactly(tiny_mnist):
    actions = {"location": np.zeros((4, 2), np.float32), "label": np.zeros(4, np.int64)}

    def episode(vec):
        obs, _ = vec.reset()
        glimpses = [obs["glimpse"]]
        for _ in range(2):
            obs, *_ = vec.step(actions)
            glimpses.append(obs["glimpse"])
        return np.stack(glimpses), vec._episodes.labels.copy()

    a = ClutteredMNISTVectorEnv(4, "cluttered60", mnist=tiny_mnist, n_glimpses=3, autoreset_mode="DISABLED")
    a.reset(seed=3)
    episode(a)
    state = a.get_rng_state()
    want = [episode(a) for _ in range(3)]
    b = ClutteredMNISTVectorEnv(4, "cluttered60", mnist=tiny_mnist, n_glimpses=3, autoreset_mode="DISABLED")
    b.reset(seed=99)  # another seed: set_rng_state alone decides what follows
    b.set_rng_state(state)
    for (g, labels), (g2, labels2) in zip(want, [episode(b) for _ in range(3)]):
        np.testing.assert_array_equal(g, g2)
        np.testing.assert_array_equal(labels, labels2)
    a.close()
    b.close()


def test_an_rng_state_without_canvases_seeds_the_stream_from_np_random(tiny_mnist):
    # What a checkpoint from before the canvas stream holds: np_random's state alone.
    source = ClutteredMNISTVectorEnv(3, "cluttered60", mnist=tiny_mnist, autoreset_mode="DISABLED")
    source.reset(seed=1)
    old_state = {"np_random": source.np_random.bit_generator.state, "canvases": None}
    images = []
    for seed in (7, 8):  # runs that had started from different seeds continue alike
        env = ClutteredMNISTVectorEnv(3, "cluttered60", mnist=tiny_mnist, autoreset_mode="DISABLED")
        env.reset(seed=seed)
        env.set_rng_state(old_state)
        env.reset()
        images.append(env._episodes.images.copy())
        env.reset(options={"reset_mask": np.zeros(3, bool)})  # resetting no episode is allowed
        env.close()
    np.testing.assert_array_equal(images[0], images[1])


@pytest.mark.parametrize("split", ["train", "test"])
def test_vector_env_glimpses_are_the_retina_on_its_own_canvases(tiny_mnist, split):
    """Every row's glimpse is the retina read of that row's canvas, across resets (fresh canvases for train, whose
    integral images are made apart from the canvases) and a partial reset of some rows."""
    from envs.retina import Retina

    vec = ClutteredMNISTVectorEnv(6, "cluttered60", split=split, mnist=tiny_mnist, n_glimpses=3,
                                  autoreset_mode="SAME_STEP")
    retina = Retina(g=12, k=3, s=2)
    obs, _ = vec.reset(seed=1)
    rng = np.random.default_rng(0)
    for _ in range(7):  # episodes end every third step and restart, all rows at once
        images = torch.from_numpy(vec._episodes.images.copy())
        want = retina(images, torch.from_numpy(obs["location"])).numpy()
        np.testing.assert_array_equal(obs["glimpse"], want)
        obs, *_ = vec.step({"location": rng.uniform(-1, 1, (6, 2)).astype(np.float32),
                            "label": np.zeros(6, np.int64)})
    obs, _ = vec.reset(options={"reset_mask": np.array([True, False, True, False, False, True])})
    want = retina(torch.from_numpy(vec._episodes.images.copy()), torch.from_numpy(obs["location"])).numpy()
    np.testing.assert_array_equal(obs["glimpse"], want)


def test_an_ended_episode_observes_its_last_glimpse_without_a_new_read(tiny_mnist, monkeypatch):
    """The last step takes no glimpse: its observation is the glimpse the episode already saw (a copy, so a caller
    that writes into one observation does not change the next), and the retina is not read for it."""
    from envs.retina import Retina

    vec = ClutteredMNISTVectorEnv(4, "cluttered60", mnist=tiny_mnist, n_glimpses=2, autoreset_mode="DISABLED")
    obs, _ = vec.reset(seed=2)
    move = {"location": np.full((4, 2), 0.5, np.float32), "label": np.zeros(4, np.int64)}
    obs, _, terminated, *_ = vec.step(move)
    assert not terminated.any()
    seen = obs["glimpse"].copy()
    obs["glimpse"][:] = -1.0  # the caller's array: not the env's
    reads = []
    monkeypatch.setattr(Retina, "read", lambda self, S, l: reads.append(l) or pytest.fail("read again"))
    last, _, terminated, *_ = vec.step(move)
    assert terminated.all() and not reads
    np.testing.assert_array_equal(last["glimpse"], seen)
    np.testing.assert_array_equal(last["location"], move["location"])


def test_empty_split_is_refused(tiny_mnist):
    assert len(tiny_mnist.train_images) <= 55000  # no validation digits
    with pytest.raises(ValueError, match="val split has no canvases"):
        ClutteredMNISTVectorEnv(2, "cluttered60", split="val", mnist=tiny_mnist)


def test_vector_env_repeats_each_fresh_canvas_over_consecutive_sub_envs(tiny_mnist):
    from envs.retina import Retina

    vec = ClutteredMNISTVectorEnv(6, "cluttered60", mnist=tiny_mnist, n_glimpses=2, repeats=3)
    plain = ClutteredMNISTVectorEnv(2, "cluttered60", mnist=tiny_mnist, n_glimpses=2)
    obs, _ = vec.reset(seed=4)
    plain.reset(seed=4)
    images = vec._episodes.images
    # The same canvases, in the same order, as a plain env with a third of the sub-envs, each shown three times.
    np.testing.assert_array_equal(images, np.repeat(plain._episodes.images, 3, 0))
    assert not np.array_equal(images[0], images[3])
    # Each sub-env has its own first location, and its glimpse is the retina on its own canvas.
    assert len({tuple(x) for x in obs["location"]}) == 6
    want = Retina(g=12, k=3, s=2)(torch.from_numpy(images.copy()), torch.from_numpy(obs["location"])).numpy()
    np.testing.assert_array_equal(obs["glimpse"], want)
    for bad, message in [(dict(num_envs=5, repeats=3), "divisor"), (dict(num_envs=6, repeats=2, split="test"),
                                                                     "train split only")]:
        with pytest.raises(ValueError, match=message):
            ClutteredMNISTVectorEnv(task="cluttered60", mnist=tiny_mnist, **bad)
    vec.close()
    plain.close()
