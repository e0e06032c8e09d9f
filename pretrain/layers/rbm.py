"""Bernoulli-Bernoulli restricted Boltzmann machine trained with CD-k or PCD.

Energy ``E(v, h) = -b.v - c.h - h.W v``; free energy
``F(v) = -b.v - sum_j softplus(c_j + W_j v)``. The log-likelihood gradient is
``E_data[h v^T] - E_model[h v^T]``; CD-k (Hinton 2002) estimates the model term
with a k-step Gibbs chain started at the data, PCD (Tieleman 2008) with chains
that persist across updates. The chain's last visible state is its mean by
default (``negative_visible=mean``) or a binary sample (``sample``, as
scikit-learn does); the visible biases start from the data's log-odds
(``visible_init=data``) or at 0 (``zero``, as scikit-learn). Minimising
``mean F(v_data) - mean F(v_model)`` with the model sample held fixed has
exactly that gradient, so the trainer's SGD (momentum, weight decay) applies
the CD update.
"""
import torch
import torch.nn.functional as F

from .base import bernoulli_sample, register_layer
from .energy import ENERGY_OPTIONS, EnergyLayer
from .options import Option, options_table


def free_energy_terms(v, pre, visible_bias):
    """``F(v)`` per row from the hidden pre-activation ``pre = W v + c`` already computed."""
    return -(v @ visible_bias) - F.softplus(pre).sum(1)


def softplus_from_sigmoid(pre, h):
    """``softplus(x) = x - log sigmoid(x)``, reusing ``h = sigmoid(x)``: cheap passes, no exp or log1p.

    Exact up to an absolute rounding error of about ``1e-7 * |x|``, which is
    plenty for the reported loss. Where the float sigmoid underflows (``x``
    below about -87) softplus is under 1e-38: clamping ``h`` at the smallest
    normal float and the result at 0 gives that 0.
    """
    return (pre - h.clamp(min=torch.finfo(h.dtype).tiny).log()).clamp_(min=0)


class _CDGradient(torch.autograd.Function):
    """``mean F(v_data) - mean F(v_model)`` with its gradient written out.

    With ``h = sigmoid(W v + c)`` the hidden probabilities of each phase,
    ``dW = mean_model[h v^T] - mean_data[h v^T]``, ``db = mean(v_model) - mean(v_data)``,
    ``dc = mean(h_model) - mean(h_data)``: the same as autograd of the free
    energies (a test checks it), but it reuses the pre-activations and hidden
    probabilities the Gibbs chain already computed, so that a CD-1 step costs
    five ``batch x n_visible x n_hidden`` matrix products plus a few
    elementwise passes (``examples/benchmarks/rbm_throughput.py`` measures it).
    """

    @staticmethod
    def forward(ctx, weight, visible_bias, hidden_bias, v_data, pre_data, h_data, v_model, pre_model):
        h_model = torch.sigmoid(pre_model)
        grad_visible = v_model.mean(0) - v_data.mean(0)
        ctx.save_for_backward(v_data, h_data, v_model, h_model, grad_visible)
        softplus_gap = (softplus_from_sigmoid(pre_data, h_data).sum() / len(v_data)
                        - softplus_from_sigmoid(pre_model, h_model).sum() / len(v_model))
        return visible_bias @ grad_visible - softplus_gap

    @staticmethod
    def backward(ctx, grad):
        v_data, h_data, v_model, h_model, grad_visible = ctx.saved_tensors
        h_model = h_model * (grad / len(v_model))
        h_data = h_data * (grad / len(v_data))
        # Two products, the second accumulated in place: no concatenated copy of both phases.
        grad_weight = torch.mm(h_model.t(), v_model).addmm_(h_data.t(), v_data, alpha=-1)
        grad_hidden = h_model.sum(0) - h_data.sum(0)
        return grad_weight, grad * grad_visible, grad_hidden, None, None, None, None, None


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

    def hidden_preactivation(self, v):
        """``W v + c``: binary visible units are not rescaled."""
        return F.linear(v, self.weight, self.hidden_bias)

    def visible_mean(self, h):
        return torch.addmm(self.visible_bias, h, self.weight).sigmoid_()

    def sample_visible(self, mean):
        return bernoulli_sample(mean)

    def free_energy(self, v):
        return free_energy_terms(v, self.hidden_preactivation(v), self.visible_bias)

    def init_from_data(self, v):
        """With ``visible_init=data``, visible biases ``log(p / (1 - p))`` of the mean input (Hinton 2010, s. 8)."""
        if self.hparams["visible_init"] == "zero":
            return
        p = v.mean(0).clamp(0.01, 0.99)
        with torch.no_grad():
            self.visible_bias.copy_(torch.log(p / (1 - p)))

    def loss(self, v):
        with torch.no_grad():
            pre_data = self.hidden_preactivation(v)
            h_data = torch.sigmoid(pre_data)
            v_model, pre_model = self.negative_phase(h_data)
        gap = _CDGradient.apply(self.weight, self.visible_bias, self.hidden_bias,
                                v, pre_data, h_data, v_model, pre_model)
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
