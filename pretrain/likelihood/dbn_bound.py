"""A variational lower bound on the log-likelihood of a stack of RBMs read as a deep belief network.

The stack ``v - h1 - ... - h_{L-1} - h_L`` defines the DBN whose top two layers
are the top RBM and whose lower layers are directed,
``p(h_{l-1} | h_l) = prod_i sigmoid(b_l + W_l^T h_l)`` (the generative half of RBM ``l``).
With the factorial recognition model ``q(h_l | h_{l-1}) = prod_j sigmoid(c_l + W_l h_{l-1})``
(each RBM's ``forward``), Salakhutdinov & Murray (*On the quantitative analysis
of deep belief networks*, ICML 2008, s. 4) bound

    log p(v) >= E_q[ sum_{l<L} log p(h_{l-1} | h_l) - F_L(h_{L-1}) ] - log Z_L + H(q),

``h_0 = v``, ``F_L`` the top RBM's free energy and ``Z_L`` its partition function
(exact or by AIS). The expectation is a Monte Carlo average over samples of
``q``; the entropy of each factorial conditional is summed in closed form.
For one layer the bound is ``log p(v)`` itself.
"""
from typing import Sequence

import torch
import torch.nn.functional as F

from ..core.errors import LayerwiseError
from .partition import draw


def bernoulli_log_prob(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """``sum_i log Bernoulli(x_i; sigmoid(logits_i))`` over the last dimension: ``x.logits - softplus(logits)``."""
    return (x * logits - F.softplus(logits)).sum(-1)


def bernoulli_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of independent Bernoulli units of logits ``a``, over the last axis: ``softplus(a) - a sigmoid(a)``."""
    return (F.softplus(logits) - logits * torch.sigmoid(logits)).sum(-1)


@torch.no_grad()
def stack_lower_bound(layers: Sequence, v: torch.Tensor, log_z_top: float, samples: int = 10,
                      seed: int = 0) -> torch.Tensor:
    """Per-row lower bound on ``log p(v)`` of the DBN of ``layers`` (``rbm`` only, bottom first), in nats.

    ``v`` binary inputs of the bottom layer; ``log_z_top`` the top RBM's
    ``log Z`` (:func:`pretrain.likelihood.partition.exact_log_partition` or ``ais_log_partition``);
    ``samples`` draws of ``q`` averaged, from a generator seeded with ``seed``.
    """
    if not layers or any(getattr(layer, "kind", None) != "rbm" for layer in layers):
        raise LayerwiseError("the DBN bound needs a stack of rbm layers: score a grbm or ae stack's first layer alone")
    generator = torch.Generator(device=v.device).manual_seed(seed)
    total = torch.zeros(len(v), dtype=torch.float64, device=v.device)
    for _ in range(samples):
        below, bound = v, torch.zeros_like(total)
        for layer in layers[:-1]:
            up = layer.hidden_preactivation(below)
            above = draw(torch.sigmoid(up), generator)
            down = torch.addmm(layer.visible_bias, above, layer.weight)
            bound += bernoulli_log_prob(below, down) + bernoulli_entropy(up)
            below = above
        total += bound - layers[-1].free_energy(below)
    return total / samples - log_z_top

