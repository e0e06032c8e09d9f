"""Starting the processes of one distributed run, as torchrun would, for the distributed tests."""
import os
import re
import signal
import socket
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
TORCHRUN = Path(sys.executable).parent / "torchrun"
#: a failed peer ends a test's run within this many seconds instead of hanging it.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "LAYERWISE_DIST_TIMEOUT": "20"}
#: seconds any launched run may take before the test fails instead of hanging.
LIMIT_S = 180
#: how a rank ends when a C++ exception escapes one of gloo's connection threads (std::terminate): seen
#: once in CI on a loaded machine (pytorch/pytorch#188266 reports the same abort). Our code is Python and
#: cannot raise it, so a launch meeting it is started once more, with a warning that shows the rank's words.
ABORTED = "Signal 6 (SIGABRT)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_env(rank: int, world: int, port: int) -> dict:
    """The variables torchrun sets for process ``rank`` of ``world`` on this machine."""
    return {**ENV, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
            "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}


def start_ranks(module: str, args: list, world: int = 2) -> list:
    """``python -m MODULE ARGS`` as ``world`` processes of one run, as torchrun would start them."""
    port = free_port()
    return [subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=rank_env(r, world, port))
            for r in range(world)]


def finish(processes: list) -> list:
    """Each process's (returncode, stdout, stderr), killing all of them past the limit."""
    try:
        return [(p.wait(LIMIT_S), *p.communicate()) for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()


def once_more_if_aborted(launch: Callable, aborted: Callable, stderr: Callable):
    """``launch()``, and once more when ``aborted(result)``: a rank died of gloo's abort (:data:`ABORTED`)."""
    result = launch()
    if aborted(result):
        warn_aborted(stderr(result))
        result = launch()
    return result


def run_ranks(module: str, args: list, world: int = 2) -> list:
    """:func:`start_ranks` then :func:`finish`, once more if a rank died of gloo's abort."""
    return once_more_if_aborted(lambda: finish(start_ranks(module, args, world)),
                                lambda results: -signal.SIGABRT in [code for code, _, _ in results],
                                lambda results: "\n".join(stderr for _, _, stderr in results))


def torchrun(args: list) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node 2 ARGS``, once more if a rank died of gloo's abort."""
    command = [str(TORCHRUN), "--standalone", "--nproc_per_node", "2", *args]
    return once_more_if_aborted(
        lambda: subprocess.run(command, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=LIMIT_S),
        lambda done: done.returncode != 0 and ABORTED in done.stderr, lambda done: done.stderr)


#: torchrun's own log lines (``W1203 11:36:58.342000 18670 torch/distributed/run.py:982] ...``).
LAUNCHER_LINE = re.compile(r"[WEI]\d{4} \d\d:\d\d:\d\d")


def workers_words(stderr: str, limit: int = 4000) -> str:
    """``stderr`` without torchrun's log lines, from its start: the ranks' words come before torchrun's
    traceback, which a tail would show instead."""
    return "\n".join(line for line in stderr.splitlines() if not LAUNCHER_LINE.match(line))[:limit]


def warn_aborted(stderr: str) -> None:
    warnings.warn(f"a rank aborted (C++ terminate); launched again. The ranks said:\n{workers_words(stderr)}")
