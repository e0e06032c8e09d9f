"""The memory a layer list will need, estimated before the first layer trains, and a refusal when it cannot fit.

``cae:100000`` on digits makes maps of 100,000 x 8 x 8 floats, 2.6 GB for a batch of 100 images: without an
estimate a run allocates what the machine may not have and fails, or swaps, a layer later. Here the whole list
is costed from the shapes alone, before anything trains, and a list that does not fit is a usage mistake naming
the fix (fewer units, a smaller batch, the codes on disk).

The estimate is a floor, kept simple. Each layer is built on the CPU (the meta device would make no storage,
but its first random draw imports ``torch._dynamo``, which costs seconds): as asked when its weights are at most
:data:`BUILT_VALUES` values per input, else with ``U`` and ``U / 2`` units and its sizes extrapolated to its
units (each is affine in the units, or the larger of a constant and a multiple of them: exact once ``U / 2``
units outweigh the constant). A layer is counted as

* its **state**: parameters times :data:`STATE_COPIES` of its kind's optimizer (the weights, their gradient,
  SGD's velocity or Adam's two moments), plus its buffers once;
* its **activations**: :data:`ACTIVATION_COPIES` tensors as wide as its widest (``row_bytes``) for each row of
  a training batch, or of an inference chunk (:func:`pretrain.core.batches.rows_within`), whichever has more
  rows. A layer whose learning rule sees other rows than its inputs (a patch layer learns from patches,
  overriding :meth:`Layer.training_rows`) counts its inference chunk only: its batches are narrow;
* its **codes**: the codes it reads from the layer below and those it passes up, one row per example, when they
  are kept in memory (not under ``cache_dir``).

The largest layer's total is compared with what its device has free as the check runs, the inputs already in
memory: ``MemAvailable`` of ``/proc/meminfo`` for the CPU (no check where there is none, as on macOS),
``torch.cuda.mem_get_info`` for a GPU. Under torchrun each process counts its share of the batch and rank 0's
verdict holds for all. Not counted: a patch layer's sampled patches (400,000 x 108 values are 173 MB), plots.
"""
import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch

from ..core.batches import rows_within
from ..core.distributed import broadcast_object, is_writer, world_size
from ..core.errors import UsageMistake
from ..layers import Layer, LayerSpec

#: the most weights a layer is built with to be measured (16 MB of float32); more units are extrapolated
BUILT_VALUES = 4_000_000
#: copies of the parameters a step holds, by optimizer: weights and gradient, and SGD's velocity or Adam's moments.
STATE_COPIES = {"sgd": 3, "adam": 4}
#: batch-sized tensors as wide as a layer's widest that a step holds at once: fewer than the peak memory growth
#: beyond the state that one epoch on digits showed for every kind, so the estimate stays a floor (measured:
#: ``examples/benchmarks/design_notes.md``).
ACTIVATION_COPIES = 4


@dataclass
class LayerNeed:
    """What one layer will hold at its peak, in bytes; ``rows``: the batch or chunk its activations count."""

    index: int
    spec: LayerSpec
    state: int
    row_bytes: int
    rows: int
    codes: int
    trains_on_inputs: bool

    @property
    def activations(self) -> int:
        return ACTIVATION_COPIES * self.row_bytes * self.rows

    @property
    def total(self) -> int:
        return self.state + self.activations + self.codes


def trains_on_inputs(layer: Layer) -> bool:
    """Whether the layer's learning rule sees its inputs (so a training batch is as wide as ``row_bytes``)."""
    return type(layer).training_rows is Layer.training_rows


