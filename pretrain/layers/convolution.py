"""What every convolutional layer shares: the geometry of its maps, pooling and unpooling.

Not registered itself; ``cae`` and ``crbm`` subclass it (and are fine-tuned with its :class:`ConvDecoder`).
A layer of ``filters`` ``kernel x kernel`` filters sees images ``[N, C, H, W]``; its convolutions are
"same" (zero padding ``kernel // 2``) at ``stride`` S, so its hidden maps are
``[N, filters, ceil(H / S), ceil(W / S)]`` (the full size at the default S = 1)
and the code passed up is their ``pool x pool`` max-pool (Masci et al. 2011;
Lee et al. 2009 pool the same way, probabilistically). Going down, a code is
unpooled by copying each pooled value over its window (nearest-neighbour
upsampling), the inverse the decoder of a stacked convolutional autoencoder
learns to read, and the transposed convolution at the same stride returns
maps of the input's exact size (its ``output_padding`` restores the rows and
columns a stride leaves over).
"""
import math
from typing import Any, Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.grad import conv2d_weight

from ..core.errors import LayerwiseError, UsageMistake
from .base import Layer
from .options import Option, validate_options
from .plain import Decoder, holding


def check_kernel(kernel: int, owner: str) -> int:
    """Odd kernels only: "same" padding ``kernel // 2`` keeps the map's size only for odd ones."""
    if kernel % 2 == 0:
        raise LayerwiseError(f"{owner}: kernel={kernel}: use an odd kernel size (3, 5, 7): 'same' convolutions "
                             "need one")
    return kernel


#: The geometry options every convolutional kind declares.
CONV_OPTIONS = (
    Option("kernel", 5, "filter size (odd)", low=1, high=31, check=check_kernel),
    Option("pool", 2, "max-pooling window and stride of the code passed up (1: none)", low=1, high=8),
    Option("stride", 1, "step of the filters over the image (at most the kernel)", low=1, high=8),
)


class ImageInput:
    """What every kind that sees images ``(channels, *input_size)`` shares: its build from an input shape and
    its config (``input_shape``, ``filters``); the convolutional and the patch layers mix it in before ``Layer``."""

    @classmethod
    def for_input(cls, input_shape, units, input_range, **options):
        if len(input_shape) != 3:
            raise LayerwiseError(
                f"{cls.kind} is convolutional: it needs images or the maps of another convolutional layer, "
                f"not vectors of {math.prod(input_shape)}: put convolutional layers first, on image data")
        return cls(tuple(input_shape), units, **options)

    @classmethod
    def from_config(cls, config: Dict[str, Any]):
        return cls(tuple(config["input_shape"]), config["filters"], **config["options"])

    def config(self) -> Dict[str, Any]:
        return {**super().config(), "input_shape": list(self.input_shape), "filters": self.filters}

    @property
    def input_shape(self) -> Tuple[int, int, int]:
        return (self.channels, *self.input_size)


