"""Datasets (envs.datasets): MNIST as before, Fashion-MNIST, image folders and .npz arrays, in grey and colour,
through the envs and the CLI; every bad input is one line, exit 2, nothing written."""

import gzip
import hashlib
import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from PIL import Image

import envs  # noqa: F401 - registers the ram/ environments
import train
from envs import mnist as M
from envs.datasets import MNIST_TRAIN, Dataset, as_dataset, carve, load_dataset
from envs.retina import Retina, integral_image
from envs.tasks import TASKS, compose, fixed, pool, task_from

N_TINY = 3  # classes of the tiny datasets


def tiny_images(n: int, side: int, colour: bool, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n images whose class is drawn in them: a bright square in one of N_TINY corners, so a model can learn it."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % N_TINY
    images = (rng.random((n, side, side, 3) if colour else (n, side, side)) * 40).astype(np.uint8)
    h = side // 2
    for i, label in enumerate(labels):
        y, x = [(0, 0), (0, h), (h, 0)][label]
        images[i, y:y + h, x:x + h] = 255 if not colour else [255, 60 * label, 255 - 80 * label]
    return images, labels


def write_folder(root, n: int = 36, side: int = 12, colour: bool = True, fmt: str = "png"):
    images, labels = tiny_images(n, side, colour)
    for i, (image, label) in enumerate(zip(images, labels)):
        folder = root / f"class{label}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i:03d}.{fmt}")
    return root


def run_cli(argv, capsys) -> tuple[int, str, str]:
    code = train.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


TINY_RUN = ["--task", "translated60", "--canvas-size", "24", "--glimpse-size", "6", "--scales", "2", "--glimpses",
            "2", "--samples", "256", "--batch-size", "64", "--eval-every", "128", "--eval-batch", "8",
            "--mc-samples", "2", "--threads", "1", "--no-progress"]


# -- MNIST, unchanged


def test_mnist_as_a_dataset_is_the_same_pools_as_before(mnist):
    data = load_dataset("mnist")
    assert data.classes == tuple("0123456789") and data.channels == 1 and data.side == 28
    assert np.array_equal(data.train_images, mnist.train_images[:MNIST_TRAIN])
    assert np.array_equal(data.val_labels, mnist.train_labels[MNIST_TRAIN:])
    assert np.array_equal(data.test_images, mnist.test_images)
    task = TASKS["cluttered60"]
    a, b = fixed(mnist, task, "test", 0, 50), fixed(data, task, "test", 0, 50)  # the arrays or the Dataset: one set
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert as_dataset(mnist).fingerprint == data.fingerprint


def test_a_checkpoint_saved_before_datasets_loads_its_task(mnist):
    old = {**{k: v for k, v in TASKS["cluttered60"].__dict__.items() if k != "object_size"}, "digit_size": 28}
    assert task_from(old) == TASKS["cluttered60"]  # 28 was MNIST's own side: the default now
    assert task_from({**old, "digit_size": 42}).object_size == 42


# -- Fashion-MNIST


def test_fashion_mnist_installs_from_a_system_package_folder(tmp_path, monkeypatch):
    """The route through a system package's gzipped files (Debian's dataset-fashion-mnist), with a stand-in folder
    and checksums of its stand-in files."""
    rng = np.random.default_rng(1)
    payload = {}
    for name, (_, shape) in M.FASHION_SOURCE.files.items():
        small = (4, 28, 28) if len(shape) == 3 else (4,)
        header = b"\x00\x00\x08" + bytes([len(small)]) + b"".join(d.to_bytes(4, "big") for d in small)
        payload[name] = header + rng.integers(0, 10, int(np.prod(small)), dtype=np.uint8).tobytes()
    system = tmp_path / "system"
    system.mkdir()
    for name, raw in payload.items():
        (system / f"{name}.gz").write_bytes(gzip.compress(raw))
    files = {n: (hashlib.sha256(raw).hexdigest(), (4, 28, 28) if "images" in n else (4,)) for n, raw in payload.items()}
    source = M.FASHION_SOURCE._replace(files=files, system=str(system), mirrors=())
    cache = tmp_path / "cache"
    arrays = M.load_idx(source, cache)
    assert sorted(p.name for p in cache.iterdir()) == sorted(files)
    assert arrays.train_images.shape == (4, 28, 28)
    assert bytes(arrays.test_labels) == payload["t10k-labels-idx1-ubyte"][8:]


