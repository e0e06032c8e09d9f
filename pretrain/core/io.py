"""Files on disk: atomic writes, and artifacts that say what they are and prove they are whole.

An artifact (``stack``, ``checkpoint``, ``classifier``) is a plain dict of
tensors, numbers, strings, lists and dicts, so ``torch.load(path,
weights_only=True)`` reads it and no file ever runs code. :func:`save_artifact`
adds three keys::

    {"format": "layerwise.<kind>", "version": VERSION, "checksum": sha256 hex of all the rest}

and :func:`load_artifact` checks all three. Every way a file can be broken
(empty, truncated, garbage, pickled code, another kind, a changed byte)
becomes one :class:`LayerwiseError` line naming the file and the caller's
remedy; :func:`rebuilding` does the same for what a well-formed file may
still lack (a key, a tensor of the right shape).

Format versions: 1 (stack and classifier files of layerwise 0.1.0, no
checksum), 2 (with a checksum). Version-1 files still load, unverified, with a
:class:`LegacyArtifactWarning` saying how to re-save them. Checkpoints had no
header before version 2: an old one is refused (start the run again).
"""
import errno
import hashlib
import json
import os
import pickle
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator

import torch
from torch import nn

from .errors import LayerwiseError
from .lock import writer_tag

VERSION = 2
#: what to do about a failed write, by errno; others get the last remedy.
WRITE_REMEDIES = {errno.ENOSPC: "free some disk space", errno.EDQUOT: "free some of your disk quota",
                  errno.ENAMETOOLONG: "choose a shorter path", errno.EROFS: "choose a writable folder",
                  errno.EACCES: "choose a folder you may write to", errno.EPERM: "choose a folder you may write to",
                  errno.EEXIST: "a file is in the way: choose another folder",
                  errno.ENOTDIR: "a file is in the way: choose another folder"}


class LegacyArtifactWarning(UserWarning):
    """An artifact written before checksums: it loads, but corruption in it goes unnoticed."""


def write_error(path: Path, error: OSError) -> LayerwiseError:
    """One line for an ``OSError`` met writing ``path``, naming the remedy."""
    remedy = WRITE_REMEDIES.get(error.errno, "check the folder and the free disk space")
    return LayerwiseError(f"cannot write {path} ({error.strerror or error}): {remedy}")


def check_writable(folder) -> Path:
    """Create ``folder`` if needed and make sure files can be written there; one line otherwise.

    Call it before training, so that an unwritable ``-o`` is not found out after the first epoch.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{writer_tag()}", suffix=".tmp"):
            pass
    except OSError as error:
        raise write_error(folder, error) from None
    return folder


@contextmanager
def made_for_the_block(folder) -> Iterator[None]:
    """Remove the folders the block makes (``folder`` and the parents it lacked) when the block fails and they
    are still empty: a run refused or stopped before it wrote anything leaves the disk as it found it.

    A folder that existed before, or that holds anything (a checkpoint to resume), is left alone.
    """
    missing = [] if folder is None else [path for path in (Path(folder), *Path(folder).parents) if not path.exists()]
    try:
        yield
    except BaseException:
        for path in missing:  # deepest first
            try:
                path.rmdir()
            except OSError:  # not empty, or gone already
                break
        raise


def _atomic_write(path: Path, write) -> None:
    """Write through ``write(file)`` to a temporary file beside ``path``, then rename over it.

    The temporary file is ``.NAME.<pid>-<host>-<random>.tmp``: if the writer is
    killed, :func:`pretrain.core.lock.remove_orphans` knows it for a dead one's.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:64]}.{writer_tag()}", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic on POSIX and Windows
    except BaseException as error:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise write_error(path, error) from None
        raise


def save_torch(obj: Any, path) -> None:
    """``torch.save`` atomically; ``obj`` should be plain dicts of tensors and numbers."""
    _atomic_write(path, lambda f: torch.save(obj, f))


def save_json(obj: Any, path) -> None:
    """Pretty JSON, atomically."""
    save_text(json.dumps(obj, indent=2, default=str) + "\n", path)


def save_text(text: str, path) -> Path:
    """A text file (CSV, Markdown), atomically; returns its path."""
    _atomic_write(path, lambda f: f.write(text.encode()))
    return Path(path)


def checksum(obj: Dict[str, Any]) -> str:
    """sha256 over everything in ``obj`` but its ``checksum`` key: every tensor's dtype, shape and bytes,
    every other value with its type, dict keys in a fixed order."""
    digest = hashlib.sha256()
    _feed(digest, {k: v for k, v in obj.items() if k != "checksum"})
    return digest.hexdigest()


