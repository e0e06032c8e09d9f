"""What every convolutional layer shares: the geometry of its maps, pooling and unpooling.

Not registered itself; ``cae`` and ``crbm`` subclass it. A layer of ``filters``
``kernel x kernel`` filters sees images ``[N, C, H, W]``; its convolutions are
"same" (zero padding ``kernel // 2``, stride 1), so its hidden maps are
``[N, filters, H, W]`` and the code passed up is their ``pool x pool`` max-pool
``[N, filters, ceil(H / pool), ceil(W / pool)]`` (Masci et al. 2011; Lee et al.
2009 pool the same way, probabilistically). Going down, a code is unpooled by
copying each pooled value over its window (nearest-neighbour upsampling), the
inverse the decoder of a stacked convolutional autoencoder learns to read.
"""
import math
from typing import Any, Dict, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..core.errors import LayerwiseError
from .base import Layer, holding
from .options import Option, validate_options


def check_kernel(kernel: int) -> int:
    """Odd kernels only: "same" padding ``kernel // 2`` keeps the map's size only for odd ones."""
    if kernel % 2 == 0:
        raise LayerwiseError(f"kernel={kernel}: use an odd kernel size (3, 5, 7): 'same' convolutions need one")
    return kernel


#: The geometry options every convolutional kind declares.
CONV_OPTIONS = (
    Option("kernel", 5, "filter size (odd)", low=1, high=31, check=check_kernel),
    Option("pool", 2, "max-pooling window and stride of the code passed up (1: none)", low=1, high=8),
)


class ConvLayer(Layer):
    """A layer of ``filters`` convolutional filters over images shaped ``input_shape`` = (C, H, W)."""

    convolutional = True

    def __init__(self, input_shape: Tuple[int, int, int], filters: int, **options):
        shape = tuple(int(d) for d in input_shape)
        if len(shape) != 3 or min(shape) < 1:
            raise LayerwiseError(f"{self.kind}: input_shape={input_shape!r}: must be (channels, height, width)")
        channels, height, width = shape
        if isinstance(filters, bool) or not isinstance(filters, int) or filters < 1:
            raise LayerwiseError(f"{self.kind}: filters={filters!r}: must be an int >= 1")
        pool = validate_options(self.kind, self.options, options)["pool"]  # checked before it divides
        self.map_shape = (filters, height, width)
        self.code_shape = (filters, math.ceil(height / pool), math.ceil(width / pool))
        super().__init__(channels * height * width, math.prod(self.code_shape), **options)
        self.channels, self.filters = channels, filters
        self.padding = self.hparams["kernel"] // 2

    @classmethod
    def for_input(cls, input_shape, units, input_range, **options) -> "ConvLayer":
        if len(input_shape) != 3:
            raise LayerwiseError(
                f"{cls.kind} is convolutional: it needs images or the maps of another convolutional layer, "
                f"not vectors of {math.prod(input_shape)}: put convolutional layers first, on image data")
        return cls(tuple(input_shape), units, **options)

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "ConvLayer":
        return cls(tuple(config["input_shape"]), config["filters"], **config["options"])

    def config(self) -> Dict[str, Any]:
        return {**super().config(), "input_shape": list(self.input_shape), "filters": self.filters}

    @property
    def input_shape(self) -> Tuple[int, int, int]:
        return (self.channels, *self.map_shape[1:])

    @property
    def output_shape(self) -> Tuple[int, int, int]:
        return self.code_shape

    @property
    def area(self) -> int:
        """Positions in one hidden map (H x W)."""
        return self.map_shape[1] * self.map_shape[2]

    def init_weight(self, *shape: int) -> nn.Parameter:
        """Glorot & Bengio (2010) uniform filters, fans counted over the kernel window."""
        receptive = self.hparams["kernel"] ** 2
        bound = math.sqrt(6 / ((self.channels + self.filters) * receptive))
        return nn.Parameter(torch.empty(*shape).uniform_(-bound, bound))

    def convolve(self, v: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """``weight * v + bias``: the hidden pre-activation maps ``[N, filters, H, W]``."""
        return F.conv2d(v, weight, bias, padding=self.padding)

    def transpose(self, h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """The top-down pass ``weight^T * h + bias`` (a transposed convolution): maps ``[N, C, H, W]``."""
        return F.conv_transpose2d(h, weight, bias, padding=self.padding)

    def pool(self, h: torch.Tensor) -> torch.Tensor:
        """Max-pool the hidden maps into the code passed up."""
        pool = self.hparams["pool"]
        return F.max_pool2d(h, pool, ceil_mode=True) if pool > 1 else h

    def unpool(self, code: torch.Tensor) -> torch.Tensor:
        """A code back to the hidden maps' size, each pooled value copied over its window."""
        if self.hparams["pool"] == 1:
            return code
        return F.interpolate(code, size=self.map_shape[1:], mode="nearest")

    def conv_modules(self, weight: torch.Tensor, bias: torch.Tensor, activation: nn.Module) -> nn.Sequential:
        """``Conv2d`` (a copy of ``weight``, ``bias``) + ``activation`` + ``MaxPool2d``: what fine-tuning sees."""
        conv = holding(nn.Conv2d, {"weight": weight, "bias": bias}, self.channels, self.filters, self.hparams["kernel"],
                       padding=self.padding)
        pool = self.hparams["pool"]
        return nn.Sequential(conv, activation, *([nn.MaxPool2d(pool, ceil_mode=True)] if pool > 1 else []))
