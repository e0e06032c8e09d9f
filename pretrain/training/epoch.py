"""One layer's optimizer and one pass over its inputs: the loop every kind of layer trains by.

``loss = layer.accumulate_gradients(batch); optimizer.step()`` per minibatch
(autograd of ``layer.loss`` by default, a closed-form gradient for RBMs), as
:func:`pretrain.training.greedy.train_layer` runs it for each epoch of a stack and
:mod:`pretrain.sklearn` for each iteration of an estimator.
"""
from typing import Optional, Union

import torch

from ..core.batches import device_batches, shared_batches
from ..core.distributed import all_sum, average_gradients, broadcast, world_size
from ..core.progress import progress_bar
from ..core.timing import timed
from ..layers import Layer
from .adam import Adam
from .sgd import SGD

#: minibatches per loss asked of a layer: an RBM's loss is an estimate made beside its closed-form update
#: (small beside a CD-1 step, but not free), so it is taken from every fifth; autograd layers
#: have theirs at every step, and all they return counts.
LOSS_EVERY = 5

#: what steps a layer: our SGD (RBMs) or our Adam (autoencoders).
Optimizer = Union[SGD, Adam]


@timed("optimizer setup")
def layer_optimizer(layer: Layer, lr: float) -> Optimizer:
    """SGD with the layer's momentum (RBMs), or Adam (autoencoders); weight decay on weights only.

    Both are our own (:mod:`pretrain.training.sgd`, :mod:`pretrain.training.adam`): torch's updates,
    without SGD's per-step overhead, and without the import of ``torch._dynamo`` that the first
    ``torch.optim`` optimizer of a process pays, which costs seconds.
    """
    groups = layer.parameter_groups(layer.hparams.get("weight_decay", 0.0))
    if layer.optimizer == "adam":
        return Adam(groups, lr=lr)
    return SGD(groups, lr=lr, momentum=layer.hparams.get("momentum", 0.0))


@timed("training epochs")
@torch.no_grad()  # once per epoch, not per step (:mod:`pretrain.core.nograd`); autograd layers turn it back on
def run_epoch(layer: Layer, optimizer: Optimizer, x: torch.Tensor, batch_size: int,
              progress: Optional[str] = None, with_loss: bool = True) -> Optional[float]:
    """One pass over ``x`` in a fresh random order (rank 0's, under torchrun); returns the mean loss
    (None with ``with_loss=False``, for callers that report none: the layer may skip computing it).

    Per minibatch: ``layer.accumulate_gradients(batch)`` fills ``.grad`` (see
    :meth:`pretrain.layers.Layer.accumulate_gradients`), then ``optimizer.step()``.
    In one process our SGD first folds the layer's foldable parameters
    (:meth:`pretrain.training.sgd.SGD.fold`: their gradient goes straight into
    the weights or the velocity); under torchrun every gradient is formed, to
    be averaged over the processes.
    The loss is the row-weighted mean of the losses the layer returns, asked
    at every :data:`LOSS_EVERY`-th minibatch; they are summed on the device:
    nothing waits for them inside the loop except the progress bar's figure.
    ``progress`` is the bar's title, or None for no bar (a bar shows only on a terminal).
    """
    layer.train()
    device = next(layer.parameters()).device
    n_rows = x.shape[0]
    order = broadcast(torch.randperm(n_rows)).to(x.device)  # rank 0's order: every rank walks the same batches
    batches = (device_batches(x, order, batch_size, device) if world_size() == 1
               else shared_batches(x, order, batch_size, device))
    total, counted = torch.zeros((), device=device), 0
    foldable = layer.foldable_parameters() if isinstance(optimizer, SGD) and world_size() == 1 else []
    bar = progress_bar(batches, progress is not None, total=-(-n_rows // batch_size), leave=False, unit="batch",
                       desc=progress)
    parameters = list(layer.parameters())
    for step, batch in enumerate(bar):
        for parameter in parameters:  # as layer.zero_grad(set_to_none=True), at less cost per step
            parameter.grad = None
        # A rank's slice of a last batch smaller than the world is empty: it adds zero gradients.
        into = optimizer.fold(foldable) if foldable else {}
        wanted = with_loss and step % LOSS_EVERY == 0
        loss = layer.accumulate_gradients(batch, into, wanted) if batch.shape[0] else batch.new_zeros(())
        average_gradients(layer, batch.shape[0])
        optimizer.step()
        if loss is None or not with_loss:
            continue
        total.add_(loss, alpha=batch.shape[0])
        counted += batch.shape[0]
        if not bar.disable and step % 50 == 0:  # .item() waits for the device: only for a visible bar
            bar.set_postfix(loss=f"{loss.item():.4g}")
    if not with_loss:
        return None
    sums = all_sum(torch.stack([total, total.new_tensor(float(counted))]))
    return float(sums[0]) / max(float(sums[1]), 1.0)
