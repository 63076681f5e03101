"""Gymnasium environments for the tasks of "Recurrent Models of Visual Attention" (Mnih et al., 2014).

``import envs`` registers, in the ``ram`` namespace (gymnasium 1.x has no plugin discovery):

- ``ram/ClutteredMNIST-v0``: any task, chosen with ``task=`` (default ``cluttered60``) and overrides, filled with
  ``dataset=`` (default ``mnist``; ``fashion-mnist``, an image folder or an ``.npz``: ``envs.datasets``);
- one id per preset: ``ram/MNIST28-v0``, ``ram/Translated60-v0``, ``ram/Cluttered60-v0``, ``ram/Cluttered100-v0``;
  with two digits on a canvas (Ba et al. 2015): ``ram/Pairs100-v0`` (read both, in reading order) and
  ``ram/Addition100-v0`` (name their sum);
- ``ram/Catch-v0``: the paper's game of Catch through the retina (``envs.catch``; needs no MNIST).

Every id has a native vector env: ``gymnasium.make_vec(id, num_envs=B)``.
"""

from gymnasium.envs.registration import register, registry

from envs.catch import CatchEnv, CatchVectorEnv
from envs.cluttered_mnist import ClutteredMNISTEnv, ClutteredMNISTVectorEnv
from envs.datasets import Dataset, load_dataset
from envs.mnist import MNIST, DataError, load_mnist
from envs.tasks import TASKS, Task, get_task

__all__ = ["CATCH_ID", "ENV_IDS", "TASKS", "CatchEnv", "CatchVectorEnv", "ClutteredMNISTEnv", "ClutteredMNISTVectorEnv",
           "DataError", "Dataset", "MNIST", "Task", "get_task", "load_dataset", "load_mnist"]

ENV_IDS = {
    "ram/ClutteredMNIST-v0": None,
    "ram/MNIST28-v0": "mnist28",
    "ram/Translated60-v0": "translated60",
    "ram/Cluttered60-v0": "cluttered60",
    "ram/Cluttered100-v0": "cluttered100",
    "ram/Pairs100-v0": "pairs100",
    "ram/Addition100-v0": "addition100",
}
CATCH_ID = "ram/Catch-v0"

for _id, _task in ENV_IDS.items():
    if _id not in registry:
        register(
            id=_id,
            entry_point="envs.cluttered_mnist:ClutteredMNISTEnv",
            vector_entry_point="envs.cluttered_mnist:ClutteredMNISTVectorEnv",
            kwargs={} if _task is None else {"task": _task},
        )
if CATCH_ID not in registry:
    register(id=CATCH_ID, entry_point="envs.catch:CatchEnv", vector_entry_point="envs.catch:CatchVectorEnv")
