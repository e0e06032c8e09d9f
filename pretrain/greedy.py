"""Greedy layer-wise pretraining (Hinton, Osindero & Teh 2006; Bengio et al. 2007).

Layer k trains on the codes of layers below it, computed ONCE in inference
mode when layer k-1 finishes and kept in RAM (or in a memory-mapped file under
``cache_dir``), never by re-running the frozen stack every batch. One loop
trains every kind of layer: ``loss = layer.loss(batch); loss.backward(); step``.

After every epoch a checkpoint (finished layers, the current layer, its
optimizer, the random state, the history) is written atomically; a resumed run
continues from it and ends with the same weights as an uninterrupted run.
"""
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from tqdm.auto import tqdm

from .errors import LayerwiseError
from .io import load_torch, save_torch
from .layers import Layer, LayerSpec, get_layer_class
from .preprocess import Preprocessing
from .stack import Stack, load_stack, versions

CHECKPOINT = "checkpoint.pt"
#: training rows used to report the training reconstruction error (at least the held-out size).
MIN_MONITOR_ROWS = 1000
#: an epoch whose reconstruction error exceeds this many times that of reconstructing zeros has diverged.
DIVERGENCE_FACTOR = 10.0


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU; a clear error when CUDA is asked for and missing."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise LayerwiseError("--device cuda: no CUDA device is available here; use --device cpu or auto")
    try:
        return torch.device(device)
    except RuntimeError:
        raise LayerwiseError(f"unknown device {device!r}: use auto, cpu or cuda") from None


def build_optimizer(layer: Layer, lr: float) -> torch.optim.Optimizer:
    """SGD with the layer's momentum (RBMs), or Adam (autoencoders); weight decay on weights only."""
    groups = layer.parameter_groups(layer.hparams.get("weight_decay", 0.0))
    if layer.optimizer == "adam":
        return torch.optim.Adam(groups, lr=lr)
    return torch.optim.SGD(groups, lr=lr, momentum=layer.hparams.get("momentum", 0.0))


@torch.no_grad()
def encode(layer: Layer, x: torch.Tensor, batch_size: int, path: Optional[Path] = None) -> torch.Tensor:
    """Codes of ``x`` in inference mode, computed once: in RAM, or memory-mapped at ``path``."""
    layer.eval()
    device = next(layer.parameters()).device
    if path is not None:
        codes = torch.from_numpy(np.lib.format.open_memmap(
            path, mode="w+", dtype=np.float32, shape=(len(x), layer.n_hidden)))
    else:
        codes = torch.empty(len(x), layer.n_hidden, device=x.device)
    for start in range(0, len(x), batch_size):
        codes[start:start + batch_size] = layer(x[start:start + batch_size].to(device)).to(codes.device)
    return codes


@torch.no_grad()
def evaluate(layer: Layer, train: torch.Tensor, val: torch.Tensor, batch_size: int) -> Dict[str, float]:
    """Reconstruction error (same definition on both slices) plus the layer's own monitors."""
    layer.eval()
    device = next(layer.parameters()).device

    def error(x):
        total = sum(float(layer.reconstruction_error(chunk.to(device))) * len(chunk)
                    for chunk in x.split(batch_size))
        return total / max(len(x), 1)

    metrics = {"recon_train": error(train)}
    if len(val):  # no held-out slice with --val-fraction 0
        metrics["recon_val"] = error(val)
        metrics.update(layer.monitors(train[:batch_size * 10].to(device), val[:batch_size * 10].to(device)))
    return metrics


def check_divergence(metrics: Dict[str, float], baseline: float, spec: LayerSpec, index: int,
                     epoch: int, lr: float) -> None:
    """Stop with a message naming the remedy when training blew up (NaN/inf or exploding error)."""
    error = metrics.get("recon_val", metrics["recon_train"])
    if np.isfinite([metrics["loss"], metrics["recon_train"], error]).all() and error <= DIVERGENCE_FACTOR * baseline:
        return
    raise LayerwiseError(
        f"layer {index + 1} ({spec}) diverged in epoch {epoch} (reconstruction error "
        f"{error:.3g}, mean square input {baseline:.3g}): lower its learning rate, e.g. "
        f"-l {spec.kind}:{spec.units},lr={lr / 10:g}, and standardise real-valued input")


