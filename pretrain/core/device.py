"""Where torch runs: the device and the number of threads.

``auto`` picks CUDA when present. Threads: torch's default (one per core)
collapses when another process uses the cores too (measured in issue 10: the
quick start ran 8x slower on a shared 2-core machine), so both commands take
``--threads N``; 0 (the default) uses one thread per core the load leaves free.
The number of threads can change the last bits of a sum: pass ``--threads N``
for runs that must be bit-identical across machines. torch is imported inside
the functions so that ``--help`` never waits for it.
"""
from .errors import LayerwiseError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str = "auto"):
    """``auto`` -> CUDA when present, else CPU (a ``torch.device``); one line when CUDA is asked for and missing."""
    import torch
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise LayerwiseError(f"device={device!r}: no CUDA device is available here; use 'cpu' or 'auto'")
    try:
        return torch.device(device)
    except RuntimeError:
        raise LayerwiseError(f"unknown device {device!r}: use auto, cpu or cuda") from None


def auto_threads() -> int:
    """One thread per core that the 1-minute load average leaves free, at least one.

    Measured (issue 10, 2 cores, one thread of another process busy): a 784->500 RBM epoch
    slice took 0.44 s with 1 thread alone, 0.76 s with 1 thread beside the competitor, and
    6.4-25 s with 2 threads beside it: threads that outnumber the free cores wait on each
    other at every operation. Small models (digits, batch 10) gain nothing from a second thread.
    """
    import os

    import torch
    free = (os.cpu_count() or 1) - round(os.getloadavg()[0])
    return max(1, min(torch.get_num_threads(), free))


def set_threads(threads: int) -> int:
    """Use ``threads`` CPU threads for torch's operators (0: :func:`auto_threads`); returns the number used."""
    if threads < 0:
        raise LayerwiseError(f"threads={threads}: use 0 (one per free core) or a positive count")
    import torch
    torch.set_num_threads(threads or auto_threads())
    return torch.get_num_threads()
