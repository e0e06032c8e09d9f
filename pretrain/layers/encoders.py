"""Feature encoders over a dictionary, and pooling over a grid of image regions (Coates, Lee & Ng 2011).

For a whitened patch ``w`` and a dictionary ``D`` (rows ``d_k``, held by an ``nn.Linear``):

* triangle (k-means' "soft" encoder, their eq. 2): ``z_k = ||w - d_k||``,
  ``f_k = max(0, mean_j z_j - z_k)``: about half the features are zero, those of
  centroids farther than average;
* soft threshold (Coates & Ng 2011, "The importance of encoding versus
  training"): ``f_k = max(0, d_k . w - alpha)``.

Pooling (their s. 3.3) sums, or takes the maximum of, each feature over the
cells of a ``grid x grid`` split of the positions (2 x 2: the four quadrants),
cell ``i`` spanning positions ``[ceil(i L / grid), ceil((i + 1) L / grid))``.
"""
import math
from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import nn


def triangle(w: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """``max(0, mean_j z_j - z_k)`` with ``z_k = ||w - c_k||``, for ``w`` ``[..., d]`` and ``centroids`` ``[K, d]``."""
    flat = w.reshape(-1, w.shape[-1])
    # ||c||^2 - 2 w.c + ||w||^2 in place; no step overwrites what autograd keeps (a fine-tuned dictionary)
    squared = torch.addmm(centroids.pow(2).sum(1), flat, centroids.T, alpha=-2)
    z = squared.add_(flat.pow(2).sum(1, keepdim=True)).clamp_(min=0).sqrt()
    return (z.mean(1, keepdim=True) - z).clamp_(min=0).reshape(*w.shape[:-1], -1)


class Triangle(nn.Module):
    """The triangle code of the centroids that ``linear`` holds as its weight (its bias, if any, unused)."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.linear = linear

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return triangle(w, self.linear.weight)


class SoftThreshold(nn.Module):
    """``max(0, x - alpha)``: the soft threshold of a dictionary's responses ``x``."""

    def __init__(self, alpha: float):
        super().__init__()
        self.alpha = float(alpha)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x - self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


def region_edges(length: int, grid: int) -> List[int]:
    """The ``grid + 1`` boundaries of the cells that split ``length`` positions (``ceil(i L / grid)``)."""
    return [math.ceil(i * length / grid) for i in range(grid + 1)]


def cell_indicators(size: Tuple[int, int], grid: int, like: torch.Tensor) -> torch.Tensor:
    """``[grid^2, H W]``: row ``c`` is 1 at the positions of cell ``c`` (cells row by row), 0 elsewhere."""
    rows, columns = (torch.bucketize(torch.arange(length), torch.tensor(region_edges(length, grid)[1:]), right=True)
                     for length in size)
    cell = (rows[:, None] * grid + columns[None, :]).reshape(-1)
    return (cell[None, :] == torch.arange(grid * grid)[:, None]).to(like)


def region_pool(maps: torch.Tensor, grid: int, mode: str) -> torch.Tensor:
    """Channels-last feature maps ``[N, H, W, K]`` summed (``mode="sum"``) or maxed over each cell of a
    ``grid x grid`` split: ``[N, K, grid, grid]``.

    The sums are one product with :func:`cell_indicators` (much faster than summing slices of the maps).
    """
    n, height, width, features = maps.shape
    if mode == "sum":
        pooled = cell_indicators((height, width), grid, maps) @ maps.reshape(n, height * width, features)
        return pooled.transpose(1, 2).reshape(n, features, grid, grid)
    rows, columns = region_edges(height, grid), region_edges(width, grid)
    cells = [maps[:, rows[i]:rows[i + 1], columns[j]:columns[j + 1]].amax((1, 2))
             for i in range(grid) for j in range(grid)]
    return torch.stack(cells, -1).reshape(n, features, grid, grid)


class RegionPool(nn.Module):
    """:func:`region_pool` as a module: the last of a patch layer's encoder."""

    def __init__(self, grid: int, mode: str):
        super().__init__()
        self.grid, self.mode = grid, mode

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return region_pool(maps, self.grid, self.mode)

    def extra_repr(self) -> str:
        return f"grid={self.grid}, mode={self.mode}"
