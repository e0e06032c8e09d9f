"""Data-parallel pretraining on two CPU processes (gloo), started by the tests themselves.

Two ways in, as users start it: ``torchrun`` in a subprocess, and two plain
processes given the variables torchrun sets (``RANK``, ``WORLD_SIZE``,
``MASTER_ADDR`` ...), which lets a test read each rank's output and kill one.
"""
import json
import signal
import time

import pytest
import torch

import pretrain
from launch import LIMIT_S, finish, run_ranks, start_ranks, torchrun, workers_words
from pretrain.plots import plot_stack
from pretrain.training.stack import load_stack


def weights(stack):
    return {f"{i}.{k}": v for i, layer in enumerate(stack.layers) for k, v in layer.state_dict().items()
            if k != "chain"}


@pytest.mark.parametrize("layer", ["ae:16", "cae:4,kernel=3,noise=none"])  # a per-sample loss, no noise drawn
def test_torchrun_ae_equals_one_process_with_the_same_global_batch(tmp_path, layer):
    """The gradient of the 50-row batch is the row-weighted mean of two 25-row halves (and 4 + 3 rows for
    the last, 7-row, batch): equal to one process's up to float32 summation order, ~1e-7 relative per step.
    Over 70 Adam steps it stays near float32's resolution (measured: max |diff| 3e-8 on weights of size
    0.3); 1e-6 leaves room for other BLAS builds and still catches a missing average (a factor 2 in every
    step) or a rank training on the other's rows."""
    out = tmp_path / "dp"
    done = torchrun(["-m", "pretrain", "digits", "-l", layer, "-o", str(out), "--epochs", "2", "--batch-size", "50",
                     "--seed", "1", "--no-plots", "--device", "cpu"])
    assert done.returncode == 0, workers_words(done.stderr)
    single = pretrain.pretrain_stack("digits", [layer], epochs=2, batch_size=50, seed=1, progress=False)
    parallel = load_stack(out)
    for name, value in weights(single).items():
        torch.testing.assert_close(weights(parallel)[name], value, rtol=0, atol=1e-6, msg=name)
    record = json.loads((out / "stack.json").read_text())["distributed"]
    assert record == {"world_size": 2, "backend": "gloo", "global_batch": 50, "per_rank_batch": 25}
    for metric in ("loss", "recon_train", "recon_val"):  # the held-out figures: each rank computes a share
        assert [entry[metric] for entry in parallel.info["history"]] == pytest.approx(
            [entry[metric] for entry in single.info["history"]], rel=1e-4), metric


def test_two_processes_share_the_chains_of_samples_png_and_draw_what_one_process_draws(tmp_path):
    """Rank 1 runs some of the Gibbs chains and rank 0 gathers them: the picture must be the one that
    one process draws from the same stack (each row has its own seed), byte for byte."""
    out = tmp_path / "dp"
    done = torchrun(["-m", "pretrain", "digits", "-l", "rbm:16", "-o", str(out), "--epochs", "1", "--seed", "2"])
    assert done.returncode == 0, workers_words(done.stderr)
    assert "wrote" in done.stdout and done.stdout.count("pretrained") == 1
    alone = tmp_path / "alone"
    plot_stack(load_stack(out), alone)
    assert (out / "plots" / "samples.png").read_bytes() == (alone / "plots" / "samples.png").read_bytes()


def test_two_rbm_processes_reach_the_single_process_error_and_only_rank_0_writes(tmp_path):
    out = tmp_path / "dp"
    args = ["digits", "-l", "rbm:32", "-o", str(out), "--epochs", "5", "--batch-size", "100", "--seed", "0",
            "--no-plots"]
    (code0, stdout0, stderr0), (code1, stdout1, stderr1) = run_ranks("pretrain", args)
    assert code0 == code1 == 0, stderr0[-2000:] + stderr1[-2000:]
    assert "layer 1 rbm:32 epoch 5/5" in stderr0 and "saved" in stdout0
    assert stdout1 == stderr1 == ""  # rank 1 prints nothing
    assert sorted(p.name for p in out.iterdir()) == ["stack.json", "stack.pt"]
    parallel = load_stack(out).info["history"][-1]["recon_val"]
    singles = [pretrain.pretrain_stack("digits", ["rbm:32"], epochs=5, batch_size=100, seed=seed,
                                       progress=False).info["history"][-1]["recon_val"] for seed in range(4)]
    spread = max(singles) - min(singles)
    assert min(singles) - spread <= parallel <= max(singles) + spread, (parallel, singles)


def test_a_killed_rank_ends_the_run_with_one_line_and_resume_continues_it_exactly(tmp_path):
    """Kill rank 1 mid-run: rank 0 stops with one line well within the 20 s timeout; a two-process
    resume from rank 0's checkpoint (every rank's random state and PCD chains) ends where an
    uninterrupted two-process run ends, bit for bit."""
    # --threads 1: the default follows the load, and the four runs below share two cores; another thread
    # count changes the last bits of a matrix product, and bit-identity is what this test checks.
    args = ["digits", "-l", "rbm:32,pcd=true", "--epochs", "15", "--batch-size", "50", "--seed", "3",
            "--no-plots", "--threads", "1"]
    ranks = start_ranks("pretrain", [*args, "-o", str(tmp_path / "killed")])
    checkpoint = tmp_path / "killed" / "checkpoint.pt"
    deadline = time.monotonic() + LIMIT_S
    while not checkpoint.exists() and time.monotonic() < deadline and ranks[0].poll() is None:
        time.sleep(0.2)
    ranks[1].send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    (code0, _, stderr0), _ = finish(ranks)
    assert time.monotonic() - killed_at < 20
    assert code0 != 0
    lines = [line for line in stderr0.splitlines() if not line.startswith("layer ")]
    assert len(lines) == 1 and lines[0].startswith("Error: process 0 of 2 stops:"), stderr0[-2000:]
    assert checkpoint.exists()

    resuming = start_ranks("pretrain", [*args, "-o", str(tmp_path / "killed"), "--resume"])
    results = finish(resuming + start_ranks("pretrain", [*args, "-o", str(tmp_path / "whole")]))
    assert [code for code, _, _ in results] == [0] * 4, results[0][2][-2000:]
    assert 0 < results[0][2].count("/15  loss") < 15  # it continued, did not start again
    a, b = load_stack(tmp_path / "killed"), load_stack(tmp_path / "whole")
    for name, value in weights(b).items():
        assert torch.equal(weights(a)[name], value), name


def test_a_resume_with_another_number_of_processes_is_refused_with_one_line(tmp_path):
    from pretrain.training.checkpoint import restore_rank_state
    from pretrain.core.errors import LayerwiseError
    layer = torch.nn.Linear(2, 2)
    with pytest.raises(LayerwiseError, match="written by 2 processes, this run has 1"):
        restore_rank_state(layer, [{}, {}])
