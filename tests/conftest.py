"""Shared fixtures: real data (scikit-learn's digits) scaled as the stack would scale it."""
import fcntl
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch


@pytest.fixture(scope="session")
def digits_unit():
    """The 1,797 digits as float32 in [0, 1], shape [N, 64]."""
    from sklearn.datasets import load_digits
    return torch.from_numpy((load_digits().data / 16.0).astype(np.float32))


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """The test models are small: they only lose time when threads fight over the 2 shared cores."""
    torch.set_num_threads(1)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Under ``pytest -n 2`` the workers share one lock file: every test holds it shared, from its fixtures'
    setup to their teardown; a test marked ``alone`` (it measures the machine's load) holds it exclusively,
    so it waits for the other worker's test to end and the other worker waits for it."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run is None:  # one process: nothing runs beside a test
        yield
        return
    folder = Path(tempfile.gettempdir())
    with open(folder / f"layerwise-tests-{run}.lock", "a") as lock, \
            open(folder / f"layerwise-tests-{run}.turn", "a") as turn:
        fcntl.flock(turn, fcntl.LOCK_EX)  # a turnstile: while an `alone` test waits here, no other test starts
        fcntl.flock(lock, fcntl.LOCK_EX if item.get_closest_marker("alone") else fcntl.LOCK_SH)
        fcntl.flock(turn, fcntl.LOCK_UN)
        yield


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)
    yield
    # An in-process command with --threads 0 takes the cores free at that moment: back to the suite's one.
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's digits as a Dataset, with its seeded test split."""
    from pretrain import load_data
    return load_data("digits")


@pytest.fixture(scope="session")
def digits_dbn(tmp_path_factory):
    """A 64-128-64 RBM stack pretrained on the digits' training images (no labels), once for the session."""
    from pretrain import pretrain_stack
    out = tmp_path_factory.mktemp("digits-dbn")
    pretrain_stack("digits", ["rbm:128,momentum=0.9", "rbm:64,momentum=0.9"], out=out, epochs=30, progress=False)
    return str(out)


@pytest.fixture
def crash_at_epoch(monkeypatch):
    """``crash_at_epoch(n)``: the n-th epoch the trainer starts from now on raises KeyboardInterrupt (a Ctrl-C
    mid-run); ``crash_at_epoch(None)`` puts the real epoch back, for the resume."""
    from pretrain.training import greedy
    real = greedy.run_epoch

    def arm(n):
        if n is None:
            monkeypatch.setattr(greedy, "run_epoch", real)
            return
        calls = []

        def run_epoch(*args, **kwargs):
            calls.append(1)
            if len(calls) == n:
                raise KeyboardInterrupt
            return real(*args, **kwargs)
        monkeypatch.setattr(greedy, "run_epoch", run_epoch)
    return arm
