"""Stopping fine-tuning that diverged: pretraining's rule (:mod:`pretrain.training.divergence`) for a classifier.

Two rules, each ending in one line that names a lower ``--lr``:

* **non-finite**: NaN or infinity in the loss of an epoch's last step or in a
  weight that trains, checked after every epoch of a stage trained by Adam
  (:func:`check_epoch`), and in any weight or buffer (BatchNorm statistics too)
  of the whole model once it is trained (:func:`check_model`), so that a
  non-finite model is never returned, reported or saved;
* **exploding weights**: a weight that trains beyond
  :data:`pretrain.training.divergence.MAX_PARAMETER` after an Adam epoch. Adam
  moves a weight by at most about the rate per step, so at the default rate
  (1e-3) the 2,300 steps of 100 epochs on every digits label move it by at most
  about 2.3; at an absurd ``--lr`` the weights blew up within one stage while
  the loss stayed finite, and every test image got the same class (issue 30). The probe's weights, fitted by L-BFGS under a
  cross-validated L2 penalty, are held to the first rule only.
"""
import math
from typing import Optional

import torch
from torch import nn

from pretrain.core.errors import LayerwiseError
from pretrain.training.divergence import MAX_PARAMETER

#: the head's learning rate a diverged run is pointed to when its own was above it (``finetune --lr``'s default)
DEFAULT_LR = 1e-3


def check_epoch(model: nn.Module, loss: Optional[torch.Tensor], lr: float, where: str) -> None:
    """Raise one line naming a lower rate when the epoch ``model`` just ran (``where``) diverged.

    The weights looked at are those that train (``requires_grad``: :func:`.freezing.freeze_to`), one
    ``abs().max()`` each: NaN and infinity fail the limit too, so a weight that is not finite needs no pass
    of its own (the buffers are :func:`check_model`'s, once).
    """
    if loss is not None and not torch.isfinite(loss.detach()).all():
        diverged(f"its loss is {float(loss):g}", lr, where)
    for name, weight in model.named_parameters():
        if weight.requires_grad and weight.numel():
            largest = float(weight.detach().abs().max())
            if not largest <= MAX_PARAMETER:
                reached = f"reached {largest:.3g} (limit {MAX_PARAMETER:g})" if math.isfinite(largest) else \
                    "holds non-finite values"
                diverged(f"its {name} {reached}", lr, where)


def check_model(model: nn.Module, lr: float, where: str) -> None:
    """Raise one line when any weight or buffer of the trained ``model`` is NaN or infinite."""
    problem = non_finite(model)
    if problem:
        diverged(problem, lr, where)


def non_finite(module: nn.Module) -> str:
    """Which weight or buffer of ``module`` holds NaN or infinity, or an empty string."""
    for name, tensor in module.state_dict().items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            return f"its {name} holds non-finite values"
    return ""


def diverged(problem: str, lr: float, where: str) -> None:
    """The one line: what diverged, and a lower rate (the default when above it, else a tenth)."""
    suggestion = DEFAULT_LR if not lr <= DEFAULT_LR else lr / 10
    raise LayerwiseError(f"fine-tuning diverged ({where}): {problem}: lower the learning rate (lr={lr:g}), "
                         f"e.g. lr={suggestion:g}")
