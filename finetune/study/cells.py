"""The executor of cells: independent fine-tuning tasks, in order, here or in worker processes.

A comparison is a grid of cells (source x schedule x budget x seed) that
share nothing but read-only inputs, so they can run anywhere. With
``jobs=1`` they run one after the other in this process; with more, joblib
runs them in that many worker processes, each with its share of the cores
(``torch.set_num_threads``), and returns the results in task order, so the
numbers are those of ``jobs=1``. The workers start in the background as soon
as the command knows it will need them (:func:`start_workers`), so their
imports overlap this process reading the data and the sources, and the
longest tasks go first, so that no long one is left running alone at the end.
joblib's active backend decides where the workers live: inside
``with joblib.parallel_config(backend="dask"):`` (or ``"ray"``) the cells go to
that cluster without code of ours.

Under ``torchrun`` the same executor spreads the cells over the processes
instead: rank r runs tasks r, r + N, r + 2N, ... (each cell whole, on its
own device), and every rank receives all results in task order, so rank 0
reports exactly the rows of one process. A head fitted on cached features
needs no data parallelism; a grid of cells does.
"""
import atexit
import gc
import importlib
import os
import threading
from typing import Callable, Dict, Iterable, List, Optional

from pretrain.core.distributed import gather_objects, launched, rank, world_size

#: what a worker imports while it waits for its first cell: the module of the cells' function.
WORKER_IMPORTS = ("finetune.study.experiment",)
#: the background starts of :func:`start_workers`, by number of workers, until :func:`execute` joins them.
_STARTING: Dict[int, threading.Thread] = {}


def threads_per_job(jobs: int, threads: int = 0) -> int:
    """Each worker's torch threads: the ``threads`` asked for, else the cores shared out (at least one)."""
    return threads or max(1, (os.cpu_count() or 1) // jobs)


def start_workers(jobs: int) -> None:
    """Start joblib's ``jobs`` worker processes now, in a background thread, each importing
    :data:`WORKER_IMPORTS`; the next ``Parallel(n_jobs=jobs)`` reuses them (loky keeps its executor).

    Measured on 2 cores: a worker's imports take ~4 s, the command's own reading of the data and
    sources 1.6 s (digits) to ~6 s (Fashion-MNIST); until the workers are up the command runs cells
    itself (:func:`execute`). Nothing starts under torchrun or when another joblib backend (dask,
    ray) is active.
    """
    if jobs < 2 or launched() or jobs in _STARTING or not _loky_is_active():
        return
    from joblib import Parallel, delayed
    calls = [delayed(_import_what_cells_need)() for _ in range(jobs)]
    thread = threading.Thread(target=lambda: Parallel(n_jobs=jobs)(calls), daemon=True)
    thread.start()
    _STARTING[jobs] = thread


def _import_what_cells_need() -> None:
    for module in WORKER_IMPORTS:
        importlib.import_module(module)
    atexit.register(gc.freeze)  # as in the commands (pretrain.commandline): the worker's exit skips a last walk


def _loky_is_active() -> bool:
    from joblib.parallel import get_active_backend
    return type(get_active_backend()[0]).__name__ == "LokyBackend"


def execute(function: Callable, tasks: Iterable[tuple], jobs: int = 1, threads: int = 0,
            cost: Optional[Callable[[tuple], float]] = None) -> List:
    """``[function(*task) for task in tasks]``, in ``jobs`` worker processes when ``jobs > 1``, the
    tasks of highest ``cost`` dispatched first (results still in task order).

    While the workers of :func:`start_workers` are still importing, this process runs tasks itself, with
    a worker's threads (so the numbers stay those of a worker); the workers take the rest as they come
    up. Measured on the digits grid of ``examples/benchmarks/finetune_jobs.py``: the workers were ready
    5.4 s after this process could have started its first cell.
    """
    tasks = list(tasks)
    if world_size() > 1:
        return on_ranks(function, tasks)
    if jobs == 1 or len(tasks) < 2:
        return [function(*task) for task in tasks]
    per_worker = threads_per_job(jobs, threads)
    order = sorted(range(len(tasks)), key=lambda i: -cost(tasks[i])) if cost else list(range(len(tasks)))
    queue, results = TaskQueue(order), [None] * len(tasks)
    starting = _STARTING.pop(jobs, None)
    workers = threading.Thread(target=queue.run_in_workers, args=(function, tasks, jobs, per_worker, starting,
                                                                   results), daemon=True)
    workers.start()
    try:
        while starting is not None and starting.is_alive():
            index = queue.take()
            if index is None:
                break
            results[index] = _in_worker(function, per_worker, tasks[index], restore=True)
    except BaseException:
        queue.stop()  # a failed task fails the run: the workers get no more
        raise
    finally:
        workers.join()
    if queue.error is not None:
        raise queue.error
    return results


class TaskQueue:
    """Task indices taken one at a time, by this process and by joblib's dispatching of the workers."""

    def __init__(self, order: List[int]):
        self.pending, self.lock, self.error = list(reversed(order)), threading.Lock(), None

    def take(self) -> Optional[int]:
        with self.lock:
            return self.pending.pop() if self.pending else None

    def stop(self) -> None:
        with self.lock:
            self.pending.clear()

    def run_in_workers(self, function: Callable, tasks: List[tuple], jobs: int, threads: int,
                       starting: Optional[threading.Thread], results: List) -> None:
        """Once the workers are up, hand them the tasks left, one at a time, and file their results."""
        from joblib import Parallel, delayed
        taken: List[int] = []

        def calls():
            while (index := self.take()) is not None:
                taken.append(index)
                yield delayed(_in_worker)(function, threads, tasks[index])
        try:
            if starting is not None:  # the workers' background start must end before this Parallel takes them
                starting.join()
            done = Parallel(n_jobs=jobs, pre_dispatch="n_jobs", batch_size=1)(calls())
            for index, result in zip(taken, done):
                results[index] = result
        except BaseException as error:  # re-raised by execute, in the calling thread
            self.error = error


def on_ranks(function: Callable, tasks: List[tuple]) -> List:
    """Under torchrun: this rank's share of ``tasks`` (every N-th), then all results gathered, in task order."""
    n = world_size()
    gathered = gather_objects([function(*task) for task in tasks[rank()::n]])
    return [gathered[index % n][index // n] for index in range(len(tasks))]


def _in_worker(function: Callable, threads: int, task: tuple, restore: bool = False):
    """``function(*task)`` with ``threads`` torch threads (put back afterwards with ``restore``)."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return function(*task)
    finally:
        if restore:
            torch.set_num_threads(before)
