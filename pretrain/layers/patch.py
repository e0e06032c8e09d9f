"""Convolutional layers learned from whitened image patches: the single-layer pipeline of Coates, Lee & Ng 2011.

A patch layer of ``K`` features over images ``[N, C, H, W]``:

1. *trains* a dense learner (its dictionary of ``K`` atoms of ``d = C k^2``
   values) on ``patches`` random ``k x k`` patches of the training images,
   each brightness- and contrast-normalised and the set ZCA-whitened
   (:mod:`pretrain.layers.whitening`; ``whiten=false`` skips the ZCA);
2. *encodes* an image at every position ``stride`` apart ("valid": every
   patch inside the image), by the same normalisation and whitening folded
   into the encoder, then the learner's code (``encode=natural``: a sparse
   RBM's hidden probabilities, an autoencoder's code, k-means' triangle, the
   sampled dictionary's soft threshold) or one chosen (``triangle``, ``soft``
   with ``alpha``; :mod:`pretrain.layers.encoders`);
3. *pools* each feature over a ``grid x grid`` split of the positions
   (``pool=sum``, their choice; or ``max``): codes ``[N, K, grid, grid]``.

The kinds: ``patch-kmeans`` (the paper's best, 77.9 % on CIFAR-10 with 1,600
features), ``patch-grbm`` (sparse Gaussian RBM, 72.4 %), ``patch-ae`` (sparse
autoencoder, 73.4 %) and ``patch-sampled`` (random whitened patches as the
dictionary, Coates & Ng 2011's strong random baseline). Each takes its
learner's options beside the patch options below, and the one trainer trains
the learner on the patch rows (:meth:`Layer.training_rows`). The whitening is
saved in the layer's state (buffers ``patch_mean`` and ``whitening``).
"""
import math
from dataclasses import replace
from typing import Any, ClassVar, Dict, Optional, Tuple

import torch
from torch import nn

from ..core.errors import LayerwiseError
from .base import Layer
from .convolution import ImageInput
from .encoders import RegionPool, SoftThreshold, Triangle
from .grbm import GaussianRBM
from .ae import Autoencoder
from .kmeans import KMeans
from .options import Option, options_table, validate_options
from .plain import holding
from .registry import register_layer
from .sampled import SampledDictionary
from .whitening import NORM_EPS, WhitenPatches, fit_whitening, normalise, positions, sample_patches, whiten

#: The options every patch kind declares (a learner's own option of the same name stands instead).
PATCH_OPTIONS = (
    Option("patch", 6, "side of the square patches learned from and encoded (k x k x channels)", low=1, high=64),
    Option("patches", 400000, "random patches of the training images the dictionary learns from", low=2),
    Option("stride", 1, "step between the encoded positions", low=1, high=16),
    Option("whiten", True, "ZCA-whiten the normalised patches (false: normalisation only)"),
    Option("zca_eps", 0.1, "ZCA regulariser added to the eigenvalues", low=0, closed="neither"),
    Option("norm_eps", NORM_EPS, "added to each patch's variance before dividing by its root (10/255^2)", low=0),
    Option("encode", "natural", "feature encoder: the learner's own code, triangle, or soft (threshold alpha)",
           choices=("natural", "triangle", "soft")),
    Option("alpha", 0.25, "soft threshold of encode=soft: max(0, d.w - alpha)", low=0),
    Option("pool", "sum", "pooling of each feature over the grid's cells", choices=("sum", "max")),
    Option("grid", 2, "pooling grid: grid x grid cells of the positions (2: quadrants)", low=1, high=16),
)


