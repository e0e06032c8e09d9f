"""Who owns what in a shared folder: an exclusive lock on an output folder, run-private file names.

Two runs writing the same ``-o`` would both report success and the last one
would win; two runs sharing a ``--cache-dir`` would map each other's code
files. So a run holds :class:`OutputLock` on its output folder for its whole
life, names its cache files with :func:`private_name` (removed when it ends,
by :class:`PrivateCache`), and removes what dead runs left behind with
:func:`remove_orphans`.

The lock is ``fcntl.flock`` on ``FOLDER/.layerwise.lock``: the kernel releases
it when its holder dies, however it dies (SIGKILL included), so a lock file
left by a dead process is simply taken over. The holder's pid, host and start
time are written into the file for the message a second run gets.

Platforms: Linux and macOS (BSD ``flock``). On network filesystems ``flock``
is as good as the filesystem's lock support (Linux NFSv4 honours it across
hosts; macOS NFS may not). Windows has no ``fcntl``: there the lock is not
taken, and a warning says so.
"""
import errno
import hashlib
import json
import os
import re
import secrets
import socket
import time
import warnings
from pathlib import Path
from typing import List, Optional, Union

from .errors import LayerwiseError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

LOCK_FILE = ".layerwise.lock"
#: ``.<pid>-<host>-<random>`` before a private file's suffix: who wrote it, so that its leftovers can be cleaned.
_TAG = re.compile(r"\.(\d+)-([0-9a-f]{6})-[A-Za-z0-9_]{8}(\.\w+)$")


def host_id() -> str:
    """Six hex digits naming this host in file names (hostnames may hold dots)."""
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this host (another user's counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def writer_tag() -> str:
    """``<pid>-<host>-``: the start of the tag that marks a file as this process's (a random part follows)."""
    return f"{os.getpid()}-{host_id()}-"


def private_name(name: str) -> str:
    """``codes1_train.npy`` -> ``codes1_train.<pid>-<host>-<random>.npy``: a file name no other run uses."""
    stem, dot, suffix = name.rpartition(".")
    stem, suffix = (stem, suffix) if dot else (name, "bin")
    return f"{stem}.{writer_tag()}{secrets.token_hex(4)}.{suffix}"


def private_cache_path(cache_dir: Union[str, Path], name: str) -> Path:
    """``cache_dir/<private_name(name)>``: a cache file of this run only."""
    return Path(cache_dir) / private_name(name)


def remove_orphans(folder: Union[str, Path]) -> List[Path]:
    """Remove the private files (``.tmp`` of atomic writes, run caches) left in ``folder`` by dead processes.

    Only files tagged by a process of this host that no longer runs are
    removed; those of live processes and of other hosts stay. Returns them.
    """
    folder = Path(folder)
    removed = []
    for path in folder.iterdir() if folder.is_dir() else ():
        match = _TAG.search(path.name)
        if match and match[2] == host_id() and not pid_alive(int(match[1])):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


class PrivateCache:
    """Names this run's cache files under a shared ``cache_dir`` and removes them when the run ends.

    ``with PrivateCache(cache_dir) as cache: codes = cache.path("codes1_train.npy")``.
    Files are removed on leaving the block, whether the run succeeded or failed
    (a resumed run recomputes its codes); after SIGKILL, :func:`remove_orphans`.
    """

    def __init__(self, cache_dir: Union[str, Path]):
        self.folder = Path(cache_dir)
        self.files: List[Path] = []

    def path(self, name: str) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.files.append(private_cache_path(self.folder, name))
        return self.files[-1]

    def remove(self) -> None:
        for file in self.files:
            file.unlink(missing_ok=True)
        self.files = []

    def __enter__(self) -> "PrivateCache":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


class OutputLock:
    """``with OutputLock(folder): ...``: this process alone writes in ``folder``.

    A second holder (another process, or another ``OutputLock`` on the same
    folder in this one) fails at once with one :class:`LayerwiseError` line
    naming the holder.
    """

    def __init__(self, folder: Union[str, Path]):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self.fd: Optional[int] = None

    def __enter__(self) -> "OutputLock":
        if fcntl is None:
            warnings.warn(f"{self.folder} is not locked: this platform has no fcntl.flock", stacklevel=2)
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = None
        try:
            while self.fd is None:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as error:
                    holder = read_holder(fd) if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN) else None
                    os.close(fd)
                    fd = None
                    if holder is None:
                        raise LayerwiseError(f"cannot lock {self.folder} ({error.strerror}): "
                                             "use an output folder on a local disk") from None
                    raise LayerwiseError(f"{self.folder} is in use by another run ({holder}): "
                                         "wait for it to finish, or choose another output folder") from None
                if self._still_linked(fd):
                    self.fd = fd
                else:  # the holder we waited behind removed the file on release: lock the new one
                    os.close(fd)
                    fd = None
            identity = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, json.dumps(identity).encode(), 0)
        except BaseException:
            self._abandon(fd)
            raise
        return self

    def _abandon(self, fd: Optional[int]) -> None:
        """Stopped (Ctrl-C, SIGTERM) between opening the lock file and entering the block, where no ``__exit__``
        will run: remove the file as ``__exit__`` would when it is ours, or free, and close it."""
        if fd is None:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held already, or free: ours
            if self._still_linked(fd):
                self.path.unlink(missing_ok=True)
        except OSError:  # another run holds it: its file
            pass
        finally:
            os.close(fd)
            self.fd = None

    def _still_linked(self, fd: int) -> bool:
        try:
            here = os.stat(self.path)
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        return (here.st_dev, here.st_ino) == (mine.st_dev, mine.st_ino)

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            self.path.unlink(missing_ok=True)  # while still locked, so no one locks a file about to vanish
            os.close(self.fd)  # releases the lock
            self.fd = None


def read_holder(fd: int, seconds: float = 2.0) -> str:
    """The identity written in a locked file, in words.

    A holder that has just taken the lock may not have written its name yet
    (the file is empty, or still names a dead earlier holder): wait for it a little.
    """
    deadline = time.monotonic() + seconds
    while True:
        try:
            holder = json.loads(os.pread(fd, 4096, 0))
            pid, host, started = int(holder["pid"]), str(holder["host"]), float(holder["started"])
            if host != socket.gethostname() or pid_alive(pid):
                when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started))
                return f"pid {pid} on {host}, started {when}"
        except (ValueError, KeyError, TypeError):
            pass
        if time.monotonic() > deadline:
            return "a process that has not written its name"
        time.sleep(0.02)
