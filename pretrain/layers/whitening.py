"""Image patches, each brightness- and contrast-normalised, then ZCA-whitened (Coates, Lee & Ng 2011, s. 3).

A patch ``p`` is the ``d = C k^2`` values of a ``k x k`` window of every
channel, in ``F.unfold``'s order (channel, row, column). Normalisation takes
away its brightness and contrast::

    z = (p - mean(p)) / sqrt(var(p) + eps_norm)        (var over the d values, unbiased)

(Coates et al. add 10 to the variance of 8-bit pixels: ``10 / 255^2`` on the
[0, 1] scale, the default). Whitening decorrelates the normalised patches::

    Sigma = cov(z) = U diag(lambda) U^T,   W = U diag(1 / sqrt(lambda + eps_zca)) U^T,   w = W (z - mu)

with ``mu`` the normalised patches' mean and ``eps_zca`` about 0.1 (their
variances are about 1). ``W`` is symmetric, so whitened patches stay in the
pixels' layout and a dictionary learned on them draws as image tiles; without
whitening (``whiten=false``) ``W`` is the identity and ``mu`` zero. Without it
learned filters come out as low-frequency blobs (their Fig. 2), and k-means
loses most (their Fig. 3).

:class:`WhitenPatches` computes ``w`` at every position of whole images, the
normalisation and whitening folded into one module of the encoder, so a
stack always encodes images the way its patches were trained.
"""
import math
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..core.errors import LayerwiseError

#: Coates et al.'s 10 added to the variance of a patch of 8-bit pixels, on the [0, 1] scale (10 / 255^2).
NORM_EPS = 1.538e-4
#: patches gathered per chunk while sampling (an index tensor of chunk x d int64 values).
SAMPLE_CHUNK = 20000


def positions(size: Tuple[int, int], patch: int, stride: int) -> Tuple[int, int]:
    """Rows and columns of patch positions ("valid": every patch inside the image) at ``stride``."""
    return tuple((length - patch) // stride + 1 for length in size)


def sample_patches(x: torch.Tensor, count: int, patch: int) -> torch.Tensor:
    """``count`` patches ``[count, C patch^2]`` of images ``x`` ``[N, C, H, W]``, each from a random image and
    position (with replacement), drawn from torch's global random stream; ``x`` may be memory-mapped."""
    n, channels, height, width = x.shape
    images = torch.randint(n, (count,))
    rows, columns = torch.randint(height - patch + 1, (count,)), torch.randint(width - patch + 1, (count,))
    window, channel = torch.arange(patch, device=x.device), torch.arange(channels, device=x.device)
    out = torch.empty(count, channels * patch * patch, dtype=x.dtype, device=x.device)
    for start in range(0, count, SAMPLE_CHUNK):
        part = slice(start, start + SAMPLE_CHUNK)
        chosen = x[images[part].to(x.device)]  # [m, C, H, W]: a gather of whole images, then of their windows
        r = (rows[part, None].to(x.device) + window)[:, None, :, None]
        c = (columns[part, None].to(x.device) + window)[:, None, None, :]
        m = torch.arange(len(chosen), device=x.device)[:, None, None, None]
        out[part] = chosen[m, channel[None, :, None, None], r, c].reshape(len(chosen), -1)
    return out


def normalise(p: torch.Tensor, eps: float) -> torch.Tensor:
    """``(p - mean(p)) / sqrt(var(p) + eps)`` over the last axis (each patch's own values)."""
    mean = p.mean(-1, keepdim=True)
    centred = p - mean
    variance = centred.pow(2).sum(-1, keepdim=True) / (p.shape[-1] - 1)
    return centred / torch.sqrt(variance + eps)


def fit_whitening(z: torch.Tensor, eps: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(mu, W)`` of the ZCA transform of normalised patches ``z`` ``[n, d]`` (float64 sums, float32 out).

    A covariance without variance (every patch flat) cannot be whitened: one line says so.
    """
    z = z.double()
    mean = z.mean(0)
    centred = z - mean
    covariance = centred.T @ centred / max(len(z) - 1, 1)
    if float(covariance.trace()) < 1e-8 * len(covariance):
        raise LayerwiseError("the patches are constant (every patch one flat colour): there is nothing to "
                             "whiten or learn; use images with texture, or a smaller norm_eps")
    values, vectors = torch.linalg.eigh(covariance)
    matrix = (vectors * (values.clamp_min(0) + eps).rsqrt()) @ vectors.T
    return mean.float(), matrix.float()


def whiten(z: torch.Tensor, mean: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """``W (z - mu)`` for normalised patches ``z`` ``[..., d]`` (``W`` symmetric)."""
    return (z - mean) @ matrix


class WhitenPatches(nn.Module):
    """Images ``[N, C, H, W]`` to the normalised, whitened patch at every position, channels last:
    ``[N, H', W', d]`` with ``H' = (H - patch) // stride + 1`` (see the module docstring)."""

    def __init__(self, input_shape: Tuple[int, int, int], patch: int, stride: int, norm_eps: float,
                 mean: torch.Tensor, matrix: torch.Tensor):
        super().__init__()
        self.input_shape, self.patch, self.stride, self.norm_eps = tuple(input_shape), patch, stride, norm_eps
        self.register_buffer("mean", mean.detach().clone())
        self.register_buffer("matrix", matrix.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[1:]) != self.input_shape:
            raise LayerwiseError(f"images shaped {list(x.shape[1:])} (channels, height, width) reach a layer "
                                 f"whitened for {list(self.input_shape)}: use images of the size and channels "
                                 "it was pretrained on")
        rows, columns = positions(self.input_shape[1:], self.patch, self.stride)
        patches = F.unfold(x, self.patch, stride=self.stride).transpose(1, 2)  # [N, H' W', d]
        w = whiten(normalise(patches, self.norm_eps), self.mean, self.matrix)
        return w.reshape(len(x), rows, columns, -1)

    def extra_repr(self) -> str:
        return f"patch={self.patch}, stride={self.stride}, d={math.prod(self.mean.shape)}"
