"""Convolutional autoencoder layer (Masci, Meier, Cireşan & Schmidhuber 2011), denoising by default.

Code ``h = maxpool(act(W * x~ + c))`` of the corrupted input ``x~``
(``noise=mask:P`` zeroes a fraction P of pixels, ``gauss:S`` adds N(0, S^2);
Masci et al. train their stacked CAEs as denoising ones); reconstruction
``r = W'^T * unpool(h) + b``, a transposed convolution with ``W' = W`` (tied)
or a filter bank of its own, ``b`` one bias per input channel. The loss
(:mod:`pretrain.layers.autoencoding`, as the dense ``ae``'s) is the
reconstruction of the *clean* input. The decoder is dropped after pretraining; the code
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
from torch import nn

from .autoencoding import Autoencoding, autoencoder_options
from .convolution import CONV_OPTIONS, ConvLayer
from .options import Option, options_table
from .registry import register_layer


@register_layer
class ConvAutoencoder(Autoencoding, ConvLayer):
    """One convolutional autoencoder layer of a stack: FILTERS filters, max-pooled codes."""

    kind = "cae"
    summary = "convolutional autoencoder (denoising by default), max-pooled feature maps"
    input_range = "unit"
    optimizer = "adam"
    default_lr = 1e-3
    options = options_table(
        *CONV_OPTIONS,
        *autoencoder_options(act="relu", noise="mask:0.3"),
        Option("winners", 0.0, "winner-take-all training: the fraction of the batch in which each map's "
                               "largest unit survives", low=0, high=1, closed="right", zero_means="off"),
    )

    def __init__(self, input_shape, filters, **options):
        super().__init__(input_shape, filters, **options)
        kernel = self.hparams["kernel"]
        self.weight = self.init_weight(filters, self.channels, kernel, kernel)
        self.hidden_bias = nn.Parameter(torch.zeros(filters))
        self.visible_bias = nn.Parameter(torch.zeros(self.channels))
        if not self.hparams["tied"]:
            self.decoder_weight = self.init_weight(filters, self.channels, kernel, kernel)

    @property
    def decoder_filters(self) -> torch.Tensor:
        """The filters the transposed convolution reads: the encoder's (tied) or its own."""
        return self.weight if self.hparams["tied"] else self.decoder_weight

    def forward(self, v):
        return self.pool(self.activation(self.convolve(v, self.weight, self.hidden_bias)))

    def decode_logits(self, h):
        return self.unpool_transpose(h, self.decoder_filters, self.visible_bias)

    def loss(self, v):
        corrupted = self.corrupt(v)
        if self.hparams["winners"]:
            maps = self.activation(self.convolve(corrupted, self.weight, self.hidden_bias))
            r = self.transpose(winners_only(maps, self.hparams["winners"]), self.decoder_filters, self.visible_bias)
        else:
            r = self.decode_logits(self.forward(corrupted))
        return self.reconstruction_loss(r, v)

    def to_modules(self):
        return self.conv_modules(self.weight, self.hidden_bias, *self.max_pooled(self.activation_module()))

    def decoder(self):
        """Unpool, then the transposed convolution of the encoder's filters (untied: its own bank), through the
        sigmoid under a cross-entropy loss: Masci et al.'s decoder, and with it fine-tuning is the stacked
        "what-where" autoencoder's joint loss (Zhao, Mathieu, Goroshin & LeCun 2015) with nearest-neighbour
        unpooling."""
        return self.conv_decoder(self.uses_cross_entropy, None if self.hparams["tied"] else self.decoder_weight)


def winners_only(maps: torch.Tensor, rate: float) -> torch.Tensor:
    """``maps`` [N, F, H, W] with all but each map's largest unit per image zeroed, and of those only the
    ``rate`` fraction largest over the batch kept (Makhzani & Frey 2015); the gradient reaches the winners."""
    flat = maps.flatten(2)
    top, where = flat.max(2)  # [N, F]: each image's winner in each map
    kept = max(1, round(rate * len(maps)))
    threshold = top.topk(kept, dim=0).values[-1]  # [F]: the kept-th largest winner of each map
    winners = top * (top >= threshold)
    return torch.zeros_like(flat).scatter(2, where[..., None], winners[..., None]).view_as(maps)
