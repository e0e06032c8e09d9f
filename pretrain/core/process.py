"""What a command sets for its own process as it starts: never on import, so a program that imports
layerwise (``pretrain.cli``, ``finetune.cli`` or the library) keeps its allocator, its garbage collector
and its threads' measurements as they were.

:func:`prepare_process` is called by the commands' entry point (:class:`pretrain.commandline.Command`'s
``main``: the console scripts, ``python -m pretrain`` / ``python -m finetune``, click's ``CliRunner``) and by
``finetune --jobs``'s worker processes as they start.
"""
import atexit
import gc

from .device import watch_cores
from .memory import keep_freed_memory

#: whether this process registered its exit's ``gc.freeze`` already (a program may run several commands)
_FREEZE_AT_EXIT = {}


def prepare_process() -> None:
    """Prepare a command's process, before its parsing and torch's import:

    * the thread policy's window opens (:func:`pretrain.core.device.watch_cores`): it measures the other
      processes over the command's imports and parsing instead of a sleep;
    * freed memory stays in the process for the next step (:func:`pretrain.core.memory.keep_freed_memory`);
    * at exit the objects are frozen first (``gc.freeze``): the interpreter's last collection walks every
      object torch's import made, a noticeable part of every command's time (measured:
      ``examples/benchmarks/design_notes.md``); frozen, they are skipped and freed with the process.
      Registered before the command's imports register theirs, it runs after them (exit handlers run
      last-registered first), and once however many commands the process runs.
    """
    watch_cores()
    keep_freed_memory()
    if not _FREEZE_AT_EXIT:
        atexit.register(gc.freeze)
        _FREEZE_AT_EXIT["registered"] = True
