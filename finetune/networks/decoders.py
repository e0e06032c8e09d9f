"""The decoders of a stack's layers, kept for fine-tuning: ``semi=reconstruction``.

Fine-tuning sees each pretrained layer as ``Sequential(Linear, Sigmoid)``
(:meth:`pretrain.layers.base.Layer.to_modules`). Its decoder, ``E[input | code]``
as the layer's ``decode`` computes it, is rebuilt here around that ``Linear``,
so that where the layer ties its weights the decoder reads the encoder
weights *being fine-tuned*, never a stale copy:

* Bernoulli RBM (``rbm``): ``sigmoid(h W + b)``, ``W`` the encoder's weight;
* Gaussian RBM (``grbm``): ``b + s^2 (h W')``, since fine-tuning holds
  ``W' = W / s`` (``s`` the visible standard deviations, fixed);
* autoencoder (``ae``): ``out(h W + b)`` tied, ``out(h D^T + b)`` untied
  (``D`` its own decoder matrix), ``out`` the sigmoid under a cross-entropy
  loss and the identity under squared error.

The reconstruction error of a layer is then the binary cross-entropy of its
input (in [0, 1]) under the sigmoid decoders and the squared error under the
linear ones, per unit and averaged over the batch. A random-init control gets
the same decoders with fresh weights: zero visible biases, Glorot untied
matrices (its tied ones are its encoders).
"""
import math
from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import nn


class Decoder(nn.Module):
    """``E[input | code]`` of one layer, reading the tied weight from the fine-tuned encoder ``Linear``."""

    def __init__(self, visible_bias: torch.Tensor, gain: torch.Tensor, sigmoid: bool,
                 weight: Optional[torch.Tensor] = None):
        super().__init__()
        self.visible_bias = nn.Parameter(visible_bias.detach().clone())
        self.register_buffer("gain", gain.detach().clone())
        self.sigmoid = sigmoid
        #: an untied decoder matrix ``[n_visible, n_hidden]``, or None where the encoder's weight is used
        self.weight = nn.Parameter(weight.detach().clone()) if weight is not None else None

    def logits(self, h: torch.Tensor, encoder: nn.Linear) -> torch.Tensor:
        """The decoder's pre-activation from codes ``h``."""
        if self.weight is not None:
            return F.linear(h, self.weight, self.visible_bias)
        return F.linear(h, encoder.weight.t()) * self.gain + self.visible_bias

    def forward(self, h: torch.Tensor, encoder: nn.Linear) -> torch.Tensor:
        r = self.logits(h, encoder)
        return torch.sigmoid(r) if self.sigmoid else r

    def error(self, h: torch.Tensor, encoder: nn.Linear, target: torch.Tensor) -> torch.Tensor:
        """Reconstruction error of ``target`` (the layer's input) from its codes ``h``, per unit."""
        r = self.logits(h, encoder)
        if self.sigmoid:
            return F.binary_cross_entropy_with_logits(r, target)
        return F.mse_loss(r, target)

    def reset(self) -> None:
        """Fresh weights for a random-init control: zero visible biases, a Glorot untied matrix."""
        with torch.no_grad():
            self.visible_bias.zero_()
            if self.weight is not None:
                bound = math.sqrt(6 / sum(self.weight.shape))
                self.weight.uniform_(-bound, bound)


def decoder_of(layer) -> Decoder:
    """The :class:`Decoder` of a pretrained :class:`pretrain.layers.base.Layer` (see the module docstring)."""
    scale = layer.visible_scale().detach() if hasattr(layer, "visible_scale") else torch.ones(())
    sigmoid = getattr(layer, "uses_cross_entropy", layer.input_range == "unit")
    return Decoder(layer.visible_bias, scale.pow(2), sigmoid, getattr(layer, "decoder_weight", None))


def stack_decoders(layers) -> List[Decoder]:
    """One decoder per layer of a stack, bottom first."""
    return [decoder_of(layer) for layer in layers]
