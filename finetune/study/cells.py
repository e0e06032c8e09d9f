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
~2.3 s of a core each) and then share a core with an idle parent. The workers start as soon as the command
knows it will need them (:func:`start_workers`), so their imports overlap this
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
import importlib
import threading
from concurrent.futures import wait
from contextlib import contextmanager
from typing import Callable, Iterable, List, Optional, Tuple

from pretrain.core.distributed import gather_objects, launched, rank, world_size
from pretrain.core.errors import LayerwiseError

#: what a worker imports while it waits for its first cell: the cells' function and what cells import later.
WORKER_IMPORTS = ("finetune.study.experiment", "sklearn.model_selection", "sklearn.metrics", "scipy.optimize")
#: the thread counts a worker's libraries read as they start, set to its share of the cores
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
#: how often a thread waiting for its worker looks whether any task is left for it, in seconds
READY_POLL_S = 0.05
#: the executor :func:`start_workers` started, until :func:`stop_workers`
_STARTED = {}


class CellFailed(LayerwiseError):
    """A task of :func:`execute` failed with a :class:`LayerwiseError` (its line is this one's); ``results``: those
    of the tasks that had finished, in task order, None for the others, so that what finished is not lost."""

    def __init__(self, error: LayerwiseError, results: List):
        super().__init__(str(error))
        self.results = list(results)


def cell_threads(jobs: int, threads: int = 0) -> Tuple[int, str]:
    """The torch threads each process gives a cell, and the rule that chose them, for the run's record.

    With one job (or under torchrun) the cells run with this process's threads. With ``jobs`` > 1:
    those the running workers were started with, else :func:`pretrain.core.device.choose_threads`
    (``threads``, ``OMP_NUM_THREADS``, a program's ``torch.set_num_threads``, the free cores shared by the jobs).
    """
    import torch

    from pretrain.core.device import CHOICE, choose_threads, program_threads
    if jobs < 2 or launched():
        return torch.get_num_threads(), CHOICE.get("why", "torch's setting")
    if "threads" in _STARTED and not threads:  # measured once: later, the workers would count as busy
        return _STARTED["threads"]
    return choose_threads(threads, jobs, program=program_threads())


def start_workers(jobs: int, threads: int = 0):
    """The ``jobs - 1`` worker processes that join this one for the cells, started now if they are not
    running yet; None where the cells do not go to loky's workers (one job, a launcher's processes such
    as torchrun's, another joblib backend such as dask or ray).

    Each worker is prepared as it starts (loky's ``initializer``, also for a worker loky starts again
    later): the allocator's setting of the commands, :data:`WORKER_IMPORTS`, its share of the cores in the
    thread variables of OpenMP and the BLAS libraries (as joblib's loky backend sets them). ``warmed_up``
    holds one future per worker that is done once a worker is prepared. Measured on 2 cores: a worker's
    start takes 2-4 s, the command's own reading of the data and sources 1.6 s (digits) to ~6 s
    (Fashion-MNIST); meanwhile this process runs cells (:func:`execute`).
    """
    if jobs < 2 or launched() or not _loky_is_active():
        return None
    from joblib.executor import get_memmapping_executor
    chosen = _STARTED["threads"] = cell_threads(jobs, threads)  # the same for every later cell of theirs
    env = {name: str(chosen[0]) for name in THREAD_VARIABLES}
    # loky keeps one executor per process: a second call with the same arguments reuses it
    executor = get_memmapping_executor(jobs - 1, initializer=_prepare_worker, env=env)
    if len(getattr(executor, "warmed_up", ())) != jobs - 1:  # new, or resized
        executor.warmed_up = [executor.submit(int) for _ in range(jobs - 1)]
    _STARTED["executor"] = executor
    return executor


def stop_workers(kill: bool = False) -> None:
    """Stop the workers of :func:`start_workers`, if any, and delete the memory maps joblib wrote for them
    (``kill``: at once, without waiting for the cells they run: after a failure or an interrupt).

    Left to the end of the process, loky stops them, after their cells, and its resource tracker warns
    about the maps it finds left in ``/dev/shm``.
    """
    executor = _STARTED.pop("executor", None)
    _STARTED.pop("threads", None)
    if executor is not None:
        executor.terminate(kill_workers=kill)


@contextmanager
def worker_processes(jobs: int, threads: int = 0):
    """:func:`start_workers` for the block, then :func:`stop_workers` (at once when the block fails).

    Workers that an enclosing block started are its own to stop: a program that calls ``compare()``
    in a loop inside one ``worker_processes`` block starts them once (2-4 s each time otherwise).
    """
    outermost = "executor" not in _STARTED
    start_workers(jobs, threads)
    try:
        yield
    except BaseException:
        if outermost:
            stop_workers(kill=True)
        raise
    if outermost:
        stop_workers()


def _prepare_worker() -> None:
    """A worker's start: prepared as a command's process (:func:`pretrain.core.process.prepare_process`), then
    the imports."""
    from pretrain.core.process import prepare_process
    prepare_process()
    for module in WORKER_IMPORTS:
        importlib.import_module(module)


def _loky_is_active() -> bool:
    from joblib.parallel import get_active_backend
    return type(get_active_backend()[0]).__name__ == "LokyBackend"


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
    if not _loky_is_active():  # another joblib backend: its own workers take every task
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