def test_fashion_mnist_without_a_route_says_what_to_do(tmp_path):
    source = M.FASHION_SOURCE._replace(system=str(tmp_path / "none"), mirrors=())
    with pytest.raises(M.DataError, match="apt-get install dataset-fashion-mnist") as e:
        M.load_idx(source, tmp_path / "cache")
    assert "\n" not in str(e.value)


@pytest.mark.skipif(not (M.default_data_dir(M.FASHION_SOURCE).exists() or
                         (M.FASHION_SOURCE.system and M.Path(M.FASHION_SOURCE.system).exists())),
                    reason="Fashion-MNIST is neither cached nor installed (python -m envs --dataset fashion-mnist)")
def test_fashion_mnist_is_verified_and_split_as_mnist():
    data = load_dataset("fashion-mnist")
    assert data.classes[0] == "T-shirt/top" and data.n_classes == 10
    assert [len(data.split(s)[1]) for s in ("train", "val", "test")] == [55000, 5000, 10000]


# -- folders and arrays


def test_an_rgb_folder_is_read_split_and_fingerprinted(tmp_path):
    root = write_folder(tmp_path / "shapes", n=70)
    data = load_dataset(str(root))
    assert data.classes == ("class0", "class1", "class2") and data.channels == 3 and data.side == 12
    assert [len(data.split(s)[1]) for s in ("train", "val", "test")] == [55, 5, 10]  # 1/7 test, 1/12 of the rest val
    again = load_dataset(str(root), object_size=12)  # another cache key: read again, the same splits
    assert again is not data and np.array_equal(again.test_images, data.test_images)
    assert again.fingerprint == data.fingerprint
    (root / "class0" / "000.png").write_bytes((root / "class1" / "001.png").read_bytes())
    assert load_dataset(str(root), object_size=11).fingerprint != data.fingerprint  # other bytes, another print


def test_a_folder_with_train_and_test_keeps_them_and_centres_wide_images(tmp_path):
    for split, n in (("train", 24), ("test", 6)):
        images, labels = tiny_images(n, 10, colour=False)
        for i, (image, label) in enumerate(zip(images, labels)):
            folder = tmp_path / "data" / split / f"c{label}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image[:, 2:8]).save(folder / f"{i}.jpg")  # 10 x 6: centred on a 10 x 10 square
    data = load_dataset(str(tmp_path / "data"))
    assert data.channels == 1 and data.side == 10 and len(data.test_labels) == 6 and len(data.val_labels) == 2
    assert (data.test_images[:, :, :2] == 0).all() and (data.test_images[:, :, 8:] == 0).all()


def test_carved_splits_are_fixed_by_the_published_seed():
    images, labels = np.arange(100), np.arange(100)
    a, b = carve(images, labels, 7, "test"), carve(images, labels, 7, "test")
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert len(a[3]) == 14 and set(a[1]) | set(a[3]) == set(range(100))
    assert a[3].tolist() != list(range(14))  # a permutation, not the first ones


def test_an_npz_with_its_own_test_split_and_class_names(tmp_path):
    images, labels = tiny_images(30, 14, colour=False)
    test_images, test_labels = tiny_images(9, 14, colour=False, seed=1)
    np.savez(tmp_path / "d.npz", images=images, labels=labels, test_images=test_images, test_labels=test_labels,
             classes=np.array(["left", "right", "low"]))
    data = load_dataset(str(tmp_path / "d.npz"))
    assert data.classes == ("left", "right", "low") and np.array_equal(data.test_images, test_images)
    assert len(data.train_labels) + len(data.val_labels) == 30


# -- colour through the sensor and the canvases