class Run:
    """One pretraining run's settings, its checkpoint file and its history."""

    def __init__(self, specs: List[LayerSpec], out: Optional[Path], settings: Dict[str, Any]):
        self.specs = specs
        self.out = out
        self.settings = settings
        self.history: List[Dict[str, Any]] = []
        self.finished: List[Dict[str, torch.Tensor]] = []
        self.current: Optional[Dict[str, Any]] = None

    @property
    def checkpoint_path(self) -> Optional[Path]:
        return self.out / CHECKPOINT if self.out else None

    def describe(self) -> Dict[str, Any]:
        """What must match for a checkpoint to be resumed."""
        return {**self.settings, "layers": [str(s) for s in self.specs]}

    def restore(self) -> None:
        """Load the checkpoint's finished layers, current layer and history."""
        saved = load_torch(self.checkpoint_path)
        if saved["run"] != self.describe():
            raise LayerwiseError(
                f"{self.checkpoint_path} was written by a run with other settings: resume with the same "
                "data, layers and options, or start again with --overwrite")
        self.finished, self.current, self.history = saved["finished"], saved["current"], saved["history"]

    def save(self) -> None:
        if self.out is not None:
            save_torch({"run": self.describe(), "finished": self.finished, "current": self.current,
                        "history": self.history}, self.checkpoint_path)


def layer_seed(seed: int, index: int) -> int:
    """Each layer starts its own random stream, so resuming never depends on earlier layers' draws."""
    return seed * 1000 + index


def run_epoch(layer: Layer, optimizer: torch.optim.Optimizer, x: torch.Tensor, batch_size: int,
              progress: Optional[str] = None) -> float:
    """One pass over ``x`` in a fresh random order; returns the mean loss.

    Batches are gathered with ``index_select`` over a shuffled permutation
    (faster than a DataLoader over in-memory tensors, and than ``x[rows]``).
    ``progress`` is the bar's title, or None for no bar.
    """
    layer.train()
    device = next(layer.parameters()).device
    order = torch.randperm(len(x)).to(x.device)
    total = torch.zeros((), device=device)
    bar = tqdm(range(0, len(x), batch_size), disable=progress is None, leave=False, unit="batch", desc=progress)
    for step, start in enumerate(bar):
        batch = x.index_select(0, order[start:start + batch_size]).to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        loss = layer.loss(batch)
        loss.backward()
        optimizer.step()
        loss = loss.detach()
        total += loss * len(batch)
        if progress is not None and step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.4g}")
    return float(total) / max(len(x), 1)


def train_layer(layer: Layer, spec: LayerSpec, index: int, run: Run, x_train: torch.Tensor,
                x_val: torch.Tensor, progress: bool) -> None:
    """Train one layer on cached inputs, checkpointing after every epoch."""
    settings = run.settings
    epochs = spec.epochs or settings["epochs"]
    lr = spec.lr or settings["lr"] or type(layer).default_lr
    batch_size = settings["batch_size"]
    device = next(layer.parameters()).device
    optimizer = build_optimizer(layer, lr)
    start_epoch = 0
    if run.current is not None and run.current["index"] == index:
        layer.load_state_dict(run.current["layer"])
        optimizer.load_state_dict(run.current["optimizer"])
        torch.set_rng_state(run.current["rng"])
        start_epoch = run.current["epoch"]
    else:
        layer.init_from_data(x_train[:10000].to(device))
    monitor_rows = x_train[:max(len(x_val), MIN_MONITOR_ROWS)]
    baseline = float(monitor_rows.pow(2).mean())
    for epoch in range(start_epoch, epochs):
        started = time.perf_counter()
        desc = f"layer {index + 1}/{len(run.specs)} {spec.kind}:{spec.units} epoch {epoch + 1}/{epochs}"
        loss = run_epoch(layer, optimizer, x_train, batch_size, desc if progress else None)
        metrics = {"loss": loss, **evaluate(layer, monitor_rows, x_val, batch_size)}
        check_divergence(metrics, baseline, spec, index, epoch + 1, lr)
        record = {"layer": index, "epoch": epoch + 1, **metrics,
                  "seconds": time.perf_counter() - started}
        run.history.append(record)
        if progress:
            shown = "  ".join(f"{k} {v:.4g}" for k, v in record.items() if k not in ("layer", "epoch"))
            tqdm.write(f"layer {index + 1} {spec} epoch {epoch + 1}/{epochs}  {shown}")
        run.current = {"index": index, "epoch": epoch + 1, "layer": layer.state_dict(),
                       "optimizer": optimizer.state_dict(), "rng": torch.get_rng_state()}
        run.save()


def split_validation(n: int, fraction: float, seed: int):
    """Seeded permutation split of ``n`` rows into training rows and a held-out slice."""
    if not 0 <= fraction < 1:
        raise LayerwiseError(f"--val-fraction {fraction}: use a fraction in [0, 1), e.g. 0.05")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = int(round(n * fraction))
    return order[n_val:], order[:n_val]


