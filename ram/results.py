"""What a finished run leaves: the one test of the checkpoint validation chose (results.json), the agent alone
(agent.pt), and the pictures of where it attends (``visualize``, also ``train.py visualize``)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import torch

from ram import checkpoint, pictures
from ram.config import Args
from ram.errors import UsageError
from ram.kinds import kind_of
from ram.registry import spec
from ram.runs import Progress, init_record, load_model, load_run


def finish(model, config, args: Args, task, run_dir: Path, writer, run: Progress) -> dict:
    """Test the checkpoint validation chose, once (never used for selection); write results.json, agent.pt and the
    pictures. Returns results.json's contents, with the pictures written ("pictures": their paths and note) beside."""
    s, kind = spec(args.model), kind_of(task)
    best = checkpoint.load(run_dir / "best.pt")
    model.load_state_dict(best["model"])
    if s.policy:
        model.location.std = config.std  # Monte-Carlo rollouts draw with the std the agent keeps
    test_env = kind.make_env(s, args, task, "test", args.eval_batch)
    tic = time.perf_counter()
    errors = kind.evaluate(s, model, test_env, test_env.split_size, mc_samples=args.mc_samples, seed=args.seed)
    results = {
        "task": asdict(task), "checkpoint": "best.pt", "samples": best["samples"], "val_error": best["val_error"],
        "test": {**errors, **({"mc_samples": args.mc_samples} if "mc_error" in errors else {}),
                 "n": test_env.split_size},
        "train_minutes": run.elapsed / 60, "test_minutes": (time.perf_counter() - tic) / 60,
        "params": sum(p.numel() for p in model.parameters()),
    }
    if kind.opponents is not None:  # the players without a retina, on the same test episodes
        results["baselines"] = kind.opponents(test_env, test_env.split_size, seed=args.seed)
    if args.init is not None:  # a fine-tuned agent: what it had seen before this run
        results["init"] = init_record(args.init, run.init_samples)
    test_env.close()
    results["history"] = run.history  # every evaluation, also those after the best one
    checkpoint.write_text(json.dumps(results, indent=2), run_dir / "results.json")
    # The trained agent alone (no optimiser state): small enough to ship, loadable by ram.agent.Agent.
    checkpoint.save(checkpoint.agent_only(best), run_dir / "agent.pt")
    # Validation error only: the test error stays out of the place where hyperparameters are compared.
    writer.add_hparams({k: v for k, v in asdict(args).items() if isinstance(v, (int, float, str, bool))},
                       {"hparam/best_val_error": best["val_error"]}, run_name="hparams")
    writer.close()
    picture = kind.draw(s, model, args, task, "test", 0, min(8, results["test"]["n"]))
    if picture is None:
        return results
    return {**results, "pictures": ([str(p) for p in pictures.write(picture, run_dir / picture.name)], picture.note)}


def evaluate_run(run: str, *, split: str, mc_samples: int, data_dir: str | None,
                 device: torch.device | str = "cpu", dataset: str | None = None) -> dict:
    """`train.py evaluate`: a run's (or a shipped agent's) errors on a fixed split, and its kind's rival players'.
    ``dataset``: where the run's data lie here, if not where it recorded them."""
    path, state, args, task = load_run(run, data_dir, dataset)
    s, kind = spec(args.model), kind_of(task)
    env = kind.make_env(s, args, task, split, args.eval_batch)
    model = load_model(state, args, task).to(device)
    errors = kind.evaluate(s, model, env, env.split_size, mc_samples=mc_samples, seed=args.seed)
    more = {"mc_samples": mc_samples} if "mc_error" in errors else {}
    if kind.opponents is not None:  # the players without a retina, on the same episodes
        more["baselines"] = kind.opponents(env, env.split_size, seed=args.seed)
    env.close()
    return {"checkpoint": str(path), "split": split, "n": env.split_size, **errors, **more}


def visualize(run: str, *, n: int = 8, first: int = 0, out: str | None = None, data_dir: str | None = None,
              device: torch.device | str = "cpu", dataset: str | None = None) -> tuple[list[Path], str]:
    """Draw where RUN's model attends on test episodes first..first+n, as its task's kind draws them: a PNG of the
    whole episodes and a GIF of their steps, beside the checkpoint unless ``out``: RUN/NAME for a run folder (its
    best.pt), FILE-NAME for another file (so RUN/agent-NAME for a shipped folder, which keeps the pictures it ships
    with). Returns the files written and what the picture notes (e.g. a game's balls caught)."""
    path, state, args, task = load_run(run, data_dir, dataset)
    model = load_model(state, args, task).to(device)
    picture = kind_of(task).draw(spec(args.model), model, args, task, "test", first, n)
    if picture is None:
        raise UsageError(f"a {args.model} model has no attention to draw")  # the CNN, the FC net
    where = path.parent / picture.name if path.name == "best.pt" else path.with_name(f"{path.stem}-{picture.name}")
    return pictures.write(picture, Path(out) if out else where), picture.note