def test_a_colour_glimpse_pools_each_channel_as_a_grey_one():
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 256, (3, 20, 20, 3), dtype=np.uint8))
    l = torch.tensor([[0.0, 0.0], [-0.7, 0.3], [0.95, -1.0]])
    retina = Retina(g=4, k=3, s=2)
    colour = retina(images, l)
    assert colour.shape == (3, 3, 3, 4, 4)  # (B, k, channels, g, g)
    for c in range(3):
        assert torch.equal(colour[:, :, c], retina(images[..., c].contiguous(), l))
    # a known answer: scale 2 at the centre spans pixels 2..17, its top-left cell (4 x 4 pixels) is 2..5 x 2..5
    expected = images[0, 2:6, 2:6, 1].double().mean() / 255
    assert abs(colour[0, 2, 1, 0, 0].item() - expected.item()) < 1e-6
    assert integral_image(images).shape == (3, 21, 21, 3)  # channels last, as the images


def test_colour_canvases_keep_the_brighter_value_per_channel():
    objects = np.zeros((4, 8, 8, 3), np.uint8)
    objects[..., 0] = 200  # red squares
    objects[1, ..., 2] = 100
    task = TASKS["translated60"].with_(canvas_size=16, n_clutter=2, clutter_size=4)
    canvases = compose(objects, np.arange(4), np.array([0, 1]), task, np.random.PCG64(0))
    assert canvases.images.shape == (2, 16, 16, 3)
    x, y = canvases.positions[1]
    assert (canvases.images[1, y:y + 8, x:x + 8] == [200, 0, 100]).all()
    assert canvases.images[..., 1].max() == 0  # no channel made up


# -- the environments


def test_the_env_takes_a_colour_dataset_and_passes_check_env(tmp_path):
    from gymnasium.utils.env_checker import check_env

    root = write_folder(tmp_path / "shapes")
    env = gym.make("ram/ClutteredMNIST-v0", task="translated60", dataset=str(root), canvas_size=24, glimpse_size=6,
                   n_scales=2).unwrapped
    assert env.observation_space["glimpse"].shape == (2, 3, 6, 6)
    assert env.action_space["label"].n == N_TINY
    check_env(env, skip_render_check=True)
    vec = gym.make_vec("ram/ClutteredMNIST-v0", num_envs=4, task="translated60", dataset=str(root), canvas_size=24,
                       split="test", observation="image")
    obs, _ = vec.reset(seed=0)
    assert obs["image"].shape == (4, 24, 24, 3)
    vec.close()


# -- the CLI: train, evaluate and draw


@pytest.mark.parametrize("source", ["folder", "npz"])
def test_a_tiny_dataset_trains_evaluates_and_draws_through_the_cli(tmp_path, capsys, source):
    if source == "folder":
        dataset = write_folder(tmp_path / "shapes")
    else:
        images, labels = tiny_images(40, 12, colour=False)
        dataset = tmp_path / "shapes.npz"
        np.savez(dataset, images=images, labels=labels)
    run = tmp_path / "run"
    code, out, err = run_cli([*TINY_RUN, "--dataset", str(dataset), "--run-dir", str(run)], capsys)
    assert code == 0, err
    config = json.loads((run / "config.json").read_text())
    assert config["dataset"]["channels"] == (3 if source == "folder" else 1)
    assert config["dataset"]["classes"] == (["class0", "class1", "class2"] if source == "folder" else ["0", "1", "2"])
    results = json.loads((run / "results.json").read_text())
    assert results["test"]["n"] == (5 if source == "folder" else 6)
    code, out, err = run_cli(["evaluate", str(run), "--threads", "1", "--mc-samples", "2"], capsys)
    assert code == 0 and json.loads(out)["greedy_error"] == results["test"]["greedy_error"]
    code, out, err = run_cli(["visualize", str(run), "--n", "2", "--threads", "1"], capsys)
    assert code == 0 and (run / "glimpses.png").exists()
    if source == "folder":  # the agent of a colour run reads colour canvases through the Python API
        from ram.agent import Agent

        agent = Agent.from_checkpoint(run)
        canvases = fixed(load_dataset(str(dataset)), task_from(json.loads((run / "results.json").read_text())["task"]),
                         "test", 0, 3)
        assert agent.predict(canvases.images).probs.shape == (3, N_TINY)
        with pytest.raises(ValueError, match=r"\(N, 24, 24, 3\)"):
            agent.predict(canvases.images[..., 0])


# -- bad input: one line, exit 2, nothing written


