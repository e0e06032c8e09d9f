"""What every restricted Boltzmann machine shares: Gibbs chains, PCD, free-energy monitors.

Not registered itself; ``rbm`` and ``grbm`` subclass it and say how their
visible units behave. References: Hinton, *Training products of experts by
minimizing contrastive divergence* (2002); Tieleman, *Training restricted
Boltzmann machines using approximations to the likelihood gradient* (2008);
Hinton, *A practical guide to training RBMs* (2010).
"""
from abc import abstractmethod
from typing import Dict, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .base import Layer, bernoulli_sample, sparsity_penalty
from .options import Option

#: The options every RBM kind declares (each kind lists them in its ``options``).
ENERGY_OPTIONS = (
    Option("k", 1, "Gibbs steps of CD-k", low=1),
    Option("pcd", False, "persistent contrastive divergence (chains kept across batches)"),
    Option("momentum", 0.5, "SGD momentum", low=0, high=1, closed="left"),
    Option("weight_decay", 0.0, "L2 penalty on the weights", low=0),
    Option("sparsity", 0.0, "target mean hidden activation", low=0, high=1, closed="neither", zero_means="off"),
    Option("sparsity_cost", 0.1, "weight of the sparsity penalty", low=0),
)


class EnergyLayer(Layer):
    """An RBM with binary hidden units; subclasses define the visible units.

    The hidden pre-activation is ``W v' + c`` with ``v'`` the (possibly rescaled)
    visible vector; ``forward`` returns ``p(h=1|v) = sigmoid(W v' + c)``, the
    mean-field code that is cached for the layer above.
    """

    #: whether the last visible state of the negative phase is sampled (else its mean is used).
    sample_negative_visible = False

    def __init__(self, n_visible: int, n_hidden: int, **options):
        super().__init__(n_visible, n_hidden, **options)
        self.weight = nn.Parameter(torch.randn(n_hidden, n_visible) * 0.01)
        self.hidden_bias = nn.Parameter(torch.zeros(n_hidden))
        self.visible_bias = nn.Parameter(torch.zeros(n_visible))
        # Persistent chains (hidden states); sized on first use, saved for exact resumes.
        self.register_buffer("chain", torch.empty(0, n_hidden))

    # What subclasses define ----------------------------------------------------
    def visible_scale(self) -> torch.Tensor:
        """Per-visible-unit divisor applied before the weights (1 for binary units)."""
        return torch.ones(())

    @abstractmethod
    def visible_mean(self, h: torch.Tensor) -> torch.Tensor:
        """``E[v | h]``."""

    @abstractmethod
    def sample_visible(self, mean: torch.Tensor) -> torch.Tensor:
        """A sample of ``p(v | h)`` given its mean."""

    @abstractmethod
    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        """``F(v) = -log sum_h exp(-E(v, h))`` per row, up to a constant."""

    # Shared -----------------------------------------------------------------------
    def hidden_preactivation(self, v: torch.Tensor) -> torch.Tensor:
        return F.linear(v / self.visible_scale(), self.weight, self.hidden_bias)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.hidden_preactivation(v))

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        return self.visible_mean(h)

    @torch.no_grad()
    def negative_phase(self, h_data: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Run the Gibbs chain k steps; return the model's visible state and its hidden pre-activation.

        CD-k starts from a sample of ``p(h|v_data)``; PCD continues the
        persistent chains and stores their new hidden samples.
        """
        k, pcd = self.hparams["k"], self.hparams["pcd"]
        if pcd and self.chain.shape[0] == 0:
            self.chain = bernoulli_sample(h_data)
        h = self.chain if pcd else bernoulli_sample(h_data)
        for step in range(k):
            mean = self.visible_mean(h)
            last = step == k - 1
            v = self.sample_visible(mean) if (not last or self.sample_negative_visible) else mean
            pre = self.hidden_preactivation(v)
            if not last or pcd:
                h = bernoulli_sample(torch.sigmoid(pre))
        if pcd:
            self.chain = h
        return v, pre

    def sparsity_term(self, v: torch.Tensor) -> torch.Tensor:
        """Sparsity penalty on the mean hidden activation (0 when no target is set)."""
        target = self.hparams["sparsity"]
        if not target:
            return torch.zeros((), device=v.device)
        return self.hparams["sparsity_cost"] * sparsity_penalty(self.forward(v).mean(0), target)

    @torch.no_grad()
    def sample(self, n: int, steps: int = 1000) -> torch.Tensor:
        """Visible means after ``steps`` of block Gibbs sampling from random binary hidden states."""
        h = bernoulli_sample(torch.full((n, self.n_hidden), 0.5, device=self.weight.device))
        for _ in range(steps):
            mean = self.visible_mean(h)
            h = bernoulli_sample(self.forward(self.sample_visible(mean)))
        return self.visible_mean(h)

    @torch.no_grad()
    def monitors(self, train: torch.Tensor, val: torch.Tensor) -> Dict[str, float]:
        """Free-energy gap ``mean F(held-out) - mean F(train)``: it grows when the RBM overfits (Hinton 2010, s. 6)."""
        gap = self.free_energy(val).mean() - self.free_energy(train).mean()
        return {"free_energy_gap": float(gap)}

    def to_modules(self) -> nn.Sequential:
        linear = nn.utils.skip_init(nn.Linear, self.n_visible, self.n_hidden)  # weights copied below: no draw from the RNG
        with torch.no_grad():
            linear.weight.copy_(self.weight / self.visible_scale())
            linear.bias.copy_(self.hidden_bias)
        return nn.Sequential(linear, nn.Sigmoid())

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # The persistent chain's size is only known once trained: take it from the saved state.
        saved = state_dict.get(prefix + "chain")
        if saved is not None:
            self.chain = torch.empty_like(saved, device=self.weight.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
