"""Autoencoder layer: plain, denoising, sparse and contractive.

Code ``h = act(W x + c)``; reconstruction ``r = W' h + b`` with ``W' = W^T``
(tied) or a separate matrix. The loss is the reconstruction of the *clean*
input from a code of the (optionally) corrupted input (Vincent et al. 2008,
denoising: ``noise=mask:p`` zeroes a fraction p of inputs, ``noise=gauss:s``
adds N(0, s^2)), summed over units and averaged over the batch: binary
cross-entropy of ``sigmoid(r)`` for inputs in [0, 1], squared error otherwise
(Bengio et al. 2007). Optional penalties:

* sparse (Ng 2011): ``beta * KL(rho || mean_batch h)`` with ``sparsity=rho``;
* contractive (Rifai et al. 2011): ``lambda * ||dh/dx||_F^2``, which for
  ``h = act(Wx + c)`` is ``sum_j act'(a_j)^2 sum_i W_ji^2`` in closed form.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..core.errors import LayerwiseError
from .base import Layer, holding, register_layer, sparsity_penalty
from .options import Option, options_table

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


class Coding:
    """What every autoencoder kind (dense ``ae``, convolutional ``cae``) shares: its code's activation
    (``act``), and its loss (``loss``) made definite by the input's range."""

    @classmethod
    def for_input(cls, input_shape, units, input_range, **options):
        return super().for_input(input_shape, units, input_range, **resolve_loss(options, input_range))

    @property
    def code_range(self):
        return "unit" if self.hparams["act"] == "sigmoid" else "real"

    @property
    def uses_cross_entropy(self) -> bool:
        return self.hparams["loss"] != "mse"

    def activation(self, a):
        return torch.sigmoid(a) if self.hparams["act"] == "sigmoid" else torch.relu(a)


@register_layer
class Autoencoder(Coding, Layer):
    """One autoencoder layer of a stack; the decoder is dropped after pretraining."""

    kind = "ae"
    summary = "autoencoder: tied/untied, denoising, sparse, contractive"
    input_range = "unit"
    optimizer = "adam"
    default_lr = 1e-3
    options = options_table(
        Option("tied", True, "decoder uses the transposed encoder weights"),
        Option("act", "sigmoid", "code activation", choices=tuple(ACTIVATIONS)),
        Option("noise", "none", "corruption (denoising): none, mask:P (0<P<1) or gauss:S (S>0)", check=parse_noise),
        Option("sparsity", 0.0, "target mean activation rho (act=sigmoid)", low=0, high=1, closed="neither",
               zero_means="off"),
        Option("beta", 3.0, "weight of the sparsity KL penalty", low=0, high=100),  # the upper ends: as energy.py's
        Option("contractive", 0.0, "weight of the Jacobian penalty (0: off)", low=0, high=100),
        Option("loss", "auto", "ce (inputs in [0,1]), mse, or auto: ce when the input is in [0,1]",
               choices=("auto", "ce", "mse")),
        Option("weight_decay", 0.0, "L2 penalty on the weights", low=0, high=1),
    )

    def __init__(self, n_visible, n_hidden, **options):
        super().__init__(n_visible, n_hidden, **options)
        hp = self.hparams
        if hp["sparsity"] and hp["act"] != "sigmoid":
            raise LayerwiseError("ae: sparsity is a target mean activation in (0, 1) for act=sigmoid")
        self.noise = parse_noise(hp["noise"])
        bound = math.sqrt(6 / (n_visible + n_hidden))  # Glorot & Bengio (2010) uniform init
        self.weight = nn.Parameter(torch.empty(n_hidden, n_visible).uniform_(-bound, bound))
        self.hidden_bias = nn.Parameter(torch.zeros(n_hidden))
        self.visible_bias = nn.Parameter(torch.zeros(n_visible))
        if not hp["tied"]:
            self.decoder_weight = nn.Parameter(torch.empty(n_visible, n_hidden).uniform_(-bound, bound))


    def forward(self, v):
        return self.activation(F.linear(v, self.weight, self.hidden_bias))

    def decode_logits(self, h):
        """Reconstruction before the output non-linearity."""
        weight = self.weight.t() if self.hparams["tied"] else self.decoder_weight
        return F.linear(h, weight, self.visible_bias)

    def decode(self, h):
        r = self.decode_logits(h)
        return torch.sigmoid(r) if self.uses_cross_entropy else r

    def corrupt(self, v):
        return corrupt(v, self.noise)

    def loss(self, v):
        hp = self.hparams
        a = F.linear(self.corrupt(v), self.weight, self.hidden_bias)
        h = self.activation(a)
        r = self.decode_logits(h)
        if self.uses_cross_entropy:
            loss = F.binary_cross_entropy_with_logits(r, v, reduction="sum") / v.shape[0]
        else:
            loss = F.mse_loss(r, v, reduction="sum") / v.shape[0]
        if hp["sparsity"]:
            loss = loss + hp["beta"] * sparsity_penalty(h.mean(0), hp["sparsity"])
        if hp["contractive"]:
            slope = h * (1 - h) if hp["act"] == "sigmoid" else (a > 0).to(a.dtype)
            jacobian_norm = (slope.pow(2) @ self.weight.pow(2).sum(1)).mean()
            loss = loss + hp["contractive"] * jacobian_norm
        return loss

    def to_modules(self):
        linear = holding(nn.Linear, {"weight": self.weight, "bias": self.hidden_bias}, self.n_visible, self.n_hidden)
        return nn.Sequential(linear, ACTIVATIONS[self.hparams["act"]]())
