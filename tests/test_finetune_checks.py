"""What fine-tuning refuses before anything trains or is written (issue 30), each as one line and nothing on disk:
data it cannot learn from, batches of one, a run that diverged, folders holding earlier results."""
import json

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.datasets import load_digits

import finetune
from cli_checks import assert_failure, assert_usage_error
from finetune.cli import main
from pretrain.core.errors import LayerwiseError
from pretrain.data.dataset import Dataset

#: the cheapest study: logistic regression on the pixels, one epoch
QUICK = ("--from", "pixels", "--schedule", "linear", "--labels-per-class", "2", "--epochs", "1", "-q")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def digits_arrays(n=200):
    """The first ``n`` digits as float32 pixels and their labels."""
    data = load_digits()
    return data.data[:n].astype(np.float32), data.target[:n]


def npz(path, **arrays):
    np.savez(path, **arrays)
    return f"npz:{path}"


def assert_nothing_written(*folders):
    assert not any(folder.exists() for folder in folders), [str(f) for f in folders if f.exists()]


@pytest.mark.parametrize("where, message", [
    ("train", "the training split holds 1 NaN and 0 infinite value(s) in 1 of 150 examples: remove or impute them "
              "before fine-tuning"),
    ("test", "the test split holds 0 NaN and 1 infinite value(s) in 1 of 50 examples: remove or impute them"),
])
def test_non_finite_values_in_any_split_are_refused(tmp_path, where, message):
    x, y = digits_arrays()
    x_train, x_test = x[:150].copy(), x[150:].copy()
    (x_train if where == "train" else x_test)[3, 5] = np.nan if where == "train" else np.inf
    spec = npz(tmp_path / "bad.npz", x_train=x_train, y_train=y[:150], x_test=x_test, y_test=y[150:])
    result = run(spec, *QUICK, "--save", tmp_path / "clf", "--report", tmp_path / "report")
    assert_failure(result, message)
    assert_nothing_written(tmp_path / "clf", tmp_path / "report")


@pytest.mark.parametrize("x, y, message", [
    (np.ones((200, 64), np.float32), digits_arrays()[1], "the training split is constant (all 160 examples are the "
                                                         "same): there is nothing to learn"),
    (digits_arrays()[0], np.zeros(200, np.int64), "fine-tuning needs at least two classes, and the training split "
                                                  "of 'npz:"),
])
def test_constant_data_and_one_class_are_refused(tmp_path, x, y, message):
    result = run(npz(tmp_path / "bad.npz", x=x, y=y), *QUICK, "--save", tmp_path / "clf")
    assert_failure(result, message)
    assert_nothing_written(tmp_path / "clf")


def test_data_whose_test_images_have_another_shape_is_refused_before_any_stack_is_read(tmp_path):
    from test_data import write_mismatched_idx
    spec = write_mismatched_idx(tmp_path / "idx")
    result = run(spec, *QUICK, "--save", tmp_path / "clf")
    assert_usage_error(result, f"'{spec}': its test examples are 6x6 but its training examples 8x8")
    assert_nothing_written(tmp_path / "clf")


def test_the_python_api_checks_the_same_data():
    x, y = digits_arrays()
    x[0, 0] = np.nan
    data = Dataset("array", x[:150], y[:150], x[150:], y[150:])
    with pytest.raises(LayerwiseError, match="the training split holds 1 NaN"):
        finetune.compare(data, ["pixels"], ["linear"], "2", epochs=1, progress=False)
    with pytest.raises(LayerwiseError, match="the training split holds 1 NaN"):
        finetune.fine_tune(data, "pixels", schedule="linear", labels_per_class=2, epochs=1, progress=False)


def test_the_unlabeled_pool_is_checked_under_semi():
    x, y = digits_arrays()
    pool = x[:50].copy()
    pool[7, 7] = np.inf
    data = Dataset("array", x[:150], y[:150], x[150:], y[150:], x_unlabeled=pool)
    with pytest.raises(LayerwiseError, match="the unlabeled pool holds 0 NaN and 1 infinite"):
        finetune.fine_tune(data, "pixels", schedule="linear", labels_per_class=2, epochs=1, semi="pseudo-label",
                           progress=False)
    finetune.fine_tune(data, "pixels", schedule="linear", labels_per_class=2, epochs=1, progress=False)  # unread


def test_predict_refuses_non_finite_input(tmp_path):
    x, y = digits_arrays()
    finetune.fine_tune(npz(tmp_path / "good.npz", x=x, y=y), "pixels", schedule="linear", labels_per_class=2,
                       epochs=1, progress=False).save(tmp_path / "clf")
    x[:, 10] = np.nan  # every row: whichever land in the split that is labeled
    result = run(npz(tmp_path / "bad.npz", x=x, y=y), "--predict", tmp_path / "clf",
                 "--predictions", tmp_path / "p.csv")
    assert_failure(result, "the data to label holds 40 NaN and 0 infinite value(s) in 40 of 40 examples: "
                           "remove or impute them before predicting")
    assert_nothing_written(tmp_path / "p.csv")


def test_a_batch_of_one_is_refused(tmp_path):
    result = run("digits", *QUICK, "--batch-size", 1, "--save", tmp_path / "clf")
    assert_usage_error(result, "Invalid value for '--batch-size': 1 is not in the range x>=2")
    assert_nothing_written(tmp_path / "clf")
    with pytest.raises(LayerwiseError, match="batch_size=1: batch_size must be at least 2"):
        finetune.fine_tune("digits", "pixels", batch_size=1, progress=False)


