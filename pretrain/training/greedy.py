"""Greedy layer-wise pretraining (Hinton, Osindero & Teh 2006; Bengio et al. 2007).

Layer k trains on the codes of layers below it, computed ONCE in inference
mode when layer k-1 finishes and kept in RAM (or in memory-mapped files
private to the run under ``cache_dir``), never by re-running the frozen stack
every batch. One loop trains every kind of layer (:mod:`pretrain.training.epoch`).

The run's bookkeeping (checkpoint after every epoch, exact resume) lives in
:mod:`pretrain.training.checkpoint`; this module is the loop. Under torchrun the same
loop runs data-parallel: the rules (shared order, slices, averaged gradients,
gathered codes, rank 0 writes) are in :mod:`pretrain.core.distributed`.
"""
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch

from ..core.batches import map_batches, rows_file, rows_within
from .checkpoint import (CHECKPOINT_REMEDY, Run, layer_seed, random_state, rank_states, restore_random_state,
                         restore_rank_state)
from ..data.specs import Dataset, resolve_data
from ..core.device import CHOICE, deterministic_convolutions, resolve_device
from ..core.distributed import (all_sum, broadcast_object, describe, is_writer, my_share, process_group,
                                seed_rank_stream, sharded, world_size)
from .divergence import Guard, check_input, mean_error
from .epoch import layer_optimizer, run_epoch
from .footprint import check_memory
from .layer_list import check_geometry
from ..core.errors import LayerwiseError, UsageMistake
from ..core.io import check_writable, load_state, made_for_the_block, rebuilding
from ..layers import Layer, LayerSpec, get_layer_class
from ..core.lock import OutputLock, PrivateCache, remove_orphans
from ..likelihood.scoring import likelihood_monitor
from ..data.preprocess import Preprocessing
from ..core.progress import progress_line
from .stack import Stack, load_stack, versions
from ..core.timing import SECONDS, phase, timed
from ..settings import PRETRAIN, PretrainSettings, check_ranges

#: training rows used to report the training reconstruction error (at least the held-out size).
MIN_MONITOR_ROWS = 1000
#: rows per chunk when codes are computed for the layer above.
ENCODE_ROWS = 4096


@timed("codes for the layer above")
def encode(layer: Layer, x: torch.Tensor, path: Optional[Path] = None) -> torch.Tensor:
    """Codes of ``x`` in inference mode, computed once: in RAM, or memory-mapped at ``path``."""
    layer.eval()
    device = next(layer.parameters()).device
    codes = map_batches(sharded(layer), x, rows_within(layer.row_bytes, ENCODE_ROWS), device=device,
                        out=rows_file(path, len(x), layer.output_shape))
    return codes if path is not None else codes.reshape(len(x), *layer.output_shape).to(x.device)  # [0, ...] too


@timed("monitors")
@torch.no_grad()
def reconstruction_error(layer: Layer, x: torch.Tensor) -> float:
    """Mean squared error per input unit of the layer's reconstruction of ``x``, in chunks (as large as
    :func:`pretrain.core.batches.rows_within` lets them be: fewer, larger products).

    Under torchrun each process reconstructs its share of the rows (:func:`my_share`) and the sums
    are added up over the processes: the same figure on every rank, each rank doing a part of the work.
    """
    layer.eval()
    device = next(layer.parameters()).device
    errors = map_batches(lambda chunk: layer.reconstruction_error(chunk).reshape(1) * len(chunk),
                         my_share(x), rows_within(layer.row_bytes, ENCODE_ROWS), device=device)
    return float(all_sum(errors.sum().reshape(1).to(device))) / max(len(x), 1)  # a rank with no rows adds 0


@torch.no_grad()
def epoch_metrics(layer: Layer, train: torch.Tensor, val: torch.Tensor, batch_size: int) -> Dict[str, float]:
    """Reconstruction error (same definition on both slices) plus the layer's own monitors."""
    layer.eval()
    device = next(layer.parameters()).device
    metrics = {"recon_train": reconstruction_error(layer, train)}
    if len(val):  # no held-out slice with --val-fraction 0
        metrics["recon_val"] = reconstruction_error(layer, val)
        metrics.update(layer.monitors(train[:batch_size * 10].to(device), val[:batch_size * 10].to(device)))
    return metrics


