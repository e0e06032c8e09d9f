"""Bernoulli-Bernoulli restricted Boltzmann machine trained with CD-k or PCD.

Energy ``E(v, h) = -b.v - c.h - h.W v``; free energy
``F(v) = -b.v - sum_j softplus(c_j + W_j v)``. The log-likelihood gradient is
``E_data[h v^T] - E_model[h v^T]``; CD-k (Hinton 2002) estimates the model term
with a k-step Gibbs chain started at the data, PCD (Tieleman 2008) with chains
that persist across updates. Minimising ``mean F(v_data) - mean F(v_model)``
with the model sample held fixed has exactly that gradient, so the trainer's
SGD (momentum, weight decay) applies the CD update.
"""
import torch
import torch.nn.functional as F

from .base import bernoulli_sample, register_layer
from .energy import ENERGY_OPTIONS, EnergyLayer


def free_energy_terms(v, pre, visible_bias):
    """``F(v)`` per row from the hidden pre-activation ``pre = W v + c`` already computed."""
    return -(v @ visible_bias) - F.softplus(pre).sum(1)


class _CDGradient(torch.autograd.Function):
    """``mean F(v_data) - mean F(v_model)`` with its gradient written out.

    ``dW = mean_model[h v^T] - mean_data[h v^T]``, ``db = mean(v_model) - mean(v_data)``,
    ``dc = mean(h_model) - mean(h_data)``: the same as autograd of the free
    energies (a test checks it), but it reuses the hidden probabilities of the
    Gibbs chain and does both weight products in one matrix multiply, which is
    what brings CD-1 close to the machine's matmul throughput.
    """

    @staticmethod
    def forward(ctx, weight, visible_bias, hidden_bias, v_data, pre_data, v_model, pre_model):
        h_data, h_model = torch.sigmoid(pre_data), torch.sigmoid(pre_model)
        ctx.save_for_backward(v_data, h_data, v_model, h_model)
        return (free_energy_terms(v_data, pre_data, visible_bias).mean()
                - free_energy_terms(v_model, pre_model, visible_bias).mean())

    @staticmethod
    def backward(ctx, grad):
        v_data, h_data, v_model, h_model = ctx.saved_tensors
        scale_data, scale_model = grad / v_data.shape[0], grad / v_model.shape[0]
        hidden = torch.cat([h_model * scale_model, h_data * -scale_data])
        grad_weight = hidden.t() @ torch.cat([v_model, v_data])
        grad_visible = v_model.sum(0) * scale_model - v_data.sum(0) * scale_data
        grad_hidden = hidden.sum(0)
        return grad_weight, grad_visible, grad_hidden, None, None, None, None


@register_layer
class BernoulliRBM(EnergyLayer):
    """Binary visible and hidden units; inputs in [0, 1] are read as probabilities."""

    kind = "rbm"
    summary = "Bernoulli-Bernoulli RBM (CD-k or PCD) for inputs in [0, 1]"
    input_range = "unit"
    default_lr = 0.1
    options = ENERGY_OPTIONS

    def visible_mean(self, h):
        return torch.sigmoid(torch.addmm(self.visible_bias, h, self.weight))

    def sample_visible(self, mean):
        return bernoulli_sample(mean)

    def free_energy(self, v):
        return free_energy_terms(v, self.hidden_preactivation(v), self.visible_bias)

    def init_from_data(self, v):
        """Visible biases ``log(p / (1 - p))`` of the mean input (Hinton 2010, s. 8)."""
        p = v.mean(0).clamp(0.01, 0.99)
        with torch.no_grad():
            self.visible_bias.copy_(torch.log(p / (1 - p)))

    def loss(self, v):
        with torch.no_grad():
            pre_data = self.hidden_preactivation(v)
            v_model, pre_model = self.negative_phase(torch.sigmoid(pre_data))
        gap = _CDGradient.apply(self.weight, self.visible_bias, self.hidden_bias,
                                v, pre_data, v_model, pre_model)
        return gap + self.sparsity_term(v)

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
