"""Augmentation of images during fine-tuning: ``--augment none|shift|crop-flip``, and the strong
perturbation of ``--semi consistency``.

* ``shift``: each image moved by up to ``round(H / 14)`` pixels in each direction (2 on 28 x 28,
  1 on the 8 x 8 digits), the border repeated: a shifted digit or garment is the same class;
* ``crop-flip``: random crops from the image padded by ``round(H / 8)`` (4 on 32 x 32, as for
  CIFAR) and horizontal flips, for natural images;
* :meth:`Augment.strong` (the strongly perturbed view of FixMatch, Sohn et al. 2020): the same
  kind with twice the shift, then Cutout (DeVries & Taylor 2017; FixMatch applies it to every
  strong view): a square of side up to half the image, at a random centre, set to 0, the mean of
  standardised data. FixMatch adds RandAugment's colour operations, which do not apply to one
  grey channel; they are not used.

Every image of a batch draws its own offsets, flip and square, in one batched operation on the
batch's device, from torch's generator (the cell's seed makes them reproducible). torchvision's
``transforms.v2`` draws one set of parameters per call, so it transforms a batch image by image,
many times slower than ``shift`` here (measured: ``examples/benchmarks/design_notes.md``), and
``--semi consistency`` perturbs three batches a step.
Test and validation images are never augmented: only the batches a stage trains on pass here.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from pretrain.core.errors import LayerwiseError, UsageMistake

from .schedule import AUGMENTS


def random_shift(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Each image of ``x`` [N, C, H, W] cut from itself padded by ``pad`` (border repeated) at a random offset."""
    n, _, height, width = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    offsets = torch.randint(0, 2 * pad + 1, (2, n, 1), device=x.device)
    rows = offsets[0] + torch.arange(height, device=x.device)  # [N, H]
    cols = offsets[1] + torch.arange(width, device=x.device)   # [N, W]
    images = torch.arange(n, device=x.device)[:, None, None]
    return padded[images, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)  # [N, H, W, C] -> [N, C, H, W]


def random_flip(x: torch.Tensor) -> torch.Tensor:
    """Each image of ``x`` [N, C, H, W] mirrored left-right with probability 1/2."""
    flip = torch.rand(len(x), device=x.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def cutout(x: torch.Tensor) -> torch.Tensor:
    """Each image of ``x`` [N, C, H, W] with a square of side uniform in [1, H/2] around a random centre set to 0."""
    n, _, height, width = x.shape
    device = x.device
    side = torch.randint(1, max(2, height // 2 + 1), (n, 1), device=device)
    centre_row = torch.randint(0, height, (n, 1), device=device)
    centre_col = torch.randint(0, width, (n, 1), device=device)
    rows, cols = torch.arange(height, device=device), torch.arange(width, device=device)
    inside_rows = (rows >= centre_row - side // 2) & (rows < centre_row - side // 2 + side)  # [N, H]
    inside_cols = (cols >= centre_col - side // 2) & (cols < centre_col - side // 2 + side)  # [N, W]
    return x.masked_fill((inside_rows[:, :, None] & inside_cols[:, None, :])[:, None], 0.0)


class Augment:
    """Random per-image transforms of preprocessed batches: ``[N, C, H, W]`` maps, or flat rows of
    images shaped ``image_shape`` = (H, W, C) (transformed as images and flattened back)."""

    def __init__(self, kind: str, image_shape: Tuple[int, int, int], strength: int = 1, erase: bool = False):
        self.kind, self.image_shape = kind, tuple(image_shape)
        self.strength, self.erase = strength, erase
        height = image_shape[0]
        self.pad = strength * max(1, round(height / (14 if kind == "shift" else 8)))

    def strong(self) -> "Augment":
        """The strongly perturbed view of FixMatch for this kind: twice the shift, then Cutout."""
        return Augment(self.kind, self.image_shape, strength=2, erase=True)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.ndim == 2
        if flat:
            height, width, channels = self.image_shape
            x = x.reshape(len(x), height, width, channels).permute(0, 3, 1, 2)
        out = random_shift(x, self.pad)
        if self.kind == "crop-flip":
            out = random_flip(out)
        if self.erase:
            out = cutout(out)
        return out.permute(0, 2, 3, 1).reshape(len(out), -1) if flat else out

    def __repr__(self) -> str:
        return f"Augment({self.kind!r}, {self.image_shape}, strength={self.strength}, erase={self.erase})"


def make_augment(kind: str, image_shape: Optional[Tuple[int, ...]]) -> Optional[Augment]:
    """The augmentation of ``--augment KIND`` for images shaped ``image_shape`` (None for ``none``)."""
    if kind not in AUGMENTS:
        raise LayerwiseError(f"augment={kind!r}: use {', '.join(AUGMENTS)}")
    if kind == "none":
        return None
    if image_shape is None:
        raise UsageMistake(f"augment={kind} transforms images, and this data is not images: use augment=none")
    return Augment(kind, tuple(image_shape) if len(image_shape) == 3 else (*image_shape, 1))
