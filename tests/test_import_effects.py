"""Importing the commands changes nothing in the importing process; running one prepares its process (issue 29)."""
import json
import subprocess
import sys

import torch

from pretrain.core.device import deterministic_convolutions, resolve_device

PROBE = r"""
import atexit, gc, json, os
import pretrain.core.memory as memory
calls = []
memory.keep_freed_memory = lambda: calls.append("mallopt") or True  # before anything imports it
environment = dict(os.environ)
import torch
deterministic = torch.backends.cudnn.deterministic
import pretrain.cli, finetune.cli
from pretrain.core import device

def state():
    return {"mallopt": list(calls), "window": "opened" in device._WATCH, "environment": dict(os.environ) == environment,
            "cudnn": torch.backends.cudnn.deterministic == deterministic}

imported = state()
{main}(["--version"], standalone_mode=False)
ran = state()
atexit._run_exitfuncs()
print(json.dumps({"imported": imported, "ran": ran, "frozen": gc.get_freeze_count() > 0}))
"""


def probe(main: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE.replace("{main}", main)], capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out.splitlines()[-1])


def test_importing_the_commands_changes_nothing_and_running_one_prepares_its_process():
    """Imported: no allocator settings, no /proc/stat window, no gc.freeze at exit, cuDNN and the environment
    as they were. Run (``--version`` is enough: the preparation comes before parsing): all three."""
    for main in ("pretrain.cli.main", "finetune.cli.main"):
        seen = probe(main)
        assert seen["imported"] == {"mallopt": [], "window": False, "environment": True, "cudnn": True}, main
        assert seen["ran"] == {"mallopt": ["mallopt"], "window": True, "environment": True, "cudnn": True}, main
        assert seen["frozen"], main


def test_cudnn_is_deterministic_only_inside_a_run_that_asks():
    before = torch.backends.cudnn.deterministic
    resolve_device("cpu")
    assert torch.backends.cudnn.deterministic == before
    with deterministic_convolutions(torch.device("cpu")):
        assert torch.backends.cudnn.deterministic == before  # nothing to hold on the CPU
    with deterministic_convolutions(torch.device("cuda")):  # the flag itself needs no GPU
        assert torch.backends.cudnn.deterministic
    assert torch.backends.cudnn.deterministic == before
