"""Fault injection: a real `pretrain` process SIGKILLed at random moments, then resumed until it finishes.

A three-layer run (an RBM, a PCD RBM, a denoising autoencoder) on digits is
killed while a checkpoint or the stack is being written (as soon as its
temporary file appears), or a random few milliseconds after a random
checkpoint; one seed is killed again while it resumes. ``--resume`` is then repeated until the run finishes;
its ``stack.pt`` must hold the same tensors, bit for bit, as an uninterrupted
run's, and the output folder only what a finished run leaves.
"""
import os
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

import pretrain

LAYERS = ["rbm:16", "rbm:12,pcd=true", "ae:8,noise=mask:0.3"]
EPOCHS = 3  # 3 layers x 3 epochs: 9 checkpoints per layer's epochs, 3 more as each layer ends
COMMAND = [sys.executable, "-m", "pretrain", "digits", *[w for spec in LAYERS for w in ("-l", spec)],
           "--epochs", str(EPOCHS), "--threads", "1", "-q", "--no-plots"]
#: the moments each seed's kills aim at: inside a checkpoint's write, inside the stack's write, or a random
#: delay after a random checkpoint (seed 0 is killed again while resuming). Each start costs ~3.5 s of CPU.
PLANS = {0: ("checkpoint write", "after a checkpoint"), 1: ("after a checkpoint",), 2: ("stack write",)}
FINISHED = {"stack.pt", "stack.json"}
POLL = 0.0005


def watch(out: Path):
    """What the folder shows now: the names in it and the checkpoint's inode (new on every atomic write)."""
    try:
        names = set(os.listdir(out))
        inode = (out / "checkpoint.pt").stat().st_ino if "checkpoint.pt" in names else None
    except FileNotFoundError:
        return set(), None
    return names, inode


def should_strike(moment: str, seen: int, target: int, names: set) -> bool:
    """Whether the process has reached ``moment``: ``seen`` checkpoints written, ``names`` in its folder."""
    writing = {name.split(".")[1] for name in names if name.endswith(".tmp")}  # .checkpoint.pt.XXXX.tmp
    if moment == "checkpoint write":
        return seen >= target and "checkpoint" in writing
    if moment == "stack write":
        return "stack" in writing
    return moment == "after a checkpoint" and seen >= target


def run_and_kill(out: Path, resume: bool, moment: str, target: int, delay: float) -> dict:
    """Start the command, SIGKILL it at ``moment`` (``delay`` seconds after ``target`` checkpoints for
    "after a checkpoint"), or let it finish with ``moment="never"``; what its folder showed when it died."""
    process = subprocess.Popen(COMMAND + ["-o", str(out)] + (["--resume"] if resume else []),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seen, last, strike_at = 0, None, None
    while process.poll() is None:
        names, inode = watch(out)
        if inode is not None and inode != last:
            seen, last = seen + 1, inode
        if strike_at is None and should_strike(moment, seen, target, names):
            strike_at = time.perf_counter() + (delay if moment == "after a checkpoint" else 0)
        if strike_at is not None and time.perf_counter() >= strike_at:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            return {"killed": True, "moment": moment, "checkpoints": seen, "names": sorted(names)}
        time.sleep(POLL)
    assert process.returncode == 0, process.stderr.read().decode()
    return {"killed": False, "moment": moment, "checkpoints": seen}


def tensors(path: Path) -> dict:
    """Every tensor of a saved stack, by its place in the artifact."""
    artifact = torch.load(path, weights_only=True)
    return {(i, name): value for i, layer in enumerate(artifact["layers"]) for name, value in layer["state"].items()}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    pretrain.pretrain_stack("digits", LAYERS, out, epochs=EPOCHS, progress=False)
    return tensors(out / "stack.pt")


def kill_and_resume(seed: int, out: Path) -> dict:
    """Seed ``seed``'s kills, then ``--resume`` until the run finishes; the kills, resumes and files left."""
    rng = random.Random(seed)
    # the first kill within the first 8 of 12 checkpoints, a second within the next 2: both land
    kills = [run_and_kill(out, resume=i > 0, moment=moment, target=rng.randint(1, 8 if i == 0 else 2),
                          delay=rng.uniform(0, 0.03)) for i, moment in enumerate(PLANS[seed])]
    resumes = 0
    while not (out / "stack.pt").exists() or (out / "checkpoint.pt").exists():
        assert resumes < 3, f"seed {seed}: still not finished after {resumes} resumes"
        run_and_kill(out, resume=True, moment="never", target=0, delay=0)
        resumes += 1
    return {"kills": kills, "resumes": resumes, "out": out, "files": sorted(os.listdir(out))}


@pytest.fixture(scope="module")
def killed_runs(tmp_path_factory):
    """Every seed's killed and resumed run, the seeds side by side (each process is mostly torch's import)."""
    outs = {seed: tmp_path_factory.mktemp(f"killed{seed}") / "run" for seed in PLANS}
    with ThreadPoolExecutor(len(PLANS)) as pool:
        return dict(zip(outs, pool.map(kill_and_resume, outs, outs.values())))


def test_every_kill_landed(killed_runs):
    """The runs were killed where planned, not left to finish: the test exercises what it claims to."""
    for seed, run in killed_runs.items():
        for kill in run["kills"]:
            assert kill["killed"], (seed, kill)
            if kill["moment"].endswith("write"):
                assert any(name.endswith(".tmp") for name in kill["names"]), (seed, kill)


@pytest.mark.parametrize("seed", sorted(PLANS))
def test_resumed_runs_equal_the_uninterrupted_run_bit_for_bit(killed_runs, uninterrupted, seed):
    resumed = tensors(killed_runs[seed]["out"] / "stack.pt")
    assert resumed.keys() == uninterrupted.keys()
    for key, value in uninterrupted.items():
        assert torch.equal(resumed[key], value), (seed, key)


def test_only_what_a_finished_run_leaves_besides_temporary_files(killed_runs):
    for seed, run in killed_runs.items():
        assert {name for name in run["files"] if not name.endswith(".tmp")} == FINISHED, (seed, run["files"])


def test_no_temporary_files_of_killed_writes_are_left(killed_runs):
    for seed, run in killed_runs.items():
        assert set(run["files"]) == FINISHED, (seed, run["files"])
