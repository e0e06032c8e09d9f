"""The ``finetune`` command end to end on digits, and every user mistake as one line without a traceback."""
import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from finetune import load_classifier
from cli_checks import assert_failure, assert_usage_error
from finetune.cli import main
from pretrain import load_data, pretrain_stack


@pytest.fixture(scope="module")
def stack_dir(tmp_path_factory):
    """A small stack: these tests check the command, not how much pretraining helps."""
    out = tmp_path_factory.mktemp("cli-dbn")
    pretrain_stack("digits", ["rbm:32", "rbm:16"], out=out, epochs=3, progress=False)
    return str(out)


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_comparison_with_report_and_saved_models(stack_dir, tmp_path):
    control = f"random:{stack_dir}"
    result = run("digits", "--from", stack_dir, "--from", control, "--schedule", "linear", "--schedule", "two-stage",
                 "--labels-per-class", "2,all", "--seeds", 2, "--epochs", 3, "--report", tmp_path / "cmp",
                 "--save", tmp_path / "models", "-q")
    assert result.exit_code == 0, result.output
    assert "test accuracy, mean ± std over 2 seeds" in result.output and "2/class" in result.output
    assert sum(line.startswith(control) for line in result.output.splitlines()) == 2  # linear and two-stage
    rows = json.loads((tmp_path / "cmp" / "results.json").read_text())["rows"]
    assert len(rows) == 2 * 2 * 2 * 2
    assert {row["source"] for row in rows} == {stack_dir, control}
    assert {row["labels_per_class"] for row in rows} == {2, "all"}
    assert all(0.0 <= row["test_accuracy"] <= 1.0 and row["train_seconds"] > 0 for row in rows)
    for name in ("results.csv", "results.md", "learning_curves.png"):
        assert (tmp_path / "cmp" / name).stat().st_size > 0
    saved = sorted(p.parent.name for p in (tmp_path / "models").glob("*/classifier.pt"))
    assert len(saved) == 16 and sum(name.startswith("random-") for name in saved) == 8
    model = load_classifier(next((tmp_path / "models").glob("*_linear_2_seed1")))
    digits = load_data("digits")
    assert model.predict(digits.x_test).shape == (360,)
    assert model.metrics["seed"] == 1 and model.metrics["schedule"] == "linear"


def test_one_model_is_saved_in_the_folder_itself(stack_dir, tmp_path):
    result = run("digits", "--from", stack_dir, "--labels", 50, "--schedule", "full", "--epochs", 2,
                 "--save", tmp_path / "clf", "-q")
    assert result.exit_code == 0, result.output
    model = load_classifier(tmp_path / "clf")
    assert model.metrics["labels"] == 50 and model.metrics["labels_per_class"] == 5
    assert np.isclose(model.predict_proba(load_data("digits").x_test[:3]).sum(), 3, atol=1e-4)


@pytest.mark.parametrize("args, message", [
    (["--from", "no/such/dir"], "--from no/such/dir: no pretrained stack there; use STACK_DIR"),
    (["--from", "imagenet:resnet18"], "random:STACK_DIR (same architecture, fresh weights), torchvision:NAME"),
    (["--from", "{stack}", "--labels-per-class", "500"],
     "--labels-per-class 500: class 8 has only 139 labeled training examples; use at most 139 or `all`"),
    (["--from", "{stack}", "--labels", "5000"], "--labels 5000: there are only 1437 labeled training examples"),
    (["--from", "{stack}", "--unfreeze", "3"], "--unfreeze 3: the body has 2 layer groups; use 1 to 2"),
    (["--from", "{stack}", "--drop-top", "2"], "--drop-top 2: "),
    (["--from", "{stack}", "--split-seed", "4"], "pass --split-seed 0"),
])
def test_failures_get_one_line(stack_dir, args, message):
    assert_failure(run("digits", *[a.replace("{stack}", stack_dir) for a in args], "-q"), message)


@pytest.mark.parametrize("args, message", [
    (["--from", "{stack}", "--labels-per-class", "ten"], "use comma-separated positive counts"),
    (["--from", "{stack}", "--head", "mlp"], "head=mlp: use linear or mlp:HIDDEN"),
    (["--from", "{stack}", "--seeds", "0"], "0 is not in the range x>=1"),
    (["--from", "{stack}", "--schedule", "warmup"], "'warmup' is not one of 'linear', 'two-stage', 'full', 'gradual'"),
    (["--from", "{stack}", "--input-size", "0"], "0 is not in the range x>=1"),
    (["--from", "{stack}", "--lr", "-1"], "x>0"),
    ([], "no --from given"),
])
def test_usage_mistakes_exit_2(stack_dir, args, message):
    assert_usage_error(run("digits", *[a.replace("{stack}", stack_dir) for a in args], "-q"), message)


