"""The ``finetune`` command end to end on digits, and every user mistake as one line without a traceback."""
import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from finetune import load_classifier
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
    (["--from", "imagenet:resnet18"], "random:STACK_DIR (same architecture, fresh weights) or torchvision:NAME"),
    (["--from", "{stack}", "--labels-per-class", "500"],
     "--labels-per-class 500: class 8 has only 139 labeled training examples; use at most 139 or `all`"),
    (["--from", "{stack}", "--labels", "5000"], "--labels 5000: there are only 1437 labeled training examples"),
    (["--from", "{stack}", "--labels-per-class", "ten"], "use comma-separated positive counts"),
    (["--from", "{stack}", "--head", "mlp"], "--head mlp: use linear or mlp:HIDDEN"),
    (["--from", "{stack}", "--unfreeze", "3"], "--unfreeze 3: the body has 2 layer groups; use 1 to 2"),
    (["--from", "{stack}", "--drop-top", "2"], "--drop-top 2: "),
    (["--from", "{stack}", "--split-seed", "4"], "pass --split-seed 0"),
    (["--from", "{stack}", "--seeds", "0"], "--seeds 0: use at least 1"),
    (["--from", "{stack}", "--schedule", "warmup"], "unknown schedule 'warmup': use one of linear, two-stage, full"),
    ([], "no --from given"),
])
def test_user_mistakes_get_one_line(stack_dir, args, message):
    result = run("digits", *[a.replace("{stack}", stack_dir) for a in args], "-q")
    assert result.exit_code == 1
    assert result.output.strip().count("\n") == 0 and "Traceback" not in result.output
    assert result.output.startswith("Error: ") and message in result.output, result.output


def test_unlabeled_data_and_missing_data_get_one_line(stack_dir, tmp_path):
    np.savez(tmp_path / "x.npz", x=np.random.default_rng(0).random((20, 64)))
    for args, message in ((["npz:" + str(tmp_path / "x.npz")], "fine-tuning needs labels"), ([], "missing DATA")):
        result = run(*args, "--from", stack_dir, "-q")
        assert result.exit_code == 1 and result.output.startswith("Error: ") and message in result.output
        assert result.output.strip().count("\n") == 0


def test_help_is_fast_and_python_m_works():
    code = "import sys; import finetune.cli; assert 'torch' not in sys.modules, 'torch imported by --help'"
    subprocess.run([sys.executable, "-c", code], check=True)
    result = subprocess.run([sys.executable, "-m", "finetune", "--help"], capture_output=True, text=True, check=True)
    assert "--labels-per-class" in result.stdout and "--list-backbones" in result.stdout
