"""A stop asked from outside (SIGTERM) unwinds the run as Ctrl-C does, instead of ending it where it stands.

Python turns SIGINT (Ctrl-C) into :class:`KeyboardInterrupt`, so every ``with``
block of a run closes on the way out: :class:`~pretrain.core.lock.OutputLock`
removes ``-o/.layerwise.lock``, :func:`~pretrain.core.io.made_for_the_block`
removes a folder the run made and left empty, private cache files go. SIGTERM
(``kill PID``, a batch scheduler's stop, torchrun ending its workers) ends the
process at once by default, which left the lock file behind (harmless, since
the kernel releases the lock itself, but a stray file in a folder that a rerun
with ``--resume`` reads) and an empty ``-o`` made by a run that wrote nothing.

:func:`stop_on_sigterm` makes SIGTERM raise :class:`Stopped` (a
``KeyboardInterrupt``) for the length of a command. SIGKILL cannot be caught:
what it leaves (the lock file, a ``.tmp`` file) is taken over or removed by the
next run (:mod:`pretrain.core.lock`).
"""
import os
import signal
import threading
from contextlib import contextmanager
from typing import Iterator


class Stopped(KeyboardInterrupt):
    """The process was asked to stop by signal ``signum``; it exits with ``128 + signum``, as the shell reports
    a process the signal ended."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def exit_status(interrupt: KeyboardInterrupt) -> int:
    """``128 + signum``: 130 for Ctrl-C (a plain ``KeyboardInterrupt``), 143 for SIGTERM."""
    return 128 + getattr(interrupt, "signum", signal.SIGINT)


@contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """For the block, SIGTERM raises :class:`Stopped` in this process; the handler before it is put back after.

    A handler someone else installed is left alone, and so is a thread other than the main one (only it may
    set handlers). A process forked inside the block (a DataLoader worker) inherits the handler: there it
    ends the process by SIGTERM's default, as before.
    """
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    owner = os.getpid()

    def stop(signum, _frame):
        if os.getpid() != owner:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise Stopped(signum)

    signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
