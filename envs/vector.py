"""What the natively batched vector envs share (``envs.ClutteredMNISTVectorEnv``, ``envs.CatchVectorEnv``): the
constructor's checks, ``reset`` with a reset mask, and ``step`` with gymnasium 1.x's three autoreset modes, written
once over a batched state that each env owns (its episodes, or its games)."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space


def autoreset_mode_of(mode: AutoresetMode | str) -> AutoresetMode:
    """An AutoresetMode from itself, its value ("NextStep") or its name ("NEXT_STEP")."""
    if isinstance(mode, AutoresetMode):
        return mode
    for m in AutoresetMode:
        if mode in (m.value, m.name):
            return m
    raise ValueError(f"autoreset_mode must be one of {[m.name for m in AutoresetMode]}, got {mode!r}")


class BatchedVectorEnv(VectorEnv):
    """A vector env over one batched state of ``num_envs`` episodes that all last ``task.steps`` steps.

    The state (``self._state``, set by ``_setup``) has ``t`` (glimpses taken per episode, 0 before the first reset),
    ``task``, ``retina``, ``split_size``, ``spaces()``, ``new(rows, bitgen, index)``, ``act(rows, *actions) ->
    (reward, terminated)`` and ``observe()``. A subclass says how ``reset(seed=...)`` rewinds it (``_rewind``), how to
    read a batch of actions (``_actions``: validated arrays, one row per sub-env) and what the infos of ended
    episodes hold (``_infos``).

    Autoreset (``autoreset_mode``): ``NEXT_STEP`` (default) resets an ended sub-env at the next ``step``, whose
    actions for it are ignored and which returns its first observation with reward 0; ``SAME_STEP`` resets at the
    ending step, returning the new first observation and the last one in ``infos["final_obs"]`` (the ended infos
    under ``final_info``); ``DISABLED`` never resets by itself (call ``reset``, optionally with
    ``options={"reset_mask": mask}``).
    """

    metadata = {"render_modes": ["rgb_array"], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def _setup(self, state, num_envs: int, render_mode: str | None, autoreset_mode: AutoresetMode | str) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.autoreset_mode = autoreset_mode_of(autoreset_mode)
        self.metadata = {**self.metadata, "autoreset_mode": self.autoreset_mode}
        self.num_envs, self.render_mode, self._state = int(num_envs), render_mode, state
        self.task, self.retina = state.task, state.retina
        self.split_size = state.split_size  # episodes in the fixed split (None for train)
        self.single_observation_space, self.single_action_space = state.spaces()
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._all = np.arange(self.num_envs)
        self._autoreset = np.zeros(self.num_envs, bool)

    @staticmethod
    def check_num_envs(num_envs: Any) -> int:
        if not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
        return int(num_envs)

    def _rewind(self) -> None:
        raise NotImplementedError

    def _actions(self, actions: dict) -> tuple[np.ndarray, ...]:
        raise NotImplementedError

    def _infos(self, terminated: np.ndarray, reward: np.ndarray) -> dict:
        raise NotImplementedError

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)  # seeds self.np_random
        if seed is not None:
            self._rewind()
        options = options or {}
        rows = self._all
        if "reset_mask" in options:
            rows = self._all[np.asarray(options["reset_mask"], bool)]
        self._state.new(rows, self.np_random.bit_generator, options.get("index"))
        self._autoreset[rows] = False
        return self._state.observe(), {}

    def step(self, actions: dict):
        state, n = self._state, self.num_envs
        if (state.t == 0).any():
            raise RuntimeError("call reset() before step()")
        actions = self._actions(actions)
        reward = np.zeros(n, np.float32)
        terminated = np.zeros(n, bool)
        restart, going = self._all[self._autoreset], self._all[~self._autoreset]
        if self.autoreset_mode == AutoresetMode.DISABLED and (state.t[going] > self.task.steps).any():
            raise RuntimeError("an episode has ended and autoreset is disabled: call reset()")
        if len(restart):
            state.new(restart, self.np_random.bit_generator)
        reward[going], terminated[going] = state.act(going, *(a[going] for a in actions))
        ended = self._all[terminated]
        infos: dict[str, Any] = self._infos(terminated, reward) if len(ended) else {}
        if self.autoreset_mode == AutoresetMode.SAME_STEP and len(ended):
            # gymnasium 1.x convention: the ended episodes' observations (one object each) and infos go under
            # final_obs / final_info; the top level holds the infos of the resets (none here).
            last = state.observe()
            final_obs = np.full(n, None, dtype=object)
            for i in ended:
                final_obs[i] = {k: v[i] for k, v in last.items()}
            infos = {"final_obs": final_obs, "_final_obs": terminated.copy(), "final_info": infos,
                     "_final_info": terminated.copy()}
            state.new(ended, self.np_random.bit_generator)
            self._autoreset[:] = False
        elif self.autoreset_mode == AutoresetMode.NEXT_STEP:
            self._autoreset = terminated.copy()
        return state.observe(), reward, terminated, np.zeros(n, bool), infos
