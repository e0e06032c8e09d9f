"""Gaussian-Bernoulli RBM for real-valued (standardised) inputs.

Energy ``E(v, h) = sum_i (v_i - b_i)^2 / (2 s_i^2) - c.h - h.W (v / s)``, so
``p(h_j=1|v) = sigmoid(c_j + W_j (v / s))`` and ``p(v_i|h) = N(b_i + s_i (W^T h)_i, s_i^2)``;
free energy ``F(v) = sum_i (v_i - b_i)^2 / (2 s_i^2) - sum_j softplus(c_j + W_j (v / s))``.
With ``learn_std=false`` the standard deviations are 1 (the input must be
standardised); with ``learn_std=true`` ``log s`` is learned and ``s`` clamped to
``[min_std, 10]`` (Cho, Ilin & Raiko 2011; Krizhevsky 2009). Gaussian RBMs
diverge with large learning rates, hence the small default rate.
"""
import torch
from torch import nn

from .base import register_layer
from .energy import ENERGY_OPTIONS, EnergyLayer
from .options import Option, options_table

MAX_STD = 10.0


@register_layer
class GaussianRBM(EnergyLayer):
    """Gaussian visible units, binary hidden units."""

    kind = "grbm"
    summary = "Gaussian-Bernoulli RBM for real-valued inputs (standardised)"
    input_range = "real"
    default_lr = 0.01
    options = options_table(
        *ENERGY_OPTIONS,
        Option("learn_std", False, "learn per-unit standard deviations (else 1)"),
        Option("min_std", 0.1, "lower clamp of learned standard deviations", low=0, high=MAX_STD, closed="right"))
    # A Gaussian negative phase must be sampled: its mean alone has no spread for s to fit.
    sample_negative_visible = True

    def __init__(self, n_visible, n_hidden, **options):
        super().__init__(n_visible, n_hidden, **options)
        self.log_std = nn.Parameter(torch.zeros(n_visible), requires_grad=self.hparams["learn_std"])

    def visible_scale(self):
        return self.log_std.exp().clamp(self.hparams["min_std"], MAX_STD)

    def visible_mean(self, h):
        return self.visible_bias + self.visible_scale() * (h @ self.weight)

    def sample_visible(self, mean):
        return mean + self.visible_scale() * torch.randn_like(mean)

    def free_energy(self, v):
        quadratic = ((v - self.visible_bias) / self.visible_scale()).pow(2).sum(1) / 2
        return quadratic - nn.functional.softplus(self.hidden_preactivation(v)).sum(1)

    def loss(self, v):
        with torch.no_grad():
            v_model, _ = self.negative_phase(self.forward(v))
        gap = self.free_energy(v).mean() - self.free_energy(v_model).mean()
        return gap + self.sparsity_term(v)
