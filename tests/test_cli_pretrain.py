"""The `pretrain` command end to end, and its one-line errors."""
import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

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
    (["idx:/no/such/folder", "-l", "rbm:10"], "not found"),
    (["npz:/no/such/file.npz", "-l", "rbm:10"], "npz"),
    (["imagenet", "-l", "rbm:10"], "unknown data"),
    (["digits", "-l", "rbm:10", "--device", "tpu"], "device"),
    (["--plots-only", "/no/such/stack"], "no pretrained stack"),
])
def test_user_mistakes_get_one_line_and_no_traceback(args, message):
    result = invoke(*args)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


def test_python_dash_m_pretrain_works():
    result = subprocess.run([sys.executable, "-m", "pretrain", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "one layer at a time" in result.stdout
