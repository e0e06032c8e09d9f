"""Where torch runs: the device and the number of threads.

``auto`` picks CUDA when present. Threads: torch's default (one per core)
collapses when another process uses the cores too (issue 10: the quick start
ran many times slower on a shared machine), so both commands take
``--threads N``; 0 (the default) follows the conventions (:func:`choose_threads`): ``OMP_NUM_THREADS``
when set (torchrun sets it to 1), a program's own ``torch.set_num_threads``, else one thread per core that
other processes leave free now, shared by the processes on the machine. The number of threads can change the last bits of a sum: pass ``--threads N``
for runs that must be bit-identical across machines. torch is imported inside
the functions so that ``--help`` never waits for it.
"""
import os
import sys
import time
from contextlib import contextmanager
from typing import Optional, Tuple

from .errors import LayerwiseError

DEVICES = ("auto", "cpu", "cuda")
#: seconds over which the other processes' use of the cores is measured (0.15 s: 15 jiffies of 2 cores at 100 Hz)
WINDOW_S = 0.15
#: the longest window a command's early :func:`watch_cores` may give (older news is not "now")
MAX_WINDOW_S = 3.0
#: how the last :func:`set_threads` chose: recorded in stack.json and shown by --profile
CHOICE = {}
#: the free cores the command measured as it started (:func:`set_threads`), for its later choices
_MEASURED = {}
#: the window :func:`watch_cores` opened: (its perf_counter time, :func:`_cpu_times` then)
_WATCH = {}


def launched() -> bool:
    """Whether torchrun (or another launcher setting ``RANK`` and ``WORLD_SIZE``) started this process."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def resolve_device(device: str = "auto"):
    """``auto`` -> CUDA when present, else CPU (a ``torch.device``); one line when CUDA is asked for and missing.

    It sets nothing: cuDNN's determinism is held by the runs that ask for it (:func:`deterministic_convolutions`).
    """
    import torch
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise LayerwiseError(f"device={device!r}: no CUDA device is available here; use 'cpu' or 'auto'")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise LayerwiseError(f"unknown device {device!r}: use auto, cpu or cuda") from None
    return resolved


@contextmanager
def deterministic_convolutions(device):
    """cuDNN held to its deterministic convolution algorithms while the block runs on a CUDA ``device``; its
    setting as it was afterwards. On the CPU nothing changes.

    Why: cuDNN's fastest algorithms for a filter's gradient add partial sums in a varying order, so a conv
    run would not repeat from its seed, nor a ``--resume`` equal the uninterrupted run. The runs that promise
    both ask for it around their seeded training: :func:`pretrain.training.greedy.pretrain_stack`, a
    fine-tuning cell (:meth:`finetune.study.experiment.Experiment.run`) and the scikit-learn estimators'
    seeded blocks (:func:`pretrain.sklearn._base.torch_seeded`). It is not set for the whole process (as
    :func:`resolve_device` once did): a program that uses layerwise keeps its own choice, and cuDNN's fastest
    algorithms, for everything else it runs.
    """
    import torch
    if torch.device(device).type != "cuda":
        yield
        return
    before = torch.backends.cudnn.deterministic
    torch.backends.cudnn.deterministic = True
    try:
        yield
    finally:
        torch.backends.cudnn.deterministic = before


def usable_cores() -> int:
    """The cores this process may run on: a container's or ``taskset``'s limit, not the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def watch_cores() -> None:
    """Open the window of :func:`busy_cores_elsewhere` now; its next call closes it.

    The commands call this as they start, so the window spans their imports and argument
    parsing (torch's import alone outlasts ``WINDOW_S``) instead of a sleep of ``WINDOW_S`` when the threads are set.
    """
    try:
        _WATCH["opened"] = (time.perf_counter(), _cpu_times())
    except OSError:
        pass


def busy_cores_elsewhere(window: float = WINDOW_S) -> float:
    """How many cores other processes keep busy now: the machine's busy time over ``window`` seconds
    (``/proc/stat``) minus this process's own (``/proc/self/stat``), in cores.

    A window of the present, unlike the 1-minute load average, which still counts a run that
    ended seconds ago (it decays over about a minute) and so starved the second of two commands
    run back to back (issue 18). Where ``/proc`` is missing, the load average stands in. A window
    opened by :func:`watch_cores` at most ``MAX_WINDOW_S`` ago is closed here, after sleeping only
    what it lacks of ``window``; an older one is dropped for a fresh one.
    """
    opened = _WATCH.pop("opened", None)
    try:
        if opened is None or time.perf_counter() - opened[0] > MAX_WINDOW_S:
            opened = time.perf_counter(), _cpu_times()
        time.sleep(max(0.0, window - (time.perf_counter() - opened[0])))
        before, after = opened[1], _cpu_times()
    except OSError:
        return float(os.getloadavg()[0])
    busy, total, own = (a - b for a, b in zip(after, before))
    return max(0.0, (busy - own) / total * (os.cpu_count() or 1)) if total else 0.0


