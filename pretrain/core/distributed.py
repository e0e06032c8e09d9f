"""Data-parallel runs on torch.distributed, launched by ``torchrun``; a plain start is one process.

``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; :func:`process_group`
then joins the group (gloo on CPU, NCCL on CUDA with each rank on its
``LOCAL_RANK`` GPU) with a timeout, so a dead rank ends the others' collectives
with an error instead of a hang. Without those variables every function here is
the single-process identity, and nothing is communicated.

The rules of a data-parallel pretraining step (:mod:`pretrain.training.greedy`):

* every rank draws nothing for the order: rank 0 shuffles and broadcasts it
  (:func:`broadcast`), so all ranks walk the same global batches;
* each rank trains on its slice of every global batch (:func:`my_share`:
  ``tensor_split`` into ``world_size`` near-equal parts);
* :func:`average_gradients` then all-reduces, in ONE call, every ``.grad``
  (closed-form RBM gradients and autograd gradients alike) weighted by the
  slice's rows: the result is the gradient of the global batch's mean loss for
  per-sample losses, so every rank steps to the same weights. Batch statistics
  inside a loss (the sparsity penalty's mean activation) stay per slice: with a
  sparsity target the step is that of the per-rank batch, not of the global one;
* codes for the layer above are computed in shards and all-gathered
  (:func:`sharded`), so each rank holds all of them;
* only rank 0 writes (:func:`is_writer`); each rank's sampling stream is seeded
  from ``--seed`` and its rank (:func:`seed_rank_stream`; rank 0 keeps the plain stream).
"""
import os
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Callable, Iterator, List

import numpy as np
import torch
import torch.distributed as dist

from .device import launched  # torch-free, for the modules that must not import torch yet
from .errors import LayerwiseError

#: seconds a collective waits for a missing rank before the run ends with an error.
TIMEOUT_S = float(os.environ.get("LAYERWISE_DIST_TIMEOUT", 300))


def backend_for(device: torch.device) -> str:
    """The collective backend for ``device``: NCCL for CUDA, gloo for CPU."""
    return "nccl" if device.type == "cuda" else "gloo"


@contextmanager
def process_group(device: torch.device) -> Iterator[torch.device]:
    """Join torchrun's process group for the block and yield this rank's device.

    Without a launcher, or when the caller already joined a group, the device
    passes through and nothing is set up or torn down here.
    """
    if not launched() or dist.is_initialized():
        yield device
        return
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    dist.init_process_group(backend_for(device), timeout=timedelta(seconds=TIMEOUT_S))
    try:
        yield device
    except RuntimeError as error:  # gloo and NCCL report a dead or late peer as RuntimeError
        raise LayerwiseError(f"process {rank()} of {world_size()} stops: {one_line(error)} (resume with "
                             "--resume once every process can run)") from error
    finally:
        dist.destroy_process_group()


def one_line(error: Exception) -> str:
    """The first line of ``error``'s message, without gloo's source-file prefix."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text.split("] ", 1)[1] if text.startswith("[") and "] " in text else text


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def is_writer() -> bool:
    """Rank 0 alone writes checkpoints, artifacts, plots and progress."""
    return rank() == 0


def describe(batch_size: int) -> dict:
    """How the run ran, for its record: world size, backend, global and per-rank batch."""
    size = world_size()
    return {"world_size": size, "backend": dist.get_backend() if dist.is_initialized() else None,
            "global_batch": batch_size, "per_rank_batch": -(-batch_size // size)}


def seed_rank_stream(seed: int) -> None:
    """On ranks > 0, reseed torch's sampling stream from ``(seed, rank)``; rank 0 keeps its stream.

    Called after the layer is built from ``seed`` (identical on every rank),
    so rank 0 (and a plain start) draws exactly what a single process draws.
    """
    if rank():
        torch.manual_seed(int(np.random.SeedSequence([seed, rank()]).generate_state(1, np.uint64)[0] >> 1))


def my_share(rows: torch.Tensor) -> torch.Tensor:
    """This rank's slice of a global batch: part ``rank`` of ``world_size`` near-equal parts."""
    return rows.tensor_split(world_size())[rank()] if world_size() > 1 else rows


def broadcast(tensor: torch.Tensor) -> torch.Tensor:
    """Rank 0's ``tensor`` on every rank (in place)."""
    if world_size() > 1:
        dist.broadcast(tensor, src=0)
    return tensor


def all_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of ``tensor`` over ranks, on every rank (in place)."""
    if world_size() > 1:
        dist.all_reduce(tensor)
    return tensor


def average_gradients(module: torch.nn.Module, rows: int) -> None:
    """Replace each rank's ``.grad`` by the row-weighted mean over ranks, in one all-reduce.

    ``rows`` is this rank's batch size. A rank with no rows (a last global batch
    smaller than the world) contributes zeros. For per-sample losses the result
    is the gradient of the global batch's mean loss.
    """
    if world_size() == 1:
        return
    params = [p for p in module.parameters() if p.requires_grad]
    flat = params[0].new_empty(sum(p.numel() for p in params) + 1)
    parts = flat[:-1].split([p.numel() for p in params])
    for p, part in zip(params, parts):  # each weighted gradient written once, into its place in the message
        if p.grad is None:
            part.zero_()
        else:
            torch.mul(p.grad.reshape(-1), rows, out=part)
    flat[-1] = rows
    dist.all_reduce(flat)
    flat[:-1].div_(flat[-1:].clamp(min=1))
    for p, part in zip(params, parts):  # the averages become the gradients: nothing is copied back
        p.grad = part.view_as(p)


def sharded(function: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """``function`` over a chunk of rows, each rank computing its share and all ranks gathering the whole."""
    if world_size() == 1:
        return function

    def gathered(chunk: torch.Tensor) -> torch.Tensor:
        parts = chunk.tensor_split(world_size())
        mine = function(parts[rank()])
        padded = mine.new_zeros((len(parts[0]), *mine.shape[1:]))  # all_gather wants equal shapes
        padded[:len(mine)] = mine
        gathered_parts = [torch.empty_like(padded) for _ in parts]
        dist.all_gather(gathered_parts, padded)
        return torch.cat([got[:len(part)] for got, part in zip(gathered_parts, parts)])
    return gathered


def gather_objects(value: Any) -> List[Any]:
    """Every rank's ``value`` (picklable), in rank order; ``[value]`` in one process."""
    if world_size() == 1:
        return [value]
    values: List[Any] = [None] * world_size()
    dist.all_gather_object(values, value)
    return values


def broadcast_object(value: Any) -> Any:
    """Rank 0's ``value`` (picklable) on every rank."""
    if world_size() == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
