"""What the convolutional estimators share: rows that are flattened images, unflattened for the layer."""
import numpy as np
import torch

from ..core.errors import LayerwiseError
from ._base import _LayerTransformer, observed_range


class _ImageTransformer(_LayerTransformer):
    """A convolutional layer over rows that are flattened images ``[n_samples, C * H * W]``.

    ``image_shape`` ``(C, H, W)`` says how a row unflattens (C-order, as
    ``images.reshape(len(images), -1)`` flattens ``[N, C, H, W]``); None reads a
    row of ``n`` features as a single-channel square image when ``n`` is a
    square, otherwise as a ``1 x n`` signal. ``n_components`` is the number of
    filters; ``transform`` gives the pooled maps, flattened ``[n_samples, filters * h * w]``;
    ``components_`` the filters, one row each ``[filters, C * kernel * kernel]``.
    """

    default_components = 32  # filters: each is applied at every position
    extra_parameters = {"image_shape": (None, [tuple, list, None])}

    def _image_shape(self, n_features: int) -> tuple:
        if self.image_shape is None:
            side = int(round(n_features ** 0.5))
            return (1, side, side) if side * side == n_features else (1, 1, n_features)
        shape = tuple(d for d in self.image_shape if isinstance(d, (int, np.integer)) and not isinstance(d, bool))
        if len(shape) != 3 or len(self.image_shape) != 3 or min(shape) < 1 or int(np.prod(shape)) != n_features:
            raise LayerwiseError(f"{type(self).__name__}(image_shape={self.image_shape!r}) does not unflatten rows of "
                                 f"{n_features} features: give (channels, height, width) whose product is {n_features}")
        return shape

    def _layer_input(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(len(x), *self._image_shape(x.shape[1]))

    def _input_range(self, x: torch.Tensor) -> str:
        """Binary visible units and cross-entropy for inputs in [0, 1], Gaussian units and squared error otherwise."""
        return observed_range(x)

    @property
    def components_(self) -> np.ndarray:
        """The filters, one per row: [n_components, channels * kernel * kernel]."""
        return self._numpy(self.layer_.weight).reshape(self.n_components, -1)
