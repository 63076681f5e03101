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
