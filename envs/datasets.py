"""Datasets: the labelled images that fill a task's canvases (``--dataset NAME|PATH``).

A dataset is uint8 images, ``(N, S, S)`` grey or ``(N, S, S, 3)`` RGB, square (an image that is not is centred on a
black square of its longer side, so it keeps its own size), integer labels ``0..n - 1`` naming ``classes``, and three
splits: ``train`` (the pool training canvases draw from), ``val`` (a fixed part of the training images, for
selection) and ``test``. Sources (``load_dataset``):

- ``mnist``, ``fashion-mnist`` (``SOURCES``): the four IDX files (``envs.mnist``); val is the last 5,000 training
  images, as it has always been for MNIST (both files come shuffled), test the 10,000 test images.
- a folder of images, one subfolder per class (torchvision's ImageFolder layout), any image Pillow reads (PNG, JPEG,
  ...); with ``train/`` and ``test/`` folders of that layout, those are the splits, else a seeded test split is
  carved;
- an ``.npz`` file with ``images`` and ``labels``, optionally ``test_images``, ``test_labels`` and ``classes``.

Carved splits (folders and arrays): a permutation from ``PUBLISHED_SEED``'s raw PCG64 stream (fixed by numpy's
stability promise) takes one image in 7 for test (where the source has none) and one in 12 of the rest for val.
``Dataset.fingerprint`` is a SHA-256 of what was read (every file's name and bytes, or the arrays; computed when first
asked for), which runs record, so that evaluating on other data says so. docs/datasets.md has the details.
"""

from __future__ import annotations

import hashlib
import io
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from envs.mnist import SOURCES, DataError, load_idx

PUBLISHED_SEED = 20140611  # every fixed set's and split's seed (the paper's arXiv date)
MNIST_TRAIN = 55000  # the IDX datasets' training pool: the first 55,000 images; val the last 5,000


