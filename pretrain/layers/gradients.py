"""The gradients the layers write by hand: sums into ``.grad`` or an optimizer's buffer, and the sparsity
penalty with its slope (shared by the sparse autoencoder and the RBMs' sparsity targets).
"""
from typing import Dict, Optional, Tuple

import torch


def sparsity_penalty(mean_activation: torch.Tensor, target: float) -> torch.Tensor:
    """KL(target || mean activation) summed over units (Ng, *Sparse autoencoder*, 2011).

    ``sum_j rho log(rho/q_j) + (1-rho) log((1-rho)/(1-q_j))`` with ``q_j`` the
    mean activation of unit ``j`` over the batch; shared by the sparse
    autoencoder and the RBM sparsity target (Lee et al. 2008 use its gradient).
    """
    q = mean_activation.clamp(1e-6, 1 - 1e-6)
    rho = target
    return (rho * torch.log(rho / q) + (1 - rho) * torch.log((1 - rho) / (1 - q))).sum()


def sparsity_slope(q: torch.Tensor, target: float, cost: float) -> torch.Tensor:
    """``g_j = cost ((1 - rho) / (1 - q_j) - rho / q_j)``: the derivative of ``cost * KL(rho || q)`` in ``q_j``,
    0 where ``q_j`` is clamped (as in :func:`sparsity_penalty`)."""
    clamped = q.clamp(1e-6, 1 - 1e-6)
    return cost * ((1 - target) / (1 - clamped) - target / clamped) * (clamped == q)


def add_gradient(parameter: torch.Tensor, gradient: torch.Tensor,
                 into: Optional[Dict[torch.Tensor, Tuple[torch.Tensor, float]]] = None) -> None:
    """``parameter.grad += gradient`` as ``backward`` accumulates: the first gradient is stored as it is.
    Where the optimizer folds it (``parameter in into``, as :func:`add_product_gradient`), ``scale * gradient``
    goes to its buffer instead."""
    if into and parameter in into:
        buffer, scale = into[parameter]
        buffer.add_(gradient, alpha=scale)
    elif parameter.grad is None:
        parameter.grad = gradient
    else:
        parameter.grad.add_(gradient)


def add_product_gradient(parameter: torch.Tensor, first: Tuple[torch.Tensor, torch.Tensor, float],
                         second: Tuple[torch.Tensor, torch.Tensor, float],
                         into: Dict[torch.Tensor, Tuple[torch.Tensor, float]]) -> Optional[torch.Tensor]:
    """Add the gradient ``c1 A1 B1 + c2 A2 B2`` (each term ``(A, B, c)``, matrix products) of ``parameter``.

    Where the optimizer folds it (``parameter in into``: a ``(buffer, scale)``
    from :meth:`pretrain.training.sgd.SGD.fold`), ``scale`` times it is added
    to the buffer by two in-place products, as a hand-written loop updates its
    weights: no gradient tensor is formed and the optimizer makes no separate
    pass over the weights; returns None. Otherwise it goes to ``.grad``
    (:func:`add_gradient`) and is returned.
    """
    (a1, b1, c1), (a2, b2, c2) = first, second
    if parameter in into:
        buffer, scale = into[parameter]
        buffer.addmm_(a1, b1, alpha=scale * c1).addmm_(a2, b2, alpha=scale * c2)
        return None
    gradient = torch.mm(a1, b1).addmm_(a2, b2, beta=c1, alpha=c2)
    add_gradient(parameter, gradient)
    return gradient
