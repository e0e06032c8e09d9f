"""Probabilistic max-pooling (Lee, Grosse, Ranganath & Ng 2009, s. 3.3), for the convolutional RBM.

The hidden units of each map are grouped into ``pool x pool`` blocks ``B``; at
most one unit of a block may be on, and the block's pooling unit is on exactly
when one of them is. Given the visible units, with ``I_u`` the bottom-up input
of unit ``u`` (its pre-activation), each block is one draw among ``|B| + 1``
states::

    p(h_u = 1 | v) = exp(I_u) / (1 + sum_{u' in B} exp(I_u'))
    p(pool off | v) = 1 / (1 + sum_{u' in B} exp(I_u'))

a softmax over the block's inputs and a zero for "all off". The free energy's
hidden term becomes ``sum_B log(1 + sum_{u in B} exp(I_u))`` (a log-sum-exp
with that zero), whose derivative with respect to ``I_u`` is ``p(h_u = 1 | v)``:
the RBM's gradient keeps its form (correlations of the visible units with the
hidden probabilities), only the probabilities change. At ``pool = 1`` every
block is one unit and all of this is the plain sigmoid RBM. Maps whose size is
not a multiple of the block are padded with units that are never on (input
``-inf``), as the code's ceil-mode pooling covers the partial blocks.
"""
import math
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import nn


def to_blocks(x: torch.Tensor, pool: int, fill: float) -> torch.Tensor:
    """Maps ``[N, F, H, W]`` as blocks ``[N, F, ceil(H / pool), ceil(W / pool), pool * pool]``, padded with ``fill``."""
    n, filters, height, width = x.shape
    rows, columns = math.ceil(height / pool), math.ceil(width / pool)
    x = F.pad(x, (0, columns * pool - width, 0, rows * pool - height), value=fill)
    return x.reshape(n, filters, rows, pool, columns, pool).permute(0, 1, 2, 4, 3, 5).reshape(
        n, filters, rows, columns, pool * pool)


def from_blocks(blocks: torch.Tensor, pool: int, size: Tuple[int, int]) -> torch.Tensor:
    """The inverse of :func:`to_blocks`: maps ``[N, F, *size]``, the padding cropped."""
    n, filters, rows, columns, _ = blocks.shape
    maps = blocks.reshape(n, filters, rows, columns, pool, pool).permute(0, 1, 2, 4, 3, 5)
    return maps.reshape(n, filters, rows * pool, columns * pool)[:, :, :size[0], :size[1]]


def with_off_state(pre: torch.Tensor, pool: int) -> torch.Tensor:
    """Each block's inputs and a last entry 0 for "all off": ``[N, F, rows, columns, pool * pool + 1]``."""
    blocks = to_blocks(pre, pool, float("-inf"))
    return torch.cat([blocks, blocks.new_zeros(blocks.shape[:-1] + (1,))], dim=-1)


def log_states(pre: torch.Tensor, pool: int) -> torch.Tensor:
    """The log-probabilities of each block's states given ``v``: its units on, then "all off" (last)."""
    return torch.log_softmax(with_off_state(pre, pool), dim=-1)


def unit_probabilities(pre: torch.Tensor, pool: int) -> torch.Tensor:
    """``p(h_u = 1 | v)`` for every hidden unit, maps shaped as ``pre``."""
    return probabilities_and_log_partition(pre, pool)[0]


def probabilities_and_log_partition(pre: torch.Tensor, pool: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """:func:`unit_probabilities` and :func:`log_partition` (summed over the images) from one softmax."""
    states = log_states(pre, pool)
    return from_blocks(states[..., :-1].exp(), pool, pre.shape[2:]), -states[..., -1].sum()


def pooled_probabilities(pre: torch.Tensor, pool: int) -> torch.Tensor:
    """``p(pool on | v) = 1 - p(pool off | v)`` per block: the code passed up, ``[N, F, rows, columns]``."""
    return -torch.expm1(log_states(pre, pool)[..., -1])


def log_partition(pre: torch.Tensor, pool: int) -> torch.Tensor:
    """``sum_B log(1 + sum_{u in B} exp(I_u)) = -sum_B log p(pool off | v)`` per image: the free energy's
    hidden term."""
    return -log_states(pre, pool)[..., -1].sum((1, 2, 3))


def off_probabilities(h: torch.Tensor, pool: int) -> torch.Tensor:
    """``1 - sum_{u' in B} p(h_u' = 1 | v)`` broadcast to every unit of its block (``1 - h`` at ``pool = 1``).

    ``d p(h_u) / d I_u' = p(h_u) (1[u = u'] - p(h_u'))``, so a cost that depends on the units
    through their sum (a map's mean activation) has the slope ``p(h_u) * off`` in ``I_u``.
    """
    blocks = to_blocks(h, pool, 0.0)
    off = (1 - blocks.sum(-1, keepdim=True)).expand_as(blocks)
    return from_blocks(off, pool, h.shape[2:])


def sample_units(h: torch.Tensor, pool: int) -> torch.Tensor:
    """A binary sample of the hidden maps from their probabilities ``h``: at most one unit on per block."""
    blocks = to_blocks(h, pool, 0.0)
    upper = blocks.cumsum(-1)
    lower = upper - blocks
    u = torch.rand(blocks.shape[:-1] + (1,), dtype=torch.float32, device=h.device).to(h.dtype)
    return from_blocks(((lower <= u) & (u < upper)).to(h.dtype), pool, h.shape[2:])


class ProbabilisticMaxPool(nn.Module):
    """Pre-activation maps to ``p(pool on | v)`` per block: the crbm's code, as a module of a CNN body."""

    def __init__(self, pool: int):
        super().__init__()
        self.pool = pool

    def forward(self, pre: torch.Tensor) -> torch.Tensor:
        return pooled_probabilities(pre, self.pool)

    def extra_repr(self) -> str:
        return f"pool={self.pool}"