@dataclass(frozen=True, eq=False)
class Dataset:
    """Labelled images in three splits (see the module docstring)."""

    name: str  # as --dataset named it: a registered name, or a path
    classes: tuple[str, ...]
    train_images: np.ndarray  # (N, S, S) or (N, S, S, 3) uint8
    train_labels: np.ndarray  # (N,) integers in 0..len(classes) - 1
    val_images: np.ndarray
    val_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    digest: str | Callable[[], str]  # the fingerprint, or how to compute it (hashing MNIST takes 60 ms: when asked)

    @cached_property
    def fingerprint(self) -> str:
        """SHA-256 (hex) of the data as read."""
        return self.digest if isinstance(self.digest, str) else self.digest()

    @property
    def channels(self) -> int:
        """1 for grey images, 3 for RGB."""
        return 1 if self.train_images.ndim == 3 else self.train_images.shape[3]

    @property
    def side(self) -> int:
        """The images' side in pixels."""
        return self.train_images.shape[1]

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def split(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(images, labels) of ``split``: train, val or test."""
        if split not in ("train", "val", "test"):
            raise ValueError(f"unknown split {split!r}; choose one of train, val, test")
        return getattr(self, f"{split}_images"), getattr(self, f"{split}_labels")

    def describe(self) -> dict:
        """What a run records of its data (config.json, checkpoints): enough to tell other data apart."""
        return {"name": self.name, "classes": list(self.classes), "channels": self.channels, "side": self.side,
                "sizes": {s: len(self.split(s)[1]) for s in ("train", "val", "test")},
                "fingerprint": self.fingerprint}


def _hash_arrays(*arrays: np.ndarray, shapes: bool = True) -> str:
    """SHA-256 of the arrays' values, with (``shapes``) their types and shapes; the IDX datasets' is of their values
    alone (their shapes are pinned), as runs recorded it first."""
    h = hashlib.sha256()
    for array in arrays:
        if shapes:
            h.update(str((array.dtype.str, array.shape)).encode())
        h.update(np.ascontiguousarray(array).data)
    return h.hexdigest()


def from_idx(name: str, arrays, classes: tuple[str, ...]) -> Dataset:
    """A dataset of the four IDX arrays (``envs.mnist.MNIST``): val the last 5,000 training images."""
    return Dataset(name, classes, arrays.train_images[:MNIST_TRAIN], arrays.train_labels[:MNIST_TRAIN],
                   arrays.train_images[MNIST_TRAIN:], arrays.train_labels[MNIST_TRAIN:], arrays.test_images,
                   arrays.test_labels, lambda: _hash_arrays(*arrays, shapes=False))


def as_dataset(data) -> Dataset:
    """A Dataset as it is, or MNIST's four arrays (``envs.mnist.MNIST``) as the ``mnist`` dataset."""
    if isinstance(data, Dataset):
        return data
    return from_idx("mnist", data, SOURCES["mnist"].classes)


def _order(n: int, salt: str) -> np.ndarray:
    """A fixed permutation of n: the order of PUBLISHED_SEED's raw 64-bit stream (stable across numpy versions)."""
    keys = np.random.PCG64(np.random.SeedSequence([PUBLISHED_SEED, zlib.crc32(salt.encode())])).random_raw(n)
    return np.argsort(keys, kind="stable")


def carve(images: np.ndarray, labels: np.ndarray, fraction: int, salt: str):
    """Split off one in ``fraction`` (at least one) by a fixed permutation: (rest images, rest labels, part images,
    part labels)."""
    order = _order(len(labels), salt)
    k = max(1, round(len(labels) / fraction))
    part, rest = np.sort(order[:k]), np.sort(order[k:])
    return images[rest], labels[rest], images[part], labels[part]


def _assemble(name: str, classes, train, test, fingerprint: str) -> Dataset:
    """Carve the splits the source lacks (test one in 7 of all, val one in 12 of the rest) and check each has images."""
    images, labels = train
    if test is None:
        if len(labels) < 3:
            raise DataError(f"{name} has {len(labels)} images: a train, a val and a test split need at least 3")
        images, labels, *test = carve(images, labels, 7, "test")
    if len(labels) < 2:
        raise DataError(f"{name} has {len(labels)} training images: a train and a val split need at least 2")
    images, labels, val_images, val_labels = carve(images, labels, 12, "val")
    if len(test[1]) == 0:
        raise DataError(f"{name}'s test split is empty")
    return Dataset(name, tuple(classes), images, labels.astype(np.int64), val_images, val_labels.astype(np.int64),
                   test[0], np.asarray(test[1]).astype(np.int64), fingerprint)


def _square(image: np.ndarray) -> np.ndarray:
    """An (H, W[, C]) image centred on a black square of its longer side (as it is when square)."""
    H, W = image.shape[:2]
    if H == W:
        return image
    S = max(H, W)
    out = np.zeros((S, S, *image.shape[2:]), image.dtype)
    top, left = (S - H) // 2, (S - W) // 2
    out[top:top + H, left:left + W] = image
    return out


def _stack(images: list[np.ndarray], names: list[str], object_size: int | None, where: str) -> np.ndarray:
    """One (N, S, S[, 3]) uint8 array of square images: all of one size as they are (the task resizes its objects
    to ``object_size`` as it places them), or, of mixed sizes, each resized to ``object_size`` here."""
    colour = any(im.ndim == 3 for im in images)
    if colour:  # a grey image among colour ones becomes RGB: three equal channels
        images = [np.repeat(im[..., None], 3, axis=2) if im.ndim == 2 else im for im in images]
    images = [_square(im) for im in images]
    if object_size is not None and len({im.shape[0] for im in images}) > 1:
        from PIL import Image

        images = [im if im.shape[0] == object_size else
                  np.asarray(Image.fromarray(im).resize((object_size, object_size), Image.Resampling.BILINEAR))
                  for im in images]
    sides = {im.shape[0] for im in images}
    if len(sides) > 1:
        big = max(range(len(images)), key=lambda i: images[i].shape[0])
        small = min(range(len(images)), key=lambda i: images[i].shape[0])
        raise DataError(f"{where} holds images of {len(sides)} sizes (e.g. {names[small]}: {images[small].shape[0]} "
                        f"pixels, {names[big]}: {images[big].shape[0]}): pass --object-size S to resize them to S x S")
    return np.stack(images)


def _read_image(path: Path, root: Path) -> np.ndarray:
    """An image file as (H, W) grey or (H, W, 3) RGB uint8; DataError naming it if it is not a readable image, is too
    large to decode safely (Pillow's decompression-bomb limit) or is not of 8 or 16 bits."""
    from PIL import Image

    name = path.relative_to(root)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(path.read_bytes())) as im:
                im.load()
                if im.mode.startswith("I;16"):  # 16-bit grey: its top 8 bits (convert("L") would saturate)
                    return (np.asarray(im, dtype=np.uint16) >> 8).astype(np.uint8)
                if im.mode in ("I", "F"):
                    raise DataError(f"{name} is a 32-bit ({im.mode}) image: save it with 8 or 16 bits a channel")
                grey = im.mode in ("1", "L", "LA", "P") and (im.mode != "P" or _grey_palette(im))
                return np.asarray(im.convert("L" if grey else "RGB"), dtype=np.uint8)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
        raise DataError(f"{name} is too large to decode safely ({e})".split(" could be")[0]) from None
    except OSError as e:  # PIL.UnidentifiedImageError is an OSError
        raise DataError(f"{name} is not a readable image ({type(e).__name__})") from None