def prepare_out(out: Optional[Path], resume: bool, overwrite: bool) -> None:
    """Refuse to clobber an earlier run unless asked to."""
    if out is None or resume or overwrite:
        return
    for name in ("stack.pt", CHECKPOINT):
        if (out / name).exists():
            raise LayerwiseError(f"{out} already holds a run ({name}): pass --resume to continue it, "
                                 "--overwrite to start again, or choose another -o")


def pretrain_stack(data, layers: Sequence[Union[str, LayerSpec]], out: Union[str, Path, None] = None, *,
                   epochs: int = 10, batch_size: int = 100, lr: float = 0.0, seed: int = 0,
                   device: str = "auto", val_fraction: float = 0.05, cache_dir: Union[str, Path, None] = None,
                   resume: bool = False, overwrite: bool = False, data_dir: Optional[str] = None,
                   split_seed: int = 0, progress: bool = True) -> Stack:
    """Pretrain a stack greedily, one layer at a time, on the unlabeled images of ``data``.

    ``data`` is a data spec (``digits``, ``idx:DIR``, ... see :func:`pretrain.data.load_data`),
    a :class:`pretrain.data.Dataset`, or an array ``[N, ...]`` of inputs. ``layers`` are
    specs such as ``"rbm:500,k=1"``, bottom first. With ``out`` the stack is saved
    to ``out/stack.pt`` and ``out/stack.json`` and a checkpoint is kept after every
    epoch; ``resume=True`` continues an interrupted run. ``lr=0`` uses each kind's
    default rate. Returns the :class:`Stack`.
    """
    from .data import Dataset, load_data

    specs = [s if isinstance(s, LayerSpec) else LayerSpec.parse(s) for s in layers]
    if not specs:
        raise LayerwiseError("no layers given: add at least one, e.g. -l rbm:500")
    if epochs < 1 or batch_size < 1:
        raise LayerwiseError("--epochs and --batch-size must be at least 1")
    out = Path(out) if out is not None else None
    prepare_out(out, resume, overwrite)
    if resume and out is not None and (out / "stack.pt").exists() and not (out / CHECKPOINT).exists():
        return load_stack(out)  # that run already finished
    dev = resolve_device(device)

    if isinstance(data, (str, Dataset)):
        dataset = data if isinstance(data, Dataset) else load_data(data, data_dir=data_dir, split_seed=split_seed)
        raw, data_name = dataset.pretraining_images(), dataset.spec
    else:
        raw, data_name = np.asarray(data), "array"
    if len(raw) < 2:
        raise LayerwiseError(f"pretraining needs at least 2 examples (got {len(raw)} sample)")
    first_range = get_layer_class(specs[0].kind).input_range
    preprocessing = Preprocessing.fit(raw, first_range)
    x = preprocessing(raw)
    train_rows, val_rows = split_validation(len(x), val_fraction, seed)
    x_train, x_val = x[train_rows], x[val_rows]
    if cache_dir is None:
        x_train, x_val = x_train.to(dev), x_val.to(dev)

    run = Run(specs, out, {"data": data_name, "split_seed": split_seed, "seed": seed, "epochs": epochs,
                           "batch_size": batch_size, "lr": lr, "val_fraction": val_fraction})
    if resume and run.checkpoint_path is not None and run.checkpoint_path.exists():
        run.restore()

    cache = Path(cache_dir) if cache_dir is not None else None
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
    trained, input_range = [], first_range
    for index, spec in enumerate(specs):
        torch.manual_seed(layer_seed(seed, index))
        layer = spec.build(x_train.shape[1], input_range).to(dev)
        if index < len(run.finished):
            layer.load_state_dict(run.finished[index])
        else:
            train_layer(layer, spec, index, run, x_train, x_val, progress)
            run.finished.append(layer.state_dict())
            run.current = None
            run.save()
        trained.append(layer.eval())
        if index + 1 < len(specs):
            x_train = encode(layer, x_train, 4096, cache / f"codes{index + 1}_train.npy" if cache else None)
            x_val = encode(layer, x_val, 4096, cache / f"codes{index + 1}_val.npy" if cache else None)
        input_range = layer.code_range

    info = {**run.settings, "layer_specs": [str(s) for s in specs], "n_train": len(train_rows), "n_val": len(val_rows),
            "history": run.history, "versions": versions()}
    stack = Stack([layer.cpu() for layer in trained], preprocessing, info)
    if out is not None:
        stack.save(out)
        run.checkpoint_path.unlink(missing_ok=True)
    return stack
