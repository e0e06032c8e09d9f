"""Stopping a layer that diverged, and refusing input no layer can learn from.

Three rules, checked after every epoch (:meth:`Guard.check`), each ending in
one line that names the remedy:

* **non-finite**: NaN or infinity in the loss, the monitors or any parameter
  or buffer of the layer;
* **exploding parameters**: a parameter beyond :data:`MAX_PARAMETER` in
  absolute value. Every layer's input is in [0, 1] or standardised, so a
  weight of 1,000 turns a change of 0.01 in one input into 10 units of
  pre-activation: the layer's sigmoid units have become hard thresholds.
  Trained at their default rates on digits, layers stay far below that limit
  (the largest value is an RBM's visible bias, the log-odds of a near-empty
  pixel); at an absurd rate rbm and ae layers pass it within one epoch (a
  grbm turns NaN). This is the rule that catches ``rbm`` and
  sigmoid ``ae`` layers, whose reconstruction error is bounded and so never
  grows far;
* **reconstruction worse than trivial**: the error on the held-out slice more
  than :data:`ERROR_MARGIN` times the larger of two references: reconstructing
  every input by the training data's per-feature mean, and the layer's own
  error before its first epoch. The second reference is needed because an
  untrained autoencoder (outputs near 0.5) starts several times worse than
  the mean on digits and is still there after one epoch at its default rate,
  and because upper layers may see codes of almost no variance (mean error
  near 0). The measurements behind both limits are in
  ``examples/benchmarks/design_notes.md``.

The input is checked before training (:func:`check_input`): NaN and infinite
values are counted (:func:`check_finite`, which ``finetune`` also uses), and
constant data is named as such, instead of being reported as a divergence.
"""
from dataclasses import dataclass, replace
from typing import Dict

import numpy as np
import torch

from ..core.errors import LayerwiseError
from ..layers import Layer, LayerSpec, get_layer_class

#: an epoch whose held-out reconstruction error is over this many times the larger of the mean
#: input's error and the untrained layer's error has diverged: default runs on digits stay at most a
#: little above 1, rbm layers blown up by a large rate go well past 2.
ERROR_MARGIN = 2.0
#: the largest absolute value a parameter may reach (inputs are in [0, 1] or standardised).
MAX_PARAMETER = 1e3


def check_finite(x, what: str = "the data", use: str = "pretraining") -> None:
    """Refuse input holding NaN or infinite values: one line counting them, naming ``use`` (what they would spoil).

    ``x`` is an array or tensor ``[N, ...]``; integer data passes without a look (it cannot hold NaN).
    """
    flat = _rows(x)
    if flat.dtype.kind in "fc":
        nan, inf = int(np.isnan(flat).sum()), int(np.isinf(flat).sum())
        if nan or inf:
            rows = int((~np.isfinite(flat)).any(1).sum())
            raise LayerwiseError(f"{what} holds {nan} NaN and {inf} infinite value(s) in {rows} of {len(flat)} "
                                 f"examples: remove or impute them before {use}")


def check_input(x, what: str = "the data", remedy: str = "check that the right data was loaded",
                use: str = "pretraining") -> None:
    """Refuse input holding NaN or infinite values (:func:`check_finite`), or whose every feature is constant.

    ``x`` is an array or tensor ``[N, ...]``; ``what`` names it in the message,
    ``remedy`` ends the message about constant input.
    """
    check_finite(x, what, use)
    flat = _rows(x)
    if len(flat) and (flat.max(0) == flat.min(0)).all():
        raise LayerwiseError(f"{what} is constant (all {len(flat)} examples are the same): "
                             f"there is nothing to learn; {remedy}")


def _rows(x) -> np.ndarray:
    """``x`` (array or tensor) as a numpy array of one row per example."""
    return np.asarray(x.cpu() if isinstance(x, torch.Tensor) else x).reshape(len(x), -1)


def mean_error(train: torch.Tensor, held_out: torch.Tensor) -> float:
    """Mean squared error of reconstructing every held-out row by the training rows' per-feature mean."""
    return float((held_out - train.mean(0)).pow(2).mean())


@dataclass
class Guard:
    """The divergence rules for one layer, with the reference error its epochs are held to.

    ``reference`` is the larger of :func:`mean_error` and the layer's error
    before training, both on the slice whose error the epochs report.
    """

    spec: LayerSpec
    index: int
    lr: float
    reference: float

    def check(self, layer: Layer, metrics: Dict[str, float], epoch: int) -> None:
        """Raise one line naming the remedy when the epoch just run diverged."""
        problem = self.problem(layer, metrics)
        if problem:
            raise LayerwiseError(f"layer {self.index + 1} ({self.spec}) diverged in epoch {epoch}: {problem}: "
                                 f"{self.remedy()}")

    def problem(self, layer: Layer, metrics: Dict[str, float]) -> str:
        """What went wrong, or an empty string."""
        for name, value in metrics.items():
            if not np.isfinite(value):
                return f"its {name} is {value}"
        largest = {name: float(tensor.abs().max()) for name, tensor in layer.state_dict().items() if tensor.numel()}
        for name, value in largest.items():
            if not np.isfinite(value):
                return f"its {name} holds non-finite values"
        sizes = {name: largest[name] for name, _ in layer.named_parameters() if name in largest}  # not counts
        name = max(sizes, key=sizes.get)
        if sizes[name] > MAX_PARAMETER:
            return f"its {name} reached {largest[name]:.3g} (limit {MAX_PARAMETER:g})"
        error = metrics.get("recon_val", metrics["recon_train"])
        if error > ERROR_MARGIN * self.reference:
            return (f"reconstruction error {error:.3g}, over {ERROR_MARGIN:g} times {self.reference:.3g} "
                    "(that of the data's mean, or of the untrained layer)")
        return ""

    def remedy(self) -> str:
        """Lower the rate (to the kind's default when above it), and, for Gaussian units, standardise."""
        layer_cls = get_layer_class(self.spec.kind)
        default = layer_cls.default_lr
        above = not self.lr <= default  # NaN counts as above: the suggestion must be a valid rate
        suggestion = default if above else self.lr / 10
        text = f"lower its learning rate ({self.lr:g}), e.g. -l {replace(self.spec, lr=suggestion)}"
        if above:
            text += f" ({self.spec.kind}'s default)"
        if layer_cls.input_range == "real":
            text += "; Gaussian units also need standardised input (zero mean, unit variance)"
        return text
