"""The output-folder lock, run-private cache names and the removal of dead runs' leftovers, with real processes."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pretrain.core.errors import LayerwiseError
from pretrain.core.io import save_torch
from pretrain.core.lock import LOCK_FILE, OutputLock, PrivateCache, private_name, remove_orphans, writer_tag

ROOT = Path(__file__).resolve().parents[1]

# Waits for GO, tries the lock, holds it until RELEASE appears; a refusal is printed as one line, exit 1.
HOLDER = """
import sys, time
from pathlib import Path
from pretrain.core.errors import LayerwiseError
from pretrain.core.lock import OutputLock
folder, go, release = map(Path, sys.argv[1:4])
Path(f"{go}.{sys.argv[4]}").touch()
while not go.exists():
    time.sleep(0.01)
try:
    with OutputLock(folder):
        print("locked", flush=True)
        deadline = time.time() + 60
        while not release.exists() and time.time() < deadline:
            time.sleep(0.01)
except LayerwiseError as error:
    print(error, flush=True)
    sys.exit(1)
"""


def start(code, *args):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for(condition, seconds=60.0):
    deadline = time.time() + seconds
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.01)


def test_two_processes_on_one_folder_exactly_one_proceeds(tmp_path):
    folder, go, release = tmp_path / "out", tmp_path / "go", tmp_path / "release"
    procs = [start(HOLDER, folder, go, release, i) for i in range(2)]
    wait_for(lambda: all(Path(f"{go}.{i}").exists() for i in range(2)))  # both imported, then race
    go.touch()
    wait_for(lambda: any(p.poll() is not None for p in procs))  # the loser gives up at once
    release.touch()
    outputs = [p.communicate(timeout=60) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 1], outputs
    winner = procs[[p.returncode for p in procs].index(0)]
    loser_out, loser_err = outputs[[p.returncode for p in procs].index(1)]
    assert loser_err == ""
    assert loser_out.count("\n") == 1  # one line
    assert f"{folder} is in use by another run (pid {winner.pid} on {socket.gethostname()}, started " in loser_out
    assert "choose another output folder" in loser_out
    assert not (folder / LOCK_FILE).exists()  # removed by its holder on release


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path):
    folder, go, release = tmp_path / "out", tmp_path / "go", tmp_path / "release"
    go.touch()
    holder = start(HOLDER, folder, go, release, 0)
    assert holder.stdout.readline() == "locked\n"
    with pytest.raises(LayerwiseError, match=f"pid {holder.pid} "):
        with OutputLock(folder):
            pass
    holder.send_signal(signal.SIGKILL)
    holder.communicate(timeout=60)
    assert json.loads((folder / LOCK_FILE).read_text())["pid"] == holder.pid  # the dead holder's file is still there
    with OutputLock(folder):
        assert json.loads((folder / LOCK_FILE).read_text())["pid"] == os.getpid()


def test_a_stale_lock_file_of_a_dead_pid_is_taken_over(tmp_path):
    dead = start("pass")
    dead.communicate(timeout=60)
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "started": 0}))
    with OutputLock(tmp_path):
        holder = json.loads((tmp_path / LOCK_FILE).read_text())
        assert (holder["pid"], holder["host"]) == (os.getpid(), socket.gethostname())
    assert not (tmp_path / LOCK_FILE).exists()


def test_a_second_lock_in_the_same_process_is_refused_until_released(tmp_path):
    with OutputLock(tmp_path / "out"):
        with pytest.raises(LayerwiseError) as refused:
            with OutputLock(tmp_path / "out"):
                pass
        assert f"pid {os.getpid()} on {socket.gethostname()}" in str(refused.value)
        assert "\n" not in str(refused.value)
    with OutputLock(tmp_path / "out"):  # released: free again
        pass


def test_private_cache_names_differ_and_are_removed_even_when_the_run_fails(tmp_path):
    with pytest.raises(RuntimeError):
        with PrivateCache(tmp_path / "cache") as cache:
            a, b = cache.path("codes1_train.npy"), cache.path("codes1_train.npy")
            assert a != b and a.name.startswith(f"codes1_train.{writer_tag()}") and a.suffix == ".npy"
            a.write_bytes(b"codes")
            b.write_bytes(b"codes")
            raise RuntimeError("training failed")
    assert list((tmp_path / "cache").iterdir()) == []


# Writes a private cache file and a half-written atomic file, then is killed: its leftovers.
DYING_WRITER = """
import sys, time
from pathlib import Path
from pretrain.core import io
from pretrain.core.lock import private_cache_path
folder = Path(sys.argv[1])
private_cache_path(folder, "codes1_train.npy").write_bytes(b"codes")
io._atomic_write(folder / "stack.pt", lambda f: (f.write(b"half"), f.flush(), print("writing", flush=True),
                                                  time.sleep(60)))
"""


def test_leftovers_of_killed_writers_are_removed_and_nothing_else(tmp_path):
    writer = start(DYING_WRITER, tmp_path)
    assert writer.stdout.readline() == "writing\n", writer.stderr.read()
    writer.send_signal(signal.SIGKILL)
    writer.communicate(timeout=60)
    dead = sorted(p.name for p in tmp_path.iterdir())
    assert len(dead) == 2 and all(f".{writer.pid}-" in name for name in dead), dead
    mine = tmp_path / private_name("codes2_train.npy")  # a live run's cache file
    mine.write_bytes(b"live")
    foreign = tmp_path / f"codes1_val.{writer.pid}-000000-abcd1234.npy"  # another host's
    foreign.write_bytes(b"theirs")
    save_torch({"kept": 1}, tmp_path / "checkpoint.pt")
    removed = remove_orphans(tmp_path)
    assert sorted(p.name for p in removed) == dead
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["checkpoint.pt", mine.name, foreign.name])
    assert remove_orphans(tmp_path / "missing") == []