def layer_needs(specs: Sequence[LayerSpec], input_shape: Tuple[int, ...], input_range: str, n_rows: int,
                batch_size: int, codes_in_memory: bool) -> List[LayerNeed]:
    """Each layer's :class:`LayerNeed` for ``n_rows`` examples shaped ``input_shape`` (see the module docstring)."""
    needs, shape = [], tuple(input_shape)
    batch_rows = math.ceil(min(batch_size, n_rows) / world_size())
    for index, spec in enumerate(specs):
        built = min(spec.units, max(2, BUILT_VALUES // math.prod(shape)))
        fewer = max(1, built // 2)
        one, two = (LayerSpec(spec.kind, units, dict(spec.options)).build(shape, input_range)
                    for units in (fewer, built))
        step = (spec.units - built) / max(built - fewer, 1)

        def at_units(size) -> int:
            """``size`` of the layer as asked, extrapolated from the two built."""
            return int(size(two) + (size(two) - size(one)) * step)

        parameters = at_units(lambda layer: sum(p.numel() * p.element_size() for p in layer.parameters()))
        buffers = at_units(lambda layer: sum(b.numel() * b.element_size() for b in layer.buffers()))
        state = STATE_COPIES[one.optimizer] * parameters + buffers
        element = next(one.parameters()).element_size()
        output_shape = (spec.units,) + tuple(one.output_shape[1:])  # the units are the codes' first axis
        row_bytes = at_units(lambda layer: layer.row_bytes)
        read = math.prod(shape) if index else 0  # the inputs of the first layer are in memory already
        passed = math.prod(output_shape) if index + 1 < len(specs) else 0
        learns_here = trains_on_inputs(one)
        rows = max(batch_rows if learns_here else 0, rows_within(row_bytes))
        needs.append(LayerNeed(index, spec, state, row_bytes, rows,
                               n_rows * element * (read + passed) if codes_in_memory else 0, learns_here))
        shape, input_range = output_shape, one.code_range
    return needs


def free_bytes(device: torch.device) -> Optional[int]:
    """Memory ``device`` has free now, in bytes; None where it cannot be read."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_memory(specs: Sequence[LayerSpec], input_shape: Tuple[int, ...], input_range: str, n_rows: int,
                 batch_size: int, device: torch.device, codes_in_memory: bool) -> None:
    """Raise a :class:`UsageMistake` naming the fix when a layer's :class:`LayerNeed` exceeds what ``device``
    has free; every process of a torchrun group raises the same (rank 0's verdict)."""
    verdict = None
    if is_writer():
        free = free_bytes(device)
        needs = layer_needs(specs, input_shape, input_range, n_rows, batch_size, codes_in_memory)
        worst = max(needs, key=lambda need: need.total)
        if free is not None and worst.total > free:
            verdict = refusal(worst, free, batch_size, "this machine" if device.type == "cpu" else str(device))
    verdict = broadcast_object(verdict)
    if verdict:
        raise UsageMistake(verdict)


def refusal(need: LayerNeed, free: int, batch_size: int, where: str) -> str:
    """One line: what the layer needs, what ``where`` has, and the one change that makes it fit."""
    spared = free - need.state - need.codes
    fitting_rows = spared // (ACTIVATION_COPIES * need.row_bytes) if spared > 0 else 0
    if need.codes and need.state + need.activations <= free:
        remedy = "keep the codes on disk with cache_dir=DIR"
    elif need.trains_on_inputs and fitting_rows >= 1 and need.rows > fitting_rows:
        remedy = f"use batch_size={fitting_rows} or less (it is batch_size={batch_size}), or fewer units"
    else:
        remedy = "give it fewer units"
    return (f"layer {need.index + 1} ({need.spec}) needs about {in_words(need.total)} of memory "
            f"({in_words(need.state)} of weights and optimizer state, {in_words(need.activations)} for "
            f"{need.rows} rows at a time, {in_words(need.codes)} of codes) and {where} has {in_words(free)} free: "
            f"{remedy}")


def in_words(size: int) -> str:
    """``2,560,000,000`` -> ``2.6 GB`` (decimal units)."""
    for unit in ("bytes", "kB", "MB", "GB", "TB", "PB"):
        if size < 1000 or unit == "PB":
            return f"{size} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
