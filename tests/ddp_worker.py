"""One rank of the data-parallel check in tests/test_parallel.py, started by torchrun (2 processes, gloo):

    torchrun --nproc_per_node=2 tests/ddp_worker.py OUT_DIR

Each rank plays one training batch of its own canvases twice from the same random state: once through the plain
model (its own gradient), once through ram.parallel.wrap (DDP: the averaged gradient). It then takes a few Adam
steps through DDP and writes, to OUT_DIR/rank{R}.json, the largest difference between the averaged gradient and the
mean of every rank's own, and the hash of its weights after the steps.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from torch import distributed as dist

from envs.tasks import get_task
from ram import parallel
from ram.config import Args, resolve
from ram.kinds import kind_of, make_env, n_actions, play
from ram.registry import spec


def gradients(model) -> torch.Tensor:
    return torch.cat([p.grad.reshape(-1) for p in model.parameters()])


def main(out: Path) -> None:
    torch.set_num_threads(1)
    ranks, device = parallel.start(torch.device("cpu"))
    assert ranks.world == 2 and dist.get_backend() == "gloo"
    args = resolve(Args(task="cluttered60", recipe=False, batch_size=8, hidden_size=16, g_size=16, glimpse_hidden=8,
                        seed=3))
    task, s = get_task("cluttered60", n_glimpses=3), spec("ram")
    torch.manual_seed(ranks.seed(args.seed))
    env = make_env(s, args, task, "train", args.batch_size)
    env.reset(seed=ranks.seed(args.seed))
    model, _ = s.build(args, task, n_actions(env))
    episodes = lambda m, e: play(s, m, e, greedy=False)  # noqa: E731
    plain, ddp = parallel.EpisodeModule(model, episodes), parallel.wrap(model, episodes, ranks, device)  # DDP
    loss = kind_of(task).loss

    def backward(through) -> torch.Tensor:
        model.zero_grad(set_to_none=True)
        loss(through(env), reinforce_weight=1.0, baseline_weight=1.0).total.backward()
        return gradients(model).clone()

    state = (torch.get_rng_state(), env.get_rng_state())
    own = backward(plain)
    torch.set_rng_state(state[0])
    env.set_rng_state(state[1])
    averaged = backward(ddp)
    everyone = [torch.zeros_like(own) for _ in range(ranks.world)]
    dist.all_gather(everyone, own)
    mean = torch.stack(everyone).mean(0)

    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(3):
        optimizer.zero_grad(set_to_none=True)
        loss(ddp(env), reinforce_weight=1.0, baseline_weight=1.0).total.backward()
        optimizer.step()
    result = {"rank": ranks.rank, "max_diff": (averaged - mean).abs().max().item(),
              "own_differs": (everyone[0] - everyone[1]).abs().max().item(), "weights": parallel.fingerprint(model)}
    (out / f"rank{ranks.rank}.json").write_text(json.dumps(result))
    env.close()
    parallel.stop(ranks)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
