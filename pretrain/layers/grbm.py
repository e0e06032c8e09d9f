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

from .energy import ENERGY_OPTIONS, EnergyLayer
from .gradients import add_gradient
from .options import Option, options_table
from .registry import register_layer

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

    def foldable_parameters(self):
        """The weight, unless the learned scales need its gradient itself (:meth:`add_visible_gradients`)."""
        return [] if self.log_std.requires_grad else super().foldable_parameters()

    def visible_scale(self):
        return self.log_std.exp().clamp(self.hparams["min_std"], MAX_STD)

    def visible_mean(self, h):
        return self.visible_bias + self.visible_scale() * (h @ self.weight)

    def sample_visible(self, mean):
        return mean + self.visible_scale() * torch.randn_like(mean)

    def visible_energy(self, v):
        """``U(v) = sum_i (v_i - b_i)^2 / (2 s_i^2)``."""
        return ((v - self.visible_bias) / self.visible_scale()).pow(2).sum(1) / 2

    def add_visible_gradients(self, v_data, v_model, weight_grad, into, with_gap):
        """``db = (mean(v_model) - mean(v_data)) / s^2``; with ``learn_std``, ``d log s`` too.

        ``dF/ds_i = -(v_i - b_i)^2 / s_i^3 - sum_j h_j W_ji v_i / s_i^2``, whose hidden
        part summed over both phases is ``-(1/s_i) sum_j W_ji dW_ji``; ``d s / d log s = s``
        inside the clamp and 0 outside it.
        """
        scale = self.visible_scale()
        data, model = (v_data - self.visible_bias) / scale, (v_model - self.visible_bias) / scale
        add_gradient(self.visible_bias, (model.mean(0) - data.mean(0)) / scale)
        quadratic = (data.pow(2).mean(0) - model.pow(2).mean(0)) / 2 if with_gap or self.log_std.requires_grad else None
        if self.log_std.requires_grad:
            inside = (self.log_std.exp() >= self.hparams["min_std"]) & (self.log_std.exp() <= MAX_STD)
            grad_scale = -2 * quadratic / scale - (self.weight * weight_grad).sum(0) / scale
            add_gradient(self.log_std, grad_scale * scale * inside)
        return quadratic.sum() if with_gap else None