def _grey_palette(im) -> bool:
    """A palette image whose colours are all grey."""
    rgb = np.asarray(im.convert("RGB"))
    return bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())


def _hidden(path: Path, root: Path) -> bool:
    """A file or folder whose name, or a folder's on its way, starts with a dot (.ipynb_checkpoints, .DS_Store)."""
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _classes_of(folder: Path, root: Path) -> list[Path]:
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder")
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise DataError(f"{folder} has {len(classes)} class folder(s): a dataset needs at least two (one subfolder "
                        "of images per class)")
    return classes


def _read_split(folder: Path, root: Path, classes: list[str], h) -> tuple[list, list[int], list[str]]:
    images, labels, names = [], [], []
    present = {p.name for p in _classes_of(folder, root)}
    if sorted(present) != classes:
        raise DataError(f"{folder.relative_to(root)}'s classes {sorted(present)} differ from train's {classes}")
    for label, cls in enumerate(classes):
        files = sorted(p for p in (folder / cls).rglob("*") if p.is_file() and not _hidden(p, root))
        if not files:
            raise DataError(f"class {cls!r} ({(folder / cls).relative_to(root)}) holds no images")
        for path in files:
            rel = path.relative_to(root).as_posix()
            h.update(rel.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
            images.append(_read_image(path, root))
            labels.append(label)
            names.append(rel)
    return images, labels, names


def image_folder(path: Path, name: str, object_size: int | None = None) -> Dataset:
    """A folder of class subfolders, or of ``train/`` and ``test/`` folders of that layout."""
    h = hashlib.sha256()
    split = (path / "train").is_dir() or (path / "test").is_dir()
    if split:  # the train/ and test/ layout: both, and nothing else beside them
        others = sorted(p.name for p in path.iterdir() if p.is_dir() and not _hidden(p, path)
                        and p.name not in ("train", "test"))
        if not ((path / "train").is_dir() and (path / "test").is_dir()) or others:
            found = sorted(p.name for p in path.iterdir() if p.is_dir() and not _hidden(p, path))
            raise DataError(f"{path} holds the folders {found}: give train/ and test/ (each of class folders; "
                            "validation is carved from train/), or class folders alone")
    train_dir = path / "train" if split else path
    classes = [p.name for p in _classes_of(train_dir, path)]
    images, labels, names = _read_split(train_dir, path, classes, h)
    n_train = len(labels)
    if split:
        more = _read_split(path / "test", path, classes, h)
        images, labels, names = images + more[0], labels + more[1], names + more[2]
    stacked, labels = _stack(images, names, object_size, str(path)), np.asarray(labels, np.int64)
    train = stacked[:n_train], labels[:n_train]
    test = (stacked[n_train:], labels[n_train:]) if split else None
    return _assemble(name, classes, train, test, h.hexdigest())


def arrays(path: Path, name: str) -> Dataset:
    """An ``.npz`` with ``images`` (N, H, W) or (N, H, W, 3) uint8 and ``labels`` (N,), optionally ``test_images``,
    ``test_labels`` and ``classes`` (strings)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except (OSError, ValueError, zlib.error) as e:
        raise DataError(f"{path} is not a readable .npz file ({e})") from None
    for key in ("images", "labels"):
        if key not in data:
            raise DataError(f"{path} has no {key!r} array (it has {', '.join(sorted(data)) or 'none'})")
    if ("test_images" in data) != ("test_labels" in data):
        raise DataError(f"{path} has one of test_images and test_labels without the other")

    def checked(images_key: str, labels_key: str):
        images, labels = data[images_key], data[labels_key]
        if images.dtype != np.uint8:
            raise DataError(f"{path}: {images_key} must be uint8 (0..255), got {images.dtype}")
        if images.ndim == 4 and images.shape[3] == 1:
            images = images[..., 0]
        if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[3] != 3):
            raise DataError(f"{path}: {images_key} must be (N, H, W) or (N, H, W, 3), got {images.shape}")
        if labels.ndim != 1 or len(labels) != len(images):
            raise DataError(f"{path}: {labels_key} {labels.shape} and {images_key} {images.shape} disagree: one "
                            "label per image")
        if not np.issubdtype(labels.dtype, np.integer) or (len(labels) and labels.min() < 0):
            raise DataError(f"{path}: {labels_key} must be integers >= 0, got {labels.dtype}")
        if images.shape[1] != images.shape[2]:
            images = np.stack([_square(im) for im in images])
        return images, labels.astype(np.int64)

    train = checked("images", "labels")
    test = checked("test_images", "test_labels") if "test_images" in data else None
    n = int(max(train[1].max(initial=0), -1 if test is None else test[1].max(initial=0))) + 1
    if "classes" in data:
        classes = [str(c) for c in data["classes"].reshape(-1)]
        if n > len(classes):
            raise DataError(f"{path}: a label {n - 1} but only {len(classes)} classes")
    else:
        classes = [str(i) for i in range(n)]
    if len(classes) < 2:
        raise DataError(f"{path} has {len(classes)} class: a dataset needs at least two")
    if test is not None and test[0].shape[1:] != train[0].shape[1:]:
        raise DataError(f"{path}: test_images are {test[0].shape[1:]}, images {train[0].shape[1:]}: both must be of "
                        "one shape")
    digest = _hash_arrays(*train, *(test or ()), np.array(classes))  # the arrays, not the zip's bytes (timestamps)
    return _assemble(name, classes, train, test, digest)


_CACHE: dict[tuple, Dataset] = {}


def load_dataset(name: str = "mnist", *, data_dir: str | Path | None = None, object_size: int | None = None) -> Dataset:
    """The dataset ``name``: a registered one (``mnist``, ``fashion-mnist``; ``data_dir`` is its cache folder), an
    image folder or an ``.npz`` file. ``object_size`` resizes a folder's images to S x S where their sizes are mixed
    (so that they stack); images of one size are kept as they are (the task resizes its objects as it places them).
    Cached per argument in-process. Raises DataError with a one-line message."""
    where = Path(name).expanduser().resolve()
    key = (name, str(data_dir)) if name in SOURCES else (str(where), object_size if where.is_dir() else None)
    if key in _CACHE:
        return _CACHE[key]
    if name in SOURCES:
        source = SOURCES[name]
        dataset = from_idx(name, load_idx(source, data_dir), source.classes)
    else:
        path = Path(name).expanduser()
        if path.is_dir():
            dataset = image_folder(path, name, object_size)
        elif path.is_file() and path.suffix == ".npz":
            dataset = arrays(path, name)
        elif path.exists():
            raise DataError(f"dataset {name!r} is neither a folder of class folders nor an .npz file")
        else:
            raise DataError(f"unknown dataset {name!r}: not one of {', '.join(SOURCES)}, nor a folder or .npz file")
    _CACHE[key] = dataset
    return dataset
