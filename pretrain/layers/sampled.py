"""A dictionary of training rows drawn at random: the strong random baseline of Coates & Ng (2011).

"The importance of encoding versus training with sparse coding and vector
quantization" (ICML 2011) found that on whitened image patches a dictionary
of *randomly sampled patches*, each scaled to unit length, with a soft
threshold encoder ``f_k = max(0, d_k . v - alpha)`` comes within a point of
learned dictionaries (CIFAR-10, 1,600 features: 79.1 % against 80.0 %).
Nothing is learned: the draw in :meth:`SampledDictionary.init_from_data` is
the whole of its training, so the trainer runs no epochs for it
(``learns = False``) and it is what a learned layer must beat to show that
learning paid.
"""
import torch
from torch import nn

from .base import Layer
from .encoders import SoftThreshold
from .options import Option, options_table
from .plain import holding
from .registry import register_layer


@register_layer
class SampledDictionary(Layer):
    """``n_hidden`` unit-length rows drawn from the training rows, soft-thresholded responses as the code."""

    kind = "sampled"
    summary = "dictionary of random training rows at unit length, soft-threshold code (no training)"
    input_range = "real"
    learns = False
    options = options_table(Option("alpha", 0.25, "soft threshold of the code max(0, d.v - alpha)", low=0))

    def __init__(self, n_visible, n_hidden, **options):
        super().__init__(n_visible, n_hidden, **options)
        atoms = torch.randn(n_hidden, n_visible)
        self.weight = nn.Parameter(atoms / atoms.norm(dim=1, keepdim=True), requires_grad=False)

    @property
    def code_range(self):
        return "real"

    def forward(self, v):
        return (v @ self.weight.T).sub_(self.hparams["alpha"]).clamp_(min=0)

    def decode(self, h):
        """``h D``: the atoms weighted by their codes."""
        return h @ self.weight

    def loss(self, v):
        """The reconstruction error: reported, never trained on (there is nothing to train)."""
        return self.reconstruction_error(v)

    @torch.no_grad()
    def init_from_data(self, v):
        """The atoms: distinct random rows of ``v`` scaled to unit length (repeated if there are too few)."""
        picks = torch.randperm(len(v))[:self.n_hidden]
        atoms = v[picks.repeat(-(-self.n_hidden // len(picks)))[:self.n_hidden].to(v.device)]
        self.weight.copy_(atoms / atoms.norm(dim=1, keepdim=True).clamp_min(1e-8))

    def to_modules(self):
        linear = holding(nn.Linear, {"weight": self.weight}, self.n_visible, self.n_hidden, bias=False)
        return nn.Sequential(linear, SoftThreshold(self.hparams["alpha"]))

    def decoder(self):
        raise self.no_decoder("its dictionary is drawn, never trained to reconstruct, and has no visible biases")
