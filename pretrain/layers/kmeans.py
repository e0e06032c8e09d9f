"""k-means as a layer: centroids learned by mini-batch k-means, the triangle code passed up.

The objective is the mean squared distance of each row to its nearest
centroid, per unit: ``J = 1/(n d) sum_i min_k ||v_i - c_k||^2``, which is also
the layer's reconstruction error (a row is reconstructed by its centroid).
Each minibatch moves every centroid to the running mean of the rows assigned
to it so far (Sculley 2010, "Web-scale k-means clustering", in its batch
form): with ``b_k`` rows of the batch assigned to ``c_k``, summing to
``S_k``, and ``N_k`` rows assigned to it since training began (its first
sample counts as one), the step ``c_k <- c_k - (b_k c_k - S_k) / N_k`` is the
trainer's SGD at rate 1 (the default) on the gradient that
:meth:`KMeans.accumulate_gradients` writes: ``J``'s gradient scaled per
centroid by ``n d / (2 N_k)``, the per-centre rate of Sculley's algorithm.
``N_k`` is a buffer, saved with the layer, so a resumed run continues exactly.

Centroids start as distinct training rows (:meth:`KMeans.init_from_data`).
The code is the triangle encoder of Coates, Lee & Ng (2011)
(:func:`pretrain.layers.encoders.triangle`), the reference learner for
single-layer features on whitened image patches (``patch-kmeans``).
"""
import torch
from torch import nn

from .base import Layer
from .encoders import Triangle, triangle
from .gradients import add_gradient
from .options import options_table
from .plain import holding
from .registry import register_layer


@register_layer
class KMeans(Layer):
    """``n_hidden`` centroids of ``n_visible``-dimensional rows."""

    kind = "kmeans"
    summary = "k-means centroids (mini-batch, Sculley 2010), triangle code (Coates, Lee & Ng 2011)"
    input_range = "real"
    default_lr = 1.0
    options = options_table()

    def __init__(self, n_visible, n_hidden, **options):
        super().__init__(n_visible, n_hidden, **options)
        self.weight = nn.Parameter(torch.randn(n_hidden, n_visible) * 0.1)
        self.register_buffer("assigned", torch.ones(n_hidden))

    @property
    def code_range(self):
        return "real"

    def distances(self, v: torch.Tensor) -> torch.Tensor:
        """Squared distances ``[n, K]`` of the rows to every centroid."""
        squared = torch.addmm(self.weight.pow(2).sum(1), v, self.weight.T, alpha=-2)
        return squared.add_(v.pow(2).sum(1, keepdim=True)).clamp_(min=0)

    def forward(self, v):
        return triangle(v, self.weight)

    def decode(self, h):
        """Each row's nearest centroid: the one with the largest triangle feature."""
        return self.weight[h.argmax(-1)]

    def loss(self, v):
        return self.distances(v).min(1).values.mean() / self.n_visible

    @torch.no_grad()
    def init_from_data(self, v):
        """Centroids at distinct random rows of ``v`` (repeated, if there are fewer rows than centroids)."""
        picks = torch.randperm(len(v))[:self.n_hidden]
        picks = picks.repeat(-(-self.n_hidden // len(picks)))[:self.n_hidden]
        self.weight.copy_(v[picks.to(v.device)])
        self.assigned.fill_(1.0)

    @torch.no_grad()
    def accumulate_gradients(self, v, into=None, with_loss=True):
        """The mini-batch k-means step as a gradient (see the module docstring)."""
        nearest_distance, nearest = self.distances(v).min(1)
        counts = torch.bincount(nearest, minlength=self.n_hidden).to(v.dtype)
        sums = torch.zeros_like(self.weight).index_add_(0, nearest, v)
        self.assigned.add_(counts)
        add_gradient(self.weight, (counts[:, None] * self.weight - sums) / self.assigned[:, None])
        return nearest_distance.mean() / self.n_visible if with_loss else None

    def picture_weights(self):
        return self.weight.detach().clone()

    def to_modules(self):
        linear = holding(nn.Linear, {"weight": self.weight}, self.n_visible, self.n_hidden, bias=False)
        return nn.Sequential(Triangle(linear))

    def decoder(self):
        raise self.no_decoder("a row is reconstructed by its nearest centroid, an argmax that passes no gradient")
