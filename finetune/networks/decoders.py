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
  loss and the identity under squared error;
* convolutional autoencoder (``cae``) and RBM (``crbm``): the code unpooled to
  the hidden maps' size (each pooled value copied over its window:
  :func:`pretrain.layers.convolution.unpool`, as the layer decodes), then the
  transposed convolution of the encoder's filters (an untied ``cae``: its own
  filter bank) plus one bias per input channel, through the sigmoid for inputs in [0, 1] (a ``crbm`` with Gaussian
  visible units: the identity). This is Masci et al.'s decoder; fine-tuning a
  conv stack with it is the stacked "what-where" autoencoder's joint loss
  (Zhao, Mathieu, Goroshin & LeCun, 2015) with nearest-neighbour unpooling.
  For a ``crbm`` it reads the max-pooled probabilities copied over each
  window where the RBM's own reconstruction reads the unpooled ones: an
  approximation that overstates every unit but a window's largest (it is
  what the ``crbm``'s ``decode`` computes from a code).

The reconstruction error of a layer is then the binary cross-entropy of its
input (in [0, 1]) under the sigmoid decoders and the squared error under the
linear ones, per unit and averaged over the batch. A random-init control gets
the same decoders with fresh weights: zero visible biases, Glorot untied
matrices and filter banks (its tied ones are its encoders). The encoder of a
layer is the first ``Linear`` or ``Conv2d`` of its body group
(:func:`encoder_of`: a dense layer on feature maps starts with ``Flatten``).
"""
from abc import ABC, abstractmethod
from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from pretrain.layers.convolution import unpool

from .body import glorot_bound


class Decoder(nn.Module, ABC):
    """``E[input | code]`` of one layer: what every kind shares (visible biases, an untied weight, the error);
    subclasses say how codes become the pre-activation (:meth:`logits`)."""

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
    """A dense layer's decoder around its fine-tuned ``Linear`` (``gain``: ``s^2`` of a Gaussian RBM, else 1)."""

    def __init__(self, visible_bias: torch.Tensor, gain: torch.Tensor, sigmoid: bool,
                 weight: Optional[torch.Tensor] = None):
        super().__init__(visible_bias, sigmoid, weight)
        self.register_buffer("gain", gain.detach().clone())

    def logits(self, h: torch.Tensor, encoder: nn.Linear) -> torch.Tensor:
        if self.weight is not None:
            return F.linear(h, self.weight, self.visible_bias)
        return F.linear(h, encoder.weight.t()) * self.gain + self.visible_bias


class ConvDecoder(Decoder):
    """A conv layer's decoder: unpool, then the transposed convolution of its fine-tuned ``Conv2d``'s filters."""

    def __init__(self, visible_bias: torch.Tensor, sigmoid: bool, weight: Optional[torch.Tensor], pool: int,
                 map_size: Sequence[int], output_padding: Sequence[int]):
        super().__init__(visible_bias, sigmoid, weight)
        self.pool, self.map_size, self.output_padding = pool, tuple(map_size), tuple(output_padding)

    def logits(self, h: torch.Tensor, encoder: nn.Conv2d) -> torch.Tensor:
        weight = self.weight if self.weight is not None else encoder.weight
        return F.conv_transpose2d(unpool(h, self.pool, self.map_size), weight, self.visible_bias,
                                  stride=encoder.stride, padding=encoder.padding, output_padding=self.output_padding)


def decoder_of(layer) -> Decoder:
    """The :class:`Decoder` of a pretrained :class:`pretrain.layers.base.Layer` (see the module docstring)."""
    if layer.convolutional:
        sigmoid = getattr(layer, "uses_cross_entropy", not getattr(layer, "gaussian", False))
        return ConvDecoder(layer.visible_bias, sigmoid, getattr(layer, "decoder_weight", None), layer.hparams["pool"],
                           layer.map_shape[1:], layer.output_padding)
    scale = layer.visible_scale().detach() if hasattr(layer, "visible_scale") else torch.ones(())
    sigmoid = getattr(layer, "uses_cross_entropy", layer.input_range == "unit")
    return DenseDecoder(layer.visible_bias, scale.pow(2), sigmoid, getattr(layer, "decoder_weight", None))


def encoder_of(group: nn.Module) -> nn.Module:
    """The ``Linear`` or ``Conv2d`` of a body group: the weights a tied decoder reads."""
    for module in group.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            return module
    raise ValueError(f"a body group without a Linear or Conv2d has no decoder: {group}")


def stack_decoders(layers) -> List[Decoder]:
    """One decoder per layer of a stack, bottom first."""
    return [decoder_of(layer) for layer in layers]
