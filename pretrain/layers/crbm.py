"""Convolutional RBM (Lee, Grosse, Ranganath & Ng 2009; Norouzi, Ranjbar & Mori 2009) trained with CD-k or PCD.

``filters`` binary hidden maps ``h^k`` share their filter ``W^k`` over every
position. With binary visible units, ``E(v, h) = -sum_k h^k . (W^k * v) -
sum_k c_k sum h^k - sum_c b_c sum v_c``, so ``p(h^k = 1 | v) = sigmoid(W^k * v + c_k)``
and ``p(v = 1 | h) = sigmoid(sum_k W^k (*)^T h^k + b)`` (a transposed
convolution). Gaussian visible units (``visible=gaussian``, for standardised
input; unit variance) replace the visible term by ``sum (v - b)^2 / 2`` and
the visible mean by the linear top-down pass. The free energy is
``F(v) = U(v) - sum_{k,x,y} softplus((W^k * v)_{xy} + c_k)``.

The loss is ``(mean F(v_data) - mean F(v_model)) / A`` with ``v_model`` the end
of a k-step Gibbs chain (held fixed) and ``A`` the number of positions of a
hidden map, so each filter's gradient is an average over positions and rates
compare with a dense RBM's. Its gradient is written in closed form: the
correlations ``<v h^k>`` are ``conv2d_weight`` of each phase's visible and
hidden maps. An optional sparsity target (Lee et al. 2008) penalises
``KL(rho || mean activation of each map)``.

With ``pooling=max`` (the default) the RBM is trained on its unpooled hidden
maps and the code passed up is the max-pool of their probabilities. With
``pooling=probabilistic`` the energy itself couples each pooling block (Lee et
al.'s probabilistic max-pooling, :mod:`pretrain.layers.pooling`): at most one
unit of a block is on, its probabilities are a softmax over the block with an
"all off" state, the softplus of the free energy becomes the block's
log-sum-exp, and the code passed up is ``p(pool on | v)`` per block.
"""
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..core.batches import map_batches, rows_within
from ..core.nograd import without_grad
from . import pooling
from .convolution import CONV_OPTIONS, ConvLayer
from .energy import ENERGY_OPTIONS, bernoulli_sample, gibbs_chain, size_chain_from, softplus_sum
from .gradients import add_gradient, sparsity_penalty, sparsity_slope
from .options import Option, options_table
from .registry import register_layer


