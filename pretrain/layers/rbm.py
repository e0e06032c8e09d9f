"""Bernoulli-Bernoulli restricted Boltzmann machine trained with CD-k or PCD.

Energy ``E(v, h) = -b.v - c.h - h.W v``; free energy
``F(v) = -b.v - sum_j softplus(c_j + W_j v)``. The log-likelihood gradient is
``E_data[h v^T] - E_model[h v^T]``; CD-k (Hinton 2002) estimates the model term
with a k-step Gibbs chain started at the data, PCD (Tieleman 2008) with chains
that persist across updates. The chain's last visible state is its mean by
default (``negative_visible=mean``) or a binary sample (``sample``, as
scikit-learn does); the visible biases start from the data's log-odds
(``visible_init=data``) or at 0 (``zero``, as scikit-learn). The gradient is
written in closed form (:meth:`pretrain.layers.energy.EnergyLayer.accumulate_gradients`)
and the trainer's SGD (momentum, weight decay) applies the CD update.
"""
import torch
import torch.nn.functional as F

from .energy import ENERGY_OPTIONS, EnergyLayer, bernoulli_sample
from .gradients import add_gradient
from .options import Option, options_table
from .registry import register_layer


@register_layer
class BernoulliRBM(EnergyLayer):
    """Binary visible and hidden units; inputs in [0, 1] are read as probabilities."""

    kind = "rbm"
    summary = "Bernoulli-Bernoulli RBM (CD-k or PCD) for inputs in [0, 1]"
    input_range = "unit"
    default_lr = 0.1
    options = options_table(
        *ENERGY_OPTIONS,
        Option("visible_init", "data", "visible biases: log-odds of the mean input, or zero (scikit-learn)",
               choices=("data", "zero")),
        Option("negative_visible", "mean", "negative phase ends at the visible means, or samples (scikit-learn)",
               choices=("mean", "sample")),
    )

    @property
    def sample_negative_visible(self):
        """Whether the negative phase ends at a sample (``negative_visible=sample``) rather than the mean."""
        return self.hparams["negative_visible"] == "sample"

    def scaled(self, v):
        """Binary visible units are not rescaled."""
        return v

    def visible_mean(self, h):
        return torch.addmm(self.visible_bias, h, self.weight).sigmoid_()

    def sample_visible(self, mean):
        return bernoulli_sample(mean)

    def visible_energy(self, v):
        """``U(v) = -b.v``."""
        return -(v @ self.visible_bias)

    def foldable_parameters(self):
        """The weight and both biases."""
        return super().foldable_parameters() + [self.visible_bias]

    def add_visible_gradients(self, v_data, v_model, weight_grad, into, with_gap):
        """``db = mean(v_model) - mean(v_data)``; the visible gap is ``b.db``."""
        grad = v_model.sum(0).div_(v_model.shape[0]).sub_(v_data.sum(0), alpha=1 / v_data.shape[0])
        gap = self.visible_bias @ grad if with_gap else None
        add_gradient(self.visible_bias, grad, into)
        return gap

    def init_from_data(self, v):
        """With ``visible_init=data``, visible biases ``log(p / (1 - p))`` of the mean input (Hinton 2010, s. 8)."""
        if self.hparams["visible_init"] == "zero":
            return
        p = v.mean(0).clamp(0.01, 0.99)
        with torch.no_grad():
            self.visible_bias.copy_(torch.log(p / (1 - p)))

    @torch.no_grad()
    def pseudo_likelihood(self, v: torch.Tensor) -> torch.Tensor:
        """Stochastic pseudo-log-likelihood per row, as scikit-learn's ``score_samples``.

        Flips one random visible unit per row: ``n_visible * log sigmoid(F(v~) - F(v))``.
        """
        flipped = v.clone()
        rows = torch.arange(v.shape[0], device=v.device)
        cols = torch.randint(0, v.shape[1], (v.shape[0],), device=v.device)
        flipped[rows, cols] = 1 - flipped[rows, cols]
        return v.shape[1] * F.logsigmoid(self.free_energy(flipped) - self.free_energy(v))
