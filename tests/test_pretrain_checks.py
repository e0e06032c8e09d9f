"""What pretrain refuses before it trains (issue 30): a layer list the specs alone rule out, at parse time; and a
refused run leaves its -o as it found it."""
import numpy as np
import pytest
from click.testing import CliRunner

from cli_checks import assert_failure, assert_usage_error
from pretrain.cli import main
from pretrain.core.errors import LayerwiseError
from pretrain.layers import LayerSpec
from pretrain.training.layer_list import check_layer_list


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_a_conv_layer_above_a_dense_one_is_a_usage_mistake(tmp_path):
    result = run("digits", "-l", "rbm:32", "-l", "cae:8", "-o", tmp_path / "run", "-q")
    assert_usage_error(result, "layer 2 (cae:8) is convolutional and sits on a dense layer (rbm:32), whose codes are "
                               "vectors: put convolutional layers first, e.g. -l cae:8 -l rbm:32")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("layers", [["cae:4"], ["cae:4", "crbm:4", "rbm:8", "ae:4"], ["rbm:8", "ae:4"]])
def test_layer_lists_that_fit_pass(layers):
    check_layer_list([LayerSpec.parse(text) for text in layers])


def test_the_rule_names_every_misplaced_layer_in_its_fix():
    with pytest.raises(LayerwiseError, match=r"layer 3 \(crbm:4\) .* e.g. -l cae:4 -l crbm:4 -l rbm:8$"):
        check_layer_list([LayerSpec.parse(text) for text in ["cae:4", "rbm:8", "crbm:4"]])


@pytest.mark.parametrize("x, message", [
    (np.where(np.eye(40, 64) > 0, np.nan, 0.5).astype(np.float32), "remove or impute them before pretraining"),
    (np.full((40, 64), 0.5, np.float32), "the data is constant"),
])
def test_a_refused_run_leaves_no_folder_behind(tmp_path, x, message):
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "new" / "run"
    assert_failure(run(f"npy:{tmp_path / 'x.npy'}", "-l", "rbm:4", "-o", out, "-q"), message)
    assert not (tmp_path / "new").exists()


def test_a_folder_that_was_there_stays(tmp_path):
    np.save(tmp_path / "x.npy", np.full((40, 64), 0.5, np.float32))
    (tmp_path / "run").mkdir()
    assert_failure(run(f"npy:{tmp_path / 'x.npy'}", "-l", "rbm:4", "-o", tmp_path / "run", "-q"), "is constant")
    assert (tmp_path / "run").is_dir() and not any((tmp_path / "run").iterdir())


def test_an_idx_folder_whose_test_images_have_another_shape_is_refused(tmp_path):
    from test_data import write_mismatched_idx
    spec = write_mismatched_idx(tmp_path / "idx")
    result = run(spec, "-l", "rbm:4", "-o", tmp_path / "run", "-q")
    assert_usage_error(result, f"'{spec}': its test examples are 6x6 but its training examples 8x8: give every "
                               "split the same shape")
    assert not (tmp_path / "run").exists()
