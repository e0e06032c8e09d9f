"""The thread policy follows the conventions (issue 28): an explicit --threads wins, then OMP_NUM_THREADS, then a
program's torch.set_num_threads, then the free cores shared by torchrun's processes on the machine or by --jobs."""
import json
import os
import subprocess
import sys

import pytest
import torch

from finetune.study import workers
from pretrain.core import device
from pretrain.core.device import choose_threads, set_threads

#: what the machine's measurement would say on an idle 2-core machine, passed in so no test depends on the load
IDLE_2_CORES = (2, "2 usable cores, 0.0 busy in other processes now")


@pytest.fixture
def plain(monkeypatch):
    """No thread variables, no launcher, no command's choice: the rules after OMP_NUM_THREADS decide."""
    for name in ("OMP_NUM_THREADS", "LOCAL_WORLD_SIZE", "RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(device, "CHOICE", {})
    monkeypatch.setattr(device, "free_cores", lambda: IDLE_2_CORES)
    monkeypatch.setattr(device, "_MEASURED", {})
    monkeypatch.setattr(workers, "_STARTED", {})
    return monkeypatch


def test_an_explicit_count_beats_omp_num_threads_which_beats_the_measurement(plain):
    plain.setenv("OMP_NUM_THREADS", "1")
    assert choose_threads(2, free=IDLE_2_CORES) == (2, "--threads 2")
    assert choose_threads(0, free=IDLE_2_CORES, program=2) == (1, "OMP_NUM_THREADS=1")
    plain.setenv("OMP_NUM_THREADS", "not a count")  # as if unset
    assert choose_threads(0, free=IDLE_2_CORES) == (2, "free cores (" + IDLE_2_CORES[1] + ")")


def test_torchruns_processes_share_the_free_cores(plain):
    plain.setenv("LOCAL_WORLD_SIZE", "2")
    threads, why = choose_threads(0, free=IDLE_2_CORES)
    assert threads == 1 and why.startswith("free cores / LOCAL_WORLD_SIZE 2")
    assert set_threads(0) == 1 and device.CHOICE["why"].startswith("free cores / LOCAL_WORLD_SIZE 2")


def test_the_jobs_share_the_free_cores_and_a_programs_setting_is_kept(plain):
    assert choose_threads(0, 2, free=IDLE_2_CORES)[0] == 1 and choose_threads(0, 3, free=IDLE_2_CORES)[0] == 1
    torch.set_num_threads(torch.get_num_interop_threads())  # as torch starts (the suite's setting is one)
    assert workers.cell_threads(2) == (1, "free cores / 2 jobs (" + IDLE_2_CORES[1] + ")")
    if torch.get_num_interop_threads() == 1:
        pytest.skip("torch's default is one thread here: a program's choice of one cannot be told from it")
    torch.set_num_threads(1)  # a program's own choice, unlike torch's default (conftest puts 1 back anyway)
    assert workers.cell_threads(2) == (1, "torch.set_num_threads(1) of the program")
    set_threads(0)  # a command's choice is not a program's
    assert device.program_threads() is None


def run(command, *args, env=None):
    """``python -m command args`` in a fresh process with ``env`` added; its stderr."""
    done = subprocess.run([sys.executable, "-m", command, *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stderr


def test_pretrain_takes_omp_num_threads_unless_told_otherwise(tmp_path):
    err = run("pretrain", "digits", "-l", "rbm:8", "--epochs", 1, "-o", tmp_path / "a", "--no-plots", "-q",
              "--profile", env={"OMP_NUM_THREADS": "1"})
    assert json.loads((tmp_path / "a" / "stack.json").read_text())["threads"] == {"threads": 1,
                                                                                  "why": "OMP_NUM_THREADS=1"}
    assert "threads: 1 (OMP_NUM_THREADS=1)" in err
    run("pretrain", "digits", "-l", "rbm:8", "--epochs", 1, "-o", tmp_path / "b", "--no-plots", "-q",
        "--threads", 2, env={"OMP_NUM_THREADS": "1"})
    assert json.loads((tmp_path / "b" / "stack.json").read_text())["threads"] == {"threads": 2, "why": "--threads 2"}


def test_finetune_takes_omp_num_threads(tmp_path):
    run("finetune", "digits", "--from", "pixels", "--schedule", "linear", "--labels-per-class", 2, "--epochs", 1,
        "--report", tmp_path / "r", "-q", env={"OMP_NUM_THREADS": "1"})
    config = json.loads((tmp_path / "r" / "results.json").read_text())["config"]
    assert config["threads"] == {"threads": 1, "why": "OMP_NUM_THREADS=1"}