def _feed(digest, value) -> None:
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous()
        digest.update(f"tensor:{tensor.dtype}:{tuple(tensor.shape)}:".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(value, dict):
        digest.update(f"dict:{len(value)}:".encode())
        for key in sorted(value, key=repr):  # repr tells the key 1 from "1"
            _feed(digest, key)
            _feed(digest, value[key])
    elif isinstance(value, (list, tuple)):
        digest.update(f"{type(value).__name__}:{len(value)}:".encode())
        for item in value:
            _feed(digest, item)
    elif value is None or type(value) in (bool, int, float, str):
        text = repr(value)
        digest.update(f"{type(value).__name__}:{len(text)}:{text}".encode())
    else:  # torch.load(weights_only=True) would refuse it: fail now, not when the file is read
        raise TypeError(f"an artifact holds only tensors, numbers, strings, lists and dicts, not {type(value)}")


def save_artifact(obj: Dict[str, Any], path, kind: str) -> Path:
    """Write ``obj`` (a plain dict) atomically to ``path`` as a ``layerwise.<kind>`` artifact with its checksum.

    An ``OSError`` (unwritable folder, full disk, name too long) becomes one :class:`LayerwiseError` line.
    """
    saved = {**obj, "format": f"layerwise.{kind}", "version": VERSION}
    saved["checksum"] = checksum(saved)
    save_torch(saved, path)
    return Path(path)


def load_artifact(path, kind: str, remedy: str) -> Dict[str, Any]:
    """Read a ``layerwise.<kind>`` artifact with ``weights_only=True`` and check its format, version and checksum.

    Any failure is one :class:`LayerwiseError` line: ``PATH <what is wrong>: <remedy>``.
    """
    path = Path(path)
    saved = _read(path, remedy)
    found = saved.get("format") if isinstance(saved, dict) else None
    if found != f"layerwise.{kind}":
        what = f"a {found} file" if isinstance(found, str) and found.startswith("layerwise.") else "another file"
        raise LayerwiseError(f"{path} is {what}, not a layerwise {kind}: {remedy}")
    version = saved.get("version")
    if version == 1 and "checksum" not in saved:
        warnings.warn(f"{path} has no checksum (written by an older layerwise), so damage to it goes unnoticed: "
                      f"save it again to add one", LegacyArtifactWarning, stacklevel=2)
        return saved
    if version != VERSION:
        raise LayerwiseError(f"{path} has format version {version!r}; this layerwise reads version {VERSION}: "
                             f"use the layerwise that wrote it, or {remedy}")
    try:
        intact = saved.get("checksum") == checksum(saved)
    except TypeError:
        intact = False
    if not intact:
        raise LayerwiseError(f"{path} fails its checksum (damaged since it was written): {remedy}")
    return saved


def _read(path: Path, remedy: str) -> Any:
    """``torch.load(weights_only=True)``, its many failures on broken bytes made one line."""
    try:
        file = open(path, "rb")
    except OSError as error:
        raise LayerwiseError(f"{path} cannot be read ({error.strerror}): {remedy}") from None
    with file:
        if os.fstat(file.fileno()).st_size == 0:
            raise LayerwiseError(f"{path} is empty (its write never finished): {remedy}")
        try:
            with warnings.catch_warnings():  # torch warns about pickle protocols before refusing
                warnings.simplefilter("ignore")
                return torch.load(file, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:
            problem = ("holds pickled code or classes (refused by weights_only; nothing was run)"
                       if "Unsupported global" in str(error) else "is not a file torch writes (garbage?)")
        except Exception as error:  # noqa: BLE001 -- torch's readers fail in many ways on broken bytes
            problem = f"is truncated or damaged ({type(error).__name__})"
    raise LayerwiseError(f"{path} {problem}: {remedy}")


@contextmanager
def rebuilding(path, kind: str, remedy: str) -> Iterator[None]:
    """Inside the block, what a checked artifact may still lack (a key, a value of the right type or shape)
    is one :class:`LayerwiseError` line naming ``path`` and ``remedy``, not a traceback."""
    try:
        yield
    except KeyError as error:
        raise LayerwiseError(f"{path} is not a usable {kind} (missing key {error}): {remedy}") from None
    except (IndexError, TypeError, ValueError, AttributeError, RuntimeError) as error:
        detail = " ".join(str(error).split()) or type(error).__name__
        raise LayerwiseError(f"{path} is not a usable {kind} ({detail}): {remedy}") from None


def load_state(module: nn.Module, state: Any, what: str) -> None:
    """``module.load_state_dict(state)``, failing with a one-line ``ValueError`` that names the first key
    missing, extra or of the wrong shape (inside :func:`rebuilding`: a line naming the file)."""
    expected = module.state_dict()
    if not isinstance(state, dict):
        raise ValueError(f"{what}: its state is a {type(state).__name__}, not a dict of tensors")
    if state.keys() != expected.keys():
        missing, extra = sorted(expected.keys() - state.keys()), sorted(state.keys() - expected.keys())
        raise ValueError(f"{what}: its state lacks {missing} and has extra {extra}")
    try:
        module.load_state_dict(state)  # layers may resize buffers (an RBM's persistent chains) as they load
    except RuntimeError as error:
        misfits = [f"{key} is {list(state[key].shape)}, not {list(tensor.shape)}" for key, tensor in expected.items()
                   if isinstance(state[key], torch.Tensor) and state[key].shape != tensor.shape]
        raise ValueError(f"{what}: {misfits[0] if misfits else ' '.join(str(error).split())}") from None


def artifact_file(path, filename: str, missing: str) -> Path:
    """``DIR`` or ``DIR/filename`` -> the file; a one-line error ``missing`` (naming the fix) when absent."""
    path = Path(path)
    file = path / filename if path.is_dir() else path
    if not file.is_file():
        raise LayerwiseError(missing)
    return file