@register_layer
class ConvRBM(ConvLayer):
    """A convolutional RBM of FILTERS binary hidden maps over binary or Gaussian visible units."""

    kind = "crbm"
    summary = "convolutional RBM (CD-k or PCD), binary or Gaussian visible units, max-pooled codes"
    input_range = "unit"
    default_lr = 0.05
    options = options_table(
        *CONV_OPTIONS,
        *ENERGY_OPTIONS,
        Option("visible", "auto", "visible units: binary, gaussian (standardised input), or auto from the input",
               choices=("auto", "binary", "gaussian")),
        Option("pooling", "max", "max: max-pool the hidden probabilities; probabilistic: Lee et al.'s "
                                 "probabilistic max-pooling (at most one unit on per pool x pool block)",
               choices=("max", "probabilistic")),
    )

    def __init__(self, input_shape, filters, **options):
        super().__init__(input_shape, filters, **options)
        kernel = self.hparams["kernel"]
        self.weight = nn.Parameter(torch.randn(filters, self.channels, kernel, kernel) * 0.01)
        self.hidden_bias = nn.Parameter(torch.zeros(filters))
        self.visible_bias = nn.Parameter(torch.zeros(self.channels))
        # Persistent chains (hidden maps); sized on first use, saved for exact resumes.
        self.register_buffer("chain", torch.empty(0, *self.map_shape))

    @classmethod
    def for_input(cls, input_shape, units, input_range, **options):
        if options.get("visible", "auto") == "auto":
            options = {**options, "visible": "gaussian" if input_range == "real" else "binary"}
        return super().for_input(input_shape, units, input_range, **options)

    @classmethod
    def expected_input_range(cls, options):
        """Standardised data for ``visible=gaussian``, [0, 1] otherwise."""
        return "real" if options.get("visible") == "gaussian" else "unit"

    @property
    def gaussian(self) -> bool:
        return self.hparams["visible"] == "gaussian"

    @property
    def probabilistic(self) -> bool:
        return self.hparams["pooling"] == "probabilistic"

    # The model ------------------------------------------------------------------------
    def hidden_preactivation(self, v: torch.Tensor) -> torch.Tensor:
        return self.convolve(v, self.weight, self.hidden_bias)

    def hidden_probabilities(self, pre: torch.Tensor) -> torch.Tensor:
        """``p(h = 1 | v)`` from the pre-activation maps: a sigmoid, or each block's softmax."""
        return pooling.unit_probabilities(pre, self.hparams["pool"]) if self.probabilistic else torch.sigmoid(pre)

    def sample_hidden(self, h: torch.Tensor) -> torch.Tensor:
        """Binary hidden maps drawn from their probabilities (at most one unit per block, when pooled so)."""
        return pooling.sample_units(h, self.hparams["pool"]) if self.probabilistic else bernoulli_sample(h)

    def hidden_free_energy(self, pre: torch.Tensor) -> torch.Tensor:
        """The hidden term ``log sum_h exp(h . I)`` per image: a softplus sum, or the blocks' log-sum-exp."""
        if self.probabilistic:
            return pooling.log_partition(pre, self.hparams["pool"])
        return F.softplus(pre).sum((1, 2, 3))

    def visible_mean(self, h: torch.Tensor) -> torch.Tensor:
        """``E[v | h]`` for hidden maps ``h``."""
        top_down = self.transpose(h, self.weight, self.visible_bias)
        return top_down if self.gaussian else top_down.sigmoid_()

    def sample_visible(self, mean: torch.Tensor) -> torch.Tensor:
        return mean + torch.randn_like(mean) if self.gaussian else bernoulli_sample(mean)

    def visible_energy(self, v: torch.Tensor) -> torch.Tensor:
        """``U(v)`` per image: ``-sum_c b_c sum v_c``, or ``sum (v - b)^2 / 2`` for Gaussian units."""
        bias = self.visible_bias.view(1, -1, 1, 1)
        if self.gaussian:
            return (v - bias).pow(2).sum((1, 2, 3)) / 2
        return -(v * bias).sum((1, 2, 3))

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        """``F(v)`` per image."""
        return self.visible_energy(v) - self.hidden_free_energy(self.hidden_preactivation(v))

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        if self.probabilistic:
            return pooling.pooled_probabilities(self.hidden_preactivation(v), self.hparams["pool"])
        return self.pool(torch.sigmoid(self.hidden_preactivation(v)))

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        return self.visible_mean(self.unpool(h))

    def decoder(self):
        """The transposed convolution of the encoder's filters on the unpooled code, through the sigmoid for
        binary visible units (Gaussian ones: the identity). It reads the max-pooled probabilities copied over
        each window where the RBM's own reconstruction reads the unpooled ones: an approximation that
        overstates every unit but a window's largest (it is what :meth:`decode` computes from a code)."""
        return self.conv_decoder(sigmoid=not self.gaussian)

    def reconstruct(self, v: torch.Tensor) -> torch.Tensor:
        """The RBM's one-step mean-field reconstruction ``E[v | p(h | v)]``, on the unpooled maps."""
        return self.visible_mean(self.hidden_probabilities(self.hidden_preactivation(v)))

    # Learning -------------------------------------------------------------------------
    @property
    def sample_negative_visible(self) -> bool:
        """A Gaussian negative phase ends at a sample, a binary one at its mean (as ``grbm`` and ``rbm``)."""
        return self.gaussian

    def negative_phase(self, h_data: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """k Gibbs steps from a sample of ``h_data`` (CD-k) or from the persistent chains (PCD)."""
        return gibbs_chain(self, h_data)

    def loss(self, v: torch.Tensor) -> torch.Tensor:
        """``(mean F(v_data) - mean F(v_model)) / A`` plus the sparsity penalty, for autograd."""
        with torch.no_grad():
            v_model, _ = self.negative_phase(self.hidden_probabilities(self.hidden_preactivation(v)))
        gap = (self.free_energy(v).mean() - self.free_energy(v_model).mean()) / self.area
        target = self.hparams["sparsity"]
        if not target:
            return gap
        q = self.hidden_probabilities(self.hidden_preactivation(v)).mean((0, 2, 3))
        return gap + self.hparams["sparsity_cost"] * sparsity_penalty(q, target)

    @without_grad
    def accumulate_gradients(self, v: torch.Tensor, into=None, with_loss=True) -> Optional[torch.Tensor]:
        """The gradient of :meth:`loss` in closed form, added to ``.grad`` without an autograd graph;
        the loss itself only ``with_loss`` (None otherwise).

        With ``h`` each phase's hidden probabilities (``n`` data images, ``m`` chains):
        ``dW = (<v_model h_model> / m - <v_data h_data> / n) / A`` with ``<v h>`` the
        correlation ``conv2d_weight(v, h)``; ``dc`` the difference of the maps' sums,
        ``db`` that of the visible sums (of ``v - b`` for Gaussian units), each over ``A``.
        """
        pre_data = self.hidden_preactivation(v)
        h_data, hidden_data = self.hidden_state(pre_data, with_loss)
        v_model, pre_model = self.negative_phase(h_data)
        h_model, hidden_model = self.hidden_state(pre_model, with_loss)
        n, m, area = v.shape[0], v_model.shape[0], self.area
        factor, penalty = self.sparsity_factor(h_data)
        weight_grad = self.correlate(v_model, h_model).div_(m * area)
        weight_grad.sub_(self.correlate(v, factor), alpha=1 / (n * area))
        add_gradient(self.weight, weight_grad)
        add_gradient(self.hidden_bias, (h_model.sum((0, 2, 3)) / m - factor.sum((0, 2, 3)) / n) / area)
        bias = self.visible_bias.view(1, -1, 1, 1)
        visible_data, visible_model = (v - bias, v_model - bias) if self.gaussian else (v, v_model)
        add_gradient(self.visible_bias, (visible_model.sum((0, 2, 3)) / m - visible_data.sum((0, 2, 3)) / n) / area)
        if not with_loss:
            return None
        hidden_gap = hidden_data / n - hidden_model / m
        gap = (self.visible_energy(v).mean() - self.visible_energy(v_model).mean() - hidden_gap) / area
        return gap if penalty is None else gap + penalty

    def hidden_state(self, pre: torch.Tensor, with_free_energy: bool = True
                     ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """:meth:`hidden_probabilities` and :meth:`hidden_free_energy` summed over the images, from one pass
        (None for the latter unless ``with_free_energy``: over every hidden unit of a batch, it costs a
        large part of a CD-1 step, and only the reported loss reads it)."""
        if not with_free_energy:  # ``pre`` is not read again: the sigmoid overwrites it, one map less in memory
            return (pooling.unit_probabilities(pre, self.hparams["pool"]) if self.probabilistic else pre.sigmoid_()), None
        if self.probabilistic:
            return pooling.probabilities_and_log_partition(pre, self.hparams["pool"])
        h = torch.sigmoid(pre)
        return h, softplus_sum(pre, h)

    def sparsity_factor(self, h: torch.Tensor) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """The data phase's hidden factor and the penalty (None without a target), per map.

        As :meth:`pretrain.layers.energy.EnergyLayer.sparsity_factor`, with ``q_k`` the mean of
        map ``k`` over the batch and its positions: the factor is ``h - h (1 - h) g_k``, with ``1 - h`` the
        block's "all off" probability under probabilistic max-pooling (:func:`pooling.off_probabilities`).
        """
        target = self.hparams["sparsity"]
        if not target:
            return h, None
        cost, q = self.hparams["sparsity_cost"], h.mean((0, 2, 3))
        g = sparsity_slope(q, target, cost).view(1, -1, 1, 1)
        off = pooling.off_probabilities(h, self.hparams["pool"]) if self.probabilistic else 1 - h
        return h - h * off * g, cost * sparsity_penalty(q, target)

    @torch.no_grad()
    def monitors(self, train: torch.Tensor, val: torch.Tensor) -> Dict[str, float]:
        """Free-energy gap per position, ``(mean F(held-out) - mean F(train)) / A``: it grows when the RBM overfits."""
        rows = rows_within(self.row_bytes)
        gap = (map_batches(self.free_energy, val, rows).mean() - map_batches(self.free_energy, train, rows).mean())
        return {"free_energy_gap": float(gap / self.area)}

    def to_modules(self) -> nn.Sequential:
        if self.probabilistic:  # the pooling reads the pre-activations: no activation of its own
            return self.conv_modules(self.weight, self.hidden_bias, pooling.ProbabilisticMaxPool(self.hparams["pool"]))
        return self.conv_modules(self.weight, self.hidden_bias, *self.max_pooled(nn.Sigmoid()))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        size_chain_from(self, state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
