"""Chunked inference: the one helper that maps a function over rows in batches.

Everything that applies a model or a preprocessing to a whole split (codes
for the next layer, features for fine-tuning, predictions) goes through
:func:`map_batches`, so memory stays bounded by one chunk and the results
never depend on the chunk size.
"""
from typing import Callable, Optional

import torch

#: rows per chunk when nothing else is asked for.
CHUNK_ROWS = 4096


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