def test_unlabeled_data_and_missing_data(stack_dir, tmp_path):
    np.savez(tmp_path / "x.npz", x=np.random.default_rng(0).random((20, 64)))
    assert_failure(run("npz:" + str(tmp_path / "x.npz"), "--from", stack_dir, "-q"), "fine-tuning needs labels")
    assert_usage_error(run("--from", stack_dir, "-q"), "missing DATA")


def test_report_folder_below_a_file_is_one_line(stack_dir, tmp_path):
    (tmp_path / "file").write_text("")
    result = run("digits", "--from", stack_dir, "--labels-per-class", "2", "--schedule", "linear", "--epochs", 1,
                 "--report", tmp_path / "file" / "cmp", "-q")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1].startswith("Error: --report ")


def test_version_and_a_quiet_log(stack_dir, tmp_path):
    from finetune import __version__
    assert run("--version").output.strip().endswith(__version__)
    log = tmp_path / "log.txt"
    with open(log, "w") as stream:  # not a terminal: per-cell lines, no bar frames
        subprocess.run([sys.executable, "-m", "finetune", "digits", "--from", stack_dir, "--labels-per-class", "2,5",
                        "--threads", "1", "--epochs", "3"], stdout=stream, stderr=subprocess.STDOUT, check=True)
    text = log.read_text()
    assert "\r" not in text and len(text) < 3000, text[:2000]
    assert "test accuracy" in text


def test_results_json_carries_the_configuration_and_the_paired_gap(stack_dir, tmp_path):
    control = f"random:{stack_dir}"
    result = run("digits", "--from", stack_dir, "--from", control, "--from", "pixels", "--schedule", "linear",
                 "--labels-per-class", "3", "--seeds", 3, "--epochs", 2, "--report", tmp_path / "r", "-q")
    assert result.exit_code == 0, result.output
    assert f"{stack_dir} - {control}" in result.output and "95% interval" in result.output
    saved = json.loads((tmp_path / "r" / "results.json").read_text())
    config = saved["config"]
    assert config["command"][:2] == ["finetune", "digits"] and config["data"]["spec"] == "digits"
    assert config["options"]["epochs"] == 2 and config["grid"]["seeds"] == [0, 1, 2]
    assert [s["source"] for s in config["sources"]] == [stack_dir, control, "pixels"]
    assert config["sources"][0]["data"] == "digits" and "torch" in config["versions"]
    assert all(row["n_classes"] == 10 for row in saved["rows"])
    rows = {(r["source"], r["seed"]): r["test_accuracy"] for r in saved["rows"]}
    gaps = [rows[stack_dir, s] - rows[control, s] for s in range(3)]
    shown = next(line for line in result.output.splitlines() if line.startswith(f"{stack_dir} - "))
    assert f"{np.mean(gaps):+.3f}" in shown


def test_predictions_from_the_command_line_match_the_python_api(stack_dir, tmp_path):
    assert run("digits", "--from", stack_dir, "--labels-per-class", 5, "--schedule", "linear", "--epochs", 2,
               "--save", tmp_path / "clf", "-q").exit_code == 0
    result = run("digits", "--predict", tmp_path / "clf", "--predictions", tmp_path / "p.csv")
    assert result.exit_code == 0, result.output
    import csv
    with open(tmp_path / "p.csv") as f:
        lines = list(csv.DictReader(f))
    expected = load_classifier(tmp_path / "clf").predict(load_data("digits").x_test)
    assert [int(line["prediction"]) for line in lines] == expected.tolist()
    assert set(lines[0]) >= {"index", "prediction", "label", "p_0", "p_9"}
    assert abs(sum(float(lines[0][f"p_{c}"]) for c in range(10)) - 1) < 1e-4


def test_help_is_fast_and_python_m_works():
    code = "import sys; import finetune.cli; assert 'torch' not in sys.modules, 'torch imported by --help'"
    subprocess.run([sys.executable, "-c", code], check=True)
    result = subprocess.run([sys.executable, "-m", "finetune", "--help"], capture_output=True, text=True, check=True)
    assert "--labels-per-class" in result.stdout and "--list-backbones" in result.stdout


def test_two_jobs_give_the_numbers_of_one(stack_dir):
    """Cells in worker processes (joblib) give exactly the rows of one process: same seeds, same results.

    With the same number of threads: an in-process `finetune` run earlier in the session may have
    set this process's to the free cores (--threads 0), and 1 and 2 threads differ in the last bits."""
    import torch
    from finetune import compare
    torch.set_num_threads(1)
    grid = dict(sources=[stack_dir, f"random:{stack_dir}"], schedules=["linear", "two-stage"],
                labels_per_class="2,5", seeds=2, epochs=3, progress=False, threads=1)
    one, two = compare("digits", jobs=1, **grid), compare("digits", jobs=2, **grid)
    strip = [{k: v for k, v in row.items() if k != "train_seconds"} for row in one]
    assert strip == [{k: v for k, v in row.items() if k != "train_seconds"} for row in two]
