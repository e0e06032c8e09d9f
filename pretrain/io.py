"""Atomic file writes: a crash mid-write never leaves a broken artifact or checkpoint."""
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from .errors import LayerwiseError


def _atomic_write(path: Path, write) -> None:
    """Write through ``write(file)`` to a temporary file beside ``path``, then rename over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic on POSIX and Windows
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
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


def load_torch(path) -> Any:
    """``torch.load(..., weights_only=True)``: artifacts never need pickled classes."""
    return torch.load(path, map_location="cpu", weights_only=True)


def artifact_file(path, filename: str, missing: str) -> Path:
    """``DIR`` or ``DIR/filename`` -> the file; a one-line error ``missing`` (naming the fix) when absent."""
    path = Path(path)
    file = path / filename if path.is_dir() else path
    if not file.is_file():
        raise LayerwiseError(missing)
    return file
