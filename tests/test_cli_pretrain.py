"""The `pretrain` command end to end, and its one-line errors."""
import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from cli_checks import assert_failure, assert_usage_error
from pretrain.cli import main


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_pretrain_digits_end_to_end(tmp_path):
    out = tmp_path / "dbn"
    result = invoke("digits", "-l", "rbm:32", "-l", "rbm:16,epochs=1", "-o", out, "--epochs", 2, "-q", "--no-plots")
    assert result.exit_code == 0, result.output
    assert "pretrained Stack(64-32-16; rbm, rbm)" in result.output
    info = json.loads((out / "stack.json").read_text())
    assert [h["layer"] for h in info["history"]] == [0, 0, 1]


def test_list_layers_shows_every_kind_and_option():
    result = invoke("--list-layers")
    assert result.exit_code == 0
    for text in ("rbm:", "grbm:", "ae:", "pcd=", "noise=", "contractive=", "learn_std="):
        assert text in result.output


@pytest.mark.parametrize("args, message", [
    (["digits", "-l", "rbm"], "KIND:UNITS"),
    (["digits", "-l", "rmb:10"], "unknown layer kind 'rmb'"),
    (["digits", "-l", "rbm:10,noise=mask:0.3"], "rbm takes"),
    (["digits"], "no layers given"),
    (["-l", "rbm:10"], "missing DATA"),
    (["digits", "-l", "rbm:10", "--device", "tpu"], "'tpu' is not one of 'auto', 'cpu', 'cuda'"),
    (["digits", "-l", "rbm:10", "--epochs", "0"], "0 is not in the range x>=1"),
    (["digits", "-l", "rbm:10", "--lr", "-1"], "-1.0 is not in the range x>=0"),
    (["digits", "-l", "rbm:10", "--threads", "-2"], "x>=0"),
    (["digits", "-l", "cae:8,kernel=3,stride=5"], "use a stride of at most 3"),
])
def test_usage_mistakes_exit_2_with_the_usage_line_and_one_error(args, message):
    assert_usage_error(invoke(*args), message)


@pytest.mark.parametrize("args, message", [
    (["idx:/no/such/folder", "-l", "rbm:10"], "not found"),
    (["npz:/no/such/file.npz", "-l", "rbm:10"], "npz"),
    (["imagenet", "-l", "rbm:10"], "unknown data"),
    (["x.npz", "-l", "rbm:10"], "write npz:x.npz"),
    (["--plots-only", "/no/such/stack"], "no pretrained stack"),
])
def test_failures_exit_1_with_one_line(args, message):
    assert_failure(invoke(*args), message)


def test_version_prints_the_package_version():
    from pretrain import __version__
    result = invoke("--version")
    assert result.exit_code == 0 and result.output.strip().endswith(__version__)


def test_without_out_it_says_nothing_will_be_saved():
    result = CliRunner().invoke(main, ["digits", "-l", "rbm:8", "--epochs", "1", "-q", "--no-plots"])
    assert result.exit_code == 0, result.output
    assert "nothing will be saved" in result.output


def test_a_log_redirected_to_a_file_stays_small(tmp_path):
    """Bars only on a terminal: a redirected 3-epoch run writes its per-epoch lines and no bar frames."""
    log = tmp_path / "log.txt"
    with open(log, "w") as stream:
        subprocess.run([sys.executable, "-m", "pretrain", "digits", "-l", "rbm:16", "-l", "rbm:8", "--epochs", "3",
                        "--threads", "1", "-o", tmp_path / "run", "--no-plots"],
                       stdout=stream, stderr=subprocess.STDOUT, check=True)
    text = log.read_text()
    assert "\r" not in text and len(text) < 4000, text[:2000]
    assert text.count("epoch") >= 6  # one line per epoch and layer


def test_python_dash_m_pretrain_works():
    result = subprocess.run([sys.executable, "-m", "pretrain", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "one layer at a time" in result.stdout
    assert "LAYERWISE_DATA" in result.stdout and "folder:DIR" in result.stdout
