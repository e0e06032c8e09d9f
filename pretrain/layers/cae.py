"""Convolutional autoencoder layer (Masci, Meier, Cireşan & Schmidhuber 2011), denoising by default.

Code ``h = maxpool(act(W * x~ + c))`` of the corrupted input ``x~``
(``noise=mask:P`` zeroes a fraction P of pixels, ``gauss:S`` adds N(0, S^2);
Masci et al. train their stacked CAEs as denoising ones); reconstruction
``r = W'^T * unpool(h) + b``, a transposed convolution with ``W' = W`` (tied)
or a filter bank of its own, ``b`` one bias per input channel. The loss is
the reconstruction of the *clean* input, summed over pixels and averaged over
the batch: binary cross-entropy of ``sigmoid(r)`` for inputs in [0, 1],
squared error otherwise. The decoder is dropped after pretraining; the code
(ReLU maps by default) is what the layer above and fine-tuning see.

``winners=R`` (0 < R <= 1) trains it as a convolutional winner-take-all
autoencoder (Makhzani & Frey, *Winner-take-all autoencoders*, NIPS 2015):
the decoder reads the hidden maps before pooling, each map keeping only its
largest activation in each image (spatial sparsity) and, of those, only the
largest fraction R over the batch (lifetime sparsity); every other unit is
zero, so each filter must draw a whole part of the image alone. The code
passed up stays the max-pooled maps, as Makhzani & Frey's features are.
"""
import torch
import torch.nn.functional as F
from torch import nn

from .ae import ACTIVATIONS, Coding, corrupt, parse_noise
from .base import register_layer
from .convolution import CONV_OPTIONS, ConvLayer
from .options import Option, options_table


@register_layer
class ConvAutoencoder(Coding, ConvLayer):
    """One convolutional autoencoder layer of a stack: FILTERS filters, max-pooled codes."""

    kind = "cae"
    summary = "convolutional autoencoder (denoising by default), max-pooled feature maps"
    input_range = "unit"
    optimizer = "adam"
    default_lr = 1e-3
    options = options_table(
        *CONV_OPTIONS,
        Option("act", "relu", "code activation", choices=tuple(ACTIVATIONS)),
        Option("noise", "mask:0.3", "corruption: none, mask:P (0<P<1) or gauss:S (S>0)", check=parse_noise),
        Option("tied", True, "decoder uses the encoder's filters (transposed convolution)"),
        Option("loss", "auto", "ce (inputs in [0,1]), mse, or auto: ce when the input is in [0,1]",
               choices=("auto", "ce", "mse")),
        Option("weight_decay", 0.0, "L2 penalty on the filters", low=0, high=1),
        Option("winners", 0.0, "winner-take-all training: the fraction of the batch in which each map's "
                               "largest unit survives", low=0, high=1, closed="right", zero_means="off"),
    )

    def __init__(self, input_shape, filters, **options):
        super().__init__(input_shape, filters, **options)
        self.noise = parse_noise(self.hparams["noise"])
        kernel = self.hparams["kernel"]
        self.weight = self.init_weight(filters, self.channels, kernel, kernel)
        self.hidden_bias = nn.Parameter(torch.zeros(filters))
        self.visible_bias = nn.Parameter(torch.zeros(self.channels))
        if not self.hparams["tied"]:
            self.decoder_weight = self.init_weight(filters, self.channels, kernel, kernel)


    def forward(self, v):
        return self.pool(self.activation(self.convolve(v, self.weight, self.hidden_bias)))

    def decode_logits(self, h):
        """Reconstruction before the output non-linearity."""
        weight = self.weight if self.hparams["tied"] else self.decoder_weight
        return self.transpose(self.unpool(h), weight, self.visible_bias)

    def decode(self, h):
        r = self.decode_logits(h)
        return torch.sigmoid(r) if self.uses_cross_entropy else r

    def loss(self, v):
        corrupted = corrupt(v, self.noise)
        if self.hparams["winners"]:
            weight = self.weight if self.hparams["tied"] else self.decoder_weight
            maps = self.activation(self.convolve(corrupted, self.weight, self.hidden_bias))
            r = self.transpose(winners_only(maps, self.hparams["winners"]), weight, self.visible_bias)
        else:
            r = self.decode_logits(self.forward(corrupted))
        if self.uses_cross_entropy:
            return F.binary_cross_entropy_with_logits(r, v, reduction="sum") / v.shape[0]
        return F.mse_loss(r, v, reduction="sum") / v.shape[0]

    def to_modules(self):
        return self.conv_modules(self.weight, self.hidden_bias, *self.max_pooled(ACTIVATIONS[self.hparams["act"]]()))


def winners_only(maps: torch.Tensor, rate: float) -> torch.Tensor:
    """``maps`` [N, F, H, W] with all but each map's largest unit per image zeroed, and of those only the
    ``rate`` fraction largest over the batch kept (Makhzani & Frey 2015); the gradient reaches the winners."""
    flat = maps.flatten(2)
    top, where = flat.max(2)  # [N, F]: each image's winner in each map
    kept = max(1, round(rate * len(maps)))
    threshold = top.topk(kept, dim=0).values[-1]  # [F]: the kept-th largest winner of each map
    winners = top * (top >= threshold)
    return torch.zeros_like(flat).scatter(2, where[..., None], winners[..., None]).view_as(maps)
