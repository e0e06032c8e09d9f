"""Rows in batches: chunked inference, and the minibatches of an epoch.

Everything that applies a model or a preprocessing to a whole split (codes
for the next layer, features for fine-tuning, predictions) goes through
:func:`map_batches`, so memory stays bounded by one chunk and the results
never depend on the chunk size. An epoch's minibatches come from
:func:`device_batches` (one process) or :func:`shared_batches` (this
process's slice of each global batch under torchrun).
"""
from pathlib import Path
from typing import Callable, Optional, Tuple, Union

import numpy as np
import torch

from .distributed import my_share

#: rows per chunk when nothing else is asked for.
CHUNK_ROWS = 4096
#: the most bytes one chunk's widest intermediate may take (see :func:`rows_within`).
CHUNK_BYTES = 16 * 2 ** 20


def rows_within(bytes_per_row: int, most: int = CHUNK_ROWS) -> int:
    """Rows per chunk so that a chunk's widest tensor stays within :data:`CHUNK_BYTES` (at most ``most``).

    A convolutional layer's hidden maps are wide (``cae:32`` on 28 x 28 images: 100 KB an image): 4,096
    images made 400 MB maps per chunk, which the C allocator maps afresh and the kernel faults in page by
    page (:mod:`pretrain.core.memory`), and which no cache holds: in small chunks the same reconstruction
    errors and codes came faster, with far fewer page faults (measured: ``examples/benchmarks/design_notes.md``).
    Dense layers' rows are narrow and keep ``most``.
    """
    return max(1, min(most, CHUNK_BYTES // max(1, bytes_per_row)))


def rows_file(path: Optional[Path], n_rows: int, shape: Union[int, Tuple[int, ...]]) -> Optional[torch.Tensor]:
    """A float32 ``[n_rows, *shape]`` tensor over a new ``.npy`` memory map at ``path`` (None without a path):
    the ``out`` of :func:`map_batches` for results kept on disk rather than in RAM (feature maps keep their
    ``[C, H, W]``)."""
    if path is None:
        return None
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return torch.from_numpy(np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n_rows, *shape)))


@torch.no_grad()
def map_batches(function: Callable, x, batch_size: int = CHUNK_ROWS, *, device: Optional[torch.device] = None,
                out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``function(x[i:i + batch_size])`` for every chunk of rows, without autograd, concatenated.

    ``x`` is a tensor or an array (raw data is sliced as it is, so a memory map
    is read one chunk at a time). With ``device`` each chunk is moved there
    first. With ``out`` (a tensor, e.g. over a memory-mapped file) the
    results are written into it chunk by chunk and ``out`` is returned.
    """
    chunks = []
    for start in range(0, len(x), batch_size):
        chunk = x[start:start + batch_size]
        if device is not None:
            chunk = chunk.to(device, non_blocking=True)
        result = function(chunk)
        if out is None:
            chunks.append(result)
        else:
            out[start:start + len(result)] = result.to(out.device)
    if out is not None:
        return out
    return torch.cat(chunks) if chunks else torch.empty(0)


def device_batches(x: torch.Tensor, order: torch.Tensor, batch_size: int, device: torch.device):
    """Yield the minibatches ``x[order[i:i + batch_size]]`` on ``device``.

    Rows already on the device are gathered there (``index_select``: faster
    than a DataLoader over in-memory tensors, and than ``x[rows]``). Rows in
    host memory bound for a GPU (a memory-mapped cache) are gathered into one
    of two small pinned staging buffers and copied asynchronously; a buffer is
    refilled only after its previous copy has finished (a CUDA event), so the
    host runs at most two batches ahead, and the memory map itself is never
    pinned (pinning copies it into RAM).
    """
    starts = range(0, order.shape[0], batch_size)
    if device.type != "cuda" or x.device == device:
        for start in starts:
            yield x.index_select(0, order[start:start + batch_size]).to(device)
        return
    staging = [torch.empty((batch_size, *x.shape[1:]), dtype=x.dtype, pin_memory=True) for _ in range(2)]
    copied = [None, None]
    for step, start in enumerate(starts):
        slot = step % 2
        if copied[slot] is not None:
            copied[slot].synchronize()
        rows = order[start:start + batch_size]
        buffer = torch.index_select(x, 0, rows, out=staging[slot][:rows.shape[0]])
        batch = buffer.to(device, non_blocking=True)
        copied[slot] = torch.cuda.Event()
        copied[slot].record()
        yield batch


def shared_batches(x: torch.Tensor, order: torch.Tensor, batch_size: int, device: torch.device):
    """Under torchrun: this rank's slice of every global batch ``x[order[i:i + batch_size]]``, on ``device``."""
    for start in range(0, order.shape[0], batch_size):
        yield x.index_select(0, my_share(order[start:start + batch_size])).to(device, non_blocking=True)
