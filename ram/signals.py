"""SIGTERM as Ctrl-C: a job scheduler, or torchrun ending the ranks when one has died, stops a run where it is, and
every file it writes is written atomically, so ``--resume`` continues from the last checkpoint."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the run is, like Ctrl-C's KeyboardInterrupt."""


def _terminate(signum, frame):
    raise Terminated


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises ``Terminated`` (only the main thread can set a handler: elsewhere, no
    change); the previous handler comes back after it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
