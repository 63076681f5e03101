"""Stable-Baselines3's ``VecEnv`` over a ram/ native vector env, with the flat actions of ``envs.wrappers``.

Stable-Baselines3 vectorises single envs itself (``make_vec_env``: one Python ``step`` per copy, ``DummyVecEnv``);
every ram/ id also has a native vector env that steps all copies as one batch (one retina call). ``NativeVecEnv``
hands that batch to Stable-Baselines3: the flat actions of ``FlattenActions`` in, its ``VecEnv`` conventions out
(auto-reset with the last observation in ``infos[i]["terminal_observation"]``). It needs the optional extra
(``pip install -e ".[sb3]"``); nothing else in ``envs`` imports it.

    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecMonitor
    from envs.sb3 import NativeVecEnv

    venv = VecMonitor(NativeVecEnv("ram/Catch-v0", num_envs=16, seed=0))
    PPO("MultiInputPolicy", venv).learn(100_000)
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env import VecEnv

import envs  # noqa: F401 - registers the ram/ ids
from envs.wrappers import flat_space, unflatten


class NativeVecEnv(VecEnv):
    """``num_envs`` copies of ``env_id`` stepped as one batch, acting on ``FlattenActions``' flat actions (``mode``,
    ``grid``); ``**kwargs`` go to the env (``split=``, ``task=``, ``dataset=``...). ``seed`` seeds the first reset."""

    def __init__(self, env_id: str, num_envs: int, *, mode: str = "grid", grid: int = 8, seed: int | None = None,
                 **kwargs: Any):
        self.venv = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point",
                                 autoreset_mode=AutoresetMode.SAME_STEP, **kwargs)
        self.key, flat = flat_space(self.venv.single_action_space, mode=mode, grid=grid)
        self.mode, self.grid = mode, grid
        super().__init__(num_envs, self.venv.single_observation_space, flat)
        self._next_seed = seed
        self._actions: dict | None = None

    def reset(self):
        seed = self._seeds[0] if self._seeds[0] is not None else self._next_seed
        self._next_seed = None  # a seed rewinds only once: later resets continue the stream
        obs, _ = self.venv.reset(seed=seed)
        self._reset_seeds()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = unflatten(np.asarray(actions).reshape(self.num_envs, -1), self.key, mode=self.mode,
                                  grid=self.grid)

    def step_wait(self):
        obs, reward, terminated, truncated, info = self.venv.step(self._actions)
        dones = terminated | truncated
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        for i in np.flatnonzero(dones):
            # SB3's convention: the ended episode's last observation, and whether a time limit cut it
            infos[i] = {"terminal_observation": info["final_obs"][i], "TimeLimit.truncated": bool(truncated[i] and
                                                                                                 not terminated[i])}
        return obs, reward.astype(np.float32), dones, infos

    def close(self) -> None:
        self.venv.close()

    def _indices(self, indices) -> list[int]:
        return list(self._get_indices(indices))

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        return [getattr(self.venv, attr_name)] * len(self._indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        setattr(self.venv, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        out = getattr(self.venv, method_name)(*method_args, **method_kwargs)
        return [out] * len(self._indices(indices))

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices=None) -> list[bool]:
        return [False] * len(self._indices(indices))