def bad_folders(tmp_path):
    one = tmp_path / "one"
    (one / "only").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(one / "only" / "a.png")
    empty = write_folder(tmp_path / "empty", n=9, colour=False)
    (empty / "class3").mkdir()
    junk = write_folder(tmp_path / "junk", n=9, colour=False)
    (junk / "class1" / "notes.png").write_text("not an image")
    mixed = write_folder(tmp_path / "mixed", n=9, colour=False)
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(mixed / "class2" / "big.png")
    big = write_folder(tmp_path / "big", n=9, side=40, colour=False)
    images, labels = tiny_images(10, 8, colour=False)
    np.savez(tmp_path / "disagree.npz", images=images, labels=labels[:7])
    return {"fewer than two classes": (one, "has 1 class folder(s): a dataset needs at least two"),
            "an empty class": (empty, "class 'class3' (class3) holds no images"),
            "a file that is not an image": (junk, "class1/notes.png is not a readable image"),
            "images of mixed sizes": (mixed, "pass --object-size S"),
            "objects larger than the canvas": (big, "(40 pixels) do not fit the 24-pixel canvas"),
            "an npz whose labels and images disagree": (tmp_path / "disagree.npz", "disagree: one label per image"),
            "a dataset that does not exist": (tmp_path / "nowhere", "unknown dataset")}


def test_every_bad_dataset_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys):
    for case, (dataset, message) in bad_folders(tmp_path).items():
        run = tmp_path / f"run-{case.replace(' ', '-')}"
        code, out, err = run_cli([*TINY_RUN, "--dataset", str(dataset), "--run-dir", str(run)], capsys)
        assert code == 2, case
        assert message in err and err.count("\n") == 1 and err.startswith("train.py: error:"), (case, err)
        assert not run.exists(), case


def test_mixed_sizes_train_with_object_size(tmp_path, capsys):
    mixed = write_folder(tmp_path / "mixed", n=30, colour=False)
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(mixed / "class2" / "big.png")
    code, _, err = run_cli([*TINY_RUN, "--dataset", str(mixed), "--object-size", "10", "--run-dir",
                            str(tmp_path / "run")], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "run" / "config.json").read_text())["dataset"]["side"] == 10


def test_an_image_too_large_to_decode_safely_is_refused(tmp_path, capsys, monkeypatch):
    root = write_folder(tmp_path / "shapes", n=9, colour=False)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 40)  # 12 x 12 = 144 pixels: over twice the limit
    code, _, err = run_cli([*TINY_RUN, "--dataset", str(root), "--run-dir", str(tmp_path / "run")], capsys)
    assert code == 2 and "is too large to decode safely" in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_evaluating_on_other_data_says_so(tmp_path, capsys):
    root = write_folder(tmp_path / "shapes")
    run = tmp_path / "run"
    assert run_cli([*TINY_RUN, "--dataset", str(root), "--run-dir", str(run)], capsys)[0] == 0
    other = write_folder(tmp_path / "other", n=12)
    (other / "class2").rename(other / "zebra")
    code, _, err = run_cli(["evaluate", str(run), "--dataset", str(other), "--threads", "1"], capsys)
    assert code == 2 and "a model names only the classes it learned" in err and err.count("\n") == 1
    changed = write_folder(tmp_path / "changed", n=40)  # the same classes, other images
    code, _, err = run_cli(["evaluate", str(run), "--dataset", str(changed), "--threads", "1"], capsys)
    assert code == 2 and "holds other images than" in err
    moved = tmp_path / "moved"
    root.rename(moved)  # the same data elsewhere: evaluated where they lie now
    code, out, err = run_cli(["evaluate", str(run), "--dataset", str(moved), "--threads", "1", "--mc-samples", "0"],
                             capsys)
    assert code == 0, err


def test_catch_takes_no_dataset(capsys):
    code, _, err = run_cli(["--task", "catch", "--dataset", "fashion-mnist"], capsys)
    assert code == 2 and "--dataset" in err


def test_the_dataset_names_the_default_run_folder():
    from ram.config import Args
    from ram.kinds import glimpse_run_name
    from ram.registry import spec

    args = Args(dataset="fashion-mnist", seed=1)
    assert glimpse_run_name(args, TASKS["cluttered60"], spec("ram")) == "fashion-mnist-cluttered60-6g-s1"
    args = Args(dataset="data/my-shapes", model="vit")
    assert glimpse_run_name(args, TASKS["cluttered60"], spec("vit")) == "my-shapes-cluttered60-vit-s0"