def train_layer(layer: Layer, spec: LayerSpec, index: int, run: Run, x_train: torch.Tensor,
                x_val: torch.Tensor, progress: bool) -> None:
    """Train one layer on cached inputs, checkpointing after every epoch."""
    settings = run.settings
    epochs = (spec.epochs or settings["epochs"]) if layer.learns else 0  # a sampled dictionary: its start alone
    lr = spec.lr or settings["lr"] or type(layer).default_lr
    batch_size = settings["batch_size"]
    device = next(layer.parameters()).device
    optimizer = layer_optimizer(layer, lr)
    start_epoch = 0
    with phase("training rows"):  # what the learning rule sees: the inputs, or a patch layer's whitened patches
        x_train, x_val = layer.training_rows(x_train, fit=True), layer.training_rows(x_val)
    monitor_rows = x_train[:max(len(x_val), MIN_MONITOR_ROWS)]
    layer.init_from_data(x_train[:10000].to(device))  # on a resume too: the guard's reference is the untrained layer
    reported = x_val if len(x_val) else monitor_rows  # the slice whose error the epochs report
    reference = max(mean_error(x_train, reported), reconstruction_error(layer, reported))
    guard = Guard(spec, index, lr, reference)
    if run.current is not None and run.current["index"] == index:
        layer.load_state_dict(run.current["layer"])
        optimizer.load_state_dict(run.current["optimizer"])
        restore_random_state(run.current["rng"])
        if "ranks" in run.current:
            restore_rank_state(layer, run.current["ranks"])
        start_epoch = run.current["epoch"]
    for epoch in range(start_epoch, epochs):
        started = time.perf_counter()
        desc = f"layer {index + 1}/{len(run.layers)} {spec.kind}:{spec.units} epoch {epoch + 1}/{epochs}"
        loss = run_epoch(layer, optimizer, x_train, batch_size, desc if progress else None)
        metrics = {"loss": loss, **epoch_metrics(layer, monitor_rows, x_val, batch_size)}
        guard.check(layer, metrics, epoch + 1)
        if settings.get("ais_every") and (epoch + 1) % settings["ais_every"] == 0:
            metrics.update(likelihood_monitor(layer, monitor_rows, x_val))  # a quick AIS: RBM layers only
        record = {"layer": index, "epoch": epoch + 1, **metrics, "seconds": time.perf_counter() - started}
        run.history.append(record)
        shown = "  ".join(f"{k} {v:.4g}" for k, v in record.items() if k not in ("layer", "epoch"))
        progress_line(f"layer {index + 1} {spec} epoch {epoch + 1}/{epochs}  {shown}", progress)
        run.current = {"index": index, "epoch": epoch + 1, "layer": layer.state_dict(),
                       "optimizer": optimizer.state_dict(), "rng": random_state()}
        if world_size() > 1:
            run.current["ranks"] = rank_states(layer)
        with phase("checkpoints"):
            run.save()


