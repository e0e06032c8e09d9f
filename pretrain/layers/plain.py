"""What a layer hands fine-tuning: plain torch modules, never the layer itself.

* its encoder (:meth:`pretrain.layers.base.Layer.to_modules`): ``Linear`` or ``Conv2d`` + activation
  [+ pooling] holding a copy of its weights (:func:`holding`);
* its decoder (:meth:`pretrain.layers.base.Layer.decoder`, for ``semi=reconstruction``): a
  :class:`Decoder`, ``E[input | code]`` as the layer's ``decode`` computes it, built around the encoder
  so that where the layer ties its weights the decoder reads the encoder weights *being fine-tuned*,
  never a stale copy. Dense kinds use :class:`DenseDecoder`, convolutional ones
  :class:`pretrain.layers.convolution.ConvDecoder`.

A decoder's reconstruction error of a layer's input is the binary cross-entropy under a sigmoid
output (inputs in [0, 1]) and the squared error under a linear one, per unit and averaged over the
batch. A random-init control gets the same decoders with fresh weights (:meth:`Decoder.reset`):
zero visible biases, Glorot untied matrices and filter banks (its tied ones are its encoders).
"""
import math
from abc import ABC, abstractmethod
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import nn


def holding(module_class: type, weights: Dict[str, torch.Tensor], *args, **kwargs) -> nn.Module:
    """``module_class(*args, **kwargs)`` whose parameters are float32 CPU copies of ``weights`` (name -> tensor).

    Built on the meta device, so nothing is drawn from the random stream, and
    its parameters replaced: what ``nn.utils.skip_init`` gives, without the
    import of torch.fx's symbolic shapes that its ``to_empty`` triggers (slow
    at the first call, and paid by the end of every run that plots).
    """
    module = module_class(*args, device="meta", **kwargs)
    for name, value in weights.items():
        setattr(module, name, nn.Parameter(value.detach().to("cpu", torch.get_default_dtype(), copy=True)))
    return module


def glorot_bound(weight: torch.Tensor) -> float:
    """Glorot & Bengio (2010): uniform weights within ``sqrt(6 / (fan_in + fan_out))``, the fans of a filter
    bank ``[out, in, k, k]`` counted over its ``k x k`` window, as the conv layers start."""
    fan_out, fan_in = weight.shape[:2]
    return math.sqrt(6 / ((fan_in + fan_out) * weight[0, 0].numel()))


def encoder_of(modules: nn.Module) -> nn.Module:
    """The first ``Linear`` or ``Conv2d`` of a layer's plain modules (a body group, which may start with
    ``Flatten``): the weights a tied decoder reads."""
    for module in modules.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            return module
    raise ValueError(f"modules without a Linear or Conv2d have no decoder: {modules}")


class Decoder(nn.Module, ABC):
    """``E[input | code]`` of one layer: what every kind shares (visible biases, an untied weight, the error);
    subclasses say how codes become the pre-activation (:meth:`logits`).

    ``sigmoid``: the output is ``sigmoid(logits)`` and its error the cross-entropy, else both are linear.
    """

    def __init__(self, visible_bias: torch.Tensor, sigmoid: bool, weight: Optional[torch.Tensor] = None):
        super().__init__()
        self.visible_bias = nn.Parameter(visible_bias.detach().clone())
        self.sigmoid = sigmoid
        #: an untied decoder weight, or None where the encoder's weight is used
        self.weight = nn.Parameter(weight.detach().clone()) if weight is not None else None

    @abstractmethod
    def logits(self, h: torch.Tensor, encoder: nn.Module) -> torch.Tensor:
        """The decoder's pre-activation from codes ``h``, reading a tied weight from ``encoder``."""

    def forward(self, h: torch.Tensor, encoder: nn.Module) -> torch.Tensor:
        r = self.logits(h, encoder)
        return torch.sigmoid(r) if self.sigmoid else r

    def error(self, h: torch.Tensor, encoder: nn.Module, target: torch.Tensor) -> torch.Tensor:
        """Reconstruction error of ``target`` (the layer's input) from its codes ``h``, per unit."""
        r = self.logits(h, encoder)
        if r.dim() == 2:
            target = target.flatten(1)  # a dense layer's input may arrive as the maps below it
        if self.sigmoid:
            return F.binary_cross_entropy_with_logits(r, target)
        return F.mse_loss(r, target)

    def reset(self) -> None:
        """Fresh weights for a random-init control: zero visible biases, a Glorot untied weight."""
        with torch.no_grad():
            self.visible_bias.zero_()
            if self.weight is not None:
                bound = glorot_bound(self.weight)
                self.weight.uniform_(-bound, bound)


class DenseDecoder(Decoder):
    """A dense layer's decoder around its fine-tuned ``Linear``: ``out(h W * gain + b)`` tied, ``out(h D^T + b)``
    untied (``D`` its own matrix).

    ``gain`` is ``s^2`` of a Gaussian RBM, whose fine-tuned ``Linear`` holds ``W' = W / s`` (``s`` the
    visible standard deviations, fixed), so that ``h W' s^2 = s (h W)`` is its mean; 1 otherwise.
    """

    def __init__(self, visible_bias: torch.Tensor, sigmoid: bool, weight: Optional[torch.Tensor] = None,
                 gain: Optional[torch.Tensor] = None):
        super().__init__(visible_bias, sigmoid, weight)
        self.register_buffer("gain", gain.detach().clone() if gain is not None else torch.ones(()))

    def logits(self, h: torch.Tensor, encoder: nn.Linear) -> torch.Tensor:
        if self.weight is not None:
            return F.linear(h, self.weight, self.visible_bias)
        return F.linear(h, encoder.weight.t()) * self.gain + self.visible_bias
