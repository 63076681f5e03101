"""Past one CPU: --device, canvases made on the device, and data-parallel runs under torchrun (gloo, on the CPU)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import train
from envs.device import DeviceCanvases
from envs.retina import Retina
from envs.tasks import DIGIT, get_task
from ram import checkpoint, parallel
from ram.config import Args, resolve
from ram.errors import UsageError
from ram.kinds import make_env
from ram.kinds import play as episode
from ram.model import RAMConfig, RecurrentAttention
from ram.registry import spec

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--task", "mnist28", "--glimpses", "3", "--batch-size", "8", "--hidden-size", "16", "--g-size", "16",
        "--glimpse-hidden", "8", "--eval-batch", "1000", "--mc-samples", "1", "--threads", "1", "--no-progress"]


def test_device_names(capsys):
    assert parallel.resolve_device("cpu") == torch.device("cpu")
    assert parallel.resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    for bad in ("gpu", "cuda:x", "mps"):
        with pytest.raises(UsageError, match="--device must be"):
            parallel.resolve_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="sees no CUDA GPU"):
            parallel.resolve_device("cuda")
        assert train.main([*TINY, "--device", "cuda"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "sees no CUDA GPU" in err and "Traceback" not in err
    assert train.main(["evaluate", "results/mnist28-6g-s0", "--device", "tpu"]) == 2
    assert "--device must be" in capsys.readouterr().err


def test_train_data_device_refuses_a_game():
    with pytest.raises(UsageError, match="played in its env"):
        parallel.train_data_of("device", torch.device("cpu"), get_task("catch"))
    assert parallel.train_data_of("auto", torch.device("cpu"), get_task("cluttered60")) == "env"
    assert parallel.train_data_of("auto", torch.device("cuda"), get_task("cluttered60")) == "device"
    assert parallel.train_data_of("auto", torch.device("cuda"), get_task("catch")) == "env"


def test_model_and_retina_follow_their_inputs_device():
    # The meta device computes shapes only: any tensor made on the CPU inside the model or the retina would clash.
    config = RAMConfig(glimpse_shape=(2, 8, 8), hidden_size=16, g_size=16, hg_size=8, hl_size=8, core="lstm")
    with torch.device("meta"):
        model = RecurrentAttention(config)
    images = torch.zeros(4, 28, 28, dtype=torch.uint8, device="meta")
    roll = model.rollout(images, torch.zeros(4, 2, device="meta"), Retina(g=8, k=2, s=2), 3)
    assert roll.logits.device.type == "meta" and roll.log_pi.shape == (4, 2) and roll.locations.shape == (4, 3, 2)


def test_device_canvases_follow_the_rules_and_resume_exactly(mnist):
    task = get_task("cluttered60")
    stream = DeviceCanvases(mnist, task, 64, "cpu")
    stream.reset(seed=1)
    (images, labels, positions), l_0 = stream.take()
    assert images.dtype == torch.uint8 and images.shape == (64, 60, 60) and labels.dtype == torch.int64
    assert l_0.shape == (64, 2) and l_0.min() >= -1 and l_0.max() < 1
    assert positions.min() >= 0 and positions.max() <= 60 - DIGIT
    # The digit of each label is on its canvas where the position says (clutter only brightens pixels).
    digits, pool_labels = mnist.train_images[:55000], mnist.train_labels[:55000]
    for i in range(8):
        x, y = positions[i].tolist()
        patch = images[i, y : y + DIGIT, x : x + DIGIT].numpy()
        match = [j for j in np.flatnonzero(pool_labels == labels[i].item())[:20000] if (patch >= digits[j]).all()]
        assert match, "no digit of the canvas's label lies under its position"
    state = stream.get_rng_state()
    after = stream.take()
    stream.set_rng_state(state)
    again = stream.take()
    assert torch.equal(after[0].images, again[0].images) and torch.equal(after[1], again[1])
    fresh = DeviceCanvases(mnist, task, 64, "cpu")
    fresh.reset(seed=1)
    assert torch.equal(fresh.take()[0].images, images)  # seeded: the same canvases


def test_repeated_canvases_share_one_integral_image_and_play_as_copies(mnist):
    # --rollouts K on the device: take hands out each canvas once; the rollout repeats its integral image K times,
    # and the episodes are those of the canvases copied K times (the same logits and paths, bit for bit).
    task = get_task("cluttered60")
    stream = DeviceCanvases(mnist, task, 12, "cpu", repeats=3)
    stream.reset(seed=2)
    canvases, l_0 = stream.take()
    assert canvases.images.shape == (4, 60, 60) and canvases.labels.shape == (4,) and l_0.shape == (12, 2)
    with pytest.raises(ValueError, match="groups of repeats=3"):
        stream.take(10)
    args = resolve(Args(task="cluttered60", recipe=False, hidden_size=16, g_size=16, glimpse_hidden=8))
    torch.manual_seed(0)
    model, _ = spec("ram").build(args, task, 10)
    shared = model.rollout(canvases.images, l_0, stream.retina, 4, greedy=True, repeats=3)
    copied = model.rollout(canvases.images.repeat_interleave(3, 0), l_0, stream.retina, 4, greedy=True)
    torch.testing.assert_close(shared.logits, copied.logits, rtol=0, atol=0)
    torch.testing.assert_close(shared.locations, copied.locations, rtol=0, atol=0)
    with pytest.raises(ValueError, match="12 rows for 4 images played 2 times"):
        model.rollout(canvases.images, l_0, stream.retina, 4, repeats=2)


def test_canvas_episode_is_the_env_episode(mnist):
    # The same canvases, from the centre and greedy: the device path (the retina on the tensors) and the env's path
    # give the same logits and glimpse locations.
    args = resolve(Args(task="cluttered60", recipe=False, start="center", hidden_size=16, g_size=16, glimpse_hidden=8))
    task, s = get_task("cluttered60"), spec("ram")
    env = make_env(s, args, task, "val", 16)
    torch.manual_seed(0)
    model, _ = s.build(args, task, 10)
    via_env = episode(s, model, env, greedy=True, index=np.arange(16))
    canvases = env.canvases(np.arange(16))

    class Given(DeviceCanvases):  # a stream handing out these canvases
        def take(self, n=None):
            return canvases._replace(images=torch.from_numpy(canvases.images),
                                     labels=torch.from_numpy(canvases.labels)), torch.zeros(16, 2)

    source = Given(mnist, task, 16, "cpu", start="center")
    via_device = episode(s, model, source, greedy=True)
    torch.testing.assert_close(via_device.logits, via_env.logits, rtol=0, atol=0)
    torch.testing.assert_close(via_device.locations, via_env.locations, rtol=0, atol=0)
    assert torch.equal(via_device.reward, via_env.reward) and torch.equal(via_device.labels, via_env.labels)
    env.close()


def test_training_on_device_canvases_resumes_exactly(mnist, tmp_path):
    common = [*TINY, "--samples", "48", "--eval-every", "16", "--train-data", "device"]
    assert train.main([*common, "--run-dir", str(tmp_path / "full")]) == 0
    assert train.main([*common, "--run-dir", str(tmp_path / "split"), "--stop-after", "16"]) == 0
    assert train.main(["--run-dir", str(tmp_path / "split"), "--resume", "--no-progress", "--threads", "1"]) == 0
    a, b = (checkpoint.load(tmp_path / name / "last.pt") for name in ("full", "split"))
    assert a["args"]["train_data"] == "device" and a["args"]["device"] == "cpu" and a["step"] == b["step"] == 6
    for name in a["model"]:
        torch.testing.assert_close(a["model"][name], b["model"][name], rtol=0, atol=0)


def torchrun(*argv: str, timeout: int = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *argv]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def _causes(stderr: str) -> str:
    """What a failed torchrun said, its ranks' own lines first: its summary alone ends with the signal, not the
    cause, and the cause scrolls out of a plain tail."""
    own = [line for line in stderr.splitlines() if line.startswith("[rank") or "terminate called" in line
           or "what():" in line or "Error" in line]
    return "\n".join(own[-40:]) + "\n--- its last lines ---\n" + stderr[-1500:]


@pytest.mark.slow
def test_ddp_averages_the_ranks_gradients_and_keeps_them_in_step(tmp_path):
    done = torchrun("tests/ddp_worker.py", str(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["own_differs"] > 0  # the ranks played different canvases: there is something to average
    assert all(r["max_diff"] < 1e-7 for r in ranks)  # DDP's gradient is the mean of the ranks' own
    assert ranks[0]["weights"] == ranks[1]["weights"]  # after the steps, the same weights on both ranks


@pytest.mark.slow
def test_torchrun_training_resumes_exactly_and_refuses_another_world(mnist, tmp_path, capsys):
    common = [*TINY, "--samples", "64", "--eval-every", "32"]
    full = torchrun("train.py", *common, "--run-dir", str(tmp_path / "full"))
    assert full.returncode == 0, full.stderr[-2000:]
    split = torchrun("train.py", *common, "--run-dir", str(tmp_path / "split"), "--stop-after", "32")
    assert split.returncode == 0, split.stderr[-2000:]
    stopped = checkpoint.load(tmp_path / "split" / "last.pt")
    assert stopped["world"] == 2 and stopped["samples"] == 32 and stopped["step"] == 2  # 2 ranks x 8 a step
    assert len(stopped["ranks"]) == 2 and len(set(stopped["replicas"])) == 1
    # One process cannot continue a 2-process run's streams: a one-line error.
    assert train.main(["--run-dir", str(tmp_path / "split"), "--resume", "--no-progress"]) == 2
    assert "trained on 2 process(es)" in capsys.readouterr().err
    resumed = torchrun("train.py", "--run-dir", str(tmp_path / "split"), "--resume", "--no-progress", "--threads", "1")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = (checkpoint.load(tmp_path / name / "last.pt") for name in ("full", "split"))
    assert a["step"] == b["step"] == 4
    for name in a["model"]:
        torch.testing.assert_close(a["model"][name], b["model"][name], rtol=0, atol=0)
    results = json.loads((tmp_path / "full" / "results.json").read_text())
    assert results["test"] == json.loads((tmp_path / "split" / "results.json").read_text())["test"]
    assert len(list((tmp_path / "full" / "tb").glob("events.*"))) == 1  # rank 0 alone logs


@pytest.mark.slow
def test_a_rank_that_dies_ends_the_run_and_it_resumes(mnist, tmp_path):
    import signal
    import time

    folder = tmp_path / "dies"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "train.py", *TINY,
               "--samples", "10000000", "--eval-every", "16", "--run-dir", str(folder)]
    job = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (folder / "last.pt").exists() and time.monotonic() < deadline and job.poll() is None:
        time.sleep(0.5)
    children = subprocess.run(["pgrep", "-P", str(job.pid)], capture_output=True, text=True).stdout.split()
    rank_1 = [pid for pid in children if b"RANK=1\0" in Path(f"/proc/{pid}/environ").read_bytes()]
    assert (folder / "last.pt").exists() and len(rank_1) == 1, "the run did not get going"
    os.kill(int(rank_1[0]), signal.SIGKILL)
    _, err = job.communicate(timeout=120)
    # Rank 0 says so in one line: torchrun ended it, or its all-reduce failed first
    said = [line for line in err.splitlines() if "train.py: " in line and "continue with --resume" in line]
    assert job.returncode != 0 and len(said) == 1 and ("terminated" in said[0] or "lost touch" in said[0]), err[-3000:]
    assert "[rank0]: " not in err  # torch prefixes an uncaught exception's traceback on a rank so
    resume = ("train.py", "--run-dir", str(folder), "--resume", "--stop-after", "16", "--no-progress", "--threads", "1")
    resumed = torchrun(*resume)
    err = resumed.stderr
    if resumed.returncode != 0 and "SIGABRT" in err and "]: Traceback" not in err and "train.py: " not in err:
        # Once in a few hundred full-suite runs on a loaded 2-core machine, gloo aborted a rank while the resumed
        # run's ranks connected (torchrun reported SIGABRT; no rank raised a Python error, "[rankN]: Traceback", and
        # train.py said nothing): a hiccup of the transport, not of resuming, so it gets one more try; a second
        # failure, or any error of a rank or of train.py, fails the test. (torchrun's own ChildFailedError
        # traceback, which every failed run prints, has no rank prefix.)
        first = resumed.stderr
        resumed = torchrun(*resume)
        assert resumed.returncode == 0, _causes(first) + "\n--- tried again ---\n" + _causes(resumed.stderr)
    assert resumed.returncode == 0, _causes(resumed.stderr)
    assert "continue with: torchrun --nproc_per_node=2 train.py" in resumed.stdout
    assert checkpoint.load(folder / "last.pt")["world"] == 2


def test_bf16_autocast_trains_with_float32_weights_and_policy(mnist, tmp_path):
    assert train.main([*TINY, "--samples", "32", "--eval-every", "32", "--autocast", "bf16", "--run-dir",
                       str(tmp_path / "bf16")]) == 0
    state = checkpoint.load(tmp_path / "bf16" / "last.pt")
    assert all(w.dtype == torch.float32 for w in state["model"].values())
    config = RAMConfig(glimpse_shape=(1, 8, 8), hidden_size=16, g_size=16, hg_size=8, hl_size=8)
    model = RecurrentAttention(config)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        roll = model.rollout(torch.zeros(4, 28, 28, dtype=torch.uint8), torch.zeros(4, 2), Retina(g=8), 3)
    assert roll.logits.dtype == torch.bfloat16 and roll.log_pi.dtype == torch.float32  # the policy stays float32


def test_a_lost_peer_is_told_apart_from_a_bug(monkeypatch):
    gloo = RuntimeError("[../gloo/transport/tcp/pair.cc:537] Read error [127.0.0.1]:1: Connection reset by peer.")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not parallel.lost_peer(gloo)  # one process: nothing to lose
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert parallel.lost_peer(gloo) and parallel.lost_peer(torch.distributed.DistError("nccl watchdog"))
    assert not parallel.lost_peer(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))


def test_a_run_saved_before_device_existed_resumes_on_the_cpu(mnist, tmp_path):
    folder = tmp_path / "old"
    assert train.main([*TINY, "--samples", "48", "--eval-every", "16", "--stop-after", "16", "--run-dir",
                       str(folder)]) == 0
    state = checkpoint.load(folder / "last.pt")
    for field in ("device", "train_data", "autocast", "lr_warmup"):  # as a checkpoint of the version before wrote it
        del state["args"][field]
    del state["world"]
    checkpoint.save(state, folder / "last.pt")
    assert train.main(["--run-dir", str(folder), "--resume", "--device", "cpu", "--no-progress", "--threads", "1"]) == 0
    resumed = checkpoint.load(folder / "last.pt")
    assert resumed["args"]["device"] == "cpu" and resumed["args"]["train_data"] == "env" and resumed["samples"] == 48
