"""Where torch runs: the device and the number of threads.

``auto`` picks CUDA when present. Threads: torch's default (one per core)
collapses when another process uses the cores too (measured in issue 10: the
quick start ran 8x slower on a shared 2-core machine), so both commands take
``--threads N``; 0 keeps torch's default. torch is imported inside the
functions so that ``--help`` never waits for it.
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


def set_threads(threads: int) -> None:
    """Use ``threads`` CPU threads for torch's operators (0: leave torch's default)."""
    if threads < 0:
        raise LayerwiseError(f"threads={threads}: use 0 (torch's default) or a positive count")
    if threads:
        import torch
        torch.set_num_threads(threads)