def test_pool_of_a_dataset_is_its_split():
    d = Dataset("x", ("a", "b"), np.zeros((3, 4, 4), np.uint8), np.array([0, 1, 0]), np.zeros((1, 4, 4), np.uint8),
                np.array([1]), np.zeros((2, 4, 4), np.uint8), np.array([0, 1]), "f")
    assert pool(d, "val")[1].tolist() == [1] and d.describe()["sizes"] == {"train": 3, "val": 1, "test": 2}


@pytest.mark.parametrize("model", ["soft", "vit", "cnn"])
def test_the_whole_canvas_models_train_on_colour_through_the_cli(tmp_path, capsys, model):
    root = write_folder(tmp_path / "shapes")
    run = tmp_path / "run"
    code, _, err = run_cli([*TINY_RUN, "--dataset", str(root), "--run-dir", str(run), "--model", model], capsys)
    assert code == 0, err
    assert json.loads((run / "config.json").read_text())["model_config"]["in_channels"] == 3
    code, out, err = run_cli(["evaluate", str(run), "--threads", "1"], capsys)
    assert code == 0 and 0 <= json.loads(out)["greedy_error"] <= 100
    if model != "cnn":  # the CNN has no attention to draw
        assert run_cli(["visualize", str(run), "--n", "2", "--threads", "1"], capsys)[0] == 0
        assert (run / "attention.png").exists()


def test_review_cases_of_folders_and_paths(tmp_path, capsys):
    """A train/ + val/ layout is refused (not two classes named train and val); dot folders inside a class are
    skipped; 16-bit grey keeps its top bits; a local folder named like a registered dataset stays a folder."""
    for split in ("train", "val"):
        write_folder(tmp_path / "tv" / split, n=9, colour=False)
    with pytest.raises(M.DataError, match="give train/ and test/"):
        load_dataset(str(tmp_path / "tv"))
    root = write_folder(tmp_path / "dots", n=21, colour=False)
    (root / "class0" / ".ipynb_checkpoints").mkdir()
    Image.fromarray(np.zeros((12, 12), np.uint8)).save(root / "class0" / ".ipynb_checkpoints" / "x.png")
    data = load_dataset(str(root))
    assert sum(len(data.split(s)[1]) for s in ("train", "val", "test")) == 21
    deep = write_folder(tmp_path / "deep", n=9, colour=False)
    Image.fromarray(np.full((12, 12), 40000, np.uint16)).save(deep / "class0" / "sixteen.png")
    data = load_dataset(str(deep))
    every = np.concatenate([data.split(s)[0] for s in ("train", "val", "test")])
    assert (every == 40000 >> 8).all(axis=(1, 2)).sum() == 1  # not saturated to 255
    from ram.runs import recorded_dataset

    assert recorded_dataset("fashion-mnist") == "fashion-mnist"
    assert recorded_dataset(str(tmp_path / "fashion-mnist")).endswith("fashion-mnist")
    import os

    here = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert recorded_dataset("./fashion-mnist") == "./fashion-mnist"
    finally:
        os.chdir(here)


def test_a_shipped_mnist_agent_refuses_other_data(tmp_path, capsys):
    images, labels = tiny_images(40, 28, colour=False)
    np.savez(tmp_path / "ten.npz", images=images, labels=np.arange(40) % 10)
    code, _, err = run_cli(["evaluate", "results/mnist28-6g-s0", "--dataset", str(tmp_path / "ten.npz")], capsys)
    assert code == 2 and "holds other images than" in err and err.count("\n") == 1


def test_clutter_wider_than_the_images_is_refused_with_a_spread_too(tmp_path, capsys):
    root = write_folder(tmp_path / "shapes", n=9, colour=False)
    code, _, err = run_cli([*TINY_RUN, "--dataset", str(root), "--clutter-spread", "1", "--clutter-size", "20",
                            "--run-dir", str(tmp_path / "run")], capsys)
    assert code == 2 and "cannot be cut from the 12-pixel images" in err
