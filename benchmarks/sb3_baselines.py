"""Stable-Baselines3 on the ram/ environments, through ``envs.wrappers``' flat actions: the generic baseline an RL
researcher looks for first, beside RAM. Needs the optional extra: ``pip install -e ".[sb3]"`` (which brings
sb3-contrib too, for ``--algo recurrent-ppo``).

    python benchmarks/sb3_baselines.py --env ram/Catch-v0 --steps 3000000 --run-dir runs/ppo-catch
    python benchmarks/sb3_baselines.py --env ram/Cluttered60-v0 --steps 3000000 --run-dir runs/ppo-c60

Trains PPO with ``MultiInputPolicy`` (the glimpse and its location in, the flattened action out), or RecurrentPPO
with ``MultiInputLstmPolicy`` (an LSTM between them: a memory of earlier glimpses), on ``--n-envs`` copies of the
env stepped as one batch (``envs.sb3.NativeVecEnv``; ``--vec sb3`` uses Stable-Baselines3's own ``DummyVecEnv``).
Every ``--eval-every`` steps it plays the deterministic policy (the most probable action) on the first ``--val-n``
episodes of the fixed validation split, writes the curve against steps and training minutes, and keeps the policy
validation likes best; at the end that policy plays the first ``--eval-n`` episodes of the fixed test split, the
games or canvases every RAM agent is measured on. The run folder is like ``train.py``'s: config.json,
results.json (``test.greedy_error``, and for a game ``test.greedy_catch_rate``, as RAM's), curve.json,
best.zip (the policy), checkpoint.zip (``--resume`` continues from it) and TensorBoard logs (tb/).
"""

from __future__ import annotations

import argparse
import io
import json
import math
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
HYPER = ("n_steps", "batch_size", "n_epochs", "learning_rate", "ent_coef", "gamma")  # None: the library's default


def train_env(opts):
    """The training envs, vectorised natively (one batch) or by Stable-Baselines3 (one Python env per copy), with
    the last ``--frame-stack`` observations stacked if asked."""
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecFrameStack, VecMonitor

    if opts.vec == "native":
        from envs.sb3 import NativeVecEnv

        venv = VecMonitor(NativeVecEnv(opts.env, opts.n_envs, mode=opts.mode, grid=opts.grid, seed=opts.seed))
    else:
        venv = make_vec_env(lambda: FlattenActions(gym.make(opts.env), mode=opts.mode, grid=opts.grid),
                            n_envs=opts.n_envs, seed=opts.seed)
    return VecFrameStack(venv, opts.frame_stack) if opts.frame_stack > 1 else venv