class ConvLayer(ImageInput, Layer):
    """A layer of ``filters`` convolutional filters over images shaped ``input_shape`` = (C, H, W)."""

    convolutional = True

    def __init__(self, input_shape: Tuple[int, int, int], filters: int, **options):
        shape = tuple(int(d) for d in input_shape)
        if len(shape) != 3 or min(shape) < 1:
            raise LayerwiseError(f"{self.kind}: input_shape={input_shape!r}: must be (channels, height, width)")
        channels, height, width = shape
        if isinstance(filters, bool) or not isinstance(filters, int) or filters < 1:
            raise LayerwiseError(f"{self.kind}: filters={filters!r}: must be an int >= 1")
        maps, code = self.geometry(shape, options, self.kind)
        checked = validate_options(self.kind, self.options, options)
        stride, kernel = checked["stride"], checked["kernel"]
        self.map_shape, self.code_shape = (filters, *maps), (filters, *code)
        super().__init__(channels * height * width, math.prod(self.code_shape), **options)
        self.channels, self.filters = channels, filters
        self.padding, self.stride = kernel // 2, stride
        #: the rows and columns a strided transposed convolution adds back to reach ``height x width``
        self.output_padding = tuple(size - 1 - (mapped - 1) * stride
                                    for size, mapped in zip((height, width), self.map_shape[1:]))
        self.input_size = (height, width)

    @classmethod
    def check_options(cls, options: Dict[str, Any]) -> None:
        """A stride past the kernel would leave pixels that no filter sees."""
        checked = validate_options(cls.kind, cls.options, options)
        if checked["stride"] > checked["kernel"]:
            raise LayerwiseError(f"{cls.kind}: stride={checked['stride']} exceeds kernel={checked['kernel']}: some "
                                 f"pixels would reach no filter; use a stride of at most {checked['kernel']}")

    @classmethod
    def geometry(cls, input_shape: Tuple[int, int, int], options: Dict[str, Any], owner: str):
        """``(H', W')`` of the hidden maps and ``(h, w)`` of the code for images ``(C, H, W)``; ``owner``: who
        the error names.

        Refused in one line, since each runs but learns what a smaller choice would: maps of 1 x 1 (a
        convolution there is a dense layer), a kernel whose outer taps see only the zero padding
        wherever it is (wider than ``2 max(H, W) - 1``) and a pool wider than the maps (global pooling
        is a pool of the maps' size).
        """
        cls.check_options(options)  # before they divide
        checked = validate_options(cls.kind, cls.options, options)
        pool, stride, kernel = checked["pool"], checked["stride"], checked["kernel"]
        height, width = input_shape[1:]
        if height == width == 1:
            raise UsageMistake(f"{owner}: its input is maps of 1x1, where a convolution is a dense layer: put a "
                               "dense layer (rbm, ae) there, or pool less below it")
        widest = 2 * max(height, width) - 1  # its outer taps still reach a pixel from the farthest position
        if kernel > widest:
            raise UsageMistake(f"{owner}: kernel={kernel} is too wide for its {height}x{width} input (its outer taps "
                               f"would see only the zero padding): use a kernel of at most {widest}")
        maps = (math.ceil(height / stride), math.ceil(width / stride))
        if pool > max(maps):
            raise UsageMistake(f"{owner}: pool={pool} is larger than its {maps[0]}x{maps[1]} maps: use a pool of "
                               f"at most {max(maps)}")
        return maps, (math.ceil(maps[0] / pool), math.ceil(maps[1] / pool))

    @property
    def output_shape(self) -> Tuple[int, int, int]:
        return self.code_shape

    @property
    def row_bytes(self) -> int:
        """The input or the hidden maps before pooling, whichever is wider, in bytes per image."""
        return max(self.n_visible, math.prod(self.map_shape)) * self.weight.element_size()

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
        """``weight * v + bias``: the hidden pre-activation maps ``[N, filters, H / S, W / S]``."""
        return F.conv2d(v, weight, bias, stride=self.stride, padding=self.padding)

    def transpose(self, h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """The top-down pass ``weight^T * h + bias`` (a transposed convolution): maps ``[N, C, H, W]``."""
        return F.conv_transpose2d(h, weight, bias, stride=self.stride, padding=self.padding,
                                  output_padding=self.output_padding)

    def correlate(self, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """``<v h^k>`` summed over images and positions, shaped like the filters: the gradient of
        ``sum_k h^k . (W^k * v)`` with respect to ``W`` (what an RBM's phases compare)."""
        return conv2d_weight(v, self.weight.shape, h, stride=self.stride, padding=self.padding)

    def pool(self, h: torch.Tensor) -> torch.Tensor:
        """Max-pool the hidden maps into the code passed up."""
        pool = self.hparams["pool"]
        return F.max_pool2d(h, pool, ceil_mode=True) if pool > 1 else h

    def unpool(self, code: torch.Tensor) -> torch.Tensor:
        """A code back to the hidden maps' size, each pooled value copied over its window (:func:`unpool`)."""
        return unpool(code, self.hparams["pool"], self.map_shape[1:])

    def unpool_transpose(self, code: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """``transpose(unpool(code))``, the way down from a pooled code (:func:`unpool_transposed`)."""
        return unpool_transposed(code, weight, bias, self.hparams["pool"], self.map_shape[1:], self.stride,
                                 self.padding, self.output_padding)

    def conv_modules(self, weight: torch.Tensor, bias: torch.Tensor, *after: nn.Module) -> nn.Sequential:
        """``Conv2d`` (a copy of ``weight``, ``bias``) and the modules ``after`` it: what fine-tuning sees."""
        conv = holding(nn.Conv2d, {"weight": weight, "bias": bias}, self.channels, self.filters, self.hparams["kernel"],
                       stride=self.stride, padding=self.padding)
        return nn.Sequential(conv, *after)

    def max_pooled(self, activation: nn.Module) -> Tuple[nn.Module, ...]:
        """``activation`` and the ``MaxPool2d`` of the code (none at ``pool=1``), to follow the convolution."""
        pool = self.hparams["pool"]
        return (activation, *([nn.MaxPool2d(pool, ceil_mode=True)] if pool > 1 else []))

    def conv_decoder(self, sigmoid: bool, weight: Optional[torch.Tensor] = None) -> "ConvDecoder":
        """The :class:`ConvDecoder` of this layer's geometry, reading ``weight`` (untied) or the encoder's filters."""
        return ConvDecoder(self.visible_bias, sigmoid, weight, self.hparams["pool"], self.map_shape[1:],
                           self.output_padding)


class ConvDecoder(Decoder):
    """A conv layer's decoder for fine-tuning: the code unpooled to the hidden maps' size (:func:`unpool`, as the
    layer decodes), then the transposed convolution of its fine-tuned ``Conv2d``'s filters (or a bank of its
    own) plus one bias per input channel, through the sigmoid where ``sigmoid``."""

    def __init__(self, visible_bias: torch.Tensor, sigmoid: bool, weight: Optional[torch.Tensor], pool: int,
                 map_size: Sequence[int], output_padding: Sequence[int]):
        super().__init__(visible_bias, sigmoid, weight)
        self.pool, self.map_size, self.output_padding = pool, tuple(map_size), tuple(output_padding)

    def logits(self, h: torch.Tensor, encoder: nn.Conv2d) -> torch.Tensor:
        weight = self.weight if self.weight is not None else encoder.weight
        return unpool_transposed(h, weight, self.visible_bias, self.pool, self.map_size, encoder.stride[0],
                                 encoder.padding[0], self.output_padding)


def unpool(code: torch.Tensor, pool: int, size: Tuple[int, int]) -> torch.Tensor:
    """Each value of a ``pool x pool`` max-pooled ``code`` copied over its window, cropped to the maps' ``size``
    (the last windows of a size that ``pool`` does not divide are partial, as ``ceil_mode`` pooled them)."""
    if pool == 1:
        return code
    return F.interpolate(code, scale_factor=pool, mode="nearest")[..., :size[0], :size[1]]


def unpool_transposed(code: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], pool: int,
                      size: Tuple[int, int], stride: int, padding: int, output_padding: Sequence[int]) -> torch.Tensor:
    """``conv_transpose2d(unpool(code), weight, bias)`` at ``stride``, ``padding`` and ``output_padding``.

    Unpooling is itself a transposed convolution (each channel by a ``pool x pool`` box of ones, at stride
    ``pool``), and two transposed convolutions compose into one: of the code, at stride ``pool``, by the
    filters convolved with the box (``k + pool - 1`` wide). Where the maps are whole windows at stride 1
    (an odd ``k`` and "same" padding), that single convolution reads the code at its own size instead of
    the unpooled maps: the same sums, in another order (equal to float rounding), several times faster
    forward and backward for a CAE's decoder. Elsewhere (partial windows, strides) the two steps run as written.
    """
    if pool == 1 or stride != 1 or size[0] % pool or size[1] % pool:
        return F.conv_transpose2d(unpool(code, pool, size), weight, bias, stride=stride, padding=padding,
                                  output_padding=tuple(output_padding))
    kernel = weight.shape[-1]
    wide = F.pad(weight.reshape(-1, 1, kernel, kernel), (pool - 1,) * 4)
    boxed = F.conv2d(wide, weight.new_ones(1, 1, pool, pool))  # sum of the filters shifted over each window
    return F.conv_transpose2d(code, boxed.view(*weight.shape[:2], *boxed.shape[-2:]), bias, stride=pool,
                              padding=padding)
