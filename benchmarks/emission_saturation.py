"""Whether a glimpse agent's location policy is saturated: |z| of its pre-tanh output, emission by emission.

mu = tanh(z) passes no gradient where |z| is large (tanh'(5) = 2e-4, tanh'(10) = 8e-9): a mean driven to the
canvas's edge there stays, whatever REINFORCE says (``--loc-limit`` pulls it back). This plays the fixed validation
canvases greedily from a run's checkpoint (nothing is trained) and prints, for each location chosen (emission 1:
the second glimpse's, or with DRAM's context the first real one's), the median and the largest |z| over both
coordinates and the share of means with a coordinate beyond 0.95 of the way to the edge.

    python benchmarks/emission_saturation.py runs/pairs100-4g-dram-s0
    python benchmarks/emission_saturation.py runs/A runs/B --canvases 1000

docs/several-objects.md ("Twice the images, and a start that stalled") has its readings.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from envs.mnist import DataError  # noqa: E402
from ram.checkpoint import CheckpointError  # noqa: E402
from ram.errors import UsageError  # noqa: E402
from ram.kinds import make_env, play  # noqa: E402
from ram.registry import spec  # noqa: E402
from ram.runs import load_model, load_run  # noqa: E402


@torch.no_grad()
def saturation(run: str, canvases: int) -> tuple[int, list[tuple[float, float, float]]]:
    """(the samples the checkpoint trained on, [(median |z|, max |z|, share of means with |mu| > 0.95 in a
    coordinate)] per location chosen)."""
    _, state, args, task = load_run(run, None)
    s = spec(args.model)
    if not s.policy or args.policy != "learned":
        raise UsageError(f"{run}: a {args.model} model with --policy {args.policy} has no learned location policy")
    model = load_model(state, args, task).eval()
    z = []
    hook = model.location.fc.register_forward_hook(lambda module, inputs, out: z.append(out.float()))
    try:
        env = make_env(s, args, task, "val", canvases)
        env.reset(seed=0)
        play(s, model, env, greedy=True)
    finally:
        hook.remove()
    # RAM computes a policy at its last glimpse too, a location never taken: one row per location chosen.
    return int(state["samples"]), [(e.abs().median().item(), e.abs().max().item(),
                                    (e.tanh().abs().amax(-1) > 0.95).float().mean().item())
                                   for e in z[:task.steps - 1]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run folders (or checkpoints) of glimpse agents")
    parser.add_argument("--canvases", type=int, default=500, help="validation canvases played (default: 500)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    a = parser.parse_args(argv)
    if a.canvases < 1 or a.threads < 1:
        parser.error(f"--canvases and --threads must be >= 1, got {a.canvases} and {a.threads}")
    torch.set_num_threads(a.threads)
    try:
        for run in a.runs:
            samples, rows = saturation(run, a.canvases)
            print(f"{run} ({samples:,} images)")
            for t, (median, largest, edge) in enumerate(rows, 1):
                print(f"  emission {t}: |z| median {median:.2f}, max {largest:.2f}; |mu| > 0.95: {edge:.0%}")
    except (UsageError, CheckpointError, DataError, OSError) as e:
        print(f"emission_saturation.py: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
