"""Augmentation of the labeled images during fine-tuning: ``--augment none|shift|crop-flip``.

* ``shift``: each image moved by up to ``round(H / 14)`` pixels in each direction (2 on 28 x 28,
  1 on the 8 x 8 digits), the border repeated: a shifted digit or garment is the same class;
* ``crop-flip``: random crops from the image padded by ``round(H / 8)`` (4 on 32 x 32, as for
  CIFAR) and horizontal flips, for natural images.

Built from torchvision's ``transforms.v2``; those draw one set of parameters per call, so each
image of a batch is transformed by a call of its own (labeled batches are small). Test and
validation images are never augmented: only the batches a stage trains on pass through here.
"""
from typing import Optional, Tuple

import torch

from pretrain.core.errors import LayerwiseError

from .schedule import AUGMENTS



class Augment:
    """Random per-image transforms of preprocessed batches: ``[N, C, H, W]`` maps, or flat rows of
    images shaped ``image_shape`` = (H, W, C) (transformed as images and flattened back)."""

    def __init__(self, kind: str, image_shape: Tuple[int, int, int]):
        from torchvision.transforms import v2  # only where augmentation is asked for
        height, width, _ = image_shape
        self.kind, self.image_shape = kind, tuple(image_shape)
        if kind == "shift":
            pad = max(1, round(height / 14))
            steps = [v2.RandomCrop((height, width), padding=pad, padding_mode="edge")]
        else:
            pad = max(1, round(height / 8))
            steps = [v2.RandomCrop((height, width), padding=pad, padding_mode="edge"), v2.RandomHorizontalFlip()]
        self.transform = v2.Compose(steps)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.ndim == 2
        if flat:
            height, width, channels = self.image_shape
            x = x.reshape(len(x), height, width, channels).permute(0, 3, 1, 2)
        out = torch.stack([self.transform(image) for image in x])
        return out.permute(0, 2, 3, 1).reshape(len(out), -1) if flat else out

    def __repr__(self) -> str:
        return f"Augment({self.kind!r}, {self.image_shape})"


def make_augment(kind: str, image_shape: Optional[Tuple[int, ...]]) -> Optional[Augment]:
    """The augmentation of ``--augment KIND`` for images shaped ``image_shape`` (None for ``none``)."""
    if kind not in AUGMENTS:
        raise LayerwiseError(f"augment={kind!r}: use {', '.join(AUGMENTS)}")
    if kind == "none":
        return None
    if image_shape is None:
        raise LayerwiseError(f"augment={kind} transforms images, and this data is not images: use augment=none")
    return Augment(kind, tuple(image_shape) if len(image_shape) == 3 else (*image_shape, 1))
