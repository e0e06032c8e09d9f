"""Where a run's time goes: wall-clock seconds summed per named phase.

The pretraining path times its phases (preprocessing, training epochs,
monitors, checkpoints, codes for the layer above); :func:`pretrain.training.greedy.pretrain_stack`
keeps its run's figures in the stack's record (``stack.json``, ``info["seconds"]``)
and ``pretrain --profile`` prints them with the command's own phases
(imports, data loading, saving, plots). Phases do not nest: each second is
counted once.
"""
import functools
import time
from contextlib import contextmanager
from typing import Dict

#: seconds per phase since the process started (or since :func:`reset`).
SECONDS: Dict[str, float] = {}


def reset() -> None:
    SECONDS.clear()


@contextmanager
def phase(name: str):
    """Add the wall-clock time of the ``with`` block to ``SECONDS[name]``."""
    started = time.perf_counter()
    try:
        yield
    finally:
        SECONDS[name] = SECONDS.get(name, 0.0) + time.perf_counter() - started


def timed(name: str):
    """Decorator: every call of the function counts towards phase ``name``."""
    def decorate(function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            with phase(name):
                return function(*args, **kwargs)
        return wrapper
    return decorate


def table(total: float) -> str:
    """The phases, largest first, with their share of ``total`` and what no phase covers."""
    rows = sorted(SECONDS.items(), key=lambda item: -item[1])
    rows.append(("other", total - sum(SECONDS.values())))
    return "\n".join(f"  {name:40s} {seconds:7.2f} s {seconds / total:6.1%}" for name, seconds in rows)
