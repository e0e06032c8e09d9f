"""The executor of cells: independent fine-tuning tasks, in order, here or in worker processes.

A comparison is a grid of cells (source x schedule x budget x seed) that
share nothing but read-only inputs, so they can run anywhere. With
``jobs=1`` they run one after the other in this process; with more, joblib
runs them in that many worker processes, each with its share of the cores
(``torch.set_num_threads``), and returns the results in task order, so the
numbers are those of ``jobs=1``. joblib's active backend decides where the
workers live: inside ``with joblib.parallel_config(backend="dask"):`` (or
``"ray"``) the cells go to that cluster without code of ours.

Under ``torchrun`` the same executor spreads the cells over the processes
instead: rank r runs tasks r, r + N, r + 2N, ... (each cell whole, on its
own device), and every rank receives all results in task order, so rank 0
reports exactly the rows of one process. A head fitted on cached features
needs no data parallelism; a grid of cells does.
"""
import os
from typing import Callable, Iterable, List

from pretrain.core.distributed import gather_objects, rank, world_size


def threads_per_job(jobs: int, threads: int = 0) -> int:
    """Each worker's torch threads: the ``threads`` asked for, else the cores shared out (at least one)."""
    return threads or max(1, (os.cpu_count() or 1) // jobs)


def execute(function: Callable, tasks: Iterable[tuple], jobs: int = 1, threads: int = 0) -> List:
    """``[function(*task) for task in tasks]``, in ``jobs`` worker processes when ``jobs > 1``."""
    tasks = list(tasks)
    if world_size() > 1:
        return on_ranks(function, tasks)
    if jobs == 1 or len(tasks) < 2:
        return [function(*task) for task in tasks]
    from joblib import Parallel, delayed
    per_worker = threads_per_job(jobs, threads)
    return Parallel(n_jobs=jobs)(delayed(_in_worker)(function, per_worker, task) for task in tasks)


def on_ranks(function: Callable, tasks: List[tuple]) -> List:
    """Under torchrun: this rank's share of ``tasks`` (every N-th), then all results gathered, in task order."""
    n = world_size()
    gathered = gather_objects([function(*task) for task in tasks[rank()::n]])
    return [gathered[index % n][index // n] for index in range(len(tasks))]


def _in_worker(function: Callable, threads: int, task: tuple):
    import torch
    torch.set_num_threads(threads)
    return function(*task)
