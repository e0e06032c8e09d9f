"""A `pretrain` process stopped by Ctrl-C (SIGINT) or `kill` (SIGTERM) while it trains (issue 30, item 2): it
unwinds, releases its output folder (no `.layerwise.lock` left), says what it kept, exits 128 + the signal, and
leaves what a rerun with --resume expects; stopped before its first checkpoint, it leaves -o as it found it."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pretrain.core import lock
from pretrain.core.lock import LOCK_FILE, OutputLock
from pretrain.core.stopping import Stopped, stop_on_sigterm

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
#: long enough that the signal lands mid-run: 100 epochs of rbm:16 on digits (about 1 s)
RUN = ["digits", "-l", "rbm:16", "--epochs", "100", "--no-plots", "--threads", "1"]
#: a first epoch of about a second, so that a signal sent once the folder is locked lands before its checkpoint
SLOW_FIRST_EPOCH = ["digits", "-l", "cae:64,kernel=9", "--batch-size", "20", "--epochs", "1", "--no-plots",
                    "--threads", "1"]
SIGNALS = [signal.SIGINT, signal.SIGTERM]


def start(args, log: Path) -> subprocess.Popen:
    with open(log, "w") as stderr:  # a file, not a pipe: a full pipe would stall the run
        return subprocess.Popen([sys.executable, "-m", "pretrain", *map(str, args)], cwd=ROOT, env=ENV,
                                stdout=subprocess.DEVNULL, stderr=stderr)


def stop_when(process: subprocess.Popen, ready, signum: int, log: Path) -> str:
    """Send ``signum`` once ``ready()``; the process's last line on stderr, after it ended."""
    deadline = time.monotonic() + 120
    while not ready():
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.002)
    process.send_signal(signum)
    process.wait(120)
    assert process.returncode == 128 + signum, log.read_text()
    lines = log.read_text().strip().splitlines()
    assert "Traceback" not in log.read_text()
    return lines[-1]


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: s.name)
def test_a_run_stopped_while_it_trains_leaves_no_lock_and_resumes(tmp_path, signum):
    out, log = tmp_path / "run", tmp_path / "stderr"
    process = start([*RUN, "-o", out], log)
    last = stop_when(process, (out / "checkpoint.pt").exists, signum, log)
    how = "Interrupted" if signum == signal.SIGINT else "Stopped (SIGTERM)"
    assert last == f"{how}: {out} keeps the last finished epoch; rerun with --resume to continue."
    assert sorted(os.listdir(out)) == ["checkpoint.pt"]  # no .layerwise.lock, no .tmp
    resumed = subprocess.run([sys.executable, "-m", "pretrain", *RUN, "-o", str(out), "--resume", "-q"], cwd=ROOT,
                             env=ENV, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert sorted(os.listdir(out)) == ["stack.json", "stack.pt"]


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: s.name)
def test_a_run_stopped_before_its_first_checkpoint_leaves_no_folder(tmp_path, signum):
    out, log = tmp_path / "new" / "run", tmp_path / "stderr"
    process = start([*SLOW_FIRST_EPOCH, "-o", out], log)
    last = stop_when(process, (out / LOCK_FILE).exists, signum, log)
    assert last.endswith(f"before the first epoch was checkpointed: nothing to resume in {out}.")
    assert not (tmp_path / "new").exists()


def test_a_stop_while_the_lock_is_taken_leaves_no_lock_file(tmp_path, monkeypatch):
    """The moment the test above may hit: the file is made and locked, ``__enter__`` has not returned, so no
    ``__exit__`` will run."""
    def stopped(*_):
        raise KeyboardInterrupt
    monkeypatch.setattr(lock.os, "pwrite", stopped)
    with pytest.raises(KeyboardInterrupt):
        with OutputLock(tmp_path):
            pass
    assert not (tmp_path / LOCK_FILE).exists()
    monkeypatch.undo()
    with OutputLock(tmp_path):  # nothing held: free at once
        pass


def test_sigterm_raises_stopped_inside_the_block_only():
    before = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        with pytest.raises(Stopped) as stopped:
            with stop_on_sigterm():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)  # the handler raises at the next bytecode
        assert stopped.value.signum == signal.SIGTERM and str(stopped.value) == "SIGTERM"
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGTERM, before)


def test_a_handler_set_by_the_caller_is_kept():
    def mine(*_):
        pass
    before = signal.signal(signal.SIGTERM, mine)
    try:
        with stop_on_sigterm():
            assert signal.getsignal(signal.SIGTERM) is mine
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, before)
