"""Stable-Baselines3 on the ram/ environments, through ``envs.wrappers.FlattenActions``: the generic baseline an RL
researcher looks for first, beside RAM. Needs the optional extra: ``pip install -e ".[sb3]"`` (sb3-contrib too, for
``--algo recurrent-ppo``).

    python benchmarks/sb3_baselines.py --env ram/Catch-v0 --mode grid --steps 300000 --run-dir runs/ppo-catch-grid
    python benchmarks/sb3_baselines.py --env ram/Cluttered60-v0 --steps 1000000 --run-dir runs/ppo-c60

Trains PPO with ``MultiInputPolicy`` (the glimpse and its location in, the flattened action out), or RecurrentPPO
with ``MultiInputLstmPolicy`` (an LSTM between them: a memory of earlier glimpses), on ``--n-envs`` copies of the
env, then plays the deterministic policy (the most probable action) on the first ``--eval-n`` episodes of the
fixed test split, the games or canvases every RAM agent is measured on. Writes a run folder like ``train.py``'s:
config.json, results.json (``test.greedy_error``, and for a game ``test.greedy_catch_rate``, as
RAM's), the final policy (``policy.zip``) and TensorBoard logs (tb/).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import envs  # noqa: E402, F401 - registers the ram/ ids
from envs.wrappers import MODES, FlattenActions  # noqa: E402
from ram import checkpoint  # noqa: E402


def _ppo():
    from stable_baselines3 import PPO

    return PPO, "MultiInputPolicy"


def _recurrent_ppo():
    from sb3_contrib import RecurrentPPO

    return RecurrentPPO, "MultiInputLstmPolicy"


ALGOS = {"ppo": _ppo, "recurrent-ppo": _recurrent_ppo}


def make(env_id: str, mode: str, grid: int, split: str = "train"):
    return FlattenActions(gym.make(env_id, split=split), mode=mode, grid=grid)


def test_error(model, env_id: str, mode: str, grid: int, n: int) -> dict:
    """The deterministic policy on the first n fixed test episodes (one env walks the split in order)."""
    env = make(env_id, mode, grid, "test")
    obs, _ = env.reset(seed=0)
    paid, state, start = [], None, np.ones((1,), bool)  # state, start: a recurrent policy's memory, reset per episode
    while len(paid) < n:
        action, state = model.predict(obs, state=state, episode_start=start, deterministic=True)
        obs, reward, terminated, truncated, _ = env.step(action)
        start = np.array([terminated or truncated])
        if terminated or truncated:
            paid.append(reward)
            obs, _ = env.reset()
    error = 100.0 * (1.0 - float(np.mean(paid)))
    out = {"greedy_error": error, "n": n}
    if env_id == envs.CATCH_ID:  # the game's own figure, as RAM's results.json gives it
        out["greedy_catch_rate"] = 100.0 - error
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default=envs.CATCH_ID, help="a ram/ env id")
    parser.add_argument("--algo", default="ppo", choices=ALGOS, help="PPO, or RecurrentPPO (sb3-contrib)")
    parser.add_argument("--mode", default="grid", choices=MODES, help="how FlattenActions flattens the action")
    parser.add_argument("--grid", type=int, default=8, help="cells a side of the location grid (--mode grid)")
    parser.add_argument("--steps", type=int, default=300_000, help="environment steps to train")
    parser.add_argument("--n-envs", type=int, default=8, help="copies of the env PPO collects from")
    parser.add_argument("--eval-n", type=int, default=10_000, help="fixed test episodes to play")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--run-dir", required=True, help="run folder to write")
    opts = parser.parse_args(argv)
    try:
        from stable_baselines3.common.env_util import make_vec_env

        algo, policy = ALGOS[opts.algo]()
    except ImportError as e:
        print(f"sb3_baselines.py: error: {e.name} is not installed: pip install -e \".[sb3]\"", file=sys.stderr)
        return 2
    run_dir = Path(opts.run_dir)
    if (run_dir / "results.json").exists():
        print(f"sb3_baselines.py: error: {run_dir} already holds a finished run", file=sys.stderr)
        return 2
    torch.set_num_threads(opts.threads)
    venv = make_vec_env(lambda: make(opts.env, opts.mode, opts.grid), n_envs=opts.n_envs, seed=opts.seed)
    model = algo(policy, venv, seed=opts.seed, device="cpu", tensorboard_log=str(run_dir / "tb"))
    checkpoint.write_text(json.dumps({"args": vars(opts), "algo": algo.__name__, "policy": policy}, indent=2),
                          run_dir / "config.json")
    tic = time.perf_counter()
    model.learn(opts.steps)
    minutes = (time.perf_counter() - tic) / 60
    model.save(run_dir / "policy.zip")
    tic = time.perf_counter()
    test = test_error(model, opts.env, opts.mode, opts.grid, opts.eval_n)
    results = {"env": opts.env, "algo": algo.__name__, "mode": opts.mode, "steps": model.num_timesteps, "test": test,
               "train_minutes": minutes, "test_minutes": (time.perf_counter() - tic) / 60,
               "params": sum(p.numel() for p in model.policy.parameters())}
    checkpoint.write_text(json.dumps(results, indent=2), run_dir / "results.json")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
