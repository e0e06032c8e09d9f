"""The executor of a comparison's cells: results in task order, the longest tasks dispatched first,
workers started ahead of the cells."""
import time

from finetune.study import cells


def started_at(seconds, label):
    """A task that takes ``seconds`` and reports when it began (the monotonic clock is the machine's)."""
    began = time.monotonic()
    time.sleep(seconds)
    return label, began


def test_results_come_in_task_order_and_the_costliest_tasks_start_first():
    # Two workers, four half-second tasks: the two of highest cost start ~0.5 s before the other two.
    cells.start_workers(2)  # as the command does, before it reads its data
    tasks = [(0.5, "a"), (0.5, "b"), (0.5, "c"), (0.5, "d")]
    cost = {"a": 1, "b": 4, "c": 2, "d": 3}
    results = cells.execute(started_at, tasks, jobs=2, threads=1, cost=lambda task: cost[task[1]])
    assert [label for label, _ in results] == ["a", "b", "c", "d"]
    first_two = {label for label, _ in sorted(results, key=lambda result: result[1])[:2]}
    assert first_two == {"b", "d"}
    assert not cells._STARTING  # the background start was joined, not left running
