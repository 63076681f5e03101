"""The errors a user can cause, each reported by ``train.py`` in one line (never a traceback).

``UsageError`` (exit 2) is a mistake in the command line; ``TrainingError`` (exit 1) a run that cannot go on. The
others are their modules' own: ``envs.mnist.DataError`` (data missing or corrupt), ``ram.checkpoint.CheckpointError``
(a checkpoint missing or unreadable).
"""


class UsageError(Exception):
    """A mistake in the command line: reported in one line, exit code 2."""


class TrainingError(Exception):
    """A run that cannot go on (e.g. a non-finite loss): reported in one line, exit code 1."""
