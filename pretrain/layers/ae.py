"""Autoencoder layer: plain, denoising, sparse and contractive.

Code ``h = act(W x + c)``; reconstruction ``r = W' h + b`` with ``W' = W^T``
(tied) or a separate matrix. The loss, the corruption of denoising and the
options every autoencoder kind shares are :mod:`pretrain.layers.autoencoding`'s.
Optional penalties:

* sparse (Ng 2011): ``beta * KL(rho || mean_batch h)`` with ``sparsity=rho``;
* contractive (Rifai et al. 2011): ``lambda * ||dh/dx||_F^2``, which for
  ``h = act(Wx + c)`` is ``sum_j act'(a_j)^2 sum_i W_ji^2`` in closed form.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..core.errors import LayerwiseError
from .autoencoding import Autoencoding, autoencoder_options
from .base import Layer
from .gradients import sparsity_penalty
from .options import Option, options_table
from .plain import DenseDecoder, holding
from .registry import register_layer


@register_layer
class Autoencoder(Autoencoding, Layer):
    """One autoencoder layer of a stack; the decoder is dropped after pretraining."""

    kind = "ae"
    summary = "autoencoder: tied/untied, denoising, sparse, contractive"
    input_range = "unit"
    optimizer = "adam"
    default_lr = 1e-3
    options = options_table(
        *autoencoder_options(act="sigmoid", noise="none"),
        Option("sparsity", 0.0, "target mean activation rho (act=sigmoid)", low=0, high=1, closed="neither",
               zero_means="off"),
        Option("beta", 3.0, "weight of the sparsity KL penalty", low=0, high=100),  # the upper ends: as energy.py's
        Option("contractive", 0.0, "weight of the Jacobian penalty (0: off)", low=0, high=100),
    )

    def __init__(self, n_visible, n_hidden, **options):
        super().__init__(n_visible, n_hidden, **options)
        if self.hparams["sparsity"] and self.hparams["act"] != "sigmoid":
            raise LayerwiseError("ae: sparsity is a target mean activation in (0, 1) for act=sigmoid")
        bound = math.sqrt(6 / (n_visible + n_hidden))  # Glorot & Bengio (2010) uniform init
        self.weight = nn.Parameter(torch.empty(n_hidden, n_visible).uniform_(-bound, bound))
        self.hidden_bias = nn.Parameter(torch.zeros(n_hidden))
        self.visible_bias = nn.Parameter(torch.zeros(n_visible))
        if not self.hparams["tied"]:
            self.decoder_weight = nn.Parameter(torch.empty(n_visible, n_hidden).uniform_(-bound, bound))

    def forward(self, v):
        return self.activation(F.linear(v, self.weight, self.hidden_bias))

    def decode_logits(self, h):
        weight = self.weight.t() if self.hparams["tied"] else self.decoder_weight
        return F.linear(h, weight, self.visible_bias)

    def loss(self, v):
        hp = self.hparams
        a = F.linear(self.corrupt(v), self.weight, self.hidden_bias)
        h = self.activation(a)
        loss = self.reconstruction_loss(self.decode_logits(h), v)
        if hp["sparsity"]:
            loss = loss + hp["beta"] * sparsity_penalty(h.mean(0), hp["sparsity"])
        if hp["contractive"]:
            slope = h * (1 - h) if hp["act"] == "sigmoid" else (a > 0).to(a.dtype)
            jacobian_norm = (slope.pow(2) @ self.weight.pow(2).sum(1)).mean()
            loss = loss + hp["contractive"] * jacobian_norm
        return loss

    def to_modules(self):
        linear = holding(nn.Linear, {"weight": self.weight, "bias": self.hidden_bias}, self.n_visible, self.n_hidden)
        return nn.Sequential(linear, self.activation_module())

    def decoder(self):
        """``out(h W + b)`` tied, ``out(h D^T + b)`` untied (``D`` its own matrix), ``out`` the sigmoid under a
        cross-entropy loss and the identity under squared error."""
        untied = None if self.hparams["tied"] else self.decoder_weight
        return DenseDecoder(self.visible_bias, self.uses_cross_entropy, untied)
