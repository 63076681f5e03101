"""``python -m envs [--data-dir DIR]``: fetch and verify MNIST ahead of time."""

import sys

from envs.mnist import main

sys.exit(main())
