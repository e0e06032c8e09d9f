"""Concurrent runs: refused or isolated, never mixed, never a crash without a message."""
import subprocess
import sys

import numpy as np

import pretrain


def start(*args):
    command = [sys.executable, "-m", "pretrain", "digits", "--threads", "1", "-q", "--no-plots", *map(str, args)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_two_runs_on_one_output_folder_one_proceeds_the_other_gets_one_line(tmp_path):
    runs = [start("-l", "rbm:32", "-l", "rbm:16", "--epochs", 4, "-o", tmp_path / "out") for _ in range(2)]
    outputs = [(run.wait(timeout=300), run.stdout.read()) for run in runs]
    assert sorted(code for code, _ in outputs) == [0, 1], outputs
    refused = next(text for code, text in outputs if code == 1)
    lines = refused.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), refused
    assert "in use by another run" in refused or "already holds a run" in refused  # raced, or came after
    assert pretrain.load_stack(tmp_path / "out").n_outputs == 16


def test_two_runs_sharing_a_cache_folder_both_finish_with_their_own_results(tmp_path):
    cache = tmp_path / "cache"
    widths = {"a": ("rbm:32", "rbm:16"), "b": ("rbm:24", "ae:8")}
    runs = {name: start("-l", first, "-l", second, "--epochs", 3, "--seed", 1, "--cache-dir", cache,
                        "-o", tmp_path / name) for name, (first, second) in widths.items()}
    for name, run in runs.items():
        assert run.wait(timeout=300) == 0, run.stdout.read()
    for name, layers in widths.items():
        alone = pretrain.pretrain_stack("digits", list(layers), epochs=3, seed=1, progress=False)
        together = pretrain.load_stack(tmp_path / name)
        for mine, reference in zip(together.layers, alone.layers):
            for key, value in reference.state_dict().items():
                np.testing.assert_allclose(mine.state_dict()[key].numpy(), value.numpy(), atol=1e-5)
    assert list(cache.iterdir()) == []  # each run removed its own code files
