"""What every autoencoder kind (dense ``ae``, convolutional ``cae``) shares: five options, the corruption of
denoising, the code's activation, and the loss of reconstructing the clean input.

The loss is the reconstruction ``r`` of the *clean* input ``v`` from a code of the (optionally)
corrupted input (Vincent et al. 2008, denoising: ``noise=mask:p`` zeroes a fraction p of inputs,
``noise=gauss:s`` adds N(0, s^2)), summed over units and averaged over the batch: binary
cross-entropy of ``sigmoid(r)`` for inputs in [0, 1], squared error otherwise (Bengio et al. 2007);
``loss=auto`` picks by the input's range as the layer is built. A kind says how codes become the
reconstruction's pre-activation (``decode_logits``); ``decode`` is its mean.
"""
import math
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..core.errors import LayerwiseError
from .options import Option

ACTIVATIONS = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU}
NOISES = ("none", "mask", "gauss")


def parse_noise(text: str, owner: str = "ae"):
    """``none``, ``mask:P`` or ``gauss:S`` -> (kind, amount); ``owner``: the kind the error names."""
    kind, _, amount = text.partition(":")
    try:
        value = float(amount) if amount else 0.0
    except ValueError:
        value = -1.0
    if kind not in NOISES or (kind != "none" and not 0 < value < math.inf) or (kind == "mask" and value >= 1):
        raise LayerwiseError(f"{owner}: bad noise={text!r}: use none, mask:P (0<P<1, e.g. mask:0.3) or gauss:S "
                             "(S>0 and finite, e.g. gauss:0.1)")
    return kind, value


def corrupt(v: torch.Tensor, noise) -> torch.Tensor:
    """``v`` corrupted by ``noise`` = (kind, amount) of :func:`parse_noise` (Vincent et al. 2008)."""
    kind, amount = noise
    if kind == "mask":
        return v * (torch.rand_like(v) >= amount).to(v.dtype)
    if kind == "gauss":
        return v + amount * torch.randn_like(v)
    return v


def resolve_loss(options: dict, input_range: str) -> dict:
    """``loss=auto`` made definite: cross-entropy for inputs in [0, 1], squared error otherwise."""
    if options.get("loss", "auto") == "auto":
        return {**options, "loss": "ce" if input_range == "unit" else "mse"}
    return options


def autoencoder_options(act: str, noise: str) -> Tuple[Option, ...]:
    """The options every autoencoder kind declares, with its own defaults of ``act`` and ``noise``."""
    return (
        Option("tied", True, "decoder uses the encoder's weights, transposed"),
        Option("act", act, "code activation", choices=tuple(ACTIVATIONS)),
        Option("noise", noise, "corruption (denoising): none, mask:P (0<P<1) or gauss:S (S>0)", check=parse_noise),
        Option("loss", "auto", "ce (inputs in [0,1]), mse, or auto: ce when the input is in [0,1]",
               choices=("auto", "ce", "mse")),
        Option("weight_decay", 0.0, "L2 penalty on the weights", low=0, high=1),
    )


class Autoencoding:
    """The shared behaviour, mixed in before ``Layer`` (or ``ConvLayer``); see the module docstring. A kind
    defines ``decode_logits(h)``, the reconstruction's pre-activation from codes ``h``."""

    def __init__(self, *shape, **options):
        super().__init__(*shape, **options)
        self.noise = parse_noise(self.hparams["noise"], self.kind)

    @classmethod
    def for_input(cls, input_shape, units, input_range, **options):
        return super().for_input(input_shape, units, input_range, **resolve_loss(options, input_range))

    @property
    def code_range(self):
        return "unit" if self.hparams["act"] == "sigmoid" else "real"

    @property
    def uses_cross_entropy(self) -> bool:
        """Whether the reconstruction is ``sigmoid(r)`` under cross-entropy (else ``r`` under squared error)."""
        return self.hparams["loss"] != "mse"

    def activation(self, a: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(a) if self.hparams["act"] == "sigmoid" else torch.relu(a)

    def activation_module(self) -> nn.Module:
        """The code's activation as a module, for :meth:`to_modules`."""
        return ACTIVATIONS[self.hparams["act"]]()

    def corrupt(self, v: torch.Tensor) -> torch.Tensor:
        return corrupt(v, self.noise)

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        r = self.decode_logits(h)
        return torch.sigmoid(r) if self.uses_cross_entropy else r

    def reconstruction_loss(self, r: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """The error of pre-activations ``r`` reconstructing the clean ``v``, summed over units, batch mean."""
        if self.uses_cross_entropy:
            return F.binary_cross_entropy_with_logits(r, v, reduction="sum") / v.shape[0]
        return F.mse_loss(r, v, reduction="sum") / v.shape[0]
