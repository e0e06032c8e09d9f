"""Progress bars and per-epoch lines, as users of tqdm expect them.

Bars show only when stderr is a terminal (tqdm's ``disable=None``), and
``TQDM_DISABLE=1`` silences them on a terminal too. tqdm reads its
``TQDM_*`` environment defaults only for arguments not passed explicitly, so
the variable is honoured here, where ``disable`` is passed. Per-epoch lines
go to stderr in both commands (through ``tqdm.write``, so a bar in progress is
not torn), and are kept whether or not a bar shows: a log file gets the lines
and no bar frames.
"""
import os
import sys
from typing import Iterable, Optional

from tqdm.auto import tqdm

_FALSE = ("", "0", "false", "no", "off")


def bars_disabled(enabled: bool = True) -> Optional[bool]:
    """tqdm's ``disable``: True when asked to be quiet or ``TQDM_DISABLE`` is set, else None (terminal only)."""
    if not enabled or os.environ.get("TQDM_DISABLE", "").strip().lower() not in _FALSE:
        return True
    return None


def progress_bar(iterable: Iterable, enabled: bool = True, **kwargs) -> tqdm:
    """``tqdm(iterable)`` on stderr that shows only on a terminal, and never when ``enabled`` is False."""
    return tqdm(iterable, disable=bars_disabled(enabled), file=sys.stderr, dynamic_ncols=True, **kwargs)


def progress_line(text: str, enabled: bool = True) -> None:
    """One line of progress on stderr (``-q`` turns it off), without tearing a bar in progress."""
    if enabled:
        tqdm.write(text, file=sys.stderr)
