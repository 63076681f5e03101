"""``python -m envs [--dataset mnist|fashion-mnist] [--data-dir DIR]``: fetch and verify a dataset ahead of time."""

import sys

from envs.mnist import main

sys.exit(main())