class PatchLayer(ImageInput, Layer):
    """A dictionary ``learner_kind`` learned on whitened patches, encoded over images; see the module docstring."""

    convolutional = True
    decodes_codes = False
    input_range = "unit"
    #: the dense kind trained on the patch rows; subclasses name it, and get its options, optimizer and rate
    learner_kind: ClassVar[type] = KMeans
    #: defaults of the learner's options that differ for patches (subclasses)
    learner_defaults: ClassVar[Dict[str, Any]] = {}
    #: the learner's rate on whitened patches, where it differs from the learner's own default (subclasses)
    learner_lr: ClassVar[Optional[float]] = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        learner = cls.learner_kind
        own = [replace(option, default=cls.learner_defaults.get(option.name, option.default))
               for option in learner.options.values()]
        cls.options = options_table(*own, *(o for o in PATCH_OPTIONS if o.name not in learner.options))
        cls.optimizer, cls.default_lr, cls.learns = learner.optimizer, cls.learner_lr or learner.default_lr, \
            learner.learns

    def __init__(self, input_shape: Tuple[int, int, int], filters: int, **options):
        shape = tuple(int(d) for d in input_shape)
        if len(shape) != 3 or min(shape) < 1:
            raise LayerwiseError(f"{self.kind}: input_shape={input_shape!r}: must be (channels, height, width)")
        checked = validate_options(self.kind, self.options, options)
        channels, height, width = shape
        patch, stride, grid = checked["patch"], checked["stride"], checked["grid"]
        if patch > min(height, width):
            raise LayerwiseError(f"{self.kind}: patch={patch} exceeds the {height}x{width} images: use a patch "
                                 f"of at most {min(height, width)}")
        self.map_size = positions((height, width), patch, stride)
        if grid > min(self.map_size):
            raise LayerwiseError(f"{self.kind}: grid={grid} exceeds the {self.map_size[0]}x{self.map_size[1]} "
                                 f"positions encoded: use a grid of at most {min(self.map_size)}")
        super().__init__(channels * height * width, filters * grid * grid, **options)
        self.channels, self.input_size, self.filters, self.patch_values = channels, (height, width), filters, \
            channels * patch * patch
        learner_options = {name: self.hparams[name] for name in self.learner_kind.options}
        self.learner = self.learner_kind.for_input((self.patch_values,), filters, "real", **learner_options)
        self.register_buffer("patch_mean", torch.zeros(self.patch_values))
        self.register_buffer("whitening", torch.eye(self.patch_values))
        self.fitted_images = None  # how many images the whitening was fitted on (sizes the held-out sample)

    @property
    def output_shape(self) -> Tuple[int, int, int]:
        return (self.filters, self.hparams["grid"], self.hparams["grid"])

    @property
    def row_bytes(self) -> int:
        """Each image's features at every position before pooling, in bytes (its widest tensor)."""
        return math.prod(self.map_size) * max(self.filters, self.patch_values) * self.whitening.element_size()

    @property
    def code_range(self) -> str:
        return "real"

    # Training: the learner on whitened patch rows ------------------------------------------
    @torch.no_grad()
    def training_rows(self, x: torch.Tensor, fit: bool = False) -> torch.Tensor:
        """``patches`` whitened patches of the images ``x`` (``fit``: the whitening fitted on them first), or for
        held-out images as many as their share of the fitted images'."""
        hp = self.hparams
        count = hp["patches"] if fit or not self.fitted_images else round(hp["patches"] * len(x) / self.fitted_images)
        if fit:
            available = len(x) * (self.input_size[0] - hp["patch"] + 1) * (self.input_size[1] - hp["patch"] + 1)
            if count > available:
                raise LayerwiseError(f"{self.kind}: patches={count}: the {len(x)} training images hold only "
                                     f"{available} patches of {hp['patch']}x{hp['patch']}; ask for at most {available}")
            self.fitted_images = len(x)
        if count == 0 or not len(x):
            return x.new_zeros(0, self.patch_values)
        z = normalise(sample_patches(x, count, hp["patch"]), hp["norm_eps"])
        if fit:
            mean, matrix = fit_whitening(z, hp["zca_eps"])  # refuses flat patches, whitened or not
            self.patch_mean.copy_(mean if hp["whiten"] else torch.zeros_like(mean))
            self.whitening.copy_(matrix if hp["whiten"] else torch.eye(len(mean)))
        return whiten(z, self.patch_mean, self.whitening)

    def init_from_data(self, v):
        self.learner.init_from_data(v)

    def loss(self, v):
        return self.learner.loss(v)

    def accumulate_gradients(self, v, into=None, with_loss=True):
        return self.learner.accumulate_gradients(v, into, with_loss)

    def foldable_parameters(self):
        return self.learner.foldable_parameters()

    def parameter_groups(self, weight_decay):
        return self.learner.parameter_groups(weight_decay)

    def monitors(self, train, val):
        return self.learner.monitors(train, val)

    def decode(self, h):
        """The learner's reconstruction of patch rows from their codes (pooled image codes have none)."""
        return self.learner.decode(h)

    def reconstruct(self, v):
        return self.learner.reconstruct(v)

    def reconstruction_error(self, v):
        return self.learner.reconstruction_error(v)

    # Encoding: images to pooled features ------------------------------------------------------
    @torch.no_grad()
    def forward(self, v):
        """The pooled codes ``[N, K, grid, grid]`` of images ``v``, by the modules fine-tuning gets (in ``v``'s float
        type: they are built in float32)."""
        return self.to_modules().to(v.device, v.dtype)(v)

    def code_modules(self) -> Tuple[nn.Module, ...]:
        """The encoder of whitened patches: the learner's own modules, or its dictionary under ``encode``."""
        natural = tuple(self.learner.to_modules())
        if self.hparams["encode"] == "natural":
            return natural
        dictionary = holding(nn.Linear, {"weight": self.learner.picture_weights()}, self.patch_values,
                             self.filters, bias=False)
        if self.hparams["encode"] == "triangle":
            return (Triangle(dictionary),)
        return dictionary, SoftThreshold(self.hparams["alpha"])

    def to_modules(self) -> nn.Sequential:
        hp = self.hparams
        patches = WhitenPatches(self.input_shape, hp["patch"], hp["stride"], hp["norm_eps"], self.patch_mean,
                                self.whitening)
        return nn.Sequential(patches, *self.code_modules(), RegionPool(hp["grid"], hp["pool"]))

    def decoder(self):
        raise self.no_decoder("like all patch layers, whose pooled features have none (no decoder inverts the "
                               "pooling over image regions)")

    def picture_weights(self) -> torch.Tensor:
        """The dictionary in whitened patch space, as ``[K, C, k, k]`` filters (Coates et al.'s Fig. 2)."""
        k = self.hparams["patch"]
        return self.learner.picture_weights().reshape(self.filters, self.channels, k, k)


