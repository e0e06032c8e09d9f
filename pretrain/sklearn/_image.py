"""What the convolutional estimators share: rows that are flattened images, unflattened for the layer."""
import warnings

import numpy as np
import torch

from ..core.errors import LayerwiseError
from ._base import _LayerTransformer, observed_range

#: What the public estimators' docstrings say of ``image_shape`` (one statement, written once).
IMAGE_SHAPE_DOC = """``image_shape`` ``(height, width, channels)`` says how a row unflattens: channels last,
    as the command line reads images and as ``images.reshape(len(images), -1)`` flattens numpy images
    ``[N, H, W, C]``. None reads a row of ``n`` features as one square grey image when ``n`` is a
    square and otherwise as a ``1 x n`` signal, with a warning saying so; ``set_params(image_shape=...)``
    takes effect at the next ``fit``."""


class _ImageTransformer(_LayerTransformer):
    """A convolutional layer over rows that are flattened images ``[n_samples, H * W * C]``.

    ``n_components`` is the number of filters; ``transform`` gives the pooled maps, flattened
    ``[n_samples, filters * h * w]``; ``components_`` the filters, one row each
    ``[filters, C * kernel * kernel]``.
    """

    default_components = 32  # filters: each is applied at every position
    extra_parameters = {"image_shape": (None, [tuple, list, None])}

    def __init_subclass__(cls, **kwargs):
        """Each public estimator's docstring (what ``help`` shows) ends with how its rows unflatten."""
        super().__init_subclass__(**kwargs)
        cls.__doc__ = (cls.__doc__ or "").rstrip() + "\n\n    " + IMAGE_SHAPE_DOC + "\n"

    def _image_shape(self, n_features: int, warn: bool) -> tuple:
        """``(height, width, channels)`` of a row of ``n_features``: ``image_shape``, checked, or the fallback."""
        if self.image_shape is None:
            return square_or_signal(type(self).__name__, n_features, warn)
        shape = tuple(d for d in self.image_shape if isinstance(d, (int, np.integer)) and not isinstance(d, bool))
        if len(shape) != 3 or len(self.image_shape) != 3 or min(shape) < 1 or int(np.prod(shape)) != n_features:
            raise LayerwiseError(f"{type(self).__name__}(image_shape={self.image_shape!r}) does not unflatten rows of "
                                 f"{n_features} features: give (height, width, channels) whose product is {n_features}")
        return tuple(int(d) for d in shape)

    def _layer_input(self, x: torch.Tensor, reset: bool) -> torch.Tensor:
        """Rows as images ``[N, C, H, W]``; after ``fit``, of the shape the layer was fitted on."""
        height, width, channels = self._image_shape(x.shape[1], warn=reset)
        if not reset and (channels, height, width) != self.layer_.input_shape:
            fitted = self.layer_.input_shape
            raise LayerwiseError(f"{type(self).__name__} was fitted on images of image_shape="
                                 f"{(fitted[1], fitted[2], fitted[0])}, and image_shape is now {self.image_shape!r}: "
                                 "fit again after set_params(image_shape=...)")
        return x.reshape(len(x), height, width, channels).permute(0, 3, 1, 2).contiguous()

    def _input_range(self, x: torch.Tensor) -> str:
        """Binary visible units and cross-entropy for inputs in [0, 1], Gaussian units and squared error otherwise."""
        return observed_range(x)

    @property
    def components_(self) -> np.ndarray:
        """The filters, one per row: [n_components, channels * kernel * kernel]."""
        return self._numpy(self.layer_.weight).reshape(self.n_components, -1)


def square_or_signal(owner: str, n_features: int, warn: bool) -> tuple:
    """One square grey image of ``n_features`` pixels, else a ``1 x n_features`` signal (and, if ``warn``, a
    warning: the fit sees it once, not every transform); one pixel is no image."""
    if n_features == 1:
        raise LayerwiseError(f"{owner}: rows of 1 feature(s) are single pixels, where a convolution is a dense "
                             "layer: use a dense estimator (BernoulliRBM, Autoencoder)")
    side = int(round(n_features ** 0.5))
    if side * side == n_features:
        return side, side, 1
    if warn:
        warnings.warn(f"{owner}: rows of {n_features} features are not square images: read as 1 x {n_features} "
                      "signals; give image_shape=(height, width, channels) to say how they unflatten")
    return 1, n_features, 1
