"""The executor of a comparison's cells: results in task order, the longest tasks dispatched first,
workers started ahead of the cells."""
import time

from finetune.study import cells, workers


def started_at(seconds, label):
    """A task that takes ``seconds`` and reports when it began (the monotonic clock is the machine's)."""
    began = time.monotonic()
    time.sleep(seconds)
    return label, began


def test_results_come_in_task_order_and_the_costliest_tasks_start_first():
    # This process and a worker, four half-second tasks: the two of highest cost start ~0.5 s before the others.
    workers.start_workers(2, 1)  # as the command does, before it reads its data
    tasks = [(0.5, "a"), (0.5, "b"), (0.5, "c"), (0.5, "d")]
    cost = {"a": 1, "b": 4, "c": 2, "d": 3}
    results = cells.execute(started_at, tasks, jobs=2, threads=1, cost=lambda task: cost[task[1]])
    assert [label for label, _ in results] == ["a", "b", "c", "d"]
    first_two = {label for label, _ in sorted(results, key=lambda result: result[1])[:2]}
    assert first_two == {"b", "d"}


def process_of(label):
    """A short task that reports the process and the torch threads it ran with."""
    import os

    import torch
    time.sleep(0.2)
    return label, os.getpid(), torch.get_num_threads()


def test_this_process_runs_tasks_while_the_workers_start_with_a_workers_threads():
    import os

    import torch
    before = torch.get_num_threads()
    workers.start_workers(2, 1).shutdown(wait=True)  # workers of an earlier test: a command starts afresh
    workers.start_workers(2, 1)  # their start takes seconds: the first task cannot wait for them
    tasks = [(label,) for label in "abcdef"]
    results = cells.execute(process_of, tasks, jobs=2, threads=1)
    assert [label for label, _, _ in results] == list("abcdef")
    assert results[0][1] == os.getpid()  # the first task ran here, at once
    assert {threads for _, _, threads in results} == {1}  # every task with a worker's threads, here too
    assert torch.get_num_threads() == before  # and this process's threads are put back


def fails_on(label, failing):
    if label == failing:
        raise ValueError(f"task {label} failed")
    return label


def fails_in_a_worker(label, parent):
    import os
    time.sleep(0.2)
    if os.getpid() != parent:
        raise ValueError(f"task {label} failed in a worker")
    return label


def test_a_failing_task_fails_the_whole_execution_wherever_it_ran():
    import os

    import pytest
    workers.start_workers(2, 1)
    with pytest.raises(ValueError, match="task a failed"):  # wherever the first task runs
        cells.execute(fails_on, [(label, "a") for label in "abcd"], jobs=2, threads=1)
    for ready in workers.start_workers(2, 1).warmed_up:
        ready.result()  # the worker is up: it takes a task as soon as the execution starts
    with pytest.raises(ValueError, match="failed in a worker"):
        cells.execute(fails_in_a_worker, [(label, os.getpid()) for label in "abcdefgh"], jobs=2, threads=1)


def test_this_process_is_one_of_the_jobs():
    """With jobs=3, this process and at most two workers share the tasks (a worker still starting takes none)."""
    import os
    executor = workers.start_workers(3, 1)
    for ready in executor.warmed_up:
        ready.result()  # a worker is up
    results = cells.execute(process_of, [(label,) for label in "abcdefghijkl"], jobs=3, threads=1)
    processes = {pid for _, pid, _ in results}
    assert os.getpid() in processes and 2 <= len(processes) <= 3


def test_another_joblib_backend_takes_every_task():
    """Inside ``joblib.parallel_config(backend=...)`` (dask, ray: here joblib's threads) that backend runs the
    tasks, in task order, the costliest first; none of loky's workers is started."""
    import threading

    from joblib import parallel_config

    def thread_of(label):
        time.sleep(0.1)
        return label, threading.get_ident(), time.monotonic()

    with parallel_config(backend="threading"):
        assert workers.start_workers(2) is None
        cost = {"a": 1, "b": 4, "c": 2, "d": 3}
        results = cells.execute(thread_of, [(label,) for label in "abcd"], jobs=2, threads=1,
                                cost=lambda task: cost[task[0]])
    assert [label for label, _, _ in results] == list("abcd")
    assert threading.get_ident() not in {thread for _, thread, _ in results}
    assert {label for label, _, _ in sorted(results, key=lambda result: result[2])[:2]} == {"b", "d"}


def test_nothing_waits_for_a_worker_once_this_process_has_taken_every_task():
    """Two short tasks and a worker still starting: this process runs both and returns without waiting
    for the worker's start (2-4 s)."""
    import os
    workers.start_workers(2, 1).shutdown(wait=True)
    started = time.monotonic()
    results = cells.execute(process_of, [("a",), ("b",)], jobs=2, threads=1)
    assert {pid for _, pid, _ in results} == {os.getpid()} and time.monotonic() - started < 1.5


def test_the_workers_of_an_enclosing_block_serve_every_block_inside_it():
    """``compare()`` in a loop inside one ``worker_processes`` block: the same worker serves every call."""
    import os
    served = []
    with workers.worker_processes(2, 1):
        for _ in range(2):
            with workers.worker_processes(2, 1):  # what each compare() opens
                for ready in workers.start_workers(2, 1).warmed_up:
                    ready.result()
                results = cells.execute(process_of, [(label,) for label in "abcdef"], jobs=2, threads=1)
                served.append({pid for _, pid, _ in results} - {os.getpid()})
    assert len(served[0]) == 1 and served[0] == served[1]


def fails_here_while_a_worker_is_busy(label, parent, marker):
    """In the worker: mark the start, then a minute's task. Here: fail once the worker is busy."""
    import os
    from pathlib import Path
    if os.getpid() != parent:
        Path(marker).touch()
        time.sleep(60)
        return label
    deadline = time.monotonic() + 60
    while not Path(marker).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    raise ValueError("this process failed")


def test_a_failure_here_does_not_wait_for_the_cells_the_workers_run(tmp_path):
    import os

    import pytest
    workers.start_workers(2, 1)
    tasks = [(label, os.getpid(), str(tmp_path / "busy")) for label in "ab"]
    started = time.monotonic()
    with pytest.raises(ValueError, match="this process failed"):
        cells.execute(fails_here_while_a_worker_is_busy, tasks, jobs=2, threads=1)
    assert (tmp_path / "busy").exists()  # the worker was running its minute-long task
    assert time.monotonic() - started < 30  # its start takes 2-4 s; its task alone would take 60


def test_a_command_with_workers_leaves_no_memory_maps_behind(tmp_path):
    """Arrays over a megabyte reach the workers as memory maps in /dev/shm or the temporary folder; the
    command deletes them as it ends (before, loky's resource tracker warned about them at exit)."""
    import subprocess
    import sys

    import numpy as np
    rng = np.random.default_rng(0)  # honestly synthetic: only the files matter here, not what is learned
    np.savez(tmp_path / "data.npz", x=rng.integers(0, 256, (3000, 28, 28), dtype=np.uint8),
             y=rng.integers(0, 3, 3000))
    done = subprocess.run([sys.executable, "-m", "finetune", f"npz:{tmp_path / 'data.npz'}", "--from", "pixels",
                           "--schedule", "full", "--labels-per-class", "5", "--seeds", "8", "--jobs", "2",
                           "--threads", "1", "-q"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "resource_tracker" not in done.stderr and "leaked" not in done.stderr, done.stderr
