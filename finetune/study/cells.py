"""The executor of cells: independent fine-tuning tasks, in order, here or in worker processes.

A comparison is a grid of cells (source x schedule x budget x seed) that
share nothing but read-only inputs, so they can run anywhere. With
``jobs=1`` they run one after the other in this process; with ``jobs=N``
this process and N - 1 worker processes (loky's, joblib's default backend)
take them one at a time from one queue, each with the same threads
(:func:`cell_threads`: ``threads``, ``OMP_NUM_THREADS``, the program's
``torch.set_num_threads``, else its share of the free cores), and the results
come back in task order, so the numbers are those of ``jobs=1``. This process
is one of the N: a worker more would cost its imports (torch, scikit-learn:
seconds of a core each) and then share a core with an idle parent. The workers start as soon as the command
knows it will need them (:func:`finetune.study.workers.start_workers`), so their imports overlap this
process reading the data and the sources, and the longest tasks go first, so
that no long one is left running alone at the end. Large arrays reach the
workers memory-mapped (joblib's memmapping executor), not pickled. Inside
``with joblib.parallel_config(backend="dask"):`` (or ``"ray"``) the cells go to
that cluster instead, through ``Parallel(n_jobs=N)``, without code of ours.

Under ``torchrun`` the same executor spreads the cells over the processes
instead: rank r runs tasks r, r + N, r + 2N, ... (each cell whole, on its
own device), and every rank receives all results in task order, so rank 0
reports exactly the rows of one process. A head fitted on cached features
needs no data parallelism; a grid of cells does.
"""
import threading
from concurrent.futures import wait
from contextlib import contextmanager
from typing import Callable, Iterable, List, Optional

from pretrain.core.distributed import gather_objects, launched, rank, world_size
from pretrain.core.errors import LayerwiseError

from .workers import cell_threads, loky_is_active, start_workers, stop_workers

#: how often a thread waiting for its worker looks whether any task is left for it, in seconds
READY_POLL_S = 0.05


class CellFailed(LayerwiseError):
    """A task of :func:`execute` failed with a :class:`LayerwiseError` (its line is this one's); ``results``: those
    of the tasks that had finished, in task order, None for the others, so that what finished is not lost."""

    def __init__(self, error: LayerwiseError, results: List):
        super().__init__(str(error))
        self.results = list(results)


def execute(function: Callable, tasks: Iterable[tuple], jobs: int = 1, threads: int = 0,
            cost: Optional[Callable[[tuple], float]] = None) -> List:
    """``[function(*task) for task in tasks]``, by this process and ``jobs - 1`` workers when ``jobs > 1``,
    the tasks of highest ``cost`` taken first (results still in task order); a failing task fails the
    whole execution, wherever it ran, and no task starts after it. A :class:`LayerwiseError` comes back as
    :class:`CellFailed`, holding the results of the tasks that finished (here and in loky's workers).
    """
    tasks = list(tasks)
    if world_size() > 1:
        return on_ranks(function, tasks)
    results = [None] * len(tasks)
    if jobs == 1 or len(tasks) < 2 or launched():  # a launcher's lone process runs its cells itself
        with kept_on_failure(results):
            for index, task in enumerate(tasks):
                results[index] = function(*task)
        return results
    order = sorted(range(len(tasks)), key=lambda i: -cost(tasks[i])) if cost else list(range(len(tasks)))
    if not loky_is_active():  # another joblib backend: its own workers take every task
        from joblib import Parallel, delayed
        per_worker = cell_threads(jobs, threads)[0]
        done = Parallel(n_jobs=jobs)(delayed(_in_worker)(function, per_worker, tasks[i]) for i in order)
        return [result for _, result in sorted(zip(order, done))]
    executor = start_workers(jobs, threads)
    per_worker = cell_threads(jobs, threads)[0]  # the workers' own, here too
    queue = TaskQueue(order)
    feeders = [threading.Thread(target=queue.feed, args=(executor, ready, function, per_worker, tasks, results),
                                daemon=True) for ready in executor.warmed_up]
    for feeder in feeders:
        feeder.start()
    with kept_on_failure(results):
        try:
            while (index := queue.take()) is not None:
                results[index] = _in_worker(function, per_worker, tasks[index])
        except BaseException:
            queue.stop()  # a failed task fails the run: the workers get no more,
            stop_workers(kill=True)  # and the ones they run are not waited for (the feeders wait on them)
            raise
        finally:
            for feeder in feeders:
                feeder.join()
        if queue.error is not None:
            raise queue.error
    return results


@contextmanager
def kept_on_failure(results: List):
    """A :class:`LayerwiseError` in the block becomes :class:`CellFailed` with ``results`` as they stand."""
    try:
        yield
    except LayerwiseError as error:
        raise CellFailed(error, results) from None


class TaskQueue:
    """Task indices taken one at a time, by this process and by the threads that feed the workers."""

    def __init__(self, order: List[int]):
        self.pending, self.lock, self.error = list(reversed(order)), threading.Lock(), None

    def take(self) -> Optional[int]:
        with self.lock:
            return self.pending.pop() if self.pending else None

    def empty(self) -> bool:
        with self.lock:
            return not self.pending

    def stop(self) -> None:
        with self.lock:
            self.pending.clear()

    def feed(self, executor, ready, function: Callable, threads: int, tasks: List[tuple], results: List) -> None:
        """Once a worker is up (``ready``: a future done once a worker is prepared), hand it a task at a time
        and file the results, until the queue is empty or a task fails; until then this process takes the
        tasks, and when it has taken the last one, nothing waits for the worker any longer."""
        try:
            while not wait([ready], timeout=READY_POLL_S).done:
                if self.empty():
                    return
            ready.result()  # a worker that failed to start fails the execution
            while (index := self.take()) is not None:
                results[index] = executor.submit(_in_worker, function, threads, tasks[index]).result()
        except BaseException as error:  # re-raised by execute, in the calling thread
            self.error = error
            self.stop()


def on_ranks(function: Callable, tasks: List[tuple]) -> List:
    """Under torchrun: this rank's share of ``tasks`` (every N-th), then all results gathered, in task order."""
    n = world_size()
    gathered = gather_objects([function(*task) for task in tasks[rank()::n]])
    return [gathered[index % n][index // n] for index in range(len(tasks))]


def _in_worker(function: Callable, threads: int, task: tuple):
    """``function(*task)`` with ``threads`` torch threads, the number there was put back afterwards."""
    from pretrain.core.device import torch_threads
    with torch_threads(threads):
        return function(*task)