def test_a_diverged_fine_tuning_is_one_line_and_saves_nothing(tmp_path):
    result = run("digits", "--from", "pixels", "--head", "mlp:8", "--schedule", "linear", "--labels-per-class", 2,
                 "--epochs", 1, "--lr", "1e30", "--save", tmp_path / "clf", "--report", tmp_path / "report", "-q")
    assert_failure(result, "fine-tuning diverged (pixels linear labels 2 seed 0 head, epoch 1): its head.1.weight reached")
    assert result.output.rstrip().endswith("lower the learning rate (--lr 1e+30), e.g. --lr 0.001")
    assert_nothing_written(tmp_path / "clf", tmp_path / "report")


@pytest.mark.parametrize("option, held, flag", [("--save", "classifier.pt", "--save"),
                                                ("--save", "pixels_linear_2_seed0/classifier.pt", "--save"),
                                                ("--report", "results.json", "--report")])
def test_output_folders_holding_results_need_overwrite(tmp_path, option, held, flag):
    folder = tmp_path / "out"
    (folder / held).parent.mkdir(parents=True)
    (folder / held).write_text("earlier")
    assert_failure(run("digits", *QUICK, option, folder),
                   f"{flag} {folder} already holds results ({held}): pass --overwrite to replace them")
    assert [str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()] == [held]
    assert (folder / held).read_text() == "earlier"
    result = run("digits", *QUICK, option, folder, "--overwrite")
    assert result.exit_code == 0, result.output


def test_the_python_api_keeps_an_earlier_saved_model(tmp_path):
    (tmp_path / "classifier.pt").write_text("earlier")
    with pytest.raises(LayerwiseError, match="save=.* already holds results .classifier.pt.: pass overwrite=True"):
        finetune.compare("digits", ["pixels"], ["linear"], "2", epochs=1, save=tmp_path, progress=False)
    assert (tmp_path / "classifier.pt").read_text() == "earlier"


@pytest.fixture(scope="module")
def stack_dir(tmp_path_factory):
    """A one-layer stack: its ``full`` cells train the body by Adam, and diverge at ``--lr 1e30``."""
    from pretrain import pretrain_stack
    out = tmp_path_factory.mktemp("checks-dbn")
    pretrain_stack("digits", ["rbm:16"], out=out, epochs=1, progress=False)
    return str(out)


def fails_on(label, failing):
    """A task of :func:`execute` that fails with a LayerwiseError on ``failing``."""
    if label == failing:
        raise LayerwiseError(f"task {label} failed")
    return label


@pytest.mark.parametrize("jobs", [1, 2])
def test_the_executor_hands_back_what_finished(jobs):
    from finetune.study.cells import CellFailed, execute
    with pytest.raises(CellFailed, match="^task c failed$") as failure:
        execute(fails_on, [(label, "c") for label in "abcd"], jobs=jobs, threads=1)
    finished = [result for result in failure.value.results if result is not None]
    assert "c" not in finished and set(finished) <= {"a", "b", "d"}
    assert jobs == 2 or failure.value.results == ["a", "b", None, None]


def fails_in_a_worker(label, parent):
    """A fifth of a second's task that fails with a LayerwiseError in a worker, and returns its process here."""
    import os
    import time
    time.sleep(0.2)
    if os.getpid() != parent:
        raise LayerwiseError(f"task {label} failed in a worker")
    return os.getpid()


def test_a_failure_in_a_worker_hands_back_what_finished_here():
    import os

    from finetune.study import cells, workers
    with workers.worker_processes(2, 1):
        for ready in workers.start_workers(2, 1).warmed_up:
            ready.result()  # the worker is up: it takes a task as soon as the execution starts
        with pytest.raises(cells.CellFailed, match="failed in a worker$") as failure:
            cells.execute(fails_in_a_worker, [(label, os.getpid()) for label in "abcdefgh"], jobs=2, threads=1)
    assert set(failure.value.results) == {os.getpid(), None}  # this process's first task at least finished


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_failing_cell_keeps_the_cells_that_finished(stack_dir, tmp_path, jobs):
    # pixels under `full` is a probe (no body to train): it finishes; the stack's body diverges
    result = run("digits", "--from", "pixels", "--from", stack_dir, "--schedule", "full", "--labels-per-class", "2,3",
                 "--epochs", 1, "--lr", "1e30", "--jobs", jobs, "--threads", 1, "--save", tmp_path / "clf",
                 "--report", tmp_path / "report", "-q")
    assert_failure(result, f"fine-tuning diverged ({stack_dir} full labels ")
    line = result.output.strip()
    saved = sorted(path.parent.name for path in (tmp_path / "clf").glob("*/classifier.pt"))
    assert saved and all(name.startswith("pixels_full_") for name in saved)
    assert line.endswith(f"e.g. --lr 0.001; the {len(saved)} model(s) that finished are saved under --save "
                         f"{tmp_path / 'clf'} and reported in --report {tmp_path / 'report'}")
    rows = json.loads((tmp_path / "report" / "results.json").read_text())["rows"]
    assert [row["source"] for row in rows] == ["pixels"] * len(saved)
    assert jobs == 2 or saved == ["pixels_full_2_seed0", "pixels_full_3_seed0"]