@register_layer
class PatchKMeans(PatchLayer):
    kind, learner_kind = "patch-kmeans", KMeans
    summary = "k-means dictionary of whitened image patches, triangle code, sum-pooled (Coates et al. 2011)"


@register_layer
class PatchGaussianRBM(PatchLayer):
    kind, learner_kind = "patch-grbm", GaussianRBM
    summary = "sparse Gaussian RBM on whitened image patches, hidden probabilities sum-pooled"
    # Whitened patches have variances below 1 (lambda / (lambda + zca_eps)), and a mixture of unit-variance
    # Gaussians cannot be narrower than 1: with s = 1 the weights shrank to almost nothing and the codes were
    # linear (on CIFAR-10 no better than pixels); learned s gained clearly, the more so with more labels
    # (measured: examples/benchmarks/design_notes.md).
    learner_defaults = {"sparsity": 0.05, "learn_std": True}


@register_layer
class PatchAutoencoder(PatchLayer):
    kind, learner_kind = "patch-ae", Autoencoder
    summary = "sparse autoencoder on whitened image patches, its code sum-pooled"
    # At 1,600 features the dense default (target 0.05, rate 1e-3) learned codes that probed 7 points below these
    # on CIFAR-10: the sparser the target, the better, given a rate high enough to reach it (measured:
    # examples/benchmarks/design_notes.md)
    learner_defaults, learner_lr = {"sparsity": 0.002}, 0.01


@register_layer
class PatchSampled(PatchLayer):
    kind, learner_kind = "patch-sampled", SampledDictionary
    summary = "random whitened image patches as the dictionary, soft-threshold code (Coates & Ng 2011)"