def play(model, opts, split: str, n: int) -> float:
    """The deterministic policy's mean reward (the share of games caught, of canvases labelled right) on the first
    n episodes of a fixed split, in batches of a native vector env (through the frame stack the policy was trained
    with). Every episode of a ram/ env lasts the same number of steps, so a batch starts and ends together, and the
    auto-reset begins the split's next episodes."""
    from stable_baselines3.common.vec_env import VecFrameStack

    from envs.sb3 import NativeVecEnv

    batch = min(n, 1000)  # the last batch may run past n (the split wraps around): only the first n count
    venv = NativeVecEnv(opts.env, batch, mode=opts.mode, grid=opts.grid, seed=0, split=split)  # seed: the start
    if opts.frame_stack > 1:
        venv = VecFrameStack(venv, opts.frame_stack)
    obs, paid = venv.reset(), []
    for _ in range(-(-n // batch)):
        state, start, got = None, np.ones(batch, bool), np.zeros(batch)
        while True:  # state, start: a recurrent policy's memory, reset per episode
            action, state = model.predict(obs, state=state, episode_start=start, deterministic=True)
            obs, reward, start, _ = venv.step(action)
            got += reward
            if start.all():
                break
        paid.append(got)
    venv.close()
    return float(np.mean(np.concatenate(paid)[:n]))


def saved(model) -> bytes:
    buf = io.BytesIO()
    model.save(buf)
    return buf.getvalue()


def make_callback(opts, run_dir: Path, state: dict):
    from stable_baselines3.common.callbacks import BaseCallback

    class Validate(BaseCallback):
        """Every --eval-every steps: the validation score, the curve, the best policy and a checkpoint."""

        def _on_training_start(self) -> None:
            self.tic = time.perf_counter()
            self.next = (self.num_timesteps // opts.eval_every + 1) * opts.eval_every

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next:
                self.evaluate()
                self.next += opts.eval_every
            return True

        def _on_training_end(self) -> None:
            if not state["curve"] or state["curve"][-1]["steps"] != self.num_timesteps:
                self.evaluate()  # the last policy too

        def evaluate(self) -> None:
            state["train_minutes"] += (time.perf_counter() - self.tic) / 60
            score = 100.0 * play(self.model, opts, "val", opts.val_n)
            state["curve"].append({"steps": self.num_timesteps, "train_minutes": state["train_minutes"],
                                   "val_score": score})
            self.logger.record("val/score", score)
            if score > state["best"]:
                state["best"], state["best_steps"] = score, self.num_timesteps
                checkpoint.write_bytes(saved(self.model), run_dir / "best.zip")
            checkpoint.write_bytes(saved(self.model), run_dir / "checkpoint.zip")
            checkpoint.write_text(json.dumps(state, indent=2), run_dir / "curve.json")
            print(f"steps {self.num_timesteps}: val {score:.2f}% ({state['train_minutes']:.1f} min)", flush=True)
            self.tic = time.perf_counter()  # validation's time is not training's

    return Validate()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default=envs.CATCH_ID, help="a ram/ env id")
    parser.add_argument("--algo", default="ppo", choices=ALGOS, help="PPO, or RecurrentPPO (sb3-contrib)")
    parser.add_argument("--mode", default="grid", choices=MODES, help="how the action is flattened")
    parser.add_argument("--grid", type=int, default=8, help="cells a side of the location grid (--mode grid)")
    parser.add_argument("--steps", type=int, default=300_000, help="environment steps to train")
    parser.add_argument("--n-envs", type=int, default=8, help="copies of the env PPO collects from")
    parser.add_argument("--frame-stack", type=int, default=1, help="observations stacked (SB3's VecFrameStack): a "
                        "memory of the last N glimpses for a memoryless policy; 1: none")
    parser.add_argument("--vec", default="native", choices=("native", "sb3"),
                        help="native: one batched ram/ vector env; sb3: Stable-Baselines3's DummyVecEnv")
    for name in HYPER:
        kind = int if name in ("n_steps", "batch_size", "n_epochs") else float
        parser.add_argument("--" + name.replace("_", "-"), type=kind, help="the algorithm's, default its own")
    parser.add_argument("--lstm-hidden", type=int, help="recurrent-ppo: the LSTM's units (default the library's, 256)")
    parser.add_argument("--shared-lstm", action="store_true", help="recurrent-ppo: one LSTM for the actor and the "
                        "critic (default: one each)")
    parser.add_argument("--eval-every", type=int, default=100_000, help="steps between validations")
    parser.add_argument("--val-n", type=int, default=1000, help="fixed validation episodes per validation")
    parser.add_argument("--eval-n", type=int, default=10_000, help="fixed test episodes played at the end")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--run-dir", required=True, help="run folder to write")
    parser.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its checkpoint")
    opts = parser.parse_args(argv)
    try:
        algo, policy = ALGOS[opts.algo]()
    except ImportError as e:
        print(f"sb3_baselines.py: error: {e.name} is not installed: pip install -e \".[sb3]\"", file=sys.stderr)
        return 2
    if opts.env not in gym.registry or not opts.env.startswith("ram/"):
        print(f"sb3_baselines.py: error: {opts.env!r} is not a ram/ env id; one of {sorted(envs.ENV_IDS)} or "
              f"{envs.CATCH_ID}", file=sys.stderr)
        return 2
    for name in ("steps", "n_envs", "frame_stack", "eval_every", "val_n", "eval_n", "threads"):
        if getattr(opts, name) < 1:
            print(f"sb3_baselines.py: error: --{name.replace('_', '-')} must be >= 1", file=sys.stderr)
            return 2
    if (opts.lstm_hidden or opts.shared_lstm) and opts.algo != "recurrent-ppo":
        print("sb3_baselines.py: error: --lstm-hidden and --shared-lstm shape RecurrentPPO's policy: add --algo "
              "recurrent-ppo", file=sys.stderr)
        return 2
    run_dir = Path(opts.run_dir)
    if (run_dir / "results.json").exists():
        print(f"sb3_baselines.py: error: {run_dir} already holds a finished run", file=sys.stderr)
        return 2
    if opts.resume != (run_dir / "checkpoint.zip").exists():
        why = "holds no checkpoint to resume" if opts.resume else "holds a run: add --resume to continue it"
        print(f"sb3_baselines.py: error: {run_dir} {why}", file=sys.stderr)
        return 2
    torch.set_num_threads(opts.threads)
    venv = train_env(opts)
    if opts.resume:
        state = json.loads((run_dir / "curve.json").read_text())
        model = algo.load(run_dir / "checkpoint.zip", env=venv, device="cpu")
    else:
        hyper = {k: getattr(opts, k) for k in HYPER if getattr(opts, k) is not None}
        lstm = {"lstm_hidden_size": opts.lstm_hidden} if opts.lstm_hidden else {}
        if opts.shared_lstm:
            lstm.update(shared_lstm=True, enable_critic_lstm=False)
        if lstm:
            hyper["policy_kwargs"] = lstm
        model = algo(policy, venv, seed=opts.seed, device="cpu", tensorboard_log=str(run_dir / "tb"), **hyper)
        checkpoint.write_text(json.dumps({"args": vars(opts), "algo": algo.__name__, "policy": policy}, indent=2),
                              run_dir / "config.json")
        state = {"curve": [], "best": -math.inf, "best_steps": 0, "train_minutes": 0.0}
    if model.num_timesteps < opts.steps:  # a resumed run stopped short of it (--steps may also end it where it is)
        model.learn(opts.steps - model.num_timesteps, callback=make_callback(opts, run_dir, state),
                    reset_num_timesteps=not opts.resume)
    best = algo.load(run_dir / "best.zip", device="cpu")  # validation's choice, never the test set's
    tic = time.perf_counter()
    score = 100.0 * play(best, opts, "test", opts.eval_n)
    test = {"greedy_error": 100.0 - score, "n": opts.eval_n}
    if opts.env == envs.CATCH_ID:  # the game's own figure, as RAM's results.json gives it
        test["greedy_catch_rate"] = score
    results = {"env": opts.env, "algo": algo.__name__, "mode": opts.mode, "steps": model.num_timesteps,
               "best_steps": state["best_steps"], "val_score": state["best"], "test": test,
               "train_minutes": state["train_minutes"], "test_minutes": (time.perf_counter() - tic) / 60,
               "params": sum(p.numel() for p in best.policy.parameters())}
    checkpoint.write_text(json.dumps(results, indent=2), run_dir / "results.json")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