def _cpu_times():
    """(busy jiffies of the machine, all its jiffies, this process's user + system jiffies)."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:9]]  # user nice system idle iowait irq softirq steal
    with open("/proc/self/stat") as f:
        own = sum(int(v) for v in f.read().rsplit(")", 1)[1].split()[11:13])  # utime, stime
    return sum(fields) - fields[3] - fields[4], sum(fields), own


def free_cores() -> Tuple[int, str]:
    """The usable cores that other processes leave free now (at least one), and how that was found."""
    usable, busy = usable_cores(), busy_cores_elsewhere()
    return max(1, usable - round(busy)), f"{usable} usable cores, {busy:.1f} busy in other processes now"


def auto_threads() -> int:
    """One thread per core left free now (:func:`free_cores`).

    Threads that outnumber the free cores wait on each other at every operation: beside one busy
    thread of another process, an RBM epoch ran many times slower at two threads than at one
    (issue 10; measured: ``examples/benchmarks/design_notes.md``). Small models (digits, batch 10)
    gain nothing from a second thread.
    """
    return free_cores()[0]


def choose_threads(threads: int = 0, processes: int = 1, free: Optional[Tuple[int, str]] = None,
                   program: Optional[int] = None) -> Tuple[int, str]:
    """The torch threads of one process, and the rule that chose them (issue 28), in this order:

    1. ``threads`` > 0, an explicit ``--threads N``;
    2. ``OMP_NUM_THREADS`` in the environment: the convention every torch user relies on, and what
       torchrun sets (to 1) for its workers;
    3. ``program``: the threads a program using the Python API set with ``torch.set_num_threads``
       (:func:`program_threads`);
    4. the ``free`` cores (default :func:`measured_free_cores`) shared by the processes on this machine:
       ``LOCAL_WORLD_SIZE`` of them under torchrun, else ``processes`` (``finetune --jobs``), at least one.
    """
    if threads < 0:
        raise LayerwiseError(f"threads={threads}: use 0 (the default rules) or a positive count")
    if threads:
        return threads, f"--threads {threads}"
    variable = environment_threads()
    if variable:
        return variable, f"OMP_NUM_THREADS={variable}"
    if program:
        return program, f"torch.set_num_threads({program}) of the program"
    cores, how = free or measured_free_cores()
    share, among = sharers(processes)
    return max(1, cores // share), f"free cores{among} ({how})"


def environment_threads() -> Optional[int]:
    """``OMP_NUM_THREADS`` as torch reads it (its first count, positive), else None (unset or not a count)."""
    try:
        value = int(os.environ.get("OMP_NUM_THREADS", "").split(",")[0])
    except ValueError:
        return None
    return value if value > 0 else None


def program_threads() -> Optional[int]:
    """This process's torch threads where a program chose them with ``torch.set_num_threads``, else None.

    torch does not say who set its count; unset, it is torch's default, the same count that sizes its
    inter-op pool (``TaskThreadPoolBase::defaultNumThreads``, physical cores), so a count that differs from
    ``torch.get_num_interop_threads()`` was chosen. A command's own choice (:data:`CHOICE`) is not a program's.
    """
    if CHOICE or "torch" not in sys.modules:  # a program that set torch's threads has imported torch
        return None
    import torch
    chosen = torch.get_num_threads()
    return chosen if chosen != torch.get_num_interop_threads() else None


def sharers(processes: int = 1) -> Tuple[int, str]:
    """How many processes share this machine's free cores, and the words for the record: torchrun's
    ``LOCAL_WORLD_SIZE`` (its processes on this machine; no ``--jobs`` workers start under it), else ``processes``."""
    try:
        local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    except ValueError:
        local = 1
    if local > 1:
        return local, f" / LOCAL_WORLD_SIZE {local}"
    return (processes, f" / {processes} jobs") if processes > 1 else (1, "")


def measured_free_cores() -> Tuple[int, str]:
    """:func:`free_cores` as the command measured them as it started (:func:`set_threads`), else measured now.

    Measured once per command: later, its own ``--jobs`` workers importing would count as other processes.
    """
    return _MEASURED.get("free") or free_cores()


def set_threads(threads: int, processes: int = 1) -> int:
    """A command's threads: :func:`choose_command_threads` given to torch (:func:`apply_threads`); returns
    the number used. :data:`CHOICE` records it and the rule, for ``stack.json`` and ``--profile``.
    """
    return apply_threads(choose_command_threads(threads, processes))


def choose_command_threads(threads: int, processes: int = 1) -> int:
    """:func:`choose_threads` for a command (0: by the rules after ``--threads``), recorded in :data:`CHOICE`,
    without importing torch: ``finetune --jobs`` chooses before it starts its workers (they would count as busy
    cores), and applies the number once they are on their way, so that their imports overlap its own."""
    chosen, why = choose_threads(threads, processes, free=_measure() if not threads else None)
    CHOICE.update(threads=chosen, why=why)
    return chosen


def apply_threads(chosen: int) -> int:
    """Give torch ``chosen`` threads; returns (and records in :data:`CHOICE`) the number torch took."""
    import torch
    torch.set_num_threads(chosen)
    CHOICE["threads"] = torch.get_num_threads()
    return CHOICE["threads"]


def _measure() -> Optional[Tuple[int, str]]:
    """The command's one measurement of the free cores, kept for its later choices; None where a rule before it
    (``OMP_NUM_THREADS``) decides, so that no window is slept for nothing."""
    if environment_threads():
        return None
    _MEASURED["free"] = free_cores()
    return _MEASURED["free"]


@contextmanager
def torch_threads(threads: int):
    """Run the ``with`` block with ``threads`` torch threads, then put back the number there was."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
