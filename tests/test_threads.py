"""The default thread count follows the machine as it is now: busy cores elsewhere give fewer threads,
and a competitor that has just ended gives them back at once (the 1-minute load average did not)."""
import subprocess
import sys
import time

import pytest

from pretrain.core import device
from pretrain.core.device import (CHOICE, WINDOW_S, busy_cores_elsewhere, free_cores, set_threads, usable_cores,
                                  watch_cores)

SPIN = "import time\nprint('spinning', flush=True)\nend = time.time() + 30\nwhile time.time() < end: pass"


def busy(best, tries=3):
    """The ``best`` (min or max) of a few windows: one window can catch a passing hiccup of another process."""
    return best(busy_cores_elsewhere() for _ in range(tries))


def busy_until(reached, tries=12):
    """Windows until one ``reached`` (at most ``tries``): on a loaded CI host a spinner started or killed
    takes a moment to show in /proc/stat, and one window can miss it (CI: 0.37 of a core in the first)."""
    for _ in range(tries):
        cores = busy_cores_elsewhere()
        if reached(cores):
            break
    return cores


@pytest.mark.alone  # under pytest -n 2 the other worker's test would be one more competitor
def test_competitors_take_cores_and_give_them_back_when_they_end():
    """Relative to whatever else runs, so it holds beside other work too: k spinning processes add about k
    busy cores, and once they are killed the next measurement no longer counts them."""
    k = max(1, usable_cores() - 1)
    before = busy(min)
    if before > usable_cores() - k + 0.5:
        pytest.skip(f"{before:.1f} cores already busy elsewhere: nothing left for competitors to take")
    competitors = [subprocess.Popen([sys.executable, "-c", SPIN], stdout=subprocess.PIPE, text=True)
                   for _ in range(k)]
    try:
        for process in competitors:
            process.stdout.readline()  # started and spinning (Python's start can take a second on a loaded host)
        during = busy_until(lambda cores: cores >= before + k - 0.5)
        assert during >= before + k - 0.5, (before, during)
        if before < 0.5:  # an otherwise idle machine: one thread is all that is left
            assert free_cores()[0] == usable_cores() - k
    finally:
        for process in competitors:
            process.kill()
            process.wait()
    after = busy_until(lambda cores: cores <= during - k + 0.5, tries=3)
    assert after <= during - k + 0.5, (before, during, after)  # at once, not a minute later


def test_the_choice_is_recorded(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # it would decide before the measurement
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert set_threads(1) == 1 and CHOICE == {"threads": 1, "why": "--threads 1"}
    chosen = set_threads(0)
    assert 1 <= chosen <= usable_cores() and "usable cores" in CHOICE["why"]
    set_threads(1)  # the suite's setting (conftest)


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


@pytest.mark.alone
def test_a_window_opened_as_the_command_starts_is_not_slept_again_and_our_own_work_is_not_counted():
    """The commands open the window as they start (their imports fill it); this process's own work in it,
    one core spinning here, is not another process's."""
    before = busy(min)
    watch_cores()
    spin(2 * WINDOW_S)
    started = time.perf_counter()
    during = busy_cores_elsewhere()
    assert time.perf_counter() - started < WINDOW_S / 2  # closed at once, no second sleep
    assert during <= before + 0.5, (before, during)


def test_an_old_window_is_dropped_for_a_fresh_one(monkeypatch):
    watch_cores()
    opened_at, times = device._WATCH["opened"]
    monkeypatch.setitem(device._WATCH, "opened", (opened_at - device.MAX_WINDOW_S - 1, times))
    started = time.perf_counter()
    busy_cores_elsewhere()
    assert time.perf_counter() - started >= WINDOW_S * 0.9 and "opened" not in device._WATCH

