"""Smoke tests: every example script a user copies runs with its --quick settings."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name, tmp_path, *args):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # tiny models: threads only add overhead
    result = subprocess.run([sys.executable, str(EXAMPLES / name), "--quick", *args], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_digits_end_to_end(tmp_path):
    out = run_example("digits_end_to_end.py", tmp_path, "--out", tmp_path / "run")
    assert "random:" in out and "two-stage" in out and "1/class" in out
    rows = json.loads((tmp_path / "run" / "report" / "results.json").read_text())["rows"]
    assert {row["schedule"] for row in rows} == {"linear", "two-stage"}
    assert all(0.1 < row["test_accuracy"] <= 1 for row in rows)


def test_imagenet_transfer(tmp_path):
    out = run_example("imagenet_transfer.py", tmp_path, "--out", tmp_path / "run")
    assert "torchvision:resnet18@none" in out and "random:" in out
    rows = json.loads((tmp_path / "run" / "report" / "results.json").read_text())["rows"]
    assert len(rows) == 6 and all(0.1 < row["test_accuracy"] <= 1 for row in rows)


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(),
                    reason="Fashion-MNIST not installed (apt-get install -y dataset-fashion-mnist)")
def test_fashion_mnist_label_budget(tmp_path):
    out = run_example("fashion_mnist_label_budget.py", tmp_path, "--out", tmp_path / "run")
    assert "random:" in out and "10/class" in out


def test_cifar10_table_on_digits(tmp_path):
    """The natural-image table's whole pipeline on the built-in digits (3 x 3 patches, 16 features)."""
    run_example("cifar10_table.py", tmp_path, "digits", "-o", tmp_path / "table", "--labels-per-class", "5",
                "--seeds", "2", "--learners", "kmeans,ae,patches", "--controls", "ae")
    rows = json.loads((tmp_path / "table" / "results.json").read_text())["rows"]
    sources = {row["source"].rpartition("/")[2] for row in rows}
    assert sources == {"pixels", "kmeans", "ae", "patches"} and len(rows) == 10  # random:.../ae ends in "ae"
    assert any(row["source"].startswith("random:") for row in rows)
    assert all(0.3 < row["test_accuracy"] <= 1 for row in rows)  # ten classes: chance is 0.1
    assert (tmp_path / "table" / "results.md").exists()
