"""The worker processes of ``--jobs``: started ahead of the cells, prepared as a command's process, stopped after.

Nothing here imports torch: a command starts its workers before its own imports, so that the workers'
imports (torch, scikit-learn, SciPy: seconds of a core each) overlap its own instead of following
them; :mod:`finetune.study.cells` hands them the cells.
"""
import importlib
from contextlib import contextmanager
from typing import Tuple

from pretrain.core.device import launched

#: what a worker imports while it waits for its first cell: the cells' function and what cells import later.
WORKER_IMPORTS = ("finetune.study.experiment", "sklearn.model_selection", "sklearn.metrics", "scipy.optimize")
#: the thread counts a worker's libraries read as they start, set to its share of the cores
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
#: the executor :func:`start_workers` started, until :func:`stop_workers`
_STARTED = {}


def cell_threads(jobs: int, threads: int = 0) -> Tuple[int, str]:
    """The torch threads each process gives a cell, and the rule that chose them, for the run's record.

    With one job (or under torchrun) the cells run with this process's threads. With ``jobs`` > 1:
    those the running workers were started with, else :func:`pretrain.core.device.choose_threads`
    (``threads``, ``OMP_NUM_THREADS``, a program's ``torch.set_num_threads``, the free cores shared by the jobs).
    """
    from pretrain.core.device import CHOICE, choose_threads, program_threads
    if jobs < 2 or launched():
        import torch
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
    holds one future per worker that is done once a worker is prepared. A worker's start takes seconds,
    of the order of the command's own reading of the data and sources (measured:
    ``examples/benchmarks/design_notes.md``); meanwhile this process runs cells (:func:`execute`).
    """
    if jobs < 2 or launched() or not loky_is_active():
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
    in a loop inside one ``worker_processes`` block starts them once (seconds each time otherwise).
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


def loky_is_active() -> bool:
    from joblib.parallel import get_active_backend
    return type(get_active_backend()[0]).__name__ == "LokyBackend"
