"""Where a run computes: its device (``--device``) and its processes (``torchrun``, data-parallel).

Device: ``auto`` is ``cuda`` where torch sees a GPU, else ``cpu``; ``cuda`` (or ``cuda:N``) without one, or a name
torch does not know, is a one-line UsageError. The ``ram`` modules follow their inputs' device; the training loop
puts the model there, and, with ``--train-data device`` (the default on a GPU), makes its canvases there
(``envs.device``) so that a step copies nothing between host and device but the scalars it logs.

Processes: started by ``torchrun --nproc_per_node=N train.py ...``, a run is N processes (ranks) that each play
``--batch-size`` episodes a step on canvases of their own (each rank's stream is seeded by the seed and the rank),
and ``DistributedDataParallel`` averages their gradients, so that every rank takes the same step: the global batch
is N x ``--batch-size``. Rank 0 alone validates, tests, logs and writes files; its checkpoints hold every rank's
random state, so a run resumes exactly with the same N (with another N it is refused: the streams would differ).
gloo is the backend on the CPU, nccl on CUDA. ``python train.py`` without torchrun is one process, as before.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import timedelta

import torch
from torch import distributed as dist
from torch import nn

from ram.errors import TrainingError, UsageError
from ram.kinds import kind_of

DEVICES = "auto, cpu, cuda or cuda:N"


def resolve_device(name: str) -> torch.device:
    """The torch device of ``--device``: auto, cpu, cuda or cuda:N (UsageError for anything else, or no GPU)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise UsageError(f"--device must be {DEVICES}, got {name!r}") from None
    if device.type not in ("cpu", "cuda"):
        raise UsageError(f"--device must be {DEVICES}, got {name!r}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"--device {name}: torch sees no CUDA GPU here (a new run can take --device cpu; a run "
                             "that trained on a GPU resumes on one)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"--device {name}: there are {torch.cuda.device_count()} CUDA devices")
    return device


def train_data_of(train_data: str, device: torch.device, task) -> str:
    """Where the training canvases are made: ``env`` or ``device`` (``auto``: env on the CPU and for a kind whose
    screens only its env makes, a game's; device on a GPU)."""
    on_device = kind_of(task).device_canvases
    if train_data == "auto":
        return "device" if device.type == "cuda" and on_device else "env"
    if train_data == "device" and not on_device:
        raise UsageError(f"--train-data device makes cluttered-MNIST canvases: {task.name} is played in its env")
    return train_data


@dataclass(frozen=True)
class Ranks:
    """This process's place in the run: its rank and the number of ranks (1, rank 0, without torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the one that validates, tests, logs and writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def seed(self, seed: int) -> int:
        """The seed of this rank's canvas stream and policy noise: ``seed`` itself on rank 0 (a one-process run's)."""
        return seed if self.rank == 0 else int(torch.randint(2**31 - 1, (), generator=torch.Generator().manual_seed(
            seed * 1_000_003 + self.rank)))


def start(device: torch.device) -> tuple[Ranks, torch.device]:
    """Join the process group if torchrun started this process (WORLD_SIZE > 1): (ranks, the device of this rank,
    ``cuda:LOCAL_RANK`` on GPUs). Without torchrun: one rank, ``device`` as given."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Ranks(), device
    ranks = Ranks(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        if device.index is not None:
            raise UsageError(f"--device {device} names one GPU: under torchrun, pass --device cuda (rank r takes "
                             "cuda:LOCAL_RANK)")
        if ranks.local_rank >= torch.cuda.device_count():
            raise UsageError(f"local rank {ranks.local_rank} has no GPU of its own: this machine has "
                             f"{torch.cuda.device_count()} (--nproc_per_node at most that many)")
        device = torch.device("cuda", ranks.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        # 30 minutes (nccl's default is 10) for the other ranks to wait while rank 0 validates and writes.
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timedelta(minutes=30))
    return ranks, device


def stop(ranks: Ranks) -> None:
    if ranks.distributed and dist.is_initialized():
        dist.destroy_process_group()


def lost_peer(error: BaseException) -> bool:
    """Whether ``error`` is the collective of a data-parallel run failing because another rank went away (the
    backend's error, raised in backward's all-reduce or at a checkpoint's gather), rather than a bug to show."""
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return False
    # nccl's are DistErrors; gloo's a RuntimeError naming its transport's closed connection.
    return isinstance(error, dist.DistError) or any(f"Connection {how} by peer" in str(error)
                                                    for how in ("reset", "closed"))


def everywhere(flag: torch.Tensor, ranks: Ranks) -> bool:
    """Whether a boolean flag (a 0-d tensor) holds on every rank (a collective with several ranks)."""
    if not ranks.distributed:
        return bool(flag)
    flag = flag.to(torch.int32).clone()
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag)


class Silent:
    """The TensorBoard writer of ranks other than 0: every call does nothing."""

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: None


def gather(obj, ranks: Ranks) -> list:
    """``obj`` of every rank, in rank order (every rank calls it at the same step); [obj] in a one-process run."""
    if not ranks.distributed:
        return [obj]
    out = [None] * ranks.world
    dist.all_gather_object(out, obj)
    return out


def fingerprint(model: nn.Module) -> str:
    """A hash of the model's weights, bit for bit: equal on every rank of a healthy data-parallel run."""
    h = hashlib.sha256()
    for p in model.parameters():
        h.update(p.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


class EpisodeModule(nn.Module):
    """What ``DistributedDataParallel`` wraps: its forward is one batch of training episodes of ``model``, played by
    ``play(model, env)`` (the task kind's), so that DDP sees the forward whose backward it averages. The gradient
    routing is the model's own; DDP adds only the average over ranks, in backward."""

    def __init__(self, model: nn.Module, play):
        super().__init__()
        self.model, self.play = model, play

    def forward(self, env):
        return self.play(self.model, env)


def wrap(model: nn.Module, play, ranks: Ranks, device: torch.device, *, every_parameter: bool = True):
    """The callable ``env -> episodes`` the loop trains through: DDP over ``EpisodeModule`` with several ranks, the
    episode itself with one. ``every_parameter``: every parameter gets a gradient at every step, so DDP need not search
    the graph for unused ones (false with one glimpse: no step chooses a location, and the recurrent weights wait)."""
    if not ranks.distributed:
        return EpisodeModule(model, play)
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(EpisodeModule(model, play), device_ids=ids,
                                   find_unused_parameters=not every_parameter)


def rng_state(env, device: torch.device) -> dict:
    """This process's random state: torch's, the training env's and, on a GPU, the GPU's."""
    state = {"torch": torch.get_rng_state(), "env": env.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def rank_states(ranks: Ranks, env, model: nn.Module, device: torch.device, finite: torch.Tensor, samples: int,
                last) -> dict:
    """What a checkpoint holds of the ranks: every rank's random state and a hash of its weights, after checking that
    every loss so far was finite (``check_finite``) and that the weights are the same on every rank (a collective:
    all ranks call it at the same steps)."""
    check_finite(finite, ranks, samples, last)
    if not ranks.distributed:
        return {"rng": rng_state(env, device), "world": 1}
    rngs, replicas = zip(*gather((rng_state(env, device), fingerprint(model)), ranks))
    if len(set(replicas)) > 1:
        raise TrainingError(f"the ranks' weights differ at {samples:,} samples (a data-parallel bug)")
    return {"rng": rngs[0], "world": ranks.world, "ranks": list(rngs), "replicas": list(replicas)}


def check_finite(finite: torch.Tensor, ranks: Ranks, samples: int, last) -> None:
    """TrainingError unless every loss so far was finite on every rank (``finite``: a flag the loop keeps on the
    device; across ranks it is all-reduced, so all of them stop together). No checkpoint is written after a
    non-finite loss: ``last`` (last.pt) holds the last good state."""
    if not everywhere(finite, ranks):
        raise TrainingError(f"the loss became non-finite by {samples:,} samples; {last} holds the last evaluated "
                            "state (try a smaller --lr)")


def check_world(resumed: dict | None, ranks: Ranks, run_dir) -> None:
    """A run resumes with as many processes as it trained with (each rank's stream is its own)."""
    world = 1 if resumed is None else resumed.get("world", 1)
    if resumed is not None and world != ranks.world:
        raise UsageError(f"{run_dir} trained on {world} process(es): resume it with as many "
                         f"(torchrun --nproc_per_node={world}), not {ranks.world}")