def split_validation(n: int, fraction: float, seed: int):
    """Seeded permutation split of ``n`` rows into training rows and a held-out slice (``fraction`` in [0, 1),
    checked by :func:`pretrain_stack`)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = int(round(n * fraction))
    return order[n_val:], order[:n_val]


def layer_specs(layers: Sequence[Union[str, LayerSpec]]) -> List[LayerSpec]:
    """``layers`` (``"rbm:500"`` or :class:`LayerSpec`) as specs; a usage mistake when there are none (the
    command asks this before it reads its data)."""
    specs = [s if isinstance(s, LayerSpec) else LayerSpec.parse(s) for s in layers]
    if not specs:
        raise UsageMistake("no layers given: add at least one, e.g. -l rbm:500 (in Python a list such as "
                           "['rbm:500']); `pretrain --list-layers` lists the kinds")
    return specs


def pretrain_stack(data, layers: Sequence[Union[str, LayerSpec]], out: Union[str, Path, None] = None, *,
                   epochs: int = PRETRAIN.epochs, batch_size: int = PRETRAIN.batch_size, lr: float = PRETRAIN.lr,
                   seed: int = PRETRAIN.seed, device: str = PRETRAIN.device,
                   val_fraction: float = PRETRAIN.val_fraction,
                   cache_dir: Union[str, Path, None] = PRETRAIN.cache_dir, resume: bool = PRETRAIN.resume,
                   overwrite: bool = PRETRAIN.overwrite, data_dir: Optional[str] = PRETRAIN.data_dir,
                   split_seed: int = PRETRAIN.split_seed, progress: bool = True,
                   ais_every: int = PRETRAIN.ais_every) -> Stack:
    """Pretrain a stack greedily, one layer at a time, on the unlabeled images of ``data``.

    ``data`` is a data spec (``digits``, ``idx:DIR``, ... see :func:`pretrain.data.specs.load_data`,
    loaded with ``data_dir`` and ``split_seed``), a :class:`pretrain.data.specs.Dataset`, or an
    array ``[N, ...]`` of inputs. ``layers`` are specs such as ``"rbm:500,k=1"``, bottom
    first. With ``out`` the stack is saved to ``out/stack.pt`` and ``out/stack.json`` and a
    checkpoint is kept after every epoch; ``resume=True`` continues an interrupted run.
    ``lr=0`` uses each kind's default rate. ``progress``: per-epoch lines on stderr, and
    bars when stderr is a terminal. ``ais_every=N``: every N epochs, RBM layers record a quick AIS
    estimate of ``log Z`` and the mean log-likelihood of training and held-out rows
    (:func:`pretrain.likelihood.scoring.likelihood_monitor`). Returns the :class:`Stack`.
    """
    specs = layer_specs(layers)
    if resume and overwrite:
        raise UsageMistake("resume=True continues the run in its folder and overwrite=True replaces it: "
                           "give one of them")
    check_ranges(PretrainSettings, locals())  # every keyword named as its setting, without listing them again
    dataset = resolve_data(data, data_dir, split_seed)
    run = Run([str(s) for s in specs], out, {
        "data": dataset.spec, "split_seed": dataset.split_seed, "seed": seed, "epochs": epochs,
        "batch_size": batch_size, "lr": lr, "val_fraction": val_fraction,
        **({"ais_every": ais_every} if ais_every else {})})  # absent when off: earlier runs still resume
    with process_group(resolve_device(device)) as device, deterministic_convolutions(device):
        progress = progress and is_writer()
        if run.out is None:
            return train_stack(dataset, specs, run, device, cache_dir, progress)
        # a second run on this folder stops here, with one line; only rank 0 holds the lock
        with made_for_the_block(run.out), OutputLock(check_writable(run.out)) if is_writer() else nullcontext():
            if open_run(run, resume, overwrite):
                return finished_stack(run)
            return train_stack(dataset, specs, run, device, cache_dir, progress)


def open_run(run: Run, resume: bool, overwrite: bool) -> bool:
    """Rank 0 clears orphans and refuses or loads the checkpoint; every rank gets its record.

    Returns True when ``resume`` finds the run already finished.
    """
    finished = False
    if is_writer():
        remove_orphans(run.out)
        run.prepare(resume, overwrite)
        finished = resume and (run.out / "stack.pt").exists() and not run.checkpoint_path.exists()
    finished, run.finished, run.current, run.history = broadcast_object(
        (finished, run.finished, run.current, run.history))
    return finished


def finished_stack(run: Run) -> Stack:
    """``--resume`` on a run that already finished: its stack, if it answers the same request."""
    stack = load_stack(run.out)
    if not run.finished_stack_matches(stack.info):
        raise LayerwiseError(f"{run.out} holds a finished run with other data, layers or options: "
                             "pass overwrite=True to replace it, or choose another output folder")
    return stack


def train_stack(dataset: Dataset, specs: Sequence[LayerSpec], run: Run, device: torch.device,
                cache_dir: Union[str, Path, None], progress: bool) -> Stack:
    """Fit the preprocessing, then train each layer on the cached codes of the layers below."""
    seconds_before = dict(SECONDS)
    with phase("data loading"):
        raw = dataset.pretraining_images()
    if len(raw) < 2:
        raise LayerwiseError(f"pretraining needs at least 2 examples (got {len(raw)} sample)")
    check_input(raw)
    first = get_layer_class(specs[0].kind)
    first_range = first.expected_input_range(specs[0].options)
    with phase("preprocessing"):
        preprocessing = Preprocessing.fit(raw, first_range, "image" if first.convolutional else "flat")
    train_rows, val_rows = split_validation(len(raw), run.settings["val_fraction"], run.settings["seed"])
    mapped = isinstance(raw, np.memmap)
    if mapped and cache_dir is None:
        cache_dir = run.out  # memory-mapped data: its inputs and codes go to files in the output folder
    if cache_dir is not None:
        remove_orphans(cache_dir)
    with PrivateCache(cache_dir) if cache_dir is not None else nullcontext() as cache:
        with phase("preprocessing"):  # the scaling of every row, not only the fit above
            x_train, x_val = (preprocessing.rows(raw, rows, cache.path(f"inputs_{name}.npy")
                                                 if cache is not None and mapped else None)
                              for name, rows in (("train", train_rows), ("val", val_rows)))
        if cache is None:
            x_train, x_val = x_train.to(device), x_val.to(device)
        trained = train_layers(specs, run, x_train, x_val, device, first_range, cache, progress)
    seconds = {name: round(total - seconds_before.get(name, 0.0), 3) for name, total in SECONDS.items()
               if total != seconds_before.get(name)}
    info = {**run.settings, "layer_specs": run.layers, "n_train": len(train_rows), "n_val": len(val_rows),
            "history": run.history, "seconds": seconds, "versions": versions(),
            "threads": dict(CHOICE) or {"threads": torch.get_num_threads(), "why": "torch's setting"},
            "distributed": describe(run.settings["batch_size"])}
    stack = Stack([layer.cpu() for layer in trained], preprocessing, info)
    if run.out is not None and is_writer():
        with phase("saving the stack"):
            stack.save(run.out)
            run.close()
    return stack


def train_layers(specs: Sequence[LayerSpec], run: Run, x_train: torch.Tensor, x_val: torch.Tensor,
                 device: torch.device, input_range: str, cache: Optional[PrivateCache], progress: bool) -> List[Layer]:
    """Each layer in turn on the codes of the ones below (memory-mapped through ``cache`` when given), once the
    whole list is known to fit: its maps' geometry, and the memory it will need (:mod:`.footprint`)."""
    check_geometry(specs, x_train.shape[1:])
    check_memory(specs, x_train.shape[1:], input_range, len(x_train) + len(x_val), run.settings["batch_size"],
                 device, codes_in_memory=cache is None)
    trained = []
    for index, spec in enumerate(specs):
        torch.manual_seed(layer_seed(run.settings["seed"], index))
        if not get_layer_class(spec.kind).convolutional:  # feature maps are flattened where a dense layer starts
            x_train, x_val = x_train.flatten(1), x_val.flatten(1)
        layer = spec.build(x_train.shape[1:], input_range).to(device)
        seed_rank_stream(layer_seed(run.settings["seed"], index))
        if index < len(run.finished):
            with rebuilding(run.checkpoint_path, "checkpoint", CHECKPOINT_REMEDY):
                load_state(layer, run.finished[index], f"layer {index + 1} ({spec})")
        else:
            if index:
                check_input(x_train, f"the codes of layer {index}", f"retrain layer {index} with other options")
            train_layer(layer, spec, index, run, x_train, x_val, progress)
            run.finished.append(layer.state_dict())
            run.current = None
            run.save()
        trained.append(layer.eval())
        if index + 1 < len(specs):
            x_train = encode(layer, x_train, cache.path(f"codes{index + 1}_train.npy") if cache else None)
            x_val = encode(layer, x_val, cache.path(f"codes{index + 1}_val.npy") if cache else None)
        input_range = layer.code_range
    return trained
