"""Input adaptation for ImageNet backbones: raw images in, the weights' own input transform applied.

Inputs are adapted inside the first group, batch by batch, so that a data set
is held at its own size: :class:`ImagesToTensor` maps raw pixels to [0, 1];
:class:`ImageInput` resizes to the weights' crop size (or ``input_size``) with
antialiased bilinear interpolation of the whole image (no crop: small images
keep their borders), repeats grayscale to three channels and applies the
normalisation of the weights' own transforms. With ``adapt_first_conv`` the
first convolution takes one channel instead, its filters summed over RGB
(timm's ``adapt_input_conv``); the normalisation is then the mean over RGB.
"""
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pretrain.core.errors import LayerwiseError

from .weights import default_weights, is_torchvision_weights

# GoogLeNet and Inception v3 are trained on inputs scaled to [-1, 1]: with
# torchvision's weights their ``transform_input`` maps ImageNet-normalised inputs
# there, so normalising with mean = std = 0.5 gives the network the same numbers.
HALF_NORMALISED = ("googlenet", "inception_v3")


def image_value_range(images: np.ndarray) -> Optional[List[float]]:
    """(black, white) of raw images: None (the default) for integer images (0..255) and
    float images within [0, 1], else their (min, max), as ``pretrain``'s unit scaling does."""
    lo, hi = float(images.min()), float(images.max())
    if images.dtype.kind in "iu" or (lo >= 0 and hi <= 1):
        return None
    return [lo, hi if hi > lo else lo + 1.0]


def check_images(image_shape: Optional[Tuple[int, ...]], adapt_first_conv: bool) -> None:
    if image_shape is None or len(image_shape) != 3:
        raise LayerwiseError("an image backbone needs images; DATA is tabular: use a pretrained stack instead")
    channels = image_shape[2]
    if channels not in (1, 3):
        raise LayerwiseError(f"images with {channels} channels: an ImageNet backbone takes grayscale or RGB images")
    if adapt_first_conv and channels != 1:
        raise LayerwiseError("adapt_first_conv=True is for grayscale images; these are RGB: leave it out")


def sum_rgb_filters(model: nn.Module) -> None:
    """Make the first convolution take one channel: its filters summed over R, G, B.

    A gray image ``g`` repeated to RGB gives ``sum_c W_c * g = (sum_c W_c) * g``,
    so the summed filter responds to gray input as the RGB filter does to its
    repetition (timm's ``adapt_input_conv``), up to the per-channel
    normalisation, which becomes one mean and one std (those of R, G, B averaged).
    """
    conv = next(module for module in model.modules() if isinstance(module, nn.Conv2d))
    conv.weight = nn.Parameter(conv.weight.detach().sum(dim=1, keepdim=True))
    conv.in_channels = 1


def input_adapter(name: str, weights, image_shape: Tuple[int, int, int], input_size: Optional[int],
                  adapt_first_conv: bool) -> "ImageInput":
    """The weights' own input transform; local files and ``none`` take that of the DEFAULT weights."""
    transforms = (weights if is_torchvision_weights(weights) else default_weights(name)).transforms()
    size = int(input_size or transforms.crop_size[0])
    if size < 1:
        raise LayerwiseError(f"input_size={size}: give a positive number of pixels, e.g. 64 or 224")
    mean, std = normalisation(name, transforms, adapt_first_conv)
    return ImageInput(image_shape[:2], size, mean, std, repeat_gray=image_shape[2] == 1 and not adapt_first_conv)


def normalisation(name: str, transforms, one_channel: bool) -> Tuple[Tuple[float, ...], Tuple[float, ...]]:
    mean, std = ((0.5,) * 3, (0.5,) * 3) if name in HALF_NORMALISED else (tuple(transforms.mean), tuple(transforms.std))
    if one_channel:
        return (float(np.mean(mean)),), (float(np.mean(std)),)
    return mean, std


class ImagesToTensor:
    """Raw images ``[N,H,W]`` or ``[N,H,W,C]`` -> float32 ``[N,C,H,W]`` in [0, 1].

    Pixels map linearly from ``value_range`` = (black, white) to [0, 1] and are
    clipped there; by default integer images span 0..255 and float images 0..1.
    Resizing and normalising wait for :class:`ImageInput`, batch by batch.
    """

    def __init__(self, image_shape: Tuple[int, int, int], value_range: Optional[Sequence[float]] = None):
        self.image_shape = tuple(int(d) for d in image_shape)
        self.value_range = None if value_range is None else [float(v) for v in value_range]

    def __call__(self, raw) -> torch.Tensor:
        raw = np.asarray(raw)
        height, width, channels = self.image_shape
        if raw.shape[1:] not in ((height, width, channels), (height, width) if channels == 1 else None):
            raise LayerwiseError(f"images shaped {raw.shape[1:]} do not fit a backbone set up for "
                                 f"{self.image_shape}: use data of that shape")
        lo, hi = self.value_range or ((0.0, 255.0) if raw.dtype.kind in "iu" else (0.0, 1.0))
        if self.value_range is None and raw.dtype.kind == "f" and raw.size and (raw.min() < 0 or raw.max() > 1):
            raise LayerwiseError(f"float images range over [{raw.min():g}, {raw.max():g}], not [0, 1]: give "
                                 "value_range=image_value_range(training images) or uint8 images")
        x = torch.from_numpy(raw.reshape(len(raw), height, width, channels)).permute(0, 3, 1, 2).float()
        return ((x - lo) / (hi - lo)).clamp_(0.0, 1.0).contiguous()


class ImageInput(nn.Module):
    """The weights' input transform on a batch: resize, gray to RGB, ``(x - mean) / std``."""

    def __init__(self, image_size: Sequence[int], size: int, mean: Sequence[float], std: Sequence[float],
                 repeat_gray: bool):
        super().__init__()
        self.size = size
        self.resize = tuple(image_size) != (size, size)
        self.repeat_gray = repeat_gray
        # Not persistent: rebuilt from the recipe, so state dicts hold only weights.
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.resize:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)
        if self.repeat_gray:
            x = x.expand(-1, 3, -1, -1)
        return (x - self.mean) / self.std


class GlobalAveragePool(nn.Module):
    """``[N, C, H, W] -> [N, C]``: the mean over positions."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))
